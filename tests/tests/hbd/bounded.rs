//! Bounded cost per request (issue 13): a crowd of journal queries over a 100 MB journal
//! holds memory to a few read buffers and gets `503` beyond `journal_max_queries`; a
//! WebSocket handshake flood gets `429` and the client caps while the dashboard is still
//! served; `/metrics` scraped during 10,000 datagrams/s loses none of them.

use std::io::Read;
use std::net::UdpSocket;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use crate::util::*;

/// The process's resident set, in KiB (hbd runs inside this test process).
fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS")
}

/// Samples the RSS every 5 ms until stopped; the peak seen.
struct PeakRss {
    stop: Arc<AtomicBool>,
    peak: Arc<AtomicU64>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl PeakRss {
    fn start() -> PeakRss {
        let stop = Arc::new(AtomicBool::new(false));
        let peak = Arc::new(AtomicU64::new(rss_kib()));
        let (s, p) = (stop.clone(), peak.clone());
        let thread = std::thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                p.fetch_max(rss_kib(), Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(5));
            }
        });
        PeakRss {
            stop,
            peak,
            thread: Some(thread),
        }
    }

    fn stop(mut self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        self.peak.load(Ordering::Relaxed)
    }
}

/// Writes about `bytes` of events (over 200 hosts, none named `absent`) with the journal
/// crate into `dir` as segments numbered from 1, as hbd would have over a long time.
fn write_journal(dir: &std::path::Path, bytes: u64) -> (u64, usize) {
    use hbd::event::{Event, EventKind};
    let cfg = hbd::journal::JournalConfig {
        fsync: hbd::journal::FsyncPolicy::Never,
        ..hbd::journal::JournalConfig::new(dir)
    };
    let (mut j, _) = hbd::journal::Journal::open(cfg, |_| {}).expect("open journal");
    let message = "no heartbeat for 25.0 s (interval 10.0 s × grace 2.5) ".repeat(8);
    let mut id = 0;
    while j.counters().bytes < bytes {
        id += 1;
        j.append(&Event {
            id,
            ts_ms: 1_700_000_000_000 + id,
            host: format!("host-{:03}.example.org", id % 200),
            kind: EventKind::HostDown,
            key: None,
            from: Some("UP".into()),
            to: Some("DOWN".into()),
            message: message.clone(),
        })
        .expect("append");
    }
    j.flush().expect("flush");
    drop(j);
    let segments = std::fs::read_dir(dir).expect("list").count();
    (id, segments)
}

