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
#[cfg(windows)]
pub mod job;
pub mod loader;
pub mod macho;
pub mod pe;
pub mod plugins;
pub mod quarantine;
pub mod resident;
pub mod runner;
pub mod sample;
pub mod send;
pub mod table;
pub mod thresholds;
#[cfg(unix)]
pub mod trust;
#[cfg(not(any(unix, windows)))]
#[path = "trust_other.rs"]
pub mod trust;
#[cfg(windows)]
#[path = "trust_windows.rs"]
pub mod trust;
#[cfg(any(windows, test))]
pub mod trust_acl;
