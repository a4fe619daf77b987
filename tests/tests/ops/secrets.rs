//! Secrets never show: every secret key set, every channel failing (so errors are logged),
//! debug logging on, a reload; then no secret value appears in the log, the REST API, the
//! dashboard or /metrics. A config file holding secrets that every user can read draws a
//! warning naming the keys; once it is 0640 it does not.

use std::os::unix::fs::PermissionsExt;

use super::*;

const SECRETS: [&str; 9] = [
    "hb-secret-Q7xZ",
    "api-token-R8yW",
    "po-token-S9vV",
    "po-user-T1uU",
    "mm-hook-U2tT",
    "mm-token-V3sS",
    "smtp-pass-W4rR",
    "ZG5zLXRzaWctWDVxUQ==",
    "api-token-NEW-Y6pP",
];

fn closed_port() -> u16 {
    // Bound and dropped: nothing listens there.
    free_port()
}

fn body(url: &str) -> String {
    match ureq::get(url).timeout(Duration::from_secs(5)).call() {
        Ok(r) => r.into_string().unwrap_or_default(),
        Err(ureq::Error::Status(_, r)) => r.into_string().unwrap_or_default(),
        Err(e) => panic!("{url}: {e}"),
    }
}

#[test]
fn secrets_never_appear_in_logs_api_or_dashboard() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let log = tmp.path().join("hbd.log");
    let down = closed_port();
    let config_text = |token: &str| {
        format!(
            "secret: {}\napi_token: {token}\nlogfile: {}\nwatchhosts: [web1, web2]\n\
             pushsrv: http://127.0.0.1:{down}\npushover_token: {}\npushover_user: {}\n\
             mattermost_url: http://127.0.0.1:{down}/hooks/{}\n\
             mattermost_api_url: http://127.0.0.1:{down}\nmattermost_token: {}\n\
             mattermost_channel_id: chan1\n\
             smtpserver: 127.0.0.1\nsmtpport: {down}\nsmtp_tls: none\nsmtpuser: ops\nsmtppass: {}\n\
             mailfrom: hbd@example.invalid\nmailto: [ops@example.invalid]\n\
             dyndnshosts: [web1]\ndns_server: 127.0.0.1:{down}\ndns_zone: dyn.test\n\
             dns_tsig_name: hbd-key\ndns_tsig_secret: {}\ndns_debounce: 0s\n\
             notify_retry_min: 100ms\nnotify_retry_max: 200ms\n",
            SECRETS[0],
            log.display(),
            SECRETS[2],
            SECRETS[3],
            SECRETS[4],
            SECRETS[5],
            SECRETS[6],
            SECRETS[7],
        )
    };
    let cfg = tmp.path().join("hbd.yaml");
    std::fs::write(&cfg, config_text(SECRETS[1])).expect("write config");
    std::fs::set_permissions(&cfg, std::fs::Permissions::from_mode(0o644)).expect("chmod");

    std::env::set_var("HBD_LOG", "debug");
    let data = tmp.path().join("data");
    let udp = free_port();
    let hbd = Hbd::start(&cfg, &data, udp);
    std::env::remove_var("HBD_LOG");

    // A signed heartbeat from web1 (a DNS update is attempted), a forged one, and web2 never
    // reports (DOWN after the start-up grace); every channel is tried and fails.
    let sock = UdpSocket::bind("127.0.0.1:0").expect("bind");
    let hb = hb_proto::Heartbeat {
        host: "web1".into(),
        instance: 1,
        seq: 1,
        sent_ms: hbd::state::now_ms(),
        interval_ms: 1_000,
        level: hb_proto::Level::Critical,
        readings: vec![],
    };
    let signed = hb_proto::encode(&hb, Some(SECRETS[0].as_bytes()), 1400)
        .expect("encode")
        .remove(0);
    sock.send_to(&signed, ("127.0.0.1", udp)).expect("send");
    let forged = hb_proto::encode(&hb, Some(b"not-the-secret"), 1400)
        .expect("encode")
        .remove(0);
    sock.send_to(&forged, ("127.0.0.1", udp)).expect("send");
    hbd.wait(Duration::from_secs(10), "web1 known", |h| {
        h.get("/api/v1/hosts/web1").is_some()
    });
    // Give the channels and the DNS updater time to fail and retry.
    let logged = |what: &str| {
        std::fs::read_to_string(&log)
            .unwrap_or_default()
            .contains(what)
    };
    hbd.wait(Duration::from_secs(30), "channel and DNS failures", |h| {
        logged("notification not delivered")
            && h.get("/api/v1/events?kind=dns_update_failed")
                .is_some_and(|v| v["events"].as_array().is_some_and(|e| !e.is_empty()))
    });

    let base = format!("http://127.0.0.1:{}", hbd.http);
    let mut shown = String::new();
    for path in [
        "/",
        "/hosts/web1",
        "/events",
        "/healthz",
        "/metrics",
        "/api/v1/hosts",
        "/api/v1/hosts/web1",
        "/api/v1/events",
        "/api/v1/notify",
        "/api/v1/notify/channels",
        "/api/v1/silences",
        "/api/v1/openapi.yaml",
    ] {
        let text = body(&format!("{base}{path}"));
        assert!(!text.is_empty(), "{path} answered nothing");
        shown.push_str(&text);
    }

    // A reload with a new token, after the file is made private: no second warning.
    std::fs::write(&cfg, config_text(SECRETS[8])).expect("write config");
    std::fs::set_permissions(&cfg, std::fs::Permissions::from_mode(0o640)).expect("chmod");
    hbd.signal(libc::SIGHUP);
    hbd.wait(Duration::from_secs(10), "reload logged", |_| {
        logged("config reloaded")
    });
    let status = hbd.stop();
    assert!(status.success(), "{status:?}");

    let log_text = std::fs::read_to_string(&log).expect("log");
    for s in SECRETS {
        assert!(!log_text.contains(s), "secret {s} in the log:\n{log_text}");
        assert!(
            !shown.contains(s),
            "secret {s} shown by the API or dashboard"
        );
    }
    // The secrets' existence is fine to show; their values are not.
    let warning = "holds secrets (secret, api_token, dns_tsig_secret, pushover_token, \
                   pushover_user, mattermost_url, mattermost_token, smtppass) and every user \
                   of this machine can read it (mode 0644)";
    assert_eq!(
        log_text.matches(warning).count(),
        1,
        "one warning, at start only:\n{log_text}"
    );
}
