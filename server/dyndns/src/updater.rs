//! The updater thread: restores what was last written, checks it against the server
//! (start-up query), then turns observed source addresses into updates when the tracker
//! says they are due; journals every success and every new failure as an event. A reload
//! hands it new settings ([`Reconfig`]) between two updates: what each record holds is
//! kept per DNS name, so an unchanged record is not sent again.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::config::{Settings, Target};
use super::store::{self, Saved};
use super::tracker::{RecordKey, Tracker};
use super::wire::RType;
use super::{Backend, Failure, NameStatus, Shared};
use hbd_core::event::{Event, EventKind};
use hbd_core::now_ms;
use hbd_core::sink::Emitter;

/// A verified heartbeat's source address for the target of `host` (by name, so a
/// reload renumbering the targets cannot misdirect an address still queued).
pub struct Observed {
    pub host: String,
    pub addr: IpAddr,
    pub at: Instant,
}

/// New settings for the running updater (a reload).
pub struct Reconfig {
    pub settings: Settings,
    pub backend: Backend,
    /// Whether the server or its credentials changed (not only the timeout).
    pub backend_changed: bool,
}

/// Longest sleep between checks of the stop flag.
const TICK: Duration = Duration::from_millis(100);

pub struct Worker {
    pub targets: Vec<Target>,
    /// Heartbeat host name → index into `targets`.
    pub by_host: HashMap<String, usize>,
    pub backend: Backend,
    pub tracker: Tracker,
    pub saved: Saved,
    pub path: PathBuf,
    pub emitter: Emitter,
    pub shared: Arc<Shared>,
}

fn human(d: Duration) -> String {
    if d < Duration::from_secs(1) {
        format!("{} ms", d.as_millis())
    } else {
        format!("{} s", d.as_secs())
    }
}

impl Worker {
    pub fn new(
        settings: &Settings,
        backend: Backend,
        path: PathBuf,
        emitter: Emitter,
        shared: Arc<Shared>,
    ) -> Worker {
        let (saved, problem) = store::load(&path);
        if let Some(p) = problem {
            tracing::warn!("dynamic DNS: {p}");
        }
        let mut tracker = Tracker::new(settings.debounce, settings.min_interval);
        for (i, t) in settings.targets.iter().enumerate() {
            for rtype in [RType::A, RType::Aaaa] {
                tracker.set_current((i, rtype), saved.get(&t.name, rtype));
            }
        }
        Worker {
            by_host: by_host(&settings.targets),
            targets: settings.targets.clone(),
            backend,
            tracker,
            saved,
            path,
            emitter,
            shared,
        }
    }

