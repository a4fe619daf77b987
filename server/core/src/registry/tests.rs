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
    r.apply(&p, SRC, now, &mut ev).map(|_| ev)
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
    assert_eq!(
        h.readings.get(0).expect("reading").key(),
        "cpu.usage_percent"
    );
    assert_eq!(h.deadline_ms, 1_000 + 25_000);
    assert_eq!(h.history.len(), 1);
    assert_eq!(h.history.get(0).map(|s| s.cpu), Some(10.0));
    assert_eq!(h.history.get(0).map(|s| s.fs), Some(40.0));
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
    assert_eq!(h.readings.get(0).expect("reading").value(), Val::F64(99.0));
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

/// Found by the `heartbeat_decode` fuzz target (its seed `sequence`): a host whose
/// deadline moved after its heap entry was queued, with no tick in between, was skipped
/// when the entry surfaced and never went DOWN.
#[test]
fn host_goes_down_when_its_deadline_moved_before_a_tick() {
    let mut r = Registry::new(Settings::default());
    apply(&mut r, &hb("a", 1, Level::Ok, 1.0)[0], 0).expect("ok");
    apply(&mut r, &hb("a", 2, Level::Ok, 1.0)[0], 10_000).expect("ok");
    let mut ev = Vec::new();
    // The liveness thread stalled past both deadlines (25 s and 35 s).
    r.tick(1_000_000, &mut ev);
    assert_eq!(kinds(&ev), vec![EventKind::HostDown]);
    assert_eq!(r.get("a").expect("host").status, Status::Down);

    // A shorter interval moves the deadline earlier than the queued entry: DOWN is
    // reported when the entry surfaces, no later.
    let mut short = Heartbeat {
        host: "b".into(),
        instance: 1,
        seq: 1,
        sent_ms: 0,
        interval_ms: 60_000,
        level: Level::Ok,
        readings: Vec::new(),
    };
    apply(&mut r, &encode(&short, None, 1400).expect("encode")[0], 0).expect("ok");
    short.seq = 2;
    short.interval_ms = 1_000;
    apply(
        &mut r,
        &encode(&short, None, 1400).expect("encode")[0],
        1_000,
    )
    .expect("ok");
    let mut ev = Vec::new();
    r.tick(150_000, &mut ev);
    assert_eq!(kinds(&ev), vec![EventKind::HostDown]);
    assert_eq!(ev[0].host, "b");
}

#[test]
fn a_clock_step_moves_deadlines_so_nobody_goes_down_or_stays_up_for_it() {
    const T: u64 = 1_700_000_000_000;
    let mut r = Registry::new(Settings::default());
    // Interval 10 s, grace 2.5: DOWN 25 s after the last heartbeat.
    apply(&mut r, &hb("a", 1, Level::Ok, 1.0)[0], T).expect("ok");
    apply(&mut r, &hb("b", 1, Level::Ok, 1.0)[0], T).expect("ok");
    let mut ev = Vec::new();
    // The clock steps 10 minutes forward 1 s later: without the shift both would be DOWN.
    let step = 600_000;
    r.shift_deadlines(step);
    r.tick(T + 1_000 + step as u64, &mut ev);
    assert!(ev.is_empty(), "{ev:?}");
    // a keeps beating on the new clock; b falls silent and is DOWN 25 s after its last
    // heartbeat, counted on the new clock.
    let a_last = T + 5_000 + step as u64;
    apply(&mut r, &hb("a", 2, Level::Ok, 1.0)[0], a_last).expect("ok");
    r.tick(T + 24_999 + step as u64, &mut ev);
    assert!(ev.is_empty(), "{ev:?}");
    r.tick(T + 25_000 + step as u64, &mut ev);
    assert_eq!(kinds(&ev), vec![EventKind::HostDown]);
    assert_eq!(ev[0].host, "b");
    // A step back by a day: a's DOWN still comes 25 s after its last heartbeat.
    let back: u64 = 86_400_000;
    r.shift_deadlines(-(back as i64));
    let mut ev = Vec::new();
    r.tick(a_last + 24_999 - back, &mut ev);
    assert!(ev.is_empty(), "{ev:?}");
    r.tick(a_last + 25_000 - back, &mut ev);
    assert_eq!(kinds(&ev), vec![EventKind::HostDown]);
    assert_eq!(ev[0].host, "a");
}

