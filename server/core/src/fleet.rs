//! What subsystems may ask of the fleet: a narrow, read-only view instead of hbd's shared
//! state and its locks. hbd implements it over the registry; an implementation answers
//! from one host's data, so its cost does not grow with the fleet.

use crate::registry::{LevelName, Val};

/// One reading of a host that is not OK, as a notification lists it.
#[derive(Debug, Clone, PartialEq)]
pub struct CheckView {
    pub key: String,
    pub level: LevelName,
    pub value: Val,
    pub unit: String,
    pub threshold: String,
    pub message: String,
}

/// The read-only questions notifications (and other subsystems) may ask.
pub trait FleetView: Send + Sync {
    /// The readings of `host` whose level is not OK, worst first then by key, at most
    /// `max`; `None` when the host is not known.
    fn failing_checks(&self, host: &str, max: usize) -> Option<Vec<CheckView>>;
}

/// Sorts checks worst first, then by key, and keeps `max`.
pub fn worst_first(checks: &mut Vec<CheckView>, max: usize) {
    checks.sort_by(|a, b| {
        b.level
            .severity()
            .cmp(&a.level.severity())
            .then_with(|| a.key.cmp(&b.key))
    });
    checks.truncate(max);
}
