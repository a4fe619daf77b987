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

/// The daemonised child's end of the start-up pipe: it tells the waiting parent that
/// every listener is up, or why start-up failed; the parent exits 0 or 1 accordingly.
struct StartupReport(std::fs::File);

impl StartupReport {
    fn ready(self) {
        let _ = std::io::Write::write_all(&mut &self.0, b"OK\n");
    }

    fn failed(self, error: &str) {
        let _ = std::io::Write::write_all(&mut &self.0, format!("ERR {error}").as_bytes());
    }
}

/// Forks into the background. The parent waits for the child's start-up report (see
/// [`StartupReport`]) and exits with it; the child leaves the terminal and returns the
/// report's writing end.
fn daemonize(logfile: &std::path::Path) -> Result<StartupReport> {
    use std::io::Read;
    use std::os::fd::FromRawFd;
    let mut fds = [0 as libc::c_int; 2];
    // SAFETY: pipe2 fills two descriptors, which the files below then own.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        anyhow::bail!("cannot create a pipe: {}", std::io::Error::last_os_error());
    }
    // SAFETY: both descriptors were just created and are owned by nothing else.
    let (mut read, write) = unsafe {
        (
            std::fs::File::from_raw_fd(fds[0]),
            std::fs::File::from_raw_fd(fds[1]),
        )
    };
    // SAFETY: called before any thread is started; the child continues single-threaded.
    match unsafe { libc::fork() } {
        -1 => anyhow::bail!("cannot fork: {}", std::io::Error::last_os_error()),
        0 => {}
        _ => {
            drop(write);
            // The report is at most one line; bounded so a confused child cannot flood us.
            let mut report = String::new();
            let _ = (&mut read).take(64 * 1024).read_to_string(&mut report);
            if report.starts_with("OK") {
                std::process::exit(0);
            }
            match report.strip_prefix("ERR ") {
                Some(e) => eprintln!("hbd: error: {e}"),
                None => eprintln!(
                    "hbd: error: the daemon ended during start-up without saying why; see {}",
                    logfile.display()
                ),
            }
            std::process::exit(1);
        }
    }
    drop(read);
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
    Ok(StartupReport(write))
}

/// Writes the pid file once start-up has succeeded (a failed start leaves none).
fn write_pidfile(pidfile: &std::path::Path) -> Result<()> {
    std::fs::write(pidfile, format!("{}\n", std::process::id()))
        .with_context(|| format!("cannot write pid file {}", pidfile.display()))
}

/// Removes the pid file at a clean stop, if it is still ours.
fn remove_pidfile(pidfile: &std::path::Path) {
    let ours =
        std::fs::read_to_string(pidfile).is_ok_and(|s| s.trim() == std::process::id().to_string());
    if ours {
        let _ = std::fs::remove_file(pidfile);
    }
}

/// `hbd check-config`: every problem of the file at once (key, line, column), unknown
/// keys included, and the files, templates and keys start would read; exit 2 if any.
fn check_config(cli: &Cli) -> ExitCode {
    let parse = |t: &str, path: &std::path::Path| {
        let (c, warnings) = Config::parse(t, path)?;
        // What start would read besides the file: problems, but the config parsed.
        let mut more = Vec::new();
        if let Err(e) = hbd::security::tls::load(&c) {
            more.push(e);
        }
        if !c.dyndns.dyndnshosts.0.is_empty() {
            if let Err(e) = hbd_dyndns::Settings::from_config(&c.dyndns) {
                more.push(if e.starts_with("dns_") || e.starts_with("dyndns") {
                    e
                } else {
                    format!("dyndnshosts: {e}")
                });
            }
        }
        if let Some(dir) = &c.notify.notify_templates_dir {
            if !dir.is_dir() {
                more.push(format!(
                    "notify_templates_dir: {} is not a folder",
                    dir.display()
                ));
            } else if let Err(e) = hbd_notify::templates::Templates::load(Some(dir), "http://check")
            {
                more.push(format!("notify_templates_dir: {e}"));
            }
        }
        for (key, dir) in [
            ("templates_dir", &c.templates_dir),
            ("static_dir", &c.static_dir),
        ] {
            if let Some(d) = dir.as_ref().filter(|d| !d.is_dir()) {
                more.push(format!("{key}: {} is not a folder", d.display()));
            }
        }
        Ok((warnings, more))
    };
    ExitCode::from(hb_config::check::check_file(
        "hbd",
        cli.config.as_deref(),
        "/etc/hbd.yaml",
        parse,
    ))
}

fn run(cli: Cli) -> Result<ExitCode> {
    if let Some(Command::CheckConfig) = cli.command {
        return Ok(check_config(&cli));
    }
    let (config, source, warnings) = match load_config(&cli) {
        Ok(x) => x,
        Err(e) => {
            eprintln!("hbd: error: {e}");
            return Ok(ExitCode::from(2));
        }
    };
    // Whatever umask hbd was started with: its files 0640, its folders 0750 (data_dir
    // is set to 0750 by `datadir::prepare_dir` even when it existed).
    // SAFETY: umask only changes this process's file creation mask.
    unsafe {
        libc::umask(0o027);
    }
    let data_dir = config.data_dir();
    hbd::datadir::prepare_dir(&data_dir)
        .with_context(|| format!("cannot create the data folder {}", data_dir.display()))?;
    let mut logfile = config.logfile.clone();
    let mut report = None;
    let mut pidfile = None;
    if !cli.foreground {
        let log = logfile.get_or_insert_with(|| data_dir.join("hbd.log"));
        pidfile = Some(
            config
                .pidfile
                .clone()
                .unwrap_or_else(|| data_dir.join("hbd.pid")),
        );
        report = Some(daemonize(log)?);
    }
    let log = match init_logging(cli.verbose, logfile.as_deref()) {
        Ok(log) => log,
        Err(e) => {
            if let Some(r) = report.take() {
                r.failed(&format!("{e:#}"));
            }
            return Err(e);
        }
    };
    let result = serve(
        &cli,
        config,
        data_dir,
        &warnings,
        source,
        log,
        &mut report,
        pidfile.as_deref(),
    );
    if let Err(e) = &result {
        // Fatal errors reach the log file too (a daemon's standard error is /dev/null).
        if logfile.is_some() {
            tracing::error!("{e:#}");
        }
        if let Some(r) = report.take() {
            r.failed(&format!("{e:#}"));
        }
    }
    if let Some(p) = &pidfile {
        remove_pidfile(p);
    }
    result
}

/// Runs the started server until SIGTERM or SIGINT; SIGHUP reloads. Reports readiness
/// (systemd, and the parent of a daemon) once every listener is up.
#[allow(clippy::too_many_arguments, reason = "one call, from run")]
fn serve(
    cli: &Cli,
    config: Config,
    data_dir: std::path::PathBuf,
    warnings: &[String],
    source: Option<std::path::PathBuf>,
    log: Option<hbd::logfile::LogFile>,
    report: &mut Option<StartupReport>,
    pidfile: Option<&std::path::Path>,
) -> Result<ExitCode> {
    for w in warnings {
        tracing::warn!("{w}");
    }
    match &source {
        Some(p) => tracing::info!("config from {}", p.display()),
        None => tracing::info!("no config file found; using built-in defaults"),
    }
    actix_web::rt::System::new().block_on(async move {
        let running = hbd::server::start(config, data_dir).await?;
        if let Some(p) = pidfile {
            write_pidfile(p)?;
        }
        // Tell systemd (Type=notify) and the daemon's parent that every listener is up.
        let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Ready]);
        if let Some(r) = report.take() {
            r.ready();
        }
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
                    match load_config(cli) {
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
