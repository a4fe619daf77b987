//! `hbd`: parses arguments, loads the config, daemonizes if asked, and runs the server.

use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::Parser;
use hbd::cli::{Cli, Command};
use hbd::config::Config;

/// Sets up logging to standard error or to `logfile`; returns the file for reopening.
fn init_logging(
    verbose: u8,
    logfile: Option<&std::path::Path>,
) -> Result<Option<hbd::logfile::LogFile>> {
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
            let f = hbd::logfile::LogFile::open(p)
                .with_context(|| format!("cannot open logfile {}", p.display()))?;
            builder.with_ansi(false).with_writer(f.clone()).init();
            Ok(Some(f))
        }
        None => {
            builder
                .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
                .with_writer(std::io::stderr)
                .init();
            Ok(None)
        }
    }
}

/// Reads the config again the way start-up did (same file, same command-line overrides).
fn load_config(cli: &Cli) -> Result<(Config, Option<std::path::PathBuf>, Vec<String>), String> {
    let (mut config, source, warnings) =
        Config::load(cli.config.as_deref()).map_err(|e| e.to_string())?;
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
    if let Some(d) = &cli.data_dir {
        config.data_dir = Some(d.clone());
    }
    Ok((config, source, warnings))
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
    let (config, source, warnings) = match load_config(&cli) {
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
        if let Err(e) = hbd::security::tls::load(&config) {
            eprintln!("hbd: error: {e}");
            return Ok(ExitCode::from(2));
        }
        println!("config OK");
        return Ok(ExitCode::SUCCESS);
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
    let log = init_logging(cli.verbose, logfile.as_deref())?;
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
        use tokio::signal::unix::{signal, SignalKind};
        let mut term = signal(SignalKind::terminate())?;
        let mut int = signal(SignalKind::interrupt())?;
        let mut hup = signal(SignalKind::hangup())?;
        loop {
            tokio::select! {
                _ = term.recv() => { tracing::info!("SIGTERM: stopping"); break; }
                _ = int.recv() => { tracing::info!("SIGINT: stopping"); break; }
                _ = hup.recv() => {
                    let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Reloading]);
                    if let Some(f) = &log {
                        match f.reopen() {
                            Ok(()) => tracing::info!("SIGHUP: log file {} reopened", f.path().display()),
                            Err(e) => tracing::error!("SIGHUP: cannot reopen log file {}: {e}; still writing to the old one", f.path().display()),
                        }
                    }
                    match load_config(&cli) {
                        Ok((new, _, warnings)) => {
                            for w in &warnings {
                                tracing::warn!("{w}");
                            }
                            for p in running.reload(new) {
                                tracing::warn!("SIGHUP: {p}");
                            }
                        }
                        Err(e) => tracing::error!("SIGHUP: config not reloaded, keeping the running one: {e}"),
                    }
                    let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Ready]);
                }
            }
        }
        running.stop().await
    })?;
    Ok(ExitCode::SUCCESS)
}

/// Large short-lived buffers (decoding a 64 KB datagram of thousands of readings) are
/// mapped and unmapped instead of coming from the heap: glibc's adaptive threshold would
/// otherwise move them into the heap after the first free, where they interleave with the
/// registry's long-lived allocations and leave holes nothing can return (measured: a flood
/// of 1,200 such datagrams under new host names grew RSS by 56 MiB with the adaptive
/// threshold, 26.5 MiB with this; tests/tests/hostile).
fn fix_malloc_threshold() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes allocator parameters; called before any thread starts.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 128 * 1024);
    }
}

fn main() -> ExitCode {
    fix_malloc_threshold();
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("hbd: error: {e:#}");
            ExitCode::from(1)
        }
    }
}
