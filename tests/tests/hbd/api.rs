//! API status codes and error bodies, token enforcement, filtering/sorting/paging, and
//! `/metrics` checked with the reference Prometheus text parser (python prometheus_client).

use std::io::Write;
use std::net::UdpSocket;
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::util::*;

fn call(method: &str, url: &str, token: Option<&str>) -> (u16, serde_json::Value) {
    let mut req = ureq::request(method, url);
    if let Some(t) = token {
        req = req.set("authorization", &format!("Bearer {t}"));
    }
    match req.call() {
        Ok(r) => {
            let code = r.status();
            (code, r.into_json().unwrap_or(serde_json::Value::Null))
        }
        Err(ureq::Error::Status(code, r)) => {
            (code, r.into_json().unwrap_or(serde_json::Value::Null))
        }
        Err(e) => panic!("{method} {url}: {e}"),
    }
}

fn feed(hbd: &Hbd, names: &[&str], total: usize) {
    let sock = UdpSocket::bind("127.0.0.1:0").expect("bind");
    for n in names {
        sock.send_to(&datagram(n, 1, 1, None, 3), hbd.udp)
            .expect("send");
    }
    let want = total;
    hbd.wait_for(Duration::from_secs(3), "hosts registered", |h| {
        h.get("/api/v1/hosts").1["total"] == want
    });
}

#[test]
fn status_codes_errors_and_tokens() {
    let dir = tempfile::tempdir().expect("tmp");
    let hbd = Hbd::start(
        config("api_token: correct-token-123\nwatchhosts: [watched-1]\n"),
        dir.path(),
        0,
    );
    feed(&hbd, &["alpha", "beta", "gamma"], 4);

    let (code, body) = hbd.get("/api/v1/hosts/nope");
    assert_eq!(code, 404);
    assert_eq!(body["error"], "no host named \"nope\"");
    let (code, body) = hbd.get("/api/v1/hosts?limit=0");
    assert_eq!(code, 400);
    assert!(body["error"].as_str().expect("error").contains("limit"));
    let (code, body) = hbd.get("/api/v1/hosts?sort=color");
    assert_eq!(code, 400, "{body}");
    let (code, body) = hbd.get("/api/v1/hosts?limit=abc");
    assert_eq!(code, 400);
    assert!(
        body["error"]
            .as_str()
            .is_some_and(|e| e.starts_with("limit: ")),
        "query errors are JSON and name the parameter: {body}"
    );
    let (code, body) = hbd.get("/api/v1/events?kind=bogus");
    assert_eq!(code, 400, "{body}");
    for p in ["limit", "since", "until", "before"] {
        let (code, body) = hbd.get(&format!("/api/v1/events?{p}=abc"));
        assert_eq!(code, 400, "{body}");
        assert!(
            body["error"]
                .as_str()
                .is_some_and(|e| e.starts_with(&format!("{p}: "))),
            "the bad parameter is named: {body}"
        );
    }
    let (code, body) = hbd.get("/api/v2/whatever");
    assert_eq!(code, 404);
    assert!(body["error"]
        .as_str()
        .expect("error")
        .contains("no such endpoint"));

    // Filtering, default order (never-seen watched host before UP ones), paging.
    let (_, list) = hbd.get("/api/v1/hosts");
    assert_eq!(list["total"], 4);
    assert_eq!(list["hosts"][0]["name"], "watched-1");
    assert_eq!(list["hosts"][0]["status"], "NEVER_SEEN");
    let (_, page) = hbd.get("/api/v1/hosts?status=UP&sort=-name&limit=2&offset=1");
    let names: Vec<&str> = page["hosts"]
        .as_array()
        .expect("hosts")
        .iter()
        .filter_map(|h| h["name"].as_str())
        .collect();
    assert_eq!(names, vec!["beta", "alpha"]);
    assert_eq!(page["total"], 3);
    let (_, q) = hbd.get("/api/v1/hosts?q=AMM");
    assert_eq!(q["hosts"][0]["name"], "gamma");

    // Tokens.
    let url = hbd.url("/api/v1/hosts/alpha");
    let (code, body) = call("DELETE", &url, None);
    assert_eq!(code, 401);
    assert!(body["error"]
        .as_str()
        .expect("error")
        .contains("missing token"));
    let (code, _) = call("DELETE", &url, Some("wrong-token-xyz"));
    assert_eq!(code, 401);
    let (code, _) = call("DELETE", &url, Some("correct-token-123"));
    assert_eq!(code, 204);
    let (code, _) = call("DELETE", &url, Some("correct-token-123"));
    assert_eq!(code, 404);
    let forgotten = events(&hbd, "host=alpha&kind=host_forgotten");
    assert_eq!(forgotten.len(), 1);
}

