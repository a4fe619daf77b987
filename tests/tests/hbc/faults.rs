//! hbc keeps sending heartbeats on time while plugins panic, hang, fail and abort, and
//! while the plugin folder holds garbage, an empty file, a truncated library and a plain
//! C library.

use std::process::Command;
use std::time::Duration;

use crate::util::*;

fn c_library(dir: &std::path::Path) -> Vec<u8> {
    let src = dir.join("plain.c");
    std::fs::write(&src, "int answer(void) { return 42; }\n").expect("write C source");
    let out = dir.join("libplain.so");
    let status = Command::new("gcc")
        .args(["-shared", "-fPIC", "-o"])
        .arg(&out)
        .arg(&src)
        .status()
        .expect("gcc must be installed to build the plain C library");
    assert!(status.success(), "gcc failed");
    std::fs::read(&out).expect("read libplain.so")
}

fn text(r: &DocReading) -> &str {
    match &r.value {
        DocValue::Text(t) => t,
        _ => "",
    }
}

#[test]
fn heartbeats_stay_on_time_through_faulty_plugins_and_files() {
    let dir = PluginDir::with(&[
        "cpu",
        "memory",
        "os",
        "fault_panic",
        "fault_hang",
        "fault_fail",
        "fault_abort",
    ]);
    let scratch = tempfile::tempdir().expect("tempdir");
    dir.add_bytes("garbage.so", b"this is not a library at all\n");
    dir.add_bytes("empty.so", b"");
    let cpu = std::fs::read(plugin_lib("cpu")).expect("read cpu plugin");
    dir.add_bytes("libtruncated.so", &cpu[..cpu.len() / 2]);
    dir.add_bytes("libplain.so", &c_library(scratch.path()));

    let rx = Receiver::new();
    let config =
        "interval: 500ms\nplugin_timeout: 300ms\nplugins:\n  fault_abort:\n    isolate: true\n";
    let mut hbc = Hbc::start(
        config,
        &[
            "--plugin-dir",
            dir.path().to_str().expect("utf8"),
            &rx.addr(),
        ],
    );
    let beats = collect_heartbeats(&rx, Duration::from_secs(7), None);
    assert!(hbc.alive(), "hbc died:\n{}", hbc.log_text());

    assert!(
        beats.len() >= 11,
        "only {} heartbeats in 7 s at 500 ms:\n{}",
        beats.len(),
        hbc.log_text()
    );
    for w in beats.windows(2) {
        let gap = w[1].0.duration_since(w[0].0);
        assert!(
            gap <= Duration::from_millis(800),
            "heartbeat {} came {gap:?} after the previous one",
            w[1].1.seq
        );
        assert_eq!(
            w[1].1.seq,
            w[0].1.seq + 1,
            "sequence numbers are consecutive"
        );
    }
    let last = &beats.last().expect("beats").1;
    assert!(
        last.get("cpu.usage_percent").is_some(),
        "healthy plugins keep reporting"
    );
    assert!(last.get("memory.total_bytes").is_some());

    // The hung plugin: reported as a timeout, its last readings stale and UNKNOWN.
    let hang = last
        .get("hbc.plugin.fault_hang")
        .expect("hang status reading");
    assert_eq!(text(hang), "timeout");
    assert_eq!(hang.level, 3);
    let stale = last.get("fault_hang.calls").expect("stale reading kept");
    assert_eq!(stale.level, 3);
    assert!(stale.message.starts_with("stale:"), "{}", stale.message);

    // The failing plugin says why.
    let fail = last.get("hbc.plugin.fault_fail").expect("fail status");
    assert!(
        fail.message.contains("sensor /dev/imaginary is not there"),
        "{}",
        fail.message
    );

    // The panicking plugin alternates: some heartbeats carry the panic, others its readings.
    let panics = beats
        .iter()
        .filter_map(|(_, b)| b.get("hbc.plugin.fault_panic"))
        .filter(|r| r.message.contains("panicked: deliberate panic"))
        .count();
    let fresh = beats
        .iter()
        .filter_map(|(_, b)| b.get("fault_panic.calls"))
        .filter(|r| r.level == 0)
        .count();
    assert!(
        panics >= 1 && fresh >= 2,
        "panic reported {panics} times, fresh readings {fresh} times"
    );

    // The aborting plugin runs isolated: its worker dies and is restarted.
    let log = hbc.log_text();
    assert!(
        log.contains("worker process died (killed by signal 6 (SIGABRT))"),
        "{log}"
    );
    let abort_fresh = beats
        .iter()
        .filter_map(|(_, b)| b.get("fault_abort.calls"))
        .filter(|r| r.level == 0)
        .count();
    assert!(
        abort_fresh >= 2,
        "isolated plugin answered {abort_fresh} times across restarts:\n{log}"
    );

    // Each bad file: one clear line, naming the file.
    for (file, reason) in [
        ("garbage.so", "not a shared library"),
        ("empty.so", "the file is empty"),
        ("libtruncated.so", "truncated"),
        ("libplain.so", "not an hbc plugin"),
    ] {
        let lines: Vec<&str> = log
            .lines()
            .filter(|l| l.contains("plugin file skipped") && l.contains(file))
            .collect();
        assert_eq!(
            lines.len(),
            1,
            "{file}: want exactly one log line, got {lines:?}"
        );
        assert!(lines[0].contains(reason), "{file}: {}", lines[0]);
    }

    let status = hbc
        .terminate(Duration::from_secs(3))
        .expect("hbc stops on SIGTERM");
    assert!(status.success(), "exit status {status:?}");
}

