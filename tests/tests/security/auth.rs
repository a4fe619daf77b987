//! `dashboard_users`: Basic authentication for every page, asset, reading API call,
//! `/metrics` and both WebSocket endpoints; `/healthz` open with its status only;
//! failed logins logged without the password and limited per client.

use crate::support::*;
use crate::util::*;

const USERS: &str = "dashboard_users: {ops: \"right-password-1\", dev: \"other-password-2\"}\napi_token: correct-token-123\n";

#[test]
fn reading_needs_a_login_and_healthz_stays_open() {
    let log = LogCapture::install();
    let dir = tempfile::tempdir().expect("tmp");
    let hbd = Hbd::start(config(USERS), dir.path(), 0);
    let url = |p: &str| hbd.url(p);
    let ok = basic("ops", "right-password-1");
    let wrong = basic("ops", "wrong-password-9");

    for path in [
        "/",
        "/events",
        "/hosts/web1",
        "/static/hbd.css",
        "/favicon.svg",
        "/dashboard/history.json",
        "/api/v1/hosts",
        "/api/v1/events",
        "/api/v1/openapi.yaml",
        "/metrics",
        "/nonexistent",
    ] {
        let r = http("GET", &url(path), &[], None);
        assert_eq!(r.status, 401, "{path} without a login");
        assert_eq!(
            r.header("www-authenticate"),
            Some("Basic realm=\"hbd\", charset=\"UTF-8\""),
            "{path}"
        );
        assert!(r.json()["error"].is_string(), "{path}: {}", r.body);
    }
    // A few wrong passwords (ten would get this client refused, as the next test shows).
    for path in ["/", "/api/v1/hosts", "/metrics"] {
        let r = http("GET", &url(path), &[("authorization", &wrong)], None);
        assert_eq!(r.status, 401, "{path} with a wrong password");
    }
    for (path, want) in [
        ("/", 200),
        ("/static/hbd.css", 200),
        ("/api/v1/hosts", 200),
        ("/metrics", 200),
        ("/hosts/nope", 404),
    ] {
        let r = http("GET", &url(path), &[("authorization", &ok)], None);
        assert_eq!(r.status, want, "{path} with the right login: {}", r.body);
    }
    let r = http(
        "GET",
        &url("/api/v1/hosts"),
        &[("authorization", &basic("dev", "other-password-2"))],
        None,
    );
    assert_eq!(r.status, 200, "the second user");
    let r = http(
        "GET",
        &url("/api/v1/hosts"),
        &[("authorization", &basic("dev", "right-password-1"))],
        None,
    );
    assert_eq!(r.status, 401, "another user's password");

    // /healthz: the status for anyone, the details only with a login.
    let open = http("GET", &url("/healthz"), &[], None);
    assert_eq!(open.status, 200);
    assert_eq!(open.json(), serde_json::json!({ "status": "ok" }));
    let full = http("GET", &url("/healthz"), &[("authorization", &ok)], None);
    assert_eq!(full.status, 200);
    assert!(full.json()["hosts"].is_number(), "{}", full.body);
    let r = http("GET", &url("/healthz"), &[("authorization", &wrong)], None);
    assert_eq!(r.status, 401, "credentials given are checked, also here");

    // Mutations keep their bearer token (an Authorization header holds one scheme).
    let r = http(
        "DELETE",
        &url("/api/v1/hosts/nope"),
        &[("authorization", "Bearer correct-token-123")],
        None,
    );
    assert_eq!(r.status, 404, "token accepted, no such host: {}", r.body);
    let r = http(
        "DELETE",
        &url("/api/v1/hosts/nope"),
        &[("authorization", &ok)],
        None,
    );
    assert_eq!(r.status, 401, "Basic is not a token: {}", r.body);

    // Both WebSocket endpoints.
    for (addr, path) in [(hbd.ws, "/"), (hbd.http, "/ws")] {
        assert_eq!(ws(addr, path, &[]).err(), Some(401), "{addr}{path}");
        assert_eq!(
            ws(addr, path, &[("authorization", &wrong)]).err(),
            Some(401),
            "{addr}{path}"
        );
        let (_ws, first) = ws(addr, path, &[("authorization", &ok)]).expect("with a login");
        assert_eq!(first["type"], "snapshot");
    }

    // Counted: three wrong passwords, another user's, /healthz's, two WebSockets'.
    let metrics = http("GET", &url("/metrics"), &[("authorization", &ok)], None);
    assert!(
        metrics
            .body
            .contains("hbd_http_refused_total{reason=\"login_failed\"} 7\n"),
        "{}",
        metrics.body
    );

    // Failed logins are logged with client and user, never with the password.
    let text = log.text();
    let failed: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("login failed"))
        .collect();
    assert!(
        failed
            .iter()
            .any(|l| l.contains("client=127.0.0.1") && l.contains("user=\"ops\"")),
        "{text}"
    );
    assert!(failed.iter().any(|l| l.contains("user=\"dev\"")), "{text}");
    for secret in ["wrong-password-9", "right-password-1", "other-password-2"] {
        assert!(!text.contains(secret), "a password reached the log: {text}");
    }
}

#[test]
fn repeated_failures_are_answered_429_for_a_while() {
    let log = LogCapture::install();
    let dir = tempfile::tempdir().expect("tmp");
    let hbd = Hbd::start(config(USERS), dir.path(), 0);
    let url = hbd.url("/api/v1/hosts");
    let wrong = basic("admin", "guess");
    for i in 0..10 {
        let r = http("GET", &url, &[("authorization", &wrong)], None);
        assert_eq!(r.status, 401, "failure {}", i + 1);
    }
    for auth in [wrong.clone(), basic("ops", "right-password-1")] {
        let r = http("GET", &url, &[("authorization", &auth)], None);
        assert_eq!(r.status, 429, "{}", r.body);
        let after: u64 = r
            .header("retry-after")
            .and_then(|v| v.parse().ok())
            .expect("Retry-After");
        assert!((1..=60).contains(&after), "{after}");
        assert!(r.json()["error"]
            .as_str()
            .expect("error")
            .contains("too many failed logins"));
    }
    assert_eq!(
        ws(hbd.ws, "/", &[("authorization", &wrong)]).err(),
        Some(429)
    );
    // Load balancers still see the status.
    assert_eq!(http("GET", &hbd.url("/healthz"), &[], None).status, 200);
    let text = log.text();
    assert_eq!(
        text.lines().filter(|l| l.contains("login failed")).count(),
        10,
        "each failure once, refused requests not: {text}"
    );
    assert!(text.contains("this client is refused for 60 s"), "{text}");
}
