//! The policy with a controlled clock: every test drives events, heartbeats and ticks at
//! chosen milliseconds; nothing sleeps.

use super::*;

const MIN: u64 = 60_000;

fn settings() -> PolicySettings {
    PolicySettings {
        up_after: 1,
        storm_window_ms: 0,
        ..PolicySettings::default()
    }
}

fn ev(kind: EventKind, host: &str, from: &str, to: &str, ts: u64) -> Event {
    Event {
        id: 0,
        ts_ms: ts,
        host: host.into(),
        kind,
        key: None,
        from: Some(from.into()),
        to: Some(to.into()),
        message: String::new(),
    }
}

fn down(p: &mut Policy, host: &str, t: u64) -> Vec<Notification> {
    p.event(&ev(EventKind::HostDown, host, "UP", "DOWN", t), t)
}

/// A host back UP, and the tick that announces it once confirmed.
fn up(p: &mut Policy, host: &str, t: u64) -> Vec<Notification> {
    let mut out = p.event(&ev(EventKind::HostUp, host, "DOWN", "UP", t), t);
    out.extend(p.tick(t + SETTLE_MS));
    out
}

/// A heartbeat, and the tick that announces a confirmation.
fn beat(p: &mut Policy, host: &str, t: u64) -> Vec<Notification> {
    p.heartbeat(host, t);
    p.tick(t + SETTLE_MS)
}

fn level(p: &mut Policy, host: &str, from: &str, to: &str, t: u64) -> Vec<Notification> {
    p.event(&ev(EventKind::HostLevel, host, from, to, t), t)
}

fn kinds(v: &[Notification]) -> Vec<(Kind, &str, &str)> {
    v.iter()
        .map(|n| (n.kind, n.host.as_str(), n.state.as_str()))
        .collect()
}

#[test]
fn down_and_up_after_n_heartbeats() {
    let mut p = Policy::new(PolicySettings {
        up_after: 3,
        ..settings()
    });
    let out = down(&mut p, "web1", 1000);
    assert_eq!(kinds(&out), [(Kind::Down, "web1", "DOWN")]);
    assert_eq!(out[0].level, LevelName::Critical);
    assert!(
        up(&mut p, "web1", 5000).is_empty(),
        "UP waits for confirmation"
    );
    assert!(p.is_pending("web1"));
    assert!(beat(&mut p, "web1", 6000).is_empty(), "2 of 3");
    let out = beat(&mut p, "web1", 7000);
    assert_eq!(kinds(&out), [(Kind::Up, "web1", "UP")]);
    assert_eq!(out[0].level, LevelName::Ok);
    assert!(
        out[0].message.contains("after 4 s DOWN"),
        "{}",
        out[0].message
    );
    assert!(!p.is_pending("web1"));
    assert!(beat(&mut p, "web1", 8000).is_empty(), "only once");
}

#[test]
fn up_carries_the_level_of_the_same_heartbeat() {
    // The registry publishes host_up, then host_level, for one heartbeat: one message.
    let mut p = Policy::new(settings());
    level(&mut p, "w", "OK", "CRITICAL", 0);
    down(&mut p, "w", 10);
    let mut out = p.event(&ev(EventKind::HostUp, "w", "DOWN", "UP", 20), 20);
    out.extend(level(&mut p, "w", "CRITICAL", "OK", 20));
    assert!(out.is_empty(), "not before the tick");
    assert!(p.tick(20 + SETTLE_MS - 1).is_empty());
    let out = p.tick(20 + SETTLE_MS);
    assert_eq!(kinds(&out), [(Kind::Up, "w", "UP")]);
    assert!(out[0].message.ends_with("level OK"), "{}", out[0].message);
    assert!(p.tick(1000).is_empty());
}

#[test]
fn a_host_that_drops_again_before_confirmation_stays_down_silently() {
    let mut p = Policy::new(PolicySettings {
        up_after: 2,
        ..settings()
    });
    assert_eq!(down(&mut p, "a", 0).len(), 1);
    assert!(up(&mut p, "a", 10).is_empty());
    assert!(
        down(&mut p, "a", 20).is_empty(),
        "DOWN was announced already"
    );
    assert!(!p.is_pending("a"));
    assert!(up(&mut p, "a", 30).is_empty());
    assert_eq!(kinds(&beat(&mut p, "a", 40)), [(Kind::Up, "a", "UP")]);
}

