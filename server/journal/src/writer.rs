//! The journal writer thread: takes events from a bounded queue so submitting never waits
//! for the disk, and rides out a full or read-only disk by keeping events in memory (bounded)
//! and retrying every second.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender, TryRecvError, TrySendError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::{Journal, JournalError};
use hbd_core::event::Event;

/// Events kept in memory while the journal cannot be written; beyond that the oldest are
/// dropped (and counted).
pub const RETRY_CAPACITY: usize = 100_000;
const RETRY_EVERY: Duration = Duration::from_secs(1);

/// What the writer has done; read by the API and the health check.
#[derive(Debug, Default)]
pub struct Stats {
    /// Events written to the journal.
    pub appended: AtomicU64,
    /// Bytes of those records.
    pub bytes: AtomicU64,
    /// Failed write, fsync or open attempts (retries included).
    pub write_errors: AtomicU64,
    /// Events submitted and not yet written: queued, or kept in memory while failing.
    pub pending: AtomicU64,
    /// Events lost: the queue was full, the in-memory buffer overflowed, or the event could
    /// not be journaled at all (too large).
    pub dropped: AtomicU64,
    pub rotations: AtomicU64,
    pub fsyncs: AtomicU64,
    last_error: Mutex<Option<String>>,
}

impl Stats {
    /// Why the journal cannot be written right now, if it cannot.
    pub fn last_error(&self) -> Option<String> {
        self.error_slot().clone()
    }

    /// True when no write error is pending.
    pub fn healthy(&self) -> bool {
        self.error_slot().is_none()
    }

    fn set_error(&self, error: Option<String>) {
        *self.error_slot() = error;
    }

    fn error_slot(&self) -> std::sync::MutexGuard<'_, Option<String>> {
        // A panic while holding this lock cannot leave the Option half-written.
        self.last_error.lock().unwrap_or_else(|e| e.into_inner())
    }
}

type Reply = SyncSender<Result<(), String>>;

enum Msg {
    Event(Event),
    Flush(Reply),
    Close(Reply),
    /// Tests: tell the first channel we are here, then wait on the second.
    #[cfg(test)]
    Hold(mpsc::Sender<()>, Receiver<()>),
}

/// The journal on its own thread (named `journal`). Dropping it without [`Writer::close`]
/// still writes and fsyncs what was submitted, but nobody waits for it.
pub struct Writer {
    tx: SyncSender<Msg>,
    pub stats: Arc<Stats>,
    thread: JoinHandle<()>,
}

impl Writer {
    /// Starts the writer thread with a queue of `capacity` events (at least 1).
    pub fn spawn(journal: Journal, capacity: usize) -> std::io::Result<Writer> {
        Writer::start(journal, capacity, RETRY_CAPACITY)
    }

    fn start(journal: Journal, capacity: usize, retry_capacity: usize) -> std::io::Result<Writer> {
        let (tx, rx) = mpsc::sync_channel(capacity.max(1));
        let stats = Arc::new(Stats::default());
        let worker = Worker {
            journal,
            stats: Arc::clone(&stats),
            rx,
            kept: VecDeque::new(),
            retry_capacity: retry_capacity.max(1),
            failing: None,
        };
        let thread = std::thread::Builder::new()
            .name("journal".into())
            .spawn(move || worker.run())?;
        Ok(Writer { tx, stats, thread })
    }

    /// Queues the event without blocking. When the queue is full (or the thread is gone) the
    /// event is counted in `dropped` and false is returned.
    pub fn submit(&self, ev: Event) -> bool {
        self.stats.pending.fetch_add(1, Ordering::Relaxed);
        match self.tx.try_send(Msg::Event(ev)) {
            Ok(()) => true,
            Err(e) => {
                self.stats.pending.fetch_sub(1, Ordering::Relaxed);
                self.stats.dropped.fetch_add(1, Ordering::Relaxed);
                if let TrySendError::Disconnected(_) = e {
                    self.stats
                        .set_error(Some("journal: the writer thread has stopped".into()));
                }
                false
            }
        }
    }

    /// Waits until everything submitted so far is written and fsynced, or failed. Returns
    /// the last error if the journal is failing (the events are still kept and retried).
    pub fn flush(&self, timeout: Duration) -> Result<(), String> {
        self.request(Msg::Flush, timeout, "flush")?
    }