/// Applies the datagrams of a fuzz input, cut before every `HB\x01` as the fuzz target
/// does, one interval apart; returns the time of the last.
fn apply_fuzz_input(r: &mut Registry, data: &[u8]) -> u64 {
    let mut now = 1_700_000_000_000;
    let starts: Vec<usize> = data
        .windows(3)
        .enumerate()
        .filter(|(_, w)| *w == b"HB\x01")
        .map(|(i, _)| i)
        .collect();
    for (i, &start) in starts.iter().enumerate() {
        let end = starts.get(i + 1).copied().unwrap_or(data.len());
        if let Ok(p) = decode(&data[start..end], None) {
            now += u64::from(p.interval_ms);
            let _ = r.apply(&p, SRC, now, &mut Vec::new());
        }
    }
    now
}

/// The first crashing input of the `heartbeat_decode` fuzz target, as bytes: two parts of
/// one heartbeat, a later one, a duplicate and another host, applied without a tick between.
#[test]
fn fuzz_regression_sequence_without_ticks_goes_down() {
    let mut r = Registry::new(Settings::default());
    let now = apply_fuzz_input(&mut r, include_bytes!("testdata/fuzz-sequence.bin"));
    assert!(r.iter().any(|h| h.status == Status::Up));
    r.tick(now + 1_000_000_000, &mut Vec::new());
    assert!(r.iter().all(|h| h.status == Status::Down));
}

/// Found by the `heartbeat_decode` fuzz target: sequence gaps across two instances of a
/// sender overflowed the `lost` counter (a panic in debug builds, a wrap in release).
#[test]
fn lost_heartbeats_saturate() {
    let mut r = Registry::new(Settings::default());
    let mut h = Heartbeat {
        host: "gap".into(),
        instance: 1,
        seq: 1,
        sent_ms: 0,
        interval_ms: 10_000,
        level: Level::Ok,
        readings: Vec::new(),
    };
    for (instance, seq) in [(1, 1), (1, u64::MAX), (2, 1), (2, u64::MAX)] {
        h.instance = instance;
        h.seq = seq;
        apply(&mut r, &encode(&h, None, 1400).expect("encode")[0], 0).expect("accepted");
    }
    assert_eq!(r.get("gap").expect("host").lost, u64::MAX);

    let mut r = Registry::new(Settings::default());
    apply_fuzz_input(&mut r, include_bytes!("testdata/fuzz-lost-overflow.bin"));
    assert!(r.iter().any(|h| h.lost > u64::MAX / 2));
}

/// One heartbeat of `n` readings with keys `k.<i>` (from `first`), split into datagrams
/// of up to 64 KB.
fn many(host: &str, seq: u64, first: usize, n: usize, reversed: bool) -> Vec<Vec<u8>> {
    let mut readings: Vec<Reading> = (first..first + n)
        .map(|i| Reading {
            key: format!("k.{i}"),
            value: Value::I64(i as i64 + seq as i64),
            unit: String::new(),
            level: Level::Ok,
            message: String::new(),
            threshold: String::new(),
        })
        .collect();
    if reversed {
        readings.reverse();
    }
    let h = Heartbeat {
        host: host.into(),
        instance: 1000,
        seq,
        sent_ms: 5_000,
        interval_ms: 10_000,
        level: Level::Ok,
        readings,
    };
    encode(&h, None, 65_000).expect("encode")
}

fn value_of(r: &Registry, host: &str, key: &str) -> Option<Val> {
    r.get(host)?
        .readings
        .iter()
        .find(|x| x.key() == key)
        .map(|x| x.value())
}