#[test]
fn isolated_segfault_is_survived() {
    let dir = PluginDir::with(&["memory", "fault_abort"]);
    let rx = Receiver::new();
    let config = "interval: 300ms\nplugin_timeout: 300ms\nplugins:\n  fault_abort:\n    isolate: true\n    options: {segfault: true}\n";
    let mut hbc = Hbc::start(
        config,
        &[
            "--plugin-dir",
            dir.path().to_str().expect("utf8"),
            &rx.addr(),
        ],
    );
    let beats = collect_heartbeats(&rx, Duration::from_secs(3), None);
    assert!(hbc.alive());
    assert!(beats.len() >= 8, "{} heartbeats", beats.len());
    assert!(
        hbc.log_text().contains("killed by signal 11 (SIGSEGV)"),
        "{}",
        hbc.log_text()
    );
}

#[test]
fn plugins_lists_found_and_rejected_files() {
    let dir = PluginDir::with(&BUNDLED);
    dir.add_bytes("junk.so", b"junk");
    let (status, stdout, stderr) = run_hbc(
        "",
        &[
            "--plugin-dir",
            dir.path().to_str().expect("utf8"),
            "plugins",
            "--json",
        ],
    );
    assert!(status.success(), "{stderr}");
    let list: serde_json::Value = serde_json::from_str(&stdout).expect("json");
    let list = list.as_array().expect("array");
    assert_eq!(list.len(), 8);
    for name in BUNDLED {
        let e = list
            .iter()
            .find(|e| e["name"] == name)
            .unwrap_or_else(|| panic!("{name} missing: {stdout}"));
        assert_eq!(e["status"], "ok");
        assert_eq!(e["version"], env!("CARGO_PKG_VERSION"));
    }
    let junk = list
        .iter()
        .find(|e| e["file"].as_str().is_some_and(|f| f.ends_with("junk.so")))
        .expect("junk listed");
    assert!(junk["status"]
        .as_str()
        .expect("status")
        .starts_with("rejected: the file is not a shared library"));
}

#[test]
fn check_plugin_accepts_good_and_rejects_broken_files() {
    let dir = PluginDir::with(&["cpu"]);
    let good = dir.path().join("libhbc_cpu.so");
    let bytes = std::fs::read(&good).expect("read");
    let bad = dir.add_bytes("libcut.so", &bytes[..bytes.len() - 4096]);
    let out = Command::new(hbc_bin())
        .arg("check-plugin")
        .arg(&good)
        .output()
        .expect("run");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("OK: plugin cpu"), "{text}");
    let out = Command::new(hbc_bin())
        .arg("check-plugin")
        .arg(&bad)
        .output()
        .expect("run");
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.contains("REJECTED") && text.contains("truncated"),
        "{text}"
    );
}

