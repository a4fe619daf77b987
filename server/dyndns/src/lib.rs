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

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{SyncSender, TrySendError};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde::Serialize;

pub use config::{DynDnsHost, DynDnsHosts, DyndnsConfig, Settings};

use hbd_core::sink::{Emitter, Sink};
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
    backend: Mutex<String>,
    /// Whether `dyndnshosts` names anything (else `/api/v1/dns` is 404, the status null).
    configured: AtomicBool,
    dropped: AtomicU64,
    ignored_unverified: AtomicU64,
    /// New settings a reload left for the updater, taken before its next step.
    reconfig: Mutex<Option<updater::Reconfig>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Plain data: a panic elsewhere cannot leave it in a state worse than stale.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Shared {
    fn lock_status(&self) -> MutexGuard<'_, BTreeMap<String, NameStatus>> {
        lock(&self.status)
    }

    fn with_record(&self, name: &str, rtype: RType, f: impl FnOnce(&mut RecordStatus)) {
        if let Some(n) = self.lock_status().get_mut(name) {
            f(n.records.entry(rtype.as_str()).or_default());
        }
    }

    fn take_reconfig(&self) -> Option<updater::Reconfig> {
        lock(&self.reconfig).take()
    }

    fn json(&self) -> serde_json::Value {
        serde_json::json!({
            "backend": *lock(&self.backend),
            "records": *self.lock_status(),
            "queue_dropped": self.dropped.load(Ordering::Relaxed),
            "ignored_unverified": self.ignored_unverified.load(Ordering::Relaxed),
        })
    }
}

/// One name in `dyndnshosts`, as the ingest side sees it.
struct HostEntry {
    allow_unsigned: bool,
    /// The last address queued per family (IPv4, IPv6), so a steady host costs one
    /// lookup per heartbeat and nothing more.
    queued: Mutex<[Option<IpAddr>; 2]>,
    warned_unverified: AtomicBool,
}

/// What heartbeats are matched against; replaced whole by a reload.
#[derive(Default)]
struct Ingest {
    hosts: HashMap<String, HostEntry>,
    /// To the updater (None until one runs).
    tx: Option<SyncSender<updater::Observed>>,
}

impl Ingest {
    fn new(settings: Option<&Settings>, tx: Option<SyncSender<updater::Observed>>) -> Ingest {
        let hosts = settings
            .map(|s| {
                s.targets
                    .iter()
                    .map(|t| {
                        (
                            t.host.clone(),
                            HostEntry {
                                allow_unsigned: t.allow_unsigned,
                                queued: Mutex::new([None, None]),
                                warned_unverified: AtomicBool::new(false),
                            },
                        )
                    })
                    .collect()
            })
            .unwrap_or_default();
        Ingest { hosts, tx }
    }
}

/// The updater thread, once one runs.
struct Running {
    tx: SyncSender<updater::Observed>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

/// What a reload changes, behind one lock (reloads are applied one at a time).
#[derive(Default)]
struct Control {
    /// The settings in force; None while `dyndnshosts` is empty.
    settings: Option<Settings>,
    /// The updater keeps running (idle) when a reload empties `dyndnshosts`.
    running: Option<Running>,
    /// The last settings handed to the updater (its timeout bounds shutdown).
    last: Option<Settings>,
    stopped: bool,
}

/// The dynamic DNS subsystem. Always present, idle while `dyndnshosts` is empty, so a
/// reload can add names; the updater thread starts with the first name.
pub struct DynDns {
    ingest: RwLock<Arc<Ingest>>,
    shared: Arc<Shared>,
    control: Mutex<Control>,
    store: PathBuf,
    emitter: Emitter,
}

fn backend(settings: &Settings) -> Backend {
    match &settings.backend {
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
            password.expose(),
            settings.timeout,
        )),
    }
}

/// Starts dynamic DNS: the updater when `dyndnshosts` is set, else an idle sink.
pub fn start(
    config: &DyndnsConfig,
    data_dir: &Path,
    emitter: Emitter,
) -> anyhow::Result<Arc<DynDns>> {
    let dns = Arc::new(DynDns {
        ingest: RwLock::new(Arc::new(Ingest::default())),
        shared: Arc::new(Shared {
            status: Mutex::new(BTreeMap::new()),
            backend: Mutex::new(String::new()),
            configured: AtomicBool::new(false),
            dropped: AtomicU64::new(0),
            ignored_unverified: AtomicU64::new(0),
            reconfig: Mutex::new(None),
        }),
        control: Mutex::new(Control::default()),
        store: store::path(data_dir),
        emitter,
    });
    dns.apply(config)
        .map_err(|e| anyhow::anyhow!("dynamic DNS: {e}"))?;
    Ok(dns)
}