#[test]
fn a_heartbeat_of_more_than_max_parts_is_dropped() {
    let mut r = Registry::new(Settings::default());
    let mut d = hb("a", 1, Level::Ok, 1.0).remove(0);
    // part 0 of 65 (header bytes 33 and 34), unsigned so no MAC to fix.
    d[34] = MAX_PARTS + 1;
    assert_eq!(apply(&mut r, &d, 1_000).err(), Some(Reject::TooManyParts));
    assert!(r.get("a").is_none(), "no host made from it");
    d[34] = MAX_PARTS;
    apply(&mut r, &d, 1_000).expect("64 parts are fine");
}

#[test]
fn readings_out_of_order_are_found_by_the_index() {
    // 1,000 keys of its own are more than the default byte budget holds.
    let mut r = Registry::new(Settings {
        max_host_bytes: 1 << 20,
        ..Settings::default()
    });
    for d in many("a", 1, 0, 1_000, false) {
        apply(&mut r, &d, 1_000).expect("ok");
    }
    assert!(r.get("a").expect("host").readings.indexed());
    for d in many("a", 2, 0, 1_000, true) {
        apply(&mut r, &d, 2_000).expect("ok");
    }
    let h = r.get("a").expect("host");
    assert_eq!(h.readings.len(), 1_000, "updated in place, not added");
    assert_eq!(value_of(&r, "a", "k.7"), Some(Val::I64(9)));
    assert_eq!(value_of(&r, "a", "k.999"), Some(Val::I64(1_001)));
    // A heartbeat without half of them: those go, and the index follows.
    for d in many("a", 3, 500, 500, false) {
        apply(&mut r, &d, 3_000).expect("ok");
    }
    for d in many("a", 4, 500, 500, true) {
        apply(&mut r, &d, 4_000).expect("ok");
    }
    assert_eq!(r.get("a").expect("host").readings.len(), 500);
    assert_eq!(value_of(&r, "a", "k.600"), Some(Val::I64(604)));
    assert_eq!(value_of(&r, "a", "k.7"), None);
}

#[test]
fn a_host_holds_at_most_max_readings_and_max_bytes() {
    let settings = Settings {
        max_readings_per_host: 100,
        max_host_bytes: 1 << 20,
        ..Settings::default()
    };
    let mut r = Registry::new(settings);
    for d in many("a", 1, 0, 300, false) {
        apply(&mut r, &d, 1_000).expect("the heartbeat is applied");
    }
    assert_eq!(r.get("a").expect("host").readings.len(), 100);
    assert_eq!(r.reading_drops.host_reading_cap, 200);
    // Known keys still update.
    for d in many("a", 2, 0, 300, false) {
        apply(&mut r, &d, 2_000).expect("ok");
    }
    assert_eq!(value_of(&r, "a", "k.99"), Some(Val::I64(101)));

    let settings = Settings {
        max_host_bytes: 50 * READING_OVERHEAD,
        ..Settings::default()
    };
    let mut r = Registry::new(settings);
    for d in many("b", 1, 0, 300, false) {
        apply(&mut r, &d, 1_000).expect("ok");
    }
    let h = r.get("b").expect("host");
    assert!(h.readings.len() < 50, "{}", h.readings.len());
    assert!(h.bytes <= 50 * READING_OVERHEAD);
    assert_eq!(
        r.reading_drops.host_byte_budget as usize,
        300 - h.readings.len()
    );
}

