//! End-to-end tests of hbd's notifications: hbd started in-process, fed crafted
//! heartbeats over UDP, sending to a real SMTP server on loopback (aiosmtpd, with
//! STARTTLS and implicit TLS on a test certificate) and to local stand-ins for Pushover
//! and Mattermost that check every request against the published APIs and fail on
//! demand. The policy's time logic (flapping, storms, reminders, silences) is tested with
//! a controlled clock in `server/src/notify/policy/tests.rs`; here it runs for real.

mod alerts;
mod email;
mod http_channels;
mod noise;
mod outage;
mod smtp;
mod stub;
mod support;
// Shared with the hbd test binary; this binary uses only part of it.
#[allow(dead_code)]
#[path = "../hbd/util.rs"]
mod util;
