//! `fleet`: N simulated hosts at a fixed interval against the real hbd.
//!
//! Timeline of one run (t = 0 when the generator starts; hbd is already up, its idle RSS
//! read):
//! - `[0, interval)`: ramp, every host's first heartbeat (hbd creates the host);
//! - settle: hbd's CPU sampled every `--settle-sample` s until two samples in a row agree
//!   (notify-policy and the journal work through the fleet's first events for a while
//!   after the ramp), at most `--settle-max` s;
//! - the steady window: hbd's CPU (per thread) and RSS with ingest only;
//! - the API window: list-hosts pages (`/api/v1/hosts?offset=..&limit=100`) at a fixed
//!   request rate, latency measured by the client; CPU again;
//! - the scrape, during traffic: one full `GET /metrics` read by the client, its size,
//!   time, hbd's RSS peak and the datagrams the kernel dropped on hbd's sockets meanwhile;
//! - then `--stop` hosts (spread over the fleet) stop sending, the generator noting each
//!   one's last send time. Two client-side observers see them turn DOWN: a WebSocket
//!   client (hbd pushes each `host_down` event) and a poll of the list API filtered by
//!   `status=down`. Lateness = observed time minus the deadline docs/configuration.md
//!   gives (`grace`: last heartbeat + max(interval × 2.5, interval + 1 s); hbc's
//!   refreshes would renew it too, the generator sends none); also on hbd's own clock
//!   (event `ts_ms` minus the host's `deadline_ms` / `last_seen_ms` from the API).
//!
//! Every API request goes through one client-side pacer (`--api-max-rate`, below hbd's
//! default `api_rate_limit` of 50/s with a burst of 500): hbd runs with its default limit
//! and never answers 429 to the benchmark.
//!
//! Baseline in the same run: the minimal receiver (raw-recv, the same sockets and buffers
//! as hbd) fed the same stream, its CPU.

use std::collections::HashMap;
use std::io::Read;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::payload::{host_name, now_ms, Template};
use crate::send::{Hosts, Sender, Sent};
use crate::stats::{max, median, percentile};
use crate::sys::{self, Proc};

/// hbd's default `grace` (docs/configuration.md): DOWN after interval × grace without a
/// heartbeat, at least interval + 1 s. The bench config leaves it at the default.
const GRACE: f64 = 2.5;

/// hbd's `ws_client_buffer` in the fleet run when the WebSocket observer is on.
const WS_CLIENT_BUFFER: usize = 65_536;

#[derive(Debug, Clone, clap::Args)]
pub struct Opts {
    #[arg(long, default_value = "target/release/hbd")]
    pub hbd: PathBuf,
    #[arg(long, default_value_os_t = std::env::temp_dir().join("hb-bench"))]
    pub work: PathBuf,
    #[arg(long, default_value_t = 3)]
    pub rounds: usize,
    #[arg(long, default_value_t = 100_000)]
    pub hosts: usize,
    #[arg(long, default_value_t = 30)]
    pub readings: usize,
    /// Heartbeat interval (s).
    #[arg(long, default_value_t = 10.0)]
    pub interval: f64,
    /// Seconds after the ramp before settling starts to be checked.
    #[arg(long, default_value_t = 5.0)]
    pub settle: f64,
    /// Settling: seconds per CPU sample.
    #[arg(long, default_value_t = 5.0)]
    pub settle_sample: f64,
    /// Settling: the longest wait (s); the steady window starts then even if unsettled
    /// (and says so).
    #[arg(long, default_value_t = 180.0)]
    pub settle_max: f64,
    /// Seconds of the ingest-only CPU window.
    #[arg(long, default_value_t = 30.0)]
    pub cpu_window: f64,
    /// Seconds of the API window.
    #[arg(long, default_value_t = 30.0)]
    pub api_window: f64,
    /// list-hosts requests per second in the API window.
    #[arg(long, default_value_t = 4.0)]
    pub api_rate: f64,
    /// All API requests of the benchmark together, per second (hbd's default
    /// `api_rate_limit` is 50).
    #[arg(long, default_value_t = 40.0)]
    pub api_max_rate: f64,
    /// Page size of list-hosts.
    #[arg(long, default_value_t = 100)]
    pub page: usize,
    /// hbd's `metrics_per_host` (the scrape then lists every host and reading).
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    pub metrics_per_host: bool,
    /// Hosts that stop sending (DOWN lateness).
    #[arg(long, default_value_t = 1000)]
    pub stop: usize,
    /// Watch for DOWN on a WebSocket too (it receives every host's `beat`).
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    pub ws_observer: bool,
    /// Polls per second of `/api/v1/hosts?status=down` while hosts go DOWN.
    #[arg(long, default_value_t = 4.0)]
    pub down_poll: f64,
    /// Stopped hosts whose deadline is read from `/api/v1/hosts/{name}` (hbd's clock).
    #[arg(long, default_value_t = 200)]
    pub deadline_reads: usize,
    /// Seconds of the raw-recv baseline window.
    #[arg(long, default_value_t = 20.0)]
    pub baseline_window: f64,
    #[arg(long, default_value_t = 0.3)]
    pub max_busy: f64,
    /// Sender flows: threads with a socket each, placed on distinct receiver sockets
    /// where they can be (for hbd and the raw-recv baseline alike). A real fleet comes
    /// from many addresses, which the kernel spreads over hbd's sockets; one flow lands
    /// on one socket and so on one ingest thread.
    #[arg(long, default_value_t = 1)]
    pub flows: usize,
}

