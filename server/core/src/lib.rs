//! hbd's core: what every part of the server shares and nothing else. Events
//! ([`event`]), the clock that notices steps of the system clock ([`clock`]), the host
//! registry with its liveness deadlines ([`registry`]), the reasons a datagram is
//! dropped ([`drop`]), the [`sink::Sink`] extension point and the read-only
//! [`fleet::FleetView`] subsystems get instead of hbd's state.
//!
//! **Invariants:** no I/O beyond reading the clock; no web framework, no mail or DNS code
//! (checked in CI with `cargo tree`); the registry is pure state with an explicit clock.

pub mod clock;
pub mod drop;
pub mod event;
pub mod fleet;
pub mod format;
pub mod registry;
pub mod sink;
pub mod text;

/// Unix milliseconds now, watched for steps of the system clock ([`clock`]).
pub fn now_ms() -> u64 {
    clock::now_ms()
}
