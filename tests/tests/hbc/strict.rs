//! `plugin_strict_modes`: plugin files and folders that others may write are refused with a
//! clear reason, the other plugins still load, and a fixed file is picked up by the next
//! scan without a restart.

use std::fs::Permissions;
use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, Instant};

use crate::util::*;

fn plugins_json(config: &str, dir: &std::path::Path) -> Vec<serde_json::Value> {
    let (status, stdout, stderr) = run_hbc(
        config,
        &[
            "--plugin-dir",
            dir.to_str().expect("utf8"),
            "plugins",
            "--json",
        ],
    );
    assert!(status.success(), "{stderr}");
    let list: serde_json::Value = serde_json::from_str(&stdout).expect("json");
    list.as_array().expect("array").clone()
}

fn status_of<'a>(list: &'a [serde_json::Value], file: &str) -> &'a str {
    list.iter()
        .find(|e| e["file"].as_str().is_some_and(|f| f.ends_with(file)))
        .and_then(|e| e["status"].as_str())
        .unwrap_or_else(|| panic!("{file} not listed: {list:?}"))
}

#[test]
fn a_plugin_file_others_may_write_is_refused_unless_relaxed() {
    let dir = PluginDir::with(&["cpu", "memory"]);
    let open = dir.path().join("libhbc_memory.so");
    std::fs::set_permissions(&open, Permissions::from_mode(0o666)).expect("chmod");

    let list = plugins_json("", dir.path());
    assert_eq!(status_of(&list, "libhbc_cpu.so"), "ok");
    let why = status_of(&list, "libhbc_memory.so");
    assert!(
        why.starts_with("rejected: refused (plugin_strict_modes): the file")
            && why.contains("libhbc_memory.so is writable by group and others (mode 0666)"),
        "{why}"
    );

    let relaxed = plugins_json("plugin_strict_modes: false\n", dir.path());
    assert_eq!(status_of(&relaxed, "libhbc_memory.so"), "ok");
}

#[test]
fn a_writable_plugin_folder_refuses_everything_until_fixed() {
    let dir = PluginDir::with(&["cpu", "os"]);
    std::fs::set_permissions(dir.path(), Permissions::from_mode(0o777)).expect("chmod");
    let rx = Receiver::new();
    let mut hbc = Hbc::start(
        "interval: 300ms\nplugin_rescan: 300ms\n",
        &[
            "--plugin-dir",
            dir.path().to_str().expect("utf8"),
            &rx.addr(),
        ],
    );
    // Heartbeats go on, with no plugin readings.
    let beats = collect_heartbeats(&rx, Duration::from_secs(2), None);
    assert!(
        beats.len() >= 3,
        "hbc keeps sending: {} heartbeats",
        beats.len()
    );
    assert!(
        beats
            .iter()
            .all(|(_, b)| b.readings.iter().all(|r| !r.key.starts_with("cpu."))),
        "no cpu readings from an untrusted folder"
    );
    let log = hbc.log_text();
    let folder = dir.path().display().to_string();
    assert!(
        log.contains(&format!(
            "the folder {folder} is writable by group and others (mode 0777)"
        )) && log.contains("chmod go-w"),
        "{log}"
    );
    // Logged once per file, not once per scan.
    assert_eq!(log.matches("libhbc_cpu.so").count(), 1, "{log}");

    std::fs::set_permissions(dir.path(), Permissions::from_mode(0o755)).expect("chmod");
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut seen = false;
    while Instant::now() < deadline && !seen {
        seen = collect_heartbeats(&rx, Duration::from_millis(500), None)
            .iter()
            .any(|(_, b)| b.readings.iter().any(|r| r.key.starts_with("cpu.")));
    }
    assert!(
        seen,
        "cpu readings once the folder is fixed: {}",
        hbc.log_text()
    );
    assert!(hbc.alive());
}
