//! The journal: a durable, append-only log of every [`Event`], kept in the data dir, replayed
//! at start-up to restore the registry and queried by the API. [`Writer`] runs it on its own
//! thread so the ingest path never waits for the disk.
//!
//! # On-disk format
//!
//! The journal directory holds segment files named `journal-<number>.log`, the number written
//! with at least 6 digits (`journal-000042.log`). Numbers only grow; replay reads the
//! segments in number order. A segment is a sequence of records:
//!
//! ```text
//! u32 LE  payload length (1 ..= 1 MiB)
//! u32 LE  CRC-32 (IEEE, as computed by crc32fast) of the payload
//! [u8]    payload: the event as compact JSON (serde_json, the same shape as the API)
//! ```
//!
//! A record whose length is 0 or above 1 MiB, whose length reaches past the end of the file,
//! whose CRC does not match or whose payload is not an event is *bad*. Reading a segment stops
//! at its first bad record; everything before it is kept. At start-up ([`Journal::open`]) a
//! bad record in the **last** segment is taken for a write cut short by a crash or a power
//! loss: the file is truncated at the start of that record (and fsynced) so new records
//! follow good ones. A bad record in an older segment is reported and the file is left alone.
//! Every such finding is a sentence in [`ReplayReport::problems`].
//!
//! # Rotation
//!
//! A new segment is started when the next record would take the current one past
//! `max_bytes` (a record larger than that still goes, alone, into its own segment). After a
//! rotation, the oldest segments beyond `keep` (counting the new one) are deleted.
//!
//! # When data is on disk ([`FsyncPolicy`])
//!
//! Records are collected in a buffer of up to 64 KiB and written with `pwrite` at explicit
//! offsets, then made durable with `fdatasync`:
//! - `Always`: every [`Journal::append`] writes and fsyncs before it returns.
//! - `Batch(d)` (the default, `d` = 1 s): an append writes and fsyncs when the last fsync is
//!   more than `d` ago; the [`Writer`] also writes as soon as its queue is empty and fsyncs
//!   when `d` has passed, so a record is on disk within `d` of being submitted.
//! - `Never`: no fsync (the kernel writes back when it likes); the [`Writer`] still hands the
//!   buffer to the kernel whenever its queue is empty, so a crash of hbd alone loses nothing.
//!
//! [`Journal::flush`] (and [`Writer::flush`]/[`Writer::close`]) always writes and fsyncs.
//! The directory is fsynced after a segment is created, unless the policy is `Never`.
//!
//! # Failures
//!
//! [`Journal::append`] returning an error means the event is *not* in the journal (a part
//! that reached the file is cut off again), so the caller can keep it and retry; events
//! accepted before stay buffered and are written first when writing works again. After a
//! failed write the segment file is closed and reopened on the next attempt, so a file system
//! that was remounted (read-only and back) is picked up again. [`Writer`] keeps failed events
//! in memory (bounded), retries every second, and reports the state in [`Stats`].

pub mod format;
mod query;
mod settings;
#[cfg(test)]
mod testutil;
mod writer;

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use hbd_core::event::Event;

pub use format::MAX_PAYLOAD;
pub use query::{query, Query, QUERY_BUFFER_MAX, READ_CHUNK};
pub use settings::{Fsync, JournalSettings, DEFAULT_MAX_QUERIES};
pub use writer::{Stats, Writer, RETRY_CAPACITY};

/// Default size limit of one segment: 16 MiB.
pub const DEFAULT_MAX_BYTES: u64 = 16 << 20;
/// Default number of segments kept: 8.
pub const DEFAULT_KEEP: usize = 8;
/// The buffer is written out when it holds this much.
const BUF_CAP: usize = 64 << 10;

/// When appended records are fsynced; see the module doc.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FsyncPolicy {
    /// Write and fsync every record before `append` returns.
    Always,
    /// Fsync at most every `d`, and on flush/close; the [`Writer`] makes sure nothing stays
    /// unsynced longer than `d`.
    Batch(Duration),
    /// Never fsync (except on an explicit flush).
    Never,
}

impl Default for FsyncPolicy {
    fn default() -> Self {
        FsyncPolicy::Batch(Duration::from_secs(1))
    }
}

#[derive(Debug, Clone)]
pub struct JournalConfig {
    /// Directory of the segment files; created if missing.
    pub dir: PathBuf,
    /// Size limit of one segment, in bytes.
    pub max_bytes: u64,
    /// Segments kept, the current one included (at least 1).
    pub keep: usize,
    pub fsync: FsyncPolicy,
}

