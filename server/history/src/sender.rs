//! One thread per remote_write target: takes batches off its [`Queue`], sends them, and
//! retries with exponential backoff while the database is away (the batch in hand is
//! kept; the queue meanwhile keeps its bound). A refusal for good (4xx other than 429)
//! drops the batch, counted. At shutdown the buffer gets one more try, then what is left
//! is counted as dropped.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::queue::{DropReason, Queue};
use crate::series::{Builder, DOWN_REPEAT};
use crate::wire;

/// First wait after a failed request; doubled each time up to [`BACKOFF_MAX`].
pub const BACKOFF_MIN: Duration = Duration::from_millis(250);
/// Longest wait between two tries.
pub const BACKOFF_MAX: Duration = Duration::from_secs(30);

/// The next wait after `prev` (pure, for tests).
pub fn next_backoff(prev: Option<Duration>) -> Duration {
    match prev {
        None => BACKOFF_MIN,
        Some(d) => (d * 2).min(BACKOFF_MAX),
    }
}

/// How a request ended.
#[derive(Debug)]
pub enum SendError {
    /// Worth trying again: not reached, 5xx, 429.
    Retry(String),
    /// Refused for good (4xx): the batch is dropped.
    Refused(String),
}

/// Where and how a target sends.
pub struct Client {
    pub agent: ureq::Agent,
    pub url: String,
    /// `Authorization` header value, if any.
    pub auth: Option<String>,
    /// The URL without user information or query, for logs and labels.
    pub shown: String,
}

impl Client {
    pub fn send(&self, body: &[u8]) -> Result<(), SendError> {
        let mut req = self.agent.post(&self.url);
        for (k, v) in wire::HEADERS {
            req = req.set(k, v);
        }
        if let Some(a) = &self.auth {
            req = req.set("Authorization", a);
        }
        match req.send_bytes(body) {
            Ok(_) => Ok(()),
            Err(ureq::Error::Status(code, resp)) => {
                let mut text = resp.into_string().unwrap_or_default();
                text.truncate(text.floor_char_boundary_compat(300));
                let msg = format!("{} answered HTTP {code}: {}", self.shown, text.trim());
                if code == 429 || code >= 500 {
                    Err(SendError::Retry(msg))
                } else {
                    Err(SendError::Refused(msg))
                }
            }
            Err(ureq::Error::Transport(t)) => Err(SendError::Retry(format!(
                "{} not reached ({}): {}",
                self.shown,
                t.kind(),
                t.message().unwrap_or("no detail")
            ))),
        }
    }
}

/// `str::floor_char_boundary` is not stable on hbd's rust-version.
trait FloorCharBoundary {
    fn floor_char_boundary_compat(&self, i: usize) -> usize;
}

impl FloorCharBoundary for String {
    fn floor_char_boundary_compat(&self, mut i: usize) -> usize {
        if i >= self.len() {
            return self.len();
        }
        while !self.is_char_boundary(i) {
            i -= 1;
        }
        i
    }
}

/// The sending loop of one target; returns at shutdown.
pub fn run(queue: Arc<Queue>, client: Client, mut builder: Builder, flush: Duration) {
    let mut last_down = Instant::now();
    let mut failing = false;
    while let Some((batch, n)) = queue.take(flush) {
        if !batch.is_empty() {
            let body = wire::compress(&builder.encode(&batch));
            let ok = deliver(&queue, &client, &body, n, &mut failing);
            queue.done();
            if !ok && queue.stopping() {
                // The database is away and hbd stops: the rest is not tried one by one.
                break;
            }
        }
        if last_down.elapsed() >= DOWN_REPEAT {
            last_down = Instant::now();
            if let Some(req) = builder.down_request(hbd_core::now_ms() as i64) {
                let n = req.timeseries.len();
                deliver(&queue, &client, &wire::encode(&req), n, &mut failing);
            }
        }
    }
    queue.discard();
}

/// Sends one request until it is accepted, refused, or hbd stops; whether it was
/// accepted.
fn deliver(
    queue: &Queue,
    client: &Client,
    body: &[u8],
    samples: usize,
    failing: &mut bool,
) -> bool {
    let c = &queue.counters;
    let mut wait = None;
    loop {
        c.requests.fetch_add(1, Ordering::Relaxed);
        match client.send(body) {
            Ok(()) => {
                c.sent_samples.fetch_add(samples as u64, Ordering::Relaxed);
                c.sent_bytes.fetch_add(body.len() as u64, Ordering::Relaxed);
                if std::mem::take(failing) {
                    tracing::info!(target_url = %client.shown, "remote_write: delivering again");
                }
                return true;
            }
            Err(SendError::Refused(msg)) => {
                tracing::warn!(target_url = %client.shown, samples, "remote_write: batch refused: {msg}");
                c.drop(DropReason::Rejected, samples as u64);
                return false;
            }
            Err(SendError::Retry(msg)) => {
                c.retries.fetch_add(1, Ordering::Relaxed);
                if !std::mem::replace(failing, true) {
                    tracing::warn!(target_url = %client.shown, "remote_write: {msg}; retrying with backoff, buffering up to history_buffer samples");
                }
                if queue.stopping() {
                    c.drop(DropReason::Shutdown, samples as u64);
                    return false;
                }
                let d = next_backoff(wait);
                wait = Some(d);
                if queue.sleep(d) {
                    // Stopping: one last try of this batch.
                    continue;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_its_cap() {
        let mut d = None;
        let mut seen = Vec::new();
        for _ in 0..10 {
            let n = next_backoff(d);
            seen.push(n.as_millis());
            d = Some(n);
        }
        assert_eq!(
            seen,
            [250, 500, 1000, 2000, 4000, 8000, 16000, 30000, 30000, 30000]
        );
    }
}