    /// Flushes, then stops the thread. Events that could not be written are lost (and
    /// logged).
    pub fn close(self, timeout: Duration) -> Result<(), String> {
        let result = self.request(Msg::Close, timeout, "close")?;
        // The thread has answered and returns right after.
        if self.thread.join().is_err() {
            return Err("journal: the writer thread panicked".into());
        }
        result
    }

    /// Sends a request and waits for its answer. The outer error is about the request itself
    /// (timeout, thread gone), the inner one is the answer.
    fn request(
        &self,
        make: fn(Reply) -> Msg,
        timeout: Duration,
        what: &str,
    ) -> Result<Result<(), String>, String> {
        let deadline = Instant::now() + timeout;
        let stopped = || "journal: the writer thread has stopped".to_string();
        let timed_out = || format!("journal: {what} timed out after {timeout:?}");
        let (reply_tx, reply_rx) = mpsc::sync_channel(1);
        let mut msg = make(reply_tx);
        loop {
            match self.tx.try_send(msg) {
                Ok(()) => break,
                Err(TrySendError::Full(m)) if Instant::now() < deadline => {
                    msg = m;
                    std::thread::sleep(Duration::from_millis(1));
                }
                Err(TrySendError::Full(_)) => return Err(timed_out()),
                Err(TrySendError::Disconnected(_)) => return Err(stopped()),
            }
        }
        match reply_rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            Ok(result) => Ok(result),
            Err(RecvTimeoutError::Timeout) => Err(timed_out()),
            Err(RecvTimeoutError::Disconnected) => Err(stopped()),
        }
    }
}

struct Failing {
    since: Instant,
    next_retry: Instant,
    dropped_before: u64,
}

struct Worker {
    journal: Journal,
    stats: Arc<Stats>,
    rx: Receiver<Msg>,
    /// Events not written because the journal is failing, oldest first.
    kept: VecDeque<Event>,
    retry_capacity: usize,
    failing: Option<Failing>,
}

impl Worker {
    fn run(mut self) {
        loop {
            let msg = match self.rx.try_recv() {
                Ok(msg) => msg,
                Err(TryRecvError::Disconnected) => break,
                Err(TryRecvError::Empty) => {
                    self.idle();
                    self.publish();
                    let next = match self.wake_at() {
                        Some(at) => self
                            .rx
                            .recv_timeout(at.saturating_duration_since(Instant::now())),
                        None => self.rx.recv().map_err(|_| RecvTimeoutError::Disconnected),
                    };
                    match next {
                        Ok(msg) => msg,
                        Err(RecvTimeoutError::Timeout) => continue,
                        Err(RecvTimeoutError::Disconnected) => break,
                    }
                }
            };
            match msg {
                Msg::Event(ev) => self.write(ev),
                Msg::Flush(reply) => {
                    let result = self.flush();
                    self.publish();
                    let _ = reply.try_send(result);
                }
                Msg::Close(reply) => {
                    let result = self.flush();
                    self.stop();
                    let _ = reply.try_send(result);
                    return;
                }
                #[cfg(test)]
                Msg::Hold(here, release) => {
                    let _ = here.send(());
                    let _ = release.recv();
                }
            }
        }
        // Every Writer is gone without a close.
        let _ = self.flush();
        self.stop();
    }

    fn write(&mut self, ev: Event) {
        if self.failing.is_some() {
            self.keep(ev);
            return;
        }
        match self.journal.append(&ev) {
            Ok(()) => self.written(),
            Err(e) if !e.is_io() => self.refused(&e),
            Err(e) => {
                self.keep(ev);
                self.fail(e);
            }
        }
    }

    /// Keeps an event for later, dropping the oldest kept one when full.
    fn keep(&mut self, ev: Event) {
        if self.kept.len() >= self.retry_capacity {
            self.kept.pop_front();
            self.stats.pending.fetch_sub(1, Ordering::Relaxed);
            self.stats.dropped.fetch_add(1, Ordering::Relaxed);
        }
        self.kept.push_back(ev);
    }

    fn written(&self) {
        self.stats.pending.fetch_sub(1, Ordering::Relaxed);
    }

    /// An event the journal will never take (too large to encode): counted and logged.
    fn refused(&self, e: &JournalError) {
        self.stats.pending.fetch_sub(1, Ordering::Relaxed);
        self.stats.dropped.fetch_add(1, Ordering::Relaxed);
        tracing::error!("{e}; event dropped");
    }

