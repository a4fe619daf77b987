//! `tls_cert`/`tls_key`: both listeners speak HTTPS and WSS with the configured chain,
//! nothing else; clients that do not trust the CA refuse the certificate; an unusable
//! certificate or key stops hbd at start-up with an error naming the file.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::*;
use crate::util::*;

fn tls_config(cert: &TestCert, extra: &str) -> hbd::config::Config {
    config(&format!(
        "tls_cert: {}\ntls_key: {}\n{extra}",
        cert.cert.display(),
        cert.key.display()
    ))
}

#[test]
fn https_and_wss_on_both_listeners() {
    let dir = tempfile::tempdir().expect("tmp");
    let cert = test_cert(dir.path());
    let hbd = Hbd::start(tls_config(&cert, ""), &dir.path().join("data"), 0);
    let agent = https_agent(&cert.ca_pem);
    let base = format!("https://{}", hbd.http);

    let r = send(&agent, "GET", &format!("{base}/healthz"), &[], None).expect("HTTPS");
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["status"], "ok");
    let r = send(&agent, "GET", &format!("{base}/api/v1/hosts"), &[], None).expect("HTTPS");
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["total"], 0);
    // The dashboard served over HTTPS opens its WebSocket with wss:// on the same host.
    let page = send(&agent, "GET", &format!("{base}/"), &[], None).expect("page");
    assert_eq!(page.status, 200);
    let js = send(&agent, "GET", &format!("{base}/static/hbd.js"), &[], None).expect("js");
    assert!(
        js.body.contains(
            "(location.protocol === 'https:' ? 'wss://' : 'ws://') + location.host + '/ws'"
        ),
        "the dashboard's script no longer derives wss:// from the page"
    );

    for (addr, path) in [(hbd.ws, "/"), (hbd.http, "/ws")] {
        let (_ws, first) = wss(addr, &cert.ca_pem, path, &[]).expect("WSS");
        assert_eq!(first["type"], "snapshot", "{addr}{path}");
    }
}

#[test]
fn plain_http_and_untrusted_clients_fail() {
    let dir = tempfile::tempdir().expect("tmp");
    let cert = test_cert(dir.path());
    let hbd = Hbd::start(tls_config(&cert, ""), &dir.path().join("data"), 0);
    let plain = ureq::AgentBuilder::new()
        .timeout(Duration::from_secs(10))
        .build();
    for addr in [hbd.http, hbd.ws] {
        match send(&plain, "GET", &format!("http://{addr}/healthz"), &[], None) {
            Err(_) => {}
            Ok(a) => panic!(
                "plain HTTP to the TLS port {addr} got an answer: {}",
                a.status
            ),
        }
    }
    // A client trusting another CA refuses hbd's certificate, over HTTPS and for WSS.
    let other = other_ca_pem();
    let e = match send(
        &https_agent(&other),
        "GET",
        &format!("https://{}/healthz", hbd.http),
        &[],
        None,
    ) {
        Err(e) => e,
        Ok(a) => panic!("an untrusted certificate must be refused, got {}", a.status),
    };
    assert!(
        e.to_string().to_lowercase().contains("certificate"),
        "the error says why: {e}"
    );
    let e = match tls_connect(hbd.ws, &other) {
        Err(e) => e,
        Ok(_) => panic!("an untrusted certificate must be refused (WSS)"),
    };
    assert!(
        e.to_string().contains("UnknownIssuer"),
        "the error says why: {e}"
    );
}

#[test]
fn tls_with_basic_authentication() {
    let dir = tempfile::tempdir().expect("tmp");
    let cert = test_cert(dir.path());
    let hbd = Hbd::start(
        tls_config(&cert, "dashboard_users: {ops: \"tls-password-1\"}\n"),
        &dir.path().join("data"),
        0,
    );
    let agent = https_agent(&cert.ca_pem);
    let url = format!("https://{}/api/v1/hosts", hbd.http);
    let r = send(&agent, "GET", &url, &[], None).expect("HTTPS");
    assert_eq!(r.status, 401);
    let auth = basic("ops", "tls-password-1");
    let r = send(&agent, "GET", &url, &[("authorization", &auth)], None).expect("HTTPS");
    assert_eq!(r.status, 200);
    assert_eq!(wss(hbd.ws, &cert.ca_pem, "/", &[]).err(), Some(401));
    let (_ws, first) =
        wss(hbd.ws, &cert.ca_pem, "/", &[("authorization", &auth)]).expect("WSS with login");
    assert_eq!(first["type"], "snapshot");
}

