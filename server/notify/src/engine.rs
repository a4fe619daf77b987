//! The engine: the policy plus what surrounds it: routing to channels, filling in a
//! host's failing readings from the registry, queuing into the outboxes, and saving the
//! policy's state (announced states, silences) in `<data_dir>/notify/policy.json`.
//! One thread feeds it inputs from the bounded queue the sink fills, and ticks it.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant};

use hbd_core::event::Event;
use hbd_core::fleet::FleetView;
use hbd_core::now_ms;

use super::dispatch::Queue;
use super::notification::{Check, Kind, Notification};
use super::policy::{Policy, Saved};
use super::rules::Router;

/// Readings listed in one notification.
const MAX_CHECKS: usize = 20;
const TICK: Duration = Duration::from_millis(100);
const SAVE_EVERY: Duration = Duration::from_secs(10);

/// What the sink hands to the engine thread.
#[derive(Debug)]
pub enum Input {
    Event(Box<Event>),
    Heartbeat(String),
}

pub struct Engine {
    pub policy: Policy,
    router: Router,
    pub queues: Vec<Arc<Queue>>,
    state_path: PathBuf,
    dirty: bool,
    /// The fleet, for the failing checks of a host (set once hbd started).
    pub fleet: Option<Weak<dyn FleetView>>,
    /// Hosts waiting for UP confirmation: the sink forwards only their heartbeats.
    pub pending: Arc<Mutex<HashSet<String>>>,
    /// Notifications that no channel wanted.
    pub unrouted: u64,
    /// Cluster mode: what leaves through the leader only (inactive on a single server).
    pub gate: super::cluster::Gate,
}

pub fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Loads the saved policy state; a damaged file is reported and set aside.
pub fn load_state(path: &Path) -> (Saved, Option<String>) {
    match std::fs::read(path) {
        Ok(bytes) => match serde_json::from_slice(&bytes) {
            Ok(s) => (s, None),
            Err(e) => {
                let aside = path.with_extension("json.damaged");
                let _ = std::fs::rename(path, &aside);
                (
                    Saved::default(),
                    Some(format!(
                        "{} is damaged ({e}); moved to {} and starting without silences and announced states",
                        path.display(),
                        aside.display()
                    )),
                )
            }
        },
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => (Saved::default(), None),
        Err(e) => (
            Saved::default(),
            Some(format!("cannot read {}: {e}", path.display())),
        ),
    }
}

impl Engine {
    pub fn new(
        policy: Policy,
        router: Router,
        queues: Vec<Arc<Queue>>,
        state_path: PathBuf,
    ) -> Engine {
        let pending = policy.pending_hosts().into_iter().collect();
        Engine {
            policy,
            router,
            queues,
            state_path,
            dirty: false,
            fleet: None,
            pending: Arc::new(Mutex::new(pending)),
            unrouted: 0,
            gate: super::cluster::Gate::default(),
        }
    }

    pub fn channel_names(&self) -> &[String] {
        self.router.channels()
    }

    /// A reload: new routes over the channels now configured (`queues`, in the router's
    /// order) and new policy knobs. The policy's state (announced states, silences,
    /// flapping, the storm window) is kept; what is held is routed when released.
    pub fn reconfigure(
        &mut self,
        router: Router,
        queues: Vec<Arc<Queue>>,
        policy: super::config::PolicySettings,
    ) {
        self.router = router;
        self.queues = queues;
        self.policy.set_settings(policy);
    }

    /// Fills in the failing readings of the host (with values and thresholds).
    fn enrich(&self, n: &mut Notification) {
        let wants = matches!(
            n.kind,
            Kind::Down
                | Kind::Up
                | Kind::Level
                | Kind::Check
                | Kind::Flapping
                | Kind::FlappingStopped
                | Kind::Reminder
                | Kind::CheckFlapping
                | Kind::CheckFlappingStopped
        );
        if !wants {
            return;
        }
        let Some(fleet) = self.fleet.as_ref().and_then(Weak::upgrade) else {
            return;
        };
        let Some(found) = fleet.failing_checks(&n.host, MAX_CHECKS) else {
            return;
        };
        n.checks = found
            .into_iter()
            .map(|c| Check {
                value: hbd_core::format::value(&c.value, &c.unit),
                key: c.key,
                level: c.level,
                threshold: c.threshold,
                message: c.message,
            })
            .collect();
    }

    /// Routes notifications and queues them in their channels' outboxes.
    pub fn deliver(&mut self, ns: Vec<Notification>, now: u64) {
        if ns.is_empty() {
            return;
        }
        self.dirty = true;
        let ns = self.gate.filter(ns, now);
        self.queue(ns, now);
    }