    fn fail(&mut self, e: JournalError) {
        self.stats.write_errors.fetch_add(1, Ordering::Relaxed);
        let message = e.to_string();
        let now = Instant::now();
        match &mut self.failing {
            Some(f) => f.next_retry = now + RETRY_EVERY,
            None => {
                tracing::error!(
                    "{message}; events are kept in memory ({}) and retried every second",
                    self.kept.len() as u64 + self.journal.buffered()
                );
                self.failing = Some(Failing {
                    since: now,
                    next_retry: now + RETRY_EVERY,
                    dropped_before: self.stats.dropped.load(Ordering::Relaxed),
                });
            }
        }
        self.stats.set_error(Some(message));
    }

    /// Writes the kept events in order; true when all are written and the journal works.
    fn retry(&mut self) -> bool {
        while let Some(ev) = self.kept.front() {
            match self.journal.append(ev) {
                Ok(()) => self.written(),
                Err(e) if !e.is_io() => self.refused(&e),
                Err(e) => {
                    self.fail(e);
                    return false;
                }
            }
            self.kept.pop_front();
        }
        if let Err(e) = self.journal.sync_if_due() {
            self.fail(e);
            return false;
        }
        if let Some(f) = self.failing.take() {
            let dropped = self.stats.dropped.load(Ordering::Relaxed) - f.dropped_before;
            tracing::info!(
                "journal: writing again after {:.1} s; kept events written, {dropped} dropped meanwhile",
                f.since.elapsed().as_secs_f64()
            );
            self.stats.set_error(None);
        }
        true
    }

    /// The queue is empty: retry if failing and it is time, else write out and fsync if due.
    fn idle(&mut self) {
        match &self.failing {
            Some(f) if Instant::now() >= f.next_retry => {
                self.retry();
            }
            Some(_) => {}
            None => {
                if let Err(e) = self.journal.sync_if_due() {
                    self.fail(e);
                }
            }
        }
    }

    fn wake_at(&self) -> Option<Instant> {
        match &self.failing {
            Some(f) => Some(f.next_retry),
            None => self.journal.sync_deadline(),
        }
    }

    fn flush(&mut self) -> Result<(), String> {
        if self.failing.is_none() || self.retry() {
            if let Err(e) = self.journal.flush() {
                self.fail(e);
            }
        }
        self.publish();
        match self.failing {
            None => Ok(()),
            Some(_) => Err(self
                .stats
                .last_error()
                .unwrap_or_else(|| "journal: cannot write".into())),
        }
    }

    /// Stopping: say what is lost, if anything.
    fn stop(&mut self) {
        let lost = self.kept.len() as u64 + self.journal.buffered();
        if lost > 0 {
            tracing::error!(
                "journal: stopping with {lost} events not written: {}",
                self.stats.last_error().unwrap_or_default()
            );
        }
        self.publish();
    }

