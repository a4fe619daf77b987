//! Starting and stopping hbd: restore state, bind every listener (port 0 works, for
//! tests), start the threads and HTTP servers; on stop, save a snapshot and flush the
//! journal.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use actix_web::dev::Server;
use actix_web::{web, App, HttpServer};
use anyhow::{Context, Result};
use rustls::ServerConfig;

use crate::config::Config;
use crate::journal;
use crate::registry::{Registry, Settings};
use crate::shutdown::Shutdown;
use crate::sink::{Emitted, Emitter};
use crate::state::{now_ms, Shared, State};
use crate::{api, liveness, security, snapshot, udp, ws};

/// A running hbd.
pub struct Running {
    pub udp_addr: SocketAddr,
    pub http_addr: SocketAddr,
    pub ws_addr: SocketAddr,
    pub state: Shared,
    pub data_dir: PathBuf,
    shutdown: Shutdown,
    threads: Vec<JoinHandle<()>>,
    /// The emitter that tells the sink-events thread to stop, and that thread.
    sink_events: Option<(Emitter, JoinHandle<()>)>,
    servers: Vec<actix_web::dev::ServerHandle>,
    /// The data folder's lock, held until the process ends ([`crate::datadir`]).
    lock: crate::datadir::DataLock,
    /// The config in force (the last one SIGHUP applied).
    current: std::sync::Mutex<Config>,
    subsystems: crate::sinks::Subsystems,
}

/// The registry's settings from the config (also applied by a reload).
pub fn settings(config: &Config) -> Settings {
    Settings {
        grace: config.grace,
        window_ms: if config.secret.is_some() {
            config.time_window.as_millis() as u64
        } else {
            0
        },
        max_hosts: config.max_hosts,
        history_len: config.history_len,
        startup_grace_ms: config.startup_grace.as_millis() as u64,
        max_readings_per_host: config.max_readings_per_host,
        max_host_bytes: config.max_host_bytes,
        host_reading_rate: config.host_reading_rate,
        host_reading_burst: config.host_reading_burst,
    }
}

/// Restores the registry from the snapshot and the journal, and opens the journal.
/// Returns the registry, the journal, and the time of the journal's newest event (0: none).
fn restore(config: &Config, data_dir: &Path) -> Result<(Registry, journal::Journal, u64)> {
    let now = now_ms();
    let mut registry = Registry::new(settings(config));
    let loaded = snapshot::load(data_dir, &mut registry, now);
    for p in &loaded.problems {
        tracing::warn!("{p}");
    }
    let after = loaded.last_event_id;
    let jcfg = config.journal.config(data_dir.join("journal"));
    let mut replayed = 0u64;
    let (journal, report) = journal::Journal::open(jcfg, |e| {
        if e.id > after {
            registry.replay(&e, now);
            replayed += 1;
        }
    })
    .with_context(|| {
        format!(
            "cannot open the journal in {}",
            data_dir.join("journal").display()
        )
    })?;
    for p in &report.problems {
        tracing::warn!("journal: {p}");
    }
    registry.last_event_id = registry.last_event_id.max(report.last_id);
    tracing::info!(
        hosts = registry.count,
        from_snapshot = loaded.hosts,
        events_replayed = replayed,
        journal_events = report.events,
        "state restored from {}",
        data_dir.display()
    );
    for (name, w) in &config.watchhosts.0 {
        registry.watch(name, w.grace, now);
    }
    Ok((registry, journal, report.last_ts_ms))
}