#[test]
fn new_hosts_are_quiet_and_never_seen_watched_hosts_notify() {
    let mut p = Policy::new(PolicySettings {
        up_after: 2,
        ..settings()
    });
    let t = 1000;
    assert!(p
        .event(&ev(EventKind::HostNew, "fresh", "", "", t), t)
        .is_empty());
    assert!(p
        .event(&ev(EventKind::HostUp, "fresh", "NEVER_SEEN", "UP", t), t)
        .is_empty());
    assert!(level(&mut p, "fresh", "UNKNOWN", "OK", t).is_empty());
    assert!(
        beat(&mut p, "fresh", t + 10).is_empty(),
        "nothing to announce"
    );

    let out = p.event(
        &ev(EventKind::HostDown, "watched", "NEVER_SEEN", "DOWN", t),
        t,
    );
    assert_eq!(kinds(&out), [(Kind::NeverSeen, "watched", "DOWN")]);
    assert_eq!(out[0].from.as_deref(), Some("NEVER_SEEN"));
    assert!(p
        .event(
            &ev(EventKind::HostUp, "watched", "DOWN", "UP", t + 5),
            t + 5
        )
        .is_empty());
    assert_eq!(
        kinds(&beat(&mut p, "watched", t + 6)),
        [(Kind::Up, "watched", "UP")]
    );
}

#[test]
fn level_changes_and_back_to_ok() {
    let mut p = Policy::new(settings());
    let out = level(&mut p, "db", "OK", "WARNING", 0);
    assert_eq!(kinds(&out), [(Kind::Level, "db", "WARNING")]);
    assert_eq!(out[0].from.as_deref(), Some("OK"));
    assert_eq!(
        kinds(&level(&mut p, "db", "WARNING", "CRITICAL", 10)),
        [(Kind::Level, "db", "CRITICAL")]
    );
    let out = level(&mut p, "db", "CRITICAL", "OK", 20);
    assert_eq!(kinds(&out), [(Kind::Level, "db", "OK")]);
    assert_eq!(out[0].level, LevelName::Ok);
    // While DOWN, levels are stale: nothing; the UP message carries the level.
    down(&mut p, "db", 30);
    let up_out = up(&mut p, "db", 40);
    assert_eq!(kinds(&up_out), [(Kind::Up, "db", "UP")]);
    assert!(up_out[0].message.contains("level OK"));
}

#[test]
fn flapping_sends_one_start_and_one_stop() {
    let mut p = Policy::new(settings());
    let mut all = Vec::new();
    let mut t = 0;
    // DOWN/UP every 20 s for 4 minutes: far above 30 % of changes in 10 min.
    for _ in 0..6 {
        all.extend(down(&mut p, "flappy", t));
        t += 20_000;
        all.extend(up(&mut p, "flappy", t));
        t += 20_000;
    }
    let k = kinds(&all);
    let start = k
        .iter()
        .position(|x| x.0 == Kind::Flapping)
        .expect("flapping announced");
    assert!(
        start <= 6,
        "a few changes go out before it counts as flapping: {k:?}"
    );
    assert_eq!(
        k.iter().filter(|x| x.0 == Kind::Flapping).count(),
        1,
        "one flapping message: {k:?}"
    );
    assert!(
        k[start + 1..].is_empty(),
        "changes after flapping started are held back: {k:?}"
    );
    assert!(all[start].flap_percent.is_some_and(|v| v >= 30.0));
    assert_eq!(p.flapping(), [("flappy".to_string(), None)]);
    // It settles UP; ticks: nothing until the percentage decays below the low mark.
    let mut stops = Vec::new();
    let mut now = t;
    while now < t + 20 * MIN {
        now += 10_000;
        stops.extend(p.tick(now));
    }
    assert_eq!(
        kinds(&stops),
        [(Kind::FlappingStopped, "flappy", "OK")],
        "one stop message"
    );
    assert!(p.flapping().is_empty());
    // Settled state counts as announced: a later DOWN is a normal notification.
    assert_eq!(
        kinds(&down(&mut p, "flappy", now + 1)),
        [(Kind::Down, "flappy", "DOWN")]
    );
}

