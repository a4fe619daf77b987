//! Notifications: host DOWN/UP, level changes, never-seen watched hosts and hbd's own
//! problems, sent to Pushover, Mattermost (webhook and REST API) and e-mail, never
//! silently lost and not noisy (docs/notifications.md).
//!
//! The path of a notification:
//!
//! ```text
//! Sink::event / heartbeat ─(bounded queue)─> engine thread: policy ─> router ─> outbox
//!   (per channel, fsynced) ─> dispatcher thread per channel ─> Pushover / Mattermost / SMTP
//! ```
//!
//! - [`policy`]: pure state machine (confirmation, flapping, storms, reminders, silences).
//! - [`rules`]: routes (host globs, kinds, levels → channels).
//! - [`outbox`]: the durable per-channel queue; [`dispatch`]: sending with [`retry`].
//! - [`pushover`], [`mattermost`], [`email`]: the channels; [`templates`]: the texts.
//!
//! **Invariants:** `Sink::event` never blocks (it queues, bounded, and counts drops); a
//! notification leaves its outbox only after its channel accepted it; secrets never
//! appear in logs, errors or API output.

mod apply;
pub mod channel;
pub mod cluster;
pub mod config;
pub mod control;
pub mod dispatch;
pub mod email;
pub mod engine;
pub mod flap;
pub mod mattermost;
pub mod notification;
pub mod outbox;
pub mod policy;
pub mod pushover;
pub mod retry;
pub mod rules;
pub mod silence;
pub mod templates;

use std::collections::HashSet;
use std::net::IpAddr;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::mpsc::{SyncSender, TrySendError};
use std::sync::{Arc, Mutex, Weak};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use serde::Serialize;

use hbd_core::event::{Event, EventKind};
use hbd_core::fleet::FleetView;
use hbd_core::now_ms;
use hbd_core::sink::{Emitter, Sink};

use self::apply::Current;
pub use self::config::NotifyConfig;
use self::config::Settings;
pub use self::dispatch::ChannelStatus;
use self::engine::{lock, Engine, Input};

/// Inputs waiting for the engine thread (events and heartbeats of pending hosts).
const INPUT_CAPACITY: usize = 65_536;
/// How long shutdown waits for a send in flight.
const SHUTDOWN_WAIT: Duration = Duration::from_secs(20);

/// The state the sink, its threads and its API routes share. Settings a reload changes
/// live behind locks in here (the engine's router and policy knobs, each dispatcher's
/// [`dispatch::Control`], [`Current`]), so the routes registered at start-up always see
/// the settings in force.
pub struct Inner {
    engine: Arc<Mutex<Engine>>,
    tx: SyncSender<Input>,
    pending: Arc<Mutex<HashSet<String>>>,
    up_after: AtomicU32,
    /// Inputs dropped because the engine thread was far behind.
    dropped: AtomicU64,
    processed: Arc<AtomicU64>,
    emitter: Emitter,
    stop_engine: Arc<AtomicBool>,
    engine_thread: Mutex<Option<JoinHandle<()>>>,
    /// The settings in force and every channel's queue and dispatcher.
    current: Mutex<Current>,
    /// `<data_dir>/notify`: the outboxes and the policy state.
    dir: std::path::PathBuf,
    stopped: AtomicBool,
    /// Cluster mode: acknowledges what the cluster queue gave once it was sent.
    queue_ack: dispatch::QueueAck,
}

/// The status JSON (`/api/v1/notify`, `/healthz` under `subsystems.notify`).
#[derive(Serialize)]
pub struct Status {
    pub channels: Vec<ChannelStatus>,
    pub silences: Vec<silence::Silence>,
    /// Hosts (and `host:key` checks) flapping now.
    pub flapping: Vec<String>,
    /// Notifications held in the storm window.
    pub held: usize,
    /// Hosts waiting for heartbeats to confirm they are UP.
    pub pending_up: usize,
    pub inputs_processed: u64,
    pub inputs_dropped: u64,
    pub unrouted: u64,
}

impl Inner {
    /// The configured channels (not those a reload removed).
    pub fn channel_status(&self) -> Vec<ChannelStatus> {
        lock(&self.current)
            .active()
            .iter()
            .map(|q| q.status())
            .collect()
    }

