//! Encoding a heartbeat into one or more signed datagrams no larger than a limit.

use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::{
    valid_host_name, value_tag, Heartbeat, Reading, Value, FLAG_SIGNED, HEADER_LEN, MAC_LEN, MAGIC,
    MAX_TEXT, VERSION,
};

/// Why a heartbeat could not be encoded.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum EncodeError {
    #[error("host name {0:?} is not a valid DNS-style name (letters, digits, '.', '-', '_'; 1-253 bytes)")]
    BadHostName(String),
    #[error("datagram size limit {0} is too small (minimum 1200)")]
    LimitTooSmall(usize),
    #[error("reading key {0:?} is empty or longer than 255 bytes")]
    BadKey(String),
    #[error("heartbeat needs {0} datagrams; at most 255 are allowed")]
    TooManyParts(usize),
}

/// Cuts `s` to at most `max` bytes at a character boundary.
fn clip(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

fn reading_len(r: &Reading) -> usize {
    let value = match &r.value {
        Value::F64(_) | Value::I64(_) => 8,
        Value::Bool(_) => 1,
        Value::Text(t) => 2 + clip(t, MAX_TEXT).len(),
    };
    1 + r.key.len()
        + 1
        + value
        + 1
        + clip(&r.unit, 255).len()
        + 1
        + 2
        + clip(&r.message, MAX_TEXT).len()
        + 1
        + clip(&r.threshold, 255).len()
}

fn put_reading(out: &mut Vec<u8>, r: &Reading) {
    out.push(r.key.len() as u8);
    out.extend_from_slice(r.key.as_bytes());
    out.push(value_tag(&r.value));
    match &r.value {
        Value::F64(v) => out.extend_from_slice(&v.to_be_bytes()),
        Value::I64(v) => out.extend_from_slice(&v.to_be_bytes()),
        Value::Bool(v) => out.push(u8::from(*v)),
        Value::Text(t) => {
            let t = clip(t, MAX_TEXT);
            out.extend_from_slice(&(t.len() as u16).to_be_bytes());
            out.extend_from_slice(t.as_bytes());
        }
    }
    let unit = clip(&r.unit, 255);
    out.push(unit.len() as u8);
    out.extend_from_slice(unit.as_bytes());
    out.push(r.level as u8);
    let msg = clip(&r.message, MAX_TEXT);
    out.extend_from_slice(&(msg.len() as u16).to_be_bytes());
    out.extend_from_slice(msg.as_bytes());
    let thr = clip(&r.threshold, 255);
    out.push(thr.len() as u8);
    out.extend_from_slice(thr.as_bytes());
}

/// Encodes `hb` into datagrams of at most `max_size` bytes each (see `docs/protocol.md`,
/// "Splitting"). Readings are packed in order; every part repeats the header so each
/// datagram stands alone. With a `secret`, every part carries its own HMAC-SHA256.
pub fn encode(
    hb: &Heartbeat,
    secret: Option<&[u8]>,
    max_size: usize,
) -> Result<Vec<Vec<u8>>, EncodeError> {
    if !valid_host_name(&hb.host) {
        return Err(EncodeError::BadHostName(hb.host.clone()));
    }
    if max_size < 1200 {
        return Err(EncodeError::LimitTooSmall(max_size));
    }
    let fixed = HEADER_LEN + hb.host.len() + 2 + if secret.is_some() { MAC_LEN } else { 0 };
    let room = max_size - fixed;

    // Plan the parts: ranges of readings that fit.
    let mut ranges: Vec<(usize, usize)> = Vec::new();
    let mut start = 0;
    let mut used = 0;
    for (i, r) in hb.readings.iter().enumerate() {
        if r.key.is_empty() || r.key.len() > 255 {
            return Err(EncodeError::BadKey(r.key.clone()));
        }
        // A single reading never exceeds MAX_TEXT*2 + 3*255 + 16 bytes < room (1200 min
        // limit minus header), except for pathological limits; clip its message if so.
        let len = reading_len(r).min(room);
        if used + len > room && i > start {
            ranges.push((start, i));
            start = i;
            used = 0;
        }
        used += len;
    }
    ranges.push((start, hb.readings.len()));
    if ranges.len() > 255 {
        return Err(EncodeError::TooManyParts(ranges.len()));
    }

    let parts = ranges.len() as u8;
    let mut out = Vec::with_capacity(ranges.len());
    for (index, (a, b)) in ranges.into_iter().enumerate() {
        let mut buf = Vec::with_capacity(max_size);
        buf.extend_from_slice(&MAGIC);
        buf.push(VERSION);
        buf.push(if secret.is_some() { FLAG_SIGNED } else { 0 });
        buf.extend_from_slice(&hb.instance.to_be_bytes());
        buf.extend_from_slice(&hb.seq.to_be_bytes());
        buf.extend_from_slice(&hb.sent_ms.to_be_bytes());
        buf.extend_from_slice(&hb.interval_ms.to_be_bytes());
        buf.push(hb.level as u8);
        buf.push(index as u8);
        buf.push(parts);
        buf.push(hb.host.len() as u8);
        buf.extend_from_slice(hb.host.as_bytes());
        buf.extend_from_slice(&((b - a) as u16).to_be_bytes());
        for r in &hb.readings[a..b] {
            let before = buf.len();
            put_reading(&mut buf, r);
            // Only a reading alone in its part can overflow (huge texts and a small
            // limit); drop its message and text rather than send an oversized datagram.
            if buf.len() + fixed - HEADER_LEN - hb.host.len() - 2 > max_size {
                buf.truncate(before);
                let mut slim = r.clone();
                slim.message = String::from("(message too long for a datagram)");
                if let Value::Text(_) = slim.value {
                    slim.value = Value::Text(String::new());
                }
                put_reading(&mut buf, &slim);
            }
        }
        if let Some(key) = secret {
            buf.extend_from_slice(&sign(key, &buf));
        }
        out.push(buf);
    }
    Ok(out)
}

/// The same datagram sent again later (a *refresh*, docs/protocol.md "Refreshes"): its
/// bytes with `sent_ms` replaced and, when `secret` is given, signed again. A server that
/// has the part already takes the newer `sent_ms` as a sign of life; one that lost the
/// original applies the copy like the original. `datagram` must come from [`encode`]
/// with the same `secret` (a datagram shorter than a header is returned unchanged).
pub fn resend(datagram: &[u8], sent_ms: u64, secret: Option<&[u8]>) -> Vec<u8> {
    let mut out = datagram.to_vec();
    if out.len() < HEADER_LEN {
        return out;
    }
    out[20..28].copy_from_slice(&sent_ms.to_be_bytes());
    if let Some(key) = secret {
        if out.len() >= HEADER_LEN + MAC_LEN {
            let body = out.len() - MAC_LEN;
            let mac = sign(key, &out[..body]);
            out[body..].copy_from_slice(&mac);
        }
    }
    out
}

/// HMAC-SHA256 of `body` under `key`.
pub(crate) fn sign(key: &[u8], body: &[u8]) -> [u8; MAC_LEN] {
    // new_from_slice only fails for fixed-size-key MACs; HMAC takes any key length.
    let mut mac = match Hmac::<Sha256>::new_from_slice(key) {
        Ok(m) => m,
        Err(_) => unreachable!("HMAC accepts keys of any length"),
    };
    mac.update(body);
    mac.finalize().into_bytes().into()
}