/// One sender per part of `hosts`: a single plain one for one flow, else placed on
/// distinct receiver threads named `<prefix>N` (as the ingest benchmark does). Returns
/// the senders, a line saying where they went and what their placement probes sent
/// (heartbeats too: counted as sent).
fn flows(
    p: &Proc,
    prefix: &str,
    tpl: &Template,
    hosts: &mut [Hosts],
) -> Result<(Vec<Sender>, String, Sent)> {
    if hosts.len() <= 1 {
        return Ok((
            vec![Sender::new(p.udp, 32, tpl.len())?],
            "one sender flow".into(),
            Sent::default(),
        ));
    }
    crate::ingest::place_senders(p, prefix, tpl, hosts, now_ms(), 32)
}

/// One client-side budget for every API request of a run: at most one per `gap`.
struct Pacer {
    next: Mutex<Instant>,
    gap: Duration,
    /// Answers `429` (hbd does not count its HTTP rate-limit refusals in `/metrics`).
    refused: AtomicU64,
}

impl Pacer {
    fn new(per_second: f64) -> Pacer {
        Pacer {
            next: Mutex::new(Instant::now()),
            gap: Duration::from_secs_f64(1.0 / per_second.max(0.1)),
            refused: AtomicU64::new(0),
        }
    }

    fn wait(&self) {
        let at = {
            let mut n = self.next.lock().unwrap_or_else(|p| p.into_inner());
            let at = (*n).max(Instant::now());
            *n = at + self.gap;
            at
        };
        let now = Instant::now();
        if at > now {
            std::thread::sleep(at - now);
        }
    }

    /// `GET path` now (the caller waited), counting a `429`.
    fn send(&self, p: &Proc, agent: &ureq::Agent, path: &str) -> Result<(u16, String)> {
        let r = p.get(agent, path);
        if matches!(r, Ok((429, _))) {
            self.refused.fetch_add(1, Ordering::Relaxed);
        }
        r
    }

    fn get(&self, p: &Proc, agent: &ureq::Agent, path: &str) -> Result<(u16, String)> {
        self.wait();
        self.send(p, agent, path)
    }

    fn json(&self, p: &Proc, agent: &ureq::Agent, path: &str) -> Result<serde_json::Value> {
        let (code, body) = self.get(p, agent, path)?;
        if code != 200 {
            bail!("GET {path}: {code} {body}");
        }
        serde_json::from_str(&body).with_context(|| format!("GET {path}: not JSON"))
    }

    fn counters(&self, p: &Proc, agent: &ureq::Agent) -> Result<sys::Counters> {
        self.wait();
        p.counters(agent)
    }
}

/// Sleeps until `until`, sampling hbd's RSS every 250 ms into `rss_max` (kB).
fn sleep_sampling(until: Instant, pid: u32, rss_max: &mut u64) {
    loop {
        let now = Instant::now();
        *rss_max = (*rss_max).max(sys::rss_kb(pid).0);
        if now >= until {
            return;
        }
        std::thread::sleep((until - now).min(Duration::from_millis(250)));
    }
}

fn cores(
    a: &std::collections::BTreeMap<String, u64>,
    b: &std::collections::BTreeMap<String, u64>,
    secs: f64,
) -> f64 {
    sys::cpu_delta(a, b).iter().map(|(_, d)| *d).sum::<u64>() as f64 / 1e9 / secs
}

struct Scrape {
    ms: f64,
    mb: f64,
    status: u16,
    /// Kernel drops on hbd's sockets from the scrape's start to 2 s after its end.
    drops: u64,
    /// Datagrams hbd rejected in that time.
    rejected: u64,
    /// hbd's CPU during the scrape (cores).
    cores: f64,
    rss_before_mb: f64,
    rss_peak_mb: f64,
}

struct Round {
    others: f64,
    baseline_cores: f64,
    rss_idle_mb: f64,
    settle_s: f64,
    settled: bool,
    settle_trace: Vec<(f64, String)>,
    cores: f64,
    cores_api: f64,
    threads: Vec<(String, u64)>,
    window_s: f64,
    rss_mb: f64,
    rss_max_mb: f64,
    hwm_mb: f64,
    api_ms: Vec<f64>,
    api_errors: usize,
    scrape: Option<Scrape>,
    /// Client-observed, WebSocket: observed − deadline; observed − last send.
    ws_late_ms: Vec<f64>,
    ws_since_last_ms: Vec<f64>,
    ws_error: Option<String>,
    /// Client-observed, list API poll.
    poll_late_ms: Vec<f64>,
    poll_since_last_ms: Vec<f64>,
    polls: usize,
    poll_ms: Vec<f64>,
    /// hbd's clock: event ts_ms − deadline.
    hbd_late_ms: Vec<f64>,
    stopped: usize,
    missing_down: usize,
    sent: Sent,
    accepted: u64,
    rejected: u64,
    journal_dropped: u64,
    kernel_drops: u64,
    api_429: u64,
}

