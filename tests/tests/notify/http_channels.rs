//! Pushover and Mattermost (webhook and REST API) against the local stand-in: every
//! request valid per the published API, priorities and links right, failures retried in
//! order and delivered once, errors visible without secrets, and a channel failing for
//! long raising one notification on the others.

use std::time::Duration;

use hb_proto::Level;

use crate::stub::{self, Api, Mode, Stub};
use crate::support::*;
use crate::util::{events, Hbd};

fn pushover_yaml(url: &str) -> String {
    format!(
        "pushsrv: {url}\npushover_token: {}\npushover_user: {}\n",
        stub::PUSHOVER_TOKEN,
        stub::PUSHOVER_USER
    )
}

fn mattermost_yaml(url: &str) -> String {
    format!(
        "mattermost_url: {url}/hooks/{}\nmattermost_api_url: {url}\nmattermost_token: {}\nmattermost_channel_id: {}\n",
        stub::WEBHOOK_KEY,
        stub::MM_TOKEN,
        stub::MM_CHANNEL
    )
}

fn wait_accepted(s: &Stub, api: Api, n: usize) -> Vec<stub::Accepted> {
    eventually(
        Duration::from_secs(15),
        &format!("{n} requests to {api:?}"),
        || {
            let v = s.of(api);
            (v.len() >= n).then_some(v)
        },
    )
}

#[test]
fn every_channel_gets_valid_requests_with_priority_and_link() {
    let dir = tempfile::tempdir().expect("tempdir");
    let s = Stub::start();
    let cfg = notify_config(&format!(
        "{}{}",
        pushover_yaml(&s.url),
        mattermost_yaml(&s.url)
    ));
    let hbd = Hbd::start(cfg, dir.path(), 0);
    let mut beats = Beats::new();
    beats.send(
        &hbd,
        "web7",
        Level::Critical,
        &[("memory.used_percent", 99.0, Level::Critical, "crit 95")],
    );

    let p = wait_accepted(&s, Api::Pushover, 1);
    assert_eq!(p[0].get("title"), "[hbd] web7 is CRITICAL");
    assert_eq!(p[0].get("priority"), "1", "CRITICAL is high priority");
    assert_eq!(p[0].get("url"), "http://dash.test:50004/hosts/web7");
    assert_eq!(p[0].get("url_title"), "Open in the dashboard");
    assert!(p[0].get("timestamp").parse::<u64>().is_ok());
    assert!(
        p[0].text()
            .contains("memory.used_percent CRITICAL: 99 % (threshold crit 95)"),
        "{}",
        p[0].text()
    );
    let w = wait_accepted(&s, Api::Webhook, 1);
    assert!(
        w[0].text().contains("**web7 is CRITICAL**"),
        "{}",
        w[0].text()
    );
    assert!(
        w[0].text()
            .contains("| `memory.used_percent` | CRITICAL | 99 % | crit 95 |"),
        "{}",
        w[0].text()
    );
    assert!(w[0].text().contains("(http://dash.test:50004/hosts/web7)"));
    let a = wait_accepted(&s, Api::Posts, 1);
    assert_eq!(a[0].get("channel_id"), stub::MM_CHANNEL);
    assert_eq!(a[0].text(), w[0].text());

    // DOWN (high priority), then UP (quiet).
    let p = wait_accepted(&s, Api::Pushover, 2);
    assert_eq!(
        (p[1].get("title"), p[1].get("priority")),
        ("[hbd] web7 is DOWN", "1")
    );
    beats.send(
        &hbd,
        "web7",
        Level::Ok,
        &[("memory.used_percent", 50.0, Level::Ok, "crit 95")],
    );
    let p = wait_accepted(&s, Api::Pushover, 3);
    assert_eq!(
        (p[2].get("title"), p[2].get("priority")),
        ("[hbd] web7 is UP again", "-1")
    );
    wait_accepted(&s, Api::Webhook, 3);
    wait_accepted(&s, Api::Posts, 3);
    for c in ["pushover", "mattermost", "mattermost_api"] {
        let st = channel(&hbd, c);
        assert!(st["last_success_ms"].as_u64().is_some(), "{st}");
        assert_eq!(st["queued"], 0, "{st}");
    }
    hbd.stop();
    s.assert_no_violations();
}

