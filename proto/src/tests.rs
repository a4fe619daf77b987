//! Round trips, the byte layout of `docs/protocol.md`, splitting and hostile input.

use proptest::prelude::*;

use super::*;

fn reading(key: &str, value: Value) -> Reading {
    Reading {
        key: key.to_string(),
        value,
        unit: "%".to_string(),
        level: Level::Ok,
        message: String::new(),
        threshold: String::new(),
    }
}

fn heartbeat(n: usize) -> Heartbeat {
    Heartbeat {
        host: "web-1.example.org".to_string(),
        instance: 1_700_000_000_000,
        seq: 42,
        sent_ms: 1_700_000_123_456,
        interval_ms: 10_000,
        level: Level::Warning,
        readings: (0..n)
            .map(|i| {
                reading(
                    &format!("cpu.{i}.usage_percent"),
                    Value::F64(i as f64 * 1.5),
                )
            })
            .collect(),
    }
}

#[test]
fn header_layout_matches_the_spec() {
    let mut hb = heartbeat(0);
    hb.readings.push(Reading {
        key: "os.kernel".into(),
        value: Value::Text("6.1".into()),
        unit: String::new(),
        level: Level::Critical,
        message: "m".into(),
        threshold: "w".into(),
    });
    let parts = encode(&hb, None, DEFAULT_MAX_DATAGRAM).expect("encode");
    assert_eq!(parts.len(), 1);
    let d = &parts[0];
    assert_eq!(&d[0..4], b"HB\x01\x00");
    assert_eq!(&d[4..12], &1_700_000_000_000u64.to_be_bytes());
    assert_eq!(&d[12..20], &42u64.to_be_bytes());
    assert_eq!(&d[20..28], &1_700_000_123_456u64.to_be_bytes());
    assert_eq!(&d[28..32], &10_000u32.to_be_bytes());
    assert_eq!(&d[32..36], &[1, 0, 1, 17]);
    assert_eq!(&d[36..53], b"web-1.example.org");
    assert_eq!(&d[53..55], &[0, 1]);
    let mut expect = vec![9u8];
    expect.extend_from_slice(b"os.kernel");
    expect.extend_from_slice(&[3, 0, 3]);
    expect.extend_from_slice(b"6.1");
    expect.extend_from_slice(&[0, 2, 0, 1, b'm', 1, b'w']);
    assert_eq!(&d[55..], &expect[..]);
}

#[test]
fn signed_round_trip_and_rejections() {
    let hb = heartbeat(30);
    let parts = encode(&hb, Some(b"s3cret"), DEFAULT_MAX_DATAGRAM).expect("encode");
    assert_eq!(parts.len(), 1, "30 readings fit one datagram");
    let d = &parts[0];
    assert!(d.len() <= DEFAULT_MAX_DATAGRAM);
    let p = decode(d, Some(b"s3cret")).expect("decode");
    assert!(p.signed);
    assert_eq!(p.host, "web-1.example.org");
    assert_eq!(p.readings.len(), 30);
    assert_eq!(p.readings[3].value, ValueRef::F64(4.5));
    assert_eq!(decode(d, Some(b"other")), Err(DecodeError::BadSignature));
    let unsigned = encode(&hb, None, DEFAULT_MAX_DATAGRAM).expect("encode");
    assert_eq!(
        decode(&unsigned[0], Some(b"s3cret")),
        Err(DecodeError::Unsigned)
    );
    let mut flipped = d.clone();
    flipped[40] ^= 1;
    assert_eq!(
        decode(&flipped, Some(b"s3cret")),
        Err(DecodeError::BadSignature)
    );
    // Without a secret the server cannot check, but the packet still parses.
    assert!(decode(d, None).is_ok());
}

#[test]
fn a_resent_datagram_is_the_original_with_a_new_send_time_and_signature() {
    let key = b"k3y".as_slice();
    for secret in [None, Some(key)] {
        let hb = heartbeat(3);
        let orig = encode(&hb, secret, 1400).expect("encode").remove(0);
        let again = resend(&orig, hb.sent_ms + 3_333, secret);
        let p = decode(&again, secret).expect("a resent datagram decodes and verifies");
        assert_eq!(p.sent_ms, hb.sent_ms + 3_333);
        assert_eq!(
            (p.instance, p.seq, p.part, p.parts),
            (hb.instance, hb.seq, 0, 1)
        );
        assert_eq!(heartbeat_of(&p).readings, hb.readings);
        // Only the send time (and signature) differ.
        assert_eq!(orig[..20], again[..20]);
        assert_eq!(orig[28..orig.len() - 32], again[28..again.len() - 32]);
    }
    assert_eq!(resend(b"HB", 1, None), b"HB", "too short: unchanged");
}

