//! Decoding and verifying one datagram, without copying its strings.

use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::{valid_host_name, Level, FLAG_SIGNED, HEADER_LEN, MAC_LEN, MAGIC, VERSION};

/// Why a datagram was refused. Each variant is a counter on the server.
#[derive(Debug, thiserror::Error, PartialEq, Eq, Clone, Copy)]
pub enum DecodeError {
    #[error("datagram is shorter than the header")]
    Short,
    #[error("datagram does not start with the HB magic bytes")]
    BadMagic,
    #[error("protocol version {0} is not supported (this build reads version 1)")]
    BadVersion(u8),
    #[error("unknown flag bits {0:#04x}")]
    BadFlags(u8),
    #[error("datagram is not signed but a secret is configured")]
    Unsigned,
    #[error("HMAC signature does not match (wrong secret or altered datagram)")]
    BadSignature,
    #[error("datagram ends in the middle of a field")]
    Truncated,
    #[error("datagram has {0} bytes after the last reading")]
    TrailingBytes(usize),
    #[error("text field is not valid UTF-8")]
    BadUtf8,
    #[error("host name is not a valid DNS-style name")]
    BadHostName,
    #[error("level byte {0} is not 0-3")]
    BadLevel(u8),
    #[error("value type {0} is unknown")]
    BadValueType(u8),
    #[error("bool value byte {0} is not 0 or 1")]
    BadBool(u8),
    #[error("part {0} of {1} is impossible")]
    BadPart(u8, u8),
    #[error("reading key is empty")]
    EmptyKey,
}

impl DecodeError {
    /// A stable short name, for counters and logs.
    pub fn reason(&self) -> &'static str {
        match self {
            DecodeError::Short => "short",
            DecodeError::BadMagic => "bad_magic",
            DecodeError::BadVersion(_) => "bad_version",
            DecodeError::BadFlags(_) => "bad_flags",
            DecodeError::Unsigned => "unsigned",
            DecodeError::BadSignature => "bad_signature",
            DecodeError::Truncated => "truncated",
            DecodeError::TrailingBytes(_) => "trailing_bytes",
            DecodeError::BadUtf8 => "bad_utf8",
            DecodeError::BadHostName => "bad_host_name",
            DecodeError::BadLevel(_) => "bad_level",
            // Counted with the unknown types: a value that is not one of its type.
            DecodeError::BadValueType(_) | DecodeError::BadBool(_) => "bad_value_type",
            DecodeError::BadPart(_, _) => "bad_part",
            DecodeError::EmptyKey => "empty_key",
        }
    }
}

/// A reading value borrowed from the datagram.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ValueRef<'a> {
    F64(f64),
    I64(i64),
    Bool(bool),
    Text(&'a str),
}

/// A reading borrowed from the datagram.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ReadingRef<'a> {
    pub key: &'a str,
    pub value: ValueRef<'a>,
    pub unit: &'a str,
    pub level: Level,
    pub message: &'a str,
    pub threshold: &'a str,
}

/// One decoded, verified datagram.
#[derive(Debug, Clone, PartialEq)]
pub struct Packet<'a> {
    pub signed: bool,
    pub instance: u64,
    pub seq: u64,
    pub sent_ms: u64,
    pub interval_ms: u32,
    pub level: Level,
    pub part: u8,
    pub parts: u8,
    pub host: &'a str,
    pub readings: Vec<ReadingRef<'a>>,
}

struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        let end = self.pos.checked_add(n).ok_or(DecodeError::Truncated)?;
        let s = self.buf.get(self.pos..end).ok_or(DecodeError::Truncated)?;
        self.pos = end;
        Ok(s)
    }
    fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(self.take(1)?[0])
    }
    fn u16(&mut self) -> Result<u16, DecodeError> {
        let b = self.take(2)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }
    fn array8(&mut self) -> Result<[u8; 8], DecodeError> {
        let mut a = [0u8; 8];
        a.copy_from_slice(self.take(8)?);
        Ok(a)
    }
    fn str(&mut self, n: usize) -> Result<&'a str, DecodeError> {
        std::str::from_utf8(self.take(n)?).map_err(|_| DecodeError::BadUtf8)
    }
    fn level(&mut self) -> Result<Level, DecodeError> {
        let b = self.u8()?;
        Level::from_u8(b).ok_or(DecodeError::BadLevel(b))
    }
}

