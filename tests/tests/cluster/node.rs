//! One hbd of the cluster as a real child process on fixed loopback ports (so it can be
//! SIGKILLed and started again on the same ports), and heartbeats sent to every node.

use std::collections::BTreeSet;
use std::net::UdpSocket;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Heartbeat interval: DOWN 1.2 s after the last heartbeat.
pub const INTERVAL_MS: u32 = 200;
pub const TOKEN: &str = "test-token-123";

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("port")
}

fn free_udp_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .map(|a| a.port())
        .expect("port")
}

pub fn hbd_bin() -> PathBuf {
    let exe = std::env::current_exe().expect("exe");
    let p = exe
        .parent()
        .and_then(Path::parent)
        .expect("target")
        .join("hbd");
    assert!(
        p.exists(),
        "{} missing: run cargo build --workspace first",
        p.display()
    );
    p
}

pub struct Node {
    pub name: String,
    pub http: u16,
    pub udp: u16,
    ws: u16,
    data: PathBuf,
    config: PathBuf,
    child: Option<Child>,
}

impl Node {
    pub fn new(name: &str, dir: &Path, yaml: &str) -> Node {
        let data = dir.join(name);
        std::fs::create_dir_all(&data).expect("data dir");
        let config = dir.join(format!("{name}.yaml"));
        std::fs::write(&config, yaml).expect("config");
        let mut n = Node {
            name: name.into(),
            http: free_port(),
            udp: free_udp_port(),
            ws: free_port(),
            data,
            config,
            child: None,
        };
        n.start();
        n
    }

    pub fn start(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.data.with_extension("log"))
            .expect("log");
        let child = Command::new(hbd_bin())
            .args(["-f", "--bind", "127.0.0.1", "-c"])
            .arg(&self.config)
            .arg("--data-dir")
            .arg(&self.data)
            .args(["--hb-port", &self.udp.to_string()])
            .args(["--hbd-port", &self.http.to_string()])
            .args(["--ws-port", &self.ws.to_string()])
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start hbd");
        self.child = Some(child);
        let start = Instant::now();
        while self.get("/healthz").is_none() {
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "{} did not start",
                self.name
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Stops it as systemd would (SIGTERM) and waits for it to exit; the exit status.
    pub fn stop(&mut self) -> Option<std::process::ExitStatus> {
        let mut c = self.child.take()?;
        // SAFETY: kill(2) on our own child's pid.
        unsafe {
            libc::kill(c.id() as libc::pid_t, libc::SIGTERM);
        }
        let start = Instant::now();
        loop {
            if let Ok(Some(st)) = c.try_wait() {
                return Some(st);
            }
            if start.elapsed() > Duration::from_secs(20) {
                let _ = c.kill();
                return c.wait().ok();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Replaces the config file (read at the next start or reload).
    pub fn write_config(&self, yaml: &str) {
        std::fs::write(&self.config, yaml).expect("config");
    }

    pub fn config_text(&self) -> String {
        std::fs::read_to_string(&self.config).expect("config")
    }

    /// SIGHUP: hbd reloads its config.
    pub fn reload(&self) {
        if let Some(c) = &self.child {
            // SAFETY: kill(2) on our own child's pid.
            unsafe {
                libc::kill(c.id() as libc::pid_t, libc::SIGHUP);
            }
        }
    }

    pub fn running(&self) -> bool {
        self.child.is_some()
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.http)
    }

    pub fn get(&self, path: &str) -> Option<serde_json::Value> {
        ureq::get(&self.url(path))
            .timeout(Duration::from_secs(5))
            .call()
            .ok()?
            .into_json()
            .ok()
    }

    /// The HTTP status of a GET (`None` when the node does not answer at all).
    pub fn status(&self, path: &str) -> Option<u16> {
        match ureq::get(&self.url(path))
            .timeout(Duration::from_secs(5))
            .call()
        {
            Ok(r) => Some(r.status()),
            Err(ureq::Error::Status(c, _)) => Some(c),
            Err(_) => None,
        }
    }

    /// `/api/v1/cluster`, if it answers.
    pub fn cluster(&self) -> Option<serde_json::Value> {
        if !self.running() {
            return None;
        }
        self.get("/api/v1/cluster")
    }

    pub fn is_leader(&self) -> bool {
        self.cluster().is_some_and(|c| c["is_leader"] == true)
    }

    pub fn post(&self, path: &str, body: serde_json::Value) -> u16 {
        match ureq::post(&self.url(path))
            .set("Authorization", &format!("Bearer {TOKEN}"))
            .timeout(Duration::from_secs(5))
            .send_json(body)
        {
            Ok(r) => r.status(),
            Err(ureq::Error::Status(c, _)) => c,
            Err(e) => panic!("POST {path}: {e}"),
        }
    }

    pub fn delete(&self, path: &str) -> u16 {
        match ureq::delete(&self.url(path))
            .set("Authorization", &format!("Bearer {TOKEN}"))
            .timeout(Duration::from_secs(5))
            .call()
        {
            Ok(r) => r.status(),
            Err(ureq::Error::Status(c, _)) => c,
            Err(e) => panic!("DELETE {path}: {e}"),
        }
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            // SAFETY: kill(2) on our own child: SIGTERM, a clean stop.
            unsafe {
                libc::kill(c.id() as i32, libc::SIGTERM);
            }
            let _ = c.wait();
        }
    }
}

/// Sends a heartbeat every interval for every live host to every node.
pub struct Beats {
    alive: Arc<Mutex<BTreeSet<String>>>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Beats {
    pub fn start(ports: Vec<u16>) -> Beats {
        let alive = Arc::new(Mutex::new(BTreeSet::<String>::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (a, s) = (alive.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            let sock = UdpSocket::bind("127.0.0.1:0").expect("udp socket");
            let mut seq = 0u64;
            while !s.load(Ordering::Relaxed) {
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
                    for p in &ports {
                        let _ = sock.send_to(&d, ("127.0.0.1", *p));
                    }
                }
                std::thread::sleep(Duration::from_millis(u64::from(INTERVAL_MS)));
            }
        });
        Beats {
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

impl Drop for Beats {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
