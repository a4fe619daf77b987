//! Operating the real `hbd` binary: SIGHUP with a good and a broken config, log file
//! reopened for logrotate, and SIGTERM under load with nothing lost.

use std::net::UdpSocket;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

mod check_config;
mod ownership;
#[path = "../common/real_hbd.rs"]
mod real_hbd;
mod secrets;

fn hbd_bin() -> PathBuf {
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

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("port")
}

struct Hbd {
    child: Child,
    http: u16,
}

impl Hbd {
    fn start(config: &Path, data: &Path, udp: u16) -> Hbd {
        let http = free_port();
        let ws = free_port();
        let child = Command::new(hbd_bin())
            .args(["-f", "--bind", "127.0.0.1"])
            .arg("-c")
            .arg(config)
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
        let h = Hbd { child, http };
        h.wait(Duration::from_secs(20), "hbd answers", |h| {
            h.get("/healthz").is_some()
        });
        h
    }

    fn get(&self, path: &str) -> Option<serde_json::Value> {
        ureq::get(&format!("http://127.0.0.1:{}{path}", self.http))
            .timeout(Duration::from_secs(5))
            .call()
            .ok()?
            .into_json()
            .ok()
    }

    fn wait(&self, limit: Duration, what: &str, f: impl Fn(&Hbd) -> bool) {
        let start = Instant::now();
        while start.elapsed() < limit {
            if f(self) {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("timed out waiting for {what}");
    }

    fn signal(&self, sig: i32) {
        // SAFETY: kill(2) on our own child.
        unsafe {
            libc::kill(self.child.id() as i32, sig);
        }
    }

    fn stop(mut self) -> std::process::ExitStatus {
        self.signal(libc::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(Some(s)) = self.child.try_wait() {
                return s;
            }
            assert!(
                Instant::now() < deadline,
                "hbd did not stop within 30 s of SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Hbd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn datagram(host: &str, seq: u64) -> Vec<u8> {
    let hb = hb_proto::Heartbeat {
        host: host.into(),
        instance: 1,
        seq,
        sent_ms: hbd::state::now_ms(),
        interval_ms: 60_000,
        level: hb_proto::Level::Ok,
        readings: vec![],
    };
    hb_proto::encode(&hb, None, 1400).expect("encode").remove(0)
}

#[test]
fn sighup_reloads_a_good_config_keeps_a_broken_one_and_reopens_the_log() {
    let dir = tempfile::tempdir().expect("tmp");
    let cfg = dir.path().join("hbd.yaml");
    let log = dir.path().join("hbd.log");
    std::fs::write(
        &cfg,
        format!("logfile: {}\nwatchhosts: [first]\n", log.display()),
    )
    .expect("config");
    let hbd = Hbd::start(&cfg, &dir.path().join("data"), free_port());
    assert!(
        hbd.get("/api/v1/hosts/first").is_some(),
        "watched host from the first config"
    );

    // Good config: a new watched host appears; the log is reopened after rotation.
    std::fs::rename(&log, dir.path().join("hbd.log.1")).expect("rotate");
    std::fs::write(
        &cfg,
        format!("logfile: {}\nwatchhosts: [first, second]\n", log.display()),
    )
    .expect("config");
    hbd.signal(libc::SIGHUP);
    hbd.wait(Duration::from_secs(10), "second watched host", |h| {
        h.get("/api/v1/hosts/second").is_some()
    });
    hbd.wait(Duration::from_secs(10), "a new log file", |_| log.exists());
    let text = std::fs::read_to_string(&log).expect("log");
    assert!(
        text.contains("reopened") || text.contains("reloaded"),
        "{text}"
    );

    // Broken config: rejected with the error, the running one kept.
    std::fs::write(&cfg, "watchhosts: ['<bad>']\n").expect("config");
    hbd.signal(libc::SIGHUP);
    hbd.wait(Duration::from_secs(10), "the rejection in the log", |_| {
        std::fs::read_to_string(&log)
            .unwrap_or_default()
            .contains("config not reloaded, keeping the running one")
    });
    assert!(std::fs::read_to_string(&log)
        .expect("log")
        .contains("watchhosts"));
    assert!(hbd.get("/api/v1/hosts/second").is_some(), "state kept");
    assert!(hbd.get("/healthz").is_some(), "still serving");
    assert!(hbd.stop().success());
}

#[test]
fn sigterm_under_load_loses_nothing() {
    let dir = tempfile::tempdir().expect("tmp");
    let cfg = dir.path().join("hbd.yaml");
    std::fs::write(&cfg, "journal_fsync: batch\n").expect("config");
    let data = dir.path().join("data");
    let udp = free_port();
    let hbd = Hbd::start(&cfg, &data, udp);
    let sock = UdpSocket::bind("127.0.0.1:0").expect("bind");
    // A steady stream of new hosts while SIGTERM arrives.
    let sender = std::thread::spawn(move || {
        let mut n = 0u64;
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(3) {
            n += 1;
            let _ = sock.send_to(&datagram(&format!("load-{n}"), 1), ("127.0.0.1", udp));
            // About 2,500 new hosts a second (the events API pages at 10,000).
            if n.is_multiple_of(5) {
                std::thread::sleep(Duration::from_millis(2));
            }
        }
        n
    });
    std::thread::sleep(Duration::from_millis(1500));
    let accepted_before_stop: u64 = {
        let m = ureq::get(&format!("http://127.0.0.1:{}/metrics", hbd.http))
            .call()
            .expect("metrics")
            .into_string()
            .expect("text");
        m.lines()
            .find_map(|l| l.strip_prefix("hbd_datagrams_accepted_total "))
            .and_then(|v| v.trim().parse().ok())
            .expect("accepted counter")
    };
    let status = hbd.stop();
    assert!(status.success(), "clean exit on SIGTERM: {status:?}");
    let _sent = sender.join().expect("sender");

    // Restart: every host accepted before the stop is back, and its events are journaled.
    let hbd = Hbd::start(&cfg, &data, udp);
    let list = hbd.get("/api/v1/hosts?limit=1").expect("hosts");
    let total = list["total"].as_u64().expect("total");
    assert!(
        total >= accepted_before_stop,
        "{total} hosts restored, {accepted_before_stop} were accepted before SIGTERM"
    );
    let events = hbd
        .get("/api/v1/events?kind=host_new&limit=10000")
        .expect("events");
    let journaled = events["events"].as_array().expect("events").len() as u64;
    assert_eq!(
        journaled, total,
        "every host's first event is in the journal"
    );
    assert!(hbd.stop().success());
}

#[test]
fn a_bad_config_exits_2_naming_the_key_and_line() {
    let dir = tempfile::tempdir().expect("tmp");
    let cfg = dir.path().join("hbd.yaml");
    std::fs::write(&cfg, "hbd_port: 50004\ngrace: lots\n").expect("config");
    let out = Command::new(hbd_bin())
        .arg("-c")
        .arg(&cfg)
        .arg("-f")
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("grace") && err.contains("line 2"), "{err}");
}

#[test]
fn without_f_hbd_daemonizes_and_writes_a_pid_file() {
    let dir = tempfile::tempdir().expect("tmp");
    let cfg = dir.path().join("hbd.yaml");
    let data = dir.path().join("data");
    let http = free_port();
    std::fs::write(&cfg, "bind: 127.0.0.1\n").expect("config");
    let status = Command::new(hbd_bin())
        .arg("-c")
        .arg(&cfg)
        .arg("--data-dir")
        .arg(&data)
        .args([
            "--hb-port",
            &free_port().to_string(),
            "--hbd-port",
            &http.to_string(),
        ])
        .args(["--ws-port", &free_port().to_string()])
        .status()
        .expect("run");
    assert!(
        status.success(),
        "the foreground parent exits 0 once forked"
    );
    let pidfile = data.join("hbd.pid");
    let start = Instant::now();
    while !pidfile.exists() && start.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(50));
    }
    let pid: i32 = std::fs::read_to_string(&pidfile)
        .expect("pid file")
        .trim()
        .parse()
        .expect("pid");
    let url = format!("http://127.0.0.1:{http}/healthz");
    let up = (0..200).any(|_| {
        std::thread::sleep(Duration::from_millis(50));
        ureq::get(&url).call().is_ok()
    });
    // SAFETY: kill(2) on the daemon this test started.
    unsafe {
        libc::kill(pid, libc::SIGTERM);
    }
    assert!(up, "the daemon serves HTTP");
    assert!(
        data.join("hbd.log").exists(),
        "a daemon logs to <data_dir>/hbd.log"
    );
}