    pub fn run(mut self, rx: Receiver<Observed>, stop: Arc<AtomicBool>) {
        let all: Vec<usize> = (0..self.targets.len()).collect();
        self.verify(&all, &stop);
        self.publish_status();
        while !stop.load(Ordering::Relaxed) {
            self.reconfigure(&stop);
            let now = Instant::now();
            let wait = self
                .tracker
                .next_due()
                .map_or(TICK, |t| t.saturating_duration_since(now).min(TICK));
            match rx.recv_timeout(wait) {
                Ok(o) => {
                    // A reload queued before this address's host became known here.
                    self.reconfigure(&stop);
                    self.observe(o);
                    while let Ok(o) = rx.try_recv() {
                        self.observe(o);
                    }
                    self.publish_status();
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => break,
            }
            for (key, addr) in self.tracker.due(Instant::now()) {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                self.attempt(key, addr);
                self.publish_status();
            }
        }
    }

    fn observe(&mut self, o: Observed) {
        if let Some(&i) = self.by_host.get(&o.host) {
            self.tracker.observe((i, RType::of(o.addr)), o.addr, o.at);
        }
    }

    /// Applies new settings if a reload left some: records keep their state by DNS name
    /// (a name new to the updater starts from what was last set and is checked against
    /// the server), a changed TTL or zone rewrites the record, a new server or key is
    /// tried at once and every name checked against it.
    fn reconfigure(&mut self, stop: &AtomicBool) {
        let Some(r) = self.shared.take_reconfig() else {
            return;
        };
        let now = Instant::now();
        let old = std::mem::take(&mut self.targets);
        let new = r.settings.targets;
        let old_index: HashMap<&str, usize> = old
            .iter()
            .enumerate()
            .map(|(i, t)| (t.name.as_str(), i))
            .collect();
        let map: HashMap<usize, usize> = new
            .iter()
            .enumerate()
            .filter_map(|(j, t)| old_index.get(t.name.as_str()).map(|&i| (i, j)))
            .collect();
        self.tracker.remap(|i| map.get(&i).copied());
        self.tracker
            .set_timing(r.settings.debounce, r.settings.min_interval);
        let mut check = Vec::new();
        for (j, t) in new.iter().enumerate() {
            match old_index.get(t.name.as_str()).map(|&i| &old[i]) {
                Some(o) => {
                    if (o.ttl, &o.zone) != (t.ttl, &t.zone) {
                        for rtype in [RType::A, RType::Aaaa] {
                            self.tracker.rewrite((j, rtype), now);
                        }
                    }
                }
                None => {
                    for rtype in [RType::A, RType::Aaaa] {
                        self.tracker
                            .set_current((j, rtype), self.saved.get(&t.name, rtype));
                    }
                    check.push(j);
                }
            }
        }
        if r.backend_changed {
            self.tracker.retry_now();
            check = (0..new.len()).collect();
        }
        {
            let names: std::collections::HashSet<&str> =
                new.iter().map(|t| t.name.as_str()).collect();
            let mut status = self.shared.lock_status();
            status.retain(|name, _| names.contains(name.as_str()));
            // A name that moved to another host, TTL or zone is shown afresh.
            for t in &new {
                if status
                    .get(&t.name)
                    .is_some_and(|s| (&s.host, &s.zone, s.ttl) != (&t.host, &t.zone, t.ttl))
                {
                    status.remove(&t.name);
                }
            }
        }
        self.by_host = by_host(&new);
        self.targets = new;
        self.backend = r.backend;
        tracing::info!(
            names = self.targets.len(),
            backend = %self.backend.describe(),
            "dynamic DNS: new settings in force"
        );
        self.verify(&check, stop);
        self.publish_status();
    }

    /// What do the records hold now (at start-up, and for names a reload added)? Trusts
    /// the server over the saved state; when the server cannot be asked, keeps the saved
    /// state.
    fn verify(&mut self, which: &[usize], stop: &AtomicBool) {
        let Backend::Rfc2136(client) = &self.backend else {
            // A dyndns2 provider cannot be asked; the saved state is all there is.
            return;
        };
        let mut changed = false;
        for &i in which {
            let Some(t) = self.targets.get(i) else {
                continue;
            };
            for rtype in [RType::A, RType::Aaaa] {
                if stop.load(Ordering::Relaxed) {
                    return;
                }
                match client.query(&t.name, rtype) {
                    Ok(addrs) => {
                        let now = match addrs.as_slice() {
                            [one] => Some(*one),
                            _ => None,
                        };
                        let saved = self.saved.get(&t.name, rtype);
                        if saved != now {
                            tracing::info!(
                                host = %t.host,
                                "dynamic DNS: {rtype} {} holds {:?} on {}, hbd last set {}",
                                t.name,
                                addrs,
                                client.server(),
                                saved.map_or("nothing".to_string(), |a| a.to_string())
                            );
                            self.saved.set(&t.name, rtype, now);
                            changed = true;
                        }
                        self.tracker.set_current((i, rtype), now);
                    }
                    Err(f) => {
                        tracing::warn!(
                            host = %t.host,
                            "dynamic DNS: cannot check {rtype} {}: {f}; trusting what hbd \
                             last set",
                            t.name
                        );
                        if matches!(f.code.as_str(), "UNREACHABLE" | "TIMEOUT") {
                            // The server is away: asking about every other name would
                            // only delay the updates.
                            return;
                        }
                    }
                }
            }
        }
        if changed {
            self.persist();
        }
    }

    fn persist(&self) {
        if let Err(e) = store::save(&self.path, &self.saved) {
            tracing::error!(
                "dynamic DNS: cannot save {}: {e} (a restart may send updates again)",
                self.path.display()
            );
        }
    }

    fn attempt(&mut self, key: RecordKey, addr: IpAddr) {
        let Some(t) = self.targets.get(key.0) else {
            return;
        };
        let rtype = key.1;
        let result = self.backend.update(t, addr);
        let now = Instant::now();
        let (kind, from, message) = match result {
            Ok(code) => {
                let (before, failures) = self.tracker.succeeded(key, addr, now);
                self.saved.set(&t.name, rtype, Some(addr));
                self.persist();
                self.shared.with_record(&t.name, rtype, |r| {
                    r.last_success_ms = Some(now_ms());
                    r.last_error = None;
                });
                let mut message = format!("{rtype} {} → {addr} ({code})", t.name);
                if failures > 0 {
                    message.push_str(&format!(" after {failures} failed attempts"));
                }
                tracing::info!(host = %t.host, "dynamic DNS: {message}");
                (EventKind::DnsUpdate, before, message)
            }
            Err(f) => {
                let r = self.tracker.failed(key, &f.code, now);
                let message = format!(
                    "{rtype} {} → {addr} failed: {f}; retrying in {}",
                    t.name,
                    human(r.after)
                );
                self.shared.with_record(&t.name, rtype, |s| {
                    s.last_failure_ms = Some(now_ms());
                    s.last_error = Some(f.to_string());
                });
                if !r.report {
                    tracing::debug!(host = %t.host, attempt = r.attempt, "dynamic DNS: {message}");
                    return;
                }
                tracing::warn!(host = %t.host, attempt = r.attempt, "dynamic DNS: {message}");
                let before = self.tracker.slot(key).and_then(|s| s.current);
                (EventKind::DnsUpdateFailed, before, message)
            }
        };
        self.emitter.emit(Event {
            id: 0,
            ts_ms: now_ms(),
            host: t.host.clone(),
            kind,
            key: None,
            from: from.map(|a| a.to_string()),
            to: Some(addr.to_string()),
            message,
        });
    }

    /// Copies what the tracker knows into the status the API shows.
    fn publish_status(&self) {
        let mut map = self.shared.lock_status();
        for (i, t) in self.targets.iter().enumerate() {
            let e = map.entry(t.name.clone()).or_insert_with(|| NameStatus {
                host: t.host.clone(),
                zone: t.zone.clone(),
                ttl: t.ttl,
                records: BTreeMap::new(),
            });
            for rtype in [RType::A, RType::Aaaa] {
                let slot = self.tracker.slot((i, rtype));
                let r = e.records.entry(rtype.as_str()).or_default();
                r.address = slot.and_then(|s| s.current);
                r.pending = slot.and_then(|s| s.pending());
                r.failures = slot.map_or(0, |s| s.failures);
            }
        }
    }
}

fn by_host(targets: &[Target]) -> HashMap<String, usize> {
    targets
        .iter()
        .enumerate()
        .map(|(i, t)| (t.host.clone(), i))
        .collect()
}

impl Backend {
    fn update(&self, t: &Target, addr: IpAddr) -> Result<String, Failure> {
        match self {
            Backend::Rfc2136(c) => c.update(t, addr),
            Backend::Dyndns2(c) => c.update(t, addr).map(|code| format!("dyndns2: {code}")),
        }
    }
}
