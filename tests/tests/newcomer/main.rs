//! The newcomer's path, in a clean clone of the repository: the README's run command
//! really starts hbd with a local hbc and the bundled plugins, the dashboard answers, the
//! local host appears, and Ctrl-C stops both cleanly; the README's test command starts
//! (installs nothing that is missing here, then builds).
//!
//! The clone is `git clone` of this repository plus the working tree's uncommitted changes
//! to tracked files (`git diff HEAD`, so what it builds is what this tree builds, never a
//! stale HEAD into the shared target folder), without untracked files: a file the build
//! needs but git does not know fails here as it would for a newcomer. It builds into this
//! test's cargo target folder (`CARGO_TARGET_DIR`), so dependencies are not built again.

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

/// The cargo target folder this test was built in (…/debug/deps/newcomer-…).
fn target_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("exe");
    exe.ancestors().nth(3).expect("target folder").to_path_buf()
}

fn git(dir: &Path, args: &[&str]) -> Vec<u8> {
    let out = Command::new("git")
        .current_dir(dir)
        .args(args)
        .output()
        .expect("run git");
    assert!(
        out.status.success(),
        "git {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// A clone of this repository with the uncommitted changes to tracked files applied.
fn clean_clone() -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().expect("tempdir");
    let clone = tmp.path().join("hbd");
    let dest = clone.to_str().expect("utf-8 temp path");
    let source = repo();
    git(
        tmp.path(),
        &["clone", "--quiet", source.to_str().expect("utf-8"), dest],
    );
    let diff = git(&source, &["diff", "HEAD", "--binary"]);
    if !diff.is_empty() {
        let patch = tmp.path().join("uncommitted.patch");
        std::fs::write(&patch, diff).expect("write patch");
        git(
            &clone,
            &[
                "apply",
                "--whitespace=nowarn",
                patch.to_str().expect("utf-8"),
            ],
        );
    }
    (tmp, clone)
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
    // The fixed ports lie in the kernel's ephemeral range: a socket of a test that just
    // ended may still hold one for a moment.
    let free = |p: u16| {
        std::net::TcpListener::bind(("127.0.0.1", p)).is_ok()
            && std::net::UdpSocket::bind(("127.0.0.1", p)).is_ok()
    };
    let waited = Instant::now();
    while ![50003, 50004, 50005].into_iter().all(free) && waited.elapsed() < Duration::from_secs(60)
    {
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(
        [50003, 50004, 50005].into_iter().all(free),
        "ports 50003-50005 are taken: stop whatever hbd is running before this test"
    );

    let (_tmp, clone) = clean_clone();
    let data = clone.join("run-data");
    let started = Instant::now();
    let mut child = Command::new(clone.join("scripts/run"))
        .current_dir(&clone)
        .env("CARGO_TARGET_DIR", target_dir())
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
    eprintln!(
        "scripts/run in a clean clone: the local host UP after {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let name = host["name"].as_str().expect("name").to_string();
    let detail = get(&format!("http://127.0.0.1:50004/api/v1/hosts/{name}")).expect("host detail");
    // The six system monitors come from one library (plugins/system), nagios from its own.
    for key in [
        "\"cpu.",
        "\"memory.",
        "\"disk.",
        "\"network.",
        "\"fs.",
        "\"os.",
    ] {
        assert!(
            detail.contains(key),
            "every bundled system monitor reports ({key} missing)"
        );
    }
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
}

/// The README's test command in the clean clone starts as it should: `scripts/deps` finds
/// nothing missing here and the suite's first build begins. Not the whole suite again
/// (this test is part of it): `cargo` is a stand-in that records its first call and stops
/// the script there.
#[test]
fn readme_test_command_starts_in_a_clean_clone() {
    let readme = std::fs::read_to_string(repo().join("README.md")).expect("README");
    let line = readme
        .lines()
        .find(|l| l.starts_with("scripts/test"))
        .expect("README names scripts/test");
    let command = line.split_whitespace().next().expect("command");
    let (tmp, clone) = clean_clone();

    let shim = tmp.path().join("bin");
    std::fs::create_dir(&shim).expect("mkdir");
    let log = tmp.path().join("cargo-calls");
    let cargo = shim.join("cargo");
    std::fs::write(
        &cargo,
        format!("#!/bin/sh\necho \"$*\" >> '{}'\nexit 42\n", log.display()),
    )
    .expect("write shim");
    std::fs::set_permissions(&cargo, std::os::unix::fs::PermissionsExt::from_mode(0o755))
        .expect("chmod");
    let path = format!(
        "{}:{}",
        shim.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let out = Command::new(clone.join(command))
        .current_dir(&clone)
        .env("PATH", path)
        .stdin(Stdio::null())
        .output()
        .expect("run scripts/test");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(42),
        "scripts/test should stop at the stand-in cargo; stderr: {stderr}"
    );
    assert!(
        !stderr.contains("missing"),
        "scripts/deps found something missing: {stderr}"
    );
    let calls = std::fs::read_to_string(&log).expect("cargo was called");
    assert!(
        calls.starts_with("build --release -p hbc -p hbd"),
        "the first build is the release build of scripts/packages: {calls}"
    );
}
