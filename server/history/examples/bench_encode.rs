//! Export cost without the network, in one process: per datagram of 30 readings, the
//! ingest-path work of history (copy + queue) next to hb_proto's decode of the same
//! datagram (part of hbd's own ingest work), and per sample the sender's work (series
//! grouping, protobuf, snappy) with the bytes on the wire, for batches of 5,000 samples
//! from 10,000 simulated hosts. `cargo run --release -p hbd-history --example bench_encode`

use std::sync::Arc;
use std::time::Instant;

use hb_proto::{Heartbeat, Level, Reading, Value};
use hbd_history::beat::Beat;
use hbd_history::queue::{Entry, Queue};

fn datagram(host: usize, seq: u64) -> Vec<u8> {
    let readings = (0..30)
        .map(|i| Reading {
            key: format!("plugin{}.metric_{i}", i % 6),
            value: Value::F64((host * 31 + i) as f64 * 0.37 + seq as f64),
            unit: if i % 3 == 0 { "%".into() } else { "B".into() },
            level: Level::Ok,
            message: String::new(),
            threshold: String::new(),
        })
        .collect();
    let hb = Heartbeat {
        host: format!("host-{host:06}.example.org"),
        instance: 1,
        seq,
        sent_ms: 1_700_000_000_000,
        interval_ms: 10_000,
        level: Level::Ok,
        readings,
    };
    hb_proto::encode(&hb, None, 1400)
        .ok()
        .and_then(|d| d.into_iter().next())
        .unwrap_or_default()
}

fn main() {
    let hosts = 10_000;
    let data: Vec<Vec<u8>> = (0..hosts).map(|h| datagram(h, 1)).collect();
    // hbd's decode of each datagram (a part of its ingest work).
    let t = Instant::now();
    let mut n = 0usize;
    for d in &data {
        if let Ok(p) = hb_proto::decode(d, None) {
            n += p.readings.len();
        }
    }
    let decode_ns = t.elapsed().as_nanos() as f64 / hosts as f64;
    // History's ingest-path work: copy and append to one target's queue.
    let q = Queue::new(10_000_000, 5_000);
    let t = Instant::now();
    for (i, d) in data.iter().enumerate() {
        if let Ok(p) = hb_proto::decode(d, None) {
            let b = Arc::new(Beat::of(&p, 1_700_000_000_000 + i as u64));
            let samples = b.len() + b.state_samples();
            q.push(Entry {
                beat: b,
                pick: None,
                samples,
            });
        }
    }
    let push_ns = t.elapsed().as_nanos() as f64 / hosts as f64 - decode_ns;
    let queued = q.len();
    // The sender's work: batches of 5,000 samples to request bodies, both ways over the
    // same batches, three rounds alternating, the best of each: owned `WriteRequest` +
    // prost (before) and `Builder::encode` straight from the batch (what hbd sends).
    let mut batches = Vec::new();
    let mut samples = 0usize;
    while let Some((batch, k)) = q.take(std::time::Duration::ZERO) {
        if batch.is_empty() {
            break;
        }
        samples += k;
        batches.push(batch);
        if q.is_empty() {
            break;
        }
    }
    let mut builder = hbd_history::series::Builder::new(&Default::default());
    let (mut prost_ns, mut send_ns, mut bytes) = (f64::MAX, f64::MAX, 0usize);
    for _ in 0..3 {
        let t = Instant::now();
        for batch in &batches {
            std::hint::black_box(hbd_history::wire::encode(&builder.request(batch)));
        }
        prost_ns = prost_ns.min(t.elapsed().as_nanos() as f64 / samples.max(1) as f64);
        let t = Instant::now();
        bytes = 0;
        for batch in &batches {
            bytes += hbd_history::wire::compress(&builder.encode(batch)).len();
        }
        send_ns = send_ns.min(t.elapsed().as_nanos() as f64 / samples.max(1) as f64);
    }
    println!("{hosts} datagrams of 30 readings ({n} readings), {queued} samples queued");
    println!("decode (hbd ingest, part): {decode_ns:.0} ns per datagram");
    println!("history on the ingest path (copy + queue): {push_ns:.0} ns per datagram ({:.0}% of decode)", 100.0 * push_ns / decode_ns);
    println!(
        "sender (series, protobuf, snappy): {send_ns:.0} ns per sample = {:.0} samples/s per core \
         (owned WriteRequest + prost: {prost_ns:.0} ns, {:.2}x)",
        1e9 / send_ns,
        prost_ns / send_ns
    );
    println!(
        "wire: {:.2} bytes per sample ({bytes} bytes for {samples} samples, batches of 5,000)",
        bytes as f64 / samples.max(1) as f64
    );
}
