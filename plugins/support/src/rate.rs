//! Rates of cumulative counters (the kernel's `/proc` counters only ever grow) and the
//! wait between the two samples of a rate.

use std::time::{Duration, Instant};

/// The increase per second of a cumulative counter. A counter that went down (it wrapped,
/// or the device or interface was re-created) gives zero for this cycle, as does no time
/// passing.
pub fn per_second(previous: u64, current: u64, seconds: f64) -> f64 {
    if current < previous || seconds <= 0.0 {
        0.0
    } else {
        (current - previous) as f64 / seconds
    }
}

/// Sleeps until `interval` has passed since `since`; returns at once if it has.
///
/// Plugins call it before their second sample, so that a rate is never computed over
/// too short a time for the counters to mean anything.
pub fn wait_until_elapsed(since: Instant, interval: Duration) {
    let elapsed = since.elapsed();
    if elapsed < interval {
        std::thread::sleep(interval - elapsed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_time_is_zero_not_infinite() {
        assert_eq!(per_second(1, 5, 0.0), 0.0);
        assert_eq!(per_second(0, 5, 0.5), 10.0);
    }

    #[test]
    fn a_counter_going_down_is_zero() {
        assert_eq!(per_second(u64::MAX, 0, 1.0), 0.0);
        assert_eq!(per_second(u64::from(u32::MAX) - 10, 5, 1.0), 0.0);
        assert_eq!(per_second(7, 7, 1.0), 0.0);
    }

    #[test]
    fn waits_only_for_what_is_left() {
        let interval = Duration::from_millis(50);
        let started = Instant::now();
        wait_until_elapsed(started, interval);
        assert!(started.elapsed() >= interval);

        // A second ago, with half a second to wait: nothing is left.
        let before = Instant::now();
        wait_until_elapsed(before - Duration::from_secs(1), Duration::from_millis(500));
        assert!(before.elapsed() < Duration::from_millis(400));
    }
}