/// Addresses a DNS record must never get.
fn usable(addr: IpAddr) -> bool {
    !(addr.is_unspecified() || addr.is_multicast())
}

impl DynDns {
    /// Applies new `dyndnshosts`, server, key, dyndns2 account and timings. What each
    /// record holds is kept per DNS name: an unchanged record is not sent again.
    pub fn reload(&self, config: &DyndnsConfig) -> Result<(), String> {
        self.apply(config)
            .map_err(|e| format!("{e}; the running dynamic DNS settings stay"))
    }

    /// `/api/v1/dns`: every record's state; `None` when `dyndnshosts` is empty.
    pub fn records(&self) -> Option<serde_json::Value> {
        self.shared
            .configured
            .load(Ordering::Relaxed)
            .then(|| self.shared.json())
    }

    fn ingest(&self) -> Arc<Ingest> {
        self.ingest
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    fn set_ingest(&self, i: Ingest) {
        *self.ingest.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(i);
    }

    /// Puts the DNS settings of `config` in force; on error the old ones stay.
    fn apply(&self, config: &DyndnsConfig) -> Result<(), String> {
        // Reads the key file: a reload fails here, before anything changed.
        let new = Settings::from_config(config)?;
        let mut c = lock(&self.control);
        if c.stopped {
            return Err("dynamic DNS is stopping".into());
        }
        if c.settings == new {
            return Ok(());
        }
        let old = c.settings.clone();
        match &new {
            None => {
                // Idle: heartbeats match nothing; a running updater keeps its state
                // (and the saved records) with no names to update.
                if let (Some(_), Some(last)) = (&c.running, c.last.clone()) {
                    let idle = Settings {
                        targets: Vec::new(),
                        ..last.clone()
                    };
                    self.hand_over(idle.clone(), &last);
                    c.last = Some(idle);
                }
                self.set_ingest(Ingest::new(None, c.running.as_ref().map(|r| r.tx.clone())));
                self.shared.configured.store(false, Ordering::Relaxed);
                lock(&self.shared.status).clear();
                if old.is_some() {
                    tracing::info!("dynamic DNS: no dyndnshosts any more; idle");
                }
            }
            Some(s) => {
                match &c.last {
                    Some(last) if c.running.is_some() => {
                        self.hand_over(s.clone(), last);
                    }
                    _ => {
                        let running = self.spawn(s)?;
                        c.running = Some(running);
                    }
                }
                c.last = Some(s.clone());
                let tx = c.running.as_ref().map(|r| r.tx.clone());
                // After the hand-over: an address queued from now on finds its host
                // known to the updater.
                self.set_ingest(Ingest::new(Some(s), tx));
                *lock(&self.shared.backend) = backend(s).describe();
                self.shared.configured.store(true, Ordering::Relaxed);
                match &old {
                    None => tracing::info!(
                        names = s.targets.len(),
                        backend = %lock(&self.shared.backend),
                        "dynamic DNS started"
                    ),
                    Some(o) => tracing::info!(
                        names = s.targets.len(),
                        backend = %lock(&self.shared.backend),
                        "dynamic DNS settings reloaded: {}",
                        describe_changes(o, s)
                    ),
                }
            }
        }
        c.settings = new;
        Ok(())
    }

    /// Leaves `new` for the running updater, which applies it before its next step.
    fn hand_over(&self, new: Settings, last: &Settings) {
        let b = backend(&new);
        let mut slot = lock(&self.shared.reconfig);
        // A reload the updater has not taken yet may have changed the server already.
        let backend_changed =
            new.backend != last.backend || slot.as_ref().is_some_and(|r| r.backend_changed);
        *slot = Some(updater::Reconfig {
            settings: new,
            backend: b,
            backend_changed,
        });
    }

    fn spawn(&self, settings: &Settings) -> Result<Running, String> {
        let b = backend(settings);
        *lock(&self.shared.backend) = b.describe();
        let (tx, rx) = std::sync::mpsc::sync_channel(QUEUE);
        let stop = Arc::new(AtomicBool::new(false));
        let worker = updater::Worker::new(
            settings,
            b,
            self.store.clone(),
            self.emitter.clone(),
            self.shared.clone(),
        );
        let thread = {
            let stop = stop.clone();
            std::thread::Builder::new()
                .name("dyndns".into())
                .spawn(move || worker.run(rx, stop))
                .map_err(|e| format!("cannot start the dynamic DNS thread: {e}"))?
        };
        Ok(Running {
            tx,
            stop,
            thread: Some(thread),
        })
    }
}

/// What changed between two settings, for the log (no secrets).
fn describe_changes(old: &Settings, new: &Settings) -> String {
    let mut out = Vec::new();
    let names = |s: &Settings| -> BTreeMap<String, config::Target> {
        s.targets
            .iter()
            .map(|t| (t.name.clone(), t.clone()))
            .collect()
    };
    let (o, n) = (names(old), names(new));
    let added: Vec<&str> = n
        .keys()
        .filter(|k| !o.contains_key(*k))
        .map(String::as_str)
        .collect();
    let removed: Vec<&str> = o
        .keys()
        .filter(|k| !n.contains_key(*k))
        .map(String::as_str)
        .collect();
    let changed: Vec<&str> = n
        .iter()
        .filter(|(k, t)| o.get(*k).is_some_and(|x| x != *t))
        .map(|(k, _)| k.as_str())
        .collect();
    if !added.is_empty() {
        out.push(format!("names added: {}", added.join(", ")));
    }
    if !removed.is_empty() {
        out.push(format!(
            "names removed (their records are left as they are): {}",
            removed.join(", ")
        ));
    }
    if !changed.is_empty() {
        out.push(format!("names changed: {}", changed.join(", ")));
    }
    if old.backend != new.backend {
        out.push("server or credentials".into());
    }
    if (old.debounce, old.min_interval, old.timeout)
        != (new.debounce, new.min_interval, new.timeout)
    {
        out.push("timings".into());
    }
    if out.is_empty() {
        "nothing changed".into()
    } else {
        out.join("; ")
    }
}

impl Sink for DynDns {
    fn name(&self) -> &'static str {
        "dyndns"
    }

