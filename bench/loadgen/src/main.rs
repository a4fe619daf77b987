//! `hb-loadgen`: load generator and server benchmarks for hbd (see bench/README.md).
//!
//! All traffic goes to 127.0.0.1; every loop is bounded in count and time. The
//! benchmarks print figures with ratios to baselines measured in the same run; they are
//! not tests and never fail on a slow result.

mod cluster;
mod cost;
mod fleet;
mod ingest;
mod payload;
mod recv;
mod send;
mod stats;
mod sys;
mod wslat;

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{bail, Result};
use clap::{Parser, Subcommand};

/// The shared secret of every benchmark (hbd's config and the generator).
pub const SECRET: &str = "hb-bench-secret-0123456789abcdef";

#[derive(Debug, Parser)]
#[command(name = "hb-loadgen", about = "Load generator and benchmarks for hbd")]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Minimal receiver (baseline): recvmmsg, count; counters on --http /metrics.
    RawRecv {
        #[arg(long)]
        udp: SocketAddr,
        #[arg(long)]
        http: SocketAddr,
        /// Receive buffer per socket (hbd's `udp_rcvbuf` in the bench config).
        #[arg(long, default_value_t = sys::UDP_RCVBUF)]
        rcvbuf: usize,
        /// Sockets (and threads) on one `SO_REUSEPORT` port (hbd's `ingest_threads`).
        #[arg(long, default_value_t = sys::INGEST_THREADS)]
        sockets: usize,
        /// Also decode and verify every datagram with this secret.
        #[arg(long)]
        decode: Option<String>,
        /// Exit after this many seconds (a safety bound; the benchmarks stop it sooner).
        #[arg(long, default_value_t = 3600)]
        max_seconds: u64,
    },
    /// Minimal WebSocket push server (baseline for ws-latency).
    WsEcho {
        #[arg(long)]
        udp: SocketAddr,
        #[arg(long)]
        http: SocketAddr,
        #[arg(long)]
        ws: SocketAddr,
        #[arg(long)]
        secret: String,
        #[arg(long, default_value_t = 3600)]
        max_seconds: u64,
    },
    /// Send signed heartbeats from N simulated hosts at a paced rate; print what was sent.
    Blast {
        #[arg(long)]
        target: SocketAddr,
        /// Datagrams per second.
        #[arg(long, default_value_t = 10_000.0)]
        rate: f64,
        /// Seconds.
        #[arg(long, default_value_t = 5.0)]
        duration: f64,
        #[arg(long, default_value_t = 1000)]
        hosts: usize,
        #[arg(long, default_value_t = 30)]
        readings: usize,
        #[arg(long, default_value = SECRET)]
        secret: String,
        #[arg(long, default_value_t = 1)]
        threads: usize,
        #[arg(long, default_value_t = 32)]
        batch: usize,
        /// Heartbeat interval written into the datagrams (ms).
        #[arg(long, default_value_t = 10_000)]
        interval_ms: u32,
    },
    /// Highest loss-free ingest rate: hbd against the minimal receiver.
    Ingest(ingest::Opts),
    /// A large fleet at a fixed interval: CPU, RSS, list-hosts latency, DOWN lateness.
    Fleet(fleet::Opts),
    /// Heartbeat-to-WebSocket-message latency with many clients.
    WsLatency(wslat::Opts),
    /// Per-datagram cost of hbd's decode, verify and registry code (in-process).
    Cost(cost::Opts),
    /// Resident memory of hbd's registry for N hosts as history fills (in-process).
    Memory(cost::MemOpts),
}

/// Ends this process after `secs` (a baseline server left behind cannot run forever).
fn exit_after(secs: u64) {
    std::thread::spawn(move || {
        std::thread::sleep(Duration::from_secs(secs));
        std::process::exit(0);
    });
}

fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Cmd::RawRecv {
            udp,
            http,
            rcvbuf,
            sockets,
            decode,
            max_seconds,
        } => {
            exit_after(max_seconds);
            recv::raw_recv(udp, http, rcvbuf, sockets, decode)
        }
        Cmd::WsEcho {
            udp,
            http,
            ws,
            secret,
            max_seconds,
        } => {
            exit_after(max_seconds);
            recv::ws_echo(udp, http, ws, secret)
        }
        Cmd::Blast {
            target,
            rate,
            duration,
            hosts,
            readings,
            secret,
            threads,
            batch,
            interval_ms,
        } => {
            if !target.ip().is_loopback() {
                bail!("--target must be a loopback address (127.0.0.1:PORT)");
            }
            if duration > 600.0 {
                bail!("--duration is limited to 600 s");
            }
            let tpl = payload::Template::new(readings, &secret, interval_ms)?;
            let mut h = send::Hosts::split(hosts, threads.max(1));
            let s = send::blast(
                &tpl,
                target,
                &mut h,
                payload::now_ms(),
                rate,
                Duration::from_secs_f64(duration),
                batch,
            )?;
            println!(
                "sent {} datagrams of {} B in {:.2} s: {:.0}/s (target {:.0}/s), errors {}, generator CPU {:.2} µs/datagram",
                s.datagrams,
                tpl.len(),
                s.elapsed.as_secs_f64(),
                s.rate(),
                rate,
                s.errors,
                s.cpu.as_secs_f64() * 1e6 / s.datagrams.max(1) as f64
            );
            Ok(())
        }
        Cmd::Ingest(o) => ingest::run(&o),
        Cmd::Fleet(o) => fleet::run(&o),
        Cmd::WsLatency(o) => wslat::run(&o),
        Cmd::Cost(o) => cost::run(&o),
        Cmd::Memory(o) => cost::memory(&o),
    }
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("hb-loadgen: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
