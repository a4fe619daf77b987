//! The real `hbd` binary as a child process on loopback ports, for tests that measure
//! what only a separate process shows (its RSS) or operate it like an operator would.
//! Included by test binaries with `#[path = "../common/real_hbd.rs"] mod real_hbd;`.

#![allow(dead_code, reason = "each test binary uses part of it")]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The `hbd` built beside this test binary.
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

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("port")
}

pub fn free_udp_port() -> u16 {
    std::net::UdpSocket::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .map(|a| a.port())
        .expect("port")
}

pub struct RealHbd {
    pub child: Child,
    pub http: u16,
    pub udp: u16,
}

impl RealHbd {
    /// Starts hbd in the foreground with `config_yaml` (written next to `data`).
    pub fn start(config_yaml: &str, data: &Path) -> RealHbd {
        std::fs::create_dir_all(data).expect("data dir");
        let cfg = data.with_extension("yaml");
        std::fs::write(&cfg, config_yaml).expect("config");
        let (http, ws, udp) = (free_port(), free_port(), free_udp_port());
        let child = Command::new(hbd_bin())
            .args(["-f", "--bind", "127.0.0.1"])
            .arg("-c")
            .arg(&cfg)
            .arg("--data-dir")
            .arg(data)
            .args([
                "--hb-port",
                &udp.to_string(),
                "--hbd-port",
                &http.to_string(),
                "--ws-port",
                &ws.to_string(),
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start hbd");
        let h = RealHbd { child, http, udp };
        h.wait(Duration::from_secs(30), "hbd answers", |h| {
            h.get("/healthz").is_some()
        });
        h
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.http)
    }

    pub fn get(&self, path: &str) -> Option<serde_json::Value> {
        ureq::get(&self.url(path))
            .timeout(Duration::from_secs(10))
            .call()
            .ok()?
            .into_json()
            .ok()
    }

    pub fn get_text(&self, path: &str) -> Option<String> {
        ureq::get(&self.url(path))
            .timeout(Duration::from_secs(10))
            .call()
            .ok()?
            .into_string()
            .ok()
    }

    /// A counter of `/metrics` (`name{labels}` as printed), 0 if absent.
    pub fn metric(&self, series: &str) -> f64 {
        let text = self.get_text("/metrics").unwrap_or_default();
        text.lines()
            .find_map(|l| {
                l.strip_prefix(series)?
                    .strip_prefix(' ')?
                    .trim()
                    .parse()
                    .ok()
            })
            .unwrap_or(0.0)
    }

    pub fn wait(&self, limit: Duration, what: &str, f: impl Fn(&RealHbd) -> bool) {
        let start = Instant::now();
        while start.elapsed() < limit {
            if f(self) {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("timed out waiting for {what}");
    }

    /// Resident memory of the hbd process, in bytes.
    pub fn rss(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .unwrap_or_default();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .map_or(0, |kb| kb * 1024)
    }

    pub fn signal(&self, sig: i32) {
        // SAFETY: kill(2) on our own child.
        unsafe {
            libc::kill(self.child.id() as i32, sig);
        }
    }
}

impl Drop for RealHbd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