#[test]
fn a_chatty_host_is_limited_and_others_are_not() {
    let settings = Settings {
        host_reading_rate: 1_000.0,
        host_reading_burst: 2_000.0,
        ..Settings::default()
    };
    let mut r = Registry::new(settings);
    let mut accepted = 0;
    let mut limited = 0;
    // 10 heartbeats of 500 readings within one second: 5,000 against a burst of 2,000.
    for seq in 1..=10 {
        for d in many("chatty", seq, 0, 500, false) {
            match apply(&mut r, &d, 1_000 + seq * 10) {
                Ok(_) => accepted += 1,
                Err(Reject::HostRateLimited) => limited += 1,
                Err(e) => panic!("{e:?}"),
            }
        }
    }
    // The burst holds 4 heartbeats of 500 (the refill over those 100 ms adds 100).
    assert_eq!(accepted, 4);
    assert_eq!(limited, 6);
    apply(&mut r, &hb("quiet", 1, Level::Ok, 1.0)[0], 1_200).expect("others are not limited");
    // A second later the budget has 1,000 more.
    apply(&mut r, &many("chatty", 11, 0, 500, false)[0], 2_200).expect("refilled");
}

#[test]
fn hostile_texts_are_cleaned_and_hostile_keys_refused() {
    let mut r = Registry::new(Settings::default());
    let reading = |key: &str, message: String| Reading {
        key: key.into(),
        value: Value::Text("a\u{1b}[2Jb".into()),
        unit: "%\r".into(),
        level: Level::Critical,
        message,
        threshold: "warn\n=1".into(),
    };
    let h = Heartbeat {
        host: "evil".into(),
        instance: 1,
        seq: 1,
        sent_ms: 5_000,
        interval_ms: 10_000,
        level: Level::Critical,
        readings: vec![
            reading("nagios.x", format!("\0\u{7}\u{202E}{}", "y".repeat(30_000))),
            reading("nagios.\u{1b}bad", String::new()),
        ],
    };
    for d in encode(&h, None, 65_000).expect("encode") {
        apply(&mut r, &d, 1_000).expect("ok");
    }
    let host = r.get("evil").expect("host");
    assert_eq!(host.readings.len(), 1, "the key with ESC is refused");
    assert_eq!(r.reading_drops.bad_key, 1);
    let x = host.readings.get(0).expect("reading");
    assert!(x.message().len() <= crate::text::MAX_TEXT);
    assert!(
        x.message().starts_with("\u{FFFD}\u{FFFD}\u{FFFD}yyy"),
        "{:?}",
        &x.message()[..12]
    );
    assert_eq!(x.value(), Val::Text("a\u{FFFD}[2Jb".into()));
    assert_eq!(x.unit(), "%\u{FFFD}");
    assert_eq!(x.threshold(), "warn\u{FFFD}=1");
}

/// docs/faults.md "Packet loss": a refresh (a later copy of a part already applied)
/// renews the deadline only; a byte-identical duplicate stays `replayed`.
#[test]
fn a_refresh_keeps_a_host_alive_and_a_duplicate_does_not() {
    let mut r = Registry::new(Settings::default());
    let d = hb("a", 1, Level::Ok, 10.0).remove(0);
    apply(&mut r, &d, 5_000).expect("first");
    assert_eq!(r.get("a").expect("a").deadline_ms, 30_000);
    // A duplicate (same bytes) later: refused, no sign of life.
    assert_eq!(apply(&mut r, &d, 8_000).err(), Some(Reject::Replayed));
    assert_eq!(r.get("a").expect("a").deadline_ms, 30_000);
    // A refresh sent later: accepted as a refresh, deadline moves, nothing else does.
    let again = hb_proto::resend(&d, 8_333, None);
    let p = decode(&again, None).expect("decode");
    let mut ev = Vec::new();
    assert_eq!(r.apply(&p, SRC, 8_400, &mut ev), Ok(Applied::Refresh));
    assert!(ev.is_empty());
    let h = r.get("a").expect("a");
    assert_eq!(
        (h.deadline_ms, h.refreshes, h.received, h.lost),
        (33_400, 1, 1, 0)
    );
    assert_eq!(h.last_seen_ms, Some(8_400));
    // The same refresh again (a network duplicate): replayed.
    assert_eq!(apply(&mut r, &again, 8_500).err(), Some(Reject::Replayed));
    // The next heartbeat counts no loss: refreshes and duplicates are not heartbeats.
    apply(&mut r, &hb("a", 2, Level::Ok, 11.0)[0], 15_000).expect("next");
    let h = r.get("a").expect("a");
    assert_eq!((h.received, h.lost, h.loss_recent), (2, 0, 0.0));
    // A refresh of an older heartbeat is no sign of life.
    let old = hb_proto::resend(&d, 16_000, None);
    assert_eq!(apply(&mut r, &old, 16_000).err(), Some(Reject::Replayed));
}