    /// Routes notifications the gate let through and queues them.
    fn queue(&mut self, ns: Vec<Notification>, now: u64) {
        if ns.is_empty() {
            return;
        }
        let mut per: Vec<Vec<Notification>> = vec![Vec::new(); self.queues.len()];
        for mut n in ns {
            let claimed = self.gate.take_claimed(&n);
            self.enrich(&mut n);
            let routed: Vec<(usize, Notification)> = if n.kind == Kind::Storm {
                self.router.route_group(&n)
            } else {
                self.router
                    .route(&n)
                    .into_iter()
                    .map(|c| (c, n.clone()))
                    .collect()
            };
            if routed.is_empty() {
                self.unrouted += 1;
                tracing::debug!(kind = n.kind.as_str(), host = %n.host, "notification matches no route");
            }
            for (c, x) in routed {
                // Claimed by this node, the cluster's leader: through the engine's queue.
                if claimed && self.gate.enqueue(&self.queues[c].name, &x) {
                    tracing::info!(channel = %self.queues[c].name, kind = x.kind.as_str(), host = %x.host, state = %x.state, "notification queued in the cluster");
                    continue;
                }
                tracing::info!(channel = %self.queues[c].name, kind = x.kind.as_str(), host = %x.host, state = %x.state, "notification queued");
                per[c].push(x);
            }
        }
        self.gate.clear_claimed();
        for (c, v) in per.into_iter().enumerate() {
            if !v.is_empty() {
                self.queues[c].push(v, now);
            }
        }
    }

    fn sync_pending(&self, host: &str) {
        let mut p = lock(&self.pending);
        if self.policy.is_pending(host) {
            p.insert(host.to_string());
        } else {
            p.remove(host);
        }
    }

    pub fn input(&mut self, input: Input, now: u64) {
        let (host, out) = match input {
            Input::Event(e) => {
                // Silence changes are journaled for the record; they notify nobody.
                if e.key.as_deref().is_some_and(|k| k.starts_with("silence.")) {
                    return;
                }
                let out = self.policy.event(&e, now);
                (e.host, out)
            }
            Input::Heartbeat(h) => {
                self.policy.heartbeat(&h, now);
                (h, Vec::new())
            }
        };
        self.sync_pending(&host);
        self.dirty = true;
        self.deliver(out, now);
    }

    pub fn tick(&mut self, now: u64) {
        let pending = self.policy.pending_hosts().len();
        let out = self.policy.tick(now);
        if self.policy.pending_hosts().len() != pending {
            *lock(&self.pending) = self.policy.pending_hosts().into_iter().collect();
            self.dirty = true;
        }
        self.deliver(out, now);
        let claimed = self.gate.tick(now);
        self.queue(claimed, now);
    }

    /// Writes the policy state atomically (temp file, fsync, rename).
    pub fn save(&mut self) -> std::io::Result<()> {
        let json = serde_json::to_vec(&self.policy.save()).map_err(std::io::Error::other)?;
        let tmp = self.state_path.with_extension("json.tmp");
        {
            use std::io::Write;
            let mut f = std::fs::File::create(&tmp)?;
            f.write_all(&json)?;
            f.sync_all()?;
        }
        std::fs::rename(&tmp, &self.state_path)?;
        self.dirty = false;
        Ok(())
    }

    pub fn save_logged(&mut self) {
        if let Err(e) = self.save() {
            tracing::error!(
                "cannot save the notification state in {}: {e}",
                self.state_path.display()
            );
        }
    }

    /// Shutdown: releases what the storm window holds, saves, flushes the outboxes.
    pub fn finish(&mut self, now: u64) {
        let out = self.policy.flush(now);
        self.deliver(out, now);
        self.save_logged();
        for q in &self.queues {
            q.sync();
        }
    }
}

/// The engine thread: inputs as they come, a tick every 100 ms, a save when something
/// changed (at most every 10 s); at stop it drains the inputs and finishes.
pub fn spawn(
    engine: Arc<Mutex<Engine>>,
    rx: Receiver<Input>,
    stop: Arc<AtomicBool>,
    processed: Arc<AtomicU64>,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    std::thread::Builder::new()
        .name("notify-policy".into())
        .spawn(move || {
            let mut last_tick = Instant::now();
            let mut last_save = Instant::now();
            loop {
                match rx.recv_timeout(TICK) {
                    Ok(input) => {
                        lock(&engine).input(input, now_ms());
                        processed.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(RecvTimeoutError::Timeout) => {}
                    Err(RecvTimeoutError::Disconnected) => break,
                }
                if stop.load(Ordering::Relaxed) {
                    while let Ok(input) = rx.try_recv() {
                        lock(&engine).input(input, now_ms());
                        processed.fetch_add(1, Ordering::Relaxed);
                    }
                    break;
                }
                if last_tick.elapsed() >= TICK {
                    last_tick = Instant::now();
                    lock(&engine).tick(now_ms());
                }
                if last_save.elapsed() >= SAVE_EVERY {
                    let mut e = lock(&engine);
                    if e.dirty {
                        last_save = Instant::now();
                        e.save_logged();
                    }
                }
            }
            lock(&engine).finish(now_ms());
        })
}
