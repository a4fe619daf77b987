//! The real hbc and bundled plugins against hbd: a host appears within one interval with
//! its readings, goes DOWN within its deadline when hbc stops, and comes back UP; hbd
//! restarts (clean, and from the journal alone) restore the registry without false DOWN.

use std::time::Duration;

use crate::util::*;

#[test]
fn host_appears_goes_down_and_comes_back() {
    let dir = tempfile::tempdir().expect("tempdir");
    let hbd = Hbd::start(config("grace: 2.5\n"), dir.path(), 0);
    let server = hbd.udp.to_string();
    let hbc = Hbc::start(
        &server,
        "500ms",
        "",
        &["cpu", "memory", "filesystem"],
        "e2e-host",
    );

    let took = hbd.wait_for(Duration::from_secs(5), "host e2e-host appears UP", |h| {
        h.status("e2e-host").as_deref() == Some("UP")
    });
    assert!(took < Duration::from_secs(3), "appeared after {took:?}");
    hbd.wait_for(Duration::from_secs(3), "readings arrive", |h| {
        h.host("e2e-host").is_some_and(|b| {
            b["readings"]
                .as_array()
                .is_some_and(|r| r.iter().any(|x| x["key"] == "memory.total_bytes"))
        })
    });
    let body = hbd.host("e2e-host").expect("host");
    assert_eq!(body["interval_ms"], 500);
    assert_eq!(body["addresses"][0]["addr"], "127.0.0.1");
    assert!(body["mem"].as_f64().is_some(), "summary figures: {body}");
    let (_, list) = hbd.get("/api/v1/hosts");
    assert_eq!(list["total"], 1);

    // Deadline: 500 ms × 2.5, but at least interval + 1 s = 1.5 s after the last beat.
    hbc.stop();
    hbd.wait_for(Duration::from_secs(10), "host goes DOWN", |h| {
        h.status("e2e-host").as_deref() == Some("DOWN")
    });
    // Judged on hbd's own clock: the DOWN event fires at the deadline, not later than
    // 1 s after it (the goal), whatever the test's polling adds.
    let last_seen = hbd.host("e2e-host").expect("host")["last_seen_ms"]
        .as_u64()
        .expect("last seen");
    let ev = events(&hbd, "host=e2e-host&kind=host_down");
    assert_eq!(ev.len(), 1, "{ev:?}");
    let fired = ev[0]["ts_ms"].as_u64().expect("ts");
    let after = fired - last_seen;
    assert!(
        (1500..2500).contains(&after),
        "DOWN fired {after} ms after the last heartbeat; the deadline is 1500 ms"
    );
    assert!(ev[0]["message"]
        .as_str()
        .expect("msg")
        .contains("no heartbeat for"));

    let hbc = Hbc::start(&server, "500ms", "", &["memory"], "e2e-host");
    hbd.wait_for(Duration::from_secs(5), "host comes back UP", |h| {
        h.status("e2e-host").as_deref() == Some("UP")
    });
    let ups = events(&hbd, "host=e2e-host&kind=host_up");
    assert_eq!(ups.last().expect("up")["from"], "DOWN");
    hbc.stop();
}

fn restart_case(remove_snapshot: bool) {
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_udp_port();
    let hbd = Hbd::start(config(""), dir.path(), port);
    let hbc = Hbc::start(&hbd.udp.to_string(), "300ms", "", &["memory"], "steady");
    hbd.wait_for(Duration::from_secs(5), "host UP", |h| {
        h.status("steady").as_deref() == Some("UP")
    });
    std::thread::sleep(Duration::from_millis(700));
    let before = events(&hbd, "host=steady");
    hbd.stop();
    if remove_snapshot {
        // As after kill -9: no snapshot written at shutdown; only the journal remains.
        std::fs::remove_file(dir.path().join(hbd::snapshot::FILE)).expect("snapshot existed");
    }
    // hbd is away for a while; hbc keeps beating into the void.
    std::thread::sleep(Duration::from_millis(1500));
    let hbd = Hbd::start(config(""), dir.path(), port);
    let restored = hbd.host("steady").expect("host restored at start-up");
    assert_eq!(restored["status"], "UP", "{restored}");
    assert!(
        !restored["recent_events"]
            .as_array()
            .expect("events")
            .is_empty(),
        "recent events restored"
    );
    // hbc keeps beating: no false DOWN over several deadlines.
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(hbd.status("steady").as_deref(), Some("UP"));
    let after = events(&hbd, "host=steady");
    assert!(
        after.iter().all(|e| e["kind"] != "host_down"),
        "false DOWN after restart: {after:?}"
    );
    assert!(after.len() >= before.len(), "journal kept every event");
    hbc.stop();
}

#[test]
fn clean_restart_restores_registry_without_false_down() {
    restart_case(false);
}

#[test]
fn restart_from_journal_alone_restores_registry_without_false_down() {
    restart_case(true);
}

#[test]
fn two_servers_both_see_the_fleet() {
    let (d1, d2) = (
        tempfile::tempdir().expect("tmp"),
        tempfile::tempdir().expect("tmp"),
    );
    let a = Hbd::start(config(""), d1.path(), 0);
    let b = Hbd::start(config(""), d2.path(), 0);
    let hbc = Hbc::start(
        &a.udp.to_string(),
        "300ms",
        &format!("servers: [\"{}\"]\n", b.udp),
        &["memory"],
        "redundant",
    );
    a.wait_for(Duration::from_secs(5), "server A sees the host", |h| {
        h.status("redundant").as_deref() == Some("UP")
    });
    b.wait_for(Duration::from_secs(5), "server B sees the host", |h| {
        h.status("redundant").as_deref() == Some("UP")
    });
    hbc.stop();
}
