//! One target's bounded buffer between ingest and its sender thread. Ingest only
//! appends under a short lock (O(1) besides dropping the oldest entries when full);
//! the sender takes a batch off the front. The bound is in samples
//! (`history_buffer`); past it the oldest entries go first, every sample counted as
//! [`DropReason::BufferFull`]: after an outage the most recent history is the one kept,
//! and what is kept stays in time order (a database refuses a sample older than its
//! series' newest).

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Duration;

use crate::beat::Beat;

/// Why samples were not delivered; each is a label of `hbd_history_dropped_samples_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DropReason {
    /// The buffer held `history_buffer` samples (the database away or too slow).
    BufferFull,
    /// The database refused the request for good (HTTP 4xx other than 429: out of order,
    /// too old, bad labels).
    Rejected,
    /// hbd stopped while the database was away.
    Shutdown,
}

impl DropReason {
    pub const ALL: [DropReason; 3] = [
        DropReason::BufferFull,
        DropReason::Rejected,
        DropReason::Shutdown,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            DropReason::BufferFull => "buffer_full",
            DropReason::Rejected => "rejected",
            DropReason::Shutdown => "shutdown",
        }
    }
}

/// A target's counters (`/metrics`, status).
#[derive(Debug, Default)]
pub struct Counters {
    pub sent_samples: AtomicU64,
    pub sent_bytes: AtomicU64,
    pub requests: AtomicU64,
    /// Requests that failed and were retried (database away, 5xx, 429).
    pub retries: AtomicU64,
    dropped: [AtomicU64; 3],
}

impl Counters {
    pub fn drop(&self, reason: DropReason, n: u64) {
        if n > 0 {
            self.dropped[reason as usize].fetch_add(n, Ordering::Relaxed);
        }
    }

    pub fn dropped(&self, reason: DropReason) -> u64 {
        self.dropped[reason as usize].load(Ordering::Relaxed)
    }
}

/// One queued beat for one target: which of its readings pass the target's filter.
pub struct Entry {
    pub beat: Arc<Beat>,
    /// Indices of the readings sent; `None`: all of them.
    pub pick: Option<Box<[u32]>>,
    /// Samples it makes (readings picked and host state).
    pub samples: usize,
}

impl Entry {
    /// The picked readings: key, unit, value.
    pub fn readings(&self) -> impl Iterator<Item = (&str, &str, f64)> + '_ {
        let n = match &self.pick {
            Some(p) => p.len(),
            None => self.beat.len(),
        };
        (0..n).map(move |i| {
            let idx = match &self.pick {
                Some(p) => p[i] as usize,
                None => i,
            };
            self.beat.reading(idx)
        })
    }
}

struct Inner {
    entries: VecDeque<Entry>,
    samples: usize,
    stop: bool,
}

/// The buffer itself.
pub struct Queue {
    inner: Mutex<Inner>,
    ready: Condvar,
    cap: usize,
    batch: usize,
    /// Samples taken by the sender and not yet delivered or dropped.
    inflight: AtomicUsize,
    pub counters: Counters,
}

