//! End-to-end tests of SIGHUP's reload (`hbd::server::Running::reload`) on hbd started
//! in-process: notification channels configured by a reload send the next notification,
//! a reload that cannot be applied reports why and leaves notifications flowing with the
//! settings in force, watched hosts and dynamic DNS names follow the new config, and a
//! new TSIG key, names and TTLs reach a real BIND without sending unchanged records
//! again. Pushover is the local stand-in of the notification tests (it checks every
//! request against the published API, including the token); BIND is the DNS tests' one.

// Shared with the notification and DNS tests; this binary uses only part of them.
#[allow(dead_code)]
#[path = "../dns/bind.rs"]
mod bind;
#[allow(dead_code)]
#[path = "../dns/support.rs"]
mod dns_support;
#[allow(dead_code)]
#[path = "../notify/stub.rs"]
mod stub;
#[allow(dead_code)]
#[path = "../notify/support.rs"]
mod support;
#[allow(dead_code)]
#[path = "../hbd/util.rs"]
mod util;

use std::time::Duration;

use bind::{Named, KEY_NAME, KEY_SECRET, WRONG_SECRET};
use dns_support::{beat, record_status, wait_events, wait_record};
use stub::{Api, Stub};
use support::{channel, eventually, notify_config, wait_status, Beats};
use util::{events, Hbd};

fn pushover_yaml(url: &str, token: &str) -> String {
    format!(
        "pushsrv: {url}\npushover_token: {token}\npushover_user: {}\n",
        stub::PUSHOVER_USER
    )
}

/// Pushover messages accepted so far whose title mentions `host`.
fn about(s: &Stub, host: &str) -> Vec<stub::Accepted> {
    s.of(Api::Pushover)
        .into_iter()
        .filter(|a| a.get("title").contains(host))
        .collect()
}

fn wait_about(s: &Stub, host: &str) -> stub::Accepted {
    eventually(
        Duration::from_secs(15),
        &format!("a Pushover message about {host}"),
        || about(s, host).into_iter().next(),
    )
}

/// A host that beats a few times, then stops: DOWN about a second later.
fn goes_down(hbd: &Hbd, beats: &mut Beats, host: &str) {
    beats.ok_for(hbd, host, 2);
    wait_status(hbd, host, "DOWN");
}

#[test]
fn a_channel_configured_by_a_reload_sends_the_next_notification() {
    let dir = tempfile::tempdir().expect("tempdir");
    let s = Stub::start();
    let hbd = Hbd::start(notify_config(""), dir.path(), 0);
    let mut beats = Beats::new();

    goes_down(&hbd, &mut beats, "web0");
    std::thread::sleep(Duration::from_millis(500));
    assert!(s.accepted().is_empty(), "no channel is configured yet");
    let (_, body) = hbd.get("/api/v1/notify/channels");
    assert_eq!(body["channels"], serde_json::json!([]), "{body}");

    let problems = hbd.reload(notify_config(&pushover_yaml(&s.url, stub::PUSHOVER_TOKEN)));
    assert!(problems.is_empty(), "{problems:?}");
    // The routes registered at start-up show the channel the reload added.
    assert_eq!(channel(&hbd, "pushover")["target"], s.url.as_str());

    goes_down(&hbd, &mut beats, "web1");
    let m = wait_about(&s, "web1");
    assert_eq!(m.get("title"), "[hbd] web1 is DOWN");
    assert_eq!(m.get("url"), "http://dash.test:50004/hosts/web1");
    assert!(
        about(&s, "web0").is_empty(),
        "web0 went DOWN while no channel was configured"
    );

    // The same config again changes nothing.
    let problems = hbd.reload(notify_config(&pushover_yaml(&s.url, stub::PUSHOVER_TOKEN)));
    assert!(problems.is_empty(), "{problems:?}");
    assert_eq!(channel(&hbd, "pushover")["delivered"], 1);
    s.assert_no_violations();
}

