//! The host page's silences in headless Chromium: the form refuses a wrong API token with
//! the API's own error, creates a silence with the right one (who and why then listed, and
//! in the API), ends it; no CSP violation. Also the page's cosmetic rules: `os.boot_time`
//! shown as a time, no clipped column header in the readings.

use std::time::Duration;

use crate::browser::{Browser, Options};
use crate::util::*;

const HOST: &str = "silence-e2e";
const TOKEN: &str = "page-token-0123456789";

fn active_silences(hbd: &Hbd) -> Vec<serde_json::Value> {
    let (code, v) = hbd.get("/api/v1/silences");
    assert_eq!(code, 200, "{v}");
    v["silences"].as_array().cloned().unwrap_or_default()
}

/// Fills the form's fields and submits it as a person would (the page's own handler runs).
fn submit(b: &Browser, reason: &str, by: &str, token: &str) {
    b.exec(&format!(
        "var f = document.getElementById('silence-form').elements; \
         f.reason.value = {reason:?}; f.by.value = {by:?}; f.token.value = {token:?}; \
         f.duration.value = '2h'; \
         document.getElementById('silence-form').requestSubmit(); return 1;"
    ));
}

#[test]
fn silences_are_made_and_ended_on_the_host_page_with_the_api_token() {
    let dir = tempfile::tempdir().expect("tmp");
    let hbd = Hbd::start(config(&format!("api_token: {TOKEN}\n")), dir.path(), 0);
    let _hbc = Hbc::start(&hbd.udp.to_string(), "1s", "", &["os", "cpu"], HOST);
    hbd.wait_for(Duration::from_secs(15), "hbc's host is UP", |h| {
        h.status(HOST).as_deref() == Some("UP")
    });

    let b = Browser::start(Options::default());
    b.goto(&hbd.url(&format!("/hosts/{HOST}")));
    b.wait(
        Duration::from_secs(10),
        "the silence form is shown by the page's script",
        "var f = document.getElementById('silence-form'); return f && !f.hidden;",
    );
    assert_eq!(b.count("#silence-list li"), 0);

    // A wrong token: the API's 401 reaches the page, nothing is created.
    submit(&b, "kernel upgrade", "alice", "wrong-token-000");
    let said = b.wait(
        Duration::from_secs(10),
        "the refusal",
        "var s = document.getElementById('silence-status'); \
         return s.classList.contains('bad') && s.textContent;",
    );
    assert!(
        said.as_str().unwrap_or("").contains("Could not silence"),
        "{said}"
    );
    assert!(active_silences(&hbd).is_empty());

    // The right token: created, listed with who and why, and in the API.
    submit(&b, "kernel upgrade", "alice", TOKEN);
    b.wait(
        Duration::from_secs(10),
        "the new silence in the list",
        "return document.querySelectorAll('#silence-list li').length === 1;",
    );
    let line = b.text("#silence-list li");
    assert!(
        line.contains("kernel upgrade") && line.contains("by alice") && line.contains(HOST),
        "{line}"
    );
    let list = active_silences(&hbd);
    assert_eq!(list.len(), 1, "{list:?}");
    assert_eq!(list[0]["hosts"], HOST);
    assert_eq!(list[0]["reason"], "kernel upgrade");
    assert_eq!(list[0]["by"], "alice");
    let two_hours =
        list[0]["until_ms"].as_u64().expect("until") - list[0]["from_ms"].as_u64().expect("from");
    assert_eq!(two_hours, 2 * 3600 * 1000);

    // A silence of another host is not listed here.
    let other = ureq::post(&hbd.url("/api/v1/silences"))
        .set("Authorization", &format!("Bearer {TOKEN}"))
        .send_json(serde_json::json!({"hosts": "db*", "duration": "1h", "reason": "other"}))
        .expect("silence db*");
    assert_eq!(other.status(), 201);
    b.goto(&hbd.url(&format!("/hosts/{HOST}")));
    b.wait(
        Duration::from_secs(10),
        "the list after a reload",
        "return document.querySelectorAll('#silence-list li').length === 1 \
         && document.getElementById('silence-empty').hidden;",
    );

    // End it from the page (the token typed again: the page keeps none).
    b.exec(&format!(
        "document.getElementById('silence-form').elements.token.value = {TOKEN:?}; \
         document.querySelector('#silence-list li .end').click(); return 1;"
    ));
    b.wait(
        Duration::from_secs(10),
        "the silence ended",
        "return document.querySelectorAll('#silence-list li').length === 0 \
         && !document.getElementById('silence-empty').hidden;",
    );
    let left = active_silences(&hbd);
    assert!(left.iter().all(|s| s["hosts"] != HOST), "{left:?}");

    // os.boot_time is a time, not an epoch number; no header of the readings is clipped.
    let boot = b.exec(
        "var t = document.querySelector('#readings tr[data-key=\"os.boot_time\"] td.num time'); \
         return t && t.textContent;",
    );
    let boot = boot.as_str().unwrap_or_default().to_string();
    assert!(
        !boot.is_empty() && !boot.chars().all(|c| c.is_ascii_digit()),
        "{boot:?}"
    );
    let clipped = b.exec(
        "return Array.from(document.querySelectorAll('#readings thead th')) \
         .filter(function (th) { return th.scrollWidth > th.clientWidth + 1; }) \
         .map(function (th) { return th.textContent; });",
    );
    assert_eq!(clipped, serde_json::json!([]), "clipped column headers");
    assert_eq!(b.exec("return window.hbdStats.cspViolations;"), 0);
    b.screenshot("host-silences", true);
}