/// Starts everything. Must run inside an actix/tokio runtime.
pub async fn start(config: Config, data_dir: PathBuf) -> Result<Running> {
    // A bad certificate or key stops start-up before anything else is touched.
    let tls = security::tls::load(&config).map_err(anyhow::Error::msg)?;
    // One hbd per data folder: the lock comes before anything in it is read or written.
    let lock = crate::datadir::DataLock::acquire(&data_dir)?;
    let clean = lock.take_clean_marker();
    let first_start = !data_dir.join("journal").exists();
    warn_if_open(&config);
    let (state, subsystems, emitter, emitted) = open_state(&config, &data_dir)?;
    if !clean && !first_start && state.secret.is_some() {
        // Killed last time: the (instance, seq) of every host may be older than what was
        // accepted before the crash, so signed heartbeats sent before this start are
        // refused as replays (docs/security.md, "Replays").
        let floor = now_ms();
        state.set_replay_floor(floor);
        tracing::info!(
            "no clean stop recorded: signed heartbeats sent before this start are refused as replays"
        );
    }
    let shutdown = Shutdown::new().context("cannot create the shutdown signal")?;
    let sink_events = spawn_sink_events(&state, emitted)?;
    let (udp_addr, mut threads, watched) = start_ingest(&config, &state, &shutdown)?;
    threads.push(spawn_housekeeping(
        &state,
        &data_dir,
        config.snapshot_interval,
        &shutdown,
        watched,
    )?);
    let data = web::Data::new(state.clone());
    let sec = web::Data::new(security::Security::new(&config));
    // One rate limit and one count of WebSocket clients for both listeners.
    let limits = web::Data::new(crate::ratelimit::Http::new(config.api_rate()));
    let ws_clients = web::Data::new(ws::Clients::new(&config));
    let (http, http_addr) = http_server(
        &config,
        tls.as_ref(),
        &data,
        &sec,
        &subsystems,
        (&limits, &ws_clients),
    )?;
    let (wss, ws_addr) = ws_server(&config, tls.as_ref(), &data, &sec, (&limits, &ws_clients))?;
    let servers = vec![http.handle(), wss.handle()];
    actix_web::rt::spawn(http);
    actix_web::rt::spawn(wss);
    tracing::info!(%udp_addr, %http_addr, %ws_addr, tls = tls.is_some(), data_dir = %data_dir.display(), "hbd listening");
    Ok(Running {
        udp_addr,
        http_addr,
        ws_addr,
        current: std::sync::Mutex::new(state.config.clone()),
        subsystems,
        state,
        data_dir,
        shutdown,
        threads,
        sink_events: Some((emitter, sink_events)),
        servers,
        lock,
    })
}

/// Loud defaults: heartbeats from anywhere on the network without a `secret` can be
/// forged by anyone who can send a datagram.
fn warn_if_open(config: &Config) {
    if config.secret.is_none() && !config.bind.is_loopback() {
        tracing::warn!(
            bind = %config.bind,
            "listening beyond loopback without a secret: anyone who can reach UDP {} can forge heartbeats and replay them; set `secret` (the same in hbc) or bind to 127.0.0.1",
            config.hb_port
        );
    }
}

/// Restores the registry, starts the journal writer and the subsystems, and builds the
/// shared state; returns the receiver of the events subsystems emit.
fn open_state(
    config: &Config,
    data_dir: &Path,
) -> Result<(Shared, crate::sinks::Subsystems, Emitter, Emitted)> {
    let (registry, journal, newest_event_ms) = restore(config, data_dir)?;
    let journal_dir = journal.dir().to_path_buf();
    let writer =
        journal::Writer::spawn(journal, 65_536).context("cannot start the journal writer")?;
    let (emitter, emitted) = crate::sink::Emitter::channel(4096);
    let subsystems =
        crate::sinks::Subsystems::start(config, data_dir, newest_event_ms, emitter.clone())?;
    let state: Shared = Arc::new(State::new(
        config.clone(),
        registry,
        writer,
        journal_dir,
        subsystems.sinks(),
    ));
    let _ = subsystems.fleet.set(Arc::downgrade(&state));
    // Subsystems see the fleet through the narrow, read-only `FleetView`, held weakly.
    let fleet_arc: Arc<dyn hbd_core::fleet::FleetView> = state.clone();
    let fleet = Arc::downgrade(&fleet_arc);
    drop(fleet_arc);
    for s in &state.sinks {
        s.attach(fleet.clone());
    }
    Ok((state, subsystems, emitter, emitted))
}