#[test]
fn a_refresh_of_a_lost_part_is_applied_like_the_original() {
    let mut r = Registry::new(Settings::default());
    apply(&mut r, &hb("a", 1, Level::Ok, 10.0)[0], 5_000).expect("first");
    // Heartbeat 2 lost; its refresh arrives and carries its readings.
    let again = hb_proto::resend(&hb("a", 2, Level::Ok, 55.0)[0], 8_333, None);
    let p = decode(&again, None).expect("decode");
    assert_eq!(
        r.apply(&p, SRC, 8_400, &mut Vec::new()),
        Ok(Applied::Heartbeat)
    );
    let h = r.get("a").expect("a");
    assert_eq!((h.received, h.lost, h.refreshes), (2, 0, 0));
    assert_eq!(h.history.back().map(|s| s.cpu), Some(55.0));
}

/// A refresh is checked before the reading budget and takes none of it: a host at its
/// budget stays alive through refreshes, and its refreshes leave the budget alone.
#[test]
fn refreshes_take_nothing_from_the_reading_budget() {
    let mut r = Registry::new(Settings {
        host_reading_rate: 1.0,
        host_reading_burst: 2.0,
        ..Settings::default()
    });
    let d = hb("a", 1, Level::Ok, 10.0).remove(0);
    apply(&mut r, &d, 5_000).expect("first (2 readings: the whole budget)");
    for i in 1..=20u64 {
        let again = hb_proto::resend(&d, 5_000 + i, None);
        let p = decode(&again, None).expect("decode");
        assert_eq!(
            r.apply(&p, SRC, 5_000, &mut Vec::new()),
            Ok(Applied::Refresh)
        );
    }
    let h = r.get("a").expect("a");
    assert_eq!(h.refreshes, 20);
    assert_eq!(h.budget, 0.0, "untouched by refreshes");
}

#[test]
fn recent_loss_and_the_detector_state() {
    let mut r = Registry::new(Settings::default());
    apply(&mut r, &hb("a", 1, Level::Ok, 10.0)[0], 0).expect("1");
    // Heartbeats 2..=4 lost.
    apply(&mut r, &hb("a", 5, Level::Ok, 10.0)[0], 40_000).expect("5");
    let h = r.get("a").expect("a");
    assert_eq!(h.lost, 3);
    let expected = (1.0 - 0.98f32.powi(3)) * 0.98;
    assert!((h.loss_recent - expected).abs() < 1e-6, "{}", h.loss_recent);
    assert_eq!(h.detector(40_000 + 11_000), Detector::Alive);
    assert_eq!(h.detector(40_000 + 11_001), Detector::Suspect);
    let mut ev = Vec::new();
    r.tick(40_000 + 25_000, &mut ev);
    assert_eq!(r.get("a").expect("a").detector(65_000), Detector::Down);
}

fn sample(t: u32, cpu: f32) -> Sample {
    Sample {
        t,
        cpu,
        mem: f32::NAN,
        fs: 12.34,
        load: 700.0,
    }
}

