//! The plugin template (`docs/plugin-template/`) builds outside this repository: copied to
//! a temporary folder with its `hbc-plugin-api` dependency pointed at this checkout's
//! `plugin-api`, built with cargo (offline: the registry cache of the workspace build is
//! enough), then accepted by `hbc check-plugin` and collected by `hbc --once`.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::util::*;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("repo root")
        .to_path_buf()
}

/// Copies the files of `from` (not `target/`) into `to`.
fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("create folder");
    for entry in std::fs::read_dir(from).expect("read template folder") {
        let entry = entry.expect("entry");
        let path = entry.path();
        if entry.file_name() == "target" {
            continue;
        }
        let dst = to.join(entry.file_name());
        if path.is_dir() {
            copy_tree(&path, &dst);
        } else {
            std::fs::copy(&path, &dst).expect("copy file");
        }
    }
}

/// The template copied into `work` with its `hbc-plugin-api` dependency pointed at `api`
/// (the one line a plugin author changes) and the workspace's lock file (same versions,
/// found offline); returns the crate folder.
fn template_against(work: &Path, api: &Path) -> PathBuf {
    let krate = work.join("hbc-plugin-queue");
    copy_tree(&repo().join("docs/plugin-template"), &krate);
    let manifest = krate.join("Cargo.toml");
    let text = std::fs::read_to_string(&manifest).expect("read Cargo.toml");
    let line = "hbc-plugin-api = { path = \"../hbd/plugin-api\", version = \"1\" }";
    assert!(
        text.contains(line),
        "the template's dependency line changed:\n{text}"
    );
    let ours = format!(
        "hbc-plugin-api = {{ path = {:?}, version = \"1\" }}",
        api.to_str().expect("utf8 path")
    );
    std::fs::write(&manifest, text.replace(line, &ours)).expect("write Cargo.toml");
    std::fs::copy(repo().join("Cargo.lock"), krate.join("Cargo.lock")).expect("copy lock");
    krate
}

/// Runs `cargo <args> --offline` in `krate` with `target` as its target folder.
fn cargo_in(krate: &Path, target: &Path, args: &[&str]) {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let out = Command::new(&cargo)
        .args(args)
        .arg("--offline")
        .current_dir(krate)
        .env("CARGO_TARGET_DIR", target)
        .env_remove("RUSTFLAGS")
        .output()
        .expect("run cargo");
    assert!(
        out.status.success(),
        "cargo {args:?} of the template failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `hbc check-plugin` on `lib`: its report, after asserting it succeeded.
fn check_plugin(lib: &Path) -> String {
    let out = Command::new(hbc_bin())
        .arg("check-plugin")
        .arg(lib)
        .output()
        .expect("run hbc check-plugin");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    text
}

#[test]
fn the_plugin_template_builds_outside_the_repository_and_loads() {
    let work = tempfile::tempdir().expect("tempdir");
    let krate = template_against(work.path(), &repo().join("plugin-api"));
    // Its own target folder, kept between runs next to the workspace's (built once).
    let target = target_dir().join("plugin-template");
    cargo_in(&krate, &target, &["test", "--quiet"]);
    cargo_in(&krate, &target, &["build", "--quiet"]);
    let lib = target.join("debug/libhbc_plugin_queue.so");
    assert!(lib.exists(), "{} was not built", lib.display());

    let text = check_plugin(&lib);
    assert!(
        text.contains(
            "OK: plugin queue 0.1.0 (files waiting in a spool folder), built against plugin API 1."
        ),
        "{text}"
    );

    // And it collects: the spool folder is one with three files.
    let plugins = PluginDir::new();
    std::fs::copy(&lib, plugins.path().join("libhbc_plugin_queue.so")).expect("copy");
    let spool = tempfile::tempdir().expect("tempdir");
    for f in ["a", "b", "c"] {
        std::fs::write(spool.path().join(f), b"").expect("write");
    }
    let config = format!(
        "plugins:\n  queue:\n    options: {{spool: {:?}, warn_at: 2}}\n",
        spool.path().to_str().expect("utf8 path")
    );
    let json = once_json(&config, plugins.path());
    let r = reading(&json, "queue.waiting").unwrap_or_else(|| panic!("no queue.waiting: {json}"));
    assert_eq!(r["value"], 3, "{r}");
    assert_eq!(r["level"], "WARNING", "{r}");
}

/// A plugin built against the previous minor version of the API (1.0.0, from this
/// repository's history: the commit before 4353ba1 brought 1.1) still loads into this hbc
/// and collects: the compatibility promise of plugin-api/CHANGELOG.md, checked with that
/// version's own source.
#[test]
fn a_plugin_built_against_api_1_0_still_loads() {
    let work = tempfile::tempdir().expect("tempdir");
    let old_api = work.path().join("plugin-api-1.0");
    std::fs::create_dir_all(&old_api).expect("mkdir");
    let archive = Command::new("git")
        .args(["archive", "--format=tar", "4353ba1^:plugin-api"])
        .current_dir(repo())
        .output()
        .expect("git archive");
    assert!(
        archive.status.success(),
        "git archive of plugin-api 1.0: {}",
        String::from_utf8_lossy(&archive.stderr)
    );
    let tar = work.path().join("api.tar");
    std::fs::write(&tar, &archive.stdout).expect("write tar");
    let untar = Command::new("tar")
        .arg("-xf")
        .arg(&tar)
        .arg("-C")
        .arg(&old_api)
        .status()
        .expect("tar");
    assert!(untar.success());
    let manifest = std::fs::read_to_string(old_api.join("Cargo.toml")).expect("old manifest");
    assert!(manifest.contains("version = \"1.0.0\""), "{manifest}");

    let krate = template_against(work.path(), &old_api);
    let target = target_dir().join("plugin-template-1.0");
    cargo_in(&krate, &target, &["build", "--quiet"]);
    let lib = target.join("debug/libhbc_plugin_queue.so");
    let text = check_plugin(&lib);
    assert!(text.contains("built against plugin API 1.0"), "{text}");

    let plugins = PluginDir::new();
    std::fs::copy(&lib, plugins.path().join("libhbc_plugin_queue.so")).expect("copy");
    let spool = tempfile::tempdir().expect("tempdir");
    std::fs::write(spool.path().join("a"), b"").expect("write");
    let config = format!(
        "plugins:\n  queue:\n    options: {{spool: {:?}}}\n",
        spool.path().to_str().expect("utf8 path")
    );
    let json = once_json(&config, plugins.path());
    let r = reading(&json, "queue.waiting").unwrap_or_else(|| panic!("no queue.waiting: {json}"));
    assert_eq!(r["value"], 1, "{r}");
}
