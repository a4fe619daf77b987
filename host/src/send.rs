//! Sending heartbeat datagrams to every configured server.
//!
//! Each server name is resolved on its own thread, again every interval, so a slow or
//! failing DNS lookup for one server never delays sending to the others; sending uses
//! the last address that resolved. Failures are logged when they start and when they
//! end, not every cycle, and counted. [`Refreshes`] schedules the copies of a heartbeat's
//! smallest datagram sent between heartbeats (docs/protocol.md "Refreshes").

use std::net::{SocketAddr, ToSocketAddrs, UdpSocket};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Splits `host`, `host:port`, `[v6]:port` or a bare IPv6 address.
pub fn parse_target(spec: &str, default_port: u16) -> Result<(String, u16), String> {
    let spec = spec.trim();
    if spec.is_empty() {
        return Err("empty server name".into());
    }
    if let Some(rest) = spec.strip_prefix('[') {
        let (host, after) = rest
            .split_once(']')
            .ok_or_else(|| format!("server {spec:?}: missing ']'"))?;
        let port = match after.strip_prefix(':') {
            Some(p) => p
                .parse()
                .map_err(|_| format!("server {spec:?}: bad port {p:?}"))?,
            None if after.is_empty() => default_port,
            None => return Err(format!("server {spec:?}: unexpected text after ']'")),
        };
        return Ok((host.to_string(), port));
    }
    match spec.rsplit_once(':') {
        // More than one colon and no brackets: a bare IPv6 address.
        Some((host, _)) if host.contains(':') => Ok((spec.to_string(), default_port)),
        Some((host, port)) => {
            let port: u16 = port
                .parse()
                .map_err(|_| format!("server {spec:?}: bad port {port:?}"))?;
            if port == 0 {
                return Err(format!("server {spec:?}: port 0"));
            }
            Ok((host.to_string(), port))
        }
        None => Ok((spec.to_string(), default_port)),
    }
}

/// Delivery statistics of one server.
#[derive(Debug, Default, Clone)]
pub struct Stats {
    pub sent: u64,
    /// Refreshes sent (docs/protocol.md "Refreshes").
    pub refreshes: u64,
    pub failed: u64,
    pub last_error: Option<String>,
}

/// One server heartbeats go to.
pub struct Target {
    pub spec: String,
    addr: Arc<Mutex<Option<SocketAddr>>>,
    pub stats: Stats,
}

impl Target {
    /// Starts resolving `spec` every `every` on a background thread.
    pub fn new(spec: &str, default_port: u16, every: Duration) -> Result<Target, String> {
        let (host, port) = parse_target(spec, default_port)?;
        // A literal address needs no resolver thread.
        if let Ok(ip) = host.parse::<std::net::IpAddr>() {
            return Ok(Target {
                spec: spec.to_string(),
                addr: Arc::new(Mutex::new(Some(SocketAddr::new(ip, port)))),
                stats: Stats::default(),
            });
        }
        let addr = Arc::new(Mutex::new(None));
        let slot = addr.clone();
        let name = spec.to_string();
        std::thread::Builder::new()
            .name("resolve".into())
            .stack_size(256 * 1024)
            .spawn(move || {
                let mut failing = false;
                loop {
                    match (host.as_str(), port).to_socket_addrs() {
                        Ok(mut addrs) => {
                            let first = addrs.next();
                            if failing && first.is_some() {
                                tracing::info!(server = %name, "server name resolves again");
                            }
                            failing = first.is_none();
                            if let Ok(mut g) = slot.lock() {
                                if first.is_some() {
                                    *g = first;
                                }
                            }
                        }
                        Err(e) => {
                            if !failing {
                                tracing::warn!(server = %name, "cannot resolve server name: {e}; retrying every cycle");
                            }
                            failing = true;
                        }
                    }
                    // Resolved names are re-checked each interval (DNS may move them);
                    // Arc count 1 means the Target is gone and so is the need.
                    std::thread::sleep(every);
                    if Arc::strong_count(&slot) == 1 {
                        break;
                    }
                }
            })
            .map_err(|e| format!("cannot start a resolver thread: {e}"))?;
        Ok(Target {
            spec: spec.to_string(),
            addr,
            stats: Stats::default(),
        })
    }

    pub fn addr(&self) -> Option<SocketAddr> {
        self.addr.lock().ok().and_then(|g| *g)
    }
}

/// The sockets heartbeats leave from (one per address family, opened when first needed).
#[derive(Default)]
pub struct Sender {
    v4: Option<UdpSocket>,
    v6: Option<UdpSocket>,
}

impl Sender {
    fn socket(&mut self, to: &SocketAddr) -> std::io::Result<&UdpSocket> {
        let slot = if to.is_ipv4() {
            &mut self.v4
        } else {
            &mut self.v6
        };
        if slot.is_none() {
            let bind: SocketAddr = if to.is_ipv4() {
                SocketAddr::from(([0, 0, 0, 0], 0))
            } else {
                SocketAddr::from(([0u16; 8], 0))
            };
            let s = UdpSocket::bind(bind)?;
            s.set_nonblocking(true)?;
            *slot = Some(s);
        }
        slot.as_ref()
            .ok_or_else(|| std::io::Error::other("socket missing"))
    }

    /// Sends every datagram to `target`; records the outcome.
    pub fn send(&mut self, target: &mut Target, datagrams: &[Vec<u8>]) {
        if self.send_all(target, datagrams) {
            target.stats.sent += 1;
        }
    }

    /// Sends one refresh to `target`; failures are recorded like a heartbeat's.
    pub fn refresh(&mut self, target: &mut Target, datagram: &[u8]) {
        if self.send_all(target, std::slice::from_ref(&datagram)) {
            target.stats.refreshes += 1;
        }
    }

