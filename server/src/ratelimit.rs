//! Per-source rate limits: token buckets keyed by client address, in a bounded table.
//!
//! Two users: the HTTP listener (`api_rate_limit`, every request but `/healthz`), and the
//! UDP ingest threads (`udp_rate_limit`) when hbd has no `secret`, so every source is
//! unauthenticated. With a secret a datagram is verified or dropped at the cost of its
//! HMAC, and limiting by (spoofable) source address would only let a forger silence the
//! real host whose address it uses.
//!
//! IPv6 sources are keyed by their /64 (one subscriber's whole prefix), as an attacker
//! holds a /64 as easily as one address. The table holds at most `max_sources` entries:
//! when it is full, buckets that have refilled are forgotten (they equal a new one), and a
//! source that still finds no room shares one overflow bucket with every other such
//! source, so spoofed addresses cannot grow memory or reset their own limits.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::StatusCode;
use actix_web::middleware::Next;
use actix_web::{web, HttpResponse};

/// Table size of one limiter.
pub const MAX_SOURCES: usize = 65_536;

/// A rate in events per second and the burst allowed above it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rate {
    pub per_second: f64,
    pub burst: f64,
}

impl Rate {
    /// Off when the rate is zero.
    pub fn is_off(&self) -> bool {
        self.per_second <= 0.0
    }
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

/// Token buckets per source. Not thread-safe by itself: each UDP thread owns one, and
/// the HTTP workers share one behind a mutex.
#[derive(Debug)]
pub struct Limiter {
    rate: Rate,
    max_sources: usize,
    buckets: HashMap<IpAddr, Bucket>,
    overflow: Bucket,
    last_sweep: Instant,
}

impl Limiter {
    pub fn new(rate: Rate, max_sources: usize, now: Instant) -> Limiter {
        Limiter {
            rate,
            max_sources: max_sources.max(1),
            buckets: HashMap::new(),
            overflow: Bucket {
                tokens: rate.burst,
                at: now,
            },
            last_sweep: now,
        }
    }

    /// Sources tracked now.
    pub fn len(&self) -> usize {
        self.buckets.len()
    }

    pub fn is_empty(&self) -> bool {
        self.buckets.is_empty()
    }

    /// Takes one token from `src`'s bucket. `Err(wait)`: none left, try again after `wait`.
    pub fn take(&mut self, src: IpAddr, now: Instant) -> Result<(), Duration> {
        if self.rate.is_off() {
            return Ok(());
        }
        let rate = self.rate;
        let key = client_key(src);
        let b = if self.no_room_for(key, now) {
            &mut self.overflow
        } else {
            self.buckets.entry(key).or_insert(Bucket {
                tokens: rate.burst,
                at: now,
            })
        };
        let tokens = refill(b, rate, now);
        if tokens >= 1.0 {
            b.tokens = tokens - 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - tokens) / rate.per_second))
        }
    }

    /// True when `key` has no bucket and the table is full even after a sweep: it then
    /// shares the overflow bucket.
    fn no_room_for(&mut self, key: IpAddr, now: Instant) -> bool {
        if self.buckets.contains_key(&key) || self.buckets.len() < self.max_sources {
            return false;
        }
        self.sweep(now);
        self.buckets.len() >= self.max_sources
    }

    /// Forgets buckets that are full again (at most once a second: O(table)).
    fn sweep(&mut self, now: Instant) {
        if now.saturating_duration_since(self.last_sweep) < Duration::from_secs(1) {
            return;
        }
        self.last_sweep = now;
        let rate = self.rate;
        self.buckets
            .retain(|_, b| refill(&mut b.clone(), rate, now) < rate.burst);
    }
}

/// Tokens in `b` at `now` (stored back, so time is only counted once).
fn refill(b: &mut Bucket, rate: Rate, now: Instant) -> f64 {
    let dt = now.saturating_duration_since(b.at).as_secs_f64();
    b.tokens = (b.tokens + dt * rate.per_second).min(rate.burst);
    b.at = now;
    b.tokens
}

/// The key a client is counted under: IPv4 as is (IPv4-mapped IPv6 too); IPv6 by its /64
/// (one subscriber usually holds a whole /64, so single addresses would count nothing).
pub fn client_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let mut s = v6.segments();
                s[4..].fill(0);
                IpAddr::V6(s.into())
            }
        },
    }
}

/// The HTTP listener's limiter, shared by its workers.
#[derive(Debug)]
pub struct Http {
    rate: Rate,
    limiter: std::sync::Mutex<Limiter>,
    pub limited: std::sync::atomic::AtomicU64,
}

impl Http {
    pub fn new(rate: Rate) -> Arc<Http> {
        Arc::new(Http {
            rate,
            limiter: std::sync::Mutex::new(Limiter::new(rate, MAX_SOURCES, Instant::now())),
            limited: Default::default(),
        })
    }

    fn take(&self, src: IpAddr) -> Result<(), Duration> {
        let mut l = self
            .limiter
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        l.take(src, Instant::now())
    }
}

