//! The on-disk record format and segment naming, as pure functions over bytes and names
//! (the file I/O lives in the parent module). See the parent module doc for the format.

use std::fmt;
use std::path::{Path, PathBuf};

use hbd_core::event::Event;

/// Bytes before each payload: `u32` LE length, `u32` LE CRC-32 of the payload.
pub const HEADER_LEN: usize = 8;
/// Largest payload accepted when writing or reading; anything larger is corruption.
pub const MAX_PAYLOAD: usize = 1 << 20;

/// `journal-000042.log`.
pub fn segment_name(number: u64) -> String {
    format!("journal-{number:06}.log")
}

/// The number of a segment file name, or `None` if the name is not one of ours.
pub fn parse_segment_name(name: &str) -> Option<u64> {
    let digits = name.strip_prefix("journal-")?.strip_suffix(".log")?;
    if digits.len() < 6 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// The file name part of `path`, for messages.
pub fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| path.display().to_string())
}

/// Appends one record holding `ev` to `buf`. Returns the payload length, or the encoding
/// error; on error `buf` is left as it was.
pub fn encode(ev: &Event, buf: &mut Vec<u8>) -> Result<usize, EncodeError> {
    let start = buf.len();
    buf.extend_from_slice(&[0; HEADER_LEN]);
    if let Err(e) = serde_json::to_writer(&mut *buf, ev) {
        buf.truncate(start);
        return Err(EncodeError::Json(e));
    }
    let payload_len = buf.len() - start - HEADER_LEN;
    if payload_len > MAX_PAYLOAD {
        buf.truncate(start);
        return Err(EncodeError::TooLarge(payload_len));
    }
    let crc = crc32fast::hash(&buf[start + HEADER_LEN..]);
    // payload_len <= MAX_PAYLOAD, which fits a u32.
    buf[start..start + 4].copy_from_slice(&(payload_len as u32).to_le_bytes());
    buf[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
    Ok(payload_len)
}

#[derive(Debug)]
pub enum EncodeError {
    Json(serde_json::Error),
    TooLarge(usize),
}

/// Why a record could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BadKind {
    /// The header or the payload reaches past the end of the file.
    Torn,
    /// Length 0 with only zero bytes after it: a zero-filled tail (file size grew, data did not land).
    Zeros,
    /// Length 0 or larger than [`MAX_PAYLOAD`].
    BadLength(u32),
    /// The payload does not match its CRC.
    Checksum,
    /// The CRC matches but the payload is not an event.
    Undecodable(String),
}

/// The first unreadable record of a segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadRecord {
    /// Byte offset of the record's header; everything before it is good.
    pub offset: u64,
    pub kind: BadKind,
}

impl fmt::Display for BadRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let at = self.offset;
        match &self.kind {
            BadKind::Torn => write!(f, "torn record at byte {at} (power loss?)"),
            BadKind::Zeros => write!(f, "zero-filled tail at byte {at} (power loss?)"),
            BadKind::BadLength(len) => write!(f, "invalid record length {len} at byte {at}"),
            BadKind::Checksum => write!(f, "corrupt record at byte {at} (checksum mismatch)"),
            BadKind::Undecodable(e) => write!(f, "undecodable record at byte {at} ({e})"),
        }
    }
}

/// What [`scan`] found in a segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scan {
    /// Good records read.
    pub records: u64,
    /// Length of the good prefix: the end of the last good record.
    pub good_len: u64,
    /// The record that ended the scan, if it did not end cleanly at the end of the data.
    pub bad: Option<BadRecord>,
}

/// Reads records from the start of `data`, calling `f` for each event, until the end or the
/// first bad record.
pub fn scan(data: &[u8], mut f: impl FnMut(Event)) -> Scan {
    let mut pos = 0usize;
    let mut records = 0u64;
    let bad = loop {
        let rest = &data[pos..];
        if rest.is_empty() {
            break None;
        }
        match read_record(rest) {
            Ok((ev, len)) => {
                f(ev);
                records += 1;
                pos += len;
            }
            Err(kind) => {
                break Some(BadRecord {
                    offset: pos as u64,
                    kind,
                })
            }
        }
    };
    Scan {
        records,
        good_len: pos as u64,
        bad,
    }
}

/// Decodes the record at the start of `data`: the event and the record's total length.
fn read_record(data: &[u8]) -> Result<(Event, usize), BadKind> {
    let (Some(len_bytes), Some(crc_bytes)) = (data.get(0..4), data.get(4..8)) else {
        return Err(BadKind::Torn);
    };
    let len = u32::from_le_bytes([len_bytes[0], len_bytes[1], len_bytes[2], len_bytes[3]]);
    let crc = u32::from_le_bytes([crc_bytes[0], crc_bytes[1], crc_bytes[2], crc_bytes[3]]);
    if len == 0 {
        return Err(if data.iter().all(|&b| b == 0) {
            BadKind::Zeros
        } else {
            BadKind::BadLength(0)
        });
    }
    if len as usize > MAX_PAYLOAD {
        return Err(BadKind::BadLength(len));
    }
    let end = HEADER_LEN + len as usize;
    let Some(payload) = data.get(HEADER_LEN..end) else {
        return Err(BadKind::Torn);
    };
    if crc32fast::hash(payload) != crc {
        return Err(BadKind::Checksum);
    }
    match serde_json::from_slice::<Event>(payload) {
        Ok(ev) => Ok((ev, end)),
        Err(e) => Err(BadKind::Undecodable(e.to_string())),
    }
}

