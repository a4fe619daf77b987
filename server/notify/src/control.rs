//! What hbd's API may do with notifications: read the status, list, add and end
//! silences, queue a test notification. The HTTP routes are hbd's (this crate knows no
//! web framework); each call here is blocking (it takes the engine's lock) and publishes
//! the system event that records it.

use hbd_core::event::{Event, EventKind};
use serde::Deserialize;

use crate::engine::lock;
use crate::notification::Kind;
use crate::policy::SilenceError;
use crate::silence::Silence;
use crate::templates::utc;
use crate::{ChannelStatus, Notify, Status};

/// The body of `POST /api/v1/silences`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewSilence {
    pub hosts: String,
    #[serde(default)]
    pub duration: Option<String>,
    #[serde(default)]
    pub until_ms: Option<u64>,
    #[serde(default)]
    pub from_ms: Option<u64>,
    pub reason: String,
    #[serde(default)]
    pub by: Option<String>,
}

impl NewSilence {
    /// When the silence ends: `until_ms`, or `duration` after its start (`from_ms`, or
    /// now if that is absent or earlier). The rest is checked by `Policy::add_silence`.
    pub fn end_ms(&self, now_ms: u64) -> Result<u64, String> {
        match (&self.duration, self.until_ms) {
            (Some(d), None) => {
                let d = hb_config::parse_duration(d).map_err(|e| format!("duration: {e}"))?;
                // Checked: a `from_ms` near the end of time overflowed (found by fuzzing).
                let start = self.from_ms.unwrap_or(now_ms).max(now_ms);
                start
                    .checked_add(d.as_millis() as u64)
                    .ok_or_else(|| format!("from_ms: {start} is too far in the future"))
            }
            (None, Some(u)) => Ok(u),
            _ => Err("give either duration (e.g. \"2h\") or until_ms".into()),
        }
    }
}

/// The optional body of `POST /api/v1/notify/test`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TestRequest {
    #[serde(default)]
    pub channel: Option<String>,
}

/// Why a silence was not added.
#[derive(Debug, thiserror::Error)]
pub enum AddSilenceError {
    /// The body's times (`duration`, `until_ms`, `from_ms`).
    #[error("{0}")]
    Times(String),
    /// Refused by the policy (bad glob, end in the past, too many silences).
    #[error(transparent)]
    Policy(#[from] SilenceError),
}

impl Notify {
    /// The status (`/api/v1/notify`; `Sink::status` is the same as JSON).
    pub fn report(&self) -> Status {
        self.inner.status()
    }

    /// The configured channels' queues, last success and last error.
    pub fn channel_status(&self) -> Vec<ChannelStatus> {
        self.inner.channel_status()
    }

    /// Active and planned silences.
    pub fn silences(&self, now_ms: u64) -> Vec<Silence> {
        lock(&self.inner.engine).policy.silences(now_ms)
    }

    /// Adds a silence, saves the policy state and publishes a `system` event.
    pub fn add_silence(&self, b: NewSilence, now_ms: u64) -> Result<Silence, AddSilenceError> {
        let until = b.end_ms(now_ms).map_err(AddSilenceError::Times)?;
        let silence = {
            let mut e = lock(&self.inner.engine);
            let s = e
                .policy
                .add_silence(&b.hosts, b.from_ms, until, &b.reason, b.by, now_ms)?;
            e.save_logged();
            s
        };
        tracing::info!(id = silence.id, hosts = %silence.hosts, until = %utc(silence.until_ms), "silence added: {}", silence.reason);
        self.inner.emitter.emit(Event {
            id: 0,
            ts_ms: now_ms,
            host: "hbd".into(),
            kind: EventKind::System,
            key: Some(format!("silence.{}", silence.id)),
            from: None,
            to: Some("SILENCED".into()),
            message: format!(
                "silence {} for {} from {} until {}{}: {}",
                silence.id,
                silence.hosts,
                utc(silence.from_ms),
                utc(silence.until_ms),
                silence
                    .by
                    .as_deref()
                    .map(|b| format!(" by {b}"))
                    .unwrap_or_default(),
                silence.reason
            ),
        });
        Ok(silence)
    }