#[test]
fn flapping_that_stops_while_down_announces_down_once() {
    let mut p = Policy::new(settings());
    let mut t = 0;
    for _ in 0..8 {
        down(&mut p, "f", t);
        t += 10_000;
        up(&mut p, "f", t);
        t += 10_000;
    }
    down(&mut p, "f", t);
    let mut stops = Vec::new();
    let mut now = t;
    while now < t + 30 * MIN {
        now += 10_000;
        stops.extend(p.tick(now));
    }
    assert_eq!(kinds(&stops), [(Kind::FlappingStopped, "f", "DOWN")]);
    assert!(
        up(&mut p, "f", now).iter().any(|n| n.kind == Kind::Up),
        "UP after a settled DOWN"
    );
}

#[test]
fn a_storm_becomes_one_grouped_notification() {
    let mut p = Policy::new(PolicySettings {
        storm_window_ms: 10_000,
        storm_threshold: 5,
        ..settings()
    });
    // The first goes out at once (issue 15: the first alert is not delayed by the
    // window) and opens the window; the other 39 are held.
    let first = down(&mut p, "h00", 1000);
    assert_eq!(kinds(&first), [(Kind::Down, "h00", "DOWN")]);
    for i in 1..40u64 {
        assert!(
            down(&mut p, &format!("h{i:02}"), 1000 + i * 100).is_empty(),
            "held"
        );
    }
    assert_eq!(p.held(), 39);
    assert!(p.tick(10_999).is_empty(), "window still open");
    let out = p.tick(11_000);
    assert_eq!(out.len(), 1, "{:?}", kinds(&out));
    let g = &out[0];
    assert_eq!(
        (g.kind, g.state.as_str(), g.level),
        (Kind::Storm, "39 hosts", LevelName::Critical)
    );
    assert_eq!(g.items.len(), 39);
    assert_eq!(g.items[0].host, "h01", "in order");
    assert!(g.items.iter().all(|n| n.host != "h00"), "nothing twice");
    assert_eq!(g.message, "39 DOWN (after h00, announced at once)");
    assert_eq!(p.held(), 0);
    // They come back together: one more group; system problems are never held.
    for i in 0..40u64 {
        up(&mut p, &format!("h{i:02}"), 20_000 + i);
    }
    let sys = p.event(
        &Event {
            message: "disk full".into(),
            ..ev(EventKind::System, "hbd", "", "", 20_100)
        },
        20_100,
    );
    assert_eq!(kinds(&sys), [(Kind::System, "hbd", "")]);
    let out = p.tick(30_100);
    assert_eq!(kinds(&out), [(Kind::Storm, "hbd", "40 hosts")]);
    assert_eq!(out[0].message, "40 UP");
}

/// A 500-host partition: one message at once, one group per window after it, never
/// one message per host; nothing is lost or sent twice.
#[test]
fn a_partition_of_500_hosts_is_one_alert_at_once_and_one_group() {
    let mut p = Policy::new(PolicySettings {
        storm_window_ms: 10_000,
        storm_threshold: 5,
        ..settings()
    });
    let mut sent = Vec::new();
    // Deadlines pass over 8 s (hosts beat at their own phases); ticks every 250 ms.
    for i in 0..500u64 {
        let t = 50_000 + i * 16;
        sent.extend(down(&mut p, &format!("h{i:03}"), t));
        sent.extend(p.tick(t));
    }
    let mut t = 58_000;
    while t <= 90_000 {
        sent.extend(p.tick(t));
        t += 250;
    }
    assert_eq!(sent.len(), 2, "{:?}", kinds(&sent));
    assert_eq!((sent[0].kind, sent[0].host.as_str()), (Kind::Down, "h000"));
    assert_eq!(sent[0].since_ms, 50_000, "at once");
    assert_eq!(sent[1].kind, Kind::Storm);
    let mut hosts: Vec<&str> = std::iter::once(sent[0].host.as_str())
        .chain(sent[1].items.iter().map(|n| n.host.as_str()))
        .collect();
    hosts.sort_unstable();
    hosts.dedup();
    assert_eq!(hosts.len(), 500, "every host once");
    assert_eq!(sent[1].items.len(), 499);
    // Quiet again: the next change goes out at once.
    let later = down(&mut p, "other", 200_000);
    assert_eq!(kinds(&later), [(Kind::Down, "other", "DOWN")]);
}

