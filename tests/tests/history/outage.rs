//! The database away for a while, then back (VictoriaMetrics stopped and restarted on
//! the same port and data while the real hbc keeps beating). Two targets get the same
//! samples: one whose buffer holds the whole outage loses nothing (every heartbeat is
//! in the database once it is back), one with a 100-sample buffer keeps its most recent
//! 100 and counts the rest as `buffer_full`, so delivered + dropped is what the other
//! target delivered; `/metrics` shows the overflow.

use std::time::Duration;

use crate::export::{eventually, history_status, pending};
use crate::tsdb::{Db, Kind};
use crate::util::*;

const HOST: &str = "hist-outage";
/// How long the database is away: ~8 heartbeats of ~20 samples, more than the small
/// target's buffer.
const AWAY: Duration = Duration::from_secs(8);
const SMALL: u64 = 100;

fn counter(hbd: &Hbd, target: usize, field: &str) -> u64 {
    let s = history_status(hbd);
    let t = &s["remote_write"][target];
    match field.strip_prefix("dropped.") {
        Some(reason) => t["dropped_samples"][reason].as_u64(),
        None => t[field].as_u64(),
    }
    .unwrap_or_else(|| panic!("{field} in {s}"))
}

#[test]
fn database_away_then_back_loses_nothing_within_the_buffer_and_counts_the_overflow() {
    let mut db = Db::start(Kind::Victoria);
    let dir = tempfile::tempdir().expect("tmp");
    let yaml = format!(
        "remote_write:\n  - url: {u}\n    labels: {{target: big}}\n  - url: {u}\n    labels: {{target: small}}\n    buffer: {SMALL}\nhistory_flush: 300ms\nhistory_batch: 50\ngrace: 60\n",
        u = db.write_url()
    );
    let hbd = Hbd::start(config(&yaml), dir.path(), 0);
    let hbc = Hbc::start(&hbd.udp.to_string(), "1s", "", &["cpu", "memory"], HOST);
    eventually(
        Duration::from_secs(20),
        "samples delivered before the outage",
        || match counter(&hbd, 0, "sent_samples") {
            n if n > 0 => Ok(()),
            n => Err(format!("{n} sent")),
        },
    );
    db.stop();
    std::thread::sleep(AWAY);
    assert!(
        counter(&hbd, 0, "retries") > 0,
        "hbd noticed the database is away"
    );
    assert!(
        counter(&hbd, 1, "dropped.buffer_full") > 0,
        "the small buffer overflowed"
    );
    db.restart();
    // Some more heartbeats after the database is back, then hbc stops.
    std::thread::sleep(Duration::from_secs(2));
    hbc.stop();
    std::thread::sleep(Duration::from_millis(300));
    eventually(
        Duration::from_secs(30),
        "hbd delivered what it holds",
        || match pending(&hbd) {
            0 => Ok(()),
            n => Err(format!("{n} samples pending")),
        },
    );
    let received = hbd.host(HOST).expect("host")["received"]
        .as_u64()
        .expect("received") as usize;

    // The big target: nothing dropped, every sample it counts as sent is in the
    // database, and so is every heartbeat hbd accepted (before, during, after).
    let sent_big = counter(&hbd, 0, "sent_samples");
    for r in ["buffer_full", "rejected", "shutdown"] {
        assert_eq!(
            counter(&hbd, 0, &format!("dropped.{r}")),
            0,
            "big target: {r}"
        );
    }
    eventually(
        Duration::from_secs(15),
        "the big target's samples in the database",
        || {
            let up = db.count(&format!("hb_host_up{{host=\"{HOST}\",target=\"big\"}}"));
            let all = db.count(&format!("{{host=\"{HOST}\",target=\"big\"}}"));
            (up == received && all as u64 == sent_big)
                .then_some(())
                .ok_or(format!(
                    "hb_host_up {up} of {received} heartbeats; {all} samples of {sent_big} sent"
                ))
        },
    );

    // The small target: its buffer's worth kept, the overflow counted, nothing else lost.
    let sent_small = counter(&hbd, 1, "sent_samples");
    let dropped_small = counter(&hbd, 1, "dropped.buffer_full");
    assert_eq!(counter(&hbd, 1, "dropped.rejected"), 0);
    assert_eq!(
        sent_small + dropped_small,
        sent_big,
        "small target: {sent_small} sent + {dropped_small} dropped"
    );
    assert!(
        dropped_small > 0 && sent_small > SMALL,
        "{sent_small} {dropped_small}"
    );
    eventually(
        Duration::from_secs(15),
        "the small target's samples in the database",
        || {
            let all = db.count(&format!("{{host=\"{HOST}\",target=\"small\"}}"));
            (all as u64 == sent_small)
                .then_some(())
                .ok_or(format!("{all} of {sent_small}"))
        },
    );
    let metrics = hbd.get_text("/metrics");
    let line = metrics
        .lines()
        .find(|l| {
            l.starts_with("hbd_history_dropped_samples_total{target=\"1\"")
                && l.contains("reason=\"buffer_full\"")
        })
        .unwrap_or_else(|| panic!("no overflow line in {metrics}"));
    assert!(line.ends_with(&format!(" {dropped_small}")), "{line}");
    hbd.stop();
}