    fn publish(&self) {
        let c = self.journal.counters();
        let s = &self.stats;
        s.appended.store(c.appended, Ordering::Relaxed);
        s.bytes.store(c.bytes, Ordering::Relaxed);
        s.rotations.store(c.rotations, Ordering::Relaxed);
        s.fsyncs.store(c.fsyncs, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{config, ev, open, replay, Tmpfs, WAIT};
    use crate::{FsyncPolicy, JournalConfig};

    fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
        let deadline = Instant::now() + WAIT;
        while !cond() {
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    #[test]
    fn submitted_events_are_all_written() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let cfg = JournalConfig {
            fsync: FsyncPolicy::Batch(Duration::from_millis(20)),
            max_bytes: 64 << 10,
            keep: 1000,
            ..JournalConfig::new(tmp.path())
        };
        let (journal, _, _) = open(cfg.clone());
        let w = Writer::spawn(journal, 100_000).expect("spawn");
        let evs: Vec<Event> = (1..=5000).map(|i| ev(i, "h")).collect();
        for e in &evs {
            assert!(w.submit(e.clone()));
        }
        w.flush(WAIT).expect("flush");
        assert_eq!(w.stats.appended.load(Ordering::Relaxed), 5000);
        assert_eq!(w.stats.pending.load(Ordering::Relaxed), 0);
        assert_eq!(w.stats.dropped.load(Ordering::Relaxed), 0);
        assert!(w.stats.rotations.load(Ordering::Relaxed) >= 5);
        assert!(w.stats.fsyncs.load(Ordering::Relaxed) >= 1);
        assert!(w.stats.healthy());
        w.close(WAIT).expect("close");
        assert_eq!(open(cfg).2, evs);
    }

    #[test]
    fn batch_policy_fsyncs_when_idle_without_a_flush() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let cfg = JournalConfig {
            fsync: FsyncPolicy::Batch(Duration::from_millis(30)),
            ..JournalConfig::new(tmp.path())
        };
        let (journal, _, _) = open(cfg);
        let w = Writer::spawn(journal, 16).expect("spawn");
        assert!(w.submit(ev(1, "h")));
        wait_for("the idle fsync", || {
            w.stats.fsyncs.load(Ordering::Relaxed) >= 1
                && w.stats.pending.load(Ordering::Relaxed) == 0
        });
        // Written and synced without flush or close.
        assert_eq!(
            crate::query(tmp.path(), &Default::default()).expect("query"),
            [ev(1, "h")]
        );
        w.close(WAIT).expect("close");
    }

    #[test]
    fn full_queue_drops_and_counts() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let (journal, _, _) = open(config(tmp.path()));
        let w = Writer::spawn(journal, 1).expect("spawn");
        let (here_tx, here_rx) = mpsc::channel();
        let (release_tx, release_rx) = mpsc::channel();
        w.tx.send(Msg::Hold(here_tx, release_rx)).expect("send");
        here_rx.recv().expect("the writer holds");
        assert!(w.submit(ev(1, "h")));
        assert!(!w.submit(ev(2, "h")));
        assert!(!w.submit(ev(3, "h")));
        assert_eq!(w.stats.dropped.load(Ordering::Relaxed), 2);
        assert_eq!(w.stats.pending.load(Ordering::Relaxed), 1);
        release_tx.send(()).expect("release");
        w.flush(WAIT).expect("flush");
        assert!(w.submit(ev(4, "h")));
        w.close(WAIT).expect("close");
        assert_eq!(replay(tmp.path()).1, [ev(1, "h"), ev(4, "h")]);
    }