#[test]
fn check_plugin_finds_a_bare_name_here_or_in_the_plugin_folders() {
    let dir = PluginDir::with(&["cpu"]);
    let elsewhere = tempfile::tempdir().expect("tempdir");
    // A config of our own: one in /etc or ~ could name more plugin folders.
    let config = elsewhere.path().join("hbc.yaml");
    std::fs::write(&config, "interval: 10s\n").expect("write config");
    let check = |cwd: &std::path::Path, file: &str| {
        Command::new(hbc_bin())
            .current_dir(cwd)
            .env_remove("HBC_PLUGIN_PATH")
            .args(["check-plugin", file, "--plugin-dir"])
            .arg(dir.path())
            .arg("-c")
            .arg(&config)
            .output()
            .expect("run")
    };
    // A bare name is a file in the current folder (the dynamic loader alone would look
    // for it in the system's library folders).
    let out = check(dir.path(), "libhbc_cpu.so");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("OK: plugin cpu"), "{text}");

    // Not in the current folder: found in a plugin folder, and the answer says where.
    let out = check(elsewhere.path(), "libhbc_cpu.so");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    let found = dir.path().join("libhbc_cpu.so");
    assert!(
        text.starts_with(&format!("{}: OK: plugin cpu", found.display())),
        "{text}"
    );

    // Nowhere: one error naming the file and every folder looked in, and no advice to
    // rebuild a file that does not exist.
    let out = check(elsewhere.path(), "libnothing.so");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(out.stdout.is_empty());
    let want = format!(
        "hbc: error: no such file: libnothing.so (looked in {}, /usr/lib/hbc/plugins, {})",
        elsewhere.path().display(),
        dir.path().display()
    );
    assert_eq!(err.trim(), want);
    assert!(!err.contains("rebuild"), "{err}");

    // A path with a folder is only looked for where it says.
    let out = check(elsewhere.path(), "sub/libhbc_cpu.so");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains(&format!(
            "no such file: sub/libhbc_cpu.so (looked in {})",
            elsewhere.path().join("sub").display()
        )),
        "{err}"
    );
}

#[test]
fn unreachable_and_unresolvable_servers_do_not_block_the_others() {
    let dir = PluginDir::with(&["memory"]);
    let rx = Receiver::new();
    // A name that never resolves (.invalid is reserved) and a closed port come first.
    let closed = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
    let closed_addr = closed.local_addr().expect("addr").to_string();
    drop(closed);
    let mut hbc = Hbc::start(
        "interval: 300ms\n",
        &[
            "--plugin-dir",
            dir.path().to_str().expect("utf8"),
            "nothing.invalid",
            &closed_addr,
            &rx.addr(),
        ],
    );
    let beats = collect_heartbeats(&rx, Duration::from_secs(3), None);
    assert!(hbc.alive());
    assert!(
        beats.len() >= 8,
        "{} heartbeats reached the working server",
        beats.len()
    );
    let log = hbc.log_text();
    assert!(log.contains("cannot resolve server name"), "{log}");
}

#[test]
fn bad_config_is_a_clear_error() {
    let (status, _, stderr) = run_hbc(
        "interval: 10s\nplugins:\n  cpu:\n    timeout: soon\n",
        &["--once"],
    );
    assert_eq!(status.code(), Some(2));
    assert!(
        stderr.contains("plugins.cpu.timeout") && stderr.contains("line 4"),
        "{stderr}"
    );
    let (status, _, stderr) = run_hbc(
        "thresholds:\n  cpu.usage_percent: {warn: \"90:80\"}\n",
        &["check-config"],
    );
    assert_eq!(status.code(), Some(2));
    assert!(stderr.contains("cpu.usage_percent"), "{stderr}");
    let (status, stdout, _) = run_hbc("interval: 5s\nhbd_port: 50004\n", &["check-config"]);
    assert!(status.success());
    assert!(stdout.contains("config OK"));
}

#[test]
fn a_second_library_with_a_taken_plugin_name_is_refused() {
    let dir = PluginDir::with(&["cpu"]);
    std::fs::copy(plugin_lib("cpu"), dir.path().join("libzz_cpu_again.so")).expect("copy");
    let (status, stdout, stderr) = run_hbc(
        "",
        &[
            "--plugin-dir",
            dir.path().to_str().expect("utf8"),
            "plugins",
            "--json",
        ],
    );
    assert!(status.success(), "{stderr}");
    let list: serde_json::Value = serde_json::from_str(&stdout).expect("json");
    let again = list
        .as_array()
        .expect("array")
        .iter()
        .find(|e| {
            e["file"]
                .as_str()
                .is_some_and(|f| f.ends_with("libzz_cpu_again.so"))
        })
        .expect("listed");
    let status = again["status"].as_str().expect("status");
    assert!(
        status.starts_with("rejected: it is another plugin named \"cpu\""),
        "{status}"
    );
    assert_eq!(
        stderr
            .lines()
            .filter(|l| l.contains("libzz_cpu_again.so"))
            .count(),
        1,
        "{stderr}"
    );
}
