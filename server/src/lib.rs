//! hbd, the heartbeat server: receives heartbeats from hbc over UDP (and HTTP), keeps
//! the host registry, turns silent hosts DOWN, journals every event, and serves the REST
//! API and WebSocket push.
//!
//! It knows hbc only through the wire protocol (`hb_proto`): no plugin ABI, no system
//! probing (checked in CI with `cargo tree`).
//!
//! This crate is the glue: config assembly, listeners, the API, WebSocket, dashboard,
//! metrics, security and `start`. The subsystems are crates of their own, re-exported
//! here under their old module names: `hbd_core` (events, clock, registry, sinks),
//! `hbd_journal`, `hbd_notify`, `hbd_dyndns`.

pub use hbd_core::{clock, event, registry, sink};
pub use hbd_dyndns as dyndns;
pub use hbd_journal as journal;
pub use hbd_notify as notify;

pub mod api;
pub mod cli;
pub mod cluster;
pub mod config;
pub mod dashboard;
pub mod datadir;
pub mod journal_queries;
pub mod liveness;
pub mod logfile;
pub mod metrics;
pub mod notify_api;
pub mod query;
pub mod ratelimit;
pub mod reload;
pub mod security;
pub mod server;
pub mod shutdown;
pub mod sinks;
pub mod snapshot;
pub mod state;
pub mod udp;
pub mod ws;