/// Events from subsystems get ids, are journaled and broadcast like the rest.
/// Runs until the emitter kept by `Running` says stop.
fn spawn_sink_events(state: &Shared, emitted: Emitted) -> Result<JoinHandle<()>> {
    let state = state.clone();
    let thread = std::thread::Builder::new()
        .name("sink-events".into())
        .spawn(move || {
            while let Some(e) = emitted.recv() {
                state.publish_external(e);
            }
        })?;
    Ok(thread)
}

/// Binds the heartbeat sockets and starts the liveness thread and one ingest thread per
/// socket; returns the UDP address, the threads, and copies of the sockets for the
/// port's owner check.
fn start_ingest(
    config: &Config,
    state: &Shared,
    shutdown: &Shutdown,
) -> Result<(SocketAddr, Vec<JoinHandle<()>>, Vec<std::net::UdpSocket>)> {
    let udp_socks = udp::bind_group(
        SocketAddr::new(config.bind, config.hb_port),
        config.udp_rcvbuf,
        config.ingest_threads,
    )
    .with_context(|| {
        format!(
            "cannot listen for heartbeats on UDP {}:{}",
            config.bind, config.hb_port
        )
    })?;
    // Before anything else: a stranger in our SO_REUSEPORT group would take a share of
    // the fleet's heartbeats (and we of its) until one of us stops.
    udp::owner::check(&udp_socks).context("refusing to share the heartbeat port")?;
    let udp_addr = udp_socks.first().context("no UDP socket")?.local_addr()?;
    let watched = udp_socks
        .iter()
        .map(std::net::UdpSocket::try_clone)
        .collect::<std::io::Result<Vec<_>>>()?;
    let mut threads = vec![liveness::spawn(state.clone(), shutdown.clone())?];
    for (i, sock) in udp_socks.into_iter().enumerate() {
        threads.push(udp::spawn(sock, i, state.clone(), shutdown.clone())?);
    }
    Ok((udp_addr, threads, watched))
}

/// How often housekeeping looks at the journal writer's health.
const HEALTH_EVERY: Duration = Duration::from_millis(500);
/// How often housekeeping checks that no other process joined the heartbeat port
/// (a scan of `/proc/net/udp*`).
const PORT_CHECK_EVERY: Duration = Duration::from_secs(5);

/// How often housekeeping gives the memory malloc holds free back to the system (0.1 ms
/// when there is nothing to give, 3.7 ms after a fleet of 100,000 hosts started).
const TRIM_EVERY: Duration = Duration::from_secs(10);

/// Gives free heap memory back to the system (glibc keeps what bursts freed: a fleet
/// starting, a snapshot, a large query; 43 of 231 MB at 100,000 hosts). Linux with glibc
/// only; a no-op elsewhere.
fn release_free_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        let start = std::time::Instant::now();
        // SAFETY: malloc_trim only walks and releases malloc's own free memory.
        let released = unsafe { libc::malloc_trim(0) };
        tracing::debug!(
            released = released != 0,
            ms = start.elapsed().as_secs_f64() * 1000.0,
            "malloc_trim"
        );
    }
}

