//! The limit on journal queries running at once: `/api/v1/events` and the dashboard's
//! events and host pages read segment files on the blocking pool. At most
//! `journal_max_queries` run at a time (each holds at most
//! [`hbd_journal::QUERY_BUFFER_MAX`] bytes besides its results); one more is refused at once
//! ([`Busy`]: `503` with `Retry-After`) instead of queueing behind the others, and counted in
//! `hbd_journal_queries_refused_total`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use tokio::sync::Semaphore;

use crate::event::Event;
use crate::journal;
use crate::state::Shared;

/// Seconds a refused client is asked to wait (`Retry-After`); a query takes well under that
/// on a full default journal (8 × 16 MiB).
pub const RETRY_AFTER_S: u64 = 1;

/// How long a query waits for the writer to hand over what was just published, so a
/// page shows its own latest events.
const FLUSH_WAIT: Duration = Duration::from_millis(200);

/// The query slots, shared by both users (app data of the HTTP listener).
#[derive(Debug)]
pub struct JournalQueries {
    slots: Arc<Semaphore>,
    limit: usize,
    /// Queries refused because `limit` were running.
    pub refused: AtomicU64,
}

/// Refused: `limit` queries are running.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Busy {
    pub limit: usize,
}

/// Why a query returned no events.
#[derive(Debug)]
pub enum QueryError {
    Busy(Busy),
    /// Reading the journal failed (the message names the file).
    Failed(String),
}

impl std::fmt::Display for QueryError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            QueryError::Busy(b) => write!(
                f,
                "{} journal queries are running (journal_max_queries); retry after {RETRY_AFTER_S} s",
                b.limit
            ),
            QueryError::Failed(e) => write!(f, "cannot read the journal: {e}"),
        }
    }
}

impl QueryError {
    /// `503` with `Retry-After` when busy, `500` when the journal could not be read; a
    /// JSON error either way.
    pub fn response(&self) -> HttpResponse {
        let body = serde_json::json!({ "error": self.to_string() });
        match self {
            QueryError::Busy(_) => HttpResponse::build(StatusCode::SERVICE_UNAVAILABLE)
                .insert_header(("Retry-After", RETRY_AFTER_S.to_string()))
                .json(body),
            QueryError::Failed(_) => {
                HttpResponse::build(StatusCode::INTERNAL_SERVER_ERROR).json(body)
            }
        }
    }
}

impl JournalQueries {
    pub fn new(limit: usize) -> Arc<JournalQueries> {
        let limit = limit.max(1);
        Arc::new(JournalQueries {
            slots: Arc::new(Semaphore::new(limit)),
            limit,
            refused: AtomicU64::new(0),
        })
    }

    /// `hbd_journal_queries_refused_total`, for `/metrics`.
    pub fn metrics(&self, out: &mut String) {
        crate::metrics::single(
            out,
            "hbd_journal_queries_refused_total",
            "counter",
            "Journal queries refused because journal_max_queries were running.",
            self.refused.load(Ordering::Relaxed),
        );
    }

    /// Runs `q` on the blocking pool if a slot is free, else refuses it (counted). The slot
    /// is held until the read ends, even if the client has gone.
    pub async fn run(&self, state: &Shared, q: journal::Query) -> Result<Vec<Event>, QueryError> {
        let Ok(permit) = self.slots.clone().try_acquire_owned() else {
            let n = self.refused.fetch_add(1, Ordering::Relaxed) + 1;
            if n.is_power_of_two() {
                tracing::warn!(
                    refused = n,
                    limit = self.limit,
                    "journal queries refused: journal_max_queries are running"
                );
            }
            return Err(QueryError::Busy(Busy { limit: self.limit }));
        };
        let state = state.clone();
        web::block(move || {
            let _permit = permit;
            let _ = state.journal.flush(FLUSH_WAIT);
            journal::query(&state.journal_dir, &q).map_err(|e| e.to_string())
        })
        .await
        .map_err(|e| QueryError::Failed(e.to_string()))?
        .map_err(QueryError::Failed)
    }
}
