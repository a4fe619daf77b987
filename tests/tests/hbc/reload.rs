//! SIGHUP reloads hbc's config without a restart; a broken new config is rejected with
//! the error and the running one kept.

use std::time::Duration;

use crate::util::*;

fn level_of(beats: &[(std::time::Instant, DocDatagram)], key: &str) -> Option<u8> {
    beats.last().and_then(|(_, b)| b.get(key)).map(|r| r.level)
}

#[test]
fn sighup_applies_a_good_config_and_rejects_a_broken_one() {
    let dir = PluginDir::with(&["memory"]);
    let rx = Receiver::new();
    let mut hbc = Hbc::start(
        "interval: 300ms\n",
        &[
            "--plugin-dir",
            dir.path().to_str().expect("utf8"),
            &rx.addr(),
        ],
    );
    let beats = collect_heartbeats(&rx, Duration::from_secs(1), None);
    assert_eq!(level_of(&beats, "memory.total_bytes"), Some(0));

    // A good new config: a threshold that makes the reading WARNING.
    std::fs::write(
        &hbc.config,
        "interval: 300ms\nthresholds:\n  memory.total_bytes: {warn: 1}\n",
    )
    .expect("write");
    hbc.signal(libc::SIGHUP);
    std::thread::sleep(Duration::from_millis(500));
    let beats = collect_heartbeats(&rx, Duration::from_secs(1), None);
    assert_eq!(
        level_of(&beats, "memory.total_bytes"),
        Some(1),
        "{}",
        hbc.log_text()
    );
    assert!(hbc.log_text().contains("config reloaded"));

    // A broken one: rejected with the error; hbc goes on with the previous config.
    std::fs::write(
        &hbc.config,
        "interval: 300ms\nthresholds:\n  memory.total_bytes: {warn: \"9:1\"}\n",
    )
    .expect("write");
    hbc.signal(libc::SIGHUP);
    std::thread::sleep(Duration::from_millis(500));
    let beats = collect_heartbeats(&rx, Duration::from_secs(1), None);
    assert!(hbc.alive());
    assert!(beats.len() >= 2, "heartbeats continue");
    assert_eq!(level_of(&beats, "memory.total_bytes"), Some(1));
    let log = hbc.log_text();
    assert!(
        log.contains("config not reloaded, keeping the running one")
            && log.contains("memory.total_bytes"),
        "{log}"
    );
    let status = hbc.terminate(Duration::from_secs(3)).expect("stops");
    assert!(status.success());
}
