//! hbd, the heartbeat server: receives heartbeats from hbc over UDP (and HTTP), keeps
//! the host registry, turns silent hosts DOWN, journals every event, and serves the REST
//! API and WebSocket push.
//!
//! It knows hbc only through the wire protocol (`hb_proto`): no plugin ABI, no system
//! probing (checked in CI with `cargo tree`).

pub mod api;
pub mod cli;
pub mod clock;
pub mod config;
pub mod dashboard;
pub mod dyndns;
pub mod event;
pub mod journal;
pub mod liveness;
pub mod logfile;
pub mod metrics;
pub mod notify;
pub mod ratelimit;
pub mod registry;
pub mod reload;
pub mod security;
pub mod server;
pub mod sink;
pub mod sinks;
pub mod snapshot;
pub mod state;
pub mod udp;
pub mod ws;
