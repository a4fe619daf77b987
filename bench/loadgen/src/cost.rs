//! `cost`: where hbd's per-datagram user-space time goes, measured in-process on one
//! thread with hbd's own library code (`hb_proto::decode`, `Registry::apply`, the live
//! `beat` message), for the same datagrams the benchmarks send. The kernel side (the
//! receive syscall) is what `ingest` measures for raw-recv.

use std::hint::black_box;
use std::time::Duration;

use anyhow::Result;
use hbd::registry::{Registry, Settings};
use hbd::state::Summary;

use crate::payload::{now_ms, Template};

#[derive(Debug, Clone, clap::Args)]
pub struct Opts {
    #[arg(long, default_value_t = 10_000)]
    pub hosts: usize,
    #[arg(long, default_value_t = 30)]
    pub readings: usize,
    /// Datagrams per measurement.
    #[arg(long, default_value_t = 300_000)]
    pub n: usize,
}

/// CPU time of this thread (not wall time: other programs on the machine would inflate it).
fn cpu() -> Duration {
    crate::send::thread_cpu()
}

fn per(start: Duration, n: usize) -> f64 {
    (cpu() - start).as_nanos() as f64 / n as f64
}

pub fn run(o: &Opts) -> Result<()> {
    let secret = crate::SECRET.as_bytes();
    let tpl = Template::new(o.readings, crate::SECRET, 60_000)?;
    let mut buf = vec![0u8; 4096];
    let instance = now_ms();
    let ms = now_ms();
    println!(
        "== Per-datagram cost in hbd's code, one thread, {} B datagrams with {} readings, {} hosts",
        tpl.len(),
        o.readings,
        o.hosts
    );
    let mut rows: Vec<(&str, f64)> = Vec::new();

    let t = cpu();
    for i in 0..o.n {
        black_box(tpl.stamp(
            &mut buf,
            i % o.hosts,
            instance,
            1 + (i / o.hosts) as u64,
            ms,
            None,
        ));
    }
    let stamp = per(t, o.n);
    rows.push(("generator: stamp + HMAC sign (for reference)", stamp));

    let n = tpl.stamp(&mut buf, 1, instance, 1, ms, None);
    let d = &buf[..n];
    let t = cpu();
    for _ in 0..o.n {
        black_box(hb_proto::decode(black_box(d), None).is_ok());
    }
    let parse = per(t, o.n);
    rows.push(("hb_proto::decode, parse only (no secret)", parse));
    let t = cpu();
    for _ in 0..o.n {
        black_box(hb_proto::decode(black_box(d), Some(secret)).is_ok());
    }
    let verify = per(t, o.n);
    rows.push(("hb_proto::decode with HMAC-SHA256 verify", verify));

    // Registry::apply in steady state: every host known, same readings each time.
    let mut reg = Registry::new(Settings {
        window_ms: 300_000,
        max_hosts: 200_000,
        // The per-host budget would stop the same host being applied again and again.
        host_reading_rate: 0.0,
        ..Settings::default()
    });
    let src = std::net::IpAddr::from([127, 0, 0, 1]);
    let mut events = Vec::new();
    for h in 0..o.hosts {
        let n = tpl.stamp(&mut buf, h, instance, 1, ms, None);
        let p = hb_proto::decode(&buf[..n], None)?;
        let _ = reg.apply(&p, src, ms, &mut events);
        events.clear();
    }
    // decode (no secret) + apply, minus decode alone (measured just before).
    let t = cpu();
    let base = o.hosts;
    for i in 0..o.n {
        let n = tpl.stamp(
            &mut buf,
            i % o.hosts,
            instance,
            2 + (i / o.hosts) as u64,
            ms,
            None,
        );
        black_box(hb_proto::decode(&buf[..n], None).is_ok());
    }
    let stamp_decode = per(t, o.n);
    let t = cpu();
    for i in 0..o.n {
        let n = tpl.stamp(
            &mut buf,
            i % o.hosts,
            instance,
            2 + (i / o.hosts) as u64,
            ms,
            None,
        );
        let p = hb_proto::decode(&buf[..n], None)?;
        black_box(reg.apply(&p, src, ms, &mut events).is_ok());
        events.clear();
    }
    let apply = per(t, o.n) - stamp_decode;
    rows.push(("Registry::apply (steady state, lock not included)", apply));
    // The `beat` message built for live WebSocket clients (only when any are connected).
    #[derive(serde::Serialize)]
    struct Msg<'a> {
        #[serde(rename = "type")]
        kind: &'a str,
        data: &'a Summary,
    }
    let t = cpu();
    let m = o.n / 4;
    for i in 0..m {
        if let Some(h) = reg.get(&crate::payload::host_name((i + base / 2) % o.hosts)) {
            let s = Summary::of(h);
            black_box(serde_json::to_string(&Msg {
                kind: "beat",
                data: &s,
            })?);
        }
    }
    let summary = per(t, m);
    rows.push((
        "beat message for WebSocket clients (Summary::of + JSON)",
        summary,
    ));
    println!("| step | ns per datagram |");
    println!("|---|---|");
    for (k, v) in &rows {
        println!("| {k} | {v:.0} |");
    }
    println!(
        "| = hbd user space without live clients (verify + apply) | {:.0} |",
        verify + apply
    );
    println!(
        "| = with live clients (+ beat message) | {:.0} |",
        verify + apply + summary
    );
    Ok(())
}

