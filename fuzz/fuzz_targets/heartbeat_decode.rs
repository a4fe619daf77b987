//! The heartbeat decoder and its signature check (`hb_proto::decode`), the encoder as its
//! inverse, and hbd's registry, which puts the parts of heartbeats back together.
//!
//! The input is one datagram, or several run together: it is also cut before every
//! `HB\x01` (magic and version) and the pieces are applied to a registry in order, as
//! hbd's ingest path does with datagrams from the network.

#![no_main]

use std::net::{IpAddr, Ipv4Addr};

use hb_proto::{decode, encode, DecodeError, Heartbeat, Packet, Reading, Value, ValueRef};
use hbd::registry::{Registry, Settings, Status};
use libfuzzer_sys::fuzz_target;

const KEY: &[u8] = b"fuzz-secret";
const MAX_UDP: usize = 65_507;

fuzz_target!(|data: &[u8]| {
    check_one(data);
    check_registry(data);
});

fn check_one(data: &[u8]) {
    let plain = decode(data, None);
    let keyed = decode(data, Some(KEY));
    match (&plain, &keyed) {
        // A datagram that passes the signature check parses the same without a secret.
        (_, Ok(k)) => {
            assert!(k.signed, "verified packet not marked signed");
            assert_eq!(plain.as_ref().ok(), Some(k), "decode differs with a secret");
        }
        (Ok(p), Err(e)) => {
            // With a secret, the only new reasons to refuse are about the signature.
            let want = if p.signed {
                DecodeError::BadSignature
            } else {
                DecodeError::Unsigned
            };
            assert_eq!(*e, want, "{p:?}");
        }
        (Err(_), Err(_)) => {}
    }
    let Ok(p) = plain else { return };
    assert!(p.part < p.parts);
    assert!(hb_proto::valid_host_name(p.host));
    assert!(p.readings.iter().all(|r| !r.key.is_empty()));

    // A strict prefix of an unsigned datagram is never a datagram.
    if !p.signed {
        assert!(decode(&data[..data.len() - 1], None).is_err());
    }

    // Re-encoding: without clipping, the encoder writes the same bytes back (part and
    // parts aside, which the encoder numbers itself).
    let hb = heartbeat_of(&p);
    let fits = data.len() <= MAX_UDP
        && p.readings.iter().all(|r| {
            r.message.len() <= hb_proto::MAX_TEXT
                && !matches!(r.value, ValueRef::Text(t) if t.len() > hb_proto::MAX_TEXT)
        });
    if fits {
        let parts = encode(&hb, None, MAX_UDP).expect("a decoded heartbeat encodes");
        assert_eq!(parts.len(), 1);
        let body_len = if p.signed {
            data.len() - hb_proto::MAC_LEN
        } else {
            data.len()
        };
        let mut want = data[..body_len].to_vec();
        want[3] = 0;
        want[33] = 0;
        want[34] = 1;
        assert_eq!(parts[0], want, "re-encoded bytes differ");

        let signed = encode(&hb, Some(KEY), MAX_UDP).expect("encodes signed");
        let q = decode(&signed[0], Some(KEY)).expect("own signature verifies");
        assert!(same_readings(&p, &q));
        assert!(decode(&signed[0], Some(b"other key")).is_err());
    }
}

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
                    ValueRef::F64(v) => Value::F64(v),
                    ValueRef::I64(v) => Value::I64(v),
                    ValueRef::Bool(v) => Value::Bool(v),
                    ValueRef::Text(t) => Value::Text(t.to_string()),
                },
                unit: r.unit.to_string(),
                level: r.level,
                message: r.message.to_string(),
                threshold: r.threshold.to_string(),
            })
            .collect(),
    }
}

/// Readings equal, comparing floats by bits (NaN travels too).
fn same_readings(a: &Packet<'_>, b: &Packet<'_>) -> bool {
    a.readings.len() == b.readings.len()
        && a.readings.iter().zip(&b.readings).all(|(x, y)| {
            let same_value = match (x.value, y.value) {
                (ValueRef::F64(u), ValueRef::F64(v)) => u.to_bits() == v.to_bits(),
                (u, v) => u == v,
            };
            same_value
                && (x.key, x.unit, x.level, x.message, x.threshold)
                    == (y.key, y.unit, y.level, y.message, y.threshold)
        })
}

/// Cuts `data` before every `HB\x01` and applies the pieces that decode to a registry.
fn check_registry(data: &[u8]) {
    let mut starts: Vec<usize> = data
        .windows(3)
        .enumerate()
        .filter(|(_, w)| *w == b"HB\x01")
        .map(|(i, _)| i)
        .collect();
    if starts.first() != Some(&0) {
        starts.insert(0, 0);
    }
    let settings = Settings {
        max_hosts: 3,
        history_len: 4,
        ..Settings::default()
    };
    let mut reg = Registry::new(settings);
    let mut events = Vec::new();
    let mut now = 1_700_000_000_000u64;
    let src = IpAddr::V4(Ipv4Addr::LOCALHOST);
    for (i, &start) in starts.iter().enumerate() {
        let end = starts.get(i + 1).copied().unwrap_or(data.len());
        let Ok(p) = decode(&data[start..end], None) else {
            continue;
        };
        now += u64::from(p.interval_ms % 100_000);
        let before = reg.count;
        match reg.apply(&p, src, now, &mut events) {
            Ok(_) => {
                let h = reg.get(p.host).expect("an accepted host is registered");
                assert_eq!(h.status, Status::Up);
                assert_eq!((h.instance, h.last_seq), (p.instance, p.seq));
                assert!(h.received >= 1);
                for r in &p.readings {
                    assert!(
                        h.readings.iter().any(|x| x.key() == r.key),
                        "reading {} not stored",
                        r.key
                    );
                }
            }
            Err(hbd::registry::Reject::HostCap) => assert_eq!(before, reg.settings.max_hosts),
            Err(_) => assert_eq!(before, reg.count),
        }
        assert!(reg.count <= reg.settings.max_hosts);
        assert_eq!(reg.iter().count(), reg.count);
        // Event ids only grow.
        assert!(events.windows(2).all(|w| w[0].id < w[1].id));
    }
    // Far in the future every host that was up has gone down.
    reg.tick(now + 1_000_000_000_000, &mut events);
    assert!(reg.iter().all(|h| h.status != Status::Up));
}