/// 100 concurrent `/api/v1/events` queries for a host that is in none of 100 MB of
/// journal: the process's RSS grows by less than 40 MiB (it grew by 960 MiB for 60 such
/// queries when each read whole segments), queries beyond `journal_max_queries` (4) get
/// `503` with `Retry-After` and a JSON error (counted in /metrics), and a host beating
/// every 50 ms meanwhile stays UP with every heartbeat applied.
#[test]
fn concurrent_events_queries_on_a_100_mb_journal_are_bounded() {
    let dir = tempfile::tempdir().expect("tmp");
    let journal = dir.path().join("journal");
    // hbd replays its journal at start-up; the large segments are moved in afterwards as
    // older ones (numbers below the segment hbd writes to), as after a long run.
    std::fs::create_dir_all(&journal).expect("mkdir");
    std::fs::write(journal.join("journal-000100.log"), b"").expect("segment");
    let hbd = Hbd::start(
        config(&std::env::var("BOUNDED_CFG").unwrap_or_default()),
        dir.path(),
        0,
    );
    let staged = tempfile::tempdir().expect("tmp");
    let t = Instant::now();
    let (written, segments) = write_journal(staged.path(), 100 << 20);
    let mut total = 0;
    for entry in std::fs::read_dir(staged.path()).expect("list") {
        let entry = entry.expect("entry");
        total += entry.metadata().expect("stat").len();
        std::fs::rename(entry.path(), journal.join(entry.file_name())).expect("move");
    }
    eprintln!(
        "journal: {written} events, {total} bytes in {segments} segments, written in {:?}",
        t.elapsed()
    );
    assert!(total >= 100 << 20);

    // One query alone, for the figures, and to check it finds nothing.
    let t = Instant::now();
    let (code, body) = hbd.get("/api/v1/events?host=absent&limit=100");
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["events"].as_array().map(Vec::len), Some(0), "{body}");
    eprintln!("one query for a missing host: {:?}", t.elapsed());
    // And the journal is really read: an existing host's events are found.
    let (code, body) = hbd.get("/api/v1/events?host=host-007.example.org&limit=3");
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["events"].as_array().map(Vec::len), Some(3), "{body}");

    // A host beating every 50 ms (interval 1 s) throughout.
    let stop = Arc::new(AtomicBool::new(false));
    let beater = {
        let (stop, udp) = (stop.clone(), hbd.udp);
        std::thread::spawn(move || {
            let sock = UdpSocket::bind("127.0.0.1:0").expect("bind");
            let mut seq = 0;
            while !stop.load(Ordering::Relaxed) {
                seq += 1;
                let hb = hb_proto::Heartbeat {
                    host: "steady".into(),
                    instance: 1,
                    seq,
                    sent_ms: hbd::state::now_ms(),
                    interval_ms: 1000,
                    level: hb_proto::Level::Ok,
                    readings: Vec::new(),
                };
                let d = hb_proto::encode(&hb, None, 1400).expect("encode").remove(0);
                sock.send_to(&d, udp).expect("send");
                std::thread::sleep(Duration::from_millis(50));
            }
            seq
        })
    };
    hbd.wait_for(Duration::from_secs(5), "steady is UP", |h| {
        h.status("steady").as_deref() == Some("UP")
    });

    let base = rss_kib();
    let peak = PeakRss::start();
    let n = 100;
    let barrier = Arc::new(Barrier::new(n));
    let url = hbd.url("/api/v1/events?host=absent&limit=100");
    let t = Instant::now();
    let answers: Vec<(u16, Option<String>, String)> = (0..n)
        .map(|_| {
            let (barrier, url) = (barrier.clone(), url.clone());
            std::thread::spawn(move || {
                barrier.wait();
                let r = match ureq::get(&url).timeout(Duration::from_secs(60)).call() {
                    Ok(r) => r,
                    Err(ureq::Error::Status(_, r)) => r,
                    Err(e) => panic!("GET {url}: {e}"),
                };
                let retry = r.header("retry-after").map(str::to_string);
                let code = r.status();
                let mut body = String::new();
                r.into_reader()
                    .read_to_string(&mut body)
                    .expect("read body");
                (code, retry, body)
            })
        })
        .collect::<Vec<_>>()
        .into_iter()
        .map(|t| t.join().expect("client thread"))
        .collect();
    let took = t.elapsed();
    let peak = peak.stop();
    let ok = answers.iter().filter(|a| a.0 == 200).count();
    let busy: Vec<_> = answers.iter().filter(|a| a.0 == 503).collect();
    eprintln!(
        "{n} concurrent queries in {took:?}: {ok} answered, {} refused; RSS {} MiB before, \
         peak {} MiB (+{} MiB)",
        busy.len(),
        base / 1024,
        peak / 1024,
        (peak - base) / 1024
    );
    assert_eq!(ok + busy.len(), n, "only 200 or 503: {answers:?}");
    assert!(ok >= 1, "some queries ran");
    assert!(busy.len() >= n / 2, "most were refused: {}", busy.len());
    for (_, retry, body) in &busy {
        assert_eq!(retry.as_deref(), Some("1"), "Retry-After");
        let v: serde_json::Value = serde_json::from_str(body).expect("JSON error");
        let msg = v["error"].as_str().expect("error text");
        assert!(msg.contains("journal_max_queries"), "{msg}");
    }
    assert!(
        peak - base < 40 * 1024,
        "RSS grew by {} MiB during the queries",
        (peak - base) / 1024
    );
    let metrics = hbd.get_text("/metrics");
    assert!(
        metrics.contains(&format!("hbd_journal_queries_refused_total {}", busy.len())),
        "{metrics}"
    );

    // Ingest went on: steady stayed UP and every heartbeat was applied.
    std::thread::sleep(Duration::from_millis(200));
    stop.store(true, Ordering::Relaxed);
    let sent = beater.join().expect("beater");
    hbd.wait_for(Duration::from_secs(5), "every heartbeat applied", |h| {
        h.host("steady")
            .is_some_and(|s| s["received"].as_u64() == Some(sent))
    });
    let steady = hbd.host("steady").expect("steady");
    assert_eq!(steady["status"], "UP", "{steady}");
    assert_eq!(steady["lost"], 0, "{steady}");
    let downs = events(&hbd, "host=steady&kind=host_down");
    assert!(downs.is_empty(), "{downs:?}");
}