/// The housekeeping thread: reports the journal failing and recovering, a stranger on
/// the heartbeat port, saves the snapshot every `every` and gives free heap memory back
/// to the system every [`TRIM_EVERY`].
fn spawn_housekeeping(
    state: &Shared,
    data_dir: &Path,
    every: Duration,
    shutdown: &Shutdown,
    udp: Vec<std::net::UdpSocket>,
) -> Result<JoinHandle<()>> {
    let (state, shutdown, dir) = (state.clone(), shutdown.clone(), data_dir.to_path_buf());
    let thread = std::thread::Builder::new()
        .name("housekeeping".into())
        .spawn(move || {
            let mut last = std::time::Instant::now();
            let mut journal_failing = false;
            let (mut port_checked, mut port_shared) = (std::time::Instant::now(), false);
            let mut trimmed = std::time::Instant::now();
            // The journal's health is looked at every HEALTH_EVERY; the snapshot is saved
            // every `every`; the signal ends the wait at once.
            while !shutdown.wait_timeout(HEALTH_EVERY) {
                report_journal_health(&state, &mut journal_failing);
                if port_checked.elapsed() >= PORT_CHECK_EVERY {
                    port_checked = std::time::Instant::now();
                    report_port_owner(&state, &udp, &mut port_shared);
                }
                if last.elapsed() >= every {
                    last = std::time::Instant::now();
                    if let Err(e) = snapshot::save(&state, &dir) {
                        tracing::error!(
                            "cannot save the registry snapshot in {}: {e}",
                            dir.display()
                        );
                    }
                }
                if trimmed.elapsed() >= TRIM_EVERY {
                    trimmed = std::time::Instant::now();
                    release_free_memory();
                }
            }
        })?;
    Ok(thread)
}

/// A failing journal is a problem of hbd itself: one event (and so one notification)
/// when it starts, one when it ends.
fn report_journal_health(state: &State, failing: &mut bool) {
    match (state.journal.stats.last_error(), *failing) {
        (Some(e), false) => {
            *failing = true;
            state.system_event(
                "journal",
                "FAILING",
                format!(
                    "the journal cannot be written: {e}; events are kept in memory and retried"
                ),
            );
        }
        (None, true) => {
            *failing = false;
            state.system_event("journal", "OK", "the journal is written again".into());
        }
        _ => {}
    }
}

/// A stranger that joined the heartbeat port while hbd runs: one `system` event (and an
/// error in the log) when it appears, one when it is gone.
fn report_port_owner(state: &State, udp: &[std::net::UdpSocket], shared: &mut bool) {
    match (udp::owner::check(udp), *shared) {
        (Err(e), false) => {
            *shared = true;
            tracing::error!("{e}");
            state.system_event("udp", "SHARED", format!("{e}; stop the other process"));
        }
        (Ok(()), true) => {
            *shared = false;
            state.system_event("udp", "OK", "the heartbeat port is ours alone again".into());
        }
        _ => {}
    }
}

/// The HTTP listener (API, dashboard, metrics, subsystems' routes), bound but not yet
/// running; and its address.
fn http_server(
    config: &Config,
    tls: Option<&ServerConfig>,
    data: &web::Data<Shared>,
    sec: &web::Data<security::Security>,
    subsystems: &crate::sinks::Subsystems,
    (limits, ws_clients): Guards<'_>,
) -> Result<(Server, SocketAddr)> {
    let max_body = config.max_heartbeat_bytes;
    let d = data.clone();
    let subs = subsystems.clone();
    let s = sec.clone();
    let (limits, ws_clients) = (limits.clone(), ws_clients.clone());
    let queries = web::Data::new(crate::journal_queries::JournalQueries::new(
        config.journal.journal_max_queries,
    ));
    let http = HttpServer::new(move || {
        let subs = subs.clone();
        App::new()
            .app_data(d.clone())
            .app_data(s.clone())
            .app_data(limits.clone())
            .app_data(queries.clone())
            .app_data(ws_clients.clone())
            .wrap(actix_web::middleware::from_fn(security::guard))
            // Outermost: a client over its rate gets 429 before any other work.
            .wrap(actix_web::middleware::from_fn(crate::ratelimit::guard))
            .configure(move |c| {
                subs.configure(c);
                api::configure(c, max_body)
            })
    })
    .workers(2)
    .disable_signals()
    .shutdown_timeout(2);
    let http = match tls {
        Some(t) => http.bind_rustls_0_23((config.bind, config.hbd_port), t.clone()),
        None => http.bind((config.bind, config.hbd_port)),
    }
    .with_context(|| {
        format!(
            "cannot listen for HTTP on {}:{}",
            config.bind, config.hbd_port
        )
    })?;
    let http_addr = *http.addrs().first().context("HTTP server has no address")?;
    Ok((http.run(), http_addr))
}

