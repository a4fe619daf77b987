//! Reading the journal back for the API: filter by host, kind and time, newest first, paged
//! by event id. Only reads files, so it can run beside the writer.
//!
//! # Cost of one query
//!
//! Segments are read newest first, each from its start through one buffer of
//! [`READ_CHUNK`] bytes (records cannot be read backwards: only their start is marked), so a
//! query never holds a whole segment: its memory is at most [`QUERY_BUFFER_MAX`] bytes
//! besides the events it returns (at most `limit`, the newest matching ones of each segment
//! kept in a ring). A segment whose first event id is not below `before_id` is skipped
//! unread, so paging back through the journal does not rescan the newer segments. With a
//! host filter, a record is decoded only when its bytes contain the host's name as the
//! writer encodes it (`"host":"<name>"`), so a query for a host with few events (or none)
//! costs a CRC and a substring search per record. CPU and disk reads still grow with the
//! journal's size; the API bounds how many queries run at once.

use std::collections::VecDeque;
use std::fs::File;
use std::io::{self, Read};
use std::path::Path;

use super::format::{self, HEADER_LEN};
use super::{JournalError, MAX_PAYLOAD};
use hbd_core::event::{Event, EventKind};

/// Bytes read from a segment file at a time.
pub const READ_CHUNK: usize = 64 << 10;

/// The most memory one [`query`] uses besides the events it returns: its read buffer, which
/// holds one chunk and the unread start of a record (a record larger than a chunk, at most
/// [`MAX_PAYLOAD`], is completed in the buffer before it is decoded). Typically
/// [`READ_CHUNK`] plus a few hundred bytes.
pub const QUERY_BUFFER_MAX: usize = READ_CHUNK + HEADER_LEN + MAX_PAYLOAD;

/// Which events [`query`] returns. All conditions must hold; `None`/empty means any.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Query {
    /// Exact host name.
    pub host: Option<String>,
    /// Any of these kinds; empty for all kinds.
    pub kinds: Vec<EventKind>,
    /// Only events with `ts_ms >= since_ms`.
    pub since_ms: Option<u64>,
    /// Only events with `ts_ms <= until_ms`.
    pub until_ms: Option<u64>,
    /// Paging: only events with `id < before_id` (pass the last id of the previous page).
    pub before_id: Option<u64>,
    /// At most this many events.
    pub limit: usize,
}

impl Default for Query {
    /// Everything, 100 at a time.
    fn default() -> Self {
        Query {
            host: None,
            kinds: Vec::new(),
            since_ms: None,
            until_ms: None,
            before_id: None,
            limit: 100,
        }
    }
}

impl Query {
    pub fn matches(&self, ev: &Event) -> bool {
        self.host.as_ref().is_none_or(|h| *h == ev.host)
            && (self.kinds.is_empty() || self.kinds.contains(&ev.kind))
            && self.since_ms.is_none_or(|t| ev.ts_ms >= t)
            && self.until_ms.is_none_or(|t| ev.ts_ms <= t)
            && self.before_id.is_none_or(|id| ev.id < id)
    }
}

