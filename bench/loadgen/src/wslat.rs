//! `ws-latency`: heartbeat-to-browser-message latency with many WebSocket clients.
//!
//! Clients are threads of this process; heartbeats are sent from here one at a time at a
//! fixed rate, each carrying its number in `cpu.usage_percent` (which hbd's `beat` message
//! repeats as `cpu`), so every client can match each message to its send time on one
//! monotonic clock. Baseline in the same run: `ws-echo`, a minimal server doing the same
//! job (verify, format a beat, write it to every client), with the same generator and
//! clients.

use std::net::TcpStream;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Result};

use crate::payload::{now_ms, Template};
use crate::send::{Hosts, Sender};
use crate::stats::{max, median, percentile};
use crate::sys::{self, Proc};

/// Beat numbers start here (exact in the f32 hbd keeps; never a real reading's value).
const OFFSET: f64 = 1_000_000.0;

#[derive(Debug, Clone, clap::Args)]
pub struct Opts {
    #[arg(long, default_value = "target/release/hbd")]
    pub hbd: PathBuf,
    #[arg(long, default_value_os_t = std::env::temp_dir().join("hb-bench"))]
    pub work: PathBuf,
    #[arg(long, default_value_t = 3)]
    pub rounds: usize,
    /// Connected WebSocket clients.
    #[arg(long, default_value_t = 100)]
    pub clients: usize,
    /// Hosts the heartbeats come from (round-robin).
    #[arg(long, default_value_t = 100)]
    pub hosts: usize,
    /// Heartbeats per second.
    #[arg(long, default_value_t = 200.0)]
    pub rate: f64,
    /// Seconds of sending.
    #[arg(long, default_value_t = 10.0)]
    pub duration: f64,
    #[arg(long, default_value_t = 30)]
    pub readings: usize,
    #[arg(long, default_value_t = 0.3)]
    pub max_busy: f64,
}

struct Run {
    /// Cores used by other programs while sending.
    others: f64,
    lat_ms: Vec<f64>,
    expected: u64,
    server_cores: f64,
}

/// The `cpu` number of a `beat` message, without a full JSON parse.
fn beat_cpu(text: &str) -> Option<f64> {
    // hbd writes `type` first; a serde_json::json! object would sort it last.
    if !text.starts_with("{\"type\":\"beat\"") && !text.ends_with(",\"type\":\"beat\"}") {
        return None;
    }
    let i = text.find("\"cpu\":")? + 6;
    let rest = &text[i..];
    let end = rest.find([',', '}'])?;
    rest[..end].parse().ok()
}

type Ws = tungstenite::WebSocket<tungstenite::stream::MaybeTlsStream<TcpStream>>;

fn client(
    url: &str,
    t0: Instant,
    sent: &[AtomicU64],
    ready: &AtomicUsize,
    end_ns: &AtomicU64,
) -> Result<Vec<f64>> {
    let (mut ws, _): (Ws, _) = tungstenite::connect(url)?;
    if let tungstenite::stream::MaybeTlsStream::Plain(s) = ws.get_ref() {
        s.set_read_timeout(Some(Duration::from_millis(100)))?;
        s.set_nodelay(true)?;
    }
    let mut lat = Vec::with_capacity(sent.len());
    let mut got_snapshot = false;
    loop {
        let now = t0.elapsed().as_nanos() as u64;
        let end = end_ns.load(Ordering::Relaxed);
        if lat.len() >= sent.len() || (end > 0 && now > end) {
            break;
        }
        match ws.read() {
            Ok(tungstenite::Message::Text(t)) => {
                let now = t0.elapsed().as_nanos() as u64;
                if !got_snapshot {
                    let v: serde_json::Value = serde_json::from_str(&t)?;
                    if v["type"] == "snapshot" {
                        got_snapshot = true;
                        ready.fetch_add(1, Ordering::SeqCst);
                    }
                    continue;
                }
                if let Some(v) = beat_cpu(&t) {
                    let k = v - OFFSET;
                    if k >= 0.0 && (k as usize) < sent.len() && k.fract() == 0.0 {
                        let s = sent[k as usize].load(Ordering::Acquire);
                        if s > 0 {
                            lat.push(now.saturating_sub(s) as f64 / 1e6);
                        }
                    }
                }
            }
            Ok(tungstenite::Message::Close(c)) => bail!("server closed the WebSocket: {c:?}"),
            Ok(_) => {}
            Err(tungstenite::Error::Io(e))
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(e) => return Err(e.into()),
        }
    }
    let _ = ws.close(None);
    Ok(lat)
}

