//! Not noisy, end to end (the timing logic itself is tested with a controlled clock in
//! the policy's unit tests): silences through the API, UP only after N heartbeats, and a
//! storm of hosts going DOWN together as one message per channel.

use std::time::Duration;

use serde_json::json;

use crate::stub::{self, Api, Stub};
use crate::support::*;
use crate::util::{events, Hbd};

fn titles(s: &Stub) -> Vec<String> {
    s.of(Api::Pushover)
        .iter()
        .map(|a| a.get("title").to_string())
        .collect()
}

fn pushover_config(s: &Stub, extra: &str) -> hbd::config::Config {
    notify_config(&format!(
        "pushsrv: {}\npushover_token: {}\npushover_user: {}\n{extra}",
        s.url,
        stub::PUSHOVER_TOKEN,
        stub::PUSHOVER_USER
    ))
}

#[test]
fn silences_through_the_api() {
    let dir = tempfile::tempdir().expect("tempdir");
    let s = Stub::start();
    let hbd = Hbd::start(pushover_config(&s, ""), dir.path(), 0);
    let body =
        json!({"hosts": "maint-*", "duration": "1h", "reason": "kernel upgrade", "by": "alice"});
    assert_eq!(
        call(&hbd, "POST", "/api/v1/silences", None, Some(body.clone())).0,
        401
    );
    assert_eq!(
        call(
            &hbd,
            "POST",
            "/api/v1/silences",
            Some("wrong-token"),
            Some(body.clone())
        )
        .0,
        401
    );
    for (bad, why) in [
        (
            json!({"hosts": "maint-*", "duration": "1h"}),
            "missing field `reason`",
        ),
        (
            json!({"hosts": "a b", "duration": "1h", "reason": "x"}),
            "hosts:",
        ),
        (json!({"hosts": "a", "reason": "x"}), "either duration"),
        (
            json!({"hosts": "a", "duration": "soon", "reason": "x"}),
            "duration:",
        ),
        (
            json!({"hosts": "a", "until_ms": 5, "reason": "x"}),
            "until:",
        ),
        (
            json!({"hosts": "a", "duration": "1h", "reason": "x", "colour": 1}),
            "unknown field",
        ),
    ] {
        let (code, b) = call(&hbd, "POST", "/api/v1/silences", Some(TOKEN), Some(bad));
        assert_eq!(code, 400, "{b}");
        assert!(
            b["error"].as_str().is_some_and(|e| e.contains(why)),
            "{why}: {b}"
        );
    }
    let (code, created) = call(&hbd, "POST", "/api/v1/silences", Some(TOKEN), Some(body));
    assert_eq!(code, 201, "{created}");
    let id = created["id"].as_u64().expect("id");
    assert_eq!(created["hosts"], "maint-*");
    assert_eq!(created["by"], "alice");
    let until = created["until_ms"].as_u64().expect("until");
    assert!(until >= hbd::state::now_ms() + 3_500_000);
    let (_, list) = hbd.get("/api/v1/silences");
    assert_eq!(list["silences"][0]["reason"], "kernel upgrade");
    let (_, status) = hbd.get("/api/v1/notify");
    assert_eq!(status["silences"][0]["id"], id);

    // maint-1 goes DOWN and stays DOWN; maint-2 goes DOWN and recovers; other-1 is not
    // covered.
    let mut beats = Beats::new();
    for h in ["maint-1", "maint-2", "other-1"] {
        beats.ok(&hbd, h);
    }
    for h in ["maint-1", "maint-2", "other-1"] {
        wait_status(&hbd, h, "DOWN");
    }
    // maint-2 stays UP from here on.
    let keeper = Keeper::start(hbd.udp);
    keeper.set("maint-2", true);
    wait_status(&hbd, "maint-2", "UP");
    eventually(Duration::from_secs(5), "other-1 DOWN", || {
        titles(&s)
            .contains(&"[hbd] other-1 is DOWN".to_string())
            .then_some(())
    });
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(
        titles(&s),
        ["[hbd] other-1 is DOWN"],
        "silenced hosts say nothing"
    );

    // Ending the silence: maint-1, still DOWN, notifies once; maint-2 sends no stale DOWN.
    let (code, _) = call(
        &hbd,
        "DELETE",
        &format!("/api/v1/silences/{id}"),
        Some(TOKEN),
        None,
    );
    assert_eq!(code, 204);
    eventually(
        Duration::from_secs(5),
        "maint-1 DOWN after the silence",
        || (titles(&s).len() >= 2).then_some(()),
    );
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(
        titles(&s),
        ["[hbd] other-1 is DOWN", "[hbd] maint-1 is DOWN"]
    );
    assert_eq!(
        call(
            &hbd,
            "DELETE",
            &format!("/api/v1/silences/{id}"),
            Some(TOKEN),
            None
        )
        .0,
        404
    );
    assert_eq!(
        call(&hbd, "DELETE", "/api/v1/silences/abc", Some(TOKEN), None).0,
        400
    );
    let (_, list) = hbd.get("/api/v1/silences");
    assert_eq!(list["silences"], json!([]));
    // Both changes are on record in the event log, and notified nobody.
    let ev = events(&hbd, "kind=system");
    assert!(
        ev.iter().any(|e| e["key"] == format!("silence.{id}")
            && e["message"]
                .as_str()
                .is_some_and(|m| m.contains("by alice: kernel upgrade"))),
        "{ev:?}"
    );
    assert!(
        ev.iter()
            .any(|e| e["key"] == format!("silence.{id}") && e["to"] == "ENDED"),
        "{ev:?}"
    );
    hbd.stop();
    s.assert_no_violations();
}