#[derive(Debug, Clone, clap::Args)]
pub struct MemOpts {
    #[arg(long, default_value_t = 100_000)]
    pub hosts: usize,
    #[arg(long, default_value_t = 30)]
    pub readings: usize,
    /// Heartbeats per host (hbd keeps `history_len` = 60 summary samples per host, so
    /// 61 reaches the steady state a fleet has after 10 minutes at a 10 s interval).
    #[arg(long, default_value_t = 61)]
    pub beats: u64,
}

fn rss_mb() -> f64 {
    crate::sys::rss_kb(std::process::id()).0 as f64 / 1024.0
}

/// `memory`: the registry's resident memory for N hosts, in-process with hbd's code, as
/// heartbeats accumulate (the fleet benchmark runs for minutes, not for the 10 minutes
/// it takes hbd's per-host history to fill).
pub fn memory(o: &MemOpts) -> Result<()> {
    let tpl = Template::new(o.readings, crate::SECRET, 10_000)?;
    let mut buf = vec![0u8; 4096];
    let instance = now_ms();
    let src = std::net::IpAddr::from([127, 0, 0, 1]);
    let mut events = Vec::new();
    let base = rss_mb();
    let mut reg = Registry::new(Settings {
        window_ms: 0,
        max_hosts: o.hosts.max(1),
        ..Settings::default()
    });
    println!(
        "== Registry memory, in-process with hbd's Registry: {} hosts, {} readings ({} B datagrams)",
        o.hosts,
        o.readings,
        tpl.len()
    );
    println!("| heartbeats per host | registry RSS (MB) | per host (B) |");
    println!("|---|---|---|");
    let t = std::time::Instant::now();
    for b in 1..=o.beats {
        // One clock tick per round, like a 10 s interval.
        let ms = now_ms() + b * 10_000;
        for h in 0..o.hosts {
            let n = tpl.stamp(&mut buf, h, instance, b, ms, Some((h % 100) as f64));
            let p = hb_proto::decode(&buf[..n], None)?;
            let _ = reg.apply(&p, src, ms, &mut events);
            events.clear();
        }
        if [1, 2, 10, 30, o.beats].contains(&b) {
            let mb = rss_mb() - base;
            println!(
                "| {b} | {mb:.0} | {:.0} |",
                mb * 1024.0 * 1024.0 / o.hosts.max(1) as f64
            );
        }
        if t.elapsed().as_secs() > 600 {
            println!("(stopped after 10 minutes at {b} heartbeats per host)");
            break;
        }
    }
    black_box(&reg);
    Ok(())
}
