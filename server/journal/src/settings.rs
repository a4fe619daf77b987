//! The journal's keys in hbd's config file (`journal_*`), their defaults and validation.

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use crate::{FsyncPolicy, JournalConfig, DEFAULT_KEEP, DEFAULT_MAX_BYTES};

/// Default of `journal_max_queries`: two per core of a small server; more only queue for
/// the same disk and CPU.
pub const DEFAULT_MAX_QUERIES: usize = 4;
/// Largest `journal_max_queries` accepted: 256 queries hold at most 256 ×
/// [`crate::QUERY_BUFFER_MAX`] (about 270 MiB) of read buffers.
pub const MAX_MAX_QUERIES: usize = 256;

/// How often the journal is fsynced (`journal_fsync`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Fsync {
    /// After every event.
    Always,
    /// At most every `journal_fsync_interval` (default 1 s) and when idle.
    Batch,
    /// Left to the OS.
    Never,
}

/// The `journal_*` keys.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default)]
pub struct JournalSettings {
    /// Size limit of one segment, in bytes.
    pub journal_max_bytes: u64,
    /// Segments kept, the current one included.
    pub journal_keep: usize,
    pub journal_fsync: Fsync,
    #[serde(deserialize_with = "hb_config::duration")]
    pub journal_fsync_interval: Duration,
    /// Journal queries (`/api/v1/events`, the dashboard's events and host pages) running at
    /// once; one more is refused with `503` rather than queued. Each holds at most
    /// [`crate::QUERY_BUFFER_MAX`] bytes besides its results.
    pub journal_max_queries: usize,
}

impl Default for JournalSettings {
    fn default() -> Self {
        JournalSettings {
            journal_max_bytes: DEFAULT_MAX_BYTES,
            journal_keep: DEFAULT_KEEP,
            journal_fsync: Fsync::Batch,
            journal_fsync_interval: Duration::from_secs(1),
            journal_max_queries: DEFAULT_MAX_QUERIES,
        }
    }
}

impl JournalSettings {
    /// The first setting out of range, as `key: why`.
    pub fn validate(&self) -> Result<(), String> {
        if self.journal_keep == 0 {
            return Err("journal_keep: must be at least 1".into());
        }
        if !(1..=MAX_MAX_QUERIES).contains(&self.journal_max_queries) {
            return Err(format!(
                "journal_max_queries: {} is out of range; use 1 to {MAX_MAX_QUERIES} (default {DEFAULT_MAX_QUERIES})",
                self.journal_max_queries
            ));
        }
        if self.journal_max_bytes < 4096 {
            return Err("journal_max_bytes: use at least 4096".into());
        }
        Ok(())
    }

    /// The journal's configuration for the segments in `dir`.
    pub fn config(&self, dir: impl Into<PathBuf>) -> JournalConfig {
        JournalConfig {
            dir: dir.into(),
            max_bytes: self.journal_max_bytes,
            keep: self.journal_keep,
            fsync: match self.journal_fsync {
                Fsync::Always => FsyncPolicy::Always,
                Fsync::Batch => FsyncPolicy::Batch(self.journal_fsync_interval),
                Fsync::Never => FsyncPolicy::Never,
            },
        }
    }
}