    pub fn status(&self) -> Status {
        let now = now_ms();
        let (silences, flapping, held, unrouted) = {
            let e = lock(&self.engine);
            (
                e.policy.silences(now),
                e.policy
                    .flapping()
                    .into_iter()
                    .map(|(h, k)| match k {
                        Some(k) => format!("{h}:{k}"),
                        None => h,
                    })
                    .collect(),
                e.policy.held(),
                e.unrouted,
            )
        };
        Status {
            channels: self.channel_status(),
            silences,
            flapping,
            held,
            pending_up: lock(&self.pending).len(),
            inputs_processed: self.processed.load(Ordering::Relaxed),
            inputs_dropped: self.dropped.load(Ordering::Relaxed),
            unrouted,
        }
    }

    fn queue_input(&self, input: Input) {
        match self.tx.try_send(input) {
            Ok(()) => {}
            Err(TrySendError::Full(i)) => {
                let n = self.dropped.fetch_add(1, Ordering::Relaxed);
                if n.is_power_of_two() {
                    let what = match &i {
                        Input::Event(e) => format!("{} event of {}", e.kind.as_str(), e.host),
                        Input::Heartbeat(h) => format!("heartbeat of {h}"),
                    };
                    tracing::error!(
                        "notification engine far behind: dropped the {what} ({} dropped so far)",
                        n + 1
                    );
                }
            }
            Err(TrySendError::Disconnected(_)) => {}
        }
    }
}

/// The notification subsystem: a sink, and the handle hbd's API routes and reloads use.
#[derive(Clone)]
pub struct Notify {
    inner: Arc<Inner>,
}

/// Starts the engine and one dispatcher per configured channel. Runs without channels
/// too (silences and the status work; nothing is sent).
pub fn start(config: &NotifyConfig, data_dir: &Path, emitter: Emitter) -> Result<Notify> {
    let settings = Settings::from_config(config);
    let dir = data_dir.join("notify");
    std::fs::create_dir_all(&dir)
        .with_context(|| format!("cannot create the notification folder {}", dir.display()))?;
    let state_path = dir.join("policy.json");
    let (saved, problem) = engine::load_state(&state_path);
    if let Some(p) = problem {
        tracing::warn!("{p}");
    }
    let policy = policy::Policy::restore(settings.policy.clone(), saved);
    // Channels and routes come with the first `apply`, like with every reload.
    let router = rules::Router::new(Vec::new(), Vec::new());
    let engine = Engine::new(policy, router, Vec::new(), state_path);
    let pending = engine.pending.clone();
    let engine = Arc::new(Mutex::new(engine));
    let (tx, rx) = std::sync::mpsc::sync_channel(INPUT_CAPACITY);
    let stop_engine = Arc::new(AtomicBool::new(false));
    let processed = Arc::new(AtomicU64::new(0));
    let inner = Arc::new(Inner {
        engine: engine.clone(),
        tx,
        pending,
        up_after: AtomicU32::new(settings.policy.up_after),
        dropped: AtomicU64::new(0),
        processed: processed.clone(),
        emitter,
        stop_engine: stop_engine.clone(),
        engine_thread: Mutex::new(None),
        current: Mutex::new(Current::default()),
        dir,
        stopped: AtomicBool::new(false),
        queue_ack: Default::default(),
    });
    inner.apply(settings).map_err(anyhow::Error::msg)?;
    let started = engine::spawn(engine, rx, stop_engine, processed)
        .context("cannot start the notification engine thread");
    match started {
        Ok(t) => *lock(&inner.engine_thread) = Some(t),
        Err(e) => {
            Notify {
                inner: inner.clone(),
            }
            .stop_dispatchers(Instant::now() + SHUTDOWN_WAIT);
            return Err(e);
        }
    }
    Ok(Notify { inner })
}

