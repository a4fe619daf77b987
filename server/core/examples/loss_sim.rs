//! Packet loss against the real registry, in simulated time (bench/faults, docs/faults.md
//! "Packet loss"): false DOWN per 1,000 host-hours at the default 10 s interval and
//! grace 2.5, with and without refreshes, for independent loss and bursts; detection
//! latency of hosts that die; datagrams and bytes per host. Thousands of host-hours take
//! seconds here, where a real-time run would take days.
//!
//! `cargo run --release -p hbd-core --example loss_sim [HOST_HOURS]`

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::net::{IpAddr, Ipv4Addr};

use hb_proto::{decode, encode, resend, Heartbeat, Level, Reading, Value};
use hbd_core::event::EventKind;
use hbd_core::registry::{Registry, Settings};

const INTERVAL_MS: u64 = 10_000;
const SRC: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

/// xorshift64*: deterministic runs without a dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

#[derive(Clone, Copy)]
enum Loss {
    /// Each datagram lost with this probability.
    Independent(f64),
    /// A burst starts with this probability per datagram and loses it and the next two.
    Bursts3(f64),
}

impl Loss {
    fn name(self) -> String {
        match self {
            Loss::Independent(p) => format!("{:.0} % independent", p * 100.0),
            Loss::Bursts3(b) => format!("bursts of 3 ({:.1} % lost)", b * 300.0),
        }
    }
}

/// Per host: the loss process' state.
struct Link {
    burst_left: u32,
}

impl Link {
    fn lost(&mut self, loss: Loss, rng: &mut Rng) -> bool {
        match loss {
            Loss::Independent(p) => rng.unit() < p,
            Loss::Bursts3(b) => {
                if self.burst_left > 0 {
                    self.burst_left -= 1;
                    return true;
                }
                if rng.unit() < b {
                    self.burst_left = 2;
                    return true;
                }
                false
            }
        }
    }
}

fn heartbeat(host: &str, seq: u64, sent_ms: u64) -> Vec<u8> {
    let readings = (0..12)
        .map(|i| Reading {
            key: format!("sim.reading{i}.used_percent"),
            value: Value::F64(f64::from(i) * 3.5),
            unit: "%".into(),
            level: Level::Ok,
            message: String::new(),
            threshold: "warn=80 crit=95".into(),
        })
        .collect();
    let hb = Heartbeat {
        host: host.into(),
        instance: 1,
        seq,
        sent_ms,
        interval_ms: INTERVAL_MS as u32,
        level: Level::Ok,
        readings,
    };
    encode(&hb, Some(b"sim-secret"), 1400)
        .expect("a small heartbeat encodes")
        .remove(0)
}

struct Outcome {
    false_down: u64,
    host_hours: f64,
    datagrams_per_host_hour: f64,
    bytes_per_host_hour: f64,
    latencies: Vec<f64>,
}

