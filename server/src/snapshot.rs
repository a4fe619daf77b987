//! Registry snapshots: the hosts (status, level, counters, history and recent events) as
//! JSON lines in `registry.jsonl`, written to a temporary file, fsynced and renamed, so a
//! crash leaves either the old or the new snapshot. At start-up the snapshot is loaded
//! and journal events newer than it are replayed on top.
//!
//! Readings are not saved: the next heartbeat of each host brings them back.

use std::io::{BufRead, BufWriter, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::registry::{Host, Registry};
use crate::state::{now_ms, State};

pub const FILE: &str = "registry.jsonl";

#[derive(Serialize, Deserialize)]
struct Header {
    version: u32,
    saved_ms: u64,
    last_event_id: u64,
}

/// Writes the snapshot, locking the registry for a thousand hosts at a time.
pub fn save(state: &State, dir: &Path) -> std::io::Result<usize> {
    let path = dir.join(FILE);
    let tmp = dir.join(format!("{FILE}.tmp"));
    let file = std::fs::File::create(&tmp)?;
    let mut w = BufWriter::new(file);
    let (slots, last_event_id) = {
        let r = state.registry();
        (r.slots(), r.last_event_id)
    };
    let header = Header {
        version: 1,
        saved_ms: now_ms(),
        last_event_id,
    };
    serde_json::to_writer(&mut w, &header)?;
    w.write_all(b"\n")?;
    let mut n = 0;
    let mut start = 0;
    while start < slots {
        let end = (start + 1000).min(slots);
        let chunk: Vec<u8> = {
            let r = state.registry();
            let mut buf = Vec::new();
            for i in start..end {
                if let Some(h) = r.slot(i) {
                    if serde_json::to_writer(&mut buf, h).is_ok() {
                        buf.push(b'\n');
                        n += 1;
                    }
                }
            }
            buf
        };
        w.write_all(&chunk)?;
        start = end;
    }
    let file = w.into_inner().map_err(|e| e.into_error())?;
    file.sync_all()?;
    std::fs::rename(&tmp, &path)?;
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(n)
}

/// What was loaded.
pub struct Loaded {
    pub hosts: usize,
    pub last_event_id: u64,
    pub problems: Vec<String>,
}

/// Loads the snapshot into `registry`. A missing file is an empty start; a damaged line
/// is skipped and reported.
pub fn load(dir: &Path, registry: &mut Registry, now: u64) -> Loaded {
    let path: PathBuf = dir.join(FILE);
    let mut out = Loaded {
        hosts: 0,
        last_event_id: 0,
        problems: Vec::new(),
    };
    let file = match std::fs::File::open(&path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return out,
        Err(e) => {
            out.problems.push(format!(
                "cannot read snapshot {}: {e}; starting from the journal only",
                path.display()
            ));
            return out;
        }
    };
    let mut lines = std::io::BufReader::new(file).lines();
    match lines
        .next()
        .map(|l| l.map(|l| serde_json::from_str::<Header>(&l)))
    {
        Some(Ok(Ok(h))) if h.version == 1 => out.last_event_id = h.last_event_id,
        _ => {
            out.problems.push(format!(
                "snapshot {} has no valid header; ignored",
                path.display()
            ));
            return out;
        }
    }
    for (i, line) in lines.enumerate() {
        match line
            .map_err(|e| e.to_string())
            .and_then(|l| serde_json::from_str::<Host>(&l).map_err(|e| e.to_string()))
        {
            Ok(h) => {
                registry.restore(h, now);
                out.hosts += 1;
            }
            Err(e) => out.problems.push(format!(
                "snapshot {} line {}: {e}; host skipped",
                path.display(),
                i + 2
            )),
        }
    }
    registry.last_event_id = registry.last_event_id.max(out.last_event_id);
    out
}
