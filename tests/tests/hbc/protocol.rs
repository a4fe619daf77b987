//! Real datagrams from hbc, decoded with the independent decoder written from
//! `docs/protocol.md`, including the HMAC trailer, and cross-checked with `hb-proto`.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::util::*;

#[test]
fn datagrams_follow_the_documented_layout_and_are_signed() {
    let dir = PluginDir::with(&BUNDLED);
    let rx = Receiver::new();
    let config =
        "interval: 400ms\nsecret: correct horse battery staple\nhostname: test-host.example\n\
                  thresholds:\n  memory.total_bytes: {warn: 1}\n";
    let mut hbc = Hbc::start(
        config,
        &[
            "--plugin-dir",
            dir.path().to_str().expect("utf8"),
            &rx.addr(),
        ],
    );
    let secret = b"correct horse battery staple";
    let mut raw = Vec::new();
    let end = std::time::Instant::now() + Duration::from_secs(2);
    while std::time::Instant::now() < end {
        if let Some((_, d)) = rx.recv(Duration::from_millis(100)) {
            raw.push(d);
        }
    }
    assert!(hbc.alive());
    assert!(raw.len() >= 4, "{} datagrams", raw.len());
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_millis() as u64;
    for d in &raw {
        assert!(
            d.len() <= 1400,
            "datagram of {} bytes exceeds the default limit",
            d.len()
        );
        let doc = doc_decode(d, Some(secret)).expect("documented layout with a valid HMAC");
        assert!(doc.signed);
        assert_eq!(doc.host, "test-host.example");
        assert_eq!(doc.interval_ms, 400);
        assert!(doc.sent_ms <= now_ms && now_ms - doc.sent_ms < 5_000);
        assert!(doc.part < doc.parts);
        // A wrong secret must fail the check; the reference decoder agrees on every field.
        assert!(doc_decode(d, Some(b"wrong")).is_err());
        let p = hb_proto::decode(d, Some(secret)).expect("hb-proto decodes it");
        assert_eq!(
            (p.seq, p.instance, p.readings.len()),
            (doc.seq, doc.instance, doc.readings.len())
        );
        let mut flipped = d.clone();
        flipped[40] ^= 0x20;
        assert!(
            doc_decode(&flipped, Some(secret)).is_err(),
            "an altered datagram passes the HMAC check"
        );
    }
    let beats = {
        let mut v: Vec<DocDatagram> = Vec::new();
        for d in &raw {
            let doc = doc_decode(d, Some(secret)).expect("decode");
            match v.last_mut() {
                Some(last) if last.seq == doc.seq => last.readings.extend(doc.readings),
                _ => v.push(doc),
            }
        }
        v
    };
    let b = beats.last().expect("a heartbeat");
    let total = b.get("memory.total_bytes").expect("memory reading");
    assert_eq!(total.level, 1, "warn threshold 1 applies: {total:?}");
    assert_eq!(total.threshold, "warn=1");
    assert_eq!(total.unit, "B");
    assert!(b.level >= 1, "overall level is the worst");
}