/// The segments in `dir`, oldest first. Other files are ignored.
pub fn list_segments(dir: &Path) -> std::io::Result<Vec<(u64, PathBuf)>> {
    let mut segments = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name();
        if let Some(number) = name.to_str().and_then(parse_segment_name) {
            segments.push((number, entry.path()));
        }
    }
    segments.sort_unstable_by_key(|&(number, _)| number);
    Ok(segments)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::ev;

    fn encoded(evs: &[Event]) -> Vec<u8> {
        let mut buf = Vec::new();
        for e in evs {
            encode(e, &mut buf).expect("encode");
        }
        buf
    }

    fn scan_all(data: &[u8]) -> (Vec<Event>, Scan) {
        let mut out = Vec::new();
        let s = scan(data, |e| out.push(e));
        (out, s)
    }

    #[test]
    fn names_round_trip() {
        assert_eq!(segment_name(3), "journal-000003.log");
        assert_eq!(parse_segment_name("journal-000003.log"), Some(3));
        assert_eq!(parse_segment_name("journal-1234567.log"), Some(1_234_567));
        assert_eq!(
            parse_segment_name(&segment_name(1_234_567)),
            Some(1_234_567)
        );
        for bad in [
            "journal-3.log",
            "journal-00000a.log",
            "journal-000003.log.tmp",
            "journal-+00003.log",
            "x-000003.log",
        ] {
            assert_eq!(parse_segment_name(bad), None, "{bad}");
        }
    }

    #[test]
    fn record_layout_is_length_crc_json() {
        let e = ev(7, "web1");
        let buf = encoded(std::slice::from_ref(&e));
        let json = serde_json::to_vec(&e).expect("json");
        assert_eq!(&buf[0..4], &(json.len() as u32).to_le_bytes());
        assert_eq!(&buf[4..8], &crc32fast::hash(&json).to_le_bytes());
        assert_eq!(&buf[8..], &json[..]);
    }

    #[test]
    fn scan_reads_all_good_records() {
        let evs: Vec<Event> = (1..=5).map(|i| ev(i, "h")).collect();
        let data = encoded(&evs);
        let (out, s) = scan_all(&data);
        assert_eq!(out, evs);
        assert_eq!(s.records, 5);
        assert_eq!(s.good_len, data.len() as u64);
        assert_eq!(s.bad, None);
    }

    #[test]
    fn every_cut_of_the_last_record_is_torn() {
        let evs: Vec<Event> = (1..=3).map(|i| ev(i, "h")).collect();
        let data = encoded(&evs);
        let two = encoded(&evs[..2]).len();
        for cut in two + 1..data.len() {
            let (out, s) = scan_all(&data[..cut]);
            assert_eq!(out, evs[..2], "cut at {cut}");
            assert_eq!(s.good_len, two as u64);
            assert_eq!(
                s.bad,
                Some(BadRecord {
                    offset: two as u64,
                    kind: BadKind::Torn
                })
            );
        }
    }

    #[test]
    fn bad_lengths_checksums_and_payloads_are_detected() {
        let good = encoded(&[ev(1, "h")]);
        let at = good.len() as u64;
        let bad_of = |tail: &[u8]| {
            let mut data = good.clone();
            data.extend_from_slice(tail);
            let (out, s) = scan_all(&data);
            assert_eq!(out.len(), 1);
            assert_eq!(s.good_len, at);
            s.bad.expect("a bad record").kind
        };
        assert_eq!(bad_of(&[0; 40]), BadKind::Zeros);
        assert_eq!(bad_of(&[0, 0, 0, 0, 1, 0, 0, 0]), BadKind::BadLength(0));
        let huge = (MAX_PAYLOAD as u32 + 1).to_le_bytes();
        assert_eq!(
            bad_of(&[huge[0], huge[1], huge[2], huge[3], 0, 0, 0, 0]),
            BadKind::BadLength(MAX_PAYLOAD as u32 + 1)
        );

        let mut flipped = encoded(&[ev(2, "h")]);
        let last = flipped.len() - 1;
        flipped[last] ^= 0x20;
        assert_eq!(bad_of(&flipped), BadKind::Checksum);

        let payload = b"{\"not\":\"an event\"}";
        let mut rec = (payload.len() as u32).to_le_bytes().to_vec();
        rec.extend_from_slice(&crc32fast::hash(payload).to_le_bytes());
        rec.extend_from_slice(payload);
        assert!(matches!(bad_of(&rec), BadKind::Undecodable(_)));
    }

    #[test]
    fn bad_record_sentences() {
        let b = |kind| {
            BadRecord {
                offset: 81234,
                kind,
            }
            .to_string()
        };
        assert_eq!(b(BadKind::Torn), "torn record at byte 81234 (power loss?)");
        assert_eq!(
            b(BadKind::Checksum),
            "corrupt record at byte 81234 (checksum mismatch)"
        );
        assert_eq!(
            b(BadKind::BadLength(0)),
            "invalid record length 0 at byte 81234"
        );
    }

    #[test]
    fn oversized_events_are_refused() {
        let mut e = ev(1, "h");
        e.message = "x".repeat(MAX_PAYLOAD);
        let mut buf = vec![1, 2, 3];
        assert!(matches!(
            encode(&e, &mut buf),
            Err(EncodeError::TooLarge(n)) if n > MAX_PAYLOAD
        ));
        assert_eq!(buf, [1, 2, 3]);
    }
}
