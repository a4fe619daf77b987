//! Dynamic DNS: keeps the A/AAAA records of the hosts in `dyndnshosts` pointing at the
//! source address of their verified heartbeats, by RFC 2136 UPDATE signed with TSIG (or
//! the dyndns2 HTTP protocol). See docs/dyndns.md.
//!
//! A [`Sink`]: `heartbeat` only looks the host up and queues a changed address (bounded,
//! never blocking ingest); one updater thread debounces, updates, retries with backoff
//! and journals `dns_update` / `dns_update_failed` events. DNS names come from the
//! config only: a heartbeat chooses nothing but the address, and only when it was
//! verified (or its host opted in with `allow_unsigned`).

pub mod config;
mod dyndns2;
mod rfc2136;
mod store;
mod tracker;
pub mod tsig;
mod updater;
pub mod wire;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::net::IpAddr;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{SyncSender, TrySendError};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use actix_web::{web, HttpResponse};
use anyhow::Context;
use serde::Serialize;

pub use config::{DynDnsHost, DynDnsHosts, Settings};

use crate::sink::{Emitter, Sink};
use wire::RType;

/// Changed addresses waiting for the updater; beyond this they are dropped and counted.
const QUEUE: usize = 1024;

/// Why an update or query did not succeed: a short code (`NOTAUTH/BADSIG`, `REFUSED`,
/// `TIMEOUT`, `UNREACHABLE`, `badauth`, ...) and what it means here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub code: String,
    pub detail: String,
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.code, self.detail)
    }
}

/// Where updates are sent.
pub(crate) enum Backend {
    Rfc2136(rfc2136::Client),
    Dyndns2(dyndns2::Client),
}

impl Backend {
    fn describe(&self) -> String {
        match self {
            Backend::Rfc2136(c) => format!("rfc2136 {}", c.server()),
            Backend::Dyndns2(c) => format!("dyndns2 {}", c.url()),
        }
    }
}

/// One record's state, as `/api/v1/dns` and `/healthz` show it.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RecordStatus {
    /// What the record holds, as far as hbd knows.
    pub address: Option<IpAddr>,
    /// A newer source address not written yet (debounce, rate limit or retry).
    pub pending: Option<IpAddr>,
    pub last_success_ms: Option<u64>,
    pub last_failure_ms: Option<u64>,
    pub last_error: Option<String>,
    /// Failed attempts since the last success.
    pub failures: u32,
}

#[derive(Debug, Clone, Serialize)]
pub struct NameStatus {
    pub host: String,
    pub zone: String,
    pub ttl: u32,
    /// `A`, `AAAA`.
    pub records: BTreeMap<&'static str, RecordStatus>,
}

/// State shared by the sink (ingest side, API) and the updater thread.
pub struct Shared {
    status: Mutex<BTreeMap<String, NameStatus>>,
    backend: String,
    dropped: AtomicU64,
    ignored_unverified: AtomicU64,
}

impl Shared {
    fn lock_status(&self) -> MutexGuard<'_, BTreeMap<String, NameStatus>> {
        // Plain data: a panic elsewhere cannot leave it in a state worse than stale.
        self.status.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn with_record(&self, name: &str, rtype: RType, f: impl FnOnce(&mut RecordStatus)) {
        if let Some(n) = self.lock_status().get_mut(name) {
            f(n.records.entry(rtype.as_str()).or_default());
        }
    }

    fn json(&self) -> serde_json::Value {
        serde_json::json!({
            "backend": self.backend,
            "records": *self.lock_status(),
            "queue_dropped": self.dropped.load(Ordering::Relaxed),
            "ignored_unverified": self.ignored_unverified.load(Ordering::Relaxed),
        })
    }
}