#[test]
fn mutations_are_disabled_without_a_token() {
    let dir = tempfile::tempdir().expect("tmp");
    let hbd = Hbd::start(config(""), dir.path(), 0);
    feed(&hbd, &["alpha"], 1);
    let (code, body) = call(
        "DELETE",
        &hbd.url("/api/v1/hosts/alpha"),
        Some("anything-at-all"),
    );
    assert_eq!(code, 403);
    assert!(body["error"].as_str().expect("error").contains("api_token"));
}

#[test]
fn events_query_filters_and_pages() {
    let dir = tempfile::tempdir().expect("tmp");
    let hbd = Hbd::start(config(""), dir.path(), 0);
    feed(&hbd, &["e1", "e2", "e3"], 3);
    let all = events(&hbd, "limit=100");
    assert!(all.len() >= 6, "new+up per host: {all:?}");
    let e2 = events(&hbd, "host=e2");
    assert!(e2.iter().all(|e| e["host"] == "e2"));
    let (_, page1) = hbd.get("/api/v1/events?limit=2");
    let before = page1["next_before"].as_u64().expect("next page");
    let (_, page2) = hbd.get(&format!("/api/v1/events?limit=2&before={before}"));
    let id2 = page2["events"][0]["id"].as_u64().expect("id");
    assert!(id2 < before);
    let now = hbd::state::now_ms();
    let (_, none) = hbd.get(&format!("/api/v1/events?since={}", now + 60_000));
    assert_eq!(none["events"].as_array().expect("events").len(), 0);
}

#[test]
fn metrics_parse_with_the_reference_prometheus_parser() {
    let dir = tempfile::tempdir().expect("tmp");
    let hbd = Hbd::start(config("metrics_per_host: true\n"), dir.path(), 0);
    // A hostile reading key must be escaped, not break the format (a key with a control
    // character such as a newline is refused at ingest: hbd_core::text).
    let hb = hb_proto::Heartbeat {
        host: "prom-host".into(),
        instance: 1,
        seq: 1,
        sent_ms: hbd::state::now_ms(),
        interval_ms: 10_000,
        level: hb_proto::Level::Warning,
        readings: vec![hb_proto::Reading {
            key: "evil.\"quoted\"\\key".into(),
            value: hb_proto::Value::F64(1.5),
            unit: "%".into(),
            level: hb_proto::Level::Warning,
            message: String::new(),
            threshold: String::new(),
        }],
    };
    let d = hb_proto::encode(&hb, None, 1400).expect("encode").remove(0);
    UdpSocket::bind("127.0.0.1:0")
        .expect("bind")
        .send_to(&d, hbd.udp)
        .expect("send");
    hbd.wait_for(Duration::from_secs(3), "host", |h| {
        h.status("prom-host").is_some()
    });
    let text = hbd.get_text("/metrics");
    let script = r#"
import sys
from prometheus_client.parser import text_string_to_metric_families
fams = {f.name: f for f in text_string_to_metric_families(sys.stdin.read())}
up = [s for s in fams["hbd_host_up"].samples if s.labels["host"] == "prom-host"]
assert up and up[0].value == 1.0, up
r = [s for s in fams["hbd_reading"].samples if s.labels["host"] == "prom-host"]
assert r[0].labels["key"] == 'evil."quoted"\\key', r
assert r[0].value == 1.5
assert fams["hbd_hosts"].samples
print("ok", len(fams))
"#;
    let mut child = Command::new("python3")
        .args(["-c", script])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect(
            "python3 is needed (with the prometheus_client package: pip install prometheus_client)",
        );
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(text.as_bytes())
        .expect("write");
    let out = child.wait_with_output().expect("python");
    assert!(
        out.status.success(),
        "prometheus_client rejected /metrics (install it with pip install prometheus_client):\n{}\n{text}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn openapi_is_served() {
    let dir = tempfile::tempdir().expect("tmp");
    let hbd = Hbd::start(config(""), dir.path(), 0);
    let text = hbd.get_text("/api/v1/openapi.yaml");
    assert!(text.starts_with("openapi: 3"));
    for path in [
        "/api/v1/hosts:",
        "/api/v1/events:",
        "/api/v1/heartbeat:",
        "/metrics:",
        "/healthz:",
    ] {
        assert!(text.contains(path), "{path} documented");
    }
}