#[test]
fn a_reload_that_cannot_be_applied_keeps_notifications_flowing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let s = Stub::start();
    let good = pushover_yaml(&s.url, stub::PUSHOVER_TOKEN);
    let hbd = Hbd::start(notify_config(&good), dir.path(), 0);
    let mut beats = Beats::new();

    // A template that does not compile, with another dashboard URL.
    let templates = tempfile::tempdir().expect("tempdir");
    std::fs::write(templates.path().join("title.hbs"), "{{#if host}}unclosed").expect("write");
    let mut broken = notify_config(&format!(
        "{good}notify_templates_dir: {}\n",
        templates.path().display()
    ));
    broken.notify.dashboard_url = Some("http://elsewhere.test".into());
    let problems = hbd.reload(broken);
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert!(
        problems[0].starts_with("notify: notify_templates_dir: ")
            && problems[0].contains("title.hbs"),
        "{problems:?}"
    );

    // Another token and an e-mail channel whose CA file cannot be read.
    let bogus = "bogus".repeat(6);
    let problems = hbd.reload(notify_config(&format!(
        "{}smtpserver: 127.0.0.1\nmailfrom: hbd@example.org\nmailto: ops@example.org\n\
         smtp_ca_file: /nonexistent/hbd-ca.pem\n",
        pushover_yaml(&s.url, &bogus)
    )));
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert!(
        problems[0].contains("smtp_ca_file") && problems[0].contains("/nonexistent/hbd-ca.pem"),
        "{problems:?}"
    );
    assert!(!problems[0].contains(&bogus), "a secret in {problems:?}");
    let (_, body) = hbd.get("/api/v1/notify/channels");
    assert_eq!(body["channels"].as_array().map(Vec::len), Some(1), "{body}");

    // Sent with the settings in force: the built-in title, the old link, the old token
    // (the stand-in refuses any other).
    goes_down(&hbd, &mut beats, "web2");
    let m = wait_about(&s, "web2");
    assert_eq!(m.get("title"), "[hbd] web2 is DOWN");
    assert_eq!(m.get("url"), "http://dash.test:50004/hosts/web2");
    assert_eq!(m.get("token"), stub::PUSHOVER_TOKEN);
    s.assert_no_violations();
}

#[test]
fn watched_hosts_and_dns_names_follow_the_config() {
    let dir = tempfile::tempdir().expect("tempdir");
    let s = Stub::start();
    let base = format!(
        "startup_grace: 2s\n{}",
        pushover_yaml(&s.url, stub::PUSHOVER_TOKEN)
    );
    let hbd = Hbd::start(
        notify_config(&format!("{base}watchhosts: [ghost1]\n")),
        dir.path(),
        0,
    );
    let ghost1 = hbd.host("ghost1").expect("watched host listed");
    assert_eq!(ghost1["status"], "NEVER_SEEN", "{ghost1}");
    assert_eq!(ghost1["watched"], true, "{ghost1}");
    assert_eq!(hbd.get("/api/v1/dns").0, 404, "no dyndnshosts yet");

    // ghost1 is no longer watched, ghost2 is, with a shorter start-up grace; and a DNS
    // name appears (dyndns2 on a port nobody answers: only the status is checked).
    let problems = hbd.reload(notify_config(&format!(
        "startup_grace: 300ms\n{}watchhosts: [ghost2]\n\
         dyndns2_url: http://127.0.0.1:9/nic/update\ndyndns2_user: u\ndyndns2_password: p\n\
         dns_zone: dyn.test\ndyndnshosts: {{web1: {{allow_unsigned: true}}}}\n",
        pushover_yaml(&s.url, stub::PUSHOVER_TOKEN)
    )));
    assert!(problems.is_empty(), "{problems:?}");
    let ghost2 = hbd
        .host("ghost2")
        .expect("a host watched by the reload is listed");
    assert_eq!(ghost2["watched"], true, "{ghost2}");
    assert_eq!(hbd.host("ghost1").expect("still listed")["watched"], false);
    wait_status(&hbd, "ghost2", "DOWN");
    let m = wait_about(&s, "ghost2");
    assert_eq!(
        m.get("title"),
        "[hbd] ghost2 is DOWN (never seen since hbd started)"
    );
    let (code, dns) = hbd.get("/api/v1/dns");
    assert_eq!(code, 200, "{dns}");
    assert_eq!(
        dns["backend"], "dyndns2 http://127.0.0.1:9/nic/update",
        "{dns}"
    );
    eventually(
        Duration::from_secs(10),
        "web1.dyn.test. in /api/v1/dns",
        || (hbd.get("/api/v1/dns").1["records"]["web1.dyn.test."]["host"] == "web1").then_some(()),
    );

    // Past ghost1's start-up grace: not watched any more, so it never goes DOWN.
    std::thread::sleep(Duration::from_millis(2_500));
    assert_eq!(hbd.status("ghost1").as_deref(), Some("NEVER_SEEN"));
    assert!(about(&s, "ghost1").is_empty());
    s.assert_no_violations();
}