#[test]
fn a_few_changes_in_the_window_go_out_one_by_one() {
    let mut p = Policy::new(PolicySettings {
        storm_window_ms: 10_000,
        storm_threshold: 5,
        ..settings()
    });
    assert_eq!(kinds(&down(&mut p, "a", 0)), [(Kind::Down, "a", "DOWN")]);
    down(&mut p, "b", 1);
    level(&mut p, "c", "OK", "WARNING", 2);
    level(&mut p, "c", "WARNING", "CRITICAL", 3);
    let out = p.tick(10_000);
    assert_eq!(
        kinds(&out),
        [
            (Kind::Down, "b", "DOWN"),
            (Kind::Level, "c", "WARNING"),
            (Kind::Level, "c", "CRITICAL")
        ]
    );
    // Shutdown releases what is held.
    assert_eq!(
        kinds(&down(&mut p, "d", 30_000)),
        [(Kind::Down, "d", "DOWN")]
    );
    down(&mut p, "e", 30_001);
    assert_eq!(kinds(&p.flush(30_002)), [(Kind::Down, "e", "DOWN")]);
}

#[test]
fn reminders_repeat_while_down_and_are_off_by_default() {
    let mut off = Policy::new(settings());
    down(&mut off, "a", 0);
    assert!(off.tick(100 * 60 * MIN).is_empty(), "off by default");

    let mut p = Policy::new(PolicySettings {
        reminder_ms: Some(60 * MIN),
        ..settings()
    });
    down(&mut p, "a", 0);
    assert!(p.tick(59 * MIN).is_empty());
    let r = p.tick(60 * MIN);
    assert_eq!(kinds(&r), [(Kind::Reminder, "a", "DOWN")]);
    assert!(
        r[0].message.contains("still DOWN after 1 h"),
        "{}",
        r[0].message
    );
    assert!(p.tick(60 * MIN + 1000).is_empty());
    assert_eq!(p.tick(120 * MIN).len(), 1);
    up(&mut p, "a", 121 * MIN);
    assert!(p.tick(300 * MIN).is_empty(), "no reminders once UP");
}

#[test]
fn silences_mute_and_their_end_announces_only_what_is_still_true() {
    let mut p = Policy::new(PolicySettings {
        reminder_ms: Some(30 * MIN),
        ..settings()
    });
    // "was" was announced DOWN before the silence.
    down(&mut p, "web-was", 0);
    let s = p
        .add_silence(
            "web-*",
            None,
            60 * MIN,
            "kernel upgrades",
            Some("ops".into()),
            MIN,
        )
        .expect("silence");
    assert_eq!((s.id, s.from_ms), (1, MIN));
    assert!(down(&mut p, "web-still", 2 * MIN).is_empty(), "muted");
    assert!(down(&mut p, "web-back", 3 * MIN).is_empty(), "muted");
    assert!(up(&mut p, "web-back", 4 * MIN).is_empty(), "muted");
    assert!(up(&mut p, "web-was", 5 * MIN).is_empty(), "muted");
    assert!(level(&mut p, "web-lvl", "OK", "WARNING", 6 * MIN).is_empty());
    assert_eq!(
        kinds(&down(&mut p, "db1", 7 * MIN)),
        [(Kind::Down, "db1", "DOWN")],
        "not covered"
    );
    assert!(
        p.tick(50 * MIN).iter().all(|n| n.host == "db1"),
        "no reminders while silenced"
    );
    assert_eq!(p.silences(50 * MIN).len(), 1);
    let mut out = p.tick(60 * MIN);
    out.sort_by(|a, b| a.host.cmp(&b.host));
    assert_eq!(
        kinds(&out),
        [
            (Kind::Level, "web-lvl", "WARNING"),
            (Kind::Down, "web-still", "DOWN"),
            (Kind::Up, "web-was", "UP"),
        ],
        "web-back recovered during the silence: no stale DOWN"
    );
    assert!(p.silences(60 * MIN).is_empty());
    assert!(p.tick(61 * MIN).is_empty(), "once");
}

#[test]
fn ending_a_silence_early_and_planned_maintenance() {
    let mut p = Policy::new(settings());
    let s = p
        .add_silence("db1", Some(10 * MIN), 20 * MIN, "planned", None, 0)
        .expect("silence");
    assert_eq!(
        kinds(&down(&mut p, "db1", MIN)),
        [(Kind::Down, "db1", "DOWN")],
        "not started yet"
    );
    assert!(up(&mut p, "db1", 11 * MIN).is_empty(), "during maintenance");
    assert!(
        down(&mut p, "db1", 12 * MIN).is_empty(),
        "during maintenance"
    );
    let (removed, out) = p.remove_silence(s.id, 13 * MIN).expect("exists");
    assert_eq!(removed.reason, "planned");
    assert!(
        out.is_empty(),
        "DOWN was announced before and it is DOWN now: nothing new"
    );
    assert!(p.remove_silence(s.id, 13 * MIN).is_none());
    assert_eq!(
        p.add_silence("bad name!", None, MIN, "x", None, 0),
        Err(SilenceError::Pattern)
    );
    assert_eq!(
        p.add_silence("a", None, 5, "x", None, 10),
        Err(SilenceError::Until)
    );
    assert_eq!(
        p.add_silence("a", None, MIN, " ", None, 0),
        Err(SilenceError::Reason)
    );
}

