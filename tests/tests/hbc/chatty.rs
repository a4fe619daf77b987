//! A host whose readings do not fit one heartbeat (ten Nagios checks with long perfdata,
//! more than 255 datagrams' worth) still sends: hbc keeps to its own limit of 64
//! datagrams, keeps the check states, and says in a reading what it left out.

use std::time::Duration;

use crate::util::*;

/// Ten checks, each printing 190 perfdata values with 150-character labels: 1,920
/// readings of about 210 bytes, roughly 300 datagrams of 1400 bytes.
fn chatty_config(interval: &str) -> String {
    let mut config = format!("interval: {interval}\nplugins:\n  nagios:\n    timeout: 5s\n    options:\n      commands:\n");
    let label = "l".repeat(150);
    for c in 0..10 {
        config.push_str(&format!(
            "        chk{c}: {{command: \"printf 'OK - chatty|'; i=0; while [ $i -lt 190 ]; do printf '{label}_%d=%d;80;90;0;100 ' $i $i; i=$((i+1)); done\", shell: true}}\n"
        ));
    }
    config
}

fn assert_left_out_reading(r: &DocReading) {
    assert_eq!(r.level, 1, "WARNING: {r:?}");
    match r.value {
        DocValue::I64(n) => assert!(n > 0, "{r:?}"),
        ref v => panic!("left-out count is not an integer: {v:?}"),
    }
    assert!(
        r.message.contains("readings left out (from nagios"),
        "{}",
        r.message
    );
    assert!(r.message.contains("at most 64 datagrams"), "{}", r.message);
}

#[test]
fn ten_chatty_nagios_checks_still_send_and_say_what_was_left_out() {
    let dir = PluginDir::with(&["nagios", "memory"]);
    let rx = Receiver::new();
    let mut hbc = Hbc::start(
        &chatty_config("1s"),
        &[
            "--plugin-dir",
            dir.path().to_str().expect("utf8"),
            &rx.addr(),
        ],
    );
    let beats = collect_heartbeats(&rx, Duration::from_millis(3_500), None);
    assert!(hbc.alive(), "hbc died:\n{}", hbc.log_text());
    assert!(
        beats.len() >= 2,
        "{} heartbeats in 3.5 s:\n{}",
        beats.len(),
        hbc.log_text()
    );

    let (_, last) = beats.last().expect("heartbeats");
    assert!(last.parts as usize <= 64, "{} parts", last.parts);
    assert!(
        last.parts >= 32,
        "the limit is used, not just a sliver: {} parts",
        last.parts
    );
    assert_left_out_reading(
        last.get("hbc.heartbeat.left_out")
            .expect("left-out reading"),
    );
    // The summaries are kept: every check's state and the memory plugin's figures.
    for c in 0..10 {
        let state = last
            .get(&format!("nagios.chk{c}.state"))
            .unwrap_or_else(|| panic!("chk{c}'s state is kept"));
        assert_eq!(state.level, 0);
    }
    assert!(last.get("memory.used_bytes").is_some());
    assert!(
        hbc.log_text().contains("heartbeat too large"),
        "logged once when it starts:\n{}",
        hbc.log_text()
    );
    assert_eq!(
        hbc.log_text().matches("heartbeat too large").count(),
        1,
        "not every cycle"
    );
}

#[test]
fn once_shows_the_datagram_count_and_the_trimming() {
    let dir = PluginDir::with(&["nagios"]);
    let json = once_json(&chatty_config("10s"), dir.path());
    let datagrams = json["datagrams"].as_u64().expect("datagram count");
    assert!((32..=64).contains(&datagrams), "{datagrams}");
    let left = &json["left_out"];
    assert!(left["readings"].as_u64().is_some_and(|n| n > 0), "{left}");
    // Per check: its state, 190 perfdata values and its duration.
    assert_eq!(left["of"].as_u64(), Some(10 * 192), "{left}");
    assert!(left["needed_datagrams"].is_null(), "over 255: {left}");
    assert!(left["plugins"]["nagios"].as_u64().is_some(), "{left}");
    assert_eq!(json["level"], "WARNING");
    let r = reading(&json, "hbc.heartbeat.left_out").expect("left-out reading");
    assert_eq!(r["level"], "WARNING");

    let dir2 = PluginDir::with(&["memory"]);
    let (status, table, stderr) = run_hbc(
        "",
        &[
            "--plugin-dir",
            dir2.path().to_str().expect("utf8"),
            "--once",
        ],
    );
    assert!(status.success(), "{stderr}");
    assert!(table.contains("readings in 1 datagrams"), "{table}");
    assert!(!table.contains("trimmed:"), "{table}");
    let once = once_json("", dir2.path());
    assert_eq!(once["datagrams"], 1);
    assert!(once["left_out"].is_null(), "{once}");

    let (status, table, stderr) = run_hbc(
        &chatty_config("10s"),
        &["--plugin-dir", dir.path().to_str().expect("utf8"), "--once"],
    );
    assert!(status.success(), "{stderr}");
    assert!(table.contains("trimmed: "), "{table}");
}