#[test]
fn failures_are_retried_in_order_and_delivered_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let s = Stub::start();
    s.set_mode(Mode::Fail(503));
    let cfg = notify_config(&format!(
        "{}{}",
        pushover_yaml(&s.url),
        mattermost_yaml(&s.url)
    ));
    let hbd = Hbd::start(cfg, dir.path(), 0);
    let keeper = Keeper::start(hbd.udp);
    keeper.set("db3", true);
    wait_status(&hbd, "db3", "UP");
    keeper.set("db3", false);
    wait_status(&hbd, "db3", "DOWN");
    keeper.set("db3", true);
    wait_status(&hbd, "db3", "UP");
    let st = eventually(Duration::from_secs(10), "both queued, errors shown", || {
        let st = channel(&hbd, "pushover");
        (st["queued"] == 2 && st["attempts"].as_u64() >= Some(3)).then_some(st)
    });
    assert_eq!(
        st["last_error"],
        "Pushover answered HTTP 503: <html><body>upstream unavailable</body></html>"
    );
    assert!(st["failing_since_ms"].as_u64().is_some());
    assert!(st["next_retry_ms"].as_u64().is_some());
    // Secrets are in no API output, including the webhook URL's key.
    let (_, all) = hbd.get("/api/v1/notify");
    let text = all.to_string();
    for secret in [
        stub::PUSHOVER_TOKEN,
        stub::PUSHOVER_USER,
        stub::WEBHOOK_KEY,
        stub::MM_TOKEN,
    ] {
        assert!(!text.contains(secret), "secret in the status: {text}");
    }
    assert_eq!(channel(&hbd, "mattermost")["target"], s.url.as_str());

    s.set_mode(Mode::Accept);
    for api in [Api::Pushover, Api::Webhook, Api::Posts] {
        let got = wait_accepted(&s, api, 2);
        let titles: Vec<&str> = got
            .iter()
            .map(|a| a.text().lines().next().unwrap_or(""))
            .collect();
        assert!(titles[0].contains("db3 is DOWN"), "{api:?}: {titles:?}");
        assert!(titles[1].contains("db3 is UP again"), "{api:?}: {titles:?}");
    }
    std::thread::sleep(Duration::from_millis(800));
    for api in [Api::Pushover, Api::Webhook, Api::Posts] {
        assert_eq!(s.of(api).len(), 2, "{api:?}: each notification once");
    }
    assert!(s.failed() >= 6, "every channel retried: {}", s.failed());
    let st = channel(&hbd, "pushover");
    assert!(
        st["failing_since_ms"].is_null() && st["queued"] == 0,
        "{st}"
    );
    assert_eq!(st["delivered"], 2);
    hbd.stop();
    s.assert_no_violations();
}

#[test]
fn wrong_credentials_show_the_services_answer_without_the_secret() {
    let dir = tempfile::tempdir().expect("tempdir");
    let s = Stub::start();
    let cfg = notify_config(&format!(
        "pushsrv: {}\npushover_token: wrongtokenwrongtokenwrongtoken\npushover_user: {}\nmattermost_api_url: {}\nmattermost_token: wrong-bot-token\nmattermost_channel_id: {}\n",
        s.url,
        stub::PUSHOVER_USER,
        s.url,
        stub::MM_CHANNEL
    ));
    let hbd = Hbd::start(cfg, dir.path(), 0);
    call(&hbd, "POST", "/api/v1/notify/test", Some(TOKEN), None);
    let p = eventually(Duration::from_secs(10), "pushover error", || {
        channel(&hbd, "pushover")["last_error"]
            .as_str()
            .map(str::to_string)
    });
    assert_eq!(
        p,
        "Pushover answered HTTP 400: application token is invalid"
    );
    let m = eventually(Duration::from_secs(10), "mattermost error", || {
        channel(&hbd, "mattermost_api")["last_error"]
            .as_str()
            .map(str::to_string)
    });
    assert_eq!(
        m,
        "Mattermost API answered HTTP 401: Invalid or expired session, please login again."
    );
    let (_, all) = hbd.get("/api/v1/notify");
    assert!(
        !all.to_string().contains("wrongtoken") && !all.to_string().contains("wrong-bot-token")
    );
    // Test notifications to one channel; unknown channels are refused.
    let (code, body) = call(
        &hbd,
        "POST",
        "/api/v1/notify/test",
        Some(TOKEN),
        Some(serde_json::json!({"channel": "email"})),
    );
    assert_eq!(code, 400, "{body}");
    assert!(
        body["error"]
            .as_str()
            .is_some_and(|e| e.contains("not configured")),
        "{body}"
    );
    let (code, _) = call(&hbd, "POST", "/api/v1/notify/test", None, None);
    assert_eq!(code, 401);
    hbd.stop();
    s.assert_no_violations();
}

#[test]
fn a_channel_failing_for_long_raises_one_notification_on_the_others() {
    let dir = tempfile::tempdir().expect("tempdir");
    let broken = Stub::start();
    broken.set_mode(Mode::Fail(500));
    let good = Stub::start();
    let cfg = notify_config(&format!(
        "{}mattermost_url: {}/hooks/{}\nnotify_channel_alarm: 1s\n",
        pushover_yaml(&broken.url),
        good.url,
        stub::WEBHOOK_KEY
    ));
    let hbd = Hbd::start(cfg, dir.path(), 0);
    let mut beats = Beats::new();
    beats.ok(&hbd, "app1");
    wait_status(&hbd, "app1", "DOWN");
    let got = wait_accepted(&good, Api::Webhook, 2);
    assert!(got[0].text().contains("app1 is DOWN"), "{}", got[0].text());
    assert!(
        got[1]
            .text()
            .contains("notification channel pushover is failing"),
        "{}",
        got[1].text()
    );
    assert!(got[1].text().contains("HTTP 500"), "{}", got[1].text());
    // Still failing, and no second alarm.
    std::thread::sleep(Duration::from_millis(2500));
    assert_eq!(good.of(Api::Webhook).len(), 2);
    assert!(channel(&hbd, "pushover")["alarmed"] == true);
    let ev = events(&hbd, "kind=system");
    assert!(
        ev.iter()
            .any(|e| e["key"] == "notify.pushover" && e["to"] == "FAILING"),
        "{ev:?}"
    );

    broken.set_mode(Mode::Accept);
    let got = wait_accepted(&good, Api::Webhook, 3);
    assert!(
        got[2]
            .text()
            .contains("notification channel pushover works again"),
        "{}",
        got[2].text()
    );
    let p = wait_accepted(&broken, Api::Pushover, 1);
    assert_eq!(
        p[0].get("title"),
        "[hbd] app1 is DOWN",
        "the alarm is not sent to the failing channel"
    );
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(broken.of(Api::Pushover).len(), 1);
    hbd.stop();
    broken.assert_no_violations();
    good.assert_no_violations();
}