#[test]
fn history_keeps_exact_times_across_drops_and_restarts_after_a_long_gap() {
    assert_eq!(std::mem::size_of::<Packed>(), 7);
    let mut h = History::default();
    // Irregular gaps, more samples than kept.
    let times: Vec<u32> = (0..100u32)
        .map(|i| 1_700_000_000 + i * 10 + i % 7)
        .collect();
    for (i, t) in times.iter().enumerate() {
        h.push(sample(*t, i as f32), 60);
    }
    assert_eq!(h.len(), 60);
    let got: Vec<u32> = h.iter().map(|s| s.t).collect();
    assert_eq!(got, times[40..].to_vec());
    assert_eq!(h.get(0).map(|s| s.t), Some(times[40]));
    assert_eq!(h.get(59).map(|s| s.t), Some(times[99]));
    assert_eq!(h.back().map(|s| s.t), Some(times[99]));
    let s = h.back().expect("newest");
    assert_eq!(s.cpu, 99.0);
    assert!(s.mem.is_nan());
    assert_eq!(s.fs, 12.3, "percentages are kept in tenths");
    assert_eq!(s.load, 700.0, "loads above 81.91 are kept in tenths");
    assert_eq!(h.iter().next_back().map(|s| s.t), Some(times[99]));
    // A clock stepped back: the sample is kept, at the newest time so far.
    h.push(sample(times[99] - 5, 1.0), 60);
    assert_eq!(h.back().map(|s| s.t), Some(times[99]));
    // More than 68 minutes without a sample: the history starts again.
    let later = times[99] + 4_096;
    h.push(sample(later, 2.0), 60);
    assert_eq!(h.len(), 1);
    assert_eq!(h.iter().map(|s| s.t).collect::<Vec<_>>(), vec![later]);
    // Serialized as samples and read back the same.
    let json = serde_json::to_string(&h).expect("json");
    let back: History = serde_json::from_str(&json).expect("parse");
    assert_eq!(back.iter().map(|s| s.t).collect::<Vec<_>>(), vec![later]);
}

#[test]
fn recent_events_are_kept_compact_and_read_back_whole() {
    let mut r = Registry::new(Settings::default());
    apply(&mut r, &hb("a", 1, Level::Ok, 10.0)[0], 1_000).expect("applied");
    apply(&mut r, &hb("a", 2, Level::Critical, 10.0)[0], 11_000).expect("applied");
    let h = r.get("a").expect("host");
    let ev: Vec<Event> = h.recent.events(&h.name).collect();
    assert_eq!(h.recent.first_kind(), Some(EventKind::HostNew));
    let level = ev
        .iter()
        .find(|e| e.kind == EventKind::CheckLevel)
        .expect("check_level kept");
    assert_eq!(level.host, "a");
    assert_eq!(level.key.as_deref(), Some("cpu.usage_percent"));
    assert_eq!(level.from.as_deref(), Some("OK"));
    assert_eq!(level.to.as_deref(), Some("CRITICAL"));
    // The snapshot form names no host (the line is the host's) and reads back.
    let json = serde_json::to_string(&h.recent).expect("json");
    let back: Recent = serde_json::from_str(&json).expect("parse");
    let again: Vec<Event> = back.events("a").collect();
    assert_eq!(
        serde_json::to_value(&again).ok(),
        serde_json::to_value(&ev).ok()
    );
}

#[test]
fn packed_samples_keep_tenths_of_percent_and_loads_up_to_900() {
    let at = |cpu: f32, load: f32| {
        let s = Sample {
            t: 0,
            cpu,
            mem: f32::NAN,
            fs: 100.0,
            load,
        };
        Packed::of(s, MAX_GAP).sample(0)
    };
    for (cpu, kept) in [
        (0.0, 0.0),
        (41.34, 41.3),
        (99.96, 100.0),
        (150.0, 102.2),
        (-5.0, 0.0),
    ] {
        assert_eq!(at(cpu, 0.0).cpu, kept, "cpu {cpu}");
    }
    for (load, kept) in [
        (0.01, 0.01),
        (81.91, 81.91),
        (81.92, 81.9),
        (82.0, 82.0),
        (123.45, 123.5),
        (900.9, 900.9),
        (5_000.0, 900.9),
    ] {
        assert!(
            (at(0.0, load).load - kept).abs() < 1e-3,
            "load {load}: {}",
            at(0.0, load).load
        );
    }
    let s = at(f32::NAN, f32::NAN);
    assert!(s.cpu.is_nan() && s.mem.is_nan() && s.load.is_nan());
    assert_eq!(s.fs, 100.0);
    // The longest gap still continues a history.
    let mut h = History::default();
    h.push(sample(1_000, 1.0), 60);
    h.push(sample(1_000 + MAX_GAP, 2.0), 60);
    assert_eq!(
        h.iter().map(|s| s.t).collect::<Vec<_>>(),
        [1_000, 1_000 + MAX_GAP]
    );
}

