//! hbd's clock: Unix milliseconds, watched for steps.
//!
//! Liveness deadlines are wall-clock times (they are shown, journaled and kept in the
//! snapshot), so a step of the system clock (an operator's `date -s`, NTP correcting a
//! large offset) would move "now" past every deadline at once (a false DOWN for every
//! host) or back before them (every DOWN late by the step). Every reading of the clock
//! therefore compares the wall clock's offset from the monotonic clock with the last one;
//! a change of [`STEP_MS`] or more is a step, added to a pending total that the registry
//! applies to every deadline the next time it is locked (`State::registry`), before any
//! deadline is computed or checked with the new time. Found by the clock-jump fault
//! injection (docs/faults.md).

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::OnceLock;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

/// Smallest change of the wall clock against the monotonic clock taken for a step (NTP
/// slews by at most 0.5 ms per second; load delays both clocks alike).
pub const STEP_MS: i64 = 1000;

const UNSET: i64 = i64::MIN;

static START: OnceLock<Instant> = OnceLock::new();
/// Wall-clock ms minus monotonic ms at the last reading.
static OFFSET: AtomicI64 = AtomicI64::new(UNSET);
/// Steps seen and not yet applied to the registry.
static PENDING: AtomicI64 = AtomicI64::new(0);

/// Unix milliseconds now (0 before 1970).
pub fn now_ms() -> u64 {
    let mono = START.get_or_init(Instant::now).elapsed().as_millis() as i64;
    let wall = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0);
    observe(wall - mono);
    wall.max(0) as u64
}

/// The steps of the wall clock since the last call, if any (to apply to deadlines).
pub fn take_step() -> Option<i64> {
    if PENDING.load(Ordering::Relaxed) == 0 {
        return None;
    }
    Some(PENDING.swap(0, Ordering::Relaxed)).filter(|s| *s != 0)
}

fn observe(offset: i64) {
    let old = OFFSET.load(Ordering::Relaxed);
    if old == offset {
        return;
    }
    // One thread records each change; another that saw the same change loses the race.
    if OFFSET
        .compare_exchange(old, offset, Ordering::Relaxed, Ordering::Relaxed)
        .is_err()
    {
        return;
    }
    if let Some(step) = step_between(old, offset) {
        PENDING.fetch_add(step, Ordering::Relaxed);
        tracing::warn!(
            step_ms = step,
            "the system clock was stepped by {:+.1} s; liveness deadlines move with it",
            step as f64 / 1000.0
        );
    }
}

/// The step between two offsets, if it is one.
fn step_between(old: i64, new: i64) -> Option<i64> {
    if old == UNSET {
        return None;
    }
    let step = new.saturating_sub(old);
    (step.abs() >= STEP_MS).then_some(step)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_are_told_from_slewing_and_jitter() {
        const T: i64 = 1_700_000_000_000;
        assert_eq!(step_between(UNSET, T), None, "the first reading is no step");
        assert_eq!(step_between(T, T + 1), None, "slewing");
        assert_eq!(step_between(T, T - 999), None, "jitter under a second");
        assert_eq!(step_between(T, T + 600_000), Some(600_000));
        assert_eq!(step_between(T, T - 86_400_000), Some(-86_400_000));
    }

    #[test]
    fn the_clock_reads_unix_time_and_sees_no_step_when_there_is_none() {
        let a = now_ms();
        let b = now_ms();
        assert!(b >= a && a > 1_600_000_000_000);
        assert_eq!(take_step(), None);
    }
}
