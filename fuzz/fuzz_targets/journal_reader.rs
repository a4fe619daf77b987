//! hbd's journal reader: the record scanner (`hbd::journal::format::scan`) over arbitrary
//! bytes, and opening a journal whose last segment holds them (which cuts a bad tail).
//!
//! Random bytes rarely carry a matching CRC, so the first byte chooses how the rest is
//! read: as a segment as is, or as payloads separated by `\n` that are framed as records
//! with correct lengths and checksums (the JSON decoding of events is fuzzed then), the
//! last piece left as raw bytes (a torn or corrupt tail).

#![no_main]

use hbd::event::Event;
use hbd::journal::format::{self, BadKind, HEADER_LEN, MAX_PAYLOAD};
use hbd::journal::{Journal, JournalConfig};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let segment = if mode & 1 == 0 {
        rest.to_vec()
    } else {
        framed(rest)
    };
    let mut events = Vec::new();
    let scan = format::scan(&segment, |e| events.push(e));

    assert_eq!(scan.records, events.len() as u64);
    assert!(scan.good_len <= segment.len() as u64);
    match &scan.bad {
        None => assert_eq!(scan.good_len, segment.len() as u64),
        Some(bad) => {
            assert_eq!(bad.offset, scan.good_len);
            assert!(scan.good_len < segment.len() as u64);
            if let BadKind::BadLength(n) = bad.kind {
                assert!(n == 0 || n as usize > MAX_PAYLOAD);
            }
            let _ = bad.to_string();
        }
    }
    // The good prefix alone reads cleanly, to the same events.
    let good = &segment[..scan.good_len as usize];
    let mut again = Vec::new();
    let clean = format::scan(good, |e| again.push(e));
    assert_eq!(clean.bad, None);
    assert_eq!(again, events);
    // Events read back are written again to records that read back the same.
    let mut rewritten = Vec::new();
    for e in &events {
        format::encode(e, &mut rewritten).expect("a read event can be written");
    }
    let mut third = Vec::new();
    let s = format::scan(&rewritten, |e| third.push(e));
    assert_eq!((s.bad, &third), (None, &events));

    // Opening a journal whose last segment holds the bytes keeps the good records, cuts
    // the rest, and leaves a journal that opens cleanly and takes new events.
    if mode & 2 != 0 {
        check_open(&segment, &events);
    }
});

/// `\n`-separated payloads, each framed as a record with its length and CRC; the last
/// piece is appended as is.
fn framed(data: &[u8]) -> Vec<u8> {
    let mut pieces: Vec<&[u8]> = data.split(|&b| b == b'\n').collect();
    let tail = pieces.pop().unwrap_or(&[]);
    let mut out = Vec::with_capacity(data.len() + HEADER_LEN * pieces.len());
    for p in pieces {
        out.extend_from_slice(&(p.len() as u32).to_le_bytes());
        out.extend_from_slice(&crc32fast::hash(p).to_le_bytes());
        out.extend_from_slice(p);
    }
    out.extend_from_slice(tail);
    out
}

fn check_open(segment: &[u8], events: &[Event]) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join(format::segment_name(7));
    std::fs::write(&path, segment).expect("write segment");
    let cfg = JournalConfig {
        fsync: hbd::journal::FsyncPolicy::Never,
        ..JournalConfig::new(dir.path())
    };
    let mut seen = Vec::new();
    let (mut journal, report) = Journal::open(cfg.clone(), |e| seen.push(e)).expect("open");
    assert_eq!(seen, events);
    assert_eq!(report.events, events.len() as u64);
    let good_len = format::scan(segment, |_| {}).good_len;
    let cut = good_len < segment.len() as u64;
    assert_eq!(
        report.problems.len(),
        usize::from(cut),
        "{:?}",
        report.problems
    );
    let mut next = events.last().cloned().unwrap_or_else(|| Event {
        id: 0,
        ts_ms: 0,
        host: "h".into(),
        kind: hbd::event::EventKind::System,
        key: None,
        from: None,
        to: None,
        message: String::new(),
    });
    next.id = report.last_id + 1;
    journal.append(&next).expect("append after open");
    drop(journal);

    let mut reopened = Vec::new();
    let (_, report) = Journal::open(cfg, |e| reopened.push(e)).expect("reopen");
    assert!(report.problems.is_empty(), "{:?}", report.problems);
    assert_eq!(reopened.len(), events.len() + 1);
    assert_eq!(&reopened[..events.len()], events);
    assert_eq!(reopened.last(), Some(&next));
}
