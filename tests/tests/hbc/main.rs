//! End-to-end tests of the real `hbc` binary with the real bundled plugins, deliberately
//! faulty plugins and broken files, talking UDP on loopback.
//!
//! The binaries and plugin libraries come from `cargo build --workspace` (the README's
//! test command runs it first); `util::require_built` says so if they are missing.

mod chatty;
mod faults;
mod hotload;
mod nagios;
mod protocol;
mod quarantine;
mod readings;
mod reload;
mod strict;
mod template;
mod util;