/// The HTTP listener's rate limit and the WebSocket clients, shared by both listeners.
type Guards<'a> = (
    &'a web::Data<Arc<crate::ratelimit::Http>>,
    &'a web::Data<Arc<ws::Clients>>,
);

/// The WebSocket listener, bound but not yet running; and its address. Behind the same
/// per-client rate limit as the HTTP listener.
fn ws_server(
    config: &Config,
    tls: Option<&ServerConfig>,
    data: &web::Data<Shared>,
    sec: &web::Data<security::Security>,
    (limits, ws_clients): Guards<'_>,
) -> Result<(Server, SocketAddr)> {
    let d = data.clone();
    let s = sec.clone();
    let (limits, ws_clients) = (limits.clone(), ws_clients.clone());
    let wss = HttpServer::new(move || {
        App::new()
            .app_data(d.clone())
            .app_data(s.clone())
            .app_data(limits.clone())
            .app_data(ws_clients.clone())
            .wrap(actix_web::middleware::from_fn(security::guard))
            // Outermost: a client over its rate gets 429 before any other work.
            .wrap(actix_web::middleware::from_fn(crate::ratelimit::guard))
            .configure(ws::configure)
    })
    .workers(1)
    .disable_signals()
    .shutdown_timeout(1);
    let wss = match tls {
        Some(t) => wss.bind_rustls_0_23((config.bind, config.ws_port), t.clone()),
        None => wss.bind((config.bind, config.ws_port)),
    }
    .with_context(|| {
        format!(
            "cannot listen for WebSocket on {}:{}",
            config.bind, config.ws_port
        )
    })?;
    let ws_addr = *wss
        .addrs()
        .first()
        .context("WebSocket server has no address")?;
    Ok((wss.run(), ws_addr))
}

impl Running {
    /// SIGHUP: applies a new, already validated config without losing state: watched
    /// hosts and liveness settings at once, subsystems through [`crate::sinks::Subsystems::reload`].
    /// Settings that need new listeners or files (ports, bind, data folder, secret,
    /// journal) are reported as needing a restart. Returns what could not be applied.
    pub fn reload(&self, new: Config) -> Vec<String> {
        let mut current = self.current.lock().unwrap_or_else(|p| p.into_inner());
        let mut problems = crate::reload::apply(&self.state, &current, &new);
        problems.extend(self.subsystems.reload(&new));
        *current = new;
        problems
    }

    /// Stops listeners and threads, saves a snapshot, flushes the journal.
    pub async fn stop(mut self) -> Result<()> {
        self.shutdown.fire();
        for s in &self.servers {
            s.stop(true).await;
        }
        let threads = self.threads;
        let _ = web::block(move || {
            for t in threads {
                let _ = t.join();
            }
        })
        .await;
        let saved = snapshot::save(&self.state, &self.data_dir);
        if let Err(e) = &saved {
            tracing::error!("cannot save the registry snapshot: {e}");
        }
        for s in &self.state.sinks {
            s.shutdown();
        }
        // After the subsystems: what they emitted while stopping is journaled too.
        if let Some((emitter, thread)) = self.sink_events.take() {
            emitter.stop();
            let _ = web::block(move || thread.join()).await;
        }
        let flushed = self.state.journal.flush(Duration::from_secs(5));
        if let Err(e) = &flushed {
            tracing::error!("journal not fully written at shutdown: {e}");
        }
        if saved.is_ok() && flushed.is_ok() {
            self.lock.mark_clean();
        }
        tracing::info!("hbd stopped");
        Ok(())
    }
}