/// Joins `t`, giving up at `deadline` (the thread is then left to finish alone).
fn join_until(t: JoinHandle<()>, deadline: Instant, what: &str) {
    while !t.is_finished() {
        if Instant::now() >= deadline {
            tracing::warn!("{what} still busy at shutdown; not waiting longer");
            return;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let _ = t.join();
}

impl Notify {
    /// Cluster mode: notifications leave through the leader only, after it claimed them
    /// (docs/cluster.md). Set once, before heartbeats arrive.
    pub fn set_announcer(&self, a: Arc<dyn cluster::Announcer>) {
        lock(&self.inner.engine).gate.set(a);
    }

    /// Cluster mode: `ack(token)` is called once a channel accepted a notification the
    /// cluster queue gave ([`Notify::deliver_queued`]). Set once.
    pub fn set_queue_ack(&self, ack: Box<dyn Fn(u64) + Send + Sync>) {
        if self.inner.queue_ack.set(ack).is_err() {
            tracing::warn!(
                "notify: the cluster queue's acknowledgement was set twice; the first stays"
            );
        }
    }

    /// Cluster mode, on the leader: a notification the cluster queue gave (a
    /// [`cluster::Queued`] as JSON) goes to its channel's outbox with `token`. An error
    /// says why it cannot be sent here (the queue then keeps or ends it).
    pub fn deliver_queued(&self, body: &[u8], token: u64) -> Result<(), String> {
        let q: cluster::Queued =
            serde_json::from_slice(body).map_err(|e| format!("not a queued notification: {e}"))?;
        let queue = lock(&self.inner.current)
            .active()
            .iter()
            .find(|c| c.name == q.channel)
            .cloned()
            .ok_or_else(|| format!("channel {} is not configured on this node", q.channel))?;
        tracing::info!(channel = %q.channel, kind = q.n.kind.as_str(), host = %q.n.host, state = %q.n.state, "notification taken from the cluster queue");
        if queue.push_queued(q.n, token, now_ms()) {
            Ok(())
        } else {
            Err(format!("the outbox of {} is full", q.channel))
        }
    }

    /// Cluster mode: this node stopped leading; what the cluster queue gave and was not
    /// sent leaves the outboxes (the queue gives it to the next leader). Returns how many.
    pub fn drop_queued(&self) -> usize {
        let queues: Vec<_> = lock(&self.inner.current).active().to_vec();
        queues.iter().map(|q| q.drop_queued()).sum()
    }

    /// Applies new channels, credentials, routes, policy knobs, retry timings, templates
    /// and dashboard URL; queued notifications, silences and announced states stay.
    pub fn reload(&self, config: &NotifyConfig) -> Result<(), String> {
        self.inner
            .apply(Settings::from_config(config))
            .map_err(|e| format!("{e}; the running notification settings stay"))
    }

    /// Stops every dispatcher (configured or paused), waits for sends in flight until
    /// `deadline`, flushes the outboxes; returns how many notifications stay queued.
    fn stop_dispatchers(&self, deadline: Instant) -> usize {
        let (threads, queues) = lock(&self.inner.current).stop_all();
        for t in threads {
            join_until(t, deadline, "a notification dispatcher");
        }
        for q in &queues {
            q.sync();
        }
        queues.iter().map(|q| q.status().queued).sum()
    }
}

impl Sink for Notify {
    fn name(&self) -> &'static str {
        "notify"
    }

    fn event(&self, event: &Event) {
        if event.kind == EventKind::HostUp && self.inner.up_after.load(Ordering::Relaxed) > 1 {
            // Count the next heartbeats even before the engine thread saw this event.
            lock(&self.inner.pending).insert(event.host.clone());
        }
        self.inner
            .queue_input(Input::Event(Box::new(event.clone())));
    }

    fn heartbeat(&self, host: &str, _addr: IpAddr, _verified: bool) {
        // Only hosts waiting for their UP confirmation need their heartbeats counted.
        if lock(&self.inner.pending).contains(host) {
            self.inner.queue_input(Input::Heartbeat(host.to_string()));
        }
    }

    fn attach(&self, fleet: Weak<dyn FleetView>) {
        lock(&self.inner.engine).fleet = Some(fleet);
    }

    fn status(&self) -> serde_json::Value {
        serde_json::to_value(self.inner.status()).unwrap_or(serde_json::Value::Null)
    }

    /// Drains the inputs, releases the storm window into the outboxes, saves the policy
    /// state, lets each dispatcher finish its send in flight (so nothing is sent twice
    /// after a restart) and flushes the outboxes. Safe to call more than once.
    fn shutdown(&self) {
        let Some(engine) = lock(&self.inner.engine_thread).take() else {
            return;
        };
        self.inner.stopped.store(true, Ordering::Relaxed);
        let deadline = Instant::now() + SHUTDOWN_WAIT;
        self.inner.stop_engine.store(true, Ordering::Relaxed);
        join_until(engine, deadline, "the notification engine");
        let queued = self.stop_dispatchers(deadline);
        tracing::info!(
            queued,
            "notifications stopped; queued ones are sent after the next start"
        );
    }
}
