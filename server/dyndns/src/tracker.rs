//! When to update which record: debounce (an address must stay the latest for
//! `dns_debounce`), at most one update per record per `dns_min_interval`, and
//! exponential backoff after failures. Pure state with the clock passed in, so the
//! timing rules are tested without sleeping.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use super::wire::RType;

/// First retry after a failure; doubles up to [`BACKOFF_MAX`].
pub const BACKOFF_MIN: Duration = Duration::from_secs(1);
pub const BACKOFF_MAX: Duration = Duration::from_secs(300);

/// A record: the index of its target (dyndnshosts entry) and its type.
pub type RecordKey = (usize, RType);

/// What is known about one record.
#[derive(Debug, Clone, Default)]
pub struct Slot {
    /// The address the record holds, as far as hbd knows (None: unknown, absent, or not
    /// a single address).
    pub current: Option<IpAddr>,
    /// The latest source address and since when it has been the latest.
    seen: Option<(IpAddr, Instant)>,
    last_update: Option<Instant>,
    retry_at: Option<Instant>,
    backoff: Duration,
    /// Failed attempts since the last success.
    pub failures: u32,
    /// The last failure's code (NOTAUTH, TIMEOUT, ...), to report changes only.
    last_code: Option<String>,
}

impl Slot {
    /// The address waiting to be written, if any.
    pub fn pending(&self) -> Option<IpAddr> {
        self.seen
            .map(|(a, _)| a)
            .filter(|a| Some(*a) != self.current)
    }
}

/// The result of recording a failure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Retry {
    /// Wait this long before the next attempt.
    pub after: Duration,
    /// The first failure, or a different error than last time: worth an event.
    pub report: bool,
    pub attempt: u32,
}

pub struct Tracker {
    debounce: Duration,
    min_interval: Duration,
    slots: BTreeMap<RecordKey, Slot>,
}

impl Tracker {
    pub fn new(debounce: Duration, min_interval: Duration) -> Tracker {
        Tracker {
            debounce,
            min_interval,
            slots: BTreeMap::new(),
        }
    }

    /// New `dns_debounce` / `dns_min_interval` (a reload); they apply to what is pending.
    pub fn set_timing(&mut self, debounce: Duration, min_interval: Duration) {
        self.debounce = debounce;
        self.min_interval = min_interval;
    }

    /// The targets were renumbered (a reload): `map` gives each old target index its new
    /// one, or None for a target gone from the config (its records are forgotten here;
    /// what was last set stays in the saved state).
    pub fn remap(&mut self, map: impl Fn(usize) -> Option<usize>) {
        self.slots = std::mem::take(&mut self.slots)
            .into_iter()
            .filter_map(|((i, rtype), s)| map(i).map(|j| ((j, rtype), s)))
            .collect();
    }

    /// Forgets every backoff (a new server or key: the old failures say nothing about
    /// it), so what is pending is tried at once; the failure count stays for the log.
    pub fn retry_now(&mut self) {
        for s in self.slots.values_mut() {
            s.retry_at = None;
            s.backoff = Duration::ZERO;
            s.last_code = None;
        }
    }

    /// The record must be written again although it holds the right address (its TTL or
    /// zone changed): its address becomes pending, due without a new debounce.
    pub fn rewrite(&mut self, key: RecordKey, now: Instant) {
        let since = now.checked_sub(self.debounce).unwrap_or(now);
        let s = self.slots.entry(key).or_default();
        if let Some(a) = s.current.take() {
            if s.seen.is_none_or(|(seen, _)| seen == a) {
                s.seen = Some((a, since));
            }
        }
    }

    pub fn slot(&self, key: RecordKey) -> Option<&Slot> {
        self.slots.get(&key)
    }

    /// Sets what the record holds (from the saved state or a query at start-up).
    pub fn set_current(&mut self, key: RecordKey, addr: Option<IpAddr>) {
        self.slots.entry(key).or_default().current = addr;
    }

    /// A verified heartbeat came from `addr`.
    pub fn observe(&mut self, key: RecordKey, addr: IpAddr, now: Instant) {
        let s = self.slots.entry(key).or_default();
        if s.seen.map(|(a, _)| a) != Some(addr) {
            s.seen = Some((addr, now));
        }
        if s.current == Some(addr) {
            // Back where the record points: nothing to retry, start afresh next time.
            s.retry_at = None;
            s.backoff = Duration::ZERO;
            s.failures = 0;
            s.last_code = None;
        }
    }

