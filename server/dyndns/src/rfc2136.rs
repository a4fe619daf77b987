//! The RFC 2136 client: sends a TSIG-signed UPDATE (or query) to the primary server over
//! UDP, falling back to TCP when the answer is truncated or UDP gets none, verifies the
//! signed answer, and turns response codes into errors a person can act on.

use std::fmt;
use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream, ToSocketAddrs, UdpSocket};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use super::config::Target;
use super::tsig::{self, Key};
use super::wire::{self, Message, RType};
use super::Failure;

/// Talks to one primary server with one key.
pub struct Client {
    server: String,
    key: Key,
    timeout: Duration,
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// A message id nobody can guess in advance (TSIG is what protects the exchange; the id
/// only has to tell answers apart).
fn next_id() -> u16 {
    use std::hash::{BuildHasher, Hasher};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    h.write_u128(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0),
    );
    h.finish() as u16
}

/// What one transport attempt ended with.
enum Exchange {
    Answer(Vec<u8>, Message),
    Truncated,
}

/// Why one transport got no answer: the code of the failure depends on whether both
/// transports timed out, so it is a type, not a message to search.
#[derive(Debug)]
enum NoAnswer {
    TimedOut(Duration),
    Other(String),
}

impl NoAnswer {
    fn other(e: impl fmt::Display) -> NoAnswer {
        NoAnswer::Other(e.to_string())
    }
}

impl fmt::Display for NoAnswer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NoAnswer::TimedOut(d) => write!(f, "timed out after {d:?}"),
            NoAnswer::Other(e) => f.write_str(e),
        }
    }
}

impl Client {
    pub fn new(server: String, key: Key, timeout: Duration) -> Client {
        Client {
            server,
            key,
            timeout,
        }
    }

    pub fn server(&self) -> &str {
        &self.server
    }

    /// Replaces the record of `addr`'s type at `t.name` with `addr`. Ok: the response
    /// code (NOERROR).
    pub fn update(&self, t: &Target, addr: IpAddr) -> Result<String, Failure> {
        let id = next_id();
        let msg = wire::build_update(id, &t.zone, &t.name, addr, t.ttl);
        let (raw, m, mac) = self.exchange(msg, id)?;
        self.check(&raw, &m, &mac, &t.zone, Some(&t.name))?;
        Ok(wire::rcode_name(m.rcode()))
    }

    /// The addresses `name` has now (none if it does not exist).
    pub fn query(&self, name: &str, rtype: RType) -> Result<Vec<IpAddr>, Failure> {
        let id = next_id();
        let msg = wire::build_query(id, name, rtype);
        let (raw, m, mac) = self.exchange(msg, id)?;
        if m.rcode() == 3 {
            // NXDOMAIN: no record yet. Still check the signature if it has one.
            if m.tsig.is_some() {
                self.verify(&raw, &m, &mac)?;
            }
            return Ok(Vec::new());
        }
        self.check(&raw, &m, &mac, name, None)?;
        Ok(m.addresses(name, rtype))
    }

    fn verify(&self, raw: &[u8], m: &Message, mac: &[u8]) -> Result<(), Failure> {
        tsig::verify(raw, m, &self.key, Some(mac), unix_now()).map_err(|e| Failure {
            code: "BADRESPONSE".into(),
            detail: format!("answer from {} not accepted: {e}", self.server),
        })
    }

    /// Turns the response code (and the TSIG error) into a result, verifying the
    /// signature of a successful answer.
    fn check(
        &self,
        raw: &[u8],
        m: &Message,
        mac: &[u8],
        zone: &str,
        name: Option<&str>,
    ) -> Result<(), Failure> {
        let (server, key) = (&self.server, &self.key.name);
        let alg = self.key.algorithm.as_str();
        if let Some(t) = m.tsig.as_ref().filter(|t| t.error != 0) {
            let tsig_err = wire::rcode_name(t.error);
            let detail = match t.error {
                16 => format!("{server} rejected the signature of TSIG key {key}: wrong secret?"),
                17 => format!("{server} does not know TSIG key {key} ({alg})"),
                18 => format!(
                    "the clocks of hbd and {server} differ by more than {} s",
                    tsig::FUDGE
                ),
                _ => format!("{server} rejected TSIG key {key}"),
            };
            return Err(Failure {
                code: format!("{}/{tsig_err}", wire::rcode_name(m.rcode())),
                detail,
            });
        }
        let rcode = m.rcode();
        if rcode == 0 {
            return self.verify(raw, m, mac);
        }
        let what = name.unwrap_or(zone);
        let detail = match rcode {
            1 => format!("{server} could not parse the request"),
            2 => format!("{server} failed to apply it (see its log)"),
            4 => format!("{server} does not support dynamic updates"),
            5 => format!(
                "{server} refuses updates to {what} with key {key} (check allow-update or \
                 update-policy for zone {zone})"
            ),
            9 => format!("{server} is not authoritative for zone {zone} (is it the primary?)"),
            10 => format!("{what} is not in zone {zone}"),
            _ => format!("{server} answered {}", wire::rcode_name(rcode)),
        };
        Err(Failure {
            code: wire::rcode_name(rcode),
            detail,
        })
    }