    #[test]
    fn oversized_event_is_dropped_and_counted() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let (journal, _, _) = open(config(tmp.path()));
        let w = Writer::spawn(journal, 8).expect("spawn");
        let mut big = ev(1, "h");
        big.message = "x".repeat(crate::MAX_PAYLOAD);
        assert!(w.submit(big));
        assert!(w.submit(ev(2, "h")));
        w.flush(WAIT).expect("flush");
        assert_eq!(w.stats.dropped.load(Ordering::Relaxed), 1);
        assert!(w.stats.healthy());
        w.close(WAIT).expect("close");
        assert_eq!(replay(tmp.path()).1, [ev(2, "h")]);
    }

    #[test]
    fn flush_after_close_of_thread_reports_it() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let (journal, _, _) = open(config(tmp.path()));
        let w = Writer::spawn(journal, 8).expect("spawn");
        let (reply_tx, reply_rx) = mpsc::sync_channel(1);
        w.tx.send(Msg::Close(reply_tx)).expect("send");
        reply_rx.recv().expect("reply").expect("closed cleanly");
        wait_for("the thread to end", || w.thread.is_finished());
        assert!(!w.submit(ev(1, "h")));
        assert_eq!(
            w.flush(WAIT),
            Err("journal: the writer thread has stopped".to_string())
        );
        assert_eq!(
            w.stats.last_error().as_deref(),
            Some("journal: the writer thread has stopped")
        );
    }

    // Real full and read-only disks: a small tmpfs, mounted by the test (needs root).

    fn last_error(w: &Writer) -> String {
        w.stats.last_error().unwrap_or_default()
    }

    #[test]
    fn full_disk_is_reported_and_nothing_is_lost() {
        let Some(fs) = Tmpfs::mount("64k") else {
            return;
        };
        let dir = fs.path().join("journal");
        let cfg = JournalConfig {
            fsync: FsyncPolicy::Batch(Duration::from_millis(10)),
            ..JournalConfig::new(&dir)
        };
        let (journal, _, _) = open(cfg.clone());
        let w = Writer::spawn(journal, 1024).expect("spawn");
        let mut next_id = 1;
        let mut submit = |w: &Writer| {
            assert!(
                w.submit(ev(next_id, "full")),
                "submit never blocks or drops"
            );
            next_id += 1;
        };
        for _ in 0..20 {
            submit(&w);
        }
        w.flush(WAIT).expect("flush while there is room");
        let filler = fs.fill();

        // Keep going until the disk refuses.
        let deadline = Instant::now() + WAIT;
        while w.stats.write_errors.load(Ordering::Relaxed) == 0 {
            assert!(Instant::now() < deadline, "the disk never filled up");
            submit(&w);
            std::thread::sleep(Duration::from_millis(2));
        }
        assert!(
            last_error(&w).contains("No space left on device"),
            "{:?}",
            last_error(&w)
        );
        assert!(last_error(&w).contains("journal-000001.log"));
        assert!(!w.stats.healthy());
        for _ in 0..50 {
            submit(&w);
        }
        let err = w
            .flush(WAIT)
            .expect_err("flush fails while the disk is full");
        assert!(err.contains("No space left on device"), "{err}");
        assert!(w.stats.pending.load(Ordering::Relaxed) >= 50);

        // Read-only on top of full: the file was closed after the failure, so the remount
        // works, and the retries now say so.
        fs.remount("ro");
        wait_for("the read-only error", || {
            last_error(&w).contains("Read-only file system")
        });
        fs.remount("rw");

        std::fs::remove_file(&filler).expect("free space");
        wait_for("recovery", || w.stats.healthy());
        for _ in 0..10 {
            submit(&w);
        }
        w.flush(WAIT).expect("flush after recovery");
        assert_eq!(w.stats.pending.load(Ordering::Relaxed), 0);
        assert_eq!(w.stats.dropped.load(Ordering::Relaxed), 0);
        let total = next_id - 1;
        assert_eq!(w.stats.appended.load(Ordering::Relaxed), total);
        w.close(WAIT).expect("close");

        let (report, seen) = replay(&dir);
        assert!(report.problems.is_empty(), "{:?}", report.problems);
        assert_eq!(seen, (1..=total).map(|i| ev(i, "full")).collect::<Vec<_>>());
    }

    #[test]
    fn read_only_disk_is_reported_and_recovers() {
        let Some(fs) = Tmpfs::mount("1m") else {
            return;
        };
        let dir = fs.path().join("journal");
        let cfg = JournalConfig {
            fsync: FsyncPolicy::Always,
            ..JournalConfig::new(&dir)
        };
        let (journal, _, _) = open(cfg);
        let w = Writer::spawn(journal, 1024).expect("spawn");
        // The segment file is opened at the first write, so nothing holds the mount busy.
        fs.remount("ro");
        for i in 1..=30 {
            assert!(w.submit(ev(i, "ro")));
        }
        let err = w.flush(WAIT).expect_err("flush fails while read-only");
        assert!(err.contains("Read-only file system"), "{err}");
        assert!(
            err.starts_with(&format!(
                "journal {}",
                dir.join("journal-000001.log").display()
            )),
            "{err}"
        );
        assert!(w.stats.write_errors.load(Ordering::Relaxed) >= 1);
        assert_eq!(w.stats.pending.load(Ordering::Relaxed), 30);

        fs.remount("rw");
        wait_for("recovery", || w.stats.healthy());
        w.flush(WAIT).expect("flush after recovery");
        w.close(WAIT).expect("close");
        assert_eq!(
            replay(&dir).1,
            (1..=30).map(|i| ev(i, "ro")).collect::<Vec<_>>()
        );
    }

    #[test]
    fn retry_buffer_is_bounded() {
        let Some(fs) = Tmpfs::mount("1m") else {
            return;
        };
        let dir = fs.path().join("journal");
        let cfg = JournalConfig {
            fsync: FsyncPolicy::Always,
            ..JournalConfig::new(&dir)
        };
        let (journal, _, _) = open(cfg);
        let w = Writer::start(journal, 1024, 10).expect("spawn");
        fs.remount("ro");
        for i in 1..=25 {
            assert!(w.submit(ev(i, "ro")));
        }
        assert!(w.flush(WAIT).is_err());
        assert_eq!(w.stats.dropped.load(Ordering::Relaxed), 15);
        assert_eq!(w.stats.pending.load(Ordering::Relaxed), 10);
        fs.remount("rw");
        wait_for("recovery", || w.stats.healthy());
        w.close(WAIT).expect("close");
        // The newest are kept.
        assert_eq!(
            replay(&dir).1,
            (16..=25).map(|i| ev(i, "ro")).collect::<Vec<_>>()
        );
    }
}