type Ws = tungstenite::WebSocket<tungstenite::stream::MaybeTlsStream<std::net::TcpStream>>;

/// A WebSocket handshake to `url`: the socket, or the refusal's status and body.
fn handshake(url: &str) -> Result<Ws, (u16, String)> {
    match tungstenite::connect(url) {
        Ok((ws, _)) => Ok(ws),
        Err(tungstenite::Error::Http(resp)) => Err((
            resp.status().as_u16(),
            String::from_utf8_lossy(resp.body().as_deref().unwrap_or_default()).into_owned(),
        )),
        Err(e) => panic!("handshake {url}: {e}"),
    }
}

/// The first message: the snapshot, with its number of hosts.
fn snapshot_hosts(ws: &mut Ws) -> usize {
    loop {
        if let tungstenite::Message::Text(t) = ws.read().expect("read") {
            let v: serde_json::Value = serde_json::from_str(&t).expect("json");
            assert_eq!(v["type"], "snapshot", "{v}");
            return v["data"]["hosts"].as_array().map_or(0, Vec::len);
        }
    }
}

/// Sends one heartbeat for each of `hosts` hosts with `readings` readings, and waits until
/// all are applied.
fn populate(hbd: &Hbd, hosts: usize, readings: usize) {
    let sock = UdpSocket::bind("127.0.0.1:0").expect("bind");
    let to = std::net::SocketAddr::from(([127, 0, 0, 1], hbd.udp.port()));
    let before = hbd.state.counters.accepted.load(Ordering::Relaxed);
    for i in 0..hosts {
        let d = datagram(&format!("h{i:05}.example.org"), 1, 1, None, readings);
        sock.send_to(&d, to).expect("send");
        // 5,000 a second: well within what ingest takes, even beside other tests.
        if i % 50 == 49 {
            std::thread::sleep(Duration::from_millis(10));
        }
    }
    hbd.wait_for(Duration::from_secs(20), "every host applied", |h| {
        h.state.counters.accepted.load(Ordering::Relaxed) - before == hosts as u64
    });
}

