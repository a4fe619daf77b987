//! End-to-end tests of long-term history (docs/history.md): the real hbc → hbd →
//! remote_write → a real time-series database from Debian's packages (Prometheus with
//! its remote-write receiver, VictoriaMetrics), started here on loopback ports; the
//! values read back through the database's own HTTP API; the database away and back;
//! the host page's chart in headless Chromium read from the database; Prometheus behind
//! TLS and Basic authentication, written to and read from with hbd's credentials and CA.
//!
//! Needs the Debian packages `prometheus`, `victoria-metrics`, `chromium` and
//! `chromium-driver` (`scripts/deps` installs them); without them these tests fail with
//! an install hint.

#[path = "../dashboard/browser.rs"]
#[allow(dead_code)]
mod browser;
mod export;
mod outage;
mod secured;
// Test certificates and Basic headers, shared with the security tests.
#[path = "../security/support.rs"]
#[allow(dead_code)]
mod security;
mod tsdb;
// Shared with the hbd tests; not every helper is used here.
#[path = "../hbd/util.rs"]
#[allow(dead_code)]
mod util;