/// The dynamic DNS subsystem.
pub struct DynDns {
    by_host: HashMap<String, usize>,
    allow_unsigned: Vec<bool>,
    tx: SyncSender<updater::Observed>,
    /// The last address queued per target and family, so a steady host costs one
    /// lookup per heartbeat and nothing more.
    queued: Mutex<Vec<[Option<IpAddr>; 2]>>,
    warned_unverified: Mutex<HashSet<usize>>,
    shared: Arc<Shared>,
    stop: Arc<AtomicBool>,
    thread: Mutex<Option<JoinHandle<()>>>,
    timeout: Duration,
}

/// Starts dynamic DNS when `dyndnshosts` is set.
pub fn start(
    config: &crate::config::Config,
    data_dir: &Path,
    emitter: Emitter,
) -> anyhow::Result<Option<Arc<dyn Sink>>> {
    let Some(settings) =
        Settings::from_config(config).map_err(|e| anyhow::anyhow!("dynamic DNS: {e}"))?
    else {
        return Ok(None);
    };
    let backend = match &settings.backend {
        config::Backend::Rfc2136 { server, key } => Backend::Rfc2136(rfc2136::Client::new(
            server.clone(),
            key.clone(),
            settings.timeout,
        )),
        config::Backend::Dyndns2 {
            url,
            user,
            password,
        } => Backend::Dyndns2(dyndns2::Client::new(
            url.clone(),
            user,
            password,
            settings.timeout,
        )),
    };
    let shared = Arc::new(Shared {
        status: Mutex::new(BTreeMap::new()),
        backend: backend.describe(),
        dropped: AtomicU64::new(0),
        ignored_unverified: AtomicU64::new(0),
    });
    let (tx, rx) = std::sync::mpsc::sync_channel(QUEUE);
    let stop = Arc::new(AtomicBool::new(false));
    let worker = updater::Worker::new(
        &settings,
        backend,
        store::path(data_dir),
        emitter,
        shared.clone(),
    );
    let thread = {
        let stop = stop.clone();
        std::thread::Builder::new()
            .name("dyndns".into())
            .spawn(move || worker.run(rx, stop))
            .context("cannot start the dynamic DNS thread")?
    };
    tracing::info!(
        names = settings.targets.len(),
        backend = %shared.backend,
        "dynamic DNS started"
    );
    Ok(Some(Arc::new(DynDns {
        by_host: settings
            .targets
            .iter()
            .enumerate()
            .map(|(i, t)| (t.host.clone(), i))
            .collect(),
        allow_unsigned: settings.targets.iter().map(|t| t.allow_unsigned).collect(),
        tx,
        queued: Mutex::new(vec![[None, None]; settings.targets.len()]),
        warned_unverified: Mutex::new(HashSet::new()),
        shared,
        stop,
        thread: Mutex::new(Some(thread)),
        timeout: settings.timeout,
    })))
}

/// Addresses a DNS record must never get.
fn usable(addr: IpAddr) -> bool {
    !(addr.is_unspecified() || addr.is_multicast())
}