    /// Signs `msg`, sends it over UDP (TCP if the answer is truncated or none comes) and
    /// returns the raw and parsed answer and our request's MAC.
    fn exchange(&self, mut msg: Vec<u8>, id: u16) -> Result<(Vec<u8>, Message, Vec<u8>), Failure> {
        let mac = tsig::sign(&mut msg, &self.key, unix_now()).map_err(|e| Failure {
            code: "INTERNAL".into(),
            detail: e.to_string(),
        })?;
        let addr = self.resolve()?;
        let udp = match self.udp(addr, &msg, id) {
            Ok(Exchange::Answer(raw, m)) => return Ok((raw, m, mac)),
            Ok(Exchange::Truncated) => NoAnswer::other("answer truncated"),
            Err(e) => e,
        };
        match self.tcp(addr, &msg, id) {
            Ok(Exchange::Answer(raw, m)) => Ok((raw, m, mac)),
            Ok(Exchange::Truncated) => Err(Failure {
                code: "BADRESPONSE".into(),
                detail: format!("{} sent a truncated answer over TCP", self.server),
            }),
            Err(tcp) => {
                let both_timed_out =
                    matches!((&udp, &tcp), (NoAnswer::TimedOut(_), NoAnswer::TimedOut(_)));
                let code = if both_timed_out {
                    "TIMEOUT"
                } else {
                    "UNREACHABLE"
                };
                Err(Failure {
                    code: code.into(),
                    detail: format!(
                        "no answer from {} ({addr}): UDP: {udp}; TCP: {tcp}",
                        self.server
                    ),
                })
            }
        }
    }

    fn resolve(&self) -> Result<SocketAddr, Failure> {
        let fail = |why: String| Failure {
            code: "UNREACHABLE".into(),
            detail: format!("cannot resolve dns_server {}: {why}", self.server),
        };
        self.server
            .to_socket_addrs()
            .map_err(|e| fail(e.to_string()))?
            .next()
            .ok_or_else(|| fail("no address".into()))
    }

    /// Checks an answer belongs to our request: a response with our id.
    fn accept(raw: &[u8], id: u16) -> Option<Message> {
        wire::parse(raw)
            .ok()
            .filter(|m| m.id == id && m.is_response())
    }

