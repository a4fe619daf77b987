//! Libraries dropped into a plugin folder while hbc runs are picked up; a library
//! overwritten in place does not crash hbc and its new version is loaded.

use std::time::Duration;

use crate::util::*;

#[test]
fn new_and_changed_plugins_are_picked_up_without_restart() {
    let dir = PluginDir::with(&["cpu"]);
    let rx = Receiver::new();
    let mut hbc = Hbc::start(
        "interval: 300ms\nplugin_rescan: 300ms\n",
        &[
            "--plugin-dir",
            dir.path().to_str().expect("utf8"),
            &rx.addr(),
        ],
    );
    let before = collect_heartbeats(&rx, Duration::from_secs(1), None);
    assert!(before
        .iter()
        .all(|(_, b)| b.get("memory.total_bytes").is_none()));

    dir.add("memory");
    let after = collect_heartbeats(&rx, Duration::from_secs(3), None);
    let last = &after.last().expect("beats").1;
    assert!(
        last.get("memory.total_bytes").is_some(),
        "memory plugin not picked up:\n{}",
        hbc.log_text()
    );

    // Overwrite the running cpu library in place (what `cp` does): hbc runs from its
    // private copy, so it survives and loads the new file as a new version.
    std::fs::copy(plugin_lib("cpu"), dir.path().join("libhbc_cpu.so")).expect("overwrite");
    let later = collect_heartbeats(&rx, Duration::from_secs(3), None);
    assert!(
        hbc.alive(),
        "hbc died after a plugin was overwritten:\n{}",
        hbc.log_text()
    );
    assert!(later
        .last()
        .expect("beats")
        .1
        .get("cpu.usage_percent")
        .is_some());
    assert!(
        hbc.log_text().contains("reloaded changed plugin"),
        "{}",
        hbc.log_text()
    );

    // Removing the file stops the plugin.
    std::fs::remove_file(dir.path().join("libhbc_memory.so")).expect("remove");
    let _ = collect_heartbeats(&rx, Duration::from_secs(2), None);
    let end = collect_heartbeats(&rx, Duration::from_secs(1), None);
    assert!(end
        .iter()
        .all(|(_, b)| b.get("memory.total_bytes").is_none()));
}