/// Checks and parses one datagram. With a `secret`, the datagram must be signed with it;
/// without one, a signature is not checked (the server cannot) and the packet reports
/// `signed: true` only as information.
pub fn decode<'a>(data: &'a [u8], secret: Option<&[u8]>) -> Result<Packet<'a>, DecodeError> {
    if data.len() < HEADER_LEN {
        return Err(DecodeError::Short);
    }
    if data[0..2] != MAGIC {
        return Err(DecodeError::BadMagic);
    }
    if data[2] != VERSION {
        return Err(DecodeError::BadVersion(data[2]));
    }
    let flags = data[3];
    if flags & !FLAG_SIGNED != 0 {
        return Err(DecodeError::BadFlags(flags));
    }
    let signed = flags & FLAG_SIGNED != 0;
    let body = if signed {
        if data.len() < HEADER_LEN + MAC_LEN {
            return Err(DecodeError::Short);
        }
        let (body, mac) = data.split_at(data.len() - MAC_LEN);
        if let Some(key) = secret {
            let mut m = match Hmac::<Sha256>::new_from_slice(key) {
                Ok(m) => m,
                Err(_) => unreachable!("HMAC accepts keys of any length"),
            };
            m.update(body);
            m.verify_slice(mac).map_err(|_| DecodeError::BadSignature)?;
        }
        body
    } else {
        if secret.is_some() {
            return Err(DecodeError::Unsigned);
        }
        data
    };

    let mut c = Cursor { buf: body, pos: 4 };
    let instance = u64::from_be_bytes(c.array8()?);
    let seq = u64::from_be_bytes(c.array8()?);
    let sent_ms = u64::from_be_bytes(c.array8()?);
    let iv = c.take(4)?;
    let interval_ms = u32::from_be_bytes([iv[0], iv[1], iv[2], iv[3]]);
    let level = c.level()?;
    let part = c.u8()?;
    let parts = c.u8()?;
    if parts == 0 || part >= parts {
        return Err(DecodeError::BadPart(part, parts));
    }
    let host_len = c.u8()? as usize;
    let host = c.str(host_len)?;
    if !valid_host_name(host) {
        return Err(DecodeError::BadHostName);
    }
    let count = c.u16()? as usize;
    // Each reading takes at least 8 bytes: never reserve more than the datagram can hold.
    let mut readings = Vec::with_capacity(count.min(body.len() / 8));
    for _ in 0..count {
        let klen = c.u8()? as usize;
        if klen == 0 {
            return Err(DecodeError::EmptyKey);
        }
        let key = c.str(klen)?;
        let tag = c.u8()?;
        let value = match tag {
            0 => ValueRef::F64(f64::from_be_bytes(c.array8()?)),
            1 => ValueRef::I64(i64::from_be_bytes(c.array8()?)),
            // Only 0 and 1 (docs/protocol.md), so every packet has one encoding (the
            // fuzz target's round trip found other bytes read as true).
            2 => match c.u8()? {
                b @ 0..=1 => ValueRef::Bool(b == 1),
                b => return Err(DecodeError::BadBool(b)),
            },
            3 => {
                let n = c.u16()? as usize;
                ValueRef::Text(c.str(n)?)
            }
            other => return Err(DecodeError::BadValueType(other)),
        };
        let ulen = c.u8()? as usize;
        let unit = c.str(ulen)?;
        let level = c.level()?;
        let mlen = c.u16()? as usize;
        let message = c.str(mlen)?;
        let tlen = c.u8()? as usize;
        let threshold = c.str(tlen)?;
        readings.push(ReadingRef {
            key,
            value,
            unit,
            level,
            message,
            threshold,
        });
    }
    if c.pos != body.len() {
        return Err(DecodeError::TrailingBytes(body.len() - c.pos));
    }
    Ok(Packet {
        signed,
        instance,
        seq,
        sent_ms,
        interval_ms,
        level,
        part,
        parts,
        host,
        readings,
    })
}
