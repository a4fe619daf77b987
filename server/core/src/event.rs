//! Events: what changed on which host, when. Journaled, pushed to WebSocket clients and
//! (later) turned into notifications.

use serde::{Deserialize, Serialize};

/// What kind of change an event records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    /// A host was seen for the first time.
    HostNew,
    /// A host that was DOWN (or never seen) sent a heartbeat.
    HostUp,
    /// A host passed its liveness deadline.
    HostDown,
    /// A host's overall level changed (OK, WARNING, CRITICAL, UNKNOWN).
    HostLevel,
    /// One reading's level changed (`key` names it).
    CheckLevel,
    /// A host was removed through the API.
    HostForgotten,
    /// A problem of hbd itself (journal, DNS, notifications).
    System,
    /// A host's DNS record was pointed at its new address (`from`/`to`: old/new address).
    DnsUpdate,
    /// Updating a host's DNS record failed (the message has the server's answer).
    DnsUpdateFailed,
}

impl EventKind {
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::HostNew => "host_new",
            EventKind::HostUp => "host_up",
            EventKind::HostDown => "host_down",
            EventKind::HostLevel => "host_level",
            EventKind::CheckLevel => "check_level",
            EventKind::HostForgotten => "host_forgotten",
            EventKind::System => "system",
            EventKind::DnsUpdate => "dns_update",
            EventKind::DnsUpdateFailed => "dns_update_failed",
        }
    }

    pub fn parse(s: &str) -> Option<EventKind> {
        [
            EventKind::HostNew,
            EventKind::HostUp,
            EventKind::HostDown,
            EventKind::HostLevel,
            EventKind::CheckLevel,
            EventKind::HostForgotten,
            EventKind::System,
            EventKind::DnsUpdate,
            EventKind::DnsUpdateFailed,
        ]
        .into_iter()
        .find(|k| k.as_str() == s)
    }
}

/// One event. `id` is assigned when it is published and only grows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    pub id: u64,
    /// Unix milliseconds.
    pub ts_ms: u64,
    pub host: String,
    pub kind: EventKind,
    /// Reading key, for `check_level`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// Previous state or level (`UP`, `DOWN`, `OK`, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    /// New state or level.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<String>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
}