fn baseline(o: &Opts, tpl: &Template, rate: f64) -> Result<f64> {
    let p = sys::spawn_self("raw-recv", &o.work, &[])?;
    println!(
        "   raw-recv UDP port {}: {}",
        p.udp.port(),
        sys::udp_port_buffers(p.udp.port())
    );
    let mut hosts = Hosts::split(o.hosts, o.flows.max(1));
    let (mut senders, placed, _) = flows(&p, "raw-recv-", tpl, &mut hosts)?;
    println!("   raw-recv: {placed}");
    let pid = p.pid();
    let window = Duration::from_secs_f64(o.baseline_window);
    let per_flow = rate / senders.len() as f64;
    let cores = std::thread::scope(|s| {
        let gens: Vec<_> = senders
            .iter_mut()
            .zip(hosts.iter_mut())
            .map(|(sender, hosts)| {
                s.spawn(move || {
                    sender.paced(
                        tpl,
                        hosts,
                        now_ms(),
                        per_flow,
                        window + Duration::from_secs(3),
                        None,
                        |_| None,
                        |_| {},
                    )
                })
            })
            .collect();
        std::thread::sleep(Duration::from_secs(2));
        let c0 = sys::total_cpu(pid);
        let t0 = Instant::now();
        std::thread::sleep(window);
        let c1 = sys::total_cpu(pid);
        let cores = (c1 - c0) as f64 / t0.elapsed().as_nanos() as f64;
        for g in gens {
            let _ = g.join();
        }
        cores
    });
    p.stop(Duration::from_secs(5))?;
    Ok(cores)
}

/// What the WebSocket observer saw: host → wall-clock ms its `host_down` arrived.
#[derive(Default)]
struct Seen {
    ready: AtomicBool,
    down: Mutex<HashMap<String, u64>>,
}

