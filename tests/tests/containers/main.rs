//! The container images (scripts/images, docs/containers.md) with Debian's podman: both
//! build from the release binaries, hbd runs, and hbc in a container with the host's `/`
//! mounted and `--host-root` reports the host's values, not the container's; hbd shows
//! them. Skipped only where podman is missing, and failing then under `CI=true`.
//!
//! On this machine podman needs runc and a containers.conf without default ulimits and
//! with the cgroupfs manager: the test writes it into its own XDG config folder.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("repo root")
        .to_path_buf()
}

/// The cargo target folder this test was built in (…/debug/deps/containers-…).
fn target_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("exe");
    exe.ancestors().nth(3).expect("target folder").to_path_buf()
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("port")
}

/// podman with runc and the test's own containers.conf.
struct Podman {
    config: tempfile::TempDir,
    tag: String,
    containers: Vec<String>,
}

impl Podman {
    fn conf(&self) -> PathBuf {
        self.config.path().join("containers/containers.conf")
    }

    fn command(&self) -> Command {
        let mut c = Command::new("podman");
        c.env("XDG_CONFIG_HOME", self.config.path())
            .env("CONTAINERS_CONF", self.conf())
            .arg("--runtime")
            .arg("runc");
        c
    }

    fn run(&self, args: &[&str]) -> Output {
        let out = self
            .command()
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("run podman");
        assert!(
            out.status.success(),
            "podman {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }

    /// `hbc --once --json` in a container of the hbc image, with `mounts` and `args`.
    fn hbc_once(&self, podman_args: &[&str], hbc_args: &[&str]) -> Value {
        let image = format!("hbc:{}", self.tag);
        let mut args = vec!["run", "--rm", "--network", "host", "--pid", "host"];
        args.extend_from_slice(podman_args);
        args.push(&image);
        args.extend_from_slice(hbc_args);
        args.extend_from_slice(&["--once", "--json"]);
        let out = self.run(&args);
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "hbc --once --json in the container: {e}: {}",
                String::from_utf8_lossy(&out.stdout)
            )
        })
    }
}

impl Drop for Podman {
    fn drop(&mut self) {
        for c in &self.containers {
            let _ = self.command().args(["rm", "-f", "-t", "1", c]).output();
        }
        for image in ["hbd", "hbc"] {
            let _ = self
                .command()
                .args(["rmi", "-f", &format!("{image}:{}", self.tag)])
                .output();
        }
    }
}

/// The readings of `hbc --once --json` as key -> value.
fn readings(v: &Value) -> Vec<(String, Value)> {
    let list = v["readings"]
        .as_array()
        .or_else(|| v.as_array())
        .unwrap_or_else(|| panic!("no readings in {v}"));
    list.iter()
        .map(|r| {
            (
                r["key"].as_str().expect("key").to_string(),
                r["value"].clone(),
            )
        })
        .collect()
}

fn value<'a>(r: &'a [(String, Value)], key: &str) -> &'a Value {
    &r.iter()
        .find(|(k, _)| k == key)
        .unwrap_or_else(|| {
            panic!(
                "no {key} in {:?}",
                r.iter().map(|x| &x.0).collect::<Vec<_>>()
            )
        })
        .1
}

/// The mount points the filesystem plugin reported.
fn mounts(r: &[(String, Value)]) -> BTreeSet<String> {
    r.iter()
        .filter_map(|(k, _)| k.strip_prefix("fs.")?.strip_suffix(".size_bytes"))
        .map(String::from)
        .collect()
}

