//! `fleet`: N simulated hosts at a fixed interval against the real hbd.
//!
//! Timeline of one run (t = 0 when the generator starts; hbd is already up):
//! - `[0, interval)`: ramp, every host's first heartbeat (hbd creates the host);
//! - settle, then the quiet window: hbd's CPU (per thread) and RSS with ingest only;
//! - the API window: list-hosts pages (`/api/v1/hosts?offset=..&limit=100`) at a fixed
//!   request rate, latency measured by the client; CPU again;
//! - then `--stop` hosts (spread over the fleet) stop sending. Their deadlines are read
//!   from `/api/v1/hosts/{name}` (`deadline_ms` = last heartbeat + interval × grace, at
//!   least interval + 1 s) and compared with the `ts_ms` of their `host_down` events from
//!   `/api/v1/events?kind=host_down`: how late DOWN fires, on hbd's own clock.
//!
//! Baseline in the same run: the minimal receiver (raw-recv) fed the same stream, its CPU.

use std::path::PathBuf;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::payload::{host_name, now_ms, Template};
use crate::send::{Hosts, Sender, Sent};
use crate::stats::{max, median, percentile};
use crate::sys::{self, Proc};

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
    /// Seconds after the ramp before measuring.
    #[arg(long, default_value_t = 5.0)]
    pub settle: f64,
    /// Seconds of the ingest-only CPU window.
    #[arg(long, default_value_t = 30.0)]
    pub cpu_window: f64,
    /// Seconds of the API window.
    #[arg(long, default_value_t = 30.0)]
    pub api_window: f64,
    /// list-hosts requests per second in the API window.
    #[arg(long, default_value_t = 4.0)]
    pub api_rate: f64,
    /// Page size of list-hosts.
    #[arg(long, default_value_t = 100)]
    pub page: usize,
    /// Hosts that stop sending (DOWN lateness).
    #[arg(long, default_value_t = 1000)]
    pub stop: usize,
    /// Seconds of the raw-recv baseline window.
    #[arg(long, default_value_t = 20.0)]
    pub baseline_window: f64,
    #[arg(long, default_value_t = 0.3)]
    pub max_busy: f64,
}

/// Sleeps until `until`, sampling hbd's RSS every 500 ms into `rss_max` (kB).
fn sleep_sampling(until: Instant, pid: u32, rss_max: &mut u64) {
    loop {
        let now = Instant::now();
        *rss_max = (*rss_max).max(sys::rss_kb(pid).0);
        if now >= until {
            return;
        }
        std::thread::sleep((until - now).min(Duration::from_millis(500)));
    }
}

struct Round {
    /// Cores used by other programs during the ingest-only and API windows.
    others: f64,
    baseline_cores: f64,
    cores: f64,
    cores_api: f64,
    threads: Vec<(String, u64)>,
    window_s: f64,
    rss_mb: f64,
    rss_max_mb: f64,
    hwm_mb: f64,
    api_ms: Vec<f64>,
    api_errors: usize,
    late_ms: Vec<f64>,
    missing_down: usize,
    sent: Sent,
    accepted: u64,
    rejected: u64,
    journal_dropped: u64,
    metrics_ms: f64,
    metrics_mb: f64,
    hwm_after_metrics_mb: f64,
    kernel_drops: u64,
}

fn baseline(o: &Opts, tpl: &Template, rate: f64) -> Result<f64> {
    let p = sys::spawn_self("raw-recv", &o.work, &[])?;
    let mut hosts = Hosts::split(o.hosts, 1);
    let mut sender = Sender::new(p.udp, 32, tpl.len())?;
    let pid = p.pid();
    let window = Duration::from_secs_f64(o.baseline_window);
    let cores = std::thread::scope(|s| {
        let h = s.spawn(|| {
            sender.paced(
                tpl,
                &mut hosts[0],
                now_ms(),
                rate,
                window + Duration::from_secs(3),
                None,
                |_| None,
                |_| {},
            )
        });
        std::thread::sleep(Duration::from_secs(2));
        let c0 = sys::total_cpu(pid);
        let t0 = Instant::now();
        std::thread::sleep(window);
        let c1 = sys::total_cpu(pid);
        let cores = (c1 - c0) as f64 / t0.elapsed().as_nanos() as f64;
        let _ = h.join();
        cores
    });
    p.stop(Duration::from_secs(5))?;
    Ok(cores)
}