/// The config `dns_support::hbd` starts with, with `extra` (a key, names) instead of
/// its defaults.
fn dns_config(named: &Named, extra: &str) -> hbd::config::Config {
    let key = if extra.contains("dns_tsig_") {
        String::new()
    } else {
        format!("dns_tsig_name: {KEY_NAME}\ndns_tsig_secret: {KEY_SECRET}\n")
    };
    let names = if extra.contains("dyndnshosts") {
        ""
    } else {
        "dyndnshosts: [web1]\n"
    };
    util::config(&format!(
        "secret: {}\ndns_server: {}\ndns_zone: dyn.test\ndns_debounce: 200ms\n\
         dns_min_interval: 0s\ndns_timeout: 1s\n{extra}{key}{names}",
        String::from_utf8_lossy(dns_support::SECRET),
        named.addr(),
    ))
}

#[test]
fn a_new_tsig_key_names_and_ttls_reach_bind_without_repeating_unchanged_records() {
    let named = Named::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let wrong = format!("dns_tsig_name: {KEY_NAME}\ndns_tsig_secret: {WRONG_SECRET}\n");
    let hbd = dns_support::hbd(&named, dir.path(), &wrong);
    beat(&hbd, "127.0.0.2", "web1", 1);
    // Three failures: the next attempt would come 4 s after the last one.
    hbd.wait_for(Duration::from_secs(10), "three failed attempts", |h| {
        record_status(h, "web1.dyn.test.", "A")["failures"]
            .as_u64()
            .is_some_and(|n| n >= 3)
    });

    // The right key: the pending update is tried at once, not after the backoff.
    let problems = hbd.reload(dns_config(&named, ""));
    assert!(problems.is_empty(), "{problems:?}");
    wait_record(
        &named,
        "web1.dyn.test",
        "A",
        &["127.0.0.2"],
        Duration::from_secs(2),
    );
    wait_events(&hbd, "web1", "dns_update", 1);

    // A name added: it is updated; web1, unchanged, is not sent again.
    let problems = hbd.reload(dns_config(&named, "dyndnshosts: [web1, web2]\n"));
    assert!(problems.is_empty(), "{problems:?}");
    beat(&hbd, "127.0.0.2", "web1", 2);
    beat(&hbd, "127.0.0.3", "web2", 1);
    wait_record(
        &named,
        "web2.dyn.test",
        "A",
        &["127.0.0.3"],
        Duration::from_secs(10),
    );
    std::thread::sleep(Duration::from_millis(600));
    assert_eq!(events(&hbd, "host=web1&kind=dns_update").len(), 1);

    // A key file that cannot be read: the error, and the running key stays.
    let problems = hbd.reload(dns_config(
        &named,
        "dns_tsig_keyfile: /nonexistent/hbd.key\ndyndnshosts: [web1, web2]\n",
    ));
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert!(
        problems[0].starts_with("dyndns: dns_tsig_keyfile: cannot read /nonexistent/hbd.key"),
        "{problems:?}"
    );
    beat(&hbd, "127.0.0.4", "web2", 2);
    wait_record(
        &named,
        "web2.dyn.test",
        "A",
        &["127.0.0.4"],
        Duration::from_secs(10),
    );

    // A new TTL writes the record again; web1 is left alone.
    let problems = hbd.reload(dns_config(
        &named,
        "dyndnshosts: {web1: {}, web2: {ttl: 30}}\n",
    ));
    assert!(problems.is_empty(), "{problems:?}");
    hbd.wait_for(Duration::from_secs(10), "web2 with TTL 30", |_| {
        named.ttl("web2.dyn.test", "A") == Some(30)
    });
    assert_eq!(named.lookup("web2.dyn.test", "A"), ["127.0.0.4"]);
    assert_eq!(named.ttl("web1.dyn.test", "A"), Some(60));
    assert_eq!(events(&hbd, "host=web1&kind=dns_update").len(), 1);
}
