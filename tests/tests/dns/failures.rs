//! Failures are clear, change nothing, and are retried: a wrong TSIG secret, an unknown
//! key, a zone that refuses updates, and a name server that is down during a change.

use std::time::Duration;

use crate::bind::{Named, KEY_NAME, KEY_SECRET, WRONG_SECRET};
use crate::support::*;
use crate::util::events;

const LIMIT: Duration = Duration::from_secs(10);

#[test]
fn a_wrong_tsig_secret_is_a_clear_error_and_changes_nothing() {
    let named = Named::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let hbd = hbd(
        &named,
        dir.path(),
        &format!("dns_tsig_name: {KEY_NAME}\ndns_tsig_secret: {WRONG_SECRET}\n"),
    );
    beat(&hbd, "127.0.0.2", "web1", 1);
    let ev = wait_events(&hbd, "web1", "dns_update_failed", 1);
    let msg = ev[0]["message"].as_str().expect("message");
    assert!(
        msg.starts_with("A web1.dyn.test. → 127.0.0.2 failed: NOTAUTH/BADSIG ("),
        "{msg}"
    );
    assert!(
        msg.contains("rejected the signature of TSIG key hbd-key.: wrong secret?"),
        "{msg}"
    );
    assert!(msg.contains(&named.addr()), "names the server: {msg}");
    assert_eq!(ev[0]["to"], "127.0.0.2");
    assert_eq!(named.lookup("web1.dyn.test", "A"), Vec::<String>::new());
    let st = record_status(&hbd, "web1.dyn.test.", "A");
    assert!(
        st["last_error"]
            .as_str()
            .is_some_and(|e| e.starts_with("NOTAUTH/BADSIG")),
        "{st}"
    );
    assert_eq!(st["pending"], "127.0.0.2", "{st}");
    assert!(st["address"].is_null(), "{st}");

    // Retried with backoff (1 s, 2 s, ...), but the same error is journaled once.
    hbd.wait_for(LIMIT, "a second attempt", |h| {
        record_status(h, "web1.dyn.test.", "A")["failures"]
            .as_u64()
            .is_some_and(|n| n >= 2)
    });
    assert_eq!(events(&hbd, "host=web1&kind=dns_update_failed").len(), 1);
    assert_eq!(named.lookup("web1.dyn.test", "A"), Vec::<String>::new());
}

#[test]
fn an_unknown_key_is_a_clear_error() {
    let named = Named::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let hbd = hbd(
        &named,
        dir.path(),
        &format!("dns_tsig_name: nobody-key\ndns_tsig_secret: {KEY_SECRET}\n"),
    );
    beat(&hbd, "127.0.0.2", "web1", 1);
    let ev = wait_events(&hbd, "web1", "dns_update_failed", 1);
    let msg = ev[0]["message"].as_str().expect("message");
    assert!(msg.contains("failed: NOTAUTH/BADKEY ("), "{msg}");
    assert!(msg.contains("does not know TSIG key nobody-key."), "{msg}");
    assert_eq!(named.lookup("web1.dyn.test", "A"), Vec::<String>::new());
}

#[test]
fn a_zone_refusing_updates_is_a_clear_error_and_changes_nothing() {
    let named = Named::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let hbd = hbd(
        &named,
        dir.path(),
        "dyndnshosts: {web1: {name: web1.static.test, zone: static.test}}\n",
    );
    beat(&hbd, "127.0.0.2", "web1", 1);
    let ev = wait_events(&hbd, "web1", "dns_update_failed", 1);
    let msg = ev[0]["message"].as_str().expect("message");
    assert!(
        msg.starts_with("A web1.static.test. → 127.0.0.2 failed: REFUSED ("),
        "{msg}"
    );
    assert!(
        msg.contains("refuses updates to web1.static.test."),
        "{msg}"
    );
    assert!(msg.contains("allow-update"), "says where to look: {msg}");
    assert_eq!(named.lookup("web1.static.test", "A"), Vec::<String>::new());
}

#[test]
fn an_update_while_the_server_is_down_lands_when_it_returns() {
    let mut named = Named::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let hbd = hbd(&named, dir.path(), "");
    beat(&hbd, "127.0.0.2", "web1", 1);
    wait_record(&named, "web1.dyn.test", "A", &["127.0.0.2"], LIMIT);

    named.pause();
    beat(&hbd, "127.0.0.3", "web1", 2);
    let ev = wait_events(&hbd, "web1", "dns_update_failed", 1);
    let msg = ev[0]["message"].as_str().expect("message");
    assert!(
        msg.starts_with("A web1.dyn.test. → 127.0.0.3 failed: UNREACHABLE (no answer from"),
        "{msg}"
    );
    assert!(msg.contains("retrying in"), "{msg}");
    assert_eq!(ev[0]["from"], "127.0.0.2");

    named.resume();
    wait_record(&named, "web1.dyn.test", "A", &["127.0.0.3"], LIMIT);
    let ok = wait_events(&hbd, "web1", "dns_update", 2);
    let msg = ok[1]["message"].as_str().expect("message");
    assert!(
        msg.starts_with("A web1.dyn.test. → 127.0.0.3 (NOERROR) after ")
            && msg.ends_with(" failed attempts"),
        "{msg}"
    );
    let st = record_status(&hbd, "web1.dyn.test.", "A");
    assert_eq!(st["failures"], 0, "{st}");
    assert!(st["last_failure_ms"].as_u64().is_some(), "{st}");
}