    fn udp(&self, addr: SocketAddr, msg: &[u8], id: u16) -> Result<Exchange, NoAnswer> {
        let local: SocketAddr = if addr.is_ipv4() {
            ([0, 0, 0, 0], 0).into()
        } else {
            ([0u16; 8], 0).into()
        };
        let sock = UdpSocket::bind(local)
            .map_err(|e| NoAnswer::Other(format!("cannot open a socket: {e}")))?;
        sock.connect(addr).map_err(NoAnswer::other)?;
        sock.send(msg).map_err(NoAnswer::other)?;
        let deadline = Instant::now() + self.timeout;
        let mut buf = vec![0u8; 65_535];
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(NoAnswer::TimedOut(self.timeout));
            }
            sock.set_read_timeout(Some(left)).map_err(NoAnswer::other)?;
            let n = match sock.recv(&mut buf) {
                Ok(n) => n,
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) =>
                {
                    return Err(NoAnswer::TimedOut(self.timeout))
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(NoAnswer::other(e)),
            };
            let raw = buf[..n].to_vec();
            // Anything else (late answers to earlier requests, junk) is ignored.
            if let Some(m) = Self::accept(&raw, id) {
                if m.truncated() {
                    return Ok(Exchange::Truncated);
                }
                return Ok(Exchange::Answer(raw, m));
            }
        }
    }

    fn tcp(&self, addr: SocketAddr, msg: &[u8], id: u16) -> Result<Exchange, NoAnswer> {
        let io = |e: std::io::Error| {
            if matches!(
                e.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
            ) {
                NoAnswer::TimedOut(self.timeout)
            } else {
                NoAnswer::other(e)
            }
        };
        let deadline = Instant::now() + self.timeout;
        let mut s = TcpStream::connect_timeout(&addr, self.timeout).map_err(io)?;
        let left = || {
            deadline
                .saturating_duration_since(Instant::now())
                .max(Duration::from_millis(1))
        };
        s.set_write_timeout(Some(left())).map_err(io)?;
        let len = u16::try_from(msg.len()).map_err(|_| NoAnswer::other("request too long"))?;
        let mut framed = len.to_be_bytes().to_vec();
        framed.extend_from_slice(msg);
        s.write_all(&framed).map_err(io)?;
        s.set_read_timeout(Some(left())).map_err(io)?;
        let mut len = [0u8; 2];
        s.read_exact(&mut len).map_err(io)?;
        let mut raw = vec![0u8; usize::from(u16::from_be_bytes(len))];
        s.set_read_timeout(Some(left())).map_err(io)?;
        s.read_exact(&mut raw).map_err(io)?;
        match Self::accept(&raw, id) {
            Some(m) if m.truncated() => Ok(Exchange::Truncated),
            Some(m) => Ok(Exchange::Answer(raw, m)),
            None => Err(NoAnswer::other(
                "the answer is malformed or not for our request",
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tsig::Algorithm;

    fn client(server: String) -> Client {
        Client::new(
            server,
            Key {
                name: "k.".into(),
                algorithm: Algorithm::HmacSha256,
                secret: b"secret".to_vec(),
            },
            Duration::from_millis(300),
        )
    }

    fn target() -> Target {
        Target {
            host: "web1".into(),
            name: "web1.dyn.test.".into(),
            zone: "dyn.test.".into(),
            ttl: 60,
            allow_unsigned: false,
        }
    }

    /// A server that answers every request with `answer(request)`, over UDP and TCP.
    fn fake_server(
        answer: impl Fn(&[u8]) -> Vec<u8> + Send + Sync + Clone + 'static,
    ) -> SocketAddr {
        // A UDP port whose TCP twin is free too (another test may hold it).
        let (udp, addr, tcp) = (0..100)
            .find_map(|_| {
                let udp = UdpSocket::bind("127.0.0.1:0").ok()?;
                let addr = udp.local_addr().ok()?;
                let tcp = std::net::TcpListener::bind(addr).ok()?;
                Some((udp, addr, tcp))
            })
            .expect("a UDP port with its TCP twin free");
        let a = answer.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok((n, from)) = udp.recv_from(&mut buf) {
                let _ = udp.send_to(&a(&buf[..n]), from);
            }
        });
        std::thread::spawn(move || {
            for mut s in tcp.incoming().flatten() {
                let mut len = [0u8; 2];
                if s.read_exact(&mut len).is_err() {
                    continue;
                }
                let mut req = vec![0u8; usize::from(u16::from_be_bytes(len))];
                if s.read_exact(&mut req).is_err() {
                    continue;
                }
                let resp = answer(&req);
                let mut out = (resp.len() as u16).to_be_bytes().to_vec();
                out.extend_from_slice(&resp);
                let _ = s.write_all(&out);
            }
        });
        addr
    }

    /// An unsigned answer with this id, flags and rcode.
    fn reply(req: &[u8], flags: u16) -> Vec<u8> {
        let mut r = req[0..2].to_vec();
        r.extend_from_slice(&(0x8000 | flags).to_be_bytes());
        r.extend_from_slice(&[0; 8]);
        r
    }

    #[test]
    fn rcodes_become_clear_errors() {
        let addr = fake_server(|req| reply(req, 5));
        let e = client(addr.to_string())
            .update(&target(), "10.0.0.1".parse().expect("ip"))
            .expect_err("refused");
        assert_eq!(e.code, "REFUSED");
        assert!(
            e.detail.contains("refuses updates to web1.dyn.test."),
            "{e}"
        );
    }

    #[test]
    fn an_unsigned_success_is_not_believed() {
        let addr = fake_server(|req| reply(req, 0));
        let e = client(addr.to_string())
            .update(&target(), "10.0.0.1".parse().expect("ip"))
            .expect_err("unsigned");
        assert_eq!(e.code, "BADRESPONSE");
        assert!(e.to_string().contains("not signed"), "{e}");
    }

    #[test]
    fn truncated_udp_falls_back_to_tcp() {
        // Over UDP the answer is truncated; over TCP it is REFUSED: seeing REFUSED
        // proves the TCP path was taken.
        let seen = std::sync::Arc::new(AtomicU64::new(0));
        let s = seen.clone();
        let addr = fake_server(move |req| {
            if s.fetch_add(1, Ordering::SeqCst) == 0 {
                reply(req, 0x0200)
            } else {
                reply(req, 5)
            }
        });
        let e = client(addr.to_string())
            .update(&target(), "10.0.0.1".parse().expect("ip"))
            .expect_err("refused over tcp");
        assert_eq!(e.code, "REFUSED");
        assert_eq!(seen.load(Ordering::SeqCst), 2);
    }

    #[test]
    fn a_silent_server_times_out_and_a_closed_port_is_unreachable() {
        let silent = UdpSocket::bind("127.0.0.1:0").expect("bind");
        let addr = silent.local_addr().expect("addr");
        // Nothing listens on TCP there either: UDP times out, TCP is refused.
        let e = client(addr.to_string())
            .query("web1.dyn.test.", RType::A)
            .expect_err("no answer");
        assert_eq!(e.code, "UNREACHABLE", "{e}");
        assert!(e.detail.contains("UDP: timed out"), "{e}");
        assert!(e.detail.contains("TCP: "), "{e}");
        drop(silent);
        let e = client(addr.to_string())
            .query("web1.dyn.test.", RType::A)
            .expect_err("closed");
        assert_eq!(e.code, "UNREACHABLE", "{e}");
    }
}
