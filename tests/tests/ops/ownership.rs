//! One owner, no silent failure (issue 14), on the real `hbd` binary: a second hbd on the
//! same data folder or the same UDP port refuses to start while the first keeps every
//! host; replay protection survives `kill -9`; daemon mode reports its start-up; files
//! are private whatever the umask; HEAD, 413, DNS rebinding and authorisation before the
//! body on the HTTP listener.

use std::net::UdpSocket;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use crate::real_hbd::{free_port, free_udp_port, hbd_bin, RealHbd};

const SECRET: &str = "ownership-test-secret";
const HOSTS: usize = 10;

fn signed(host: &str, seq: u64) -> Vec<u8> {
    let hb = hb_proto::Heartbeat {
        host: host.into(),
        instance: 1,
        seq,
        sent_ms: hbd::state::now_ms(),
        interval_ms: 1_000,
        level: hb_proto::Level::Ok,
        readings: vec![],
    };
    hb_proto::encode(&hb, Some(SECRET.as_bytes()), 1400)
        .expect("encode")
        .remove(0)
}

/// One round of heartbeats from every host; returns the datagrams sent. One source
/// socket for every round: its datagrams reach one ingest thread, in order.
fn beat_all(udp: u16, seq: u64) -> Vec<Vec<u8>> {
    thread_local! {
        static SOCK: UdpSocket = UdpSocket::bind("127.0.0.1:0").expect("udp");
    }
    (0..HOSTS)
        .map(|i| {
            let d = signed(&format!("own-{i}"), seq);
            SOCK.with(|s| s.send_to(&d, ("127.0.0.1", udp)).expect("send"));
            d
        })
        .collect()
}

fn up_hosts(h: &RealHbd) -> usize {
    h.get("/api/v1/hosts?limit=1000")
        .and_then(|v| {
            v["hosts"].as_array().map(|a| {
                a.iter()
                    .filter(|h| h["name"].as_str().is_some_and(|n| n.starts_with("own-")))
                    .filter(|h| h["status"] == "UP")
                    .count()
            })
        })
        .unwrap_or(0)
}

/// Runs hbd in the foreground on `data` with `udp` and fresh TCP ports; it must refuse
/// to start, so it is waited for.
fn refused_start(config: &Path, data: &Path, udp: u16) -> Output {
    let out = Command::new(hbd_bin())
        .args(["-f", "--bind", "127.0.0.1", "-c"])
        .arg(config)
        .arg("--data-dir")
        .arg(data)
        .args(["--hb-port", &udp.to_string()])
        .args(["--hbd-port", &free_port().to_string()])
        .args(["--ws-port", &free_port().to_string()])
        .stdin(Stdio::null())
        .output()
        .expect("run hbd");
    assert!(!out.status.success(), "a second hbd started");
    out
}

#[test]
fn a_second_hbd_on_the_same_folder_or_port_refuses_and_the_first_keeps_every_host() {
    let dir = tempfile::tempdir().expect("tmp");
    let data = dir.path().join("data");
    let first = RealHbd::start(&format!("secret: {SECRET}\ningest_threads: 4\n"), &data);
    let config = data.with_extension("yaml");
    beat_all(first.udp, 1);
    first.wait(Duration::from_secs(10), "every host UP", |h| {
        up_hosts(h) == HOSTS
    });

    let same_folder = refused_start(&config, &data, free_udp_port());
    let err = String::from_utf8_lossy(&same_folder.stderr);
    let pid = first.child.id().to_string();
    assert!(
        err.contains("in use by another hbd") && err.contains(&format!("pid {pid}")),
        "{err}"
    );

    let same_port = refused_start(&config, &dir.path().join("other"), first.udp);
    let err = String::from_utf8_lossy(&same_port.stderr);
    assert!(
        err.contains("heartbeat port") && err.contains(&format!("process {pid}")),
        "{err}"
    );

    // Every host's next heartbeats reach the first hbd (none went to the refused one).
    let before = first.metric("hbd_datagrams_accepted_total");
    for seq in 2..5 {
        beat_all(first.udp, seq);
    }
    first.wait(Duration::from_secs(10), "30 more heartbeats", |h| {
        h.metric("hbd_datagrams_accepted_total") >= before + (3 * HOSTS) as f64
    });
    assert_eq!(up_hosts(&first), HOSTS);
}