fn hbd_bin() -> PathBuf {
    let exe = std::env::current_exe().expect("exe");
    let p = exe
        .parent()
        .and_then(Path::parent)
        .expect("target")
        .join("hbd");
    assert!(
        p.exists(),
        "{} missing: run cargo build --workspace first",
        p.display()
    );
    p
}

/// Runs the hbd binary on `config` (`args`: a subcommand); exit code and standard error.
fn run_hbd(dir: &Path, config: &str, args: &[&str]) -> (i32, String) {
    let cfg = dir.join("hbd.yaml");
    std::fs::write(&cfg, config).expect("config");
    let mut child = Command::new(hbd_bin())
        .args([
            "-f",
            "--bind",
            "127.0.0.1",
            "--hb-port",
            "0",
            "--hbd-port",
            "0",
        ])
        .args(["--ws-port", "0", "--data-dir"])
        .arg(dir.join("data"))
        .args(args)
        .arg("-c")
        .arg(&cfg)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start hbd");
    let start = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().expect("wait") {
            break s;
        }
        if start.elapsed() > Duration::from_secs(20) {
            let _ = child.kill();
            let _ = child.wait();
            panic!("hbd kept running with {config}");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut err = String::new();
    if let Some(mut e) = child.stderr.take() {
        let _ = std::io::Read::read_to_string(&mut e, &mut err);
    }
    (status.code().unwrap_or(-1), err)
}

#[test]
fn unusable_certificate_or_key_stops_hbd_with_the_file_named() {
    let dir = tempfile::tempdir().expect("tmp");
    let cert = test_cert(dir.path());
    let garbage = dir.path().join("garbage.key");
    std::fs::write(
        &garbage,
        "-----BEGIN PRIVATE KEY-----\nnot a key\n-----END PRIVATE KEY-----\n",
    )
    .expect("write");
    let stray = dir.path().join("stray.key");
    std::fs::write(&stray, stray_key_pem()).expect("write");
    let missing = dir.path().join("missing.pem");
    let cases = [
        (
            &cert.cert,
            &garbage,
            "tls_key",
            "garbage.key",
            "not a usable private key",
        ),
        (&cert.cert, &stray, "tls_key", "stray.key", "does not match"),
        (
            &cert.cert,
            &missing,
            "tls_key",
            "missing.pem",
            "cannot read",
        ),
        (
            &missing,
            &cert.key,
            "tls_cert",
            "missing.pem",
            "cannot read",
        ),
        (
            &cert.key,
            &cert.key,
            "tls_cert",
            "server.key",
            "holds no certificate",
        ),
    ];
    for (c, k, key, file, why) in cases {
        let yaml = format!("tls_cert: {}\ntls_key: {}\n", c.display(), k.display());
        let (code, err) = run_hbd(dir.path(), &yaml, &[]);
        assert_eq!(code, 1, "hbd must refuse to start: {err}");
        let line = err
            .lines()
            .find(|l| l.starts_with("hbd: error:"))
            .unwrap_or_else(|| panic!("no error line in {err:?}"));
        assert!(
            line.contains(key) && line.contains(file) && line.contains(why),
            "{key}, {file} and {why:?} in {line:?}"
        );
        // check-config says the same before a restart would fail.
        let (code, err) = run_hbd(dir.path(), &yaml, &["check-config"]);
        assert_eq!(code, 2, "{err}");
        assert!(err.contains(file) && err.contains(why), "{err}");
    }
    // One of the two alone is a config error naming both keys.
    let (code, err) = run_hbd(
        dir.path(),
        &format!("tls_cert: {}\n", cert.cert.display()),
        &[],
    );
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("tls_cert, tls_key: set both"), "{err}");
}
