//! hbd with dynamic DNS pointed at a test `named`, and heartbeats from chosen source
//! addresses.

use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::path::Path;
use std::time::Duration;

use crate::bind::{Named, KEY_NAME, KEY_SECRET};
use crate::util::{config, datagram, events, Hbd};

pub const SECRET: &[u8] = b"dns-test-shared-secret";

/// hbd listening on `::` (IPv4 and IPv6), updating `named` for host web1 in dyn.test,
/// with short timings; `extra` is appended to the YAML (later keys must not repeat).
pub fn hbd(named: &Named, dir: &Path, extra: &str) -> Hbd {
    let yaml = format!(
        "secret: {}\ndns_server: {}\ndns_zone: dyn.test\ndns_debounce: 200ms\n\
         dns_min_interval: 0s\ndns_timeout: 1s\n{extra}",
        String::from_utf8_lossy(SECRET),
        named.addr(),
    );
    let yaml = if extra.contains("dns_tsig_") {
        yaml
    } else {
        format!("{yaml}dns_tsig_name: {KEY_NAME}\ndns_tsig_secret: {KEY_SECRET}\n")
    };
    let yaml = if extra.contains("dyndnshosts") {
        yaml
    } else {
        format!("{yaml}dyndnshosts: [web1]\n")
    };
    Hbd::start_on("::".parse().expect("ip"), config(&yaml), dir, 0)
}

/// Sends one signed heartbeat of `host` from source address `from`.
pub fn beat(hbd: &Hbd, from: &str, host: &str, seq: u64) {
    beat_with(hbd, from, host, seq, Some(SECRET));
}

pub fn beat_with(hbd: &Hbd, from: &str, host: &str, seq: u64, secret: Option<&[u8]>) {
    let from: IpAddr = from.parse().expect("source address");
    let to: SocketAddr = if from.is_ipv6() {
        SocketAddr::new("::1".parse().expect("ip"), hbd.udp.port())
    } else {
        SocketAddr::new("127.0.0.1".parse().expect("ip"), hbd.udp.port())
    };
    let sock = UdpSocket::bind(SocketAddr::new(from, 0))
        .unwrap_or_else(|e| panic!("cannot send from {from}: {e}"));
    sock.send_to(&datagram(host, 7, seq, secret, 1), to)
        .expect("send heartbeat");
}

/// Waits until a real DNS query for `name` `rtype` returns exactly `want`.
pub fn wait_record(named: &Named, name: &str, rtype: &str, want: &[&str], limit: Duration) {
    let start = std::time::Instant::now();
    let mut got = Vec::new();
    while start.elapsed() < limit {
        got = named.lookup(name, rtype);
        if got == want {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("{name} {rtype} is {got:?} after {limit:?}, expected {want:?}");
}

/// Waits for the `n`-th event of `kind` about `host` and returns all of them so far.
pub fn wait_events(hbd: &Hbd, host: &str, kind: &str, n: usize) -> Vec<serde_json::Value> {
    let mut ev = Vec::new();
    hbd.wait_for(
        Duration::from_secs(15),
        &format!("{n} {kind} event(s) for {host}"),
        |h| {
            ev = events(h, &format!("host={host}&kind={kind}"));
            ev.len() >= n
        },
    );
    ev
}

/// `/api/v1/dns` entry of one record.
pub fn record_status(hbd: &Hbd, name: &str, rtype: &str) -> serde_json::Value {
    let (code, body) = hbd.get("/api/v1/dns");
    assert_eq!(code, 200, "{body}");
    body["records"][name]["records"][rtype].clone()
}
