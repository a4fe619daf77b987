//! Registry behaviour with a controlled clock: no sleeps.

use std::net::{IpAddr, Ipv4Addr};

use hb_proto::{decode, encode, Heartbeat, Level, Reading, Value};

use super::*;

const SRC: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2));

fn hb(host: &str, seq: u64, level: Level, cpu: f64) -> Vec<Vec<u8>> {
    let h = Heartbeat {
        host: host.into(),
        instance: 1000,
        seq,
        sent_ms: 5_000,
        interval_ms: 10_000,
        level,
        readings: vec![
            Reading {
                key: "cpu.usage_percent".into(),
                value: Value::F64(cpu),
                unit: "%".into(),
                level,
                message: String::new(),
                threshold: "warn=80".into(),
            },
            Reading {
                key: "fs./.used_percent".into(),
                value: Value::F64(40.0),
                unit: "%".into(),
                level: Level::Ok,
                message: String::new(),
                threshold: String::new(),
            },
        ],
    };
    encode(&h, None, 1400).expect("encode")
}

fn apply(r: &mut Registry, d: &[u8], now: u64) -> Result<Vec<Event>, Reject> {
    let p = decode(d, None).expect("decode");
    let mut ev = Vec::new();
    r.apply(&p, SRC, now, &mut ev).map(|()| ev)
}

fn kinds(ev: &[Event]) -> Vec<EventKind> {
    ev.iter().map(|e| e.kind).collect()
}

#[test]
fn first_heartbeat_creates_the_host_and_brings_it_up() {
    let mut r = Registry::new(Settings::default());
    let ev = apply(&mut r, &hb("a", 1, Level::Ok, 10.0)[0], 1_000).expect("applied");
    assert_eq!(
        kinds(&ev),
        vec![EventKind::HostNew, EventKind::HostUp, EventKind::HostLevel]
    );
    assert!(ev.windows(2).all(|w| w[1].id == w[0].id + 1), "ids grow");
    let h = r.get("a").expect("host");
    assert_eq!(h.status, Status::Up);
    assert_eq!(h.readings.len(), 2);
    assert_eq!(&*h.readings[0].key, "cpu.usage_percent");
    assert_eq!(h.deadline_ms, 1_000 + 25_000);
    assert_eq!(h.history.len(), 1);
    assert_eq!(h.history[0].cpu, 10.0);
    assert_eq!(h.history[0].fs, 40.0);
}

#[test]
fn replays_and_duplicates_are_rejected_and_gaps_counted() {
    let mut r = Registry::new(Settings::default());
    apply(&mut r, &hb("a", 5, Level::Ok, 1.0)[0], 1_000).expect("ok");
    assert_eq!(
        apply(&mut r, &hb("a", 5, Level::Ok, 1.0)[0], 1_100).err(),
        Some(Reject::Replayed)
    );
    assert_eq!(
        apply(&mut r, &hb("a", 4, Level::Ok, 1.0)[0], 1_200).err(),
        Some(Reject::Replayed)
    );
    apply(&mut r, &hb("a", 9, Level::Ok, 1.0)[0], 2_000).expect("ok");
    assert_eq!(r.get("a").expect("host").lost, 3);
}

#[test]
fn goes_down_at_its_deadline_and_up_again() {
    let mut r = Registry::new(Settings::default());
    apply(&mut r, &hb("a", 1, Level::Ok, 1.0)[0], 0).expect("ok");
    apply(&mut r, &hb("a", 2, Level::Ok, 1.0)[0], 10_000).expect("ok");
    assert_eq!(
        r.next_deadline(),
        Some(25_000),
        "one heap entry; it surfaces early and is re-queued"
    );
    let mut ev = Vec::new();
    r.tick(25_000, &mut ev);
    assert!(ev.is_empty(), "beat at 10 s moved the deadline to 35 s");
    r.tick(34_999, &mut ev);
    assert!(ev.is_empty());
    r.tick(35_000, &mut ev);
    assert_eq!(kinds(&ev), vec![EventKind::HostDown]);
    assert_eq!(r.get("a").expect("host").status, Status::Down);
    r.tick(100_000, &mut ev);
    assert_eq!(ev.len(), 1, "DOWN is reported once");
    let up = apply(&mut r, &hb("a", 3, Level::Ok, 1.0)[0], 120_000).expect("ok");
    assert_eq!(kinds(&up), vec![EventKind::HostUp]);
    assert_eq!(up[0].from.as_deref(), Some("DOWN"));
}