#[test]
fn hbc_in_a_container_reports_the_host_and_hbd_shows_it() {
    if Command::new("podman").arg("--version").output().is_err() {
        assert!(
            std::env::var_os("CI").is_none(),
            "podman is missing (CI=true): run scripts/deps"
        );
        eprintln!("SKIPPED: podman is missing; scripts/deps installs it");
        return;
    }
    let started = Instant::now();
    let config = tempfile::tempdir().expect("config dir");
    std::fs::create_dir_all(config.path().join("containers")).expect("mkdir");
    let podman = Podman {
        config,
        tag: format!("test-{}", std::process::id()),
        containers: Vec::new(),
    };
    std::fs::write(
        podman.conf(),
        "[containers]\ndefault_ulimits = []\n[engine]\ncgroup_manager = \"cgroupfs\"\n",
    )
    .expect("write containers.conf");

    // Both images, from the release build of this target folder.
    let target = target_dir();
    let out = Command::new(repo().join("scripts/images"))
        .arg(&podman.tag)
        .env("CARGO_TARGET_DIR", &target)
        .env("PODMAN", "podman --runtime runc")
        .env("XDG_CONFIG_HOME", podman.config.path())
        .env("CONTAINERS_CONF", podman.conf())
        .output()
        .expect("run scripts/images");
    assert!(
        out.status.success(),
        "scripts/images: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let built = String::from_utf8_lossy(&out.stdout);
    assert!(
        built.contains("built hbd:") && built.contains("built hbc:"),
        "{built}"
    );
    let mut podman = podman;

    // The host as hbc outside any container sees it, with the same binary and plugins.
    let plugins = tempfile::tempdir().expect("plugin dir");
    // The six system monitors as the image has them: one library (plugins/system).
    // scripts/images built it in this checkout's plugins/system/target.
    let name = "libhbc_system.so";
    let built = repo().join("plugins/system/target/release").join(name);
    std::fs::copy(&built, plugins.path().join(name)).expect("copy plugin");
    let out = Command::new(target.join("release/hbc"))
        .args(["-c", "/dev/null", "--once", "--json", "--plugin-dir"])
        .arg(plugins.path())
        .env_remove("HBC_HOST_ROOT")
        .output()
        .expect("hbc outside");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let host = readings(&serde_json::from_slice(&out.stdout).expect("json"));

    // In a container with the host mounted and --host-root, and without.
    let inside = readings(&podman.hbc_once(
        &["--uts", "host", "-v", "/:/host:ro,rslave"],
        &["--host-root", "/host"],
    ));
    let container = readings(&podman.hbc_once(&[], &[]));

    let host_mounts = mounts(&host);
    assert!(host_mounts.contains("/"), "{host_mounts:?}");
    assert_eq!(mounts(&inside), host_mounts, "the host's file systems");
    assert_ne!(
        mounts(&container),
        host_mounts,
        "without the host root hbc sees the container's mounts (else this test proves nothing)"
    );
    for key in [
        "fs./.size_bytes",
        "memory.total_bytes",
        "os.boot_time",
        "os.name",
        "os.hostname",
    ] {
        assert_eq!(value(&inside, key), value(&host, key), "{key}");
    }

    // hbd in its container, and hbc sending to it from its own.
    let (hb, http, ws) = (free_port(), free_port(), free_port());
    let hbd_name = format!("hbd-{}", podman.tag);
    podman.containers.push(hbd_name.clone());
    let image = format!("hbd:{}", podman.tag);
    let (hb_s, http_s, ws_s) = (hb.to_string(), http.to_string(), ws.to_string());
    podman.run(&[
        "run",
        "-d",
        "--name",
        &hbd_name,
        "--network",
        "host",
        &image,
        "--bind",
        "127.0.0.1",
        "--hb-port",
        &hb_s,
        "--hbd-port",
        &http_s,
        "--ws-port",
        &ws_s,
    ]);
    let hbc_name = format!("hbc-{}", podman.tag);
    podman.containers.push(hbc_name.clone());
    let image = format!("hbc:{}", podman.tag);
    let server = format!("127.0.0.1:{hb}");
    podman.run(&[
        "run",
        "-d",
        "--name",
        &hbc_name,
        "--network",
        "host",
        "--pid",
        "host",
        "--uts",
        "host",
        "-v",
        "/:/host:ro,rslave",
        &image,
        "--host-root",
        "/host",
        "-i",
        "1s",
        &server,
    ]);

    let name = value(&host, "os.hostname")
        .as_str()
        .expect("hostname")
        .to_string();
    let url = format!("http://127.0.0.1:{http}/api/v1/hosts/{name}");
    let deadline = Instant::now() + Duration::from_secs(30);
    let detail = loop {
        let got = ureq::get(&url)
            .timeout(Duration::from_secs(2))
            .call()
            .ok()
            .and_then(|r| r.into_json::<Value>().ok());
        if let Some(v) =
            got.filter(|v| v["status"] == "UP" && v.to_string().contains("memory.total_bytes"))
        {
            break v;
        }
        if Instant::now() > deadline {
            let logs = |c: &str| {
                let out = podman.command().args(["logs", c]).output().expect("logs");
                String::from_utf8_lossy(&out.stderr).into_owned()
            };
            panic!(
                "hbd in its container never showed {name} UP from hbc in its container\n\
                 hbd: {}\nhbc: {}",
                logs(&hbd_name),
                logs(&hbc_name)
            );
        }
        std::thread::sleep(Duration::from_millis(300));
    };
    let text = detail.to_string();
    let total = value(&host, "memory.total_bytes").to_string();
    assert!(
        text.contains("\"memory.total_bytes\"") && text.contains(&total),
        "hbd shows the host's memory.total_bytes {total}: {text}"
    );
    eprintln!("containers test: {:.1} s", started.elapsed().as_secs_f64());
}