/// A WebSocket handshake flood: the per-address cap answers `429`, the total cap `503`,
/// the HTTP rate limit (the same buckets for both listeners) `429` once the flood used its
/// burst; no client beyond the caps is ever connected, all connected clients share one
/// snapshot, and the dashboard is still served to other addresses.
#[test]
fn websocket_handshake_flood_gets_429_and_the_caps_hold() {
    let dir = tempfile::tempdir().expect("tmp");
    let hbd = Hbd::start_on(
        "::".parse().expect("ip"),
        config(
            "ws_max_clients: 8\nws_max_clients_per_address: 5\n\
             api_rate_limit: 5\napi_rate_burst: 40\n",
        ),
        dir.path(),
        0,
    );
    populate(&hbd, 2000, 3);
    let port = hbd.ws.port();
    let v4 = format!("ws://127.0.0.1:{port}/");
    let v6 = format!("ws://[::1]:{port}/");
    let connected = |h: &Hbd| h.state.counters.ws_clients.load(Ordering::Relaxed);

    let mut open = Vec::new();
    for _ in 0..5 {
        let mut ws = handshake(&v4).expect("within the per-address cap");
        assert_eq!(snapshot_hosts(&mut ws), 2000);
        open.push(ws);
    }
    let Err((code, body)) = handshake(&v4) else {
        panic!("the per-address cap")
    };
    assert_eq!(code, 429, "{body}");
    assert!(body.contains("ws_max_clients_per_address"), "{body}");
    for _ in 0..3 {
        let mut ws = handshake(&v6).expect("another address");
        assert_eq!(snapshot_hosts(&mut ws), 2000);
        open.push(ws);
    }
    let Err((code, body)) = handshake(&v6) else {
        panic!("the total cap")
    };
    assert_eq!(code, 503, "{body}");
    assert!(body.contains("ws_max_clients"), "{body}");
    // Also on the HTTP listener's /ws: the same count.
    let Err((code, _)) = handshake(&format!("ws://[::1]:{}/ws", hbd.http.port())) else {
        panic!("the total cap on /ws")
    };
    assert_eq!(code, 503);

    // The flood, from several threads at once.
    let t = Instant::now();
    let codes: Vec<u16> = (0..4)
        .map(|_| {
            let v6 = v6.clone();
            std::thread::spawn(move || {
                (0..50)
                    .map(|_| match handshake(&v6) {
                        Ok(_) => 200,
                        Err((code, _)) => code,
                    })
                    .collect::<Vec<u16>>()
            })
        })
        .collect::<Vec<_>>()
        .into_iter()
        .flat_map(|t| t.join().expect("flood thread"))
        .collect();
    let limited = codes.iter().filter(|&&c| c == 429).count();
    let full = codes.iter().filter(|&&c| c == 503).count();
    eprintln!(
        "200 handshakes in {:?}: {full} × 503, {limited} × 429",
        t.elapsed()
    );
    assert_eq!(limited + full, codes.len(), "only refusals: {codes:?}");
    assert!(limited >= 150, "the rate limit cut the flood: {limited}");
    assert_eq!(connected(&hbd), 8);

    // The dashboard is served to another address meanwhile.
    let page = ureq::get(&format!("http://127.0.0.1:{}/", hbd.http.port()))
        .timeout(Duration::from_secs(10))
        .call()
        .expect("dashboard");
    assert_eq!(page.status(), 200);
    // Eight handshakes, one snapshot: nothing was published between them.
    assert_eq!(
        hbd.state.counters.ws_clients.load(Ordering::Relaxed),
        8,
        "connected"
    );
    // From 127.0.0.1 too: ::1's requests were spent by the flood (one bucket for both
    // listeners), so asking from there would be refused, as it should.
    let metrics = ureq::get(&format!("http://127.0.0.1:{}/metrics", hbd.http.port()))
        .timeout(Duration::from_secs(10))
        .call()
        .expect("metrics")
        .into_string()
        .expect("text");
    assert!(
        metrics.contains("hbd_websocket_snapshots_built_total 1\n"),
        "{metrics}"
    );
    assert!(
        metrics.contains("hbd_websocket_refused_total{reason=\"max_clients_per_address\"} 1\n"),
        "{metrics}"
    );

    // Places come back when clients leave.
    for mut ws in open {
        let _ = ws.close(None);
        let _ = ws.flush();
    }
    hbd.wait_for(Duration::from_secs(10), "clients gone", |h| {
        connected(h) == 0
    });
    let mut ws = handshake(&v4).expect("room again");
    assert_eq!(snapshot_hosts(&mut ws), 2000);
}

/// Reads the kernel's count of UDP datagrams dropped for a full receive buffer (all
/// sockets of the machine: for the figures only, other tests may run at the same time).
fn kernel_rcvbuf_errors() -> u64 {
    let snmp = std::fs::read_to_string("/proc/net/snmp").unwrap_or_default();
    let mut lines = snmp.lines().filter(|l| l.starts_with("Udp:"));
    let (Some(names), Some(values)) = (lines.next(), lines.next()) else {
        return 0;
    };
    names
        .split_whitespace()
        .zip(values.split_whitespace())
        .find(|(n, _)| *n == "RcvbufErrors")
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0)
}

