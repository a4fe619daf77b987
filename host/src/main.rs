//! `hbc`: parses arguments and calls into the library.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::Parser;
use hbc::cli::{Cli, Command};
use hbc::config::{parse_duration, Config, Source};
use hbc::plugins::PluginSet;

fn init_logging(verbose: u8) {
    let default = match verbose {
        0 => "info",
        1 => "debug",
        _ => "trace",
    };
    // `Targets` rather than `EnvFilter`: the same `info` / `hbc=debug` syntax without
    // a regex engine (about 270 kB less resident code in a process that runs everywhere).
    let filter: tracing_subscriber::filter::Targets = std::env::var("HBC_LOG")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| default.parse().unwrap_or_default());
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    let fmt = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_target(false)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    tracing_subscriber::registry().with(fmt).with(filter).init();
}

/// `hbc check-config`: every problem of the file at once (key, line, column), unknown
/// keys and servers' ports included; exit 2 if any.
fn check_config(cli: &Cli) -> ExitCode {
    let system = hbc::config::system_config_file();
    let parse = |t: &str, path: &std::path::Path| {
        let (c, warnings) = Config::parse(t, path)?;
        let more = c
            .servers
            .iter()
            .filter_map(|s| hbc::send::parse_target(s, c.hb_port).err())
            .map(|e| format!("servers: {e}"))
            .collect();
        Ok((warnings, more))
    };
    ExitCode::from(hb_config::check::check_file(
        "hbc",
        cli.common.config.as_deref(),
        &system.to_string_lossy(),
        parse,
    ))
}

fn load_config(cli: &Cli) -> Result<Config> {
    let (mut config, source, warnings) = Config::load(cli.common.config.as_deref())?;
    for w in warnings {
        tracing::warn!("{w}");
    }
    match source {
        Source::File(p) => tracing::debug!("config from {}", p.display()),
        Source::Embedded => tracing::debug!("no config file; built-in defaults"),
    }
    if let Some(i) = &cli.interval {
        config.interval = parse_duration(i).map_err(|e| anyhow::anyhow!("--interval: {e}"))?;
        if config.interval < Duration::from_millis(100) {
            bail!("--interval: use at least 100ms");
        }
    }
    apply_host_root(cli, &mut config)?;
    Ok(config)
}

/// The host root (`--host-root`, else $HBC_HOST_ROOT, else `host_root`), passed to the
/// plugins, in-process and isolated, as $HBC_HOST_ROOT. Called before any thread starts.
fn apply_host_root(cli: &Cli, config: &mut Config) -> Result<()> {
    let env = std::env::var_os(hbc::config::HOST_ROOT_ENV)
        .filter(|v| !v.is_empty())
        .map(std::path::PathBuf::from);
    let Some(root) = cli
        .common
        .host_root
        .clone()
        .or(env)
        .or(config.host_root.take())
    else {
        return Ok(());
    };
    if !root.join("proc").join("stat").exists() {
        bail!(
            "host root {}: {} is not the host's /proc; mount it there \
             (podman/docker: -v /proc:{}:ro --pid=host, docs/containers.md)",
            root.display(),
            root.join("proc").display(),
            root.join("proc").display()
        );
    }
    tracing::info!(host_root = %root.display(), "reading the host through its root");
    std::env::set_var(hbc::config::HOST_ROOT_ENV, &root);
    config.host_root = Some(root);
    Ok(())
}

fn host_name(config: &Config) -> Result<String> {
    if let Some(h) = &config.hostname {
        return Ok(h.clone());
    }
    let raw = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        // Windows: the NetBIOS name, which Windows limits to DNS-safe characters.
        .or_else(|e| {
            std::env::var("COMPUTERNAME")
                .map(|n| n.to_lowercase())
                .map_err(|_| e)
        })
        .context("cannot read this machine's host name; set `hostname` in the config")?;
    let name = raw.trim().to_string();
    if !hb_proto::valid_host_name(&name) {
        bail!("this machine's host name {name:?} is not a valid DNS name; set `hostname` in the config");
    }
    Ok(name)
}

/// Servers from the config, then from the command line.
fn server_specs(cli: &Cli, config: &Config) -> Vec<String> {
    let mut specs = config.servers.clone();
    specs.extend(cli.servers.iter().cloned());
    specs
}