#[test]
fn watched_hosts_never_seen_go_down_after_startup_grace() {
    let mut r = Registry::new(Settings {
        startup_grace_ms: 30_000,
        ..Settings::default()
    });
    r.watch("w", Some(4.0), 0);
    let mut ev = Vec::new();
    r.tick(29_999, &mut ev);
    assert!(ev.is_empty());
    r.tick(30_000, &mut ev);
    assert_eq!(kinds(&ev), vec![EventKind::HostDown]);
    assert_eq!(ev[0].from.as_deref(), Some("NEVER_SEEN"));
    // Its own grace applies once it beats: 10 s × 4.
    apply(&mut r, &hb("w", 1, Level::Ok, 1.0)[0], 50_000).expect("ok");
    assert_eq!(r.get("w").expect("host").deadline_ms, 90_000);
}

#[test]
fn level_changes_of_host_and_checks_are_events() {
    let mut r = Registry::new(Settings::default());
    apply(&mut r, &hb("a", 1, Level::Ok, 1.0)[0], 0).expect("ok");
    let ev = apply(&mut r, &hb("a", 2, Level::Critical, 99.0)[0], 10_000).expect("ok");
    assert_eq!(
        kinds(&ev),
        vec![EventKind::HostLevel, EventKind::CheckLevel]
    );
    assert_eq!(ev[0].to.as_deref(), Some("CRITICAL"));
    assert_eq!(ev[1].key.as_deref(), Some("cpu.usage_percent"));
    let h = r.get("a").expect("host");
    assert_eq!(h.readings[0].value, Val::F64(99.0));
    assert_eq!(h.recent.len(), 5);
}

#[test]
fn host_cap_and_time_window() {
    let mut r = Registry::new(Settings {
        max_hosts: 2,
        window_ms: 60_000,
        ..Settings::default()
    });
    apply(&mut r, &hb("a", 1, Level::Ok, 1.0)[0], 5_000).expect("ok");
    apply(&mut r, &hb("b", 1, Level::Ok, 1.0)[0], 5_000).expect("ok");
    assert_eq!(
        apply(&mut r, &hb("c", 1, Level::Ok, 1.0)[0], 5_000).err(),
        Some(Reject::HostCap)
    );
    apply(&mut r, &hb("a", 2, Level::Ok, 1.0)[0], 6_000).expect("known hosts still update");
    assert_eq!(
        apply(&mut r, &hb("a", 3, Level::Ok, 1.0)[0], 5_000 + 60_001).err(),
        Some(Reject::OutsideWindow)
    );
}

#[test]
fn restored_hosts_get_a_fresh_deadline() {
    let mut r = Registry::new(Settings::default());
    apply(&mut r, &hb("a", 1, Level::Ok, 1.0)[0], 0).expect("ok");
    let saved = r.get("a").expect("host").clone();
    let mut r2 = Registry::new(Settings::default());
    // hbd was down for 100 s; the host keeps beating every 10 s.
    r2.restore(saved, 100_000);
    let mut ev = Vec::new();
    r2.tick(100_000, &mut ev);
    assert!(ev.is_empty(), "no false DOWN right after a restart: {ev:?}");
    apply(&mut r2, &hb("a", 11, Level::Ok, 1.0)[0], 105_000).expect("next beat accepted");
    r2.tick(125_000, &mut ev);
    assert!(ev.is_empty());
}

#[test]
fn split_heartbeats_merge_and_vanished_readings_go() {
    let mut r = Registry::new(Settings::default());
    let mut h = Heartbeat {
        host: "big".into(),
        instance: 1,
        seq: 1,
        sent_ms: 0,
        interval_ms: 10_000,
        level: Level::Ok,
        readings: (0..150)
            .map(|i| Reading {
                key: format!("k.{i:03}.some_long_reading_name"),
                value: Value::I64(i),
                unit: String::new(),
                level: Level::Ok,
                message: String::new(),
                threshold: String::new(),
            })
            .collect(),
    };
    let parts = encode(&h, None, 1400).expect("encode");
    assert!(parts.len() > 2);
    for d in parts.iter().rev() {
        apply(&mut r, d, 0).expect("part accepted in any order");
    }
    assert_eq!(
        apply(&mut r, &parts[1], 0).err(),
        Some(Reject::Replayed),
        "a repeated part is a replay"
    );
    assert_eq!(r.get("big").expect("host").readings.len(), 150);
    h.seq = 2;
    h.readings.truncate(10);
    for d in encode(&h, None, 1400).expect("encode") {
        apply(&mut r, &d, 10_000).expect("ok");
    }
    h.seq = 3;
    for d in encode(&h, None, 1400).expect("encode") {
        apply(&mut r, &d, 20_000).expect("ok");
    }
    assert_eq!(r.get("big").expect("host").readings.len(), 10);
}