    /// Sends every datagram; logs a failure when it starts and ends. True if all went.
    fn send_all<D: AsRef<[u8]>>(&mut self, target: &mut Target, datagrams: &[D]) -> bool {
        let Some(addr) = target.addr() else {
            target.stats.failed += 1;
            return false;
        };
        let result = self.socket(&addr).and_then(|s| {
            // Every part stands alone (docs/protocol.md): one that cannot be sent (a
            // firewall's EPERM, ENOBUFS) must not keep the others from going.
            let mut first_error = None;
            for d in datagrams {
                if let Err(e) = s.send_to(d.as_ref(), addr) {
                    first_error.get_or_insert(e);
                }
            }
            first_error.map_or(Ok(()), Err)
        });
        match result {
            Ok(()) => {
                if let Some(e) = target.stats.last_error.take() {
                    tracing::info!(server = %target.spec, "sending works again (last error: {e})");
                }
                true
            }
            Err(e) => {
                target.stats.failed += 1;
                if target.stats.last_error.is_none() {
                    tracing::warn!(server = %target.spec, %addr, "cannot send heartbeat: {e}; retrying every cycle");
                }
                target.stats.last_error = Some(e.to_string());
                false
            }
        }
    }
}

/// The refreshes still to send for the last heartbeat: its smallest datagram and when.
///
/// With `n` refreshes per interval they are due at 1/(n+1), 2/(n+1), ... of the interval
/// after the heartbeat, so hbd hears from the host every interval/(n+1) and a host is
/// only thought DOWN after every datagram of 2.5 intervals was lost (docs/faults.md).
#[derive(Debug, Default)]
pub struct Refreshes {
    datagram: Vec<u8>,
    /// Due times, latest first (popped from the end).
    due: Vec<Instant>,
}

impl Refreshes {
    /// Plans `n` refreshes of the smallest of `datagrams`, sent at `at`.
    pub fn plan(&mut self, datagrams: &[Vec<u8>], at: Instant, interval: Duration, n: u32) {
        self.due.clear();
        let Some(smallest) = datagrams.iter().min_by_key(|d| d.len()) else {
            return;
        };
        self.datagram.clone_from(smallest);
        let step = interval / (n + 1);
        self.due = (1..=n).rev().map(|k| at + step * k).collect();
    }

    /// Forgets what is planned (the secret or the servers changed).
    pub fn clear(&mut self) {
        self.due.clear();
    }

    /// When the next refresh is due.
    pub fn next_due(&self) -> Option<Instant> {
        self.due.last().copied()
    }

    /// The datagram to send again if a refresh is due at `now` (one per call; a late
    /// one still goes, refreshes that fell further behind are skipped).
    pub fn take_due(&mut self, now: Instant) -> Option<&[u8]> {
        let mut taken = false;
        while self.due.last().is_some_and(|d| *d <= now) {
            self.due.pop();
            taken = true;
        }
        taken.then_some(self.datagram.as_slice())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn target_forms() {
        assert_eq!(parse_target("a", 50003), Ok(("a".into(), 50003)));
        assert_eq!(parse_target("a:7", 50003), Ok(("a".into(), 7)));
        assert_eq!(parse_target("[::1]:7", 50003), Ok(("::1".into(), 7)));
        assert_eq!(parse_target("[::1]", 50003), Ok(("::1".into(), 50003)));
        assert_eq!(parse_target("::1", 50003), Ok(("::1".into(), 50003)));
        assert!(parse_target("a:x", 1).is_err());
        assert!(parse_target("a:0", 1).is_err());
        assert!(parse_target("", 1).is_err());
    }

    #[test]
    fn refreshes_are_spread_evenly_over_the_interval() {
        let t0 = Instant::now();
        let mut r = Refreshes::default();
        let dgs = [vec![0u8; 900], vec![1u8; 300], vec![2u8; 1400]];
        r.plan(&dgs, t0, Duration::from_secs(3), 2);
        assert_eq!(r.next_due(), Some(t0 + Duration::from_secs(1)));
        assert!(r.take_due(t0).is_none(), "not due yet");
        assert_eq!(r.take_due(t0 + Duration::from_secs(1)), Some(&dgs[1][..]));
        assert_eq!(r.next_due(), Some(t0 + Duration::from_secs(2)));
        // Late by more than a step (hbc was stopped): one refresh goes, not a burst.
        r.plan(&dgs, t0, Duration::from_secs(3), 2);
        assert!(r.take_due(t0 + Duration::from_secs(5)).is_some());
        assert_eq!(r.next_due(), None);
        r.plan(&dgs, t0, Duration::from_secs(3), 0);
        assert_eq!(r.next_due(), None, "0: off");
    }

    /// Found by bench/faults/netem.sh: with every fifth datagram refused by a firewall
    /// (EPERM), a refused first part kept the heartbeat's other parts from being sent.
    #[test]
    fn a_part_that_cannot_be_sent_does_not_stop_the_others() {
        let rx = UdpSocket::bind("127.0.0.1:0").expect("bind");
        rx.set_read_timeout(Some(Duration::from_secs(2)))
            .expect("timeout");
        let mut target = Target::new(
            &rx.local_addr().expect("addr").to_string(),
            1,
            Duration::from_secs(60),
        )
        .expect("target");
        // Larger than any UDP datagram: EMSGSIZE on send.
        let too_big = vec![0u8; 70_000];
        let mut sender = Sender::default();
        sender.send(&mut target, &[too_big, b"part 1".to_vec()]);
        let mut buf = [0u8; 64];
        let n = rx.recv(&mut buf).expect("the second part arrives");
        assert_eq!(&buf[..n], b"part 1");
        assert_eq!((target.stats.sent, target.stats.failed), (0, 1));
        assert!(target.stats.last_error.is_some());
    }
}
