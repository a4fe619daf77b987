//! The leader lease and its fencing, as pure state over an explicit clock (milliseconds
//! since the cluster started): the runtime asks it when to renew and records what the
//! engine answered; [`Fence::is_leader`] is what every decision checks.
//!
//! The lease is one key in a KV bucket whose entries expire `LEASE_TTL` after they were
//! written. A renewal sent at `t` can only have been written after `t`, so the key lives
//! at least until `t + LEASE_TTL`: a node acts as leader only until `t + FENCE` of its
//! last acknowledged renewal, `FENCE < LEASE_TTL`, and so stops before any other node
//! can create the key, even when it cannot reach the engine to hear so.

use std::sync::atomic::{AtomicU64, Ordering};

/// How long the lease lives after its last write (the bucket's max age).
pub const LEASE_TTL_MS: u64 = 3_000;
/// How long after sending an acknowledged renewal a leader may still act.
pub const FENCE_MS: u64 = 2_300;
/// How often the leader renews, and followers try to take a free lease.
pub const RENEW_EVERY_MS: u64 = 400;
/// How long one engine request may take before it counts as failed.
pub const REQUEST_TIMEOUT_MS: u64 = 1_000;

/// Where this node stands, shared between the runtime and the callers' threads.
#[derive(Debug, Default)]
pub struct Fence {
    /// Leader until this time (ms since start, exclusive); 0: not leader.
    until: AtomicU64,
}

impl Fence {
    /// Whether this node may act as leader at `now`.
    pub fn is_leader(&self, now: u64) -> bool {
        now < self.until.load(Ordering::Acquire)
    }

    /// A renewal (or creation) sent at `sent` was acknowledged.
    pub fn renewed(&self, sent: u64) {
        self.until.store(sent + FENCE_MS, Ordering::Release);
    }

    /// Leadership ends now (lost to another node, or handed over at shutdown).
    pub fn step_down(&self) {
        self.until.store(0, Ordering::Release);
    }

    /// Until when this node may act (0: not leader).
    pub fn until(&self) -> u64 {
        self.until.load(Ordering::Acquire)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_leader_that_cannot_renew_stops_before_the_lease_can_expire() {
        let f = Fence::default();
        assert!(!f.is_leader(0));
        f.renewed(1_000);
        assert!(f.is_leader(1_000));
        assert!(f.is_leader(1_000 + FENCE_MS - 1));
        // No renewal acknowledged: fenced at sent + FENCE, before sent + TTL, the
        // earliest moment the key can expire on the servers.
        assert!(!f.is_leader(1_000 + FENCE_MS));
        const { assert!(FENCE_MS + 2 * RENEW_EVERY_MS <= LEASE_TTL_MS + RENEW_EVERY_MS) };
        const { assert!(FENCE_MS < LEASE_TTL_MS) };
        f.renewed(2_000);
        assert!(f.is_leader(3_000));
        f.step_down();
        assert!(!f.is_leader(2_001));
    }
}