impl Sink for DynDns {
    fn name(&self) -> &'static str {
        "dyndns"
    }

    fn heartbeat(&self, host: &str, addr: IpAddr, verified: bool) {
        let Some(&i) = self.by_host.get(host) else {
            return;
        };
        if !verified && !self.allow_unsigned.get(i).copied().unwrap_or(false) {
            self.shared
                .ignored_unverified
                .fetch_add(1, Ordering::Relaxed);
            let mut warned = self
                .warned_unverified
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            if warned.insert(i) {
                tracing::warn!(
                    host,
                    %addr,
                    "dynamic DNS: ignoring an unverified heartbeat (set `secret`, or \
                     allow_unsigned for this host)"
                );
            }
            return;
        }
        // An IPv4 heartbeat on a dual-stack socket arrives as ::ffff:a.b.c.d.
        let addr = addr.to_canonical();
        if !usable(addr) {
            return;
        }
        let family = usize::from(addr.is_ipv6());
        let mut queued = self.queued.lock().unwrap_or_else(|p| p.into_inner());
        let Some(last) = queued.get_mut(i) else {
            return;
        };
        if last[family] == Some(addr) {
            return;
        }
        match self.tx.try_send(updater::Observed {
            target: i,
            addr,
            at: Instant::now(),
        }) {
            Ok(()) => last[family] = Some(addr),
            Err(TrySendError::Full(_)) => {
                self.shared.dropped.fetch_add(1, Ordering::Relaxed);
            }
            Err(TrySendError::Disconnected(_)) => {}
        }
    }

    fn configure(&self, cfg: &mut web::ServiceConfig) {
        let shared = self.shared.clone();
        cfg.route(
            "/api/v1/dns",
            web::get().to(move || {
                let body = shared.json();
                async move { HttpResponse::Ok().json(body) }
            }),
        );
    }

    fn status(&self) -> serde_json::Value {
        self.shared.json()
    }

    fn shutdown(&self) {
        self.stop.store(true, Ordering::Relaxed);
        let handle = self.thread.lock().unwrap_or_else(|p| p.into_inner()).take();
        let Some(handle) = handle else {
            return;
        };
        // An update in flight ends within its timeout (UDP, then TCP).
        let limit = Instant::now() + self.timeout * 2 + Duration::from_secs(1);
        while !handle.is_finished() {
            if Instant::now() >= limit {
                tracing::warn!("dynamic DNS: the updater did not stop in time; leaving it");
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = handle.join();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sink(
        yaml: &str,
        dir: &Path,
    ) -> (
        Arc<dyn Sink>,
        std::sync::mpsc::Receiver<crate::event::Event>,
    ) {
        let (c, _) = crate::config::Config::parse(yaml, Path::new("t.yaml")).expect("config");
        let (emitter, rx) = Emitter::channel(16);
        (
            start(&c, dir, emitter).expect("start").expect("configured"),
            rx,
        )
    }

    #[test]
    fn unverified_heartbeats_move_nothing_without_opt_in() {
        let dir = tempfile::tempdir().expect("tempdir");
        // Nothing listens on port 9: the start-up check fails at once.
        let yaml = "secret: s\ndns_server: 127.0.0.1:9\ndns_zone: dyn.test\n\
                    dns_tsig_name: k\ndns_tsig_secret: c2VjcmV0\ndns_debounce: 0s\n\
                    dyndnshosts: [web1]\n";
        let (s, _rx) = sink(yaml, dir.path());
        s.heartbeat("web1", "10.0.0.1".parse().expect("ip"), false);
        s.heartbeat("web1", "10.0.0.1".parse().expect("ip"), false);
        s.heartbeat("other", "10.0.0.1".parse().expect("ip"), true);
        let st = s.status();
        assert_eq!(st["ignored_unverified"], 2, "{st}");
        assert_eq!(st["backend"], "rfc2136 127.0.0.1:9");
        s.shutdown();
        s.shutdown();
    }

    #[test]
    fn mapped_addresses_are_canonical_and_steady_hosts_queue_once() {
        let dir = tempfile::tempdir().expect("tempdir");
        let yaml = "secret: s\ndns_server: 127.0.0.1:9\ndns_zone: dyn.test\n\
                    dns_tsig_name: k\ndns_tsig_secret: c2VjcmV0\ndns_debounce: 1h\n\
                    dyndnshosts: [web1]\n";
        let (s, _rx) = sink(yaml, dir.path());
        for _ in 0..5 {
            s.heartbeat("web1", "::ffff:10.0.0.7".parse().expect("ip"), true);
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let st = s.status();
            if st["records"]["web1.dyn.test."]["records"]["A"]["pending"] == "10.0.0.7" {
                assert!(st["records"]["web1.dyn.test."]["records"]["AAAA"]["pending"].is_null());
                break;
            }
            assert!(Instant::now() < deadline, "never pending: {st}");
            std::thread::sleep(Duration::from_millis(20));
        }
        s.shutdown();
    }
}