/// Reads hbd's WebSocket until `end`: the snapshot, then every message; `host_down`
/// events are stamped on arrival. Only messages naming `host_down` are parsed.
fn ws_observer(p: &Proc, seen: &Seen, end: &AtomicBool) -> Result<()> {
    use tungstenite::protocol::WebSocketConfig;
    // The snapshot holds every host (tens of MB at 100,000).
    let cfg = WebSocketConfig {
        max_message_size: None,
        max_frame_size: None,
        ..WebSocketConfig::default()
    };
    let url = format!("ws://{}/", p.ws);
    let (mut ws, _) = tungstenite::client::connect_with_config(url.as_str(), Some(cfg), 3)
        .with_context(|| format!("WebSocket {url}"))?;
    if let tungstenite::stream::MaybeTlsStream::Plain(s) = ws.get_ref() {
        s.set_read_timeout(Some(Duration::from_millis(200)))?;
    }
    while !end.load(Ordering::Relaxed) {
        match ws.read() {
            Ok(tungstenite::Message::Text(t)) => {
                let at = now_ms();
                if !seen.ready.load(Ordering::Relaxed) {
                    seen.ready.store(true, Ordering::Relaxed);
                    continue;
                }
                if t.starts_with("{\"type\":\"event\"") && t.contains("\"host_down\"") {
                    let v: serde_json::Value = serde_json::from_str(&t)?;
                    if let Some(h) = v["data"]["host"].as_str() {
                        seen.down
                            .lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .entry(h.to_string())
                            .or_insert(at);
                    }
                }
            }
            Ok(tungstenite::Message::Close(c)) => bail!("hbd closed the WebSocket: {c:?}"),
            Ok(_) => {}
            Err(tungstenite::Error::Io(e))
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

/// One full `GET /metrics` read to the end by the client, during traffic.
fn scrape(p: &Proc, agent: &ureq::Agent, pacer: &Pacer) -> Result<Scrape> {
    let pid = p.pid();
    let c0 = pacer.counters(p, agent)?;
    let d0 = sys::udp_port_drops(p.udp.port());
    let cpu0 = sys::total_cpu(pid);
    let rss_before = sys::rss_kb(pid).0;
    let peak = AtomicU64::new(rss_before);
    let done = AtomicBool::new(false);
    let (status, bytes, ms, cpu1) = std::thread::scope(|s| -> Result<_> {
        s.spawn(|| {
            while !done.load(Ordering::Relaxed) {
                peak.fetch_max(sys::rss_kb(pid).0, Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(20));
            }
        });
        pacer.wait();
        let t = Instant::now();
        let url = format!("http://{}/metrics", p.http);
        let r = agent.get(&url).call();
        let out = match r {
            Ok(r) => {
                let status = r.status();
                let mut rd = r.into_reader();
                let mut buf = vec![0u8; 1 << 20];
                let mut n = 0u64;
                loop {
                    let k = rd.read(&mut buf)?;
                    if k == 0 {
                        break;
                    }
                    n += k as u64;
                }
                (status, n)
            }
            Err(ureq::Error::Status(code, _)) => (code, 0),
            Err(e) => {
                done.store(true, Ordering::Relaxed);
                bail!("GET {url}: {e}");
            }
        };
        let ms = t.elapsed().as_secs_f64() * 1e3;
        let cpu1 = sys::total_cpu(pid);
        done.store(true, Ordering::Relaxed);
        Ok((out.0, out.1, ms, cpu1))
    })?;
    std::thread::sleep(Duration::from_secs(2));
    let c1 = pacer.counters(p, agent)?;
    Ok(Scrape {
        ms,
        mb: bytes as f64 / 1e6,
        status,
        drops: sys::udp_port_drops(p.udp.port()) - d0,
        rejected: c1.dropped - c0.dropped,
        cores: (cpu1 - cpu0) as f64 / 1e9 / (ms / 1e3).max(1e-3),
        rss_before_mb: rss_before as f64 / 1024.0,
        rss_peak_mb: peak.load(Ordering::Relaxed) as f64 / 1024.0,
    })
}

fn round(o: &Opts, tpl: &Template) -> Result<Round> {
    let rate = o.hosts as f64 / o.interval;
    let baseline_cores = baseline(o, tpl, rate)?;
    let max_hosts = (o.hosts + o.hosts / 10).max(200_000);
    let mut extra = String::new();
    if o.metrics_per_host {
        extra.push_str("metrics_per_host: true\n");
    }
    if o.ws_observer {
        // With the default (1,024 messages) a client connecting to 100,000 hosts at
        // 10,000 beats/s is closed as "client too slow" while its snapshot is built and
        // sent (measured); 65,536 is 6.5 s of beats.
        extra.push_str(&format!("ws_client_buffer: {WS_CLIENT_BUFFER}\n"));
    }
    let p = sys::spawn_hbd_with(
        &o.hbd,
        &o.work,
        "hbd-fleet",
        &sys::hbd_config(max_hosts, &extra),
    )?;
    println!(
        "   hbd UDP port {}: {}; config max_hosts: {max_hosts}, metrics_per_host: {}, ws_client_buffer: {}, api_rate_limit default (50/s, burst 500)",
        p.udp.port(),
        sys::udp_port_buffers(p.udp.port()),
        o.metrics_per_host,
        if o.ws_observer {
            WS_CLIENT_BUFFER.to_string()
        } else {
            "default (1024)".into()
        }
    );
    let pid = p.pid();
    std::thread::sleep(Duration::from_millis(500));
    let rss_idle_mb = sys::rss_kb(pid).0 as f64 / 1024.0;
    let agent = sys::agent();
    let pacer = Pacer::new(o.api_max_rate);
    let interval = Duration::from_secs_f64(o.interval);
    let cpu_w = Duration::from_secs_f64(o.cpu_window);
    let api_w = Duration::from_secs_f64(o.api_window);
    let span_ms = ((o.interval * GRACE).max(o.interval + 1.0) * 1000.0) as u64;
    let every = (o.hosts / o.stop.max(1)).max(1);
    let stopped: Vec<usize> = (0..o.hosts).step_by(every).take(o.stop).collect();
    let stop_now = AtomicBool::new(false);
    let t_stop_ms = AtomicU64::new(0);
    let end_gen = AtomicBool::new(false);
    let mut parts = Hosts::split(o.hosts, o.flows.max(1));
    let (senders, placed, probes) = flows(&p, "udp-ingest-", tpl, &mut parts)?;
    println!("   hbd: {placed}");
    let stopped_set: std::collections::HashSet<usize> = stopped.iter().copied().collect();
    let k0 = sys::udp_port_drops(p.udp.port());
    // What the DOWN observers share with the main thread (outside the scope: its threads
    // borrow them).
    let seen = Seen::default();
    let end_obs = AtomicBool::new(false);
    let polled: Mutex<HashMap<String, u64>> = Mutex::default();
    let poll_ms: Mutex<Vec<f64>> = Mutex::default();
    let r = std::thread::scope(|s| -> Result<Round> {
        let per_flow = rate / senders.len() as f64;
        let instance = now_ms();
        let gens: Vec<_> = senders
            .into_iter()
            .zip(parts)
            .map(|(mut sender, mut hosts)| {
                let (end_gen, stop_now, t_stop_ms, stopped_set) =
                    (&end_gen, &stop_now, &t_stop_ms, &stopped_set);
                s.spawn(move || {
                    let t0 = Instant::now();
                    let mut sent = Sent::default();
                    let mut stopping = false;
                    // Chunks of 5 s (each keeps the pacing; a partial batch at a chunk's
                    // end is < 0.3 % of it), so the main thread can stop hosts and end
                    // the run.
                    while !end_gen.load(Ordering::Relaxed)
                        && t0.elapsed() < Duration::from_secs(3600)
                    {
                        if stop_now.load(Ordering::Relaxed) && !stopping {
                            stopping = true;
                            for (j, id) in hosts.ids.iter().enumerate() {
                                if stopped_set.contains(id) {
                                    hosts.stopped[j] = true;
                                }
                            }
                            // The first flow to stop its hosts stamps the time.
                            let _ = t_stop_ms.compare_exchange(
                                0,
                                now_ms(),
                                Ordering::Relaxed,
                                Ordering::Relaxed,
                            );
                        }
                        let chunk = if stopping { 1.0 } else { 5.0 };
                        let more = sender.paced(
                            tpl,
                            &mut hosts,
                            instance,
                            per_flow,
                            Duration::from_secs_f64(chunk),
                            None,
                            |_| None,
                            |_| {},
                        );
                        sent.add(more);
                    }
                    sent.elapsed = t0.elapsed();
                    (sent, hosts)
                })
            })
            .collect();
        let mut rss_max = 0u64;
        let t0 = Instant::now();
        // Ramp, then settle until hbd's CPU is steady.
        sleep_sampling(
            t0 + interval + Duration::from_secs_f64(o.settle),
            pid,
            &mut rss_max,
        );
        let sample = Duration::from_secs_f64(o.settle_sample);
        let mut trace = Vec::new();
        let mut prev: Option<f64> = None;
        let mut settled = false;
        let s0 = Instant::now();
        while s0.elapsed() < Duration::from_secs_f64(o.settle_max) {
            let a = sys::threads_cpu(pid);
            let w = Instant::now();
            sleep_sampling(w + sample, pid, &mut rss_max);
            let b = sys::threads_cpu(pid);
            let secs = w.elapsed().as_secs_f64();
            let c = cores(&a, &b, secs);
            let top = sys::cpu_delta(&a, &b)
                .iter()
                .take(3)
                .map(|(k, ns)| format!("{k} {:.1} %", *ns as f64 / 1e7 / secs))
                .collect::<Vec<_>>()
                .join(", ");
            trace.push((c, top));
            if let Some(pc) = prev {
                if (c - pc).abs() <= (0.15 * pc).max(0.01) {
                    settled = true;
                    break;
                }
            }
            prev = Some(c);
        }
        let settle_s = o.settle + s0.elapsed().as_secs_f64();
        // Steady window, ingest only.
        let c0 = sys::threads_cpu(pid);
        let others = sys::Others::start(pid);
        let w0 = Instant::now();
        sleep_sampling(w0 + cpu_w, pid, &mut rss_max);
        let c1 = sys::threads_cpu(pid);
        let window_s = w0.elapsed().as_secs_f64();
        let threads = sys::cpu_delta(&c0, &c1);
        let cores_steady = cores(&c0, &c1, window_s);
        let rss_mb = sys::rss_kb(pid).0 as f64 / 1024.0;
        // API window.
        let a0 = Instant::now();
        let mut api_ms = Vec::new();
        let mut api_errors = 0;
        let pages = (o.hosts / o.page).max(1);
        let mut j = 0usize;
        while a0.elapsed() < api_w {
            let due = a0 + Duration::from_secs_f64(j as f64 / o.api_rate);
            sleep_sampling(due, pid, &mut rss_max);
            // Pages spread over the list (a prime stride), like a user paging around.
            let offset = (j * 7919 % pages) * o.page;
            let path = format!("/api/v1/hosts?offset={offset}&limit={}", o.page);
            pacer.wait();
            let t = Instant::now();
            match pacer.send(&p, &agent, &path) {
                Ok((200, body)) if body.contains("\"hosts\"") => {
                    api_ms.push(t.elapsed().as_secs_f64() * 1e3)
                }
                _ => api_errors += 1,
            }
            j += 1;
        }
        let c2 = sys::threads_cpu(pid);
        let others = others.cores();
        let cores_api = cores(&c1, &c2, a0.elapsed().as_secs_f64());
        // One scrape during traffic.
        let scrape = match scrape(&p, &agent, &pacer) {
            Ok(s) => Some(s),
            Err(e) => {
                println!("   /metrics scrape failed: {e:#}");
                None
            }
        };
        // DOWN phase: observers first, then the hosts stop.
        let ws = o
            .ws_observer
            .then(|| s.spawn(|| ws_observer(&p, &seen, &end_obs)));
        if o.ws_observer {
            let w = Instant::now();
            while !seen.ready.load(Ordering::Relaxed) && w.elapsed() < Duration::from_secs(60) {
                if ws.as_ref().is_some_and(|h| h.is_finished()) {
                    break;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        let poller = s.spawn(|| {
            let path = format!("/api/v1/hosts?status=down&limit={}", o.stop + 100);
            let gap = Duration::from_secs_f64(1.0 / o.down_poll.max(0.1));
            let mut next = Instant::now();
            while !end_obs.load(Ordering::Relaxed) {
                let now = Instant::now();
                if next > now {
                    std::thread::sleep(next - now);
                }
                next += gap;
                pacer.wait();
                let t = Instant::now();
                let Ok((200, body)) = pacer.send(&p, &agent, &path) else {
                    continue;
                };
                let at = now_ms();
                poll_ms
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .push(t.elapsed().as_secs_f64() * 1e3);
                let Ok(v) = serde_json::from_str::<serde_json::Value>(&body) else {
                    continue;
                };
                let mut m = polled.lock().unwrap_or_else(|p| p.into_inner());
                for h in v["hosts"].as_array().into_iter().flatten() {
                    if let Some(n) = h["name"].as_str() {
                        m.entry(n.to_string()).or_insert(at);
                    }
                }
            }
        });
        stop_now.store(true, Ordering::Relaxed);
        let w = Instant::now();
        while t_stop_ms.load(Ordering::Relaxed) == 0 && w.elapsed() < Duration::from_secs(30) {
            std::thread::sleep(Duration::from_millis(10));
        }
        let t_stop = t_stop_ms.load(Ordering::Relaxed);
        if t_stop == 0 {
            bail!("the generator did not stop the hosts");
        }
        // Every stopped host's deadline is before t_stop + span; wait for both observers.
        let give_up = t_stop + span_ms + 15_000;
        loop {
            let n_ws = seen.down.lock().unwrap_or_else(|p| p.into_inner()).len();
            let n_poll = polled.lock().unwrap_or_else(|p| p.into_inner()).len();
            let ws_done = !o.ws_observer
                || n_ws >= stopped.len()
                || ws.as_ref().is_some_and(|h| h.is_finished());
            if (ws_done && n_poll >= stopped.len()) || now_ms() > give_up {
                break;
            }
            sleep_sampling(
                Instant::now() + Duration::from_millis(250),
                pid,
                &mut rss_max,
            );
        }
        end_obs.store(true, Ordering::Relaxed);
        let _ = poller.join();
        let ws_error = match ws.map(|h| h.join()) {
            Some(Ok(Err(e))) => Some(format!("{e:#}")),
            Some(Err(_)) => Some("observer panicked".into()),
            _ => None,
        };
        end_gen.store(true, Ordering::Relaxed);
        let mut sent = probes;
        // Each host's last send, by its global index.
        let mut last_sent_ms = vec![0u64; o.hosts];
        for g in gens {
            let (s, hosts) = g
                .join()
                .map_err(|_| anyhow::anyhow!("generator panicked"))?;
            sent.add(s);
            for (j, &id) in hosts.ids.iter().enumerate() {
                if let (Some(slot), Some(&ms)) = (last_sent_ms.get_mut(id), hosts.last_ms.get(j)) {
                    *slot = ms;
                }
            }
        }
        // hbd's own clock: event ts_ms against the deadline from the host's JSON.
        let mut hbd_deadline = HashMap::new();
        for &i in stopped.iter().take(o.deadline_reads) {
            // A host whose every datagram was lost is unknown to hbd (404): skipped.
            let Ok(h) = pacer.json(&p, &agent, &format!("/api/v1/hosts/{}", host_name(i))) else {
                continue;
            };
            let last = h["last_seen_ms"].as_u64().unwrap_or(0);
            let iv = h["interval_ms"].as_u64().unwrap_or(0);
            let span = ((iv.max(100) as f64 * GRACE) as u64).max(iv + 1000);
            // `deadline_ms` is reset to 0 once the host is DOWN.
            let d = match h["deadline_ms"].as_u64() {
                Some(d) if d > 0 => d,
                _ => last + span,
            };
            hbd_deadline.insert(host_name(i), d);
        }
        let ev = pacer.json(&p, &agent, "/api/v1/events?kind=host_down&limit=10000")?;
        let mut hbd_late_ms = Vec::new();
        for e in ev["events"].as_array().into_iter().flatten() {
            if let (Some(h), Some(ts)) = (e["host"].as_str(), e["ts_ms"].as_u64()) {
                if let Some(d) = hbd_deadline.get(h) {
                    hbd_late_ms.push(ts as f64 - *d as f64);
                }
            }
        }
        let ws_seen = std::mem::take(&mut *seen.down.lock().unwrap_or_else(|p| p.into_inner()));
        let polled = std::mem::take(&mut *polled.lock().unwrap_or_else(|p| p.into_inner()));
        let (mut ws_late_ms, mut ws_since_last_ms) = (Vec::new(), Vec::new());
        let (mut poll_late_ms, mut poll_since_last_ms) = (Vec::new(), Vec::new());
        let mut missing_down = 0;
        for &i in &stopped {
            let last = last_sent_ms.get(i).copied().unwrap_or(0);
            let name = host_name(i);
            if let Some(&at) = ws_seen.get(&name) {
                ws_late_ms.push(at as f64 - (last + span_ms) as f64);
                ws_since_last_ms.push((at - last.min(at)) as f64);
            }
            match polled.get(&name) {
                Some(&at) => {
                    poll_late_ms.push(at as f64 - (last + span_ms) as f64);
                    poll_since_last_ms.push((at - last.min(at)) as f64);
                }
                None if !ws_seen.contains_key(&name) => missing_down += 1,
                None => {}
            }
        }
        // Let the last datagrams land, then the totals.
        std::thread::sleep(Duration::from_millis(500));
        let c = pacer.counters(&p, &agent)?;
        let (_, hwm) = sys::rss_kb(pid);
        let poll_ms = std::mem::take(&mut *poll_ms.lock().unwrap_or_else(|p| p.into_inner()));
        Ok(Round {
            others,
            baseline_cores,
            rss_idle_mb,
            settle_s,
            settled,
            settle_trace: trace,
            cores: cores_steady,
            cores_api,
            threads,
            window_s,
            rss_mb,
            rss_max_mb: rss_max as f64 / 1024.0,
            hwm_mb: hwm as f64 / 1024.0,
            api_ms,
            api_errors,
            scrape,
            ws_late_ms,
            ws_since_last_ms,
            ws_error,
            poll_late_ms,
            poll_since_last_ms,
            polls: poll_ms.len(),
            poll_ms,
            hbd_late_ms,
            stopped: stopped.len(),
            missing_down,
            sent,
            accepted: c.accepted,
            rejected: c.dropped,
            journal_dropped: c.journal_dropped,
            kernel_drops: sys::udp_port_drops(p.udp.port()) - k0,
            api_429: pacer.refused.load(Ordering::Relaxed),
        })
    })?;
    p.stop(Duration::from_secs(60))?;
    Ok(r)
}

fn dist(v: &[f64]) -> String {
    format!(
        "p50 {:.0} / p99 {:.0} / max {:.0} ms (min {:.0}, n {})",
        median(v),
        percentile(v, 99.0),
        max(v),
        v.iter().copied().fold(f64::NAN, f64::min),
        v.len()
    )
}

pub fn run(o: &Opts) -> Result<()> {
    std::fs::create_dir_all(&o.work)?;
    let tpl = Template::new(o.readings, crate::SECRET, (o.interval * 1000.0) as u32)?;
    let rate = o.hosts as f64 / o.interval;
    println!(
        "== Fleet: {} simulated hosts every {} s ({:.0} datagrams/s of {} B, {} readings), signed",
        o.hosts,
        o.interval,
        rate,
        tpl.len(),
        o.readings
    );
    println!(
        "   windows: ramp {} s, settle >= {} s (until two {} s CPU samples agree within 15 %, at most {} s more), steady ingest-only {} s, API {} s ({} list-hosts pages/s of {}), one /metrics scrape during traffic, then {} hosts stop",
        o.interval, o.settle, o.settle_sample, o.settle_max, o.cpu_window, o.api_window, o.api_rate, o.page, o.stop
    );
    println!(
        "   API budget: every request of the benchmark paced to <= {}/s on the client, under hbd's default api_rate_limit (50/s, burst 500), which the bench config leaves as it is",
        o.api_max_rate
    );
    println!(
        "   DOWN rule (docs/configuration.md `grace`, docs/notifications.md): deadline = last heartbeat + max(interval x {GRACE}, interval + 1 s) = last + {:.1} s; the generator sends no refreshes",
        (o.interval * GRACE).max(o.interval + 1.0)
    );
    println!(
        "   NOTE: {} cores; the generator ({} sender thread(s)) and hbd share them. CPU figures are hbd's own threads (schedstat).",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        o.flows.max(1)
    );
    let mut rounds = Vec::new();
    for i in 0..o.rounds {
        let q = sys::wait_quiet(o.max_busy, Duration::from_secs(180));
        println!("-- round {}/{}  ({q})", i + 1, o.rounds);
        let r = round(o, &tpl)?;
        println!(
            "   settling: {} after {:.0} s; CPU per {} s sample: {}",
            if r.settled { "steady" } else { "NOT steady" },
            r.settle_s,
            o.settle_sample,
            r.settle_trace
                .iter()
                .map(|(c, top)| format!("{:.1} % ({top})", c * 100.0))
                .collect::<Vec<_>>()
                .join("; ")
        );
        println!(
            "   hbd CPU {:.1} % of one core, steady ingest-only (raw-recv baseline {:.1} %, ratio {:.1}); {:.1} % with list-hosts paging; other programs {:.2} cores meanwhile",
            r.cores * 100.0,
            r.baseline_cores * 100.0,
            r.cores / r.baseline_cores,
            r.cores_api * 100.0,
            r.others
        );
        println!(
            "   per thread in the steady window: {}",
            r.threads
                .iter()
                .take(8)
                .map(|(k, ns)| format!("{k} {:.1} %", *ns as f64 / 1e7 / r.window_s))
                .collect::<Vec<_>>()
                .join(", ")
        );
        println!(
            "   RSS idle {:.0} MB, {:.0} MB after ramp+steady window ({:.0} B per host), max sampled {:.0} MB, VmHWM {:.0} MB",
            r.rss_idle_mb,
            r.rss_mb,
            (r.rss_mb - r.rss_idle_mb) * 1024.0 * 1024.0 / o.hosts as f64,
            r.rss_max_mb,
            r.hwm_mb
        );
        println!(
            "   list-hosts: {} requests, p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms, errors {}",
            r.api_ms.len(),
            median(&r.api_ms),
            percentile(&r.api_ms, 99.0),
            max(&r.api_ms),
            r.api_errors
        );
        match &r.scrape {
            Some(s) => println!(
                "   /metrics during traffic: status {}, {:.1} MB in {:.0} ms, hbd CPU {:.0} % meanwhile, RSS {:.0} -> peak {:.0} MB, kernel drops on hbd's sockets {} and rejected {} (scrape start to 2 s after)",
                s.status, s.mb, s.ms, s.cores * 100.0, s.rss_before_mb, s.rss_peak_mb, s.drops, s.rejected
            ),
            None => println!("   /metrics during traffic: failed"),
        }
        println!(
            "   DOWN, client-observed on the WebSocket: lateness after deadline {}; last heartbeat -> DOWN {}{}",
            dist(&r.ws_late_ms),
            dist(&r.ws_since_last_ms),
            r.ws_error
                .as_deref()
                .map(|e| format!("; observer error: {e}"))
                .unwrap_or_default()
        );
        println!(
            "   DOWN, client-observed by polling /api/v1/hosts?status=down at {}/s ({} polls, each p50 {:.0} ms): lateness {}; last heartbeat -> DOWN {}",
            o.down_poll,
            r.polls,
            median(&r.poll_ms),
            dist(&r.poll_late_ms),
            dist(&r.poll_since_last_ms)
        );
        println!(
            "   DOWN on hbd's clock (event ts_ms - deadline_ms, {} hosts): {}; hosts never seen DOWN: {} of {}",
            o.deadline_reads.min(r.stopped),
            dist(&r.hbd_late_ms),
            r.missing_down,
            r.stopped
        );
        println!(
            "   sent {} ({:.0}/s), accepted {}, rejected {}, kernel drops on hbd's sockets {}, journal dropped {}, API requests answered 429: {}",
            r.sent.datagrams,
            r.sent.rate(),
            r.accepted,
            r.rejected,
            r.kernel_drops,
            r.journal_dropped,
            r.api_429
        );
        rounds.push(r);
    }
    let m = |f: &dyn Fn(&Round) -> f64| median(&rounds.iter().map(f).collect::<Vec<_>>());
    println!();
    println!(
        "Fleet summary ({} hosts, {} s interval; median of {} rounds):",
        o.hosts, o.interval, o.rounds
    );
    println!("| figure | value | baseline / goal |");
    println!("|---|---|---|");
    println!(
        "| hbd CPU, steady, ingest only | {:.1} % of one core ({:.1} % of the machine) | raw-recv {:.1} % (ratio {:.1}) |",
        m(&|r| r.cores * 100.0),
        m(&|r| r.cores * 50.0),
        m(&|r| r.baseline_cores * 100.0),
        m(&|r| r.cores / r.baseline_cores)
    );
    println!(
        "| hbd CPU, with list-hosts paging ({} req/s) | {:.1} % of one core | |",
        o.api_rate,
        m(&|r| r.cores_api * 100.0)
    );
    println!(
        "| hbd RSS idle / steady / VmHWM | {:.0} / {:.0} / {:.0} MB | goal < 200 MB at 100,000 hosts |",
        m(&|r| r.rss_idle_mb),
        m(&|r| r.rss_mb),
        m(&|r| r.hwm_mb)
    );
    println!(
        "| RSS growth per host (steady − idle) / hosts | {:.0} B | |",
        m(&|r| (r.rss_mb - r.rss_idle_mb) * 1024.0 * 1024.0 / o.hosts as f64)
    );
    println!(
        "| list-hosts latency p50 / p99 (page of {}, client) | {:.1} / {:.1} ms | |",
        o.page,
        m(&|r| median(&r.api_ms)),
        m(&|r| percentile(&r.api_ms, 99.0))
    );
    if rounds.iter().all(|r| r.scrape.is_some()) {
        let sm = |f: &dyn Fn(&Scrape) -> f64| m(&|r| r.scrape.as_ref().map_or(f64::NAN, f));
        println!(
            "| one /metrics during traffic (metrics_per_host: {}) | {:.1} MB in {:.0} ms; RSS peak {:.0} MB; lost {:.0} (kernel drops) + rejected {:.0} | goal: loses nothing |",
            o.metrics_per_host,
            sm(&|s| s.mb),
            sm(&|s| s.ms),
            sm(&|s| s.rss_peak_mb),
            sm(&|s| s.drops as f64),
            sm(&|s| s.rejected as f64)
        );
    }
    println!(
        "| DOWN lateness after deadline, client (WebSocket) p50 / p99 / max | {:.0} / {:.0} / {:.0} ms | goal < 1000 ms |",
        m(&|r| median(&r.ws_late_ms)),
        m(&|r| percentile(&r.ws_late_ms, 99.0)),
        m(&|r| max(&r.ws_late_ms))
    );
    println!(
        "| DOWN lateness after deadline, client (list poll {}/s) p50 / p99 / max | {:.0} / {:.0} / {:.0} ms | |",
        o.down_poll,
        m(&|r| median(&r.poll_late_ms)),
        m(&|r| percentile(&r.poll_late_ms, 99.0)),
        m(&|r| max(&r.poll_late_ms))
    );
    println!(
        "| last heartbeat -> DOWN seen (WebSocket) p50 / max | {:.0} / {:.0} ms | deadline {:.0} ms |",
        m(&|r| median(&r.ws_since_last_ms)),
        m(&|r| max(&r.ws_since_last_ms)),
        (o.interval * GRACE).max(o.interval + 1.0) * 1000.0
    );
    println!(
        "| DOWN lateness on hbd's clock (ts_ms) p50 / max | {:.0} / {:.0} ms | |",
        m(&|r| median(&r.hbd_late_ms)),
        m(&|r| max(&r.hbd_late_ms))
    );
    println!(
        "| stopped hosts never seen DOWN | {:.0} of {} | |",
        m(&|r| r.missing_down as f64),
        o.stop
    );
    println!(
        "| datagrams lost or rejected (sent − accepted) | {:.0} | |",
        m(&|r| (r.sent.datagrams.saturating_sub(r.accepted)) as f64)
    );
    Ok(())
}
