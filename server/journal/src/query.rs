//! Reading the journal back for the API: filter by host, kind and time, newest first, paged
//! by event id. Only reads files, so it can run beside the writer.

use std::path::Path;

use super::{format, JournalError};
use hbd_core::event::{Event, EventKind};

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
/// being written at the moment looks like that, which is fine). A missing directory, or a
/// segment deleted by rotation while we look, is simply empty.
pub fn query(dir: &Path, q: &Query) -> Result<Vec<Event>, JournalError> {
    let mut out = Vec::new();
    if q.limit == 0 {
        return Ok(out);
    }
    let segments = match format::list_segments(dir) {
        Ok(s) => s,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(JournalError::io(dir, "list")(e)),
    };
    let mut matching = Vec::new();
    for (_, path) in segments.iter().rev() {
        let data = match std::fs::read(path) {
            Ok(data) => data,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(JournalError::io(path, "read")(e)),
        };
        matching.clear();
        format::scan(&data, |ev| {
            if q.matches(&ev) {
                matching.push(ev);
            }
        });
        let room = q.limit - out.len();
        out.extend(matching.drain(..).rev().take(room));
        if out.len() == q.limit {
            break;
        }
    }
    Ok(out)
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
}