#[test]
fn system_problems_are_deduplicated_and_recoveries_follow_problems() {
    let mut p = Policy::new(settings());
    let sys = |msg: &str| Event {
        message: msg.into(),
        from: None,
        to: None,
        ..ev(EventKind::System, "hbd", "", "", 0)
    };
    assert_eq!(
        kinds(&p.event(&sys("journal: disk full"), 0)),
        [(Kind::System, "hbd", "PROBLEM")]
    );
    assert!(
        p.event(&sys("journal: disk full"), 1000).is_empty(),
        "repeat within the hour"
    );
    assert_eq!(p.event(&sys("journal: disk full"), 3_600_000).len(), 1);
    assert_eq!(p.event(&sys("another problem"), 3_600_001).len(), 1);
    // A subsystem's own event kind with a to-state: failures notify, successes only
    // after a failure.
    let dns = |to: &str| Event {
        key: Some("web1".into()),
        message: format!("update {to}"),
        ..ev(EventKind::System, "web1", "", to, 0)
    };
    assert!(
        p.event(&dns("OK"), 10).is_empty(),
        "success without a problem before"
    );
    let out = p.event(&dns("FAILED"), 20);
    assert_eq!(
        (out[0].kind, out[0].level),
        (Kind::System, LevelName::Critical)
    );
    let out = p.event(&dns("OK"), 30);
    assert_eq!((out[0].kind, out[0].level), (Kind::System, LevelName::Ok));
    assert!(p.event(&dns("OK"), 40).is_empty());
    // Kinds this module does not know: `*_failed` is a problem (once per topic within
    // the repeat time), the base kind after it a recovery, alone nothing.
    let other = |kind: EventKind, to: &str, msg: &str| Event {
        message: msg.into(),
        ..ev(kind, "db1", "10.0.0.1", to, 0)
    };
    assert!(p
        .event(&other(EventKind::DnsUpdate, "10.0.0.2", "updated"), 50)
        .is_empty());
    let out = p.event(
        &other(EventKind::DnsUpdateFailed, "10.0.0.3", "REFUSED"),
        60,
    );
    assert_eq!(kinds(&out), [(Kind::System, "db1", "FAILED")]);
    assert!(out[0].message.starts_with("dns_update_failed: REFUSED"));
    assert!(p
        .event(
            &other(EventKind::DnsUpdateFailed, "10.0.0.3", "SERVFAIL"),
            70
        )
        .is_empty());
    let out = p.event(&other(EventKind::DnsUpdate, "10.0.0.3", "updated"), 80);
    assert_eq!((out[0].level, out[0].state.as_str()), (LevelName::Ok, "OK"));
}

#[test]
fn channel_alarms_name_the_channel() {
    let mut p = Policy::new(settings());
    let e = Event {
        key: Some("notify.email".into()),
        message: "failing for 10 min: connection refused".into(),
        ..ev(EventKind::System, "hbd", "OK", "FAILING", 5)
    };
    let out = p.event(&e, 5);
    assert_eq!(kinds(&out), [(Kind::ChannelFailing, "hbd", "FAILING")]);
    assert_eq!(out[0].key.as_deref(), Some("email"));
}

