//! The liveness thread: sleeps until the earliest deadline (at most 250 ms, to notice new
//! earlier ones), then lets the registry turn overdue hosts DOWN.
//!
//! Deadlines are wall-clock times (they are shown, journaled and kept in the snapshot),
//! so the thread also watches for steps of the system clock: each pass compares how far
//! the wall clock moved with how far the monotonic clock did, and a difference of
//! [`STEP_MS`] or more moves every deadline by it (found by the clock-jump fault
//! injection, docs/faults.md: a step forward had turned every host DOWN at once).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::state::{now_ms, Shared};

const MAX_SLEEP_MS: u64 = 250;

/// Smallest disagreement between the wall and the monotonic clock taken for a step
/// (NTP slews by at most 0.5 ms per second; a busy machine delays both clocks alike).
pub const STEP_MS: i64 = 1000;

/// Detects steps of the wall clock against the monotonic clock.
#[derive(Debug, Clone, Copy)]
pub struct StepWatch {
    mono: Instant,
    wall_ms: u64,
}

impl StepWatch {
    pub fn new(mono: Instant, wall_ms: u64) -> StepWatch {
        StepWatch { mono, wall_ms }
    }

    /// The step since the last call, if the clocks disagree by [`STEP_MS`] or more.
    pub fn step(&mut self, mono: Instant, wall_ms: u64) -> Option<i64> {
        let elapsed = mono.saturating_duration_since(self.mono).as_millis() as i64;
        let moved = wall_ms as i64 - self.wall_ms as i64;
        *self = StepWatch { mono, wall_ms };
        let step = moved - elapsed;
        (step.abs() >= STEP_MS).then_some(step)
    }
}

pub fn spawn(state: Shared, stop: Arc<AtomicBool>) -> std::io::Result<JoinHandle<()>> {
    std::thread::Builder::new()
        .name("liveness".into())
        .spawn(move || {
            let mut events = Vec::new();
            let mut watch = StepWatch::new(Instant::now(), now_ms());
            while !stop.load(Ordering::Relaxed) {
                let now = now_ms();
                if let Some(step) = watch.step(Instant::now(), now) {
                    state.registry().shift_deadlines(step);
                    tracing::warn!(
                        step_ms = step,
                        "the system clock was stepped by {:+.1} s; liveness deadlines moved with it",
                        step as f64 / 1000.0
                    );
                }
                let next = state.registry().next_deadline();
                let wait = next.map_or(MAX_SLEEP_MS, |d| d.saturating_sub(now).min(MAX_SLEEP_MS));
                if wait > 0 {
                    std::thread::sleep(Duration::from_millis(wait));
                    continue;
                }
                state.registry().tick(now_ms(), &mut events);
                if !events.is_empty() {
                    for e in &events {
                        state.send_live("host", &e.host);
                    }
                    state.publish(&mut events);
                }
            }
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_are_told_from_ordinary_and_late_passes() {
        let t0 = Instant::now();
        const T: u64 = 1_700_000_000_000;
        let mut w = StepWatch::new(t0, T);
        // An ordinary pass, and one that ran 5 s late (both clocks moved alike).
        assert_eq!(w.step(t0 + Duration::from_millis(250), T + 250), None);
        assert_eq!(w.step(t0 + Duration::from_millis(5250), T + 5_250), None);
        // Slewing and jitter under a second are not steps.
        assert_eq!(w.step(t0 + Duration::from_millis(5500), T + 6_400), None);
        // A step forward of 10 minutes and back by a day.
        assert_eq!(
            w.step(t0 + Duration::from_millis(5750), T + 6_650 + 600_000),
            Some(600_000)
        );
        assert_eq!(
            w.step(t0 + Duration::from_millis(6000), T + 606_900 - 86_400_000),
            Some(-86_400_000)
        );
    }
}