    fn heartbeat(&self, host: &str, addr: IpAddr, verified: bool) {
        let ingest = self.ingest();
        let Some(h) = ingest.hosts.get(host) else {
            return;
        };
        if !verified && !h.allow_unsigned {
            self.shared
                .ignored_unverified
                .fetch_add(1, Ordering::Relaxed);
            if !h.warned_unverified.swap(true, Ordering::Relaxed) {
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
        let Some(tx) = &ingest.tx else {
            return;
        };
        let family = usize::from(addr.is_ipv6());
        let mut last = lock(&h.queued);
        if last[family] == Some(addr) {
            return;
        }
        match tx.try_send(updater::Observed {
            host: host.to_string(),
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

    fn status(&self) -> serde_json::Value {
        if !self.shared.configured.load(Ordering::Relaxed) {
            return serde_json::Value::Null;
        }
        self.shared.json()
    }

    fn shutdown(&self) {
        let (running, timeout) = {
            let mut c = lock(&self.control);
            c.stopped = true;
            (
                c.running.take(),
                c.last.as_ref().map_or(Duration::ZERO, |s| s.timeout),
            )
        };
        let Some(mut running) = running else {
            return;
        };
        running.stop.store(true, Ordering::Relaxed);
        let Some(handle) = running.thread.take() else {
            return;
        };
        // An update in flight ends within its timeout (UDP, then TCP).
        let limit = Instant::now() + timeout * 2 + Duration::from_secs(1);
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

    fn sink(yaml: &str, dir: &Path) -> (Arc<dyn Sink>, hbd_core::sink::Emitted) {
        let c = crate::DyndnsConfig::from_yaml(yaml, Path::new("t.yaml")).expect("config");
        let (emitter, rx) = Emitter::channel(16);
        (start(&c, dir, emitter).expect("start"), rx)
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

#[cfg(test)]
mod reload_tests {
    //! Reloads against a dyndns2 stand-in that records every update it gets.

    use super::*;
    use std::io::{BufRead, BufReader, Write};
    use std::net::TcpListener;

    struct Provider {
        url: String,
        /// `hostname=...&myip=... <Authorization>` per request.
        requests: Arc<Mutex<Vec<String>>>,
        stop: Arc<AtomicBool>,
        thread: Option<JoinHandle<()>>,
    }

    impl Provider {
        fn start() -> Provider {
            let l = TcpListener::bind("127.0.0.1:0").expect("bind");
            l.set_nonblocking(true).expect("nonblocking");
            let url = format!("http://{}/nic/update", l.local_addr().expect("addr"));
            let requests = Arc::new(Mutex::new(Vec::new()));
            let stop = Arc::new(AtomicBool::new(false));
            let (r, st) = (requests.clone(), stop.clone());
            let thread = std::thread::spawn(move || {
                while !st.load(Ordering::Relaxed) {
                    let Ok((s, _)) = l.accept() else {
                        std::thread::sleep(Duration::from_millis(5));
                        continue;
                    };
                    s.set_nonblocking(false).expect("blocking");
                    let mut reader = BufReader::new(s.try_clone().expect("clone"));
                    let (mut first, mut auth) = (String::new(), String::new());
                    loop {
                        let mut line = String::new();
                        if reader.read_line(&mut line).unwrap_or(0) == 0 || line.trim().is_empty() {
                            break;
                        }
                        if first.is_empty() {
                            first = line.trim().to_string();
                        } else if let Some(v) = line
                            .trim()
                            .strip_prefix("Authorization: ")
                            .or_else(|| line.trim().strip_prefix("authorization: "))
                        {
                            auth = v.to_string();
                        }
                    }
                    let query = first
                        .split_whitespace()
                        .nth(1)
                        .and_then(|p| p.split_once('?'))
                        .map(|(_, q)| q.to_string())
                        .unwrap_or_default();
                    let body = "good";
                    let mut s = s;
                    let _ = write!(
                        s,
                        "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{body}",
                        body.len()
                    );
                    lock(&r).push(format!("{query} {auth}"));
                }
            });
            Provider {
                url,
                requests,
                stop,
                thread: Some(thread),
            }
        }

        fn requests(&self) -> Vec<String> {
            lock(&self.requests).clone()
        }

        /// Waits for the `n`th request and returns it.
        fn wait(&self, n: usize) -> String {
            let deadline = Instant::now() + Duration::from_secs(10);
            loop {
                if let Some(r) = self.requests().get(n - 1) {
                    return r.clone();
                }
                assert!(
                    Instant::now() < deadline,
                    "no request {n}: {:?}",
                    self.requests()
                );
                std::thread::sleep(Duration::from_millis(10));
            }
        }

        /// Gives the updater time to send what it would send, then checks the count.
        fn assert_count(&self, n: usize, why: &str) {
            std::thread::sleep(Duration::from_millis(400));
            assert_eq!(self.requests().len(), n, "{why}: {:?}", self.requests());
        }
    }

    impl Drop for Provider {
        fn drop(&mut self) {
            self.stop.store(true, Ordering::Relaxed);
            if let Some(t) = self.thread.take() {
                let _ = t.join();
            }
        }
    }

    fn config(p: &Provider, password: &str, hosts: &str) -> crate::DyndnsConfig {
        let yaml = format!(
            "secret: s\ndyndns2_url: {}\ndyndns2_user: u\ndyndns2_password: {password}\n\
             dns_zone: dyn.test\ndns_debounce: 0s\ndns_min_interval: 0s\n{hosts}",
            p.url
        );
        crate::DyndnsConfig::from_yaml(&yaml, Path::new("t.yaml")).expect("config")
    }

    fn auth(password: &str) -> String {
        use base64::Engine;
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("u:{password}"))
        )
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("ip")
    }

    #[test]
    fn reloads_apply_names_and_credentials_without_sending_unchanged_records_again() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = Provider::start();
        let (emitter, _rx) = Emitter::channel(64);
        let dns = start(
            &config(&p, "p1", "dyndnshosts: [web1]\n"),
            dir.path(),
            emitter,
        )
        .expect("start");
        dns.heartbeat("web1", ip("10.0.0.1"), true);
        assert_eq!(
            p.wait(1),
            format!("hostname=web1.dyn.test&myip=10.0.0.1 {}", auth("p1"))
        );

        // Unchanged: nothing happens.
        dns.reload(&config(&p, "p1", "dyndnshosts: [web1]\n"))
            .expect("same config");
        // A name added; the one already set is not sent again.
        dns.reload(&config(&p, "p1", "dyndnshosts: [web1, web2]\n"))
            .expect("added");
        dns.heartbeat("web1", ip("10.0.0.1"), true);
        dns.heartbeat("web2", ip("10.0.0.2"), true);
        assert_eq!(
            p.wait(2),
            format!("hostname=web2.dyn.test&myip=10.0.0.2 {}", auth("p1"))
        );
        p.assert_count(2, "web1 holds 10.0.0.1 already");
        let st = dns.status();
        assert_eq!(
            st["records"]["web1.dyn.test."]["records"]["A"]["address"], "10.0.0.1",
            "{st}"
        );

        // New password, web1 gone: web1 is not watched, web2 updated with the new account.
        dns.reload(&config(&p, "p2", "dyndnshosts: [web2]\n"))
            .expect("changed");
        dns.heartbeat("web1", ip("10.0.0.9"), true);
        dns.heartbeat("web2", ip("10.0.0.3"), true);
        assert_eq!(
            p.wait(3),
            format!("hostname=web2.dyn.test&myip=10.0.0.3 {}", auth("p2"))
        );
        p.assert_count(3, "web1 is no longer in dyndnshosts");
        let st = dns.status();
        assert!(st["records"]["web1.dyn.test."].is_null(), "{st}");

        // A key file that cannot be read: an error, and the running settings stay.
        let bad = crate::DyndnsConfig::from_yaml(
            "secret: s\ndns_server: 127.0.0.1:9\ndns_zone: dyn.test\n\
             dns_tsig_keyfile: /nonexistent/hbd.key\ndyndnshosts: [web2]\n",
            Path::new("t.yaml"),
        )
        .expect("valid config");
        let e = dns.reload(&bad).expect_err("unreadable key file");
        assert!(
            e.contains("/nonexistent/hbd.key") && e.contains("stay"),
            "{e}"
        );
        assert!(dns.status()["backend"]
            .as_str()
            .is_some_and(|b| b.starts_with("dyndns2")));
        dns.heartbeat("web2", ip("10.0.0.4"), true);
        assert!(p
            .wait(4)
            .starts_with("hostname=web2.dyn.test&myip=10.0.0.4 "));

        // No names: idle. Back again: what was last set is remembered, nothing re-sent.
        dns.reload(&config(&p, "p2", "")).expect("idle");
        assert!(dns.status().is_null());
        dns.heartbeat("web2", ip("10.0.0.5"), true);
        p.assert_count(4, "idle");
        dns.reload(&config(&p, "p2", "dyndnshosts: [web2]\n"))
            .expect("back");
        dns.heartbeat("web2", ip("10.0.0.4"), true);
        p.assert_count(4, "web2 holds 10.0.0.4 already");
        // A TTL change writes the record again.
        dns.reload(&config(&p, "p2", "dyndnshosts: {web2: {ttl: 30}}\n"))
            .expect("ttl");
        assert!(p
            .wait(5)
            .starts_with("hostname=web2.dyn.test&myip=10.0.0.4 "));
        dns.shutdown();
    }

    #[test]
    fn idle_at_start_until_a_reload_adds_names() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = Provider::start();
        let (emitter, _rx) = Emitter::channel(64);
        let dns = start(&config(&p, "p1", ""), dir.path(), emitter).expect("start");
        assert!(dns.status().is_null());
        assert!(lock(&dns.control).running.is_none(), "no thread while idle");
        dns.heartbeat("web1", ip("10.0.0.1"), true);
        dns.reload(&config(&p, "p1", "dyndnshosts: [web1]\n"))
            .expect("added");
        assert_eq!(dns.status()["backend"], format!("dyndns2 {}", p.url));
        dns.heartbeat("web1", ip("10.0.0.1"), true);
        assert!(p
            .wait(1)
            .starts_with("hostname=web1.dyn.test&myip=10.0.0.1 "));
        dns.shutdown();
        assert!(dns
            .reload(&config(&p, "p1", "dyndnshosts: [web2]\n"))
            .is_err());
    }
}