    /// When `key`'s pending address may be written, if one is pending.
    fn due_at(&self, s: &Slot) -> Option<Instant> {
        let (addr, since) = s.seen?;
        if s.current == Some(addr) {
            return None;
        }
        let mut at = since + self.debounce;
        if let Some(t) = s.last_update {
            at = at.max(t + self.min_interval);
        }
        if let Some(t) = s.retry_at {
            at = at.max(t);
        }
        Some(at)
    }

    /// Records whose pending address is due now, with that address.
    pub fn due(&self, now: Instant) -> Vec<(RecordKey, IpAddr)> {
        self.slots
            .iter()
            .filter(|(_, s)| self.due_at(s).is_some_and(|t| t <= now))
            .filter_map(|(k, s)| s.seen.map(|(a, _)| (*k, a)))
            .collect()
    }

    /// The earliest moment something becomes due.
    pub fn next_due(&self) -> Option<Instant> {
        self.slots.values().filter_map(|s| self.due_at(s)).min()
    }

    /// The record now holds `addr`. Returns what it held before (as far as known) and
    /// how many attempts failed before this one.
    pub fn succeeded(
        &mut self,
        key: RecordKey,
        addr: IpAddr,
        now: Instant,
    ) -> (Option<IpAddr>, u32) {
        let s = self.slots.entry(key).or_default();
        let before = s.current.replace(addr);
        let failures = s.failures;
        s.last_update = Some(now);
        s.retry_at = None;
        s.backoff = Duration::ZERO;
        s.failures = 0;
        s.last_code = None;
        (before, failures)
    }

