//! Cross-site requests: a mutation from another origin or site is refused even with the
//! right token, a body a page could send without a preflight is refused, and a
//! WebSocket handshake from a foreign origin is refused on both listeners.

use std::net::UdpSocket;
use std::time::Duration;

use crate::support::*;
use crate::util::*;

const TOKEN: &str = "Bearer correct-token-123";

fn with_host(hbd: &Hbd, name: &str) {
    let sock = UdpSocket::bind("127.0.0.1:0").expect("bind");
    sock.send_to(&datagram(name, 1, 1, None, 1), hbd.udp)
        .expect("send");
    hbd.wait_for(Duration::from_secs(3), "host registered", |h| {
        h.status(name).is_some()
    });
}

#[test]
fn cross_site_mutations_are_refused() {
    let dir = tempfile::tempdir().expect("tmp");
    let hbd = Hbd::start(config("api_token: correct-token-123\n"), dir.path(), 0);
    with_host(&hbd, "victim");
    let url = hbd.url("/api/v1/hosts/victim");
    let own = format!("http://{}", hbd.http);

    for headers in [
        vec![("origin", "http://evil.example")],
        vec![("origin", "null")],
        vec![("origin", "https://127.0.0.1")],
        vec![("sec-fetch-site", "cross-site")],
        vec![("sec-fetch-site", "cross-site"), ("origin", own.as_str())],
    ] {
        let mut h = headers.clone();
        h.push(("authorization", TOKEN));
        let r = http("DELETE", &url, &h, None);
        assert_eq!(r.status, 403, "{headers:?}: {}", r.body);
        assert!(
            r.json()["error"]
                .as_str()
                .expect("error")
                .contains("refused"),
            "{}",
            r.body
        );
    }
    assert_eq!(hbd.status("victim").as_deref(), Some("UP"), "still there");
    assert!(hbd
        .get_text("/metrics")
        .contains("hbd_http_refused_total{reason=\"cross_site\"} 5\n"));

    // From the server's own origin (and without any, as non-browser clients do) it works.
    let r = http(
        "DELETE",
        &url,
        &[
            ("authorization", TOKEN),
            ("origin", &own),
            ("sec-fetch-site", "same-origin"),
        ],
        None,
    );
    assert_eq!(r.status, 204, "{}", r.body);
    with_host(&hbd, "other");
    let r = http(
        "DELETE",
        &hbd.url("/api/v1/hosts/other"),
        &[("authorization", TOKEN)],
        None,
    );
    assert_eq!(r.status, 204, "{}", r.body);
}

#[test]
fn bodies_a_page_could_send_without_a_preflight_are_refused() {
    let dir = tempfile::tempdir().expect("tmp");
    let hbd = Hbd::start(config("api_token: correct-token-123\n"), dir.path(), 0);
    let heartbeat = datagram("via-http", 1, 1, None, 1);
    let json_body = br#"{"channel": "email"}"#;
    for (path, ctype, body) in [
        ("/api/v1/notify/test", "text/plain", &json_body[..]),
        (
            "/api/v1/notify/test",
            "text/plain;charset=UTF-8",
            &json_body[..],
        ),
        (
            "/api/v1/notify/test",
            "application/x-www-form-urlencoded",
            &b""[..],
        ),
        (
            "/api/v1/notify/test",
            "multipart/form-data; boundary=x",
            &b"--x--"[..],
        ),
        ("/api/v1/silences", "application/xml", &b"<a/>"[..]),
        ("/api/v1/heartbeat", "text/plain", &heartbeat[..]),
    ] {
        let r = http(
            "POST",
            &hbd.url(path),
            &[("authorization", TOKEN), ("content-type", ctype)],
            Some(body),
        );
        assert_eq!(r.status, 415, "{path} as {ctype}: {}", r.body);
        assert!(r.json()["error"].is_string());
    }
    assert_eq!(hbd.status("via-http"), None);
    // The real types pass on to the handlers.
    let r = http(
        "POST",
        &hbd.url("/api/v1/heartbeat"),
        &[("content-type", "application/octet-stream")],
        Some(&heartbeat),
    );
    assert_eq!(r.status, 202, "{}", r.body);
    let r = http(
        "POST",
        &hbd.url("/api/v1/silences"),
        &[
            ("authorization", TOKEN),
            ("content-type", "application/json"),
        ],
        Some(br#"{"hosts": "web*", "duration": "1h", "reason": "maintenance"}"#),
    );
    assert!(
        r.status != 415 && r.status != 403,
        "{}: {}",
        r.status,
        r.body
    );
}

#[test]
fn websocket_handshakes_from_foreign_origins_are_refused() {
    let dir = tempfile::tempdir().expect("tmp");
    let hbd = Hbd::start(
        config("ws_allowed_origins: [\"https://dash.example.org\"]\n"),
        dir.path(),
        0,
    );
    for (addr, path) in [(hbd.ws, "/"), (hbd.http, "/ws")] {
        for foreign in ["http://evil.example", "null", "http://127.0.0.1:1"] {
            assert_eq!(
                ws(addr, path, &[("origin", foreign)]).err(),
                Some(403),
                "{addr}{path} from {foreign}"
            );
        }
        let own = format!("http://{addr}");
        for origin in [own.as_str(), "https://dash.example.org"] {
            let (_ws, first) = ws(addr, path, &[("origin", origin)])
                .unwrap_or_else(|s| panic!("{addr}{path} from {origin}: {s}"));
            assert_eq!(first["type"], "snapshot");
        }
        let (_ws, first) = ws(addr, path, &[]).expect("no Origin: not a browser");
        assert_eq!(first["type"], "snapshot");
    }
    // The dashboard's listener is another origin than the WebSocket port's.
    assert_eq!(
        ws(hbd.ws, "/", &[("origin", &format!("http://{}", hbd.http))]).err(),
        Some(403)
    );
    assert!(hbd
        .get_text("/metrics")
        .contains("hbd_http_refused_total{reason=\"websocket_origin\"} 7\n"));
}