impl JournalConfig {
    /// The defaults: 16 MiB segments, 8 kept, `Batch(1 s)`.
    pub fn new(dir: impl Into<PathBuf>) -> JournalConfig {
        JournalConfig {
            dir: dir.into(),
            max_bytes: DEFAULT_MAX_BYTES,
            keep: DEFAULT_KEEP,
            fsync: FsyncPolicy::default(),
        }
    }
}

#[derive(thiserror::Error, Debug)]
pub enum JournalError {
    /// A file operation failed. The OS error is part of the message (and therefore not
    /// repeated as `source()`).
    #[error("journal {}: {op} failed: {error}", path.display())]
    Io {
        path: PathBuf,
        op: &'static str,
        error: io::Error,
    },
    #[error("journal: event {id} is too large ({len} bytes as JSON, at most {MAX_PAYLOAD})")]
    TooLarge { id: u64, len: usize },
    #[error("journal: cannot encode event {id}: {error}")]
    Encode { id: u64, error: serde_json::Error },
}

impl JournalError {
    fn io<'a>(path: &'a Path, op: &'static str) -> impl (FnOnce(io::Error) -> JournalError) + 'a {
        move |error| JournalError::Io {
            path: path.to_path_buf(),
            op,
            error,
        }
    }

    /// Whether the failure is the disk's (worth retrying) rather than the event's.
    pub fn is_io(&self) -> bool {
        matches!(self, JournalError::Io { .. })
    }

    /// The OS error of an I/O failure.
    pub fn io_error(&self) -> Option<&io::Error> {
        match self {
            JournalError::Io { error, .. } => Some(error),
            _ => None,
        }
    }
}

/// What [`Journal::open`] found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReplayReport {
    /// Events replayed.
    pub events: u64,
    /// The highest event id replayed (0 if none).
    pub last_id: u64,
    /// The time of that event (Unix ms; 0 if none).
    pub last_ts_ms: u64,
    /// One sentence per problem found (bad records, files that could not be read, cut or
    /// deleted), naming the file; for the caller to log.
    pub problems: Vec<String>,
}

/// Running totals of a journal, since it was opened.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counters {
    /// Events accepted by `append`.
    pub appended: u64,
    /// Bytes of those records.
    pub bytes: u64,
    pub rotations: u64,
    pub fsyncs: u64,
}

/// The segment records are appended to. Its file is opened lazily and closed after a failure.
#[derive(Debug)]
struct Segment {
    number: u64,
    path: PathBuf,
    file: Option<File>,
    /// Length of the file as far as we wrote it; the buffer starts at this offset.
    len: u64,
    /// Created by us and not yet opened: the directory needs an fsync once it is.
    fresh: bool,
}

impl Segment {
    fn new(dir: &Path, number: u64, len: u64, fresh: bool) -> Segment {
        Segment {
            number,
            path: dir.join(format::segment_name(number)),
            file: None,
            len,
            fresh,
        }
    }
}

/// An open journal. See the module doc for the format and the guarantees.
#[derive(Debug)]
pub struct Journal {
    cfg: JournalConfig,
    seg: Segment,
    /// Whole records not yet on disk; they belong at `seg.len`.
    buf: Vec<u8>,
    /// How much of `buf` already reached the file (only non-zero after a failed write).
    buf_written: usize,
    /// Records in `buf`.
    buf_records: u64,
    /// The encoded record being appended.
    scratch: Vec<u8>,
    /// Written but not fsynced.
    unsynced: bool,
    /// The last write or fsync failed.
    failed: bool,
    last_sync: Instant,
    counters: Counters,
}

