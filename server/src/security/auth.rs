//! `dashboard_users`: HTTP Basic credentials checked in constant time, and the table of
//! failed logins per client that turns a password-guessing client away for a while.
//!
//! Pure: the table takes the time as a parameter, so its rules are tested without
//! sleeping.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::time::{Duration, Instant};

use base64::Engine;
use sha2::{Digest, Sha256};
use subtle::{Choice, ConstantTimeEq};

use crate::notify::config::Secret;

/// Failed logins from one client within [`WINDOW`] after which it is refused.
pub const MAX_FAILURES: u32 = 10;
/// The window failures are counted in, and how long a client is then refused.
pub const WINDOW: Duration = Duration::from_secs(60);
/// Clients the failure table remembers at most (memory stays bounded under a
/// distributed attack; the oldest records make room).
pub const TABLE_CAP: usize = 4096;

/// The configured users, as digests: comparing digests of equal length in constant time
/// reveals neither the length of a password nor where it first differs.
pub struct Users {
    users: Vec<([u8; 32], [u8; 32])>,
}

fn digest(s: &str) -> [u8; 32] {
    Sha256::digest(s.as_bytes()).into()
}

impl Users {
    pub fn new(users: &BTreeMap<String, Secret>) -> Users {
        Users {
            users: users
                .iter()
                .map(|(u, p)| (digest(u), digest(p.expose())))
                .collect(),
        }
    }

    /// Whether `user` with `password` is one of the users. Every user is compared, so the
    /// time taken does not say whether the name exists.
    pub fn verify(&self, user: &str, password: &str) -> bool {
        let (u, p) = (digest(user), digest(password));
        let mut ok = Choice::from(0);
        for (cu, cp) in &self.users {
            ok |= cu.ct_eq(&u) & cp.ct_eq(&p);
        }
        ok.into()
    }
}

/// What an `Authorization` header holds, as far as Basic authentication goes.
#[derive(Debug, PartialEq, Eq)]
pub enum Credentials {
    /// No header, or another scheme (a browser asks the person only after a 401).
    None,
    /// `Basic` with something that is not base64 of UTF-8 `user:password`.
    Malformed,
    Basic {
        user: String,
        password: String,
    },
}

/// Parses an `Authorization` header value (RFC 7617).
pub fn parse_basic(header: Option<&[u8]>) -> Credentials {
    let Some(h) = header.and_then(|h| std::str::from_utf8(h).ok()) else {
        return match header {
            Some(_) => Credentials::Malformed,
            None => Credentials::None,
        };
    };
    let h = h.trim();
    let (scheme, rest) = h.split_once(' ').unwrap_or((h, ""));
    if !scheme.eq_ignore_ascii_case("basic") {
        return Credentials::None;
    }
    let Ok(raw) = base64::engine::general_purpose::STANDARD.decode(rest.trim()) else {
        return Credentials::Malformed;
    };
    let Ok(text) = String::from_utf8(raw) else {
        return Credentials::Malformed;
    };
    match text.split_once(':') {
        Some((u, p)) => Credentials::Basic {
            user: u.to_string(),
            password: p.to_string(),
        },
        None => Credentials::Malformed,
    }
}

/// A user name as it may appear in a log line: escaped, and cut to a sane length (it
/// comes from the client).
pub fn loggable_user(user: &str) -> String {
    let cut: String = user.chars().take(64).collect();
    let mut s = format!("{cut:?}");
    if cut.len() < user.len() {
        s.push('…');
    }
    s
}

/// The key failures are counted under (IPv6 per /64), as for the rate limits.
pub use crate::ratelimit::client_key;

#[derive(Debug, Clone, Copy)]
struct Record {
    /// Start of the current counting window.
    since: Instant,
    failures: u32,
    blocked_until: Option<Instant>,
}

impl Record {
    fn expired(&self, now: Instant) -> bool {
        match self.blocked_until {
            Some(t) => now >= t,
            None => now.duration_since(self.since) >= WINDOW,
        }
    }
}

/// What [`Failures::fail`] decided.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Counted; `left` more failures before the client is refused.
    Counted { left: u32 },
    /// This failure was the last one allowed: the client is refused from now on.
    Blocked,
}

/// Failed logins per client, bounded to [`TABLE_CAP`] clients.
pub struct Failures {
    records: HashMap<IpAddr, Record>,
    cap: usize,
}

impl Default for Failures {
    fn default() -> Self {
        Failures::with_cap(TABLE_CAP)
    }
}

impl Failures {
    pub fn with_cap(cap: usize) -> Failures {
        Failures {
            records: HashMap::new(),
            cap: cap.max(1),
        }
    }

    pub fn len(&self) -> usize {
        self.records.len()
    }

    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// How much longer `client` is refused, if it is.
    pub fn blocked(&mut self, client: IpAddr, now: Instant) -> Option<Duration> {
        let key = client_key(client);
        let r = self.records.get(&key)?;
        match r.blocked_until {
            Some(t) if now < t => Some(t - now),
            _ => {
                if r.expired(now) {
                    self.records.remove(&key);
                }
                None
            }
        }
    }

    /// Counts a failed login of `client`.
    pub fn fail(&mut self, client: IpAddr, now: Instant) -> Verdict {
        let key = client_key(client);
        if !self.records.contains_key(&key) && self.records.len() >= self.cap {
            self.make_room(now);
        }
        let r = self.records.entry(key).or_insert(Record {
            since: now,
            failures: 0,
            blocked_until: None,
        });
        if r.expired(now) {
            *r = Record {
                since: now,
                failures: 0,
                blocked_until: None,
            };
        }
        r.failures += 1;
        if r.failures >= MAX_FAILURES {
            r.blocked_until = Some(now + WINDOW);
            Verdict::Blocked
        } else {
            Verdict::Counted {
                left: MAX_FAILURES - r.failures,
            }
        }
    }

