//! The durable outbox: one append-only file per channel in `<data_dir>/notify/`, so a
//! notification survives a restart or a crash from the moment it is queued until its
//! channel accepted it.
//!
//! Each line is `<crc32 hex> <json>`: `{"add": {seq, queued_ms, n}}` when a notification
//! is queued (fsynced before `push` returns: only then does it count as queued) and
//! `{"ack": seq}` once the channel accepted it (fsynced too). Opening replays the file:
//! adds without an ack are pending, in `seq` order; a torn last line (a crash mid-write)
//! or a line with a bad checksum is skipped and reported. The file is rewritten with only
//! the pending adds when it is opened and when it grows, so it stays small.
//!
//! Delivery is at least once: a crash between a channel accepting a notification and the
//! ack reaching the disk sends it again. A clean shutdown waits for the send in flight and
//! its ack, so a restart never repeats one.

use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::notification::Notification;

/// Rewrite the file once it holds this much more than the pending entries need.
const COMPACT_BYTES: u64 = 4 << 20;

/// One queued notification.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    pub seq: u64,
    pub queued_ms: u64,
    pub n: Notification,
    /// Cluster mode: the token of the cluster queue's message this entry came from (the
    /// leader acknowledges it there once the channel accepted it). Such entries are the
    /// cluster queue's to keep: opening the outbox skips them (the queue gives them to
    /// the next leader), so a node that returns never repeats them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<u64>,
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Record {
    Add(Box<Entry>),
    Ack(u64),
}

/// What opening found.
#[derive(Debug, Default)]
pub struct OpenReport {
    pub pending: usize,
    /// Entries left to the cluster queue (see [`Entry::token`]).
    pub left_to_cluster: usize,
    pub problems: Vec<String>,
}

/// A channel's queue on disk and in memory.
#[derive(Debug)]
pub struct Outbox {
    path: PathBuf,
    file: File,
    pending: VecDeque<Entry>,
    next_seq: u64,
    max: usize,
    bytes: u64,
    /// Notifications refused because the outbox was full, not yet reported.
    pub overflowed: u64,
    /// The last write error, if the file could not be written (entries are then kept
    /// in memory only, and the file is rewritten at the next chance).
    pub write_error: Option<String>,
}

fn line(r: &Record) -> Result<String, std::io::Error> {
    let json = serde_json::to_string(r).map_err(std::io::Error::other)?;
    Ok(format!("{:08x} {json}\n", crc32fast::hash(json.as_bytes())))
}

fn parse(text: &str) -> Option<Record> {
    let (crc, json) = text.split_once(' ')?;
    let crc = u32::from_str_radix(crc, 16).ok()?;
    (crc32fast::hash(json.as_bytes()) == crc)
        .then(|| serde_json::from_str(json).ok())
        .flatten()
}

fn sync_dir(dir: &Path) {
    // Makes a rename durable; best effort (not every file system supports it).
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
}