#[test]
fn replays_of_recorded_heartbeats_are_dropped_after_kill_9() {
    let dir = tempfile::tempdir().expect("tmp");
    let data = dir.path().join("data");
    let config = format!("secret: {SECRET}\nsnapshot_interval: 1s\n");
    let hbd = RealHbd::start(&config, &data);
    let mut recorded = Vec::new();
    for seq in 1..=3 {
        recorded.extend(beat_all(hbd.udp, seq));
        // A snapshot in between: the first rounds are saved, the last only journaled.
        std::thread::sleep(Duration::from_millis(600));
    }
    hbd.wait(Duration::from_secs(10), "every heartbeat", |h| {
        h.metric("hbd_datagrams_accepted_total") >= recorded.len() as f64
    });
    drop(hbd); // SIGKILL

    let hbd = RealHbd::start(&config, &data);
    let sock = UdpSocket::bind("127.0.0.1:0").expect("udp");
    for d in &recorded {
        sock.send_to(d, ("127.0.0.1", hbd.udp)).expect("send");
    }
    let series = "hbd_datagrams_dropped_total{reason=\"replayed\"}";
    hbd.wait(Duration::from_secs(10), "every replay dropped", |h| {
        h.metric(series) >= recorded.len() as f64
    });
    assert_eq!(hbd.metric(series), recorded.len() as f64);
    assert_eq!(hbd.metric("hbd_datagrams_accepted_total"), 0.0);
    // The hosts' new heartbeats are taken.
    beat_all(hbd.udp, 4);
    hbd.wait(Duration::from_secs(10), "new heartbeats", |h| {
        h.metric("hbd_datagrams_accepted_total") >= HOSTS as f64
    });
}

/// `hbd` without `-f`, with umask 000.
fn daemon(dir: &Path, data: &Path, http: u16) -> Output {
    let cfg = dir.join("hbd.yaml");
    std::fs::write(&cfg, format!("secret: {SECRET}\n")).expect("config");
    std::fs::set_permissions(&cfg, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    let mut cmd = Command::new(hbd_bin());
    cmd.args(["--bind", "127.0.0.1", "-c"])
        .arg(&cfg)
        .arg("--data-dir")
        .arg(data)
        .args(["--hb-port", &free_udp_port().to_string()])
        .args(["--hbd-port", &http.to_string()])
        .args(["--ws-port", &free_port().to_string()])
        .stdin(Stdio::null());
    // SAFETY: umask is async-signal-safe.
    unsafe {
        cmd.pre_exec(|| {
            libc::umask(0);
            Ok(())
        });
    }
    cmd.output().expect("run hbd")
}

#[test]
fn daemon_mode_reports_its_start_and_its_files_are_private() {
    let dir = tempfile::tempdir().expect("tmp");
    let data = dir.path().join("data");
    let http = free_port();
    let ok = daemon(dir.path(), &data, http);
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    // Ready means listening: no waiting needed.
    let health = ureq::get(&format!("http://127.0.0.1:{http}/healthz"))
        .timeout(Duration::from_secs(5))
        .call()
        .expect("healthz right after the parent exited");
    assert_eq!(health.status(), 200);
    let pid: i32 = std::fs::read_to_string(data.join("hbd.pid"))
        .expect("pid file")
        .trim()
        .parse()
        .expect("pid");

    // A second daemon on the same HTTP port fails: exit 1, the reason on standard
    // error and in its log file, and no pid file.
    let data2 = dir.path().join("data2");
    let failed = daemon(dir.path(), &data2, http);
    assert_eq!(failed.status.code(), Some(1));
    let err = String::from_utf8_lossy(&failed.stderr);
    assert!(err.contains("cannot listen for HTTP"), "{err}");
    let log = std::fs::read_to_string(data2.join("hbd.log")).expect("log");
    assert!(
        log.contains("ERROR") && log.contains("cannot listen for HTTP"),
        "{log}"
    );
    assert!(!data2.join("hbd.pid").exists(), "stale pid file");

    // SAFETY: kill(2) on the daemon this test started.
    unsafe { libc::kill(pid, libc::SIGTERM) };
    let stopped = (0..100).any(|_| {
        std::thread::sleep(Duration::from_millis(50));
        !data.join("hbd.pid").exists()
    });
    assert!(stopped, "pid file left after a clean stop");
    assert!(data.join("clean-shutdown").exists());
    let mode = |p: &Path| std::fs::metadata(p).expect("meta").permissions().mode() & 0o777;
    assert_eq!(mode(&data), 0o750, "data folder");
    for entry in walk(&data) {
        let want = if entry.is_dir() { 0o750 } else { 0o640 };
        assert_eq!(mode(&entry), want, "{}", entry.display());
    }
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).expect("read_dir").flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        }
        out.push(p);
    }
    out
}

fn call(req: ureq::Request) -> (u16, String) {
    match req.timeout(Duration::from_secs(5)).call() {
        Ok(r) => (r.status(), r.into_string().unwrap_or_default()),
        Err(ureq::Error::Status(s, r)) => (s, r.into_string().unwrap_or_default()),
        Err(e) => panic!("{e}"),
    }
}

