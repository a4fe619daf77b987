//! Never lost: the SMTP server stops while hosts change state, hbd restarts in the
//! middle, the server comes back: every notification arrives exactly once, in order.

use std::time::Duration;

use crate::smtp::{free_tcp_port, mails, Mode, Smtp};
use crate::support::*;
use crate::util::{free_udp_port, Hbd};

fn subjects(dir: &std::path::Path) -> Vec<String> {
    mails(dir)
        .iter()
        .map(|m| m.header("Subject").unwrap_or("").to_string())
        .collect()
}

#[test]
fn smtp_outage_and_hbd_restart_lose_and_repeat_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (maildir, data) = (dir.path().join("mail"), dir.path().join("hbd"));
    let (smtp_port, udp_port) = (free_tcp_port(), free_udp_port());
    let cfg = || {
        let mut c = notify_config(&format!(
            "smtpserver: 127.0.0.1\nsmtpport: {smtp_port}\nsmtp_tls: none\nmailfrom: hbd@example.org\nmailto: ops@example.org\n"
        ));
        // Real confirmation: UP after 2 heartbeats.
        c.notify.notify_up_after = 2;
        c
    };
    let smtp = Smtp::start(smtp_port, &maildir, Mode::Plain, None, None);
    let hbd = Hbd::start(cfg(), &data, udp_port);
    let keeper = Keeper::start(hbd.udp);
    let queued = |h: &Hbd, n: u64| {
        h.wait_for(
            Duration::from_secs(15),
            &format!("{n} e-mails queued"),
            |h| channel(h, "email")["queued"] == n,
        );
    };

    // The server is up: host a goes DOWN and the mail arrives.
    keeper.set("a", true);
    wait_status(&hbd, "a", "UP");
    keeper.set("a", false);
    wait_status(&hbd, "a", "DOWN");
    eventually(Duration::from_secs(10), "the first mail", || {
        (mails(&maildir).len() == 1).then_some(())
    });

    // The server stops; a comes back, b appears and goes DOWN: both queued.
    smtp.stop();
    keeper.set("a", true);
    keeper.set("b", true);
    wait_status(&hbd, "b", "UP");
    queued(&hbd, 1);
    keeper.set("b", false);
    wait_status(&hbd, "b", "DOWN");
    queued(&hbd, 2);
    let err = channel(&hbd, "email");
    assert!(
        err["last_error"]
            .as_str()
            .is_some_and(|e| e.contains("SMTP")),
        "{err}"
    );

    // hbd restarts (clean stop); the queue is resumed from the outbox.
    hbd.stop();
    let hbd = Hbd::start(cfg(), &data, udp_port);
    assert_eq!(
        channel(&hbd, "email")["queued"],
        2,
        "resumed after the restart"
    );
    // More changes while the server is still away: b back UP, a DOWN.
    keeper.set("b", true);
    wait_status(&hbd, "b", "UP");
    queued(&hbd, 3);
    keeper.set("a", false);
    wait_status(&hbd, "a", "DOWN");
    queued(&hbd, 4);

    // The server returns: the backlog arrives in order, each mail once.
    let smtp = Smtp::start(smtp_port, &maildir, Mode::Plain, None, None);
    eventually(Duration::from_secs(20), "all five mails", || {
        (mails(&maildir).len() >= 5).then_some(())
    });
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(
        subjects(&maildir),
        [
            "[hbd] a is DOWN",
            "[hbd] a is UP again",
            "[hbd] b is DOWN",
            "[hbd] b is UP again",
            "[hbd] a is DOWN",
        ]
    );
    let ids: std::collections::BTreeSet<String> = mails(&maildir)
        .iter()
        .filter_map(|m| m.header("Message-ID").map(str::to_string))
        .collect();
    assert_eq!(ids.len(), 5);
    let st = channel(&hbd, "email");
    assert_eq!(st["queued"], 0, "{st}");
    assert!(st["last_success_ms"].as_u64().is_some());
    drop(keeper);
    hbd.stop();
    smtp.stop();
}
