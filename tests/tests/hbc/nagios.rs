//! The nagios plugin, run by the real hbc, with the real Debian monitoring-plugins.

use crate::util::*;

#[test]
fn real_nagios_checks_map_exit_codes_perfdata_and_timeouts() {
    require_file(
        "/usr/lib/nagios/plugins/check_dummy",
        "monitoring-plugins-basic",
    );
    require_file(
        "/usr/lib/nagios/plugins/check_load",
        "monitoring-plugins-basic",
    );
    let dir = PluginDir::with(&["nagios"]);
    let config = r#"
plugins:
  nagios:
    timeout: 3s
    options:
      timeout: 2
      commands:
        ok: {command: ["/usr/lib/nagios/plugins/check_dummy", "0", "all good"]}
        warn: {command: "/usr/lib/nagios/plugins/check_dummy 1 'a bit <b>hot</b>'"}
        crit: {command: ["/usr/lib/nagios/plugins/check_dummy", "2", "down"]}
        unknown: {command: ["/usr/lib/nagios/plugins/check_dummy", "3", "no idea"]}
        load: {command: ["/usr/lib/nagios/plugins/check_load", "-w", "500,500,500", "-c", "900,900,900"]}
        slow: {command: "sleep 20 & sleep 20", shell: true, timeout: 0.5}
        missing: {command: ["/usr/lib/nagios/plugins/check_nothing_here"]}
"#;
    let json = once_json(config, dir.path());
    let state = |name: &str| {
        reading(&json, &format!("nagios.{name}.state"))
            .unwrap_or_else(|| panic!("{name}: {json}"))
            .clone()
    };
    assert_eq!(state("ok")["level"], "OK");
    assert_eq!(state("ok")["message"], "OK: all good");
    assert_eq!(state("warn")["level"], "WARNING");
    assert_eq!(state("warn")["message"], "WARNING: a bit <b>hot</b>");
    assert_eq!(state("crit")["level"], "CRITICAL");
    assert_eq!(state("unknown")["level"], "UNKNOWN");
    assert_eq!(state("load")["level"], "OK");
    let load1 = reading(&json, "nagios.load.load1").expect("perfdata load1");
    assert!(load1["value"].as_f64().is_some());
    assert!(
        load1["message"].as_str().expect("msg").contains("warn=500"),
        "{load1}"
    );
    let slow = state("slow");
    assert_eq!(slow["level"], "UNKNOWN");
    assert!(
        slow["message"].as_str().expect("msg").contains("timed out"),
        "{slow}"
    );
    assert_eq!(state("missing")["level"], "UNKNOWN");
    assert_eq!(json["level"], "CRITICAL");
}

#[test]
fn a_check_name_too_long_for_a_key_loses_only_its_own_readings() {
    require_file(
        "/usr/lib/nagios/plugins/check_dummy",
        "monitoring-plugins-basic",
    );
    let dir = PluginDir::with(&["nagios", "memory"]);
    let long = "x".repeat(300);
    let config = format!(
        "plugins:\n  nagios:\n    options:\n      commands:\n        \
         ok: {{command: [/usr/lib/nagios/plugins/check_dummy, \"0\", fine]}}\n        \
         {long}: {{command: [/usr/lib/nagios/plugins/check_dummy, \"2\", hidden]}}\n"
    );
    let json = once_json(&config, dir.path());
    assert!(reading(&json, "nagios.ok.state").is_some(), "{json}");
    assert!(reading(&json, "memory.used_bytes").is_some(), "{json}");
    let left_out = reading(&json, "hbc.plugin.nagios").expect("a reading says what was left out");
    assert_eq!(left_out["level"], "UNKNOWN");
    assert!(
        left_out["message"]
            .as_str()
            .is_some_and(|m| m.contains("readings with an empty key or one over 255 bytes")),
        "{left_out}"
    );
}

/// Processes whose command line holds `needle` (other than this test's own).
fn processes_with(needle: &str) -> Vec<i32> {
    let me = std::process::id() as i32;
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| *pid != me)
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .map(|c| {
                    String::from_utf8_lossy(&c)
                        .replace('\0', " ")
                        .contains(needle)
                })
                .unwrap_or(false)
        })
        .collect()
}

/// Polls until `ok` holds or `limit` passes.
fn eventually(limit: std::time::Duration, mut ok: impl FnMut() -> bool) -> bool {
    let deadline = std::time::Instant::now() + limit;
    while std::time::Instant::now() < deadline {
        if ok() {
            return true;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    ok()
}

/// Starts hbc with two long checks (one through a shell, whose `sleep` is a grandchild
/// in the check's process group), stops it with SIGTERM, and expects no check left.
fn sigterm_leaves_no_check_behind(isolate: bool) {
    // A duration no other process uses, so the test finds exactly its own checks.
    let tag = format!("{}.{}", 3000 + std::process::id() % 1000, u8::from(isolate));
    let dir = PluginDir::with(&["nagios"]);
    let rx = Receiver::new();
    let config = format!(
        "interval: 500ms\nplugins:\n  nagios:\n    isolate: {isolate}\n    timeout: 1s\n    \
         options:\n      timeout: 600\n      commands:\n        \
         direct: {{command: [sleep, \"{tag}\"]}}\n        \
         shell: {{command: \"sleep {tag}; echo never\", shell: true}}\n"
    );
    let mut hbc = Hbc::start(
        &config,
        &[
            "--plugin-dir",
            dir.path().to_str().expect("utf8"),
            &rx.addr(),
        ],
    );
    assert!(
        eventually(std::time::Duration::from_secs(5), || processes_with(
            &format!("sleep {tag}")
        )
        .len()
            >= 3),
        "the checks run (sleep, sh and its sleep): {:?}\n{}",
        processes_with(&tag),
        hbc.log_text()
    );
    let status = hbc
        .terminate(std::time::Duration::from_secs(5))
        .expect("hbc stops on SIGTERM");
    assert!(status.success(), "{status:?}");
    let gone = eventually(std::time::Duration::from_secs(3), || {
        processes_with(&tag).is_empty()
    });
    let left = processes_with(&tag);
    for pid in &left {
        // SAFETY: kill(2); cleaning up after a failed test.
        unsafe {
            libc::kill(*pid, libc::SIGKILL);
        }
    }
    assert!(gone, "checks left behind after SIGTERM: {left:?}");
}

#[test]
fn hbc_sigterm_leaves_no_check_process_behind() {
    sigterm_leaves_no_check_behind(false);
}

#[test]
fn hbc_sigterm_leaves_no_check_of_an_isolated_nagios_behind() {
    sigterm_leaves_no_check_behind(true);
}
