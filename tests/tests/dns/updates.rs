//! Records follow the source address of verified heartbeats: A from IPv4, AAAA from
//! IPv6; every update is a journaled event on the host's page; a restart sends nothing
//! again unless the start-up query finds the record changed.

use std::time::Duration;

use crate::bind::{Named, KEY_NAME, KEY_SECRET};
use crate::support::*;
use crate::util::{events, Hbd};

const LIMIT: Duration = Duration::from_secs(10);

#[test]
fn a_record_follows_the_ipv4_source() {
    let named = Named::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let hbd = hbd(&named, dir.path(), "");
    assert_eq!(named.lookup("web1.dyn.test", "A"), Vec::<String>::new());

    beat(&hbd, "127.0.0.2", "web1", 1);
    wait_record(&named, "web1.dyn.test", "A", &["127.0.0.2"], LIMIT);
    assert_eq!(named.ttl("web1.dyn.test", "A"), Some(60), "default TTL");
    let ev = wait_events(&hbd, "web1", "dns_update", 1);
    assert_eq!(ev[0]["message"], "A web1.dyn.test. → 127.0.0.2 (NOERROR)");
    assert_eq!(ev[0]["to"], "127.0.0.2");
    assert!(ev[0].get("from").is_none(), "{}", ev[0]);

    // Steady: more beats from the same address send nothing.
    for seq in 2..5 {
        beat(&hbd, "127.0.0.2", "web1", seq);
    }
    beat(&hbd, "127.0.0.3", "web1", 5);
    wait_record(&named, "web1.dyn.test", "A", &["127.0.0.3"], LIMIT);
    let ev = wait_events(&hbd, "web1", "dns_update", 2);
    assert_eq!(ev.len(), 2, "{ev:?}");
    assert_eq!(ev[1]["from"], "127.0.0.2");
    assert_eq!(ev[1]["to"], "127.0.0.3");
    assert_eq!(ev[1]["message"], "A web1.dyn.test. → 127.0.0.3 (NOERROR)");
    assert!(events(&hbd, "host=web1&kind=dns_update_failed").is_empty());

    // On the host's page (its recent events) and in the status.
    let host = hbd.host("web1").expect("host web1");
    let recent = host["recent_events"].as_array().expect("recent events");
    assert!(
        recent
            .iter()
            .any(|e| e["kind"] == "dns_update" && e["to"] == "127.0.0.3"),
        "{recent:?}"
    );
    let st = record_status(&hbd, "web1.dyn.test.", "A");
    assert_eq!(st["address"], "127.0.0.3", "{st}");
    assert!(
        st["pending"].is_null() && st["last_error"].is_null(),
        "{st}"
    );
    assert!(st["last_success_ms"].as_u64().is_some(), "{st}");
    let (_, health) = hbd.get("/healthz");
    assert_eq!(
        health["subsystems"]["dyndns"]["backend"],
        format!("rfc2136 {}", named.addr())
    );
}

#[test]
fn aaaa_record_follows_the_ipv6_source_with_a_bind_key_file() {
    let named = Named::start();
    let dir = tempfile::tempdir().expect("tempdir");
    // As tsig-keygen writes it.
    let keyfile = dir.path().join("hbd.key");
    std::fs::write(
        &keyfile,
        format!(
            "key \"{KEY_NAME}\" {{\n\talgorithm hmac-sha256;\n\tsecret \"{KEY_SECRET}\";\n}};\n"
        ),
    )
    .expect("key file");
    let hbd = hbd(
        &named,
        &dir.path().join("data"),
        &format!(
            "dns_tsig_keyfile: {}\ndyndnshosts:\n  web6: {{name: v6.dyn.test, ttl: 30}}\n",
            keyfile.display()
        ),
    );
    beat(&hbd, "::1", "web6", 1);
    wait_record(&named, "v6.dyn.test", "AAAA", &["::1"], LIMIT);
    assert_eq!(named.ttl("v6.dyn.test", "AAAA"), Some(30));
    assert_eq!(named.lookup("v6.dyn.test", "A"), Vec::<String>::new());
    let ev = wait_events(&hbd, "web6", "dns_update", 1);
    assert_eq!(ev[0]["message"], "AAAA v6.dyn.test. → ::1 (NOERROR)");

    // An IPv4 beat of the same host sets its A record and leaves AAAA alone.
    beat(&hbd, "127.0.0.2", "web6", 2);
    wait_record(&named, "v6.dyn.test", "A", &["127.0.0.2"], LIMIT);
    assert_eq!(named.lookup("v6.dyn.test", "AAAA"), ["::1"]);
}