/// Reads the segments in `dir` newest first and returns up to `q.limit` matching events,
/// newest first. Never modifies files; a bad record ends the scan of that segment (a record
/// being written at the moment looks like that, which is fine), and a record whose checksum
/// holds but which is not an event is skipped. A missing directory, or a segment deleted by
/// rotation while we look, is simply empty. Memory: see the module doc.
pub fn query(dir: &Path, q: &Query) -> Result<Vec<Event>, JournalError> {
    let mut out = Vec::new();
    if q.limit == 0 {
        return Ok(out);
    }
    let segments = match format::list_segments(dir) {
        Ok(s) => s,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(JournalError::io(dir, "list")(e)),
    };
    let host_bytes = q.host.as_ref().and_then(|h| host_needle(h));
    let host_finder = host_bytes.as_deref().map(memchr::memmem::Finder::new);
    let mut buf = Vec::with_capacity(READ_CHUNK);
    // The newest matches of the segment being read, oldest first.
    let mut ring: VecDeque<Event> = VecDeque::new();
    for (_, path) in segments.iter().rev() {
        let mut file = match File::open(path) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(JournalError::io(path, "open")(e)),
        };
        let room = q.limit - out.len();
        ring.clear();
        let mut skip = false;
        let mut first = true;
        let scanned = for_each_payload(&mut file, &mut buf, |payload| {
            if first {
                first = false;
                // Ids only grow: a segment that starts at or above `before_id` has nothing
                // older than it.
                if let (Some(before), Some(id)) = (q.before_id, first_id(payload)) {
                    if id >= before {
                        skip = true;
                        return false;
                    }
                }
            }
            if let Some(f) = &host_finder {
                if f.find(payload).is_none() {
                    return true;
                }
            }
            if let Ok(ev) = serde_json::from_slice::<Event>(payload) {
                if q.matches(&ev) {
                    if ring.len() == room {
                        ring.pop_front();
                    }
                    ring.push_back(ev);
                }
            }
            true
        });
        match scanned {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(JournalError::io(path, "read")(e)),
        }
        if skip {
            continue;
        }
        out.extend(ring.drain(..).rev());
        if out.len() == q.limit {
            break;
        }
    }
    Ok(out)
}

/// The bytes every record of `host` contains, as `serde_json` writes them
/// (`"host":"web1"`), or `None` if the name cannot be encoded (then nothing is skipped).
fn host_needle(host: &str) -> Option<Vec<u8>> {
    let mut needle = b"\"host\":".to_vec();
    serde_json::to_writer(&mut needle, host).ok()?;
    Some(needle)
}

/// The `id` of an event's JSON without decoding the rest (it is written first).
fn first_id(payload: &[u8]) -> Option<u64> {
    #[derive(serde::Deserialize)]
    struct Id {
        id: u64,
    }
    let mut de = serde_json::Deserializer::from_slice(payload);
    serde::Deserialize::deserialize(&mut de)
        .ok()
        .map(|i: Id| i.id)
}

/// Calls `f` with the payload of every good record of a segment, in file order, until the
/// end, the first bad record (as [`format::scan`] reads them), or `f` returns false. `buf`
/// is the read buffer, reused between segments; it never grows beyond
/// [`QUERY_BUFFER_MAX`].
fn for_each_payload(
    file: &mut impl Read,
    buf: &mut Vec<u8>,
    mut f: impl FnMut(&[u8]) -> bool,
) -> io::Result<()> {
    buf.clear();
    let mut pos = 0;
    loop {
        // Whole records in the buffer.
        let mut missing = 0;
        while let Some(rest) = buf.get(pos..) {
            let (Some(len), Some(crc)) = (le_u32(rest, 0), le_u32(rest, 4)) else {
                break;
            };
            let len = len as usize;
            if len == 0 || len > MAX_PAYLOAD {
                return Ok(());
            }
            let Some(payload) = rest.get(HEADER_LEN..HEADER_LEN + len) else {
                missing = HEADER_LEN + len - rest.len();
                break;
            };
            if crc32fast::hash(payload) != crc {
                return Ok(());
            }
            if !f(payload) {
                return Ok(());
            }
            pos += HEADER_LEN + len;
        }
        // Keep the unread start of a record and read the next chunk behind it (or, for a
        // record larger than a chunk, the rest of that record).
        buf.drain(..pos);
        pos = 0;
        let want = READ_CHUNK.max(missing);
        let old = buf.len();
        buf.reserve_exact(want);
        buf.resize(old + want, 0);
        let n = read_full(file, &mut buf[old..])?;
        buf.truncate(old + n);
        if n == 0 {
            // The end, cleanly or in a torn record.
            return Ok(());
        }
    }
}