#[test]
fn kept_events_read_back_whole_whatever_their_texts() {
    assert_eq!(std::mem::size_of::<Kept>(), 48);
    let mut i = Interner::default();
    let ev = |kind, key: Option<&str>, from: Option<&str>, to: Option<&str>| Event {
        id: 7,
        ts_ms: 1_000,
        host: "h".into(),
        kind,
        key: key.map(Into::into),
        from: from.map(Into::into),
        to: to.map(Into::into),
        message: "m".into(),
    };
    for e in [
        ev(EventKind::HostUp, None, Some("NEVER_SEEN"), Some("UP")),
        ev(
            EventKind::CheckLevel,
            Some("fs./.used_percent"),
            Some("OK"),
            Some("CRITICAL"),
        ),
        ev(
            EventKind::DnsUpdate,
            None,
            Some("192.0.2.1"),
            Some("2001:db8::1"),
        ),
        ev(EventKind::HostLevel, None, Some("ok"), None),
        ev(EventKind::HostNew, None, None, None),
    ] {
        assert_eq!(Kept::of(&e, Some(&mut i)).event("h"), e);
        assert_eq!(Kept::of(&e, None).event("h"), e);
    }
}

/// Readings as a plain list, the way the registry is meant to keep them: a new heartbeat
/// first drops what the previous one did not carry, then updates in place or appends.
#[derive(Debug, Clone, PartialEq)]
struct ModelReading {
    key: String,
    value: Val,
    unit: String,
    level: LevelName,
    message: String,
    threshold: String,
    seen: bool,
}

fn model_apply(model: &mut Vec<ModelReading>, readings: &[Reading]) {
    model.retain(|r| r.seen);
    model.iter_mut().for_each(|r| r.seen = false);
    for r in readings {
        let value = match &r.value {
            Value::F64(v) => Val::F64(*v),
            Value::I64(v) => Val::I64(*v),
            Value::Bool(b) => Val::Bool(*b),
            Value::Text(t) => Val::Text(t.as_str().into()),
        };
        let new = ModelReading {
            key: r.key.clone(),
            value,
            unit: r.unit.clone(),
            level: LevelName::from(r.level),
            message: r.message.clone(),
            threshold: r.threshold.clone(),
            seen: true,
        };
        match model.iter_mut().find(|m| m.key == r.key) {
            Some(m) => *m = new,
            None => model.push(new),
        }
    }
}

