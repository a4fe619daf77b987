//! End-to-end tests of the listeners' security: hbd started in-process on port 0 with
//! TLS on a test CA's certificate (HTTPS with ureq, WSS with tungstenite over rustls),
//! Basic authentication for reading, the failed-login limit, and the refusal of
//! cross-site requests and WebSocket handshakes; the real `hbd` binary for the start-up
//! errors of an unusable certificate or key.

mod auth;
mod cross_site;
mod support;
mod tls;
// Shared with the hbd test binary; this binary uses only part of it.
#[allow(dead_code)]
#[path = "../hbd/util.rs"]
mod util;
