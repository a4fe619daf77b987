//! Every reason hbd drops a datagram or heartbeat: one type that names, counts and
//! documents each (vector's `ComponentEventsDropped`). `docs/protocol.md` lists every
//! variant by its [`DropReason::as_str`] name (checked by the tidy test), and `/metrics`
//! exports one `hbd_dropped_total{reason}` series per variant.

use std::sync::atomic::{AtomicU64, Ordering};

use hb_proto::DecodeError;

use crate::registry::Reject;

/// Why a datagram was not applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DropReason {
    /// Shorter than a header.
    Short,
    /// Does not start with the protocol's magic bytes.
    BadMagic,
    /// A protocol version this hbd does not speak.
    BadVersion,
    /// Flags this version does not define.
    BadFlags,
    /// Not signed although hbd has a `secret`.
    Unsigned,
    /// The HMAC does not match (wrong secret or altered datagram).
    BadSignature,
    /// A field runs past the end of the datagram.
    Truncated,
    /// Bytes after the last reading.
    TrailingBytes,
    /// A text that is not UTF-8.
    BadUtf8,
    /// A host name outside the allowed characters or length.
    BadHostName,
    /// A level byte that is not OK/WARNING/CRITICAL/UNKNOWN.
    BadLevel,
    /// An unknown value type, or a value that is not of its type.
    BadValueType,
    /// Part number not below the part count.
    BadPart,
    /// A reading with an empty key.
    EmptyKey,
    /// Sequence not newer than what was seen (duplicate, reordered or replayed).
    Replayed,
    /// With a secret: `sent_ms` further than `time_window` from hbd's clock.
    OutsideTimeWindow,
    /// A new host while the registry holds `max_hosts`.
    HostCap,
    /// Larger than `max_heartbeat_bytes`.
    Oversized,
    /// Without a secret: the source address sent more than `udp_rate_limit` allows.
    RateLimited,
    /// A heartbeat of more than `MAX_PARTS` datagrams.
    TooManyParts,
    /// The host sent more readings per second than `host_reading_rate` allows.
    HostRateLimited,
}

impl DropReason {
    /// Every variant, in the order of the counters.
    pub const ALL: [DropReason; 21] = [
        DropReason::Short,
        DropReason::BadMagic,
        DropReason::BadVersion,
        DropReason::BadFlags,
        DropReason::Unsigned,
        DropReason::BadSignature,
        DropReason::Truncated,
        DropReason::TrailingBytes,
        DropReason::BadUtf8,
        DropReason::BadHostName,
        DropReason::BadLevel,
        DropReason::BadValueType,
        DropReason::BadPart,
        DropReason::EmptyKey,
        DropReason::Replayed,
        DropReason::OutsideTimeWindow,
        DropReason::HostCap,
        DropReason::Oversized,
        DropReason::RateLimited,
        DropReason::TooManyParts,
        DropReason::HostRateLimited,
    ];

    /// The stable name used in `/metrics`, logs and the docs.
    pub fn as_str(self) -> &'static str {
        match self {
            DropReason::Short => "short",
            DropReason::BadMagic => "bad_magic",
            DropReason::BadVersion => "bad_version",
            DropReason::BadFlags => "bad_flags",
            DropReason::Unsigned => "unsigned",
            DropReason::BadSignature => "bad_signature",
            DropReason::Truncated => "truncated",
            DropReason::TrailingBytes => "trailing_bytes",
            DropReason::BadUtf8 => "bad_utf8",
            DropReason::BadHostName => "bad_host_name",
            DropReason::BadLevel => "bad_level",
            DropReason::BadValueType => "bad_value_type",
            DropReason::BadPart => "bad_part",
            DropReason::EmptyKey => "empty_key",
            DropReason::Replayed => "replayed",
            DropReason::OutsideTimeWindow => "outside_time_window",
            DropReason::HostCap => "host_cap",
            DropReason::Oversized => "oversized",
            DropReason::RateLimited => "rate_limited",
            DropReason::TooManyParts => "too_many_parts",
            DropReason::HostRateLimited => "host_rate_limited",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

impl std::fmt::Display for DropReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl From<&DecodeError> for DropReason {
    fn from(e: &DecodeError) -> Self {
        match e {
            DecodeError::Short => DropReason::Short,
            DecodeError::BadMagic => DropReason::BadMagic,
            DecodeError::BadVersion(_) => DropReason::BadVersion,
            DecodeError::BadFlags(_) => DropReason::BadFlags,
            DecodeError::Unsigned => DropReason::Unsigned,
            DecodeError::BadSignature => DropReason::BadSignature,
            DecodeError::Truncated => DropReason::Truncated,
            DecodeError::TrailingBytes(_) => DropReason::TrailingBytes,
            DecodeError::BadUtf8 => DropReason::BadUtf8,
            DecodeError::BadHostName => DropReason::BadHostName,
            DecodeError::BadLevel(_) => DropReason::BadLevel,
            // Counted with the unknown types: a value that is not one of its type.
            DecodeError::BadValueType(_) | DecodeError::BadBool(_) => DropReason::BadValueType,
            DecodeError::BadPart(_, _) => DropReason::BadPart,
            DecodeError::EmptyKey => DropReason::EmptyKey,
        }
    }
}

impl From<Reject> for DropReason {
    fn from(r: Reject) -> Self {
        match r {
            Reject::Replayed => DropReason::Replayed,
            Reject::OutsideWindow => DropReason::OutsideTimeWindow,
            Reject::HostCap => DropReason::HostCap,
            Reject::TooManyParts => DropReason::TooManyParts,
            Reject::HostRateLimited => DropReason::HostRateLimited,
        }
    }
}

/// One counter per [`DropReason`].
#[derive(Debug, Default)]
pub struct DropCounters([AtomicU64; DropReason::ALL.len()]);

impl DropCounters {
    pub fn add(&self, reason: DropReason) {
        self.0[reason.index()].fetch_add(1, Ordering::Relaxed);
    }

    /// Every reason with its count, in [`DropReason::ALL`] order.
    pub fn iter(&self) -> impl Iterator<Item = (DropReason, u64)> + '_ {
        DropReason::ALL
            .iter()
            .zip(self.0.iter())
            .map(|(r, c)| (*r, c.load(Ordering::Relaxed)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_is_in_declaration_order_and_names_are_unique() {
        for (i, r) in DropReason::ALL.iter().enumerate() {
            assert_eq!(r.index(), i, "{r}");
        }
        let mut names: Vec<_> = DropReason::ALL.iter().map(|r| r.as_str()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), DropReason::ALL.len());
    }

    /// docs/protocol.md lists every reason (its table is what operators read).
    #[test]
    fn every_reason_is_documented() {
        let doc = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../docs/protocol.md"
        ))
        .expect("docs/protocol.md reads");
        let missing: Vec<_> = DropReason::ALL
            .iter()
            .filter(|r| !doc.contains(&format!("| `{}` |", r.as_str())))
            .collect();
        assert!(missing.is_empty(), "not in docs/protocol.md: {missing:?}");
    }

    #[test]
    fn counters_count_by_reason() {
        let c = DropCounters::default();
        c.add(DropReason::Replayed);
        c.add(DropReason::Replayed);
        c.add(DropReason::Oversized);
        let got: Vec<_> = c.iter().filter(|(_, n)| *n > 0).collect();
        assert_eq!(got, [(DropReason::Replayed, 2), (DropReason::Oversized, 1)]);
    }
}