/// Middleware: `429 Too Many Requests` with `Retry-After` and a JSON error once a client
/// address has used its burst; `/healthz` is never limited (load balancers poll it).
pub async fn guard(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let limiter = req.app_data::<web::Data<Arc<Http>>>().cloned();
    let src = req.peer_addr().map(|a| a.ip());
    if let (Some(l), Some(src)) = (limiter, src) {
        if req.path() != "/healthz" {
            if let Err(wait) = l.take(src) {
                let n = l.limited.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
                if let Some(state) = req.app_data::<web::Data<crate::state::Shared>>() {
                    state
                        .counters
                        .http_limited
                        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }
                if n.is_power_of_two() {
                    tracing::warn!(client = %src, limited = n, "HTTP rate limit reached (api_rate_limit)");
                }
                let secs = wait.as_secs_f64().ceil().max(1.0) as u64;
                let resp = HttpResponse::build(StatusCode::TOO_MANY_REQUESTS)
                    .insert_header(("Retry-After", secs.to_string()))
                    .json(serde_json::json!({
                        "error": format!(
                            "too many requests from {src}: the limit is {} per second \
                             (api_rate_limit); retry after {secs} s",
                            l.rate.per_second
                        )
                    }));
                return Ok(req.into_response(resp));
            }
        }
    }
    next.call(req)
        .await
        .map(ServiceResponse::map_into_boxed_body)
}

#[cfg(test)]
mod tests {
    use std::net::Ipv6Addr;

    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("ip")
    }

    fn rate(per_second: f64, burst: f64) -> Rate {
        Rate { per_second, burst }
    }

    #[test]
    fn a_burst_then_the_rate() {
        let t0 = Instant::now();
        let mut l = Limiter::new(rate(10.0, 5.0), 100, t0);
        let a = ip("192.0.2.1");
        for _ in 0..5 {
            assert_eq!(l.take(a, t0), Ok(()));
        }
        let wait = l.take(a, t0).expect_err("burst used");
        assert!((wait.as_secs_f64() - 0.1).abs() < 1e-6, "{wait:?}");
        // 100 ms later one more token has come back, and only one.
        let t1 = t0 + Duration::from_millis(100);
        assert_eq!(l.take(a, t1), Ok(()));
        assert!(l.take(a, t1).is_err());
        // Another source is not affected.
        assert_eq!(l.take(ip("192.0.2.2"), t1), Ok(()));
        // Refills up to the burst, not beyond.
        let t2 = t1 + Duration::from_secs(60);
        for _ in 0..5 {
            assert_eq!(l.take(a, t2), Ok(()));
        }
        assert!(l.take(a, t2).is_err());
    }

    #[test]
    fn ipv6_sources_share_their_64() {
        let t0 = Instant::now();
        let mut l = Limiter::new(rate(1.0, 2.0), 100, t0);
        assert_eq!(l.take(ip("2001:db8:1:2::1"), t0), Ok(()));
        assert_eq!(l.take(ip("2001:db8:1:2:ffff::9"), t0), Ok(()));
        assert!(l.take(ip("2001:db8:1:2::77"), t0).is_err());
        assert_eq!(l.take(ip("2001:db8:1:3::1"), t0), Ok(()));
        // IPv4-mapped is the IPv4 address.
        let mapped = IpAddr::V6(Ipv6Addr::from([0, 0, 0, 0, 0, 0xffff, 0xc000, 0x0205]));
        assert_eq!(l.take(mapped, t0), Ok(()));
        assert_eq!(l.take(ip("192.0.2.5"), t0), Ok(()));
        assert!(l.take(ip("192.0.2.5"), t0).is_err());
    }

    #[test]
    fn a_full_table_sends_new_sources_to_one_shared_bucket() {
        let t0 = Instant::now();
        let mut l = Limiter::new(rate(1.0, 3.0), 4, t0);
        for i in 1..=4 {
            assert_eq!(l.take(ip(&format!("10.0.0.{i}")), t0), Ok(()));
        }
        assert_eq!(l.len(), 4);
        // 1,000 spoofed sources: all in the overflow bucket (3 tokens), table unchanged.
        let passed = (0..1000u32)
            .filter(|i| l.take(IpAddr::V4((0x0b00_0000 + i).into()), t0).is_ok())
            .count();
        assert_eq!(passed, 3);
        assert_eq!(l.len(), 4);
        // Once the tracked sources have refilled, the sweep makes room again.
        let later = t0 + Duration::from_secs(10);
        assert_eq!(l.take(ip("11.0.0.1"), later), Ok(()));
        assert_eq!(l.len(), 1);
    }

    #[test]
    fn a_zero_rate_is_off() {
        let t0 = Instant::now();
        let mut l = Limiter::new(rate(0.0, 0.0), 1, t0);
        for i in 0..100u32 {
            assert_eq!(l.take(IpAddr::V4(i.into()), t0), Ok(()));
        }
        assert_eq!(l.len(), 0);
    }
}
