//! E-mail through the real SMTP server: headers, several recipients, a plain-text body
//! with an HTML alternative and the failing readings with their thresholds; STARTTLS with
//! AUTH on a test certificate, implicit TLS, and a certificate hbd does not trust.

use std::time::Duration;

use hb_proto::Level;

use crate::smtp::{free_tcp_port, mails, test_cert, Mode, Smtp};
use crate::support::*;
use crate::util::Hbd;

fn mail_config(port: u16, tls: &str, extra: &str) -> hbd::config::Config {
    notify_config(&format!(
        "smtpserver: 127.0.0.1\nsmtpport: {port}\nsmtp_tls: {tls}\nmailfrom: \"hbd monitor <hbd@example.org>\"\nmailto: [ops@example.org, oncall@example.net]\n{extra}"
    ))
}

fn wait_mails(dir: &std::path::Path, n: usize) -> Vec<crate::smtp::Mail> {
    eventually(Duration::from_secs(15), &format!("{n} e-mails"), || {
        let m = mails(dir);
        (m.len() >= n).then_some(m)
    })
}

#[test]
fn level_down_and_up_mails_with_headers_and_both_bodies() {
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_tcp_port();
    let smtp = Smtp::start(port, &dir.path().join("mail"), Mode::Plain, None, None);
    let hbd = Hbd::start(mail_config(port, "none", ""), &dir.path().join("hbd"), 0);
    let mut beats = Beats::new();
    let disk = (
        "fs./.used_percent",
        97.0,
        Level::Critical,
        "warn 85, crit 95",
    );
    beats.send(
        &hbd,
        "mail-web1",
        Level::Critical,
        &[disk, ("cpu.usage_percent", 3.0, Level::Ok, "")],
    );

    let m = wait_mails(&smtp.dir, 1);
    let first = &m[0];
    assert_eq!(first.header("Subject"), Some("[hbd] mail-web1 is CRITICAL"));
    assert_eq!(
        first.header("From"),
        Some("\"hbd monitor\" <hbd@example.org>")
    );
    assert_eq!(
        first.header("To"),
        Some("ops@example.org, oncall@example.net")
    );
    assert_eq!(
        first.header("X-Sink-Rcpt-To"),
        Some("ops@example.org, oncall@example.net")
    );
    assert_eq!(first.header("X-Sink-Mail-From"), Some("hbd@example.org"));
    assert_eq!(first.header("X-Sink-TLS"), Some("no"));
    assert_eq!(first.header("MIME-Version"), Some("1.0"));
    assert!(first.header("Date").is_some());
    let mid = first.header("Message-ID").expect("Message-ID");
    assert!(
        mid.starts_with("<hbd-") && mid.ends_with("@example.org>"),
        "{mid}"
    );
    assert!(first
        .header("Content-Type")
        .is_some_and(|c| c.starts_with("multipart/alternative")));
    let text = first.part("text/plain").expect("plain-text part");
    assert!(text.starts_with("mail-web1 is CRITICAL\n"), "{text}");
    assert!(text.contains("State:   CRITICAL (was OK)"), "{text}");
    assert!(
        text.contains("  - fs./.used_percent CRITICAL: 97 % (threshold warn 85, crit 95)"),
        "failing reading with its threshold: {text}"
    );
    assert!(
        !text.contains("cpu.usage_percent"),
        "only failing readings: {text}"
    );
    assert!(
        text.contains("http://dash.test:50004/hosts/mail-web1"),
        "{text}"
    );
    let html = first.part("text/html").expect("HTML part");
    assert!(
        html.contains("<a href=\"http://dash.test:50004/hosts/mail-web1\">"),
        "{html}"
    );
    assert!(
        html.contains(
            "<td>fs./.used_percent</td><td>CRITICAL</td><td>97 %</td><td>warn 85, crit 95</td>"
        ),
        "{html}"
    );

    // Silence: DOWN after the deadline; then back: UP.
    let m = wait_mails(&smtp.dir, 2);
    assert_eq!(m[1].header("Subject"), Some("[hbd] mail-web1 is DOWN"));
    let text = m[1].part("text/plain").expect("text");
    assert!(text.contains("no heartbeat for"), "{text}");
    beats.send(&hbd, "mail-web1", Level::Ok, &[]);
    let m = wait_mails(&smtp.dir, 3);
    assert_eq!(m[2].header("Subject"), Some("[hbd] mail-web1 is UP again"));
    let ids: std::collections::BTreeSet<_> =
        m.iter().filter_map(|x| x.header("Message-ID")).collect();
    assert_eq!(ids.len(), 3, "each notification its own Message-ID");

    let email = channel(&hbd, "email");
    assert!(email["last_success_ms"].as_u64().is_some(), "{email}");
    assert!(email["last_error"].is_null(), "{email}");
    assert_eq!(email["queued"], 0);
    assert_eq!(email["delivered"], 3);
    assert_eq!(
        email["target"],
        "ops@example.org, oncall@example.net via 127.0.0.1:".to_string() + &port.to_string()
    );
    hbd.stop();
    smtp.stop();
}

