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
    let raw = req.encode_to_vec();
    // Compressing a Vec cannot fail except past snappy's 4 GiB input limit, which a batch
    // (history_batch samples) never reaches; an empty body is then sent and refused.
    snap::raw::Encoder::new()
        .compress_vec(&raw)
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
