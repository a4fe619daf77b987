//! The heartbeat wire protocol: the only contract between `hbc` and `hbd`.
//!
//! A heartbeat is one or more self-contained binary datagrams (parts), each optionally
//! signed with HMAC-SHA256. The byte layout is specified in `docs/protocol.md`; this crate
//! is its reference implementation. It knows nothing about plugins, sockets or threads:
//! [`encode`] turns a [`Heartbeat`] into datagrams, [`decode`] checks and parses one.

mod decode;
mod encode;

pub use decode::{decode, DecodeError, Packet, ReadingRef, ValueRef};
pub use encode::{encode, resend, EncodeError};

/// First two bytes of every datagram.
pub const MAGIC: [u8; 2] = *b"HB";
/// The protocol version this crate writes and reads.
pub const VERSION: u8 = 1;
/// Flag bit: a 32-byte HMAC-SHA256 trailer follows the body.
pub const FLAG_SIGNED: u8 = 0x01;
/// Length of the HMAC-SHA256 trailer.
pub const MAC_LEN: usize = 32;
/// Size of the fixed header before the host name.
pub const HEADER_LEN: usize = 36;
/// Default largest datagram hbc sends: fits a 1500-byte Ethernet MTU with IPv6 and UDP
/// headers, so heartbeats are never IP-fragmented on ordinary networks.
pub const DEFAULT_MAX_DATAGRAM: usize = 1400;
/// Longest text value or message carried; longer ones are cut at a character boundary.
pub const MAX_TEXT: usize = 1024;
/// Longest host name (a DNS name).
pub const MAX_HOST: usize = 253;

/// Alert level on the wire, with Nagios exit-code numbering.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Level {
    Ok = 0,
    Warning = 1,
    Critical = 2,
    Unknown = 3,
}

impl Level {
    pub fn from_u8(b: u8) -> Option<Level> {
        match b {
            0 => Some(Level::Ok),
            1 => Some(Level::Warning),
            2 => Some(Level::Critical),
            3 => Some(Level::Unknown),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Level::Ok => "OK",
            Level::Warning => "WARNING",
            Level::Critical => "CRITICAL",
            Level::Unknown => "UNKNOWN",
        }
    }
}

/// An owned reading value, for encoding.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    F64(f64),
    I64(i64),
    Bool(bool),
    Text(String),
}

/// One reading as it travels: key, value, unit, level, message and the threshold text
/// that produced the level.
#[derive(Debug, Clone, PartialEq)]
pub struct Reading {
    pub key: String,
    pub value: Value,
    pub unit: String,
    pub level: Level,
    pub message: String,
    pub threshold: String,
}

/// One heartbeat from one host, before it is cut into datagrams.
#[derive(Debug, Clone, PartialEq)]
pub struct Heartbeat {
    pub host: String,
    /// Identifies one run of hbc (its start time in Unix milliseconds); with `seq` it
    /// orders heartbeats across restarts of hbc.
    pub instance: u64,
    /// Counter within the instance, from 1.
    pub seq: u64,
    /// Send time, Unix milliseconds.
    pub sent_ms: u64,
    /// When the server should expect the next heartbeat.
    pub interval_ms: u32,
    /// Worst level of all readings.
    pub level: Level,
    pub readings: Vec<Reading>,
}

pub(crate) fn value_tag(v: &Value) -> u8 {
    match v {
        Value::F64(_) => 0,
        Value::I64(_) => 1,
        Value::Bool(_) => 2,
        Value::Text(_) => 3,
    }
}

/// A heartbeat host name is 1..=253 bytes of letters, digits, `.`, `-` and `_`.
/// Anything else (spaces, markup, control characters) is refused on both ends.
pub fn valid_host_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_HOST
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-' || b == b'_')
}

#[cfg(test)]
mod tests;
