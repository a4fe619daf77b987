//! Silences (maintenance windows): mute every notification about hosts matching a glob,
//! from a time until a time, with a reason. What ending one means is the policy's job.

use serde::{Deserialize, Serialize};

use super::rules::glob;

/// One silence.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Silence {
    pub id: u64,
    /// Host name glob (`web*`, `db1`, `*`); `hbd` matches hbd's own notifications.
    pub hosts: String,
    /// Unix ms; active from here (maintenance planned ahead) ...
    pub from_ms: u64,
    /// ... until here (exclusive).
    pub until_ms: u64,
    pub reason: String,
    /// Who set it (free text from the API client).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub by: Option<String>,
    pub created_ms: u64,
}

impl Silence {
    pub fn active(&self, now_ms: u64) -> bool {
        self.from_ms <= now_ms && now_ms < self.until_ms
    }

    pub fn covers(&self, host: &str, now_ms: u64) -> bool {
        self.active(now_ms) && glob(&self.hosts, host)
    }
}
