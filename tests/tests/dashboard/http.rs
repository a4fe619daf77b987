//! The dashboard's HTTP side without a browser: security headers on every response,
//! asset caching, the favicon, server-side filtering and the 404 page.

use std::net::UdpSocket;
use std::time::Duration;

use crate::util::*;

fn get(hbd: &Hbd, path: &str) -> ureq::Response {
    match ureq::get(&hbd.url(path))
        .timeout(Duration::from_secs(10))
        .call()
    {
        Ok(r) => r,
        Err(ureq::Error::Status(_, r)) => r,
        Err(e) => panic!("GET {path}: {e}"),
    }
}

#[test]
fn every_dashboard_response_is_locked_down() {
    let dir = tempfile::tempdir().expect("tmp");
    let hbd = Hbd::start(config(""), dir.path(), 0);
    let sock = UdpSocket::bind("127.0.0.1:0").expect("bind");
    sock.send_to(&datagram("alpha", 1, 1, None, 2), hbd.udp)
        .expect("send");
    hbd.wait_for(Duration::from_secs(3), "host", |h| {
        h.status("alpha").is_some()
    });
    let version = hbd::dashboard::assets::version();
    for path in [
        "/",
        "/?q=alp&status=UP&sort=cpu&dir=asc",
        "/hosts/alpha",
        "/hosts/nobody",
        "/events",
        "/events?kind=nonsense",
        "/favicon.svg",
        "/static/hbd.css",
        "/static/nope.js",
        "/dashboard/history.json",
    ] {
        let r = get(&hbd, path);
        assert_eq!(
            r.header("content-security-policy"),
            Some(hbd::dashboard::CSP),
            "{path}"
        );
        assert_eq!(
            r.header("x-content-type-options"),
            Some("nosniff"),
            "{path}"
        );
        assert_eq!(r.header("x-frame-options"), Some("DENY"), "{path}");
    }
    let csp = hbd::dashboard::CSP;
    for directive in [
        "default-src 'self'",
        "script-src 'self';",
        "style-src 'self';",
        "frame-ancestors 'none'",
        "base-uri 'none'",
    ] {
        assert!(csp.contains(directive), "{directive}");
    }
    assert!(!csp.contains("unsafe"));

    // Pages: HTML, never cached; the unknown host is a 404 page; a bad filter a 400 page.
    let r = get(&hbd, "/");
    assert_eq!(r.status(), 200);
    assert_eq!(r.header("cache-control"), Some("no-store"));
    let html = r.into_string().expect("html");
    assert!(html.contains("data-host=\"alpha\""));
    assert!(html.contains("<noscript><meta http-equiv=\"refresh\" content=\"10\"></noscript>"));
    assert!(html.contains(&format!("/static/hbd.js?v={version}")));
    assert_eq!(get(&hbd, "/hosts/nobody").status(), 404);
    assert_eq!(get(&hbd, "/events?kind=nonsense").status(), 400);
    let filtered = get(&hbd, "/?q=zzz").into_string().expect("html");
    assert!(!filtered.contains("data-host=\"alpha\""));
    assert!(filtered.contains("No host matches the filter."));

    // Assets: versioned URLs are immutable; others revalidate; ETags give 304s.
    let r = get(&hbd, &format!("/static/hbd.js?v={version}"));
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.header("cache-control"),
        Some("public, max-age=31536000, immutable")
    );
    assert!(r
        .header("content-type")
        .unwrap_or("")
        .starts_with("text/javascript"));
    let etag = r.header("etag").expect("etag").to_string();
    let again = ureq::get(&hbd.url("/static/hbd.js"))
        .set("If-None-Match", &etag)
        .call()
        .expect("304 is not an error");
    assert_eq!(again.status(), 304);
    assert_eq!(
        get(&hbd, "/static/hbd.js").header("cache-control"),
        Some("no-cache")
    );
    assert_eq!(get(&hbd, "/static/../Cargo.toml").status(), 404);

    // The favicon shows the fleet's state.
    let svg = get(&hbd, "/favicon.svg").into_string().expect("svg");
    assert!(svg.contains("#1f9d55"), "one host, UP and OK: green\n{svg}");
    let svg = get(&hbd, "/favicon.svg?s=down").into_string().expect("svg");
    assert!(svg.contains("#d92d20"));
    // The API is untouched: unknown paths still get the JSON 404.
    let r = get(&hbd, "/api/v1/nope");
    assert_eq!(r.status(), 404);
    assert!(r.into_string().expect("body").contains("no such endpoint"));
}

#[test]
fn templates_and_assets_can_be_overridden() {
    let dir = tempfile::tempdir().expect("tmp");
    let custom = tempfile::tempdir().expect("custom");
    let tpl = custom.path().join("templates");
    let stat = custom.path().join("static");
    std::fs::create_dir_all(&tpl).expect("mkdir");
    std::fs::create_dir_all(&stat).expect("mkdir");
    std::fs::write(
        tpl.join("not_found.hbs"),
        "<p>Our own 404 for {{body.name}}</p>",
    )
    .expect("write");
    std::fs::write(stat.join("hbd.css"), "body { background: teal; }").expect("write");
    std::fs::write(
        stat.join("logo.svg"),
        "<svg xmlns=\"http://www.w3.org/2000/svg\"/>",
    )
    .expect("write");
    let yaml = format!(
        "templates_dir: {}\nstatic_dir: {}\n",
        tpl.display(),
        stat.display()
    );
    let hbd = Hbd::start(config(&yaml), dir.path(), 0);
    let r = get(&hbd, "/hosts/%3Cb%3Ex");
    assert_eq!(r.status(), 404);
    assert_eq!(
        r.into_string().expect("html"),
        "<p>Our own 404 for &lt;b&gt;x</p>"
    );
    assert_eq!(
        get(&hbd, "/static/hbd.css").into_string().expect("css"),
        "body { background: teal; }"
    );
    assert_eq!(
        get(&hbd, "/static/logo.svg").header("content-type"),
        Some("image/svg+xml")
    );
    // Files not overridden come from the binary; other pages keep working.
    assert_eq!(get(&hbd, "/static/hbd.js").status(), 200);
    assert_eq!(get(&hbd, "/").status(), 200);
    // An edited template is picked up without a restart.
    std::thread::sleep(Duration::from_millis(1100));
    std::fs::write(tpl.join("not_found.hbs"), "<p>Edited {{body.name}}</p>").expect("write");
    assert_eq!(
        get(&hbd, "/hosts/y").into_string().expect("html"),
        "<p>Edited y</p>"
    );
}