/// The plugins of this run. `own_state`: record crashes in the state folder (hbc that runs
/// plugins); `hbc plugins` only reads it.
fn plugin_set(cli: &Cli, config: &Config, own_state: bool) -> Result<PluginSet> {
    let env = std::env::var("HBC_PLUGIN_PATH").ok();
    let dirs =
        hbc::loader::plugin_dirs(&config.plugin_dirs, env.as_deref(), &cli.common.plugin_dirs);
    let state_dir = config
        .state_dir
        .clone()
        .or_else(hbc::quarantine::default_state_dir);
    let quarantine = hbc::quarantine::Quarantine::open(state_dir, own_state);
    PluginSet::new(dirs, quarantine).context("cannot create hbc's private plugin folder")
}

fn run(cli: Cli) -> Result<ExitCode> {
    match &cli.command {
        Some(Command::PluginWorker { probe, file }) => {
            return Ok(ExitCode::from(hbc::isolate::worker_main(file, *probe) as u8));
        }
        Some(Command::CheckPlugin { file }) => {
            // A bare name is looked for here, then in the plugin folders (a config that
            // does not load only leaves its `plugin_dirs` out of the search).
            let config_dirs = load_config(&cli).map(|c| c.plugin_dirs).unwrap_or_default();
            let env = std::env::var("HBC_PLUGIN_PATH").ok();
            let dirs =
                hbc::loader::plugin_dirs(&config_dirs, env.as_deref(), &cli.common.plugin_dirs);
            let cwd = std::env::current_dir().context("cannot read the current folder")?;
            let found = hbc::loader::locate(file, &cwd, &dirs)?;
            return match hbc::loader::probe_in_child(&found) {
                Ok(infos) => {
                    for info in infos {
                        println!(
                            "{}: OK: plugin {} {} ({}), built against plugin API {}",
                            found.display(),
                            info.name,
                            info.version,
                            info.description,
                            info.api_version
                        );
                    }
                    if let Err(r) = hbc::trust::check(&found) {
                        println!(
                            "note: where it is now, hbc would not load it: {}; {}",
                            r.reason, r.remedy
                        );
                    }
                    Ok(ExitCode::SUCCESS)
                }
                Err(r) => {
                    println!("{}: REJECTED: {}; {}", found.display(), r.reason, r.remedy);
                    Ok(ExitCode::from(1))
                }
            };
        }
        _ => {}
    }
    if let Some(Command::CheckConfig) = &cli.command {
        return Ok(check_config(&cli));
    }
    let config = load_config(&cli)?;
    if let Some(Command::Plugins { json }) = &cli.command {
        let mut set = plugin_set(&cli, &config, false)?;
        set.dry_run = true;
        set.scan(&config, false);
        let entries = set.entries();
        if *json {
            println!("{}", serde_json::to_string_pretty(&entries)?);
        } else {
            print!("{}", hbc::table::plugins(&entries));
            println!(
                "searched: {}",
                set.dirs()
                    .iter()
                    .map(|d| d.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
        return Ok(ExitCode::SUCCESS);
    }

    let host = host_name(&config)?;
    // Signals first: a SIGTERM while plugins load must still stop cleanly (and remove
    // the private plugin copies).
    // (`--once` keeps the default handlers: Ctrl-C simply ends it.)
    let (tx, rx) = std::sync::mpsc::sync_channel::<hbc::agent::Control>(5);
    // The plugins' thread wakes the heartbeat loop through the same channel (one message
    // at most, so four signals still find room).
    let wake = tx.clone();
    #[cfg(windows)]
    if !cli.once {
        console::stop_on_ctrl_events(tx).context("cannot install the console control handler")?;
    }
    #[cfg(unix)]
    if !cli.once {
        let mut signals = signal_hook::iterator::Signals::new([
            signal_hook::consts::SIGTERM,
            signal_hook::consts::SIGINT,
            signal_hook::consts::SIGHUP,
        ])
        .context("cannot install signal handlers")?;
        std::thread::Builder::new()
            .name("signals".into())
            .stack_size(128 * 1024)
            .spawn(move || {
                for sig in signals.forever() {
                    let c = if sig == signal_hook::consts::SIGHUP {
                        hbc::agent::Control::Reload
                    } else {
                        hbc::agent::Control::Stop
                    };
                    let _ = tx.try_send(c);
                }
            })
            .context("cannot start the signal thread")?;
    }
    let mut set = plugin_set(&cli, &config, true)?;
    let started = std::time::Instant::now();
    set.scan(&config, false);
    tracing::info!(
        plugins = set.running.len(),
        "plugins loaded in {:.1} ms",
        started.elapsed().as_secs_f64() * 1000.0
    );

    if cli.once {
        let thresholds = hbc::thresholds::Thresholds::compile(&config.thresholds, config.samples)
            .map_err(|e| anyhow::anyhow!("thresholds: {e}"))?;
        let wait = set
            .running
            .values()
            .map(|r| r.handle.timeout)
            .max()
            .unwrap_or(Duration::ZERO);
        set.wait_first_results(wait + Duration::from_millis(100));
        let draft = hbc::agent::build(
            &mut set,
            &thresholds,
            &host,
            hbc::agent::unix_ms(),
            1,
            config.interval,
        );
        // Encoded as it would be sent, so the datagram count and any trimming show.
        let secret = config
            .secret
            .as_ref()
            .map(|s| s.expose().as_bytes().to_vec());
        let fitted = hbc::fit::fit(draft, secret.as_deref(), config.max_datagram)
            .context("cannot encode the heartbeat")?;
        if cli.json {
            println!(
                "{}",
                serde_json::to_string_pretty(&hbc::table::json(&fitted))?
            );
        } else {
            print!("{}", hbc::table::readings(&fitted));
        }
        set.stop_all();
        return Ok(ExitCode::SUCCESS);
    }

    let mut specs = server_specs(&cli, &config);
    if specs.is_empty() {
        bail!("no server to send to: name one on the command line (hbc HOST[:PORT]) or set `servers` in the config; `hbc --once` collects without sending");
    }
    let mut config = config;
    tracing::info!(host = %host, servers = %specs.join(", "), interval = ?config.interval, "hbc started");
    let reload = || -> Result<(Config, Vec<String>), String> {
        let c = load_config(&cli).map_err(|e| format!("{e:#}"))?;
        let s = server_specs(&cli, &c);
        if s.is_empty() {
            return Err("the new config names no server".into());
        }
        Ok((c, s))
    };
    // Tell systemd (Type=notify) that plugins are loaded and heartbeats start.
    #[cfg(unix)]
    let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Ready]);
    let exit = hbc::agent::run(
        &mut config,
        &mut set,
        &mut specs,
        &host,
        &rx,
        &wake,
        &reload,
    )
    .map_err(|e| anyhow::anyhow!(e))?;
    tracing::info!(?exit, "hbc stopping");
    set.stop_all();
    Ok(ExitCode::SUCCESS)
}

/// Windows' SIGTERM: console control events (Ctrl-C, Ctrl-Break, the console closing,
/// log-off, shutdown) stop hbc as SIGTERM does on Unix. There is no SIGHUP: restart hbc to
/// reload its config.
#[cfg(windows)]
mod console {
    use std::sync::mpsc::SyncSender;
    use std::sync::OnceLock;

    static STOP: OnceLock<SyncSender<hbc::agent::Control>> = OnceLock::new();

    /// Stops hbc as SIGTERM does (also the Windows service's STOP, `win_service.rs`).
    pub fn request_stop() {
        if let Some(tx) = STOP.get() {
            let _ = tx.try_send(hbc::agent::Control::Stop);
        }
    }

    unsafe extern "system" fn on_event(_kind: u32) -> windows_sys::core::BOOL {
        request_stop();
        1 // handled: the agent stops, removes its plugin copies and returns
    }

    pub fn stop_on_ctrl_events(tx: SyncSender<hbc::agent::Control>) -> std::io::Result<()> {
        let _ = STOP.set(tx);
        // SAFETY: a handler of the PHANDLER_ROUTINE signature that only touches a static.
        if unsafe { windows_sys::Win32::System::Console::SetConsoleCtrlHandler(Some(on_event), 1) }
            == 0
        {
            return Err(std::io::Error::last_os_error());
        }
        Ok(())
    }
}

#[cfg(windows)]
mod win_service;

/// `hbc --windows-service ...`: the same program run by the Service Control Manager.
#[cfg(windows)]
fn service_run(args: Vec<std::ffi::OsString>) -> ExitCode {
    let cli = Cli::parse_from(args);
    init_logging(cli.common.verbose);
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            tracing::error!("{e:#}");
            ExitCode::from(2)
        }
    }
}

fn main() -> ExitCode {
    #[cfg(windows)]
    if win_service::requested() {
        if let Err(e) = win_service::log_to_file() {
            eprintln!("hbc: cannot open the service log file: {e}");
        }
        return win_service::dispatch(service_run);
    }
    let cli = Cli::parse();
    if !matches!(cli.command, Some(Command::PluginWorker { .. })) {
        init_logging(cli.common.verbose);
    }
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("hbc: error: {e:#}");
            ExitCode::from(2)
        }
    }
}
