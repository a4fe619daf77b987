//! `hbd`: parses arguments, loads the config, daemonizes if asked, and runs the server.

use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::Parser;
use hbd::cli::{Cli, Command};
use hbd::config::Config;

fn init_logging(verbose: u8, logfile: Option<&std::path::Path>) -> Result<()> {
    let default = match verbose {
        0 => "info,actix_server=warn",
        1 => "debug,actix_server=info",
        _ => "trace",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("HBD_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false);
    match logfile {
        Some(p) => {
            let f = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(p)
                .with_context(|| format!("cannot open logfile {}", p.display()))?;
            builder
                .with_ansi(false)
                .with_writer(std::sync::Mutex::new(f))
                .init();
        }
        None => builder
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .with_writer(std::io::stderr)
            .init(),
    }
    Ok(())
}

/// Forks into the background: the parent exits, the child leaves the terminal.
fn daemonize(pidfile: &std::path::Path) -> Result<()> {
    // SAFETY: called before any thread is started; the child continues single-threaded.
    match unsafe { libc::fork() } {
        -1 => anyhow::bail!("cannot fork: {}", std::io::Error::last_os_error()),
        0 => {}
        _ => std::process::exit(0),
    }
    // SAFETY: plain syscalls on this process.
    unsafe {
        libc::setsid();
        let null = libc::open(c"/dev/null".as_ptr(), libc::O_RDWR);
        if null >= 0 {
            libc::dup2(null, 0);
            libc::dup2(null, 1);
            libc::dup2(null, 2);
        }
    }
    std::fs::write(pidfile, format!("{}\n", std::process::id()))
        .with_context(|| format!("cannot write pid file {}", pidfile.display()))?;
    Ok(())
}

fn run(cli: Cli) -> Result<ExitCode> {
    let (mut config, source, warnings) = match Config::load(cli.config.as_deref()) {
        Ok(x) => x,
        Err(e) => {
            eprintln!("hbd: error: {e}");
            return Ok(ExitCode::from(2));
        }
    };
    if let Some(Command::CheckConfig) = cli.command {
        for w in &warnings {
            eprintln!("hbd: warning: {w}");
        }
        println!("config OK");
        return Ok(ExitCode::SUCCESS);
    }
    if let Some(b) = cli.bind {
        config.bind = b;
    }
    if let Some(p) = cli.hb_port {
        config.hb_port = p;
    }
    if let Some(p) = cli.hbd_port {
        config.hbd_port = p;
    }
    if let Some(p) = cli.ws_port {
        config.ws_port = p;
    }
    if let Some(d) = cli.data_dir {
        config.data_dir = Some(d);
    }
    let data_dir = config.data_dir();
    std::fs::create_dir_all(&data_dir)
        .with_context(|| format!("cannot create the data folder {}", data_dir.display()))?;
    let mut logfile = config.logfile.clone();
    if !cli.foreground {
        logfile.get_or_insert_with(|| data_dir.join("hbd.log"));
        let pidfile = config
            .pidfile
            .clone()
            .unwrap_or_else(|| data_dir.join("hbd.pid"));
        daemonize(&pidfile)?;
    }
    init_logging(cli.verbose, logfile.as_deref())?;
    for w in &warnings {
        tracing::warn!("{w}");
    }
    match &source {
        Some(p) => tracing::info!("config from {}", p.display()),
        None => tracing::info!("no config file found; using built-in defaults"),
    }
    actix_web::rt::System::new().block_on(async move {
        let running = hbd::server::start(config, data_dir).await?;
        // Tell systemd (Type=notify) that every listener is up.
        let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Ready]);
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        let mut int = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())?;
        tokio::select! {
            _ = term.recv() => tracing::info!("SIGTERM: stopping"),
            _ = int.recv() => tracing::info!("SIGINT: stopping"),
        }
        running.stop().await
    })?;
    Ok(ExitCode::SUCCESS)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("hbd: error: {e:#}");
            ExitCode::from(1)
        }
    }
}