fn measure(p: &Proc, o: &Opts, tpl: &Template) -> Result<Run> {
    let mut hosts = Hosts::split(o.hosts, 1).remove(0);
    let instance = now_ms();
    let mut sender = Sender::new(p.udp, 1, tpl.len())?;
    // Warm-up: every host known before the clients connect.
    sender.paced(
        tpl,
        &mut hosts,
        instance,
        2000.0,
        Duration::from_secs(5),
        Some(o.hosts as u64),
        |_| None,
        |_| {},
    );
    std::thread::sleep(Duration::from_millis(500));
    let total = (o.rate * o.duration) as usize;
    let sent: Arc<Vec<AtomicU64>> = Arc::new((0..total).map(|_| AtomicU64::new(0)).collect());
    let ready = Arc::new(AtomicUsize::new(0));
    let end_ns = Arc::new(AtomicU64::new(0));
    let t0 = Instant::now();
    let url = format!("ws://{}/", p.ws);
    let handles: Vec<_> = (0..o.clients)
        .map(|_| {
            let (sent, ready, end_ns, url) =
                (sent.clone(), ready.clone(), end_ns.clone(), url.clone());
            std::thread::Builder::new()
                .stack_size(256 * 1024)
                .spawn(move || client(&url, t0, &sent, &ready, &end_ns))
        })
        .collect::<std::io::Result<_>>()?;
    let wait = Instant::now();
    while ready.load(Ordering::SeqCst) < o.clients {
        if wait.elapsed() > Duration::from_secs(30) {
            end_ns.store(1, Ordering::SeqCst);
            bail!(
                "only {} of {} WebSocket clients got their snapshot",
                ready.load(Ordering::SeqCst),
                o.clients
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(300));
    let c0 = sys::total_cpu(p.pid());
    let others = sys::Others::start(p.pid());
    let w0 = Instant::now();
    sender.paced(
        tpl,
        &mut hosts,
        instance,
        o.rate,
        Duration::from_secs_f64(o.duration + 5.0),
        Some(total as u64),
        |k| Some(OFFSET + k as f64),
        |k| sent[k as usize].store(t0.elapsed().as_nanos() as u64, Ordering::Release),
    );
    let server_cores = (sys::total_cpu(p.pid()) - c0) as f64 / w0.elapsed().as_nanos() as f64;
    let others = others.cores();
    end_ns.store(
        (t0.elapsed() + Duration::from_secs(3)).as_nanos() as u64,
        Ordering::SeqCst,
    );
    let mut lat_ms = Vec::with_capacity(total * o.clients);
    for h in handles {
        match h.join() {
            Ok(Ok(v)) => lat_ms.extend(v),
            Ok(Err(e)) => eprintln!("ws client: {e:#}"),
            Err(_) => eprintln!("ws client panicked"),
        }
    }
    Ok(Run {
        others,
        lat_ms,
        expected: (total * o.clients) as u64,
        server_cores,
    })
}

pub fn run(o: &Opts) -> Result<()> {
    std::fs::create_dir_all(&o.work)?;
    let tpl = Template::new(o.readings, crate::SECRET, 10_000)?;
    println!(
        "== WebSocket: heartbeat-to-message latency, {} clients, {} heartbeats/s from {} hosts for {} s ({} B datagrams)",
        o.clients, o.rate, o.hosts, o.duration, tpl.len()
    );
    println!(
        "   NOTE: {} cores; the clients (threads of the generator process) and the server share them.",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    let names = ["ws-echo (minimal server)", "hbd"];
    let mut runs: [Vec<Run>; 2] = [Vec::new(), Vec::new()];
    for round in 0..o.rounds {
        let order: [usize; 2] = if round % 2 == 0 { [0, 1] } else { [1, 0] };
        for i in order {
            let q = sys::wait_quiet(o.max_busy, Duration::from_secs(180));
            let p = if i == 0 {
                sys::spawn_self("ws-echo", &o.work, &["--secret", crate::SECRET])?
            } else {
                sys::spawn_hbd(&o.hbd, &o.work, "hbd-ws", "")?
            };
            let r = measure(&p, o, &tpl)?;
            p.stop(Duration::from_secs(10))?;
            println!(
                "-- round {}/{} {}: delivered {}/{}, p50 {:.2} ms, p99 {:.2} ms, p99.9 {:.2} ms, max {:.2} ms; server CPU {:.1} % of one core; other programs {:.2} cores meanwhile  ({q})",
                round + 1,
                o.rounds,
                names[i],
                r.lat_ms.len(),
                r.expected,
                median(&r.lat_ms),
                percentile(&r.lat_ms, 99.0),
                percentile(&r.lat_ms, 99.9),
                max(&r.lat_ms),
                r.server_cores * 100.0,
                r.others
            );
            runs[i].push(r);
        }
    }
    println!();
    println!(
        "WebSocket summary ({} clients, {} beats/s; median of {} rounds):",
        o.clients, o.rate, o.rounds
    );
    println!(
        "| server | p50 ms | p99 ms | p99.9 ms | max ms | delivered | server CPU (% of one core) |"
    );
    println!("|---|---|---|---|---|---|---|");
    let mut p50s = [0.0; 2];
    let mut p99s = [0.0; 2];
    for i in 0..2 {
        let m = |f: &dyn Fn(&Run) -> f64| median(&runs[i].iter().map(f).collect::<Vec<_>>());
        p50s[i] = m(&|r| median(&r.lat_ms));
        p99s[i] = m(&|r| percentile(&r.lat_ms, 99.0));
        println!(
            "| {} | {:.2} | {:.2} | {:.2} | {:.2} | {:.4} | {:.1} |",
            names[i],
            p50s[i],
            p99s[i],
            m(&|r| percentile(&r.lat_ms, 99.9)),
            m(&|r| max(&r.lat_ms)),
            m(&|r| r.lat_ms.len() as f64 / r.expected.max(1) as f64),
            m(&|r| r.server_cores * 100.0)
        );
    }
    println!(
        "hbd / minimal server: p50 {:.2}x, p99 {:.2}x",
        p50s[1] / p50s[0],
        p99s[1] / p99s[0]
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_beat_number() {
        let m = r#"{"type":"beat","data":{"name":"a","lost":0,"cpu":1000042.0,"mem":27.2}}"#;
        assert_eq!(beat_cpu(m), Some(1_000_042.0));
        assert_eq!(beat_cpu(r#"{"type":"event","data":{"cpu":1.0}}"#), None);
        assert_eq!(beat_cpu(r#"{"type":"beat","data":{"cpu":null}}"#), None);
        let sorted = r#"{"data":{"cpu":1000001.0,"fs":1.0},"type":"beat"}"#;
        assert_eq!(beat_cpu(sorted), Some(1_000_001.0));
    }
}