/// Many hosts drawing from a few key sets (so they share schemas, and leave them), with
/// keys appearing and disappearing, units, thresholds, messages, text values and levels
/// changing: every host's readings always read back as the plain model says, and the
/// schemas no host holds any more are not kept for ever.
#[test]
fn readings_in_shared_schemas_match_a_plain_model() {
    let mut rng = 0x2545_f491_4f6c_dd1du64;
    let mut next = move |n: u64| {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng % n
    };
    let mut r = Registry::new(Settings {
        host_reading_rate: 0.0,
        ..Settings::default()
    });
    const HOSTS: usize = 12;
    let mut models: Vec<Vec<ModelReading>> = vec![Vec::new(); HOSTS];
    for round in 0..400u64 {
        for (host, model) in models.iter_mut().enumerate() {
            // Mostly the host's usual keys (one of 3 sets, 40 keys: above the index
            // threshold), sometimes a few more or fewer.
            let set = (host % 3) as u64;
            let count = 30 + next(12);
            let keys: Vec<u64> = (0..count).filter(|_| next(50) != 0).collect();
            let mut readings: Vec<Reading> = keys
                .into_iter()
                .map(|k| {
                    let key = format!("set{set}.k{k}");
                    let value = match next(10) {
                        0 => Value::Text(["Debian", "Alpine", ""][next(3) as usize].into()),
                        1 => Value::I64(next(1_000) as i64),
                        2 => Value::Bool(next(2) == 0),
                        _ => Value::F64(next(10_000) as f64 / 7.0),
                    };
                    Reading {
                        key,
                        value,
                        unit: ["%", "B", ""][(k % 3) as usize].into(),
                        level: [
                            Level::Ok,
                            Level::Ok,
                            Level::Ok,
                            Level::Warning,
                            Level::Critical,
                        ][next(5) as usize],
                        message: if next(8) == 0 {
                            format!("m{}", next(4))
                        } else {
                            String::new()
                        },
                        threshold: if next(20) == 0 {
                            "warn=1".into()
                        } else {
                            String::new()
                        },
                    }
                })
                .collect();
            if next(4) == 0 {
                readings.push(Reading {
                    key: format!("own.h{host}.r{round}"),
                    value: Value::F64(1.0),
                    unit: String::new(),
                    level: Level::Ok,
                    message: String::new(),
                    threshold: String::new(),
                });
            }
            let h = Heartbeat {
                host: format!("h{host}"),
                instance: 1_000,
                seq: round + 1,
                sent_ms: 5_000,
                interval_ms: 10_000,
                level: Level::Ok,
                readings: readings.clone(),
            };
            for d in encode(&h, None, 1_400).expect("encode") {
                apply(&mut r, &d, 1_000 + round * 10_000).expect("applied");
            }
            model_apply(model, &readings);
            let got: Vec<ModelReading> = r
                .get(&h.host)
                .expect("host")
                .readings
                .iter()
                .map(|x| ModelReading {
                    key: x.key().into(),
                    value: x.value(),
                    unit: x.unit().into(),
                    level: x.level,
                    message: x.message().into(),
                    threshold: x.threshold().into(),
                    seen: true,
                })
                .collect();
            let want: Vec<ModelReading> = model
                .iter()
                .map(|m| ModelReading {
                    seen: true,
                    ..m.clone()
                })
                .collect();
            assert_eq!(got, want, "host h{host}, round {round}");
        }
    }
    // Every host holds one schema; the set keeps at most twice what is held (and 1,024).
    assert!(
        r.interned.schemas() <= 1_024,
        "{} schemas kept",
        r.interned.schemas()
    );
}

/// The largest hostile form of interned texts: distinct texts of the longest length a
/// heartbeat may carry. The table never frees them, so it stops sharing new ones at its
/// byte cap: what it holds stays bounded, and texts beyond still work (unshared).
#[test]
fn interned_texts_stop_at_their_byte_cap() {
    use readings::MAX_INTERNED_TEXT_BYTES;
    let mut i = Interner::default();
    let n = MAX_INTERNED_TEXT_BYTES / crate::text::MAX_TEXT + 100;
    let mut shared = 0;
    for k in 0..n {
        let t = format!("{k:0width$}", width = crate::text::MAX_TEXT);
        let (a, is_shared) = i.text(&t);
        assert_eq!(&*a, t.as_str());
        shared += usize::from(is_shared);
    }
    assert_eq!(shared, MAX_INTERNED_TEXT_BYTES / crate::text::MAX_TEXT);
    assert!(
        !i.text(&"x".repeat(crate::text::MAX_TEXT)).1,
        "over the cap: unshared"
    );
    // Texts interned before the cap stay shared.
    assert!(
        i.text(&format!("{:0width$}", 0, width = crate::text::MAX_TEXT))
            .1
    );
}
