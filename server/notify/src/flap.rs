//! Flap detection in the spirit of Nagios: the state changes of the last
//! `notify_flap_window`, newer ones weighted more (0.8 for the oldest to 1.2 for the
//! newest), as a percentage of 20 possible changes (Nagios looks at the last 21 checks,
//! so 20 transitions; here the window stands for those 20 check periods). Flapping
//! starts at `notify_flap_high` percent and stops below `notify_flap_low`, the
//! hysteresis keeping it from toggling itself. Pure: every method takes `now_ms`.

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};

/// More changes than this in one window are flapping whatever the thresholds.
const MAX_CHANGES: usize = 40;
const TRANSITIONS: f64 = 20.0;

/// What an evaluation found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlapChange {
    Started,
    Stopped,
}

/// One host's or check's recent state changes.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Flap {
    #[serde(default, skip_serializing_if = "VecDeque::is_empty")]
    changes: VecDeque<u64>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub flapping: bool,
}

impl Flap {
    pub fn is_idle(&self) -> bool {
        self.changes.is_empty() && !self.flapping
    }

    /// Weighted percentage of state changes within `window_ms` before `now_ms`.
    pub fn percent(&self, now_ms: u64, window_ms: u64) -> f64 {
        if window_ms == 0 {
            return 0.0;
        }
        let sum: f64 = self
            .changes
            .iter()
            .filter(|&&t| now_ms.saturating_sub(t) < window_ms)
            .map(|&t| {
                let age = now_ms.saturating_sub(t) as f64 / window_ms as f64;
                0.8 + 0.4 * (1.0 - age)
            })
            .sum();
        (sum / TRANSITIONS * 100.0).min(100.0)
    }

    /// Records a state change at `now_ms`, then evaluates.
    pub fn record(
        &mut self,
        now_ms: u64,
        window_ms: u64,
        high: f64,
        low: f64,
    ) -> Option<FlapChange> {
        if window_ms == 0 {
            return None;
        }
        self.changes.push_back(now_ms);
        while self.changes.len() > MAX_CHANGES {
            self.changes.pop_front();
        }
        self.evaluate(now_ms, window_ms, high, low)
    }

    /// Re-evaluates (the percentage decays as changes age out of the window).
    pub fn evaluate(
        &mut self,
        now_ms: u64,
        window_ms: u64,
        high: f64,
        low: f64,
    ) -> Option<FlapChange> {
        while self
            .changes
            .front()
            .is_some_and(|&t| now_ms.saturating_sub(t) >= window_ms)
        {
            self.changes.pop_front();
        }
        let pct = self.percent(now_ms, window_ms);
        if !self.flapping && pct >= high && high > 0.0 {
            self.flapping = true;
            Some(FlapChange::Started)
        } else if self.flapping && pct < low {
            self.flapping = false;
            Some(FlapChange::Stopped)
        } else {
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const W: u64 = 600_000;

    #[test]
    fn percent_weights_newer_changes_more() {
        let mut f = Flap::default();
        f.record(0, W, 30.0, 15.0);
        assert!((f.percent(0, W) - 6.0).abs() < 1e-9, "newest weighs 1.2/20");
        assert!(
            (f.percent(W / 2, W) - 5.0).abs() < 1e-9,
            "half-way weighs 1.0/20"
        );
        assert_eq!(f.percent(W, W), 0.0, "out of the window");
    }

    #[test]
    fn starts_above_high_and_stops_below_low() {
        let mut f = Flap::default();
        let mut t = 0;
        let mut started = None;
        for i in 0..10 {
            t = i * 10_000;
            if f.record(t, W, 30.0, 15.0) == Some(FlapChange::Started) {
                started = Some(i);
            }
        }
        // Each recent change weighs just under 6 %: the sixth crosses 30 %.
        assert_eq!(started, Some(5));
        assert!(f.flapping);
        // No more changes: it decays below 15 % within the window, not before.
        let mut stopped_at = None;
        let mut now = t;
        while now < t + W {
            now += 5_000;
            if f.evaluate(now, W, 30.0, 15.0) == Some(FlapChange::Stopped) {
                stopped_at = Some(now);
                break;
            }
        }
        let stopped_at = stopped_at.expect("stops flapping once changes age out");
        assert!(
            stopped_at > t + 60_000,
            "hysteresis: not at once ({stopped_at})"
        );
        assert!(!f.flapping);
    }

    #[test]
    fn window_zero_disables() {
        let mut f = Flap::default();
        for t in 0..100 {
            assert_eq!(f.record(t, 0, 30.0, 15.0), None);
        }
        assert!(!f.flapping);
    }
}
