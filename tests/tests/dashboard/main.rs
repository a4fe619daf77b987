//! End-to-end tests of hbd's web dashboard: the real server in-process on loopback, fed
//! by the real `hbc` (or crafted datagrams), looked at by headless Chromium through
//! chromedriver. Screenshots go to `target/test-artifacts/`.
//!
//! Needs the Debian packages `chromium` and `chromium-driver` (`scripts/deps` installs
//! them); without them these tests fail with an install hint.

mod browser;
mod http;
mod live;
mod scale;
mod silences;
// Shared with the hbd tests; not every helper is used here.
#[path = "../hbd/util.rs"]
#[allow(dead_code)]
mod util;
mod xss;