impl Journal {
    /// Opens the journal in `cfg.dir` (creating the directory if needed) and replays every
    /// segment in order, calling `f` for each event.
    ///
    /// Segments beyond `keep` are deleted first. A torn or corrupt tail of the last segment
    /// is cut off (the file is truncated at the start of the bad record and fsynced); a bad
    /// record in an older segment ends the reading of that segment and the file is kept.
    /// Both are reported in [`ReplayReport::problems`], as are segments that cannot be read
    /// (they are skipped). Fails only when the directory cannot be created or listed.
    pub fn open(
        mut cfg: JournalConfig,
        mut f: impl FnMut(Event),
    ) -> Result<(Journal, ReplayReport), JournalError> {
        cfg.keep = cfg.keep.max(1);
        let dir = cfg.dir.clone();
        std::fs::create_dir_all(&dir).map_err(JournalError::io(&dir, "create directory"))?;
        let mut segments = format::list_segments(&dir).map_err(JournalError::io(&dir, "list"))?;
        let mut report = ReplayReport::default();

        if segments.len() > cfg.keep {
            let excess = segments.len() - cfg.keep;
            for (_, path) in segments.drain(..excess) {
                if let Err(e) = std::fs::remove_file(&path) {
                    report.problems.push(format!(
                        "{}: cannot delete this segment beyond the {} kept: {e}",
                        format::file_name(&path),
                        cfg.keep
                    ));
                }
            }
        }

        let mut current = None;
        let count = segments.len();
        for (i, (number, path)) in segments.iter().enumerate() {
            let last = i + 1 == count;
            let name = format::file_name(path);
            let data = match std::fs::read(path) {
                Ok(data) => data,
                Err(e) => {
                    let next = if last {
                        "; new events go to a new segment"
                    } else {
                        ""
                    };
                    report
                        .problems
                        .push(format!("{name}: cannot read it, skipped: {e}{next}"));
                    if last {
                        current = Some(Segment::new(&dir, number + 1, 0, true));
                    }
                    continue;
                }
            };
            let scan = format::scan(&data, |ev| {
                report.events += 1;
                if ev.id >= report.last_id {
                    report.last_id = ev.id;
                    report.last_ts_ms = ev.ts_ms;
                }
                f(ev);
            });
            let rest = data.len() as u64 - scan.good_len;
            let kept = scan.records;
            match (&scan.bad, last) {
                (None, false) => {}
                (None, true) => current = Some(Segment::new(&dir, *number, scan.good_len, false)),
                (Some(bad), false) => report.problems.push(format!(
                    "{name}: {bad}; {kept} records before it kept, the remaining {rest} bytes \
                     of this segment skipped (file left as is)"
                )),
                (Some(bad), true) => match truncate(path, scan.good_len) {
                    Ok(()) => {
                        report.problems.push(format!(
                            "{name}: {bad}; cut {rest} bytes, {kept} records before it kept"
                        ));
                        current = Some(Segment::new(&dir, *number, scan.good_len, false));
                    }
                    Err(e) => {
                        report.problems.push(format!(
                            "{name}: {bad}; {kept} records before it kept; cannot cut the \
                             {rest} bad bytes ({e}), new events go to a new segment"
                        ));
                        current = Some(Segment::new(&dir, number + 1, 0, true));
                    }
                },
            }
        }

        let journal = Journal {
            seg: current.unwrap_or_else(|| Segment::new(&dir, 1, 0, true)),
            cfg,
            buf: Vec::with_capacity(BUF_CAP + 1024),
            buf_written: 0,
            buf_records: 0,
            scratch: Vec::with_capacity(1024),
            unsynced: false,
            failed: false,
            last_sync: Instant::now(),
            counters: Counters::default(),
        };
        Ok((journal, report))
    }

    /// Appends `ev`, starting a new segment first if the current one would exceed
    /// `max_bytes` (and deleting the oldest beyond `keep`). When the policy says so, the
    /// record is written and fsynced before this returns.
    ///
    /// An error means the event is not in the journal; events appended before are not lost
    /// (they are written first on the next call or flush).
    pub fn append(&mut self, ev: &Event) -> Result<(), JournalError> {
        if self.failed {
            self.write_buffered()?;
        }
        self.scratch.clear();
        format::encode(ev, &mut self.scratch).map_err(|e| match e {
            format::EncodeError::Json(error) => JournalError::Encode { id: ev.id, error },
            format::EncodeError::TooLarge(len) => JournalError::TooLarge { id: ev.id, len },
        })?;
        let rec_len = self.scratch.len() as u64;
        if self.size() > 0 && self.size() + rec_len > self.cfg.max_bytes {
            self.rotate()?;
        }

        let record_off = self.size();
        self.buf.extend_from_slice(&self.scratch);
        self.buf_records += 1;
        let result = match self.cfg.fsync {
            FsyncPolicy::Always => self.write_buffered().and_then(|()| self.sync()),
            FsyncPolicy::Batch(d) if self.last_sync.elapsed() >= d => {
                self.write_buffered().and_then(|()| self.sync())
            }
            _ if self.buf.len() >= BUF_CAP => self.write_buffered(),
            _ => Ok(()),
        };
        if let Err(e) = result {
            if self.take_back(record_off) {
                return Err(e);
            }
            // Part of the record is in the file and cannot be cut off: it stays accepted and
            // the rest is written before anything else (`failed` is set).
        }
        self.counters.appended += 1;
        self.counters.bytes += rec_len;
        Ok(())
    }

    /// Writes everything buffered and fsyncs, whatever the policy.
    pub fn flush(&mut self) -> Result<(), JournalError> {
        self.write_buffered()?;
        self.sync()
    }

