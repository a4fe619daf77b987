//! Retry timing: exponential backoff from `notify_retry_min` doubling up to
//! `notify_retry_max`, with "equal jitter" (half fixed, half random) so channels that
//! failed together do not retry in lockstep. Pure, with the randomness passed in.

use std::time::Duration;

/// The wait before retry number `attempt` (1 for the first retry); `r` is uniform in
/// [0, 1).
pub fn backoff(attempt: u32, min: Duration, max: Duration, r: f64) -> Duration {
    let exp = attempt.saturating_sub(1).min(30);
    let full = min.saturating_mul(1u32 << exp).min(max);
    let half = full / 2;
    half + half.mul_f64(r.clamp(0.0, 1.0))
}

/// A small xorshift generator: jitter needs spread, not cryptographic quality.
#[derive(Debug, Clone)]
pub struct Jitter(u64);

impl Jitter {
    pub fn new(seed: u64) -> Jitter {
        Jitter(seed | 1)
    }

    /// Seeded from the clock and `salt` (e.g. the channel name).
    pub fn from_time(salt: &str) -> Jitter {
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0);
        Jitter::new(t ^ u64::from(crc32fast::hash(salt.as_bytes())) << 32)
    }

    /// Uniform in [0, 1).
    pub fn sample(&mut self) -> f64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        (x >> 11) as f64 / (1u64 << 53) as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_up_to_the_cap_with_jitter_in_the_upper_half() {
        let (min, max) = (Duration::from_secs(2), Duration::from_secs(60));
        assert_eq!(backoff(1, min, max, 0.0), Duration::from_secs(1));
        assert_eq!(backoff(1, min, max, 1.0), Duration::from_secs(2));
        assert_eq!(backoff(3, min, max, 1.0), Duration::from_secs(8));
        assert_eq!(backoff(10, min, max, 1.0), max, "capped");
        assert_eq!(backoff(u32::MAX, min, max, 0.5), Duration::from_secs(45));
        let mut j = Jitter::new(42);
        let v: Vec<f64> = (0..1000).map(|_| j.sample()).collect();
        assert!(v.iter().all(|x| (0.0..1.0).contains(x)));
        let mean = v.iter().sum::<f64>() / v.len() as f64;
        assert!((0.4..0.6).contains(&mean), "{mean}");
    }
}
