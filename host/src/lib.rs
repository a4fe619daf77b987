//! hbc, the plugin host: loads monitor plugins, collects their readings on a schedule,
//! applies thresholds and sends heartbeats to hbd servers.
//!
//! Only this crate opens shared libraries (`loader`). It knows the wire protocol through
//! `hb_proto` and plugins through `hbc_plugin_api`; it knows nothing about the server.

pub mod agent;
pub mod cli;
pub mod config;
pub mod elf;
pub mod fit;
pub mod isolate;
pub mod loader;
pub mod plugins;
pub mod quarantine;
pub mod runner;
pub mod sample;
pub mod send;
pub mod table;
pub mod thresholds;
pub mod trust;
