//! End-to-end tests of hbd's dynamic DNS against a real BIND started on a loopback port:
//! heartbeats from 127.0.0.2, 127.0.0.3 and ::1 move A/AAAA records (checked with real
//! DNS queries), a wrong TSIG key and a zone refusing updates fail clearly and change
//! nothing, and an update made while the name server is down lands when it returns.

mod bind;
mod failures;
mod support;
mod updates;
// Shared with the hbd test binary; this binary uses only part of it.
#[allow(dead_code)]
#[path = "../hbd/util.rs"]
mod util;