    /// Ends silence `id` now (what it held back is delivered); `None` if there is none.
    pub fn end_silence(&self, id: u64, now_ms: u64) -> Option<Silence> {
        let removed = {
            let mut e = lock(&self.inner.engine);
            let r = e.policy.remove_silence(id, now_ms);
            if let Some((_, out)) = &r {
                e.deliver(out.clone(), now_ms);
                e.save_logged();
            }
            r.map(|(s, _)| s)
        };
        let s = removed?;
        self.inner.emitter.emit(Event {
            id: 0,
            ts_ms: now_ms,
            host: "hbd".into(),
            kind: EventKind::System,
            key: Some(format!("silence.{}", s.id)),
            from: Some("SILENCED".into()),
            to: Some("ENDED".into()),
            message: format!("silence {} for {} ended through the API", s.id, s.hosts),
        });
        Some(s)
    }

    /// Queues a test notification to `channel`, or to every channel; the names queued.
    /// In cluster mode the message names this node, and `asked_on` the node whose API was
    /// asked (every node sends one: each node's channels are tested, as a takeover would
    /// use them).
    pub fn test(
        &self,
        channel: Option<String>,
        asked_on: Option<&str>,
        now_ms: u64,
    ) -> Result<Vec<String>, String> {
        let mut e = lock(&self.inner.engine);
        if let Some(c) = &channel {
            if !e.channel_names().contains(c) {
                return Err(format!(
                    "channel: {c:?} is not configured; configured: {}",
                    e.channel_names().join(", ")
                ));
            }
        }
        let message = match e.gate.node() {
            Some(node) => format!(
                "If you read this, the notifications of hbd node {node} reach you (asked on node {}).",
                asked_on.unwrap_or(&node)
            ),
            None => "If you read this, hbd's notifications reach you.".into(),
        };
        let mut n = e.policy.make(Kind::Test, "hbd", "OK", message, now_ms);
        n.key = channel.clone();
        e.deliver(vec![n], now_ms);
        Ok(match channel {
            Some(c) => vec![c],
            None => e.channel_names().to_vec(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = 1_700_000_000_000;

    fn body(json: &[u8]) -> NewSilence {
        serde_json::from_slice(json).expect("a valid body")
    }

    #[test]
    fn end_is_until_or_duration_after_the_start() {
        let b = body(br#"{"hosts":"web*","duration":"2h","reason":"r"}"#);
        assert_eq!(b.end_ms(NOW), Ok(NOW + 7_200_000));
        let b = body(br#"{"hosts":"web*","duration":"1s","from_ms":1800000000000,"reason":"r"}"#);
        assert_eq!(b.end_ms(NOW), Ok(1_800_000_001_000));
        let b = body(br#"{"hosts":"a","until_ms":5,"reason":"r"}"#);
        assert_eq!(b.end_ms(NOW), Ok(5));
        for both_or_none in [
            &br#"{"hosts":"a","until_ms":5,"duration":"1h","reason":"r"}"#[..],
            br#"{"hosts":"a","reason":"r"}"#,
        ] {
            assert!(body(both_or_none).end_ms(NOW).is_err());
        }
    }

    /// A start near the end of time overflowed when the duration was added: a panic in
    /// debug builds; in release an end in 1970, refused as "until: must be in the future".
    /// The body as the client sent it.
    #[test]
    fn a_start_at_the_end_of_time_is_refused() {
        let b =
            body(br#"{"hosts":"*","from_ms":18446744073709551000,"duration":"1h","reason":"x"}"#);
        let e = b.end_ms(NOW).expect_err("refused");
        assert!(e.starts_with("from_ms:"), "{e}");
    }
}