#[test]
fn large_heartbeats_split_into_standalone_parts() {
    let hb = heartbeat(200);
    let parts = encode(&hb, Some(b"k"), DEFAULT_MAX_DATAGRAM).expect("encode");
    assert!(parts.len() > 1);
    let mut keys = Vec::new();
    for (i, d) in parts.iter().enumerate() {
        assert!(
            d.len() <= DEFAULT_MAX_DATAGRAM,
            "part {i} is {} bytes",
            d.len()
        );
        let p = decode(d, Some(b"k")).expect("decode part");
        assert_eq!(p.part as usize, i);
        assert_eq!(p.parts as usize, parts.len());
        assert_eq!(p.seq, 42);
        keys.extend(p.readings.iter().map(|r| r.key.to_string()));
    }
    let want: Vec<String> = hb.readings.iter().map(|r| r.key.clone()).collect();
    assert_eq!(keys, want, "all readings arrive once, in order");
}

#[test]
fn oversized_texts_are_clipped_not_sent_oversized() {
    let mut hb = heartbeat(0);
    hb.readings.push(Reading {
        key: "nagios.big.state".into(),
        value: Value::Text("é".repeat(5000)),
        unit: String::new(),
        level: Level::Unknown,
        message: "x".repeat(5000),
        threshold: String::new(),
    });
    let parts = encode(&hb, Some(b"k"), 1200).expect("encode");
    for d in &parts {
        assert!(d.len() <= 1200, "{} bytes", d.len());
        decode(d, Some(b"k")).expect("decodes");
    }
}

#[test]
fn hostile_host_names_are_refused() {
    for bad in ["", "a b", "<script>", "x\n", &"a".repeat(254)] {
        let mut hb = heartbeat(1);
        hb.host = bad.to_string();
        assert!(matches!(
            encode(&hb, None, DEFAULT_MAX_DATAGRAM),
            Err(EncodeError::BadHostName(_))
        ));
    }
    let mut d = encode(&heartbeat(0), None, DEFAULT_MAX_DATAGRAM).expect("encode")[0].clone();
    d[36] = b'<';
    assert_eq!(decode(&d, None), Err(DecodeError::BadHostName));
}

#[test]
fn every_truncation_is_an_error_not_a_panic() {
    let d = encode(&heartbeat(5), Some(b"k"), DEFAULT_MAX_DATAGRAM).expect("encode")[0].clone();
    for n in 0..d.len() {
        assert!(
            decode(&d[..n], Some(b"k")).is_err(),
            "prefix of {n} bytes accepted"
        );
    }
    let u = encode(&heartbeat(5), None, DEFAULT_MAX_DATAGRAM).expect("encode")[0].clone();
    for n in 0..u.len() {
        assert!(
            decode(&u[..n], None).is_err(),
            "prefix of {n} bytes accepted"
        );
    }
    let mut extra = u.clone();
    extra.push(0);
    assert_eq!(decode(&extra, None), Err(DecodeError::TrailingBytes(1)));
}

/// Found by the `heartbeat_decode` fuzz target (its re-encoding check): a bool byte other
/// than 0 or 1 was read as true, so one packet had many encodings.
#[test]
fn bool_bytes_other_than_0_and_1_are_refused() {
    let mut hb = heartbeat(0);
    hb.readings
        .push(reading("hbc.plugin.cpu", Value::Bool(true)));
    let d = encode(&hb, None, DEFAULT_MAX_DATAGRAM).expect("encode")[0].clone();
    // key length, key, type 2, then the value byte.
    let at = 55 + 1 + "hbc.plugin.cpu".len() + 1;
    assert_eq!(d[at], 1);
    for (byte, want) in [
        (0u8, Ok(ValueRef::Bool(false))),
        (1, Ok(ValueRef::Bool(true))),
        (9, Err(DecodeError::BadBool(9))),
    ] {
        let mut x = d.clone();
        x[at] = byte;
        assert_eq!(decode(&x, None).map(|p| p.readings[0].value), want);
    }
    assert_eq!(DecodeError::BadBool(9).reason(), "bad_value_type");
    // The fuzz target's crashing datagram: `true` written as 9.
    let crash = include_bytes!("testdata/fuzz-bool-9.bin");
    assert_eq!(decode(crash, None), Err(DecodeError::BadBool(9)));
}

