//! Heartbeats with a short interval (so DOWN comes within about a second) and levels,
//! and hbd configs for the notification tests.

use std::net::UdpSocket;
use std::time::Duration;

use crate::util::{config, Hbd};

/// Heartbeat interval of the crafted heartbeats: DOWN 1.2 s after the last one
/// (interval + 1 s is the registry's minimum deadline).
pub const INTERVAL_MS: u32 = 200;

/// Sends heartbeats to one hbd, keeping a sequence number per host.
pub struct Beats {
    sock: UdpSocket,
    seq: std::collections::HashMap<String, u64>,
    interval_ms: u32,
}

/// One reading: key, value, level, threshold.
pub type Reading<'a> = (&'a str, f64, hb_proto::Level, &'a str);

impl Beats {
    pub fn new() -> Beats {
        Beats::with_interval(INTERVAL_MS)
    }

    /// Heartbeats announcing another interval (a longer one: more time before DOWN).
    pub fn with_interval(interval_ms: u32) -> Beats {
        Beats {
            sock: UdpSocket::bind("127.0.0.1:0").expect("udp socket"),
            seq: Default::default(),
            interval_ms,
        }
    }

    pub fn send(
        &mut self,
        hbd: &Hbd,
        host: &str,
        level: hb_proto::Level,
        readings: &[Reading<'_>],
    ) {
        let seq = self.seq.entry(host.to_string()).or_insert(0);
        *seq += 1;
        let hb = hb_proto::Heartbeat {
            host: host.into(),
            instance: 1,
            seq: *seq,
            sent_ms: hbd::state::now_ms(),
            interval_ms: self.interval_ms,
            level,
            readings: readings
                .iter()
                .map(|(key, v, l, t)| hb_proto::Reading {
                    key: (*key).into(),
                    value: hb_proto::Value::F64(*v),
                    unit: "%".into(),
                    level: *l,
                    message: String::new(),
                    threshold: (*t).into(),
                })
                .collect(),
        };
        let d = hb_proto::encode(&hb, None, 65_000)
            .expect("encode")
            .remove(0);
        self.sock.send_to(&d, hbd.udp).expect("send heartbeat");
    }

    /// An OK heartbeat.
    pub fn ok(&mut self, hbd: &Hbd, host: &str) {
        self.send(hbd, host, hb_proto::Level::Ok, &[]);
    }

    /// `n` OK heartbeats, 50 ms apart.
    pub fn ok_for(&mut self, hbd: &Hbd, host: &str, n: usize) {
        for _ in 0..n {
            self.ok(hbd, host);
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// Fast retries and no storm window, plus `extra` YAML.
pub fn notify_config(extra: &str) -> hbd::config::Config {
    config(&format!(
        "api_token: test-token-123\nnotify_retry_min: 100ms\nnotify_retry_max: 400ms\nnotify_storm_window: 0s\nnotify_up_after: 1\ndashboard_url: http://dash.test:50004\n{extra}"
    ))
}

/// Waits for the host's status in the registry.
pub fn wait_status(hbd: &Hbd, host: &str, status: &str) {
    hbd.wait_for(
        Duration::from_secs(10),
        &format!("{host} is {status}"),
        |h| h.status(host).as_deref() == Some(status),
    );
}

/// Polls `f` until it returns Some, or panics naming `what`.
pub fn eventually<T>(limit: Duration, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let start = std::time::Instant::now();
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(
            start.elapsed() < limit,
            "timed out after {limit:?} waiting for: {what}"
        );
        std::thread::sleep(Duration::from_millis(25));
    }
}

/// The notification status of the one channel named `name`.
pub fn channel(hbd: &Hbd, name: &str) -> serde_json::Value {
    let (code, body) = hbd.get("/api/v1/notify/channels");
    assert_eq!(code, 200, "{body}");
    body["channels"]
        .as_array()
        .and_then(|a| a.iter().find(|c| c["name"] == name).cloned())
        .unwrap_or_else(|| panic!("no channel {name} in {body}"))
}

/// Keeps some hosts beating every interval from a background thread (while the test
/// stops and restarts hbd or the SMTP server).
pub struct Keeper {
    alive: std::sync::Arc<std::sync::Mutex<std::collections::BTreeSet<String>>>,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Keeper {
    pub fn start(udp: std::net::SocketAddr) -> Keeper {
        let alive = std::sync::Arc::new(std::sync::Mutex::new(
            std::collections::BTreeSet::<String>::new(),
        ));
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (a, s) = (alive.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            let sock = UdpSocket::bind("127.0.0.1:0").expect("udp socket");
            let mut seq = 0u64;
            while !s.load(std::sync::atomic::Ordering::Relaxed) {
                seq += 1;
                let hosts: Vec<String> = a.lock().expect("lock").iter().cloned().collect();
                for host in hosts {
                    let hb = hb_proto::Heartbeat {
                        host,
                        instance: 1,
                        seq,
                        sent_ms: hbd::state::now_ms(),
                        interval_ms: INTERVAL_MS,
                        level: hb_proto::Level::Ok,
                        readings: Vec::new(),
                    };
                    let d = hb_proto::encode(&hb, None, 65_000)
                        .expect("encode")
                        .remove(0);
                    let _ = sock.send_to(&d, udp);
                }
                std::thread::sleep(Duration::from_millis(u64::from(INTERVAL_MS)));
            }
        });
        Keeper {
            alive,
            stop,
            thread: Some(thread),
        }
    }

    pub fn set(&self, host: &str, alive: bool) {
        let mut a = self.alive.lock().expect("lock");
        if alive {
            a.insert(host.to_string());
        } else {
            a.remove(host);
        }
    }
}

impl Drop for Keeper {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

pub const TOKEN: &str = "test-token-123";

/// A request with the API token (or `token`); returns status and JSON body.
pub fn call(
    hbd: &Hbd,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<serde_json::Value>,
) -> (u16, serde_json::Value) {
    let mut req = ureq::request(method, &hbd.url(path)).timeout(Duration::from_secs(10));
    if let Some(t) = token {
        req = req.set("Authorization", &format!("Bearer {t}"));
    }
    let resp = match body {
        Some(b) => req.send_json(b),
        None => req.call(),
    };
    let read = |r: ureq::Response| {
        let text = r.into_string().unwrap_or_default();
        serde_json::from_str(&text).unwrap_or(serde_json::Value::Null)
    };
    match resp {
        Ok(r) => (r.status(), read(r)),
        Err(ureq::Error::Status(code, r)) => (code, read(r)),
        Err(e) => panic!("{method} {path}: {e}"),
    }
}