/// Reads until `out` is full or the file ends; returns the bytes read.
fn read_full(file: &mut impl Read, out: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < out.len() {
        match file.read(&mut out[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

fn le_u32(data: &[u8], at: usize) -> Option<u32> {
    let b = data.get(at..at + 4)?;
    Some(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{config, ev_at, open};
    use crate::JournalConfig;

    /// 60 events over 3 hosts and 3 kinds, one second apart, in segments of ~10 records.
    fn sample(dir: &Path) -> Vec<Event> {
        let kinds = [
            EventKind::HostUp,
            EventKind::HostDown,
            EventKind::CheckLevel,
        ];
        let evs: Vec<Event> = (1..=60u64)
            .map(|i| {
                let host = format!("host{}", i % 3);
                ev_at(i, &host, kinds[(i / 3 % 3) as usize], 1_000_000 + i * 1000)
            })
            .collect();
        let cfg = JournalConfig {
            max_bytes: 1200,
            keep: 100,
            ..config(dir)
        };
        let (mut j, _, _) = open(cfg);
        for e in &evs {
            j.append(e).expect("append");
        }
        drop(j);
        evs
    }

    fn ids(evs: &[Event]) -> Vec<u64> {
        evs.iter().map(|e| e.id).collect()
    }

    fn expect(all: &[Event], q: &Query) -> Vec<u64> {
        let mut want: Vec<u64> = all.iter().filter(|e| q.matches(e)).map(|e| e.id).collect();
        want.reverse();
        want.truncate(q.limit);
        want
    }

    #[test]
    fn filters_newest_first() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let all = sample(tmp.path());
        assert!(crate::testutil::segments(tmp.path()).len() > 3);

        let everything = query(
            tmp.path(),
            &Query {
                limit: 1000,
                ..Query::default()
            },
        )
        .expect("query");
        assert_eq!(ids(&everything), (1..=60).rev().collect::<Vec<_>>());

        let by_host = Query {
            host: Some("host1".into()),
            limit: 1000,
            ..Query::default()
        };
        let got = query(tmp.path(), &by_host).expect("query");
        assert_eq!(got.len(), 20);
        assert!(got.iter().all(|e| e.host == "host1"));
        assert_eq!(ids(&got), expect(&all, &by_host));

        let by_kinds = Query {
            kinds: vec![EventKind::HostDown, EventKind::CheckLevel],
            limit: 1000,
            ..Query::default()
        };
        let got = query(tmp.path(), &by_kinds).expect("query");
        assert!(got.iter().all(|e| e.kind != EventKind::HostUp));
        assert_eq!(ids(&got), expect(&all, &by_kinds));

        let by_time = Query {
            since_ms: Some(1_010_000),
            until_ms: Some(1_020_000),
            limit: 1000,
            ..Query::default()
        };
        let got = query(tmp.path(), &by_time).expect("query");
        assert_eq!(ids(&got), (10..=20).rev().collect::<Vec<_>>());

        let combined = Query {
            host: Some("host2".into()),
            kinds: vec![EventKind::HostUp],
            since_ms: Some(1_030_000),
            limit: 1000,
            ..Query::default()
        };
        let got = query(tmp.path(), &combined).expect("query");
        assert!(!got.is_empty());
        assert_eq!(ids(&got), expect(&all, &combined));
    }

    #[test]
    fn pages_with_before_id_and_limit() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let all = sample(tmp.path());
        let mut q = Query {
            host: Some("host0".into()),
            limit: 7,
            ..Query::default()
        };
        let mut pages = Vec::new();
        loop {
            let page = query(tmp.path(), &q).expect("query");
            assert!(page.len() <= 7);
            let Some(last) = page.last() else { break };
            q.before_id = Some(last.id);
            pages.push(ids(&page));
        }
        assert_eq!(pages.len(), 3);
        assert_eq!(pages[0], [60, 57, 54, 51, 48, 45, 42]);
        let flat: Vec<u64> = pages.concat();
        let want: Vec<u64> = all
            .iter()
            .rev()
            .filter(|e| e.host == "host0")
            .map(|e| e.id)
            .collect();
        assert_eq!(flat, want);
    }

    #[test]
    fn empty_limit_missing_dir_and_bad_tail() {
        let tmp = tempfile::tempdir().expect("tempdir");
        assert!(query(&tmp.path().join("nope"), &Query::default())
            .expect("query")
            .is_empty());
        sample(tmp.path());
        let zero = Query {
            limit: 0,
            ..Query::default()
        };
        assert!(query(tmp.path(), &zero).expect("query").is_empty());

        // A half-written record at the end of the newest segment: the rest is still found,
        // and the file is not touched.
        let newest = crate::testutil::segments(tmp.path())
            .pop()
            .expect("a segment");
        let mut data = std::fs::read(&newest).expect("read");
        data.extend_from_slice(&[200, 0, 0, 0, 1, 2, 3, 4, b'{']);
        std::fs::write(&newest, &data).expect("write");
        let got = query(tmp.path(), &Query::default()).expect("query");
        assert_eq!(ids(&got), (1..=60).rev().collect::<Vec<_>>());
        assert_eq!(std::fs::read(&newest).expect("read"), data);
    }

    /// Records larger than the read chunk, names that need escaping, and a buffer that
    /// stays within its documented bound.
    #[test]
    fn large_records_and_escaped_names_within_the_buffer_bound() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let odd = "we\"ird\\host";
        let mut evs = Vec::new();
        for i in 1..=40u64 {
            let host = if i % 4 == 0 { odd } else { "plain" };
            let mut e = ev_at(i, host, EventKind::HostUp, 1_000 + i);
            // Every fifth record is larger than a chunk (and than half the payload limit).
            if i % 5 == 0 {
                e.message = "m".repeat(READ_CHUNK * 3 + i as usize);
            }
            evs.push(e);
        }
        let cfg = JournalConfig {
            max_bytes: 4 * READ_CHUNK as u64,
            keep: 100,
            ..config(tmp.path())
        };
        let (mut j, _, _) = open(cfg);
        for e in &evs {
            j.append(e).expect("append");
        }
        drop(j);
        let q = Query {
            host: Some(odd.into()),
            limit: 1000,
            ..Query::default()
        };
        assert_eq!(
            ids(&query(tmp.path(), &q).expect("query")),
            expect(&evs, &q)
        );
        let all = Query {
            limit: 1000,
            ..Query::default()
        };
        assert_eq!(query(tmp.path(), &all).expect("query"), {
            let mut r = evs.clone();
            r.reverse();
            r
        });

        let mut buf = Vec::new();
        for path in crate::testutil::segments(tmp.path()) {
            let mut seen = 0;
            let mut file = File::open(&path).expect("open");
            for_each_payload(&mut file, &mut buf, |_| {
                seen += 1;
                true
            })
            .expect("read");
            assert!(seen > 0);
            assert!(buf.capacity() <= QUERY_BUFFER_MAX, "{}", buf.capacity());
        }
        // A host whose name is a prefix of another is not confused with it.
        let q = Query {
            host: Some("plai".into()),
            ..Query::default()
        };
        assert!(query(tmp.path(), &q).expect("query").is_empty());
    }

    /// Paging skips the newer segments unread: a record in the newest segment behind its
    /// first one is never read by a page that ends below that first id.
    #[test]
    fn before_id_skips_newer_segments() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let all = sample(tmp.path());
        let newest = crate::testutil::segments(tmp.path())
            .pop()
            .expect("a segment");
        let mut first = None;
        format::scan(&std::fs::read(&newest).expect("read"), |e| {
            first.get_or_insert(e);
        });
        let first = first.expect("an event");
        // Ids only grow, so an old id behind the first record cannot be: were the segment
        // read, this event would be on the page.
        let mut data = Vec::new();
        format::encode(&first, &mut data).expect("encode");
        format::encode(&ev_at(2, "intruder", EventKind::HostUp, 1), &mut data).expect("encode");
        std::fs::write(&newest, &data).expect("write");
        let q = Query {
            before_id: Some(first.id),
            limit: 1000,
            ..Query::default()
        };
        let got = query(tmp.path(), &q).expect("query");
        assert!(got.iter().all(|e| e.host != "intruder"));
        assert_eq!(ids(&got), expect(&all, &q));
        assert_eq!(got.first().map(|e| e.id), Some(first.id - 1));
        // Without `before_id` the segment is read, intruder and all.
        let got = query(tmp.path(), &Query::default()).expect("query");
        assert!(got.iter().any(|e| e.host == "intruder"));
    }
}