#[test]
fn checks_notify_and_flap_on_their_own() {
    let mut p = Policy::new(settings());
    let check = |to: &str, t: u64| Event {
        key: Some("fs./.used_percent".into()),
        message: format!("{to} at 96"),
        ..ev(EventKind::CheckLevel, "db", "", to, t)
    };
    let out = p.event(&check("CRITICAL", 0), 0);
    assert_eq!(kinds(&out), [(Kind::Check, "db", "CRITICAL")]);
    assert_eq!(out[0].key.as_deref(), Some("fs./.used_percent"));
    let mut all = Vec::new();
    for i in 1..20 {
        let to = if i % 2 == 0 { "CRITICAL" } else { "OK" };
        all.extend(p.event(&check(to, i * 5000), i * 5000));
    }
    assert_eq!(
        all.iter().filter(|n| n.kind == Kind::CheckFlapping).count(),
        1
    );
    assert_eq!(all.last().map(|n| n.kind), Some(Kind::CheckFlapping));
    let mut stops = Vec::new();
    for m in 1..40 {
        stops.extend(p.tick(100_000 + m * MIN));
    }
    assert_eq!(kinds(&stops), [(Kind::CheckFlappingStopped, "db", "OK")]);
}

#[test]
fn saved_state_survives_a_restart() {
    let mut p = Policy::new(PolicySettings {
        up_after: 2,
        reminder_ms: Some(MIN),
        ..settings()
    });
    down(&mut p, "a", 0);
    down(&mut p, "b", 0);
    up(&mut p, "b", 10);
    level(&mut p, "quiet", "CRITICAL", "OK", 5);
    p.add_silence("z*", None, 10 * MIN, "why", None, 0)
        .expect("silence");
    let json = serde_json::to_string(&p.save()).expect("json");
    let saved: Saved = serde_json::from_str(&json).expect("parse");
    assert!(
        !saved.hosts.contains_key("quiet"),
        "default hosts are not saved"
    );
    let mut q = Policy::restore(p.settings().clone(), saved);
    assert!(q.is_pending("b"), "pending UP continues");
    assert_eq!(q.pending_hosts(), ["b"]);
    assert_eq!(kinds(&beat(&mut q, "b", 20)), [(Kind::Up, "b", "UP")]);
    assert!(
        down(&mut q, "a", 30).is_empty(),
        "DOWN known to be announced"
    );
    assert_eq!(q.silences(0).len(), 1);
    assert_eq!(kinds(&q.tick(MIN)), [(Kind::Reminder, "a", "DOWN")]);
    let id = q.make(Kind::Test, "hbd", "OK", String::new(), 0).id;
    assert!(
        id.ends_with(&format!("-{}", p.next_id + 3)),
        "ids keep growing: {id}"
    );
}

#[test]
fn forgotten_hosts_are_dropped() {
    let mut p = Policy::new(PolicySettings {
        reminder_ms: Some(MIN),
        ..settings()
    });
    down(&mut p, "gone", 0);
    p.event(&ev(EventKind::HostForgotten, "gone", "", "", 1), 1);
    assert!(p.tick(10 * MIN).is_empty());
    assert!(p.save().hosts.is_empty());
}

#[test]
fn durations_read_well() {
    assert_eq!(human_duration(4_000), "4 s");
    assert_eq!(human_duration(125_000), "2 min");
    assert_eq!(human_duration(3_600_000), "1 h");
    assert_eq!(human_duration(3_900_000), "1 h 5 min");
    assert_eq!(human_duration(90_000_000), "1 d 1 h");
}

#[test]
fn quiet_hosts_are_not_remembered() {
    let mut p = Policy::new(PolicySettings {
        up_after: 2,
        ..settings()
    });
    for i in 0..1000 {
        let h = format!("h{i}");
        p.event(&ev(EventKind::HostNew, &h, "", "", 0), 0);
        p.event(&ev(EventKind::HostUp, &h, "NEVER_SEEN", "UP", 0), 0);
        p.event(&ev(EventKind::HostLevel, &h, "UNKNOWN", "OK", 0), 0);
        p.heartbeat(&h, 10);
    }
    assert_eq!(p.pending_hosts().len(), 1000);
    assert!(p.tick(200).is_empty());
    assert!(p.hosts.is_empty(), "{} hosts kept", p.hosts.len());
    // The room the burst took is given back at the next sweep.
    assert!(p.hosts.capacity() >= 1000);
    p.tick(200 + SWEEP_MS);
    assert!(p.hosts.capacity() < 1000, "capacity {}", p.hosts.capacity());
    // A host with history is kept until the history ages out of the flap window.
    down(&mut p, "x", 1000);
    up(&mut p, "x", 2000);
    assert_eq!(kinds(&beat(&mut p, "x", 2050)), [(Kind::Up, "x", "UP")]);
    assert_eq!(p.hosts.len(), 1);
    p.tick(2000 + p.s.flap_window_ms + 60_000);
    assert!(p.hosts.is_empty());
}