fn json(p: &Proc, agent: &ureq::Agent, path: &str) -> Result<serde_json::Value> {
    let (code, body) = p.get(agent, path)?;
    if code != 200 {
        bail!("GET {path}: {code} {body}");
    }
    serde_json::from_str(&body).with_context(|| format!("GET {path}: not JSON"))
}

fn round(o: &Opts, tpl: &Template) -> Result<Round> {
    let rate = o.hosts as f64 / o.interval;
    let baseline_cores = baseline(o, tpl, rate)?;
    let p = sys::spawn_hbd(&o.hbd, &o.work, "hbd-fleet", "")?;
    let pid = p.pid();
    let agent = sys::agent();
    let interval = Duration::from_secs_f64(o.interval);
    let settle = Duration::from_secs_f64(o.settle);
    let cpu_w = Duration::from_secs_f64(o.cpu_window);
    let api_w = Duration::from_secs_f64(o.api_window);
    let grace = 2.5f64;
    let deadline_span = Duration::from_secs_f64((o.interval * grace).max(o.interval + 1.0));
    let phase1 = interval + settle + cpu_w + api_w;
    // DOWN phase: every stopped host's last beat, its deadline, and room to poll.
    let phase2 = interval + deadline_span + Duration::from_secs(8);
    let every = (o.hosts / o.stop.max(1)).max(1);
    let stopped: Vec<usize> = (0..o.hosts).step_by(every).take(o.stop).collect();

    let (tx, rx) = mpsc::channel::<(Instant, Instant)>();
    let mut sender = Sender::new(p.udp, 32, tpl.len())?;
    let mut hosts = Hosts::split(o.hosts, 1).remove(0);
    let stopped_gen = stopped.clone();
    let k0 = sys::rcvbuf_errors();
    let r = std::thread::scope(|s| -> Result<Round> {
        let gen = s.spawn(move || {
            let instance = now_ms();
            let t0 = Instant::now();
            let mut sent = sender.paced(
                tpl,
                &mut hosts,
                instance,
                rate,
                phase1,
                None,
                |_| None,
                |_| {},
            );
            for &i in &stopped_gen {
                hosts.stopped[i] = true;
            }
            let t_stop = Instant::now();
            let _ = tx.send((t0, t_stop));
            // Keep the fleet's pacing: stopped hosts' slots stay empty.
            let more = sender.paced(
                tpl,
                &mut hosts,
                instance,
                rate,
                phase2,
                None,
                |_| None,
                |_| {},
            );
            sent.add(more);
            sent.elapsed = t0.elapsed();
            sent
        });
        let mut rss_max = 0u64;
        let t0 = Instant::now();
        // Quiet window.
        sleep_sampling(t0 + interval + settle, pid, &mut rss_max);
        let c0 = sys::threads_cpu(pid);
        let others = sys::Others::start(pid);
        let w0 = Instant::now();
        sleep_sampling(w0 + cpu_w, pid, &mut rss_max);
        let c1 = sys::threads_cpu(pid);
        let window_s = w0.elapsed().as_secs_f64();
        let threads = sys::cpu_delta(&c0, &c1);
        let cores = threads.iter().map(|(_, d)| *d).sum::<u64>() as f64 / 1e9 / window_s;
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
            let t = Instant::now();
            match p.get(&agent, &path) {
                Ok((200, body)) if body.contains("\"hosts\"") => {
                    api_ms.push(t.elapsed().as_secs_f64() * 1e3)
                }
                _ => api_errors += 1,
            }
            j += 1;
        }
        let c2 = sys::threads_cpu(pid);
        let others = others.cores();
        let cores_api = sys::cpu_delta(&c1, &c2)
            .iter()
            .map(|(_, d)| *d)
            .sum::<u64>() as f64
            / 1e9
            / a0.elapsed().as_secs_f64();
        // DOWN phase.
        let (_, t_stop) = rx.recv().context("generator ended early")?;
        sleep_sampling(
            t_stop + interval + Duration::from_millis(1500),
            pid,
            &mut rss_max,
        );
        let mut deadlines = Vec::with_capacity(stopped.len());
        for &i in &stopped {
            let h = json(&p, &agent, &format!("/api/v1/hosts/{}", host_name(i)))?;
            // hbd's rule; `deadline_ms` is reset to 0 once the host is DOWN.
            let last = h["last_seen_ms"].as_u64().unwrap_or(0);
            let iv = h["interval_ms"].as_u64().unwrap_or(0);
            let span = ((iv.max(100) as f64 * grace) as u64).max(iv + 1000);
            let d = match h["deadline_ms"].as_u64() {
                Some(d) if d > 0 => d,
                _ => last + span,
            };
            deadlines.push((host_name(i), d));
        }
        let last_deadline = deadlines.iter().map(|d| d.1).max().unwrap_or(0);
        // Wait for the last deadline (hbd's clock is ours), then collect the events.
        let wait_ms = (last_deadline + 1000).saturating_sub(now_ms());
        sleep_sampling(
            Instant::now() + Duration::from_millis(wait_ms),
            pid,
            &mut rss_max,
        );
        let mut fired = std::collections::HashMap::new();
        let poll_end = Instant::now() + Duration::from_secs(5);
        while fired.len() < stopped.len() && Instant::now() < poll_end {
            let ev = json(&p, &agent, "/api/v1/events?kind=host_down&limit=10000")?;
            for e in ev["events"].as_array().into_iter().flatten() {
                if let (Some(h), Some(ts)) = (e["host"].as_str(), e["ts_ms"].as_u64()) {
                    fired.entry(h.to_string()).or_insert(ts);
                }
            }
            std::thread::sleep(Duration::from_millis(300));
        }
        let mut late_ms = Vec::new();
        let mut missing_down = 0;
        for (name, d) in &deadlines {
            match fired.get(name) {
                Some(ts) => late_ms.push(*ts as f64 - *d as f64),
                None => missing_down += 1,
            }
        }
        let sent = gen
            .join()
            .map_err(|_| anyhow::anyhow!("generator panicked"))?;
        let (_, hwm) = sys::rss_kb(pid);
        std::thread::sleep(Duration::from_millis(500));
        // The full /metrics at this fleet size: once, last (it is large).
        let m0 = Instant::now();
        let (code, text) = p.get(&agent, "/metrics")?;
        let metrics_ms = m0.elapsed().as_secs_f64() * 1e3;
        if code != 200 {
            bail!("/metrics: {code}");
        }
        let c = sys::Counters::parse(&text);
        let (_, hwm2) = sys::rss_kb(pid);
        Ok(Round {
            others,
            baseline_cores,
            cores,
            cores_api,
            threads,
            window_s,
            rss_mb,
            rss_max_mb: rss_max as f64 / 1024.0,
            hwm_mb: hwm as f64 / 1024.0,
            api_ms,
            api_errors,
            late_ms,
            missing_down,
            sent,
            accepted: c.accepted,
            rejected: c.dropped,
            journal_dropped: c.journal_dropped,
            metrics_ms,
            metrics_mb: text.len() as f64 / 1e6,
            hwm_after_metrics_mb: hwm2 as f64 / 1024.0,
            kernel_drops: sys::rcvbuf_errors() - k0,
        })
    })?;
    p.stop(Duration::from_secs(30))?;
    Ok(r)
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
        "   windows: ramp {} s, settle {} s, ingest-only {} s, API {} s ({} list-hosts pages/s of {}), then {} hosts stop",
        o.interval, o.settle, o.cpu_window, o.api_window, o.api_rate, o.page, o.stop
    );
    println!(
        "   NOTE: {} cores; the generator (one sender thread) and hbd share them. CPU figures are hbd's own threads (schedstat).",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    let mut rounds = Vec::new();
    for i in 0..o.rounds {
        let q = sys::wait_quiet(o.max_busy, Duration::from_secs(180));
        println!("-- round {}/{}  ({q})", i + 1, o.rounds);
        let r = round(o, &tpl)?;
        println!(
            "   hbd CPU {:.1} % of one core ingest-only (raw-recv baseline {:.1} %, ratio {:.1}); {:.1} % with list-hosts paging; other programs {:.2} cores meanwhile",
            r.cores * 100.0,
            r.baseline_cores * 100.0,
            r.cores / r.baseline_cores,
            r.cores_api * 100.0,
            r.others
        );
        println!(
            "   per thread in the ingest-only window: {}",
            r.threads
                .iter()
                .take(6)
                .map(|(k, ns)| format!("{k} {:.1} %", *ns as f64 / 1e7 / r.window_s))
                .collect::<Vec<_>>()
                .join(", ")
        );
        println!(
            "   RSS {:.0} MB after ramp+quiet window, max sampled {:.0} MB, VmHWM {:.0} MB",
            r.rss_mb, r.rss_max_mb, r.hwm_mb
        );
        println!(
            "   list-hosts: {} requests, p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms, errors {}",
            r.api_ms.len(),
            median(&r.api_ms),
            percentile(&r.api_ms, 99.0),
            max(&r.api_ms),
            r.api_errors
        );
        println!(
            "   DOWN lateness after deadline: {} events, p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms, min {:.0} ms; missing {}",
            r.late_ms.len(),
            median(&r.late_ms),
            percentile(&r.late_ms, 99.0),
            max(&r.late_ms),
            r.late_ms.iter().copied().fold(f64::NAN, f64::min),
            r.missing_down
        );
        println!(
            "   sent {} ({:.0}/s), accepted {}, rejected {}, kernel drops {}, journal dropped {}; full /metrics: {:.1} MB in {:.0} ms, VmHWM after it {:.0} MB",
            r.sent.datagrams,
            r.sent.rate(),
            r.accepted,
            r.rejected,
            r.kernel_drops,
            r.journal_dropped,
            r.metrics_mb,
            r.metrics_ms,
            r.hwm_after_metrics_mb
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
        "| hbd CPU, ingest only | {:.1} % of one core ({:.1} % of the machine) | raw-recv {:.1} % (ratio {:.1}) |",
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
        "| hbd RSS (steady / VmHWM) | {:.0} / {:.0} MB | goal < 300 MB |",
        m(&|r| r.rss_mb),
        m(&|r| r.hwm_mb)
    );
    println!(
        "| list-hosts latency p50 / p99 (page of {}) | {:.1} / {:.1} ms | |",
        o.page,
        m(&|r| median(&r.api_ms)),
        m(&|r| percentile(&r.api_ms, 99.0))
    );
    println!(
        "| DOWN lateness after deadline p50 / p99 / max | {:.0} / {:.0} / {:.0} ms | goal < 1000 ms |",
        m(&|r| median(&r.late_ms)),
        m(&|r| percentile(&r.late_ms, 99.0)),
        m(&|r| max(&r.late_ms))
    );
    println!(
        "| DOWN events missing | {:.0} of {} | |",
        m(&|r| r.missing_down as f64),
        o.stop
    );
    println!(
        "| datagrams lost or rejected | {:.0} | |",
        m(&|r| (r.sent.datagrams.saturating_sub(r.accepted)) as f64)
    );
    println!(
        "| full /metrics at this size | {:.1} MB in {:.0} ms; VmHWM after {:.0} MB | |",
        m(&|r| r.metrics_mb),
        m(&|r| r.metrics_ms),
        m(&|r| r.hwm_after_metrics_mb)
    );
    Ok(())
}