    pub fn dir(&self) -> &Path {
        &self.cfg.dir
    }

    /// The segment new records go to.
    pub fn current_segment(&self) -> &Path {
        &self.seg.path
    }

    pub fn counters(&self) -> Counters {
        self.counters
    }

    /// Events accepted but not yet handed to the kernel.
    pub fn buffered(&self) -> u64 {
        self.buf_records
    }

    /// Hands the buffer to the kernel and fsyncs if the policy says it is time. The
    /// [`Writer`] calls this whenever its queue is empty.
    pub fn sync_if_due(&mut self) -> Result<(), JournalError> {
        self.write_buffered()?;
        match self.cfg.fsync {
            FsyncPolicy::Always => self.sync(),
            FsyncPolicy::Batch(d) if self.last_sync.elapsed() >= d => self.sync(),
            _ => Ok(()),
        }
    }

    /// When [`Journal::sync_if_due`] has something to do next, if ever.
    pub fn sync_deadline(&self) -> Option<Instant> {
        if self.buf.len() > self.buf_written {
            return Some(Instant::now());
        }
        match self.cfg.fsync {
            FsyncPolicy::Batch(d) if self.unsynced => Some(self.last_sync + d),
            FsyncPolicy::Always if self.unsynced => Some(Instant::now()),
            _ => None,
        }
    }

    /// Length of the current segment including the buffer.
    fn size(&self) -> u64 {
        self.seg.len + self.buf.len() as u64
    }

    fn rotate(&mut self) -> Result<(), JournalError> {
        self.write_buffered()?;
        if self.cfg.fsync != FsyncPolicy::Never {
            self.sync()?;
        }
        let next = self.seg.number + 1;
        self.seg = Segment::new(&self.cfg.dir, next, 0, true);
        self.counters.rotations += 1;
        self.prune();
        Ok(())
    }

    /// Deletes the oldest segments so that `keep` remain, the current one included.
    fn prune(&self) {
        let dir = &self.cfg.dir;
        let segments = match format::list_segments(dir) {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(dir = %dir.display(), "journal: cannot list segments to delete old ones: {e}");
                return;
            }
        };
        let older: Vec<_> = segments
            .into_iter()
            .filter(|&(n, _)| n < self.seg.number)
            .collect();
        let excess = older.len().saturating_sub(self.cfg.keep - 1);
        for (_, path) in &older[..excess] {
            if let Err(e) = std::fs::remove_file(path) {
                tracing::warn!(file = %path.display(), "journal: cannot delete old segment: {e}");
            }
        }
    }

    /// Opens the current segment if it is not open.
    fn ensure_open(&mut self) -> Result<(), JournalError> {
        if self.seg.file.is_some() {
            return Ok(());
        }
        let path = &self.seg.path;
        let expected = self.seg.len + self.buf_written as u64;
        let may_create = self.seg.fresh || expected == 0;
        let opened = OpenOptions::new()
            .write(true)
            .create(may_create)
            .truncate(false)
            .open(path);
        let (file, actual) = match opened {
            Ok(file) => {
                let actual = file
                    .metadata()
                    .map_err(JournalError::io(path, "stat"))?
                    .len();
                (Some(file), actual)
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound && !may_create => (None, 0),
            Err(e) => return Err(JournalError::io(path, "open")(e)),
        };
        let Some(file) = file.filter(|_| actual >= expected) else {
            // Someone deleted or truncated the file behind our back: what we wrote is gone
            // and writing at our offset would leave a hole. The buffer starts at a record
            // boundary, so it can go, whole, into a fresh segment.
            tracing::warn!(file = %path.display(), expected, actual, "journal: segment shrank or vanished while open; continuing in a new segment");
            self.seg = Segment::new(&self.cfg.dir, self.seg.number + 1, 0, true);
            self.buf_written = 0;
            self.counters.rotations += 1;
            return self.ensure_open();
        };
        if actual > expected {
            // The end of a write whose failure we saw; our offsets are what counts.
            file.set_len(expected)
                .map_err(JournalError::io(path, "truncate"))?;
        }
        if self.seg.fresh && self.cfg.fsync != FsyncPolicy::Never {
            sync_dir(&self.cfg.dir)?;
        }
        self.seg.fresh = false;
        self.seg.file = Some(file);
        Ok(())
    }

    /// Writes the buffer to the file. On failure the file is closed (reopened next time) and
    /// the unwritten rest stays buffered.
    fn write_buffered(&mut self) -> Result<(), JournalError> {
        if self.buf.is_empty() {
            self.failed = false;
            return Ok(());
        }
        if let Err(e) = self.ensure_open() {
            self.failed = true;
            return Err(e);
        }
        while self.buf_written < self.buf.len() {
            let Some(file) = &self.seg.file else { break };
            let offset = self.seg.len + self.buf_written as u64;
            match file.write_at(&self.buf[self.buf_written..], offset) {
                Ok(0) => return Err(self.failure("write", io::ErrorKind::WriteZero.into())),
                Ok(n) => self.buf_written += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(self.failure("write", e)),
            }
        }
        self.seg.len += self.buf.len() as u64;
        self.buf.clear();
        self.buf_written = 0;
        self.buf_records = 0;
        self.unsynced = true;
        self.failed = false;
        Ok(())
    }

    fn sync(&mut self) -> Result<(), JournalError> {
        if !self.unsynced {
            return Ok(());
        }
        if let Err(e) = self.ensure_open() {
            self.failed = true;
            return Err(e);
        }
        if let Some(file) = &self.seg.file {
            if let Err(e) = file.sync_data() {
                return Err(self.failure("fsync", e));
            }
        }
        self.unsynced = false;
        self.last_sync = Instant::now();
        self.counters.fsyncs += 1;
        Ok(())
    }

    fn failure(&mut self, op: &'static str, error: io::Error) -> JournalError {
        self.seg.file = None;
        self.failed = true;
        JournalError::Io {
            path: self.seg.path.clone(),
            op,
            error,
        }
    }

    /// Removes the record that starts at `record_off` (the last one appended) after its
    /// write failed, cutting the file if part of it got there. False if it cannot be removed.
    fn take_back(&mut self, record_off: u64) -> bool {
        let on_disk = self.seg.len + self.buf_written as u64;
        if on_disk > record_off && truncate(&self.seg.path, record_off).is_err() {
            return false;
        }
        self.buf_records = self.buf_records.saturating_sub(1);
        if record_off >= self.seg.len {
            let keep = (record_off - self.seg.len) as usize;
            self.buf.truncate(keep);
            self.buf_written = self.buf_written.min(keep);
        } else {
            // The buffer was written (it ended with this record) and the fsync failed.
            self.seg.len = record_off;
            self.buf.clear();
            self.buf_written = 0;
        }
        true
    }
}

