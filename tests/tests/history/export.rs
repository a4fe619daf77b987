//! The real hbc → hbd → remote_write → Prometheus and VictoriaMetrics: every heartbeat
//! hbd accepted is a `hb_host_up` sample in the database, the latest value of every
//! numeric reading there is the one hbc sent (as hbd's API shows it), with its unit;
//! and the host page's long-term chart in headless Chromium is read from Prometheus.

use std::time::{Duration, Instant};

use serde_json::Value;

use crate::browser::{Browser, Options};
use crate::tsdb::{Db, Kind};
use crate::util::*;

/// The history subsystem's status (`Sink::status`).
pub fn history_status(hbd: &Hbd) -> Value {
    hbd.state
        .sinks
        .iter()
        .find(|s| s.name() == "history")
        .map(|s| s.status())
        .expect("history is a sink")
}

/// Samples still waiting in hbd, all targets together.
pub fn pending(hbd: &Hbd) -> u64 {
    history_status(hbd)["remote_write"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|t| t["buffered_samples"].as_u64())
                .sum()
        })
        .unwrap_or(0)
}

/// Waits until `f` holds, polling every 100 ms; panics with `what` after `limit`.
pub fn eventually(limit: Duration, what: &str, mut f: impl FnMut() -> Result<(), String>) {
    let start = Instant::now();
    loop {
        match f() {
            Ok(()) => return,
            Err(e) if start.elapsed() > limit => panic!("after {limit:?}, {what}: {e}"),
            Err(_) => std::thread::sleep(Duration::from_millis(100)),
        }
    }
}

/// Runs hbc against hbd exporting to `db` until it sent `beats` heartbeats, then stops
/// hbc and waits until hbd has delivered everything. Returns hbd's view of the host.
pub fn run_hbc(hbd: &Hbd, host: &str, beats: u64) -> Value {
    let hbc = Hbc::start(&hbd.udp.to_string(), "1s", "", &["cpu", "memory"], host);
    hbd.wait_for(Duration::from_secs(30), "hbc's heartbeats", |h| {
        h.host(host)
            .and_then(|v| v["received"].as_u64())
            .is_some_and(|n| n >= beats)
    });
    hbc.stop();
    // What was accepted before hbc stopped is in hbd's buffers or already sent.
    std::thread::sleep(Duration::from_millis(300));
    eventually(
        Duration::from_secs(20),
        "hbd delivered everything",
        || match pending(hbd) {
            0 => Ok(()),
            n => Err(format!("{n} samples pending")),
        },
    );
    hbd.host(host).expect("the host")
}

fn sel(name: &str, host: &str, extra: &str) -> String {
    format!("{name}{{host=\"{host}\"{extra}}}")
}

/// The database holds a `hb_host_up` sample for every heartbeat hbd accepted, and the
/// latest value of every numeric reading hbd holds for the host, with its unit.
fn check_database(db: &Db, host: &str, h: &Value) {
    let received = h["received"].as_u64().expect("received") as usize;
    eventually(
        Duration::from_secs(15),
        "every heartbeat is in the database",
        || {
            let n = db.count(&sel("hb_host_up", host, ""));
            (n == received).then_some(()).ok_or(format!(
                "{n} hb_host_up samples, hbd accepted {received} heartbeats"
            ))
        },
    );
    let levels = db.raw(&sel("hb_host_level", host, ""));
    let level = match h["level"].as_str() {
        Some("OK") => 0.0,
        Some("WARNING") => 1.0,
        Some("UNKNOWN") => 2.0,
        _ => 3.0,
    };
    assert_eq!(levels.len(), 1, "{levels:?}");
    assert_eq!(levels[0].1.last().map(|p| p.1), Some(level));
    let readings = h["readings"].as_array().expect("readings");
    let numeric: Vec<&Value> = readings
        .iter()
        .filter(|r| r["value"].is_number() || r["value"].is_boolean())
        .collect();
    assert!(numeric.len() >= 5, "hbc sent numbers: {readings:?}");
    let series = db.raw(&sel("hb_reading", host, ""));
    assert_eq!(
        series.len(),
        numeric.len(),
        "one series per numeric reading"
    );
    for r in numeric {
        let key = r["key"].as_str().expect("key");
        let want = match &r["value"] {
            Value::Bool(b) => f64::from(u8::from(*b)),
            v => v.as_f64().expect("number"),
        };
        let (labels, points) = series
            .iter()
            .find(|(l, _)| l["key"] == key)
            .unwrap_or_else(|| panic!("no series for {key}"));
        let unit = r["unit"].as_str().unwrap_or("");
        assert_eq!(labels["unit"].as_str().unwrap_or(""), unit, "{key}'s unit");
        assert!(
            !points.is_empty() && points.len() <= received,
            "{key}: {points:?}"
        );
        let got = points.last().map(|p| p.1).unwrap_or(f64::NAN);
        // VictoriaMetrics keeps 12 significant decimal digits (11.11111111111111 comes
        // back as 11.1111111111): a relative error up to 1e-11; Prometheus keeps f64.
        assert!(
            (got - want).abs() <= want.abs() * 2e-11,
            "{key}: database {got}, hbc sent {want}"
        );
    }
}

