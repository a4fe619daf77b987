//! Crash quarantine: a plugin that kills hbc in-process runs isolated from the next start
//! on, so a restart loop (systemd's `Restart=on-failure`) ends after one crash. Killing
//! hbc is not a crash.

use std::time::{Duration, Instant};

use crate::util::*;

fn text(r: &DocReading) -> &str {
    match &r.value {
        DocValue::Text(t) => t,
        _ => "",
    }
}

/// Waits until hbc exits or `limit` passes; the exit status if it exited.
fn wait_exit(hbc: &mut Hbc, limit: Duration) -> Option<std::process::ExitStatus> {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if let Ok(Some(s)) = hbc.child.try_wait() {
            return Some(s);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    None
}

#[test]
fn an_aborting_plugin_under_a_restart_loop_ends_quarantined_with_heartbeats_flowing() {
    use std::os::unix::process::ExitStatusExt;
    let dir = PluginDir::with(&["memory", "fault_abort"]);
    let state = tempfile::tempdir().expect("tempdir");
    let config = format!(
        "interval: 300ms\nplugin_timeout: 300ms\nstate_dir: {}\n",
        state.path().display()
    );
    let rx = Receiver::new();
    let args = [
        "--plugin-dir",
        dir.path().to_str().expect("utf8"),
        &rx.addr(),
    ];

    // The restart loop: start hbc, and again whenever it dies.
    let mut crashes = Vec::new();
    let mut hbc = None;
    for _ in 0..4 {
        let mut h = Hbc::start(&config, &args);
        match wait_exit(&mut h, Duration::from_secs(3)) {
            Some(status) => crashes.push((status.signal(), h.log_text())),
            None => {
                hbc = Some(h);
                break;
            }
        }
    }
    let mut hbc = hbc.unwrap_or_else(|| panic!("hbc never stayed up: {crashes:#?}"));
    assert_eq!(crashes.len(), 1, "one crash, then quarantine: {crashes:#?}");
    assert_eq!(crashes[0].0, Some(libc::SIGABRT), "{crashes:#?}");

    let log = hbc.log_text();
    assert!(
        log.contains("hbc was killed by signal 6 (SIGABRT) during plugin fault_abort's collect in-process; plugin quarantined"),
        "{log}"
    );
    let beats = collect_heartbeats(&rx, Duration::from_secs(3), None);
    assert!(hbc.alive(), "{}", hbc.log_text());
    assert!(
        beats.len() >= 7,
        "{} heartbeats in 3 s at 300 ms",
        beats.len()
    );
    let last = &beats.last().expect("beats").1;
    assert!(last.get("memory.used_bytes").is_some());
    let q = last
        .get("hbc.quarantine.fault_abort")
        .expect("a reading says the plugin is quarantined");
    assert_eq!(text(q), "isolated");
    assert_eq!(q.level, 1, "WARNING");
    assert!(q.message.contains("SIGABRT"), "{}", q.message);
    let record = state.path().join("quarantine").join("fault_abort");
    assert!(
        q.message.contains(&format!("remove {}", record.display())),
        "{}",
        q.message
    );
    // Isolated, the plugin still answers between its worker's crashes.
    let answered = beats
        .iter()
        .filter_map(|(_, b)| b.get("fault_abort.calls"))
        .filter(|r| r.level == 0)
        .count();
    assert!(answered >= 1, "{}", hbc.log_text());
    assert!(hbc
        .log_text()
        .contains("worker process died (killed by signal 6 (SIGABRT))"));

    // `hbc plugins` shows it.
    let (status, stdout, stderr) = run_hbc(
        &config,
        &[
            "--plugin-dir",
            dir.path().to_str().expect("utf8"),
            "plugins",
        ],
    );
    assert!(status.success(), "{stderr}");
    let line = stdout
        .lines()
        .find(|l| l.starts_with("fault_abort"))
        .unwrap_or_else(|| panic!("{stdout}"));
    assert!(line.contains("quarantined, runs isolated"), "{line}");

    // The record says how to end the quarantine.
    let text = std::fs::read_to_string(&record).expect("quarantine record");
    assert!(text.contains("remove this file"), "{text}");
    let status = hbc
        .terminate(Duration::from_secs(3))
        .expect("stops on SIGTERM");
    assert!(status.success(), "{status:?}");
}

#[test]
fn killing_hbc_during_a_collect_quarantines_nothing() {
    let dir = PluginDir::with(&["memory", "fault_hang"]);
    let state = tempfile::tempdir().expect("tempdir");
    let config = format!(
        "interval: 200ms\nplugin_timeout: 200ms\nstate_dir: {}\n",
        state.path().display()
    );
    let rx = Receiver::new();
    let args = [
        "--plugin-dir",
        dir.path().to_str().expect("utf8"),
        &rx.addr(),
    ];
    let mut hbc = Hbc::start(&config, &args);
    // fault_hang hangs in its second collect, in-process.
    let beats = collect_heartbeats(&rx, Duration::from_secs(1), None);
    assert!(
        beats
            .last()
            .and_then(|(_, b)| b.get("hbc.plugin.fault_hang"))
            .is_some_and(|r| text(r) == "timeout"),
        "fault_hang is stuck in a collect"
    );
    hbc.signal(libc::SIGKILL);
    assert!(wait_exit(&mut hbc, Duration::from_secs(2)).is_some());

    let mut again = Hbc::start(&config, &args);
    let beats = collect_heartbeats(&rx, Duration::from_millis(800), None);
    assert!(again.alive());
    let last = &beats.last().expect("heartbeats").1;
    assert!(
        last.readings
            .iter()
            .all(|r| !r.key.starts_with("hbc.quarantine.")),
        "{:?}",
        last.readings
    );
    assert!(!state.path().join("quarantine/fault_hang").exists());
}