#[test]
fn up_only_after_enough_heartbeats() {
    let dir = tempfile::tempdir().expect("tempdir");
    let s = Stub::start();
    let mut cfg = pushover_config(&s, "");
    cfg.notify.notify_up_after = 4;
    let hbd = Hbd::start(cfg, dir.path(), 0);
    // A 2 s interval: DOWN 5 s after a heartbeat, time enough between the checks below.
    let mut beats = Beats::with_interval(2000);
    beats.ok(&hbd, "shaky");
    wait_status(&hbd, "shaky", "DOWN");
    eventually(Duration::from_secs(10), "DOWN", || {
        (titles(&s).len() == 1).then_some(())
    });
    // Two heartbeats: UP in the registry, not yet announced.
    beats.ok_for(&hbd, "shaky", 2);
    assert_eq!(hbd.status("shaky").as_deref(), Some("UP"));
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(titles(&s), ["[hbd] shaky is DOWN"]);
    assert_eq!(hbd.get("/api/v1/notify").1["pending_up"], 1);
    beats.ok_for(&hbd, "shaky", 2);
    eventually(Duration::from_secs(5), "UP after 4 heartbeats", || {
        (titles(&s).len() == 2).then_some(())
    });
    assert_eq!(titles(&s)[1], "[hbd] shaky is UP again");
    hbd.stop();
    s.assert_no_violations();
}

#[test]
fn a_storm_is_one_message_per_channel() {
    let dir = tempfile::tempdir().expect("tempdir");
    let s = Stub::start();
    let cfg = pushover_config(
        &s,
        &format!("mattermost_url: {}/hooks/{}\n", s.url, stub::WEBHOOK_KEY),
    );
    let mut cfg = cfg;
    cfg.notify.notify_storm_window = Duration::from_secs(2);
    cfg.notify.notify_storm_threshold = 5;
    let hbd = Hbd::start(cfg, dir.path(), 0);
    let mut beats = Beats::new();
    let hosts: Vec<String> = (0..30).map(|i| format!("rack4-{i:02}")).collect();
    for h in &hosts {
        beats.ok(&hbd, h);
    }
    for h in &hosts {
        wait_status(&hbd, h, "DOWN");
    }
    // The first DOWN goes out at once (issue 15), the other 29 as one group when the
    // window closes: two messages per channel, not 30.
    let p = eventually(Duration::from_secs(10), "the grouped message", || {
        let v = s.of(Api::Pushover);
        (v.len() >= 2).then_some(v)
    });
    std::thread::sleep(Duration::from_millis(2500));
    let p = if s.of(Api::Pushover).len() > p.len() {
        s.of(Api::Pushover)
    } else {
        p
    };
    let titles: Vec<String> = p.iter().map(|a| a.get("title").to_string()).collect();
    assert_eq!(p.len(), 2, "the first at once, then one group: {titles:?}");
    let lead = titles[0]
        .strip_prefix("[hbd] ")
        .and_then(|t| t.strip_suffix(" is DOWN"))
        .unwrap_or_else(|| panic!("first: one host DOWN, at once: {titles:?}"))
        .to_string();
    assert_eq!(p[1].get("title"), "[hbd] 29 hosts changed state");
    assert_eq!(p[1].get("priority"), "1");
    assert!(p[1].text().contains("29 DOWN"), "{}", p[1].text());
    let w = s.of(Api::Webhook);
    assert_eq!(w.len(), 2);
    // Pushover's text is cut at 1,024 characters; the webhook's lists all of them.
    for h in &hosts {
        let listed = w[1].text().contains(&format!("[{h}]("));
        assert_eq!(listed, *h != lead, "{h} once: {}", w[1].text());
    }
    let other = if lead == "rack4-29" {
        "rack4-28"
    } else {
        "rack4-29"
    };
    assert!(
        w[1].text()
            .contains(&format!("[{other}](http://dash.test:50004/hosts/{other})")),
        "{}",
        w[1].text()
    );
    hbd.stop();
    s.assert_no_violations();
}