impl Outbox {
    /// Opens (or creates) `path`, keeping at most `max` pending notifications.
    pub fn open(path: &Path, max: usize) -> std::io::Result<(Outbox, OpenReport)> {
        let mut report = OpenReport::default();
        let mut pending: Vec<Entry> = Vec::new();
        let mut acked = std::collections::HashSet::new();
        let mut next_seq = 0u64;
        match File::open(path) {
            Ok(f) => {
                let mut reader = BufReader::new(f);
                let mut buf = Vec::new();
                let mut lineno = 0usize;
                loop {
                    buf.clear();
                    let n = reader.read_until(b'\n', &mut buf)?;
                    if n == 0 {
                        break;
                    }
                    lineno += 1;
                    if buf.last() != Some(&b'\n') {
                        report.problems.push(format!(
                            "{}: line {lineno} is incomplete (hbd stopped while writing it); skipped",
                            path.display()
                        ));
                        break;
                    }
                    let text = String::from_utf8_lossy(&buf[..buf.len() - 1]);
                    match parse(&text) {
                        Some(Record::Add(e)) => {
                            next_seq = next_seq.max(e.seq);
                            pending.push(*e);
                        }
                        Some(Record::Ack(seq)) => {
                            acked.insert(seq);
                        }
                        None => report.problems.push(format!(
                            "{}: line {lineno} is damaged (checksum or format); skipped",
                            path.display()
                        )),
                    }
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        pending.retain(|e| !acked.contains(&e.seq));
        let before = pending.len();
        pending.retain(|e| e.token.is_none());
        report.left_to_cluster = before - pending.len();
        pending.sort_by_key(|e| e.seq);
        pending.dedup_by_key(|e| e.seq);
        report.pending = pending.len();
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        let mut outbox = Outbox {
            path: path.to_path_buf(),
            file,
            pending: pending.into(),
            next_seq,
            max,
            bytes: 0,
            overflowed: 0,
            write_error: None,
        };
        outbox.rewrite()?;
        Ok((outbox, report))
    }

    /// Writes the pending entries to a new file and swaps it in.
    fn rewrite(&mut self) -> std::io::Result<()> {
        let tmp = self.path.with_extension("tmp");
        let mut bytes = 0u64;
        {
            let mut f = File::create(&tmp)?;
            let mut out = std::io::BufWriter::new(&mut f);
            for e in &self.pending {
                let l = line(&Record::Add(Box::new(e.clone())))?;
                bytes += l.len() as u64;
                out.write_all(l.as_bytes())?;
            }
            out.flush()?;
            drop(out);
            f.sync_all()?;
        }
        std::fs::rename(&tmp, &self.path)?;
        if let Some(dir) = self.path.parent() {
            sync_dir(dir);
        }
        self.file = OpenOptions::new().append(true).open(&self.path)?;
        self.bytes = bytes;
        self.write_error = None;
        Ok(())
    }

    fn append(&mut self, text: &str) -> std::io::Result<()> {
        if self.write_error.is_some() {
            // The file may end in a torn line: rewrite it whole first.
            self.rewrite()?;
        }
        self.file.write_all(text.as_bytes())?;
        self.file.sync_data()?;
        self.bytes += text.len() as u64;
        Ok(())
    }

    /// Queues notifications durably (one fsync for all). Returns how many were queued;
    /// the rest did not fit (`max`) and are counted in `overflowed`. A write error keeps
    /// them in memory and is returned after queuing.
    pub fn push(&mut self, ns: Vec<Notification>, now_ms: u64) -> Result<usize, std::io::Error> {
        self.push_tagged(ns.into_iter().map(|n| (n, None)), now_ms)
    }

    /// [`Outbox::push`] with each notification's cluster queue token.
    pub fn push_tagged(
        &mut self,
        ns: impl IntoIterator<Item = (Notification, Option<u64>)>,
        now_ms: u64,
    ) -> Result<usize, std::io::Error> {
        let mut text = String::new();
        let mut added = 0;
        for (n, token) in ns {
            if self.pending.len() >= self.max {
                self.overflowed += 1;
                continue;
            }
            self.next_seq += 1;
            let e = Entry {
                seq: self.next_seq,
                queued_ms: now_ms,
                n,
                token,
            };
            text.push_str(&line(&Record::Add(Box::new(e.clone())))?);
            self.pending.push_back(e);
            added += 1;
        }
        if text.is_empty() {
            return Ok(0);
        }
        match self.append(&text) {
            Ok(()) => Ok(added),
            Err(e) => {
                self.write_error = Some(format!("cannot write {}: {e}", self.path.display()));
                Err(e)
            }
        }
    }

    /// Changes the bound (a reload of `notify_outbox_max`); what is already queued stays,
    /// even beyond a lower bound.
    pub fn set_max(&mut self, max: usize) {
        self.max = max;
    }

    /// The oldest pending notification.
    pub fn head(&self) -> Option<&Entry> {
        self.pending.front()
    }

    pub fn len(&self) -> usize {
        self.pending.len()
    }

    pub fn is_empty(&self) -> bool {
        self.pending.is_empty()
    }

    /// Removes `seq` (the head) after its channel accepted it.
    pub fn ack(&mut self, seq: u64) -> Result<(), std::io::Error> {
        if self.pending.front().map(|e| e.seq) != Some(seq) {
            return Ok(());
        }
        self.pending.pop_front();
        // Rewrite when that is cheap (nothing pending) or the file is mostly dead weight.
        let compact = (self.pending.is_empty() && self.bytes > 64 << 10)
            || (self.bytes > COMPACT_BYTES && self.bytes > 4 * self.pending_bytes_estimate());
        let result = if compact {
            self.rewrite()
        } else {
            self.append(&line(&Record::Ack(seq))?)
        };
        if let Err(e) = &result {
            self.write_error = Some(format!("cannot write {}: {e}", self.path.display()));
        }
        result
    }

    fn pending_bytes_estimate(&self) -> u64 {
        // About 1 KB per notification on disk.
        self.pending.len() as u64 * 1024
    }

    /// Drops the pending entries the cluster queue gave (this node stopped leading: the
    /// queue gives them to the next leader), the head too: a send in flight is not
    /// recorded when it ends (at least once: it may then be sent by both). Returns their
    /// tokens.
    pub fn drop_tagged(&mut self) -> Vec<u64> {
        let mut dropped = Vec::new();
        self.pending.retain(|e| match e.token {
            Some(t) => {
                dropped.push(t);
                false
            }
            None => true,
        });
        if !dropped.is_empty() {
            if let Err(e) = self.rewrite() {
                self.write_error = Some(format!("cannot write {}: {e}", self.path.display()));
            }
        }
        dropped
    }

    /// Makes sure everything written is on disk.
    pub fn sync(&mut self) -> std::io::Result<()> {
        if self.write_error.is_some() {
            self.rewrite()
        } else {
            self.file.sync_all()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::notification::Kind;
    use hbd_core::registry::LevelName;

    fn n(id: &str) -> Notification {
        Notification {
            id: id.into(),
            kind: Kind::Down,
            host: "h".into(),
            key: None,
            state: "DOWN".into(),
            from: None,
            level: LevelName::Critical,
            since_ms: 0,
            ts_ms: 0,
            message: String::new(),
            checks: Vec::new(),
            flap_percent: None,
            items: Vec::new(),
        }
    }

    fn ids(o: &Outbox) -> Vec<String> {
        o.pending.iter().map(|e| e.n.id.clone()).collect()
    }

    #[test]
    fn pending_survives_reopen_in_order_without_acked() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("email.outbox");
        let (mut o, r) = Outbox::open(&path, 100).expect("open");
        assert_eq!(r.pending, 0);
        assert_eq!(o.push(vec![n("a"), n("b"), n("c")], 1).expect("push"), 3);
        let seq = o.head().expect("head").seq;
        o.ack(seq).expect("ack");
        o.push(vec![n("d")], 2).expect("push");
        drop(o);
        let (mut o, r) = Outbox::open(&path, 100).expect("reopen");
        assert_eq!((r.pending, r.problems.len()), (3, 0));
        assert_eq!(ids(&o), ["b", "c", "d"]);
        // Sequence numbers keep growing after a reopen.
        o.push(vec![n("e")], 3).expect("push");
        assert!(o.pending.iter().map(|e| e.seq).is_sorted());
        assert_eq!(o.pending.back().map(|e| e.seq), Some(5));
    }

    #[test]
    fn torn_and_damaged_lines_are_skipped_and_reported() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("x.outbox");
        let (mut o, _) = Outbox::open(&path, 100).expect("open");
        o.push(vec![n("a"), n("b")], 1).expect("push");
        drop(o);
        let mut text = std::fs::read_to_string(&path).expect("read");
        // Damage the first line's JSON, then append half a line.
        text = text.replacen("\"a\"", "\"A\"", 1);
        text.push_str("0000 {\"add\":");
        std::fs::write(&path, text).expect("write");
        let (o, r) = Outbox::open(&path, 100).expect("reopen");
        assert_eq!(ids(&o), ["b"]);
        assert_eq!(r.problems.len(), 2, "{:?}", r.problems);
        assert!(r.problems[0].contains("line 1 is damaged"));
        assert!(r.problems[1].contains("incomplete"));
        // Opening rewrote the file clean.
        let (_, r) = Outbox::open(&path, 100).expect("reopen");
        assert!(r.problems.is_empty());
    }

    #[test]
    fn bounded_and_compacted() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("x.outbox");
        let (mut o, _) = Outbox::open(&path, 2).expect("open");
        assert_eq!(o.push(vec![n("a"), n("b"), n("c")], 1).expect("push"), 2);
        assert_eq!(o.overflowed, 1);
        for _ in 0..2 {
            let s = o.head().expect("head").seq;
            o.ack(s).expect("ack");
        }
        assert!(o.is_empty());
        // Many rounds keep the file small.
        for i in 0..200 {
            o.push(vec![n(&format!("{i}"))], 1).expect("push");
            let s = o.head().expect("head").seq;
            o.ack(s).expect("ack");
        }
        let size = std::fs::metadata(&path).expect("meta").len();
        assert!(size < 128 << 10, "{size}");
        o.ack(12345).expect("not the head: ignored");
    }

    #[test]
    fn entries_from_the_cluster_queue_are_left_to_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("email.outbox");
        let (mut o, _) = Outbox::open(&path, 10).expect("open");
        o.push(vec![n("local1")], 1).expect("push");
        o.push_tagged(vec![(n("queued1"), Some(7)), (n("queued2"), Some(8))], 2)
            .expect("push");
        o.push(vec![n("local2")], 3).expect("push");
        assert_eq!(ids(&o), ["local1", "queued1", "queued2", "local2"]);
        // Leadership lost: the queue's entries go, local ones stay in order.
        assert_eq!(o.drop_tagged(), vec![7, 8]);
        assert_eq!(ids(&o), ["local1", "local2"]);
        o.push_tagged(vec![(n("queued3"), Some(9))], 4)
            .expect("push");
        drop(o);
        // A restart (a kill) leaves them to the queue too.
        let (o, report) = Outbox::open(&path, 10).expect("reopen");
        assert_eq!(ids(&o), ["local1", "local2"]);
        assert_eq!((report.pending, report.left_to_cluster), (2, 1));
    }
}
