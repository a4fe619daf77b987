//! The Prometheus remote_write 1.0 wire format: a `WriteRequest` protobuf
//! (prometheus/prompb `remote.proto`, `types.proto`: only the fields 1.0 senders set),
//! snappy-compressed in the block format (not the framed one), sent with
//! `Content-Encoding: snappy`, `Content-Type: application/x-protobuf` and
//! `X-Prometheus-Remote-Write-Version: 0.1.0`. Pure functions over bytes.

use prost::Message;

/// `prometheus.WriteRequest` (field 1: timeseries; metadata is optional in 1.0).
#[derive(Clone, PartialEq, prost::Message)]
pub struct WriteRequest {
    #[prost(message, repeated, tag = "1")]
    pub timeseries: Vec<TimeSeries>,
}

/// `prometheus.TimeSeries`: labels sorted by name, samples in time order.
#[derive(Clone, PartialEq, prost::Message)]
pub struct TimeSeries {
    #[prost(message, repeated, tag = "1")]
    pub labels: Vec<Label>,
    #[prost(message, repeated, tag = "2")]
    pub samples: Vec<Sample>,
}

/// `prometheus.Label`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Label {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(string, tag = "2")]
    pub value: String,
}

/// `prometheus.Sample`: value and Unix milliseconds.
#[derive(Clone, Copy, PartialEq, prost::Message)]
pub struct Sample {
    #[prost(double, tag = "1")]
    pub value: f64,
    #[prost(int64, tag = "2")]
    pub timestamp: i64,
}

/// The HTTP headers of a remote_write request (besides authentication).
pub const HEADERS: [(&str, &str); 3] = [
    ("Content-Encoding", "snappy"),
    ("Content-Type", "application/x-protobuf"),
    ("X-Prometheus-Remote-Write-Version", "0.1.0"),
];

/// The request body: the protobuf, snappy block-compressed.
pub fn encode(req: &WriteRequest) -> Vec<u8> {
    compress(&req.encode_to_vec())
}

/// Appends a protobuf varint.
fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn varint_len(v: u64) -> usize {
    (64 - (v | 1).leading_zeros() as usize).div_ceil(7)
}

/// Bytes of a length-delimited field of `n` bytes (tag included; tags here are 1 byte).
fn field_len(n: usize) -> usize {
    1 + varint_len(n as u64) + n
}

/// A `Label` message's length (proto3: an empty string is left out, as prost does).
fn label_len(name: &str, value: &str) -> usize {
    let s = |x: &str| if x.is_empty() { 0 } else { field_len(x.len()) };
    s(name) + s(value)
}

/// A `Sample` message's length (proto3: 0.0 and 0 are left out, as prost does).
fn sample_len(s: &Sample) -> usize {
    (if s.value != 0.0 { 9 } else { 0 })
        + (if s.timestamp != 0 {
            1 + varint_len(s.timestamp as u64)
        } else {
            0
        })
}

/// Appends one `TimeSeries` as field 1 of a `WriteRequest`, the same bytes prost writes
/// for [`TimeSeries`] with these labels and samples.
pub fn put_series<'s>(
    out: &mut Vec<u8>,
    labels: &[(&str, &str)],
    samples: impl Iterator<Item = &'s Sample> + Clone,
) {
    let body: usize = labels
        .iter()
        .map(|(n, v)| field_len(label_len(n, v)))
        .sum::<usize>()
        + samples
            .clone()
            .map(|s| field_len(sample_len(s)))
            .sum::<usize>();
    out.push(0x0a);
    put_varint(out, body as u64);
    for (n, v) in labels {
        out.push(0x0a);
        put_varint(out, label_len(n, v) as u64);
        for (tag, s) in [(0x0a, n), (0x12, v)] {
            if !s.is_empty() {
                out.push(tag);
                put_varint(out, s.len() as u64);
                out.extend_from_slice(s.as_bytes());
            }
        }
    }
    for s in samples {
        out.push(0x12);
        put_varint(out, sample_len(s) as u64);
        if s.value != 0.0 {
            out.push(0x09);
            out.extend_from_slice(&s.value.to_le_bytes());
        }
        if s.timestamp != 0 {
            out.push(0x10);
            put_varint(out, s.timestamp as u64);
        }
    }
}

/// Snappy block compression of an encoded request (the remote_write body).
pub fn compress(raw: &[u8]) -> Vec<u8> {
    // Compressing a Vec cannot fail except past snappy's 4 GiB input limit, which a batch
    // (history_batch samples) never reaches; an empty body is then sent and refused.
    snap::raw::Encoder::new()
        .compress_vec(raw)
        .unwrap_or_default()
}

/// The inverse of [`encode`] (tests, the bench's receiver).
pub fn decode(body: &[u8]) -> Option<WriteRequest> {
    let raw = snap::raw::Decoder::new().decompress_vec(body).ok()?;
    WriteRequest::decode(raw.as_slice()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one() -> WriteRequest {
        WriteRequest {
            timeseries: vec![TimeSeries {
                labels: vec![
                    Label {
                        name: "__name__".into(),
                        value: "hb_reading".into(),
                    },
                    Label {
                        name: "host".into(),
                        value: "web1".into(),
                    },
                ],
                samples: vec![Sample {
                    value: 1.5,
                    timestamp: 1_700_000_000_000,
                }],
            }],
        }
    }

    /// The protobuf bytes (field numbers and wire types of prompb's `types.proto`,
    /// checked by hand: `0a` timeseries, `0a` label, `12` sample, `09` double, `10` int64).
    #[test]
    fn protobuf_bytes() {
        let hex: String = one()
            .encode_to_vec()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        expect_test::expect!["0a380a160a085f5f6e616d655f5f120a68625f72656164696e670a0c0a04686f7374120477656231121009000000000000f83f1080d095ffbc31"].assert_eq(&hex);
    }

    #[test]
    fn round_trip() {
        let body = encode(&one());
        assert_eq!(decode(&body), Some(one()));
        assert_eq!(decode(b"not snappy"), None);
    }
}