proptest! {
    #[test]
    fn random_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..2000)) {
        let _ = decode(&data, None);
        let _ = decode(&data, Some(b"k"));
    }

    #[test]
    fn mutated_datagrams_never_panic(pos in 0usize..400, byte in any::<u8>()) {
        let mut d = encode(&heartbeat(10), None, DEFAULT_MAX_DATAGRAM).expect("encode")[0].clone();
        let i = pos % d.len();
        d[i] = byte;
        let _ = decode(&d, None);
    }

    #[test]
    fn round_trip(vals in proptest::collection::vec((any::<i64>(), any::<bool>(), "[a-z]{1,20}"), 0..80)) {
        let mut hb = heartbeat(0);
        for (i, (n, b, t)) in vals.iter().enumerate() {
            let v = match i % 3 { 0 => Value::I64(*n), 1 => Value::Bool(*b), _ => Value::Text(t.clone()) };
            hb.readings.push(reading(&format!("k.{i}.{t}"), v));
        }
        let parts = encode(&hb, Some(b"key"), DEFAULT_MAX_DATAGRAM).expect("encode");
        let mut got = Vec::new();
        for d in &parts {
            let p = decode(d, Some(b"key")).expect("decode");
            for r in p.readings {
                let v = match r.value {
                    ValueRef::F64(x) => Value::F64(x),
                    ValueRef::I64(x) => Value::I64(x),
                    ValueRef::Bool(x) => Value::Bool(x),
                    ValueRef::Text(x) => Value::Text(x.to_string()),
                };
                got.push(Reading { key: r.key.into(), value: v, unit: r.unit.into(), level: r.level, message: r.message.into(), threshold: r.threshold.into() });
            }
        }
        prop_assert_eq!(got, hb.readings);
    }
}

/// The heartbeat a decoded packet carries, for re-encoding.
fn heartbeat_of(p: &Packet<'_>) -> Heartbeat {
    Heartbeat {
        host: p.host.to_string(),
        instance: p.instance,
        seq: p.seq,
        sent_ms: p.sent_ms,
        interval_ms: p.interval_ms,
        level: p.level,
        readings: p
            .readings
            .iter()
            .map(|r| Reading {
                key: r.key.to_string(),
                value: match r.value {
                    ValueRef::F64(x) => Value::F64(x),
                    ValueRef::I64(x) => Value::I64(x),
                    ValueRef::Bool(x) => Value::Bool(x),
                    ValueRef::Text(x) => Value::Text(x.to_string()),
                },
                unit: r.unit.to_string(),
                level: r.level,
                message: r.message.to_string(),
                threshold: r.threshold.to_string(),
            })
            .collect(),
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// The short version of the `heartbeat_decode` fuzz target: a signed datagram with a
    /// few bytes changed either fails the signature check or is the original; without the
    /// secret, whatever still decodes is written back byte for byte by the encoder.
    #[test]
    fn mutated_datagrams_decode_consistently(
        edits in proptest::collection::vec((0usize..2000, any::<u8>()), 1..4),
        n in 0usize..12,
    ) {
        let mut hb = heartbeat(n);
        hb.readings.push(Reading {
            key: "os.kernel".into(),
            value: Value::Text("6.1.0".into()),
            unit: String::new(),
            level: Level::Warning,
            message: "msg".into(),
            threshold: "warn=1".into(),
        });
        let original = encode(&hb, Some(b"k"), DEFAULT_MAX_DATAGRAM).expect("encode")[0].clone();
        let mut d = original.clone();
        for (pos, byte) in &edits {
            let i = pos % d.len();
            d[i] = *byte;
        }
        match decode(&d, Some(b"k")) {
            Ok(p) => {
                prop_assert_eq!(&d, &original, "an altered datagram verified");
                prop_assert_eq!(decode(&d, None), Ok(p));
            }
            Err(e) if d != original => prop_assert!(e == DecodeError::BadSignature || d[..4] != original[..4], "{e:?}"),
            Err(e) => prop_assert!(false, "the original was refused: {e:?}"),
        }
        let unclipped = |p: &Packet<'_>| p.readings.iter().all(|r| {
            r.message.len() <= MAX_TEXT && !matches!(r.value, ValueRef::Text(t) if t.len() > MAX_TEXT)
        });
        if let Some(p) = decode(&d, None).ok().filter(unclipped) {
            let again = encode(&heartbeat_of(&p), None, 65_507).expect("re-encode");
            let mut want = d[..d.len() - if p.signed { MAC_LEN } else { 0 }].to_vec();
            want[3] = 0;
            want[33] = 0;
            want[34] = 1;
            prop_assert_eq!(&again[0], &want);
        }
    }
}