impl Queue {
    pub fn new(cap: usize, batch: usize) -> Queue {
        Queue {
            inner: Mutex::new(Inner {
                entries: VecDeque::new(),
                samples: 0,
                stop: false,
            }),
            ready: Condvar::new(),
            cap,
            batch,
            inflight: AtomicUsize::new(0),
            counters: Counters::default(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding this lock leaves the queue consistent (plain pushes and
        // pops), so a poisoned lock is used as it is.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Appends an entry, dropping the oldest past the bound. Never waits for the sender.
    pub fn push(&self, e: Entry) {
        if e.samples == 0 {
            return;
        }
        if e.samples > self.cap {
            self.counters.drop(DropReason::BufferFull, e.samples as u64);
            return;
        }
        let mut q = self.lock();
        let mut dropped = 0;
        while q.samples + e.samples > self.cap {
            let Some(old) = q.entries.pop_front() else {
                break;
            };
            q.samples -= old.samples;
            dropped += old.samples;
        }
        q.samples += e.samples;
        q.entries.push_back(e);
        let wake = q.samples >= self.batch;
        drop(q);
        self.counters.drop(DropReason::BufferFull, dropped as u64);
        if wake {
            self.ready.notify_one();
        }
    }

    /// Samples buffered now.
    pub fn len(&self) -> usize {
        self.lock().samples
    }

    /// Samples buffered or being sent.
    pub fn pending(&self) -> usize {
        let q = self.lock();
        q.samples + self.inflight.load(Ordering::Relaxed)
    }

    /// The batch taken last is delivered or dropped.
    pub fn done(&self) {
        self.inflight.store(0, Ordering::Relaxed);
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Waits until a batch is there, `wait` passed or the queue is stopped; then takes
    /// entries off the front up to a batch (at least one entry). `None` once stopped and
    /// empty.
    pub fn take(&self, wait: Duration) -> Option<(Vec<Entry>, usize)> {
        let mut q = self.lock();
        if q.samples < self.batch && !q.stop {
            q = self
                .ready
                .wait_timeout_while(q, wait, |q| q.samples < self.batch && !q.stop)
                .map(|(g, _)| g)
                .unwrap_or_else(|p| p.into_inner().0);
        }
        if q.stop && q.entries.is_empty() {
            return None;
        }
        let mut out = Vec::new();
        let mut n = 0;
        while let Some(front) = q.entries.front() {
            if !out.is_empty() && n + front.samples > self.batch {
                break;
            }
            n += front.samples;
            if let Some(e) = q.entries.pop_front() {
                out.push(e);
            }
        }
        q.samples -= n;
        self.inflight.store(n, Ordering::Relaxed);
        Some((out, n))
    }

    /// Whether [`Queue::stop`] was called.
    pub fn stopping(&self) -> bool {
        self.lock().stop
    }

    /// Sleeps up to `d`, less if the queue is stopped. True when stopped.
    pub fn sleep(&self, d: Duration) -> bool {
        let q = self.lock();
        let (q, _) = self
            .ready
            .wait_timeout_while(q, d, |q| !q.stop)
            .unwrap_or_else(|p| p.into_inner());
        q.stop
    }

    /// Asks the sender to finish: what is buffered gets one more try.
    pub fn stop(&self) {
        self.lock().stop = true;
        self.ready.notify_all();
    }

    /// Empties the buffer (at shutdown, after the last try), counting what it held.
    pub fn discard(&self) {
        let mut q = self.lock();
        let n = q.samples;
        q.entries.clear();
        q.samples = 0;
        drop(q);
        self.counters.drop(DropReason::Shutdown, n as u64);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::beat::HostState;

    fn entry(n: usize) -> Entry {
        Entry {
            beat: Arc::new(Beat::state("h", 0, HostState::Down)),
            pick: None,
            samples: n,
        }
    }

    #[test]
    fn drops_the_oldest_past_the_bound_and_counts_every_sample() {
        let q = Queue::new(10, 4);
        for _ in 0..4 {
            q.push(entry(3));
        }
        // 12 > 10: the first entry (3 samples) went.
        assert_eq!(q.len(), 9);
        assert_eq!(q.counters.dropped(DropReason::BufferFull), 3);
        q.push(entry(11));
        assert_eq!(q.counters.dropped(DropReason::BufferFull), 14);
        let (batch, n) = q.take(Duration::ZERO).expect("a batch");
        assert_eq!(
            (batch.len(), n),
            (1, 3),
            "a batch stops before passing 4 samples"
        );
        assert_eq!(q.len(), 6);
    }

    #[test]
    fn take_returns_at_once_when_a_batch_is_there_and_none_once_stopped() {
        let q = Queue::new(100, 2);
        q.push(entry(2));
        let t = std::time::Instant::now();
        assert_eq!(q.take(Duration::from_secs(10)).map(|b| b.1), Some(2));
        assert!(t.elapsed() < Duration::from_secs(1));
        q.push(entry(1));
        q.stop();
        assert_eq!(q.take(Duration::from_secs(10)).map(|b| b.1), Some(1));
        assert!(q.take(Duration::from_secs(10)).is_none());
        q.push(entry(1));
        q.discard();
        assert_eq!(q.counters.dropped(DropReason::Shutdown), 1);
    }
}