#[test]
fn starttls_with_auth_on_a_test_certificate() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cert = test_cert(dir.path());
    let port = free_tcp_port();
    let smtp = Smtp::start(
        port,
        &dir.path().join("mail"),
        Mode::Starttls,
        Some(&cert),
        Some("hbd-mailer:s3cret-Passw0rd"),
    );
    let extra = format!(
        "smtpuser: hbd-mailer\nsmtppass: s3cret-Passw0rd\nsmtp_ca_file: {}\n",
        cert.ca.display()
    );
    let hbd = Hbd::start(
        mail_config(port, "starttls", &extra),
        &dir.path().join("hbd"),
        0,
    );
    let (code, body) = call(&hbd, "POST", "/api/v1/notify/test", Some(TOKEN), None);
    assert_eq!(code, 202, "{body}");
    assert_eq!(body["queued"], serde_json::json!(["email"]));
    let m = wait_mails(&smtp.dir, 1);
    assert_eq!(
        m[0].header("Subject"),
        Some("[hbd] test notification from hbd")
    );
    assert_eq!(
        m[0].header("X-Sink-TLS"),
        Some("yes"),
        "STARTTLS before MAIL"
    );
    assert_eq!(m[0].header("X-Sink-Auth"), Some("hbd-mailer"));
    // The password appears in no API output.
    for path in ["/api/v1/notify", "/api/v1/notify/channels", "/healthz"] {
        let (_, b) = hbd.get(path);
        assert!(!b.to_string().contains("s3cret"), "{path}: {b}");
    }
    hbd.stop();
    smtp.stop();
}

#[test]
fn implicit_tls_and_an_untrusted_certificate() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cert = test_cert(dir.path());
    let port = free_tcp_port();
    let smtp = Smtp::start(port, &dir.path().join("mail"), Mode::Tls, Some(&cert), None);

    // Without the test CA the certificate is not trusted: nothing is sent, the error says why.
    let hbd = Hbd::start(mail_config(port, "tls", ""), &dir.path().join("hbd1"), 0);
    call(&hbd, "POST", "/api/v1/notify/test", Some(TOKEN), None);
    let err = eventually(Duration::from_secs(10), "a TLS error", || {
        channel(&hbd, "email")["last_error"]
            .as_str()
            .map(str::to_string)
    });
    assert!(err.to_lowercase().contains("certificate"), "{err}");
    assert_eq!(
        channel(&hbd, "email")["queued"],
        1,
        "kept for a later retry"
    );
    assert!(mails(&smtp.dir).is_empty());
    hbd.stop();

    let extra = format!("smtp_ca_file: {}\n", cert.ca.display());
    let hbd = Hbd::start(
        mail_config(port, "tls", &extra),
        &dir.path().join("hbd2"),
        0,
    );
    call(&hbd, "POST", "/api/v1/notify/test", Some(TOKEN), None);
    let m = wait_mails(&smtp.dir, 1);
    assert_eq!(m[0].header("X-Sink-TLS"), Some("yes"));
    hbd.stop();
    smtp.stop();
}