/// `/metrics` with every per-host family (5,000 hosts, 20 readings each: ~8 MB of text)
/// scraped every second (by curl, as from another machine) while 10,000 datagrams a second
/// arrive for 3 s on a 4 MiB receive buffer, half the default `udp_rcvbuf` (the kernel
/// doubles it, and charges each datagram more than its size; with 1 MiB a CI run on this
/// 2-core machine lost 129 of 30,000 while the debug build rendered a scrape): every
/// datagram is received and applied, and the process's RSS grows by less than 6 MiB (the
/// text is streamed, never held whole).
#[test]
fn scraping_metrics_during_10000_datagrams_per_second_loses_nothing() {
    let dir = tempfile::tempdir().expect("tmp");
    let hbd = Hbd::start(
        config(
            "udp_rate_limit: 0\napi_rate_limit: 0\nudp_rcvbuf: 4194304\ningest_threads: 1\n\
             metrics_per_host: true\n",
        ),
        dir.path(),
        0,
    );
    let hosts = 5000;
    populate(&hbd, hosts, 20);
    let rate = 10_000;
    let seconds = 3;
    let total = rate * seconds;
    let datagrams: Vec<Vec<u8>> = (0..total)
        .map(|i| {
            let name = format!("h{:05}.example.org", i % hosts);
            datagram(&name, 1, 2 + (i / hosts) as u64, None, 20)
        })
        .collect();
    let received0 = hbd.state.counters.udp_received.load(Ordering::Relaxed);
    let accepted0 = hbd.state.counters.accepted.load(Ordering::Relaxed);
    let kernel0 = kernel_rcvbuf_errors();

    let rss0 = rss_kib();
    let peak = PeakRss::start();
    let sending = Arc::new(AtomicBool::new(true));
    let scraper = {
        let (sending, url) = (sending.clone(), hbd.url("/metrics"));
        std::thread::spawn(move || {
            let mut scrapes = Vec::new();
            while sending.load(Ordering::Relaxed) {
                let t = Instant::now();
                // curl, as Prometheus would scrape from elsewhere: a client in this (debug)
                // process reading 8 MB would take the CPU that ingest needs.
                // Only its size comes back: the text is not held in this process.
                let out = std::process::Command::new("curl")
                    .args(["-sSf", "--max-time", "30", "-o", "/dev/null"])
                    .args(["-w", "%{size_download}", &url])
                    .output()
                    .expect("curl is needed (scripts/deps installs it)");
                assert!(
                    out.status.success(),
                    "scrape: {}",
                    String::from_utf8_lossy(&out.stderr)
                );
                let size: usize = String::from_utf8_lossy(&out.stdout)
                    .trim()
                    .parse()
                    .expect("curl's size_download");
                scrapes.push((size, t.elapsed()));
                // Once a second (Prometheus scrapes every 15 s or so): back to back, the
                // scraper and hbd rendering for it take both cores of a small machine.
                std::thread::sleep(Duration::from_secs(1).saturating_sub(t.elapsed()));
            }
            scrapes
        })
    };
    // Paced: every millisecond, the datagrams due by then.
    let sock = UdpSocket::bind("127.0.0.1:0").expect("bind");
    let start = Instant::now();
    let mut sent = 0;
    while sent < total {
        let due = ((start.elapsed().as_micros() as usize * rate) / 1_000_000).min(total);
        while sent < due {
            sock.send_to(&datagrams[sent], hbd.udp).expect("send");
            sent += 1;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    let send_time = start.elapsed();
    sending.store(false, Ordering::Relaxed);
    let scrapes = scraper.join().expect("scraper");
    let peak = peak.stop();
    let received = |h: &Hbd| h.state.counters.udp_received.load(Ordering::Relaxed) - received0;
    // Wait until ingest has read everything there is to read.
    let mut last = received(&hbd);
    loop {
        std::thread::sleep(Duration::from_millis(300));
        let now = received(&hbd);
        if now == last {
            break;
        }
        last = now;
    }
    let accepted = hbd.state.counters.accepted.load(Ordering::Relaxed) - accepted0;
    let (bytes, worst) = scrapes
        .iter()
        .fold((0, Duration::ZERO), |(b, w), &(n, t)| (b.max(n), w.max(t)));
    eprintln!(
        "{total} datagrams in {send_time:?}; {} scrapes of {:.1} MB, the slowest {worst:?}; \
         received {last}, applied {accepted}; kernel receive-buffer errors (whole machine) +{}",
        scrapes.len(),
        bytes as f64 / 1e6,
        kernel_rcvbuf_errors() - kernel0
    );
    eprintln!(
        "RSS {} MiB before the scrapes, peak {} MiB during them",
        rss0 / 1024,
        peak / 1024
    );
    assert!(!scrapes.is_empty());
    // Streamed: hbd never holds a scrape's text (8 MB) at once.
    assert!(
        peak - rss0 < 6 * 1024,
        "RSS grew by {} KiB while scraping",
        peak - rss0
    );
    assert!(bytes > 5_000_000, "per-host families were scraped: {bytes}");
    assert_eq!(last, total as u64, "every datagram received");
    assert_eq!(accepted, total as u64, "every datagram applied");
}