impl Drop for Journal {
    fn drop(&mut self) {
        let result = match self.cfg.fsync {
            FsyncPolicy::Never => self.write_buffered(),
            _ => self.flush(),
        };
        if let Err(e) = result {
            tracing::error!("{e}; buffered events are lost");
        }
    }
}

/// Cuts `path` to `len` bytes and fsyncs it.
fn truncate(path: &Path, len: u64) -> Result<(), JournalError> {
    let file = OpenOptions::new()
        .write(true)
        .open(path)
        .map_err(JournalError::io(path, "open"))?;
    file.set_len(len)
        .map_err(JournalError::io(path, "truncate"))?;
    file.sync_all().map_err(JournalError::io(path, "fsync"))
}

fn sync_dir(dir: &Path) -> Result<(), JournalError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(JournalError::io(dir, "fsync directory"))
}

#[cfg(test)]
mod tests {
    use super::testutil::{self, config, ev, open, replay, segments};
    use super::*;

    fn append_all(j: &mut Journal, evs: &[Event]) {
        for e in evs {
            j.append(e).expect("append");
        }
    }

    #[test]
    fn append_and_reopen_replays_in_order() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path().join("journal");
        let evs: Vec<Event> = (1..=100).map(|i| ev(i, &format!("h{}", i % 7))).collect();
        for policy in [
            FsyncPolicy::Always,
            FsyncPolicy::Batch(Duration::from_millis(5)),
            FsyncPolicy::Never,
        ] {
            let _ = std::fs::remove_dir_all(&dir);
            let cfg = JournalConfig {
                fsync: policy,
                ..JournalConfig::new(&dir)
            };
            let (mut j, report, seen) = open(cfg.clone());
            assert_eq!(report, ReplayReport::default());
            assert!(seen.is_empty());
            append_all(&mut j, &evs);
            j.flush().expect("flush");
            assert_eq!(j.counters().appended, 100);
            drop(j);

            let (mut j, report, seen) = open(cfg);
            assert_eq!(seen, evs, "{policy:?}");
            assert_eq!(report.events, 100);
            assert_eq!(report.last_id, 100);
            assert_eq!(report.last_ts_ms, evs[99].ts_ms, "the newest event's time");
            assert!(report.problems.is_empty(), "{:?}", report.problems);
            // Appending continues the same segment.
            j.append(&ev(101, "h")).expect("append");
            drop(j);
            assert_eq!(segments(&dir).len(), 1);
            assert_eq!(replay(&dir).0.last_id, 101);
        }
    }

    #[test]
    fn drop_writes_what_is_buffered() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let (mut j, _, _) = open(config(tmp.path()));
        append_all(&mut j, &[ev(1, "a"), ev(2, "b")]);
        drop(j);
        assert_eq!(replay(tmp.path()).1, [ev(1, "a"), ev(2, "b")]);
    }

    #[test]
    fn rotates_by_size_and_keeps_count() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let mut scratch = Vec::new();
        let rec_len = format::encode(&ev(10, "h"), &mut scratch).expect("encode") + 8;
        let cfg = JournalConfig {
            max_bytes: 3 * rec_len as u64,
            keep: 3,
            ..config(tmp.path())
        };
        let (mut j, _, _) = open(cfg.clone());
        // Ids 10..=30 all encode to the same length: 3 records per segment.
        append_all(&mut j, &(10..=21).map(|i| ev(i, "h")).collect::<Vec<_>>());
        j.flush().expect("flush");
        assert_eq!(j.counters().rotations, 3);
        let files = segments(tmp.path());
        let names: Vec<String> = files.iter().map(|p| format::file_name(p)).collect();
        assert_eq!(
            names,
            [
                "journal-000002.log",
                "journal-000003.log",
                "journal-000004.log"
            ]
        );
        for f in &files {
            assert_eq!(
                std::fs::metadata(f).expect("stat").len(),
                3 * rec_len as u64
            );
        }
        drop(j);

        let (report, seen) = replay(tmp.path());
        assert_eq!(seen, (13..=21).map(|i| ev(i, "h")).collect::<Vec<_>>());
        assert_eq!(report.last_id, 21);

        // A smaller `keep` at start-up deletes the oldest before replaying.
        let (_j, report, seen) = open(JournalConfig { keep: 2, ..cfg });
        assert_eq!(seen.first().map(|e| e.id), Some(16));
        assert_eq!(report.events, 6);
        assert_eq!(segments(tmp.path()).len(), 2);
    }

    #[test]
    fn a_record_larger_than_max_bytes_gets_its_own_segment() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let cfg = JournalConfig {
            max_bytes: 10,
            ..config(tmp.path())
        };
        let (mut j, _, _) = open(cfg);
        append_all(&mut j, &[ev(1, "h"), ev(2, "h"), ev(3, "h")]);
        drop(j);
        assert_eq!(segments(tmp.path()).len(), 3);
        assert_eq!(replay(tmp.path()).0.events, 3);
    }

    #[test]
    fn torn_tail_is_cut_and_appending_goes_on() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let evs: Vec<Event> = (1..=10).map(|i| ev(i, "h")).collect();
        let (mut j, _, _) = open(config(tmp.path()));
        append_all(&mut j, &evs);
        drop(j);
        let path = tmp.path().join("journal-000001.log");
        let full = std::fs::metadata(&path).expect("stat").len();
        let mut scratch = Vec::new();
        for e in &evs[..9] {
            format::encode(e, &mut scratch).expect("encode");
        }
        let good = scratch.len() as u64;
        let cut_len = full - 5;
        File::options()
            .write(true)
            .open(&path)
            .and_then(|f| f.set_len(cut_len))
            .expect("truncate");

        let (mut j, report, seen) = open(config(tmp.path()));
        assert_eq!(seen, evs[..9]);
        assert_eq!(report.last_id, 9);
        assert_eq!(
            report.problems,
            [format!(
                "journal-000001.log: torn record at byte {good} (power loss?); cut {} bytes, \
                 9 records before it kept",
                cut_len - good
            )]
        );
        assert_eq!(std::fs::metadata(&path).expect("stat").len(), good);

        j.append(&ev(10, "again")).expect("append");
        j.append(&ev(11, "again")).expect("append");
        drop(j);
        let (report, seen) = replay(tmp.path());
        assert!(report.problems.is_empty(), "{:?}", report.problems);
        assert_eq!(seen.len(), 11);
        assert_eq!(seen[9], ev(10, "again"));
        assert_eq!(report.last_id, 11);
    }

    #[test]
    fn corrupt_byte_in_the_middle_keeps_what_is_before() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let evs: Vec<Event> = (1..=10).map(|i| ev(i, "h")).collect();
        let (mut j, _, _) = open(config(tmp.path()));
        append_all(&mut j, &evs);
        drop(j);
        let path = tmp.path().join("journal-000001.log");
        let mut data = std::fs::read(&path).expect("read");
        let mut scratch = Vec::new();
        for e in &evs[..4] {
            format::encode(e, &mut scratch).expect("encode");
        }
        let fifth = scratch.len();
        data[fifth + 20] ^= 0xff;
        std::fs::write(&path, &data).expect("write");

        let (_j, report, seen) = open(config(tmp.path()));
        assert_eq!(seen, evs[..4]);
        assert_eq!(report.problems.len(), 1);
        assert!(
            report.problems[0].starts_with(&format!(
                "journal-000001.log: corrupt record at byte {fifth} (checksum mismatch); cut"
            )),
            "{}",
            report.problems[0]
        );
        assert_eq!(std::fs::metadata(&path).expect("stat").len(), fifth as u64);
    }

    #[test]
    fn corruption_in_an_older_segment_is_reported_and_the_file_kept() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let cfg = JournalConfig {
            max_bytes: 400,
            ..config(tmp.path())
        };
        let evs: Vec<Event> = (1..=12).map(|i| ev(i, "h")).collect();
        let (mut j, _, _) = open(cfg.clone());
        append_all(&mut j, &evs);
        drop(j);
        let files = segments(tmp.path());
        assert!(files.len() >= 3);
        let mut data = std::fs::read(&files[0]).expect("read");
        let in_first = format::scan(&data, |_| {}).records as usize;
        // Inside the JSON of the last record of the first segment.
        let len = data.len();
        data[len - 3] ^= 1;
        std::fs::write(&files[0], &data).expect("write");

        let (_j, report, seen) = open(cfg);
        let mut expected = evs.clone();
        expected.remove(in_first - 1);
        assert_eq!(seen, expected);
        assert_eq!(report.last_id, 12);
        assert_eq!(report.problems.len(), 1);
        assert!(
            report.problems[0].starts_with("journal-000001.log: corrupt record at byte ")
                && report.problems[0].ends_with(&format!(
                    "; {} records before it kept, the remaining {} bytes of this segment \
                     skipped (file left as is)",
                    in_first - 1,
                    len / in_first
                )),
            "{}",
            report.problems[0]
        );
        assert_eq!(std::fs::read(&files[0]).expect("read"), data);
    }

    #[test]
    fn garbage_segment_is_reported_not_a_panic() {
        let tmp = tempfile::tempdir().expect("tempdir");
        std::fs::write(
            tmp.path().join("journal-000007.log"),
            b"this is not a journal at all, just text\n",
        )
        .expect("write");
        let (mut j, report, seen) = open(config(tmp.path()));
        assert!(seen.is_empty());
        assert_eq!(
            report.problems,
            // "this" read as a little-endian length.
            [
                "journal-000007.log: invalid record length 1936287860 at byte 0; cut 40 bytes, \
              0 records before it kept"
            ]
        );
        j.append(&ev(1, "h")).expect("append");
        drop(j);
        assert_eq!(replay(tmp.path()).1, [ev(1, "h")]);
    }

    #[test]
    fn unreadable_segment_is_reported_and_skipped() {
        let tmp = tempfile::tempdir().expect("tempdir");
        // A directory with a segment's name cannot be read as a file.
        std::fs::create_dir(tmp.path().join("journal-000002.log")).expect("mkdir");
        let (mut j, report, _) = open(config(tmp.path()));
        assert_eq!(report.problems.len(), 1);
        assert!(
            report.problems[0].starts_with("journal-000002.log: cannot read it, skipped: "),
            "{}",
            report.problems[0]
        );
        j.append(&ev(1, "h")).expect("append");
        assert_eq!(format::file_name(j.current_segment()), "journal-000003.log");
    }

    #[test]
    fn oversized_event_is_refused_and_the_journal_goes_on() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let (mut j, _, _) = open(config(tmp.path()));
        let mut big = ev(1, "h");
        big.message = "x".repeat(MAX_PAYLOAD + 1);
        let err = j.append(&big).expect_err("too large");
        assert!(!err.is_io());
        assert!(err
            .to_string()
            .starts_with("journal: event 1 is too large ("));
        j.append(&ev(2, "h")).expect("append");
        drop(j);
        assert_eq!(replay(tmp.path()).1, [ev(2, "h")]);
    }

    #[test]
    fn io_errors_name_the_file_and_the_operation() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let file = tmp.path().join("not-a-dir");
        std::fs::write(&file, b"x").expect("write");
        let err = Journal::open(JournalConfig::new(file.join("journal")), |_| {})
            .expect_err("cannot create a dir under a file");
        assert_eq!(
            err.to_string(),
            format!(
                "journal {}: create directory failed: Not a directory (os error 20)",
                file.join("journal").display()
            )
        );
    }

    #[test]
    fn segment_that_shrank_behind_our_back_continues_in_a_new_one() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let (mut j, _, _) = open(config(tmp.path()));
        append_all(&mut j, &[ev(1, "h"), ev(2, "h")]);
        j.flush().expect("flush");
        std::fs::remove_file(j.current_segment()).expect("rm");
        j.seg.file = None; // as after a failed write
        j.append(&ev(3, "h")).expect("append");
        j.flush().expect("flush");
        drop(j);
        assert_eq!(replay(tmp.path()).1, [ev(3, "h")]);
        assert_eq!(segments(tmp.path()).len(), 1);
    }

    /// On a really full disk (tmpfs): a failed append leaves no part of its record behind
    /// (`Always`), or keeps the accepted buffer for later (`Never`); after space is freed,
    /// appending the refused event again gives a complete journal, in order.
    #[test]
    fn full_disk_append_refuses_cleanly_and_resumes() {
        for policy in [FsyncPolicy::Always, FsyncPolicy::Never] {
            let Some(fs) = testutil::Tmpfs::mount("64k") else {
                return;
            };
            let dir = fs.path().join("journal");
            let cfg = JournalConfig {
                fsync: policy,
                ..JournalConfig::new(&dir)
            };
            let (mut j, _, _) = open(cfg.clone());
            append_all(&mut j, &(1..=10).map(|i| ev(i, "h")).collect::<Vec<_>>());
            j.flush().expect("flush");
            let filler = fs.fill();

            let mut id = 11;
            let err = loop {
                assert!(id < 10_000, "{policy:?}: the disk never filled up");
                let result = j.append(&ev(id, "h")).and_then(|()| match policy {
                    FsyncPolicy::Never if id % 5 == 0 => j.flush(),
                    _ => Ok(()),
                });
                match result {
                    Ok(()) => id += 1,
                    Err(e) => break e,
                }
            };
            assert_eq!(
                err.io_error().and_then(|e| e.raw_os_error()),
                Some(libc::ENOSPC),
                "{err}"
            );
            assert!(
                err.to_string()
                    .contains("journal-000001.log: write failed: No space left on device"),
                "{err}"
            );
            if policy == FsyncPolicy::Always {
                // Nothing of the refused record is in the file.
                let data = std::fs::read(j.current_segment()).expect("read");
                let scan = format::scan(&data, |_| {});
                assert_eq!((scan.records, scan.bad), (id - 1, None));
            } else {
                // A flush failed: the events it carried stay accepted; the next one is refused.
                id += 1;
                let refused = j.append(&ev(id, "h")).expect_err("the disk is still full");
                assert!(refused.is_io());
            }

            std::fs::remove_file(&filler).expect("free space");
            append_all(
                &mut j,
                &(id..id + 5).map(|i| ev(i, "h")).collect::<Vec<_>>(),
            );
            j.flush().expect("flush after freeing space");
            drop(j);
            let (_j, report, seen) = open(cfg);
            assert!(
                report.problems.is_empty(),
                "{policy:?}: {:?}",
                report.problems
            );
            assert_eq!(
                seen,
                (1..id + 5).map(|i| ev(i, "h")).collect::<Vec<_>>(),
                "{policy:?}"
            );
        }
    }

    mod prop {
        use super::*;
        use proptest::prelude::*;

        proptest! {
            #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

            /// Whatever follows good records in a segment, opening does not panic, keeps the
            /// good records and leaves an appendable journal.
            #[test]
            fn random_tail_never_panics_open(
                good in 0u64..5,
                garbage in proptest::collection::vec(any::<u8>(), 0..600),
                as_older in any::<bool>(),
            ) {
                let tmp = tempfile::tempdir().expect("tempdir");
                let evs: Vec<Event> = (1..=good).map(|i| ev(i, "h")).collect();
                let mut data = Vec::new();
                for e in &evs {
                    format::encode(e, &mut data).expect("encode");
                }
                data.extend_from_slice(&garbage);
                std::fs::write(tmp.path().join("journal-000001.log"), &data).expect("write");
                if as_older {
                    std::fs::write(tmp.path().join("journal-000002.log"), b"").expect("write");
                }

                let (mut j, report, seen) = open(config(tmp.path()));
                prop_assert!(seen.len() >= evs.len());
                prop_assert_eq!(&seen[..evs.len()], &evs[..]);
                prop_assert!(report.problems.len() <= 1);
                j.append(&ev(100, "after")).expect("append");
                drop(j);
                let (_, again) = replay(tmp.path());
                prop_assert_eq!(again.last(), Some(&ev(100, "after")));
                prop_assert_eq!(again.len(), seen.len() + 1);
            }
        }
    }
}