#[test]
fn http_head_413_rebinding_and_authorisation_before_the_body() {
    let dir = tempfile::tempdir().expect("tmp");
    let hbd = RealHbd::start(
        &format!("secret: {SECRET}\napi_token: test-token-123\n"),
        &dir.path().join("data"),
    );
    let (status, body) = call(ureq::head(&hbd.url("/healthz")));
    assert_eq!((status, body.as_str()), (200, ""));
    assert_eq!(call(ureq::head(&hbd.url("/api/v1/hosts"))).0, 200);

    // 10 MB of JSON: 413 with a JSON error, before anything is read.
    let big = vec![b' '; 10 << 20];
    let (status, body) = match ureq::post(&hbd.url("/api/v1/silences"))
        .set("Authorization", "Bearer test-token-123")
        .set("Content-Type", "application/json")
        .timeout(Duration::from_secs(10))
        .send_bytes(&big)
    {
        Ok(r) => (r.status(), r.into_string().unwrap_or_default()),
        Err(ureq::Error::Status(s, r)) => (s, r.into_string().unwrap_or_default()),
        // hbd may close the connection while the body is still being sent.
        Err(e) => (0, e.to_string()),
    };
    assert!(status == 413 || status == 0, "{status} {body}");
    if status == 413 {
        assert!(body.contains("\"error\""), "{body}");
    }
    // An oversized heartbeat: 413, JSON.
    let (status, body) = match ureq::post(&hbd.url("/api/v1/heartbeat"))
        .set("Content-Type", "application/octet-stream")
        .send_bytes(&vec![0u8; 70_000])
    {
        Ok(r) => (r.status(), r.into_string().unwrap_or_default()),
        Err(ureq::Error::Status(s, r)) => (s, r.into_string().unwrap_or_default()),
        Err(e) => panic!("{e}"),
    };
    assert_eq!(status, 413, "{body}");
    assert!(body.contains("max_heartbeat_bytes"), "{body}");

    // Without the token: 401 before the (broken) body is parsed.
    let (status, body) = match ureq::post(&hbd.url("/api/v1/silences"))
        .set("Content-Type", "application/json")
        .send_string("{not json")
    {
        Ok(r) => (r.status(), r.into_string().unwrap_or_default()),
        Err(ureq::Error::Status(s, r)) => (s, r.into_string().unwrap_or_default()),
        Err(e) => panic!("{e}"),
    };
    assert_eq!(status, 401, "{body}");
    assert!(body.contains("token"), "{body}");

    // A bad parameter is named, in JSON.
    let (status, body) = call(ureq::get(&hbd.url("/api/v1/hosts?limit=abc")));
    assert_eq!(status, 400);
    assert!(
        body.contains("\"error\"") && body.contains("limit"),
        "{body}"
    );

    // DNS rebinding: a page on a foreign name, re-pointed at hbd, posting a heartbeat
    // from its own origin (so Origin matches Host) is refused.
    let beat = signed("rebound", 1);
    let (status, body) = match ureq::post(&hbd.url("/api/v1/heartbeat"))
        .set("Host", &format!("rebind.example:{}", hbd.http))
        .set("Origin", &format!("http://rebind.example:{}", hbd.http))
        .set("Content-Type", "application/octet-stream")
        .send_bytes(&beat)
    {
        Ok(r) => (r.status(), r.into_string().unwrap_or_default()),
        Err(ureq::Error::Status(s, r)) => (s, r.into_string().unwrap_or_default()),
        Err(e) => panic!("{e}"),
    };
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("server_names"), "{body}");
    // The same from the server's own address is taken.
    let (status, _) = match ureq::post(&hbd.url("/api/v1/heartbeat"))
        .set("Content-Type", "application/octet-stream")
        .send_bytes(&beat)
    {
        Ok(r) => (r.status(), String::new()),
        Err(ureq::Error::Status(s, r)) => (s, r.into_string().unwrap_or_default()),
        Err(e) => panic!("{e}"),
    };
    assert_eq!(status, 202);
}

#[test]
fn listening_beyond_loopback_without_a_secret_is_warned_about() {
    let dir = tempfile::tempdir().expect("tmp");
    let cfg = dir.path().join("hbd.yaml");
    std::fs::write(&cfg, "hbd_port: 0\n").expect("config");
    let mut child = Command::new(hbd_bin())
        .args(["-f", "--bind", "0.0.0.0", "-c"])
        .arg(&cfg)
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .args(["--hb-port", "0", "--hbd-port", "0", "--ws-port", "0"])
        .stdin(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start hbd");
    let err = child.stderr.take().expect("stderr");
    // Read until hbd says it listens (the warning comes before), then stop it.
    let mut text = String::new();
    for line in std::io::BufRead::lines(std::io::BufReader::new(err)) {
        let Ok(line) = line else { break };
        text.push_str(&line);
        text.push('\n');
        if line.contains("hbd listening") {
            break;
        }
    }
    // SAFETY: kill(2) on our child.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let _ = child.wait();
    assert!(
        text.contains("WARN") && text.contains("without a secret"),
        "{text}"
    );
}
