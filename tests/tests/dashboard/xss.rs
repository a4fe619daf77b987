//! Hostile text from the wire is shown as text and never runs: a host name (forced into
//! the registry past the protocol's name check, as a compromised or buggy decoder
//! might) and the output of a real Nagios check run by the real hbc.

use std::net::IpAddr;
use std::time::Duration;

use crate::browser::{Browser, Options};
use crate::util::*;

const EVIL_NAME: &str =
    "<img src=x onerror=\"window.pwned='name'\"><script>window.pwned='name2'</script>";
const EVIL_OUTPUT: &str =
    "<script>window.pwned='nagios'</script><img src=x onerror=\"window.pwned='img'\"><b>bold</b>";

/// Everything that would show an injection: a flag set by injected code, injected
/// elements, or a CSP violation (blocked inline code means markup got in).
const CHECK: &str = "return JSON.stringify({
    pwned: window.pwned === undefined ? null : String(window.pwned),
    imgs: document.querySelectorAll('img').length,
    inline: document.querySelectorAll('script:not([src])').length,
    bold: document.querySelectorAll('main b').length - document.querySelectorAll('main .chg b, main .legend b, main .perf-item b').length,
    csp: window.hbdStats ? window.hbdStats.cspViolations : -1,
    text: document.body.textContent.indexOf(\"<script>window.pwned='nagios'</script>\") >= 0
        || document.body.textContent.indexOf(\"<script>window.pwned='name2'</script>\") >= 0,
});";

fn assert_clean(b: &Browser, page: &str) {
    let v: serde_json::Value =
        serde_json::from_str(b.exec(CHECK).as_str().expect("json")).expect("json");
    assert_eq!(
        v["pwned"],
        serde_json::Value::Null,
        "{page}: injected code ran: {v}"
    );
    assert_eq!(v["imgs"], 0, "{page}: injected <img>: {v}");
    assert_eq!(v["inline"], 0, "{page}: injected <script>: {v}");
    assert_eq!(v["bold"], 0, "{page}: injected <b>: {v}");
    assert_eq!(v["csp"], 0, "{page}: CSP violations: {v}");
    assert_eq!(
        v["text"], true,
        "{page}: the hostile text is shown as text: {v}"
    );
}

#[test]
fn hostile_names_and_check_output_are_text() {
    let dir = tempfile::tempdir().expect("tmp");
    let hbd = Hbd::start(config(""), dir.path(), 0);
    // The real hbc running a real Nagios plugin whose output is markup.
    let nagios = format!(
        "plugins:\n  nagios:\n    options:\n      commands:\n        evil: {{command: [\"/usr/lib/nagios/plugins/check_dummy\", \"2\", {}]}}\n",
        serde_json::to_string(EVIL_OUTPUT).expect("yaml string")
    );
    let _hbc = Hbc::start(
        &hbd.udp.to_string(),
        "1s",
        &nagios,
        &["nagios", "cpu"],
        "victim",
    );
    hbd.wait_for(Duration::from_secs(20), "the Nagios output arrives", |h| {
        h.host("victim").is_some_and(|v| {
            v["worst"]["message"]
                .as_str()
                .is_some_and(|m| m.contains("<script>"))
        })
    });
    // A host whose name is markup, applied directly to the registry.
    let now = hbd::state::now_ms();
    let packet = hb_proto::Packet {
        signed: false,
        instance: 1,
        seq: 1,
        sent_ms: now,
        interval_ms: 600_000,
        level: hb_proto::Level::Critical,
        part: 0,
        parts: 1,
        host: EVIL_NAME,
        readings: vec![hb_proto::ReadingRef {
            key: "nagios.evil.state",
            value: hb_proto::ValueRef::I64(2),
            unit: "",
            level: hb_proto::Level::Critical,
            message: EVIL_OUTPUT,
            threshold: "<i>t</i>",
        }],
    };
    let mut events = Vec::new();
    hbd.state
        .registry()
        .apply(&packet, IpAddr::from([127, 0, 0, 1]), now, &mut events)
        .expect("apply");
    hbd.state.publish(&mut events);

    let b = Browser::start(Options::default());
    b.goto(&hbd.url("/"));
    b.wait(
        Duration::from_secs(10),
        "both hosts drawn from live data",
        "return window.hbdStats && window.hbdStats.firstRender !== null && document.querySelectorAll('#host-rows tr').length === 2;",
    );
    // Let a few live heartbeats redraw the victim's row.
    let beats = b
        .exec("return window.hbdStats.beats;")
        .as_u64()
        .unwrap_or(0);
    b.wait(
        Duration::from_secs(10),
        "live updates",
        &format!("return window.hbdStats.beats > {beats} + 1;"),
    );
    assert_clean(&b, "overview");
    let names = b.exec(
        "return [...document.querySelectorAll('#host-rows .c-name a')].map(a => a.textContent);",
    );
    assert!(names.to_string().contains("<img src=x"), "{names}");
    b.screenshot("xss-overview", false);

    b.goto(&hbd.url("/hosts/victim"));
    b.wait(
        Duration::from_secs(10),
        "the victim's page",
        "return document.querySelector('#nagios pre') !== null;",
    );
    assert_eq!(
        b.text("#nagios pre"),
        format!("CRITICAL: {EVIL_OUTPUT}"),
        "the check output, verbatim"
    );
    // Wait for a live refresh of the page (new heartbeat), then check again.
    b.exec("window.notReloaded = true; return 1;");
    std::thread::sleep(Duration::from_millis(2500));
    assert_eq!(b.exec("return window.notReloaded === true;"), true);
    assert_clean(&b, "host page");

    let evil_path = format!("/hosts/{}", hbd::dashboard::format::url_segment(EVIL_NAME));
    b.goto(&hbd.url(&evil_path));
    b.wait(
        Duration::from_secs(10),
        "the hostile host's page",
        "return document.querySelector('h1') !== null;",
    );
    assert_eq!(b.text("h1"), EVIL_NAME);
    assert_clean(&b, "hostile host page");

    b.goto(&hbd.url("/events"));
    b.wait(
        Duration::from_secs(10),
        "events",
        "return document.querySelectorAll('#event-rows tr').length >= 2;",
    );
    assert_clean(&b, "events");

    // A name in the URL is reflected on the 404 page: as text.
    b.goto(&hbd.url("/hosts/%3Cscript%3Ewindow.pwned%3D'url'%3C%2Fscript%3E"));
    let v: serde_json::Value =
        serde_json::from_str(b.exec(CHECK).as_str().expect("json")).expect("json");
    assert_eq!(v["pwned"], serde_json::Value::Null);
    assert_eq!(v["inline"], 0);
    assert!(b.text("code.name").contains("<script>"));
}