/// `hosts` hosts beat for `hours`, then each dies at a random moment of the next interval.
fn run(hosts: usize, hours: f64, refreshes: u32, loss: Loss, seed: u64) -> Outcome {
    let mut rng = Rng(seed | 1);
    let mut reg = Registry::new(Settings::default());
    let end_ms = (hours * 3_600_000.0) as u64;
    let names: Vec<String> = (0..hosts).map(|i| format!("sim-{i:05}")).collect();
    let mut links: Vec<Link> = (0..hosts).map(|_| Link { burst_left: 0 }).collect();
    let death: Vec<u64> = (0..hosts)
        .map(|_| end_ms + (rng.unit() * INTERVAL_MS as f64) as u64)
        .collect();
    // (time, host, seq, copy): copy 0 is the heartbeat, 1.. its refreshes.
    let mut queue = BinaryHeap::new();
    for (i, _) in names.iter().enumerate() {
        let phase = (rng.unit() * INTERVAL_MS as f64) as u64;
        queue.push(Reverse((1_000 + phase, i, 1u64, 0u32)));
    }
    let step = INTERVAL_MS / u64::from(refreshes + 1);
    let mut current: Vec<Vec<u8>> = vec![Vec::new(); hosts];
    let (mut sent, mut bytes) = (0u64, 0u64);
    let mut down_at: Vec<Option<u64>> = vec![None; hosts];
    let mut false_down = 0u64;
    let mut events = Vec::new();
    let mut check = |reg: &mut Registry, now: u64, events: &mut Vec<_>| {
        reg.tick(now, events);
        for e in events.drain(..) {
            let e: hbd_core::event::Event = e;
            if e.kind != EventKind::HostDown {
                continue;
            }
            let i: usize = e.host[4..].parse().expect("sim host name");
            if e.ts_ms < death[i] {
                false_down += 1;
            } else if down_at[i].is_none() {
                down_at[i] = Some(e.ts_ms);
            }
        }
    };
    while let Some(Reverse((t, i, seq, copy))) = queue.pop() {
        while let Some(d) = reg.next_deadline().filter(|d| *d < t) {
            check(&mut reg, d, &mut events);
        }
        if t >= death[i] {
            continue;
        }
        let datagram = if copy == 0 {
            current[i] = heartbeat(&names[i], seq, t);
            for k in 1..=refreshes {
                queue.push(Reverse((t + step * u64::from(k), i, seq, k)));
            }
            queue.push(Reverse((t + INTERVAL_MS, i, seq + 1, 0)));
            current[i].clone()
        } else {
            resend(&current[i], t, Some(b"sim-secret"))
        };
        if t < end_ms {
            sent += 1;
            bytes += datagram.len() as u64;
        }
        if links[i].lost(loss, &mut rng) {
            continue;
        }
        // Network and scheduling delay: 0-20 ms.
        let arrive = t + rng.next() % 20;
        let p = decode(&datagram, Some(b"sim-secret")).expect("own datagram decodes");
        let _ = reg.apply(&p, SRC, arrive, &mut events);
        events.clear();
    }
    while let Some(d) = reg.next_deadline() {
        check(&mut reg, d, &mut events);
    }
    let host_hours = hosts as f64 * hours;
    let latencies = (0..hosts)
        .filter_map(|i| down_at[i].map(|d| (d - death[i]) as f64 / INTERVAL_MS as f64))
        .collect();
    Outcome {
        false_down,
        host_hours,
        datagrams_per_host_hour: sent as f64 / host_hours,
        bytes_per_host_hour: bytes as f64 / host_hours,
        latencies,
    }
}

fn pct(v: &mut [f64], q: f64) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(((v.len() as f64 - 1.0) * q).round() as usize)
        .copied()
        .unwrap_or(f64::NAN)
}

fn main() {
    let host_hours: f64 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(2_000.0);
    let hosts = 1_000;
    let hours = host_hours / hosts as f64;
    println!(
        "simulated: {hosts} hosts at 10 s, grace 2.5 (hbd defaults), signed 1-datagram heartbeats of 12 readings, {host_hours} host-hours per row, then every host dies"
    );
    println!(
        "{:<34} {:>9} {:>10} {:>14} {:>9} {:>9} {:>9} {:>10} {:>10}",
        "loss",
        "refreshes",
        "false DOWN",
        "per 1000 h",
        "model",
        "det p50",
        "det p99",
        "dgrams/h",
        "bytes/h"
    );
    let losses = [
        Loss::Independent(0.01),
        Loss::Independent(0.05),
        Loss::Independent(0.20),
        Loss::Bursts3(0.05 / 3.0),
    ];
    for loss in losses {
        for refreshes in [0u32, 2] {
            let mut o = run(hosts, hours, refreshes, loss, 0x5eed + u64::from(refreshes));
            // Runs of lost datagrams long enough for a false DOWN: 2 heartbeats without
            // refreshes, 7 datagrams with two (one every 3.3 s, deadline 25 s).
            let need = if refreshes == 0 { 2 } else { 7 };
            let per_hour = 3_600_000.0 / (INTERVAL_MS as f64 / f64::from(refreshes + 1));
            let model = match loss {
                Loss::Independent(p) => per_hour * (1.0 - p) * p.powi(need) * 1000.0,
                Loss::Bursts3(_) => f64::NAN,
            };
            println!(
                "{:<34} {:>9} {:>10} {:>14.3} {:>9.3} {:>8.2}I {:>8.2}I {:>10.0} {:>10.0}",
                loss.name(),
                refreshes,
                o.false_down,
                o.false_down as f64 * 1000.0 / o.host_hours,
                model,
                pct(&mut o.latencies, 0.5),
                pct(&mut o.latencies, 0.99),
                o.datagrams_per_host_hour,
                o.bytes_per_host_hour
            );
        }
    }
}
