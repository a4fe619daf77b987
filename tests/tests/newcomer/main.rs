//! The newcomer's path: the README's run command really starts hbd with a local hbc and
//! the bundled plugins, the dashboard answers, the local host appears, and Ctrl-C stops
//! both cleanly.

mod config;
mod deps;

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("repo root")
        .to_path_buf()
}

fn get(url: &str) -> Option<String> {
    ureq::get(url)
        .timeout(Duration::from_secs(5))
        .call()
        .ok()?
        .into_string()
        .ok()
}

#[test]
fn readme_run_command_starts_hbd_and_hbc_and_stops_cleanly() {
    let readme = std::fs::read_to_string(repo().join("README.md")).expect("README");
    let run_line = readme
        .lines()
        .find(|l| l.starts_with("scripts/run"))
        .expect("README names scripts/run");
    assert!(run_line.contains("Ctrl-C"), "{run_line}");
    assert!(
        std::net::TcpListener::bind("127.0.0.1:50004").is_ok(),
        "port 50004 is taken: stop whatever hbd is running before this test"
    );

    let data = repo().join("run-data");
    let _ = std::fs::remove_dir_all(&data);
    let mut child = Command::new(repo().join("scripts/run"))
        .current_dir(repo())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()
        .expect("start scripts/run");
    let pgid = child.id() as i32;

    // The release build may take a while on a fresh machine.
    let start = Instant::now();
    let mut host = None;
    while start.elapsed() < Duration::from_secs(900) && host.is_none() {
        std::thread::sleep(Duration::from_millis(500));
        if let Ok(Some(status)) = child.try_wait() {
            panic!("scripts/run ended early ({status}) before the host appeared");
        }
        if let Some(body) = get("http://127.0.0.1:50004/api/v1/hosts") {
            let v: serde_json::Value = serde_json::from_str(&body).expect("json");
            host = v["hosts"]
                .as_array()
                .and_then(|h| h.first())
                .filter(|h| h["status"] == "UP")
                .cloned();
        }
    }
    let host = host.expect("the local host appears UP in hbd");
    let name = host["name"].as_str().expect("name").to_string();
    let detail = get(&format!("http://127.0.0.1:50004/api/v1/hosts/{name}")).expect("host detail");
    assert!(
        detail.contains("cpu.usage_percent") && detail.contains("memory.used_percent"),
        "bundled plugins report"
    );
    let page = get("http://127.0.0.1:50004/").expect("dashboard answers");
    assert!(page.contains(&name), "dashboard shows the local host");

    // Ctrl-C (SIGINT to the foreground process group) stops both.
    // SAFETY: kill(2) on the process group we created.
    unsafe {
        libc::kill(-pgid, libc::SIGINT);
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Ok(Some(s)) = child.try_wait() {
            break Some(s);
        }
        if Instant::now() > deadline {
            break None;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(status.is_some(), "scripts/run did not stop on Ctrl-C");
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        get("http://127.0.0.1:50004/healthz").is_none(),
        "hbd still answers after Ctrl-C"
    );
    // SAFETY: probing the group with signal 0.
    let alive = unsafe { libc::kill(-pgid, 0) } == 0;
    assert!(!alive, "processes of scripts/run survived Ctrl-C");
    // Everything was written under run-data, including the journal.
    assert!(data.join("hbd/journal").is_dir());
    assert!(
        data.join("hbd").join(hbd::snapshot::FILE).exists(),
        "clean shutdown wrote the snapshot"
    );
    let _ = std::fs::remove_dir_all(&data);
}