fn hbd_config(db: &Db, history_url: bool) -> String {
    format!(
        "remote_write:\n  - url: {}\n    labels: {{env: test}}\nhistory_flush: 300ms\nhistory_batch: 500\ngrace: 60\n{}",
        db.write_url(),
        if history_url {
            format!("history_url: {}\n", db.url(""))
        } else {
            String::new()
        }
    )
}

#[test]
fn prometheus_holds_what_hbc_sent_and_the_host_page_charts_it() {
    let host = "hist-prom";
    let db = Db::start(Kind::Prometheus);
    let dir = tempfile::tempdir().expect("tmp");
    let hbd = Hbd::start(config(&hbd_config(&db, true)), dir.path(), 0);
    let h = run_hbc(&hbd, host, 4);
    check_database(&db, host, &h);
    let env = db.query(&sel("hb_host_up", host, ",env=\"test\""));
    assert_eq!(
        env.len(),
        1,
        "the target's labels are on every series: {env:?}"
    );
    let metrics = hbd.get_text("/metrics");
    assert!(
        metrics.contains("hbd_history_dropped_samples_total{target=\"0\"")
            && metrics.lines().any(|l| l
                .starts_with("hbd_history_sent_samples_total{target=\"0\"")
                && !l.ends_with(" 0")),
        "{metrics}"
    );

    // The chart, in a browser, from Prometheus: the host page links to it.
    let key = "memory.used_percent";
    let last = db.raw(&sel("hb_reading", host, &format!(",key=\"{key}\"")))[0]
        .1
        .last()
        .map(|p| p.1)
        .expect("a sample");
    let b = Browser::start(Options::default());
    b.goto(&hbd.url(&format!("/hosts/{host}")));
    let href = b.wait(
        Duration::from_secs(10),
        "the link to the long-term history",
        "var a = document.getElementById('long-history-link'); return a && a.getAttribute('href');",
    );
    assert_eq!(href, Value::from(format!("/dashboard/history/{host}")));
    b.goto(&hbd.url(&format!("/dashboard/history/{host}?key={key}&range=1h")));
    let points = b.wait(
        Duration::from_secs(10),
        "the chart's points",
        "var f = document.getElementById('history-chart'); return f && +f.getAttribute('data-points') > 0 && +f.getAttribute('data-points');",
    );
    assert!(points.as_f64().unwrap_or(0.0) >= 1.0, "{points}");
    let d = b.exec("return document.querySelector('#history-chart path.line').getAttribute('d');");
    assert!(
        d.as_str()
            .is_some_and(|d| d.starts_with('M') && d.contains('L')),
        "something is drawn: {d}"
    );
    let shown = b.text("#history-last");
    let shown_value: f64 = shown
        .split_whitespace()
        .next()
        .and_then(|v| v.parse().ok())
        .unwrap_or(f64::NAN);
    assert!(
        (shown_value - last).abs() <= 0.006 * last.abs().max(1.0),
        "the chart's latest value {shown:?} is Prometheus' {last}"
    );
    assert_eq!(b.text("#history-key"), key);
    assert_eq!(b.count("#history-error"), 0);
    b.screenshot("history-prometheus", true);
    // Another range is another query: 7 days with the same latest value.
    b.goto(&hbd.url(&format!("/dashboard/history/{host}?key={key}&range=7d")));
    b.wait(
        Duration::from_secs(10),
        "the 7 d chart",
        "var f = document.getElementById('history-chart'); return f && +f.getAttribute('data-points') > 0;",
    );
    hbd.stop();
}

#[test]
fn victoria_metrics_holds_what_hbc_sent() {
    let host = "hist-vm";
    let db = Db::start(Kind::Victoria);
    let dir = tempfile::tempdir().expect("tmp");
    let hbd = Hbd::start(config(&hbd_config(&db, false)), dir.path(), 0);
    let h = run_hbc(&hbd, host, 4);
    check_database(&db, host, &h);
    // Without history_url there is no long-term page, and the host page does not link it.
    let (code, _) = hbd.get(&format!("/dashboard/history/{host}?key=cpu.usage"));
    assert_eq!(code, 404);
    assert!(!hbd
        .get_text(&format!("/hosts/{host}"))
        .contains("long-history-link"));
    hbd.stop();
}