#[test]
fn unsigned_heartbeats_move_records_only_with_the_opt_in() {
    let named = Named::start();
    let dir = tempfile::tempdir().expect("tempdir");
    // No `secret`: hbd refuses to start unless each host opts in.
    let yaml = format!(
        "dns_server: {}\ndns_zone: dyn.test\ndns_tsig_name: {KEY_NAME}\n\
         dns_tsig_secret: {KEY_SECRET}\ndns_debounce: 100ms\ndyndnshosts: [web1]\n",
        named.addr()
    );
    let err = hbd::config::Config::parse(&yaml, std::path::Path::new("t.yaml"))
        .expect_err("no secret, no opt-in");
    assert!(
        err.to_string().contains("allow_unsigned") && err.to_string().contains("forged source"),
        "{err}"
    );
    let yaml = yaml.replace(
        "dyndnshosts: [web1]",
        "dyndnshosts: {web1: {allow_unsigned: true}}",
    );
    let hbd = Hbd::start_on(
        "::".parse().expect("ip"),
        crate::util::config(&yaml),
        dir.path(),
        0,
    );
    beat_with(&hbd, "127.0.0.2", "web1", 1, None);
    wait_record(&named, "web1.dyn.test", "A", &["127.0.0.2"], LIMIT);
}

#[test]
fn a_restart_sends_nothing_again_but_finds_outside_changes() {
    let named = Named::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let hbd1 = hbd(&named, dir.path(), "");
    beat(&hbd1, "127.0.0.2", "web1", 1);
    wait_record(&named, "web1.dyn.test", "A", &["127.0.0.2"], LIMIT);
    wait_events(&hbd1, "web1", "dns_update", 1);
    hbd1.stop();
    let saved = std::fs::read_to_string(dir.path().join("dyndns.json")).expect("saved state");
    assert!(saved.contains("127.0.0.2"), "{saved}");

    // Same address after a restart: the record is known, no update.
    let hbd2 = hbd(&named, dir.path(), "");
    let sent = hbd::state::now_ms();
    beat(&hbd2, "127.0.0.2", "web1", 100);
    hbd2.wait_for(LIMIT, "the beat is seen", |h| {
        h.host("web1")
            .and_then(|b| b["last_seen_ms"].as_u64())
            .is_some_and(|t| t >= sent)
    });
    // Four times the debounce: an update would have been sent by now.
    std::thread::sleep(Duration::from_millis(800));
    assert_eq!(
        events(&hbd2, "host=web1&kind=dns_update").len(),
        1,
        "only the first run's"
    );
    let st = record_status(&hbd2, "web1.dyn.test.", "A");
    assert_eq!(st["address"], "127.0.0.2", "{st}");
    assert!(
        st["last_success_ms"].is_null() && st["pending"].is_null(),
        "{st}"
    );
    hbd2.stop();

    // Someone changes the record by hand while hbd is stopped: the start-up query sees
    // it, and the next beat from 127.0.0.2 puts it back.
    named.nsupdate("update delete web1.dyn.test A\nupdate add web1.dyn.test 60 A 10.9.9.9");
    assert_eq!(named.lookup("web1.dyn.test", "A"), ["10.9.9.9"]);
    let hbd3 = hbd(&named, dir.path(), "");
    beat(&hbd3, "127.0.0.2", "web1", 200);
    wait_record(&named, "web1.dyn.test", "A", &["127.0.0.2"], LIMIT);
    let ev = wait_events(&hbd3, "web1", "dns_update", 2);
    assert_eq!(ev[1]["from"], "10.9.9.9", "{:?}", ev[1]);
}