    /// Drops expired records; if none had expired, the oldest one.
    fn make_room(&mut self, now: Instant) {
        self.records.retain(|_, r| !r.expired(now));
        if self.records.len() >= self.cap {
            let oldest = self
                .records
                .iter()
                .min_by_key(|(_, r)| r.since)
                .map(|(k, _)| *k);
            if let Some(k) = oldest {
                self.records.remove(&k);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b64(s: &str) -> String {
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(s)
        )
    }

    #[test]
    fn basic_header_parsing() {
        assert_eq!(parse_basic(None), Credentials::None);
        assert_eq!(parse_basic(Some(b"Bearer xyz")), Credentials::None);
        assert_eq!(
            parse_basic(Some(b64("ops:pa:ss").as_bytes())),
            Credentials::Basic {
                user: "ops".into(),
                password: "pa:ss".into()
            }
        );
        assert_eq!(
            parse_basic(Some(format!("basic  {}", &b64("a:b")[6..]).as_bytes())),
            Credentials::Basic {
                user: "a".into(),
                password: "b".into()
            }
        );
        assert_eq!(parse_basic(Some(b"Basic !!!")), Credentials::Malformed);
        assert_eq!(
            parse_basic(Some(b64("no-colon").as_bytes())),
            Credentials::Malformed
        );
        assert_eq!(parse_basic(Some(b"Basic \xff")), Credentials::Malformed);
    }

    #[test]
    fn verify_users() {
        let users = Users::new(&BTreeMap::from([
            ("ops".to_string(), Secret("right-password".into())),
            ("dev".to_string(), Secret("other-password".into())),
        ]));
        assert!(users.verify("ops", "right-password"));
        assert!(users.verify("dev", "other-password"));
        assert!(!users.verify("ops", "other-password"));
        assert!(!users.verify("ops", "right-passwor"));
        assert!(!users.verify("nobody", "right-password"));
        assert!(!users.verify("", ""));
    }

    #[test]
    fn user_names_in_logs_are_escaped_and_short() {
        assert_eq!(loggable_user("ops"), "\"ops\"");
        assert_eq!(loggable_user("a\nb"), "\"a\\nb\"");
        assert!(loggable_user(&"x".repeat(1000)).len() < 80);
    }

    #[test]
    fn ten_failures_in_a_minute_block_for_a_minute() {
        let t0 = Instant::now();
        let ip: IpAddr = "192.0.2.7".parse().expect("ip");
        let mut f = Failures::default();
        for i in 1..MAX_FAILURES {
            assert_eq!(
                f.fail(ip, t0 + Duration::from_secs(u64::from(i))),
                Verdict::Counted {
                    left: MAX_FAILURES - i
                }
            );
            assert_eq!(f.blocked(ip, t0 + Duration::from_secs(u64::from(i))), None);
        }
        let t = t0 + Duration::from_secs(20);
        assert_eq!(f.fail(ip, t), Verdict::Blocked);
        assert_eq!(f.blocked(ip, t), Some(WINDOW));
        assert_eq!(
            f.blocked(ip, t + Duration::from_secs(59)),
            Some(Duration::from_secs(1))
        );
        assert_eq!(f.blocked(ip, t + WINDOW), None);
        assert!(f.is_empty(), "an expired record is forgotten");
        // Another client is not affected.
        assert_eq!(f.blocked("192.0.2.8".parse().expect("ip"), t), None);
    }

    #[test]
    fn failures_spread_over_more_than_a_minute_do_not_block() {
        let t0 = Instant::now();
        let ip: IpAddr = "192.0.2.7".parse().expect("ip");
        let mut f = Failures::default();
        for i in 0..30u64 {
            assert_ne!(
                f.fail(ip, t0 + Duration::from_secs(i * 7)),
                Verdict::Blocked,
                "failure {i}"
            );
        }
    }

    #[test]
    fn ipv6_counts_per_64_and_mapped_v4_as_v4() {
        let t0 = Instant::now();
        let mut f = Failures::default();
        for i in 0..MAX_FAILURES {
            let ip: IpAddr = format!("2001:db8:1:2::{:x}", i + 1).parse().expect("ip");
            f.fail(ip, t0);
        }
        assert!(f
            .blocked("2001:db8:1:2:ffff::1".parse().expect("ip"), t0)
            .is_some());
        assert!(f
            .blocked("2001:db8:1:3::1".parse().expect("ip"), t0)
            .is_none());
        assert_eq!(
            client_key("::ffff:192.0.2.1".parse().expect("ip")),
            "192.0.2.1".parse::<IpAddr>().expect("ip")
        );
    }

    #[test]
    fn the_table_stays_bounded() {
        let t0 = Instant::now();
        let mut f = Failures::with_cap(100);
        for i in 0..1000u32 {
            let ip = IpAddr::from(std::net::Ipv4Addr::from(0x0a00_0000 + i));
            f.fail(ip, t0 + Duration::from_millis(u64::from(i)));
            assert!(f.len() <= 100);
        }
        // A new client is still counted, and refused, when the table is full.
        let attacker: IpAddr = "192.0.2.99".parse().expect("ip");
        let t1 = t0 + Duration::from_secs(2);
        for _ in 0..MAX_FAILURES {
            f.fail(attacker, t1);
        }
        assert!(f.blocked(attacker, t1).is_some());
        assert!(f.len() <= 100);
    }
}