    /// An attempt failed with `code`; schedules the retry.
    pub fn failed(&mut self, key: RecordKey, code: &str, now: Instant) -> Retry {
        let s = self.slots.entry(key).or_default();
        s.backoff = if s.backoff.is_zero() {
            BACKOFF_MIN
        } else {
            (s.backoff * 2).min(BACKOFF_MAX)
        };
        s.retry_at = Some(now + s.backoff);
        s.failures += 1;
        let report = s.last_code.as_deref() != Some(code);
        s.last_code = Some(code.to_string());
        Retry {
            after: s.backoff,
            report,
            attempt: s.failures,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("ip")
    }

    const K: RecordKey = (0, RType::A);
    const SEC: Duration = Duration::from_secs(1);

    #[test]
    fn debounce_waits_for_a_stable_address() {
        let t0 = Instant::now();
        let mut t = Tracker::new(30 * SEC, 60 * SEC);
        t.set_current(K, Some(ip("10.0.0.1")));
        t.observe(K, ip("10.0.0.1"), t0);
        assert!(t.due(t0 + 100 * SEC).is_empty(), "no change, nothing to do");
        assert_eq!(t.next_due(), None);

        t.observe(K, ip("10.0.0.2"), t0 + 10 * SEC);
        t.observe(K, ip("10.0.0.2"), t0 + 20 * SEC);
        assert!(t.due(t0 + 39 * SEC).is_empty(), "not stable for 30 s yet");
        assert_eq!(t.next_due(), Some(t0 + 40 * SEC));
        assert_eq!(t.due(t0 + 40 * SEC), vec![(K, ip("10.0.0.2"))]);
    }

    #[test]
    fn a_bouncing_host_does_not_hammer_the_server() {
        let t0 = Instant::now();
        let mut t = Tracker::new(30 * SEC, 60 * SEC);
        t.set_current(K, Some(ip("10.0.0.1")));
        // Alternating every 10 s: never stable for 30 s, never updated.
        for i in 0..100u32 {
            let a = if i % 2 == 0 { "10.0.0.2" } else { "10.0.0.1" };
            let now = t0 + 10 * SEC * i;
            t.observe(K, ip(a), now);
            assert!(t.due(now + 9 * SEC).is_empty(), "update at beat {i}");
        }
        // Bouncing every 40 s: an update at most once per min_interval.
        let mut t = Tracker::new(30 * SEC, 120 * SEC);
        t.set_current(K, Some(ip("10.0.0.1")));
        let mut updates = Vec::new();
        for s in 0..600u64 {
            let now = t0 + SEC * (s as u32);
            if s % 40 == 0 {
                let a = if (s / 40) % 2 == 0 {
                    "10.0.0.2"
                } else {
                    "10.0.0.1"
                };
                t.observe(K, ip(a), now);
            }
            for (k, a) in t.due(now) {
                t.succeeded(k, a, now);
                updates.push(s);
            }
        }
        assert!(
            updates.windows(2).all(|w| w[1] - w[0] >= 120),
            "{updates:?}"
        );
        assert!(!updates.is_empty());
    }

    #[test]
    fn first_address_is_written_after_the_debounce() {
        let t0 = Instant::now();
        let mut t = Tracker::new(Duration::ZERO, Duration::ZERO);
        t.observe(K, ip("10.0.0.9"), t0);
        assert_eq!(t.due(t0), vec![(K, ip("10.0.0.9"))]);
        assert_eq!(t.succeeded(K, ip("10.0.0.9"), t0), (None, 0));
        assert!(t.due(t0).is_empty());
        assert_eq!(t.slot(K).and_then(Slot::pending), None);
    }

    #[test]
    fn failures_back_off_and_report_changes_only() {
        let t0 = Instant::now();
        let mut t = Tracker::new(Duration::ZERO, Duration::ZERO);
        t.set_current(K, Some(ip("10.0.0.1")));
        t.observe(K, ip("10.0.0.2"), t0);
        let mut now = t0;
        let mut waits = Vec::new();
        let mut reports = Vec::new();
        for i in 0..12 {
            assert_eq!(t.due(now).len(), 1, "attempt {i} due");
            let code = if i < 3 { "TIMEOUT" } else { "REFUSED" };
            let r = t.failed(K, code, now);
            assert!(t.due(now).is_empty(), "not again at once");
            waits.push(r.after.as_secs());
            reports.push(r.report);
            now += r.after;
        }
        assert_eq!(waits, [1, 2, 4, 8, 16, 32, 64, 128, 256, 300, 300, 300]);
        assert_eq!(reports.iter().filter(|r| **r).count(), 2, "{reports:?}");
        assert_eq!(t.slot(K).expect("slot").failures, 12);
        let (before, failed) = t.succeeded(K, ip("10.0.0.2"), now);
        assert_eq!((before, failed), (Some(ip("10.0.0.1")), 12));
        // A later failure starts from the shortest wait and is reported again.
        t.observe(K, ip("10.0.0.3"), now);
        let r = t.failed(K, "REFUSED", now);
        assert_eq!((r.after, r.report, r.attempt), (BACKOFF_MIN, true, 1));
    }

    #[test]
    fn reloads_keep_what_was_set_and_renumber_targets() {
        let t0 = Instant::now();
        let mut t = Tracker::new(Duration::ZERO, Duration::ZERO);
        let (a, b) = ((0, RType::A), (1, RType::A));
        t.observe(a, ip("10.0.0.1"), t0);
        t.succeeded(a, ip("10.0.0.1"), t0);
        t.set_current(b, Some(ip("10.0.0.2")));
        // Target 0 goes away, target 1 becomes 0: what it holds comes along.
        t.remap(|i| (i == 1).then_some(0));
        assert_eq!(t.slot(a).and_then(|s| s.current), Some(ip("10.0.0.2")));
        assert!(t.slot(b).is_none());
        t.observe(a, ip("10.0.0.2"), t0);
        assert!(t.due(t0).is_empty(), "unchanged: nothing sent again");

        // Longer timings apply to what is pending.
        t.set_timing(30 * SEC, Duration::ZERO);
        t.observe(a, ip("10.0.0.3"), t0);
        assert!(t.due(t0 + 29 * SEC).is_empty());
        assert_eq!(t.due(t0 + 30 * SEC).len(), 1);

        // A failure backs off; a new server or key is tried at once.
        let r = t.failed(a, "NOTAUTH/BADSIG", t0 + 30 * SEC);
        assert!(t.due(t0 + 30 * SEC).is_empty(), "backing off {:?}", r.after);
        t.retry_now();
        assert_eq!(t.due(t0 + 30 * SEC), vec![(a, ip("10.0.0.3"))]);
        assert_eq!(t.slot(a).expect("slot").failures, 1, "still counted");

        // A TTL change writes the same address again, without waiting for the debounce.
        let now = t0 + 40 * SEC;
        t.succeeded(a, ip("10.0.0.3"), now);
        assert!(t.due(now).is_empty());
        t.rewrite(a, now);
        assert_eq!(t.due(now), vec![(a, ip("10.0.0.3"))]);
        // Nothing known about the record: nothing to write again.
        t.rewrite(b, now);
        assert_eq!(t.due(now), vec![(a, ip("10.0.0.3"))]);
    }

    #[test]
    fn returning_to_the_current_address_cancels_the_retry() {
        let t0 = Instant::now();
        let mut t = Tracker::new(Duration::ZERO, Duration::ZERO);
        t.set_current(K, Some(ip("10.0.0.1")));
        t.observe(K, ip("10.0.0.2"), t0);
        t.failed(K, "TIMEOUT", t0);
        t.observe(K, ip("10.0.0.1"), t0 + SEC);
        assert_eq!(t.next_due(), None);
        assert_eq!(t.slot(K).expect("slot").failures, 0);
    }
}
