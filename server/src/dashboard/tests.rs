//! Rendered pages with fixed data and a fixed clock, compared with the snapshots in
//! `snapshots/` (update them with `UPDATE_EXPECT=1 cargo test -p hbd dashboard`), and the
//! properties that must hold whatever the templates look like: escaping, order, paging.

use std::collections::HashMap;
use std::net::IpAddr;

use expect_test::expect_file;
use hb_proto::{Heartbeat, Level, Reading, Value};

use super::views::{Ctx, EventsQuery, OverviewQuery};
use super::*;
use crate::event::Event;
use crate::registry::{Registry, Settings};

const T0: u64 = 1_700_000_000_000;
const NOW: u64 = T0 + 45_000;
const HOSTILE: &str = "<script>alert(1)</script><img src=x onerror=alert(2)> & \"q\" 'a'";

fn reading(key: &str, value: Value, unit: &str, level: Level, message: &str) -> Reading {
    Reading {
        key: key.into(),
        value,
        unit: unit.into(),
        level,
        message: message.into(),
        threshold: if level == Level::Ok {
            String::new()
        } else {
            "warn 85 crit 95".into()
        },
    }
}

fn beat(reg: &mut Registry, host: &str, seq: u64, at: u64, readings: Vec<Reading>) -> Vec<Event> {
    let level = readings
        .iter()
        .map(|r| r.level)
        .max_by_key(|l| match l {
            Level::Ok => 0,
            Level::Warning => 1,
            Level::Unknown => 2,
            Level::Critical => 3,
        })
        .unwrap_or(Level::Ok);
    let hb = Heartbeat {
        host: host.into(),
        instance: 1,
        seq,
        sent_ms: at,
        interval_ms: 10_000,
        level,
        readings,
    };
    let bytes = hb_proto::encode(&hb, None, 65_000)
        .expect("encode")
        .remove(0);
    let packet = hb_proto::decode(&bytes, None).expect("decode");
    let src: IpAddr = "192.0.2.10".parse().expect("ip");
    let mut events = Vec::new();
    reg.apply(&packet, src, at, &mut events).expect("apply");
    events
}

fn basics(cpu: f64, mem: f64, fs: f64, load: f64) -> Vec<Reading> {
    let lvl = |v: f64| {
        if v >= 95.0 {
            Level::Critical
        } else if v >= 85.0 {
            Level::Warning
        } else {
            Level::Ok
        }
    };
    vec![
        reading("cpu.usage_percent", Value::F64(cpu), "%", lvl(cpu), ""),
        reading("cpu.load1", Value::F64(load), "", Level::Ok, ""),
        reading("memory.used_percent", Value::F64(mem), "%", lvl(mem), ""),
        reading(
            "memory.available_bytes",
            Value::I64(3 << 30),
            "B",
            Level::Ok,
            "",
        ),
        reading(
            "fs./.used_percent",
            Value::F64(fs),
            "%",
            lvl(fs),
            if fs >= 95.0 { "/ is 97 % full" } else { "" },
        ),
        reading(
            "os.kernel",
            Value::Text("6.1.0-18-amd64".into()),
            "",
            Level::Ok,
            "",
        ),
        // A point in time: shown as a time, not as 1699990000.
        reading("os.boot_time", Value::I64(1_699_990_000), "", Level::Ok, ""),
    ]
}

/// Five hosts in every state, with history, a Nagios check whose output is hostile
/// markup, and the events that produced them (newest first).
fn fleet() -> (Registry, Vec<Event>) {
    let mut reg = Registry::new(Settings {
        grace: 2.5,
        window_ms: 0,
        max_hosts: 100,
        history_len: 60,
        startup_grace_ms: 600_000,
        ..Settings::default()
    });
    reg.watch("ghost", None, T0);
    let mut events = Vec::new();
    for i in 0..5u64 {
        let at = T0 + i * 10_000;
        let f = i as f64;
        events.extend(beat(
            &mut reg,
            "web1",
            i + 1,
            at,
            basics(10.0 + 3.0 * f, 40.0 + f, 61.5, 0.4 + 0.1 * f),
        ));
        let mut db = basics(55.0 - 5.0 * f, 88.0, 97.0, 2.5);
        db.push(reading(
            "nagios.http.state",
            Value::I64(2),
            "",
            Level::Critical,
            HOSTILE,
        ));
        db.push(reading(
            "nagios.http.time",
            Value::F64(0.25),
            "s",
            Level::Ok,
            "warn=1 crit=2",
        ));
        db.push(reading(
            "nagios.http.duration_s",
            Value::F64(0.031),
            "s",
            Level::Ok,
            "",
        ));
        events.extend(beat(&mut reg, "db1", i + 1, at, db));
        events.extend(beat(
            &mut reg,
            "cache1",
            i + 1,
            at,
            basics(20.0, 86.0 + f, 30.0, 1.0),
        ));
        if i == 0 {
            events.extend(beat(&mut reg, "old1", 1, at, basics(5.0, 5.0, 5.0, 0.0)));
        }
    }
    let mut down = Vec::new();
    reg.tick(NOW, &mut down);
    events.extend(down);
    events.reverse();
    (reg, events)
}

fn ctx() -> Ctx {
    Ctx {
        now_ms: NOW,
        version: "test".into(),
        subsystems: vec![(
            "dyndns".into(),
            // The shape of hbd-dyndns' status: one line per record in the footer.
            serde_json::json!({
                "backend": "rfc2136 127.0.0.1:53",
                "records": {"db1.dyn.example.org.": {
                    "host": "db1", "zone": "dyn.example.org.", "ttl": 60,
                    "records": {"A": {
                        "address": "192.0.2.10", "pending": null,
                        "last_success_ms": 1_699_999_000_000u64, "last_failure_ms": null,
                        "last_error": null, "failures": 0,
                    }},
                }},
                "queue_dropped": 0,
                "ignored_unverified": 0,
            }),
        )],
    }
}

fn params(q: &str) -> HashMap<String, String> {
    q.split('&')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn render<T: serde::Serialize>(name: &str, page: &T) -> String {
    Templates::load(None).render(name, page).expect("renders")
}

#[test]
fn overview_snapshot() {
    let (reg, _) = fleet();
    let page = overview_page(&reg, &OverviewQuery::parse(&params("")), &ctx());
    expect_file!["snapshots/overview.html"].assert_eq(&render("overview", &page));
}

#[test]
fn overview_filtered_snapshot() {
    let (reg, _) = fleet();
    let q = OverviewQuery::parse(&params("q=1&status=UP&sort=cpu&per=50"));
    let page = overview_page(&reg, &q, &ctx());
    expect_file!["snapshots/overview_filtered.html"].assert_eq(&render("overview", &page));
}

#[test]
fn host_snapshot() {
    let (reg, events) = fleet();
    let mine: Vec<Event> = events.iter().filter(|e| e.host == "db1").cloned().collect();
    let page = host_page(&reg, "db1", &mine, &ctx()).expect("db1 exists");
    expect_file!["snapshots/host.html"].assert_eq(&render("host", &page));
}

#[test]
fn events_snapshot() {
    let (reg, events) = fleet();
    let q = EventsQuery::parse(&params("per=10"));
    let page = events_page(&reg, &q, Ok(events[..10].to_vec()), &ctx());
    expect_file!["snapshots/events.html"].assert_eq(&render("events", &page));
}

#[test]
fn not_found_snapshot() {
    let (reg, _) = fleet();
    let page = not_found_page(&reg, HOSTILE, &ctx());
    expect_file!["snapshots/not_found.html"].assert_eq(&render("not_found", &page));
}

#[test]
fn wire_text_is_escaped_everywhere() {
    let (reg, events) = fleet();
    let mut hostile = events[0].clone();
    hostile.host = HOSTILE.into();
    hostile.message = HOSTILE.into();
    hostile.key = Some(HOSTILE.into());
    let mut c = ctx();
    c.subsystems = vec![(
        "notify".into(),
        serde_json::json!({ HOSTILE: HOSTILE, "db1": {"x": HOSTILE} }),
    )];
    let pages = [
        render(
            "overview",
            &overview_page(&reg, &OverviewQuery::parse(&params("")), &c),
        ),
        render(
            "host",
            &host_page(&reg, "db1", std::slice::from_ref(&hostile), &c).expect("db1"),
        ),
        render(
            "events",
            &events_page(
                &reg,
                &EventsQuery::parse(&params("host=%3Cscript%3E")),
                Ok(vec![hostile]),
                &c,
            ),
        ),
        render("not_found", &not_found_page(&reg, HOSTILE, &c)),
    ];
    for html in &pages {
        assert!(!html.contains("<script>alert"), "{html}");
        assert!(!html.contains("<img src=x"), "{html}");
        assert!(
            html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
            "{html}"
        );
        // The only scripts are ours, from /static.
        for (i, _) in html.match_indices("<script") {
            assert!(html[i..].starts_with("<script src=\"/static/"), "{html}");
        }
        assert!(!html.contains(" style="), "inline style breaks the CSP");
    }
}

#[test]
fn default_order_puts_down_and_critical_first() {
    let (reg, _) = fleet();
    let o = views::overview(&reg, &OverviewQuery::parse(&params("")), NOW);
    let names: Vec<&str> = o.rows.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(names, ["old1", "db1", "cache1", "ghost", "web1"]);
    let o = views::overview(&reg, &OverviewQuery::parse(&params("sort=cpu")), NOW);
    let names: Vec<&str> = o.rows.iter().map(|r| r.name.as_str()).collect();
    // Highest first; a host with no figure last.
    assert_eq!(names, ["db1", "web1", "cache1", "old1", "ghost"]);
    let o = views::overview(
        &reg,
        &OverviewQuery::parse(&params("sort=cpu&dir=asc")),
        NOW,
    );
    assert_eq!(o.rows.last().map(|r| r.name.as_str()), Some("ghost"));
}

/// `GET /api/v1/hosts` and the overview run one query: same hosts, same order, for the
/// default and for the orders both offer.
#[test]
fn api_and_overview_list_hosts_alike() {
    let (reg, _) = fleet();
    for (api, page) in [
        ("", ""),
        ("sort=-cpu", "sort=cpu"),
        ("sort=mem", "sort=mem&dir=asc"),
        ("sort=-name&status=UP", "sort=name&dir=desc&status=up"),
        ("sort=last_seen&q=1", "sort=seen&q=1"),
        ("sort=check", "sort=check"),
    ] {
        let q = crate::query::HostQuery::from_api(&params(api)).expect("valid");
        let listed = q.run(&reg, |_| {}, |h| h.name.to_string()).hosts;
        let o = views::overview(&reg, &OverviewQuery::parse(&params(page)), NOW);
        let shown: Vec<String> = o.rows.iter().map(|r| r.name.clone()).collect();
        assert_eq!(listed, shown, "api {api:?}, overview {page:?}");
    }
}

#[test]
fn paging_and_filters() {
    let (reg, _) = fleet();
    let o = views::overview(&reg, &OverviewQuery::parse(&params("per=50&page=9")), NOW);
    assert_eq!((o.page, o.pages, o.rows.len()), (1, 1, 5));
    let o = views::overview(&reg, &OverviewQuery::parse(&params("status=down")), NOW);
    assert_eq!(o.matching, 1);
    let o = views::overview(&reg, &OverviewQuery::parse(&params("level=warning")), NOW);
    assert_eq!(o.rows[0].name, "cache1");
    let o = views::overview(&reg, &OverviewQuery::parse(&params("q=WEB")), NOW);
    assert_eq!(o.matching, 1);
    // Nonsense falls back to defaults instead of an error page.
    let q = OverviewQuery::parse(&params("sort=%3Cx%3E&per=7&status=maybe&page=-1"));
    assert_eq!(q, OverviewQuery::parse(&params("")));
}

#[test]
fn events_filter_times_use_the_viewers_zone() {
    let q = EventsQuery::parse(&params("from=2023-11-14T23:13&tz=-60&kind=host_down"));
    let j = q.journal().expect("valid");
    assert_eq!(j.since_ms, Some(1_699_999_980_000));
    assert_eq!(j.kinds, vec![crate::event::EventKind::HostDown]);
    let q = EventsQuery::parse(&params("kind=nonsense"));
    assert!(q.journal().expect_err("invalid").contains("nonsense"));
    let q = EventsQuery::parse(&params("from=2023-11-15T00:00&to=2023-11-14T00:00"));
    assert!(q.journal().is_err());
}

#[test]
fn fleet_state_and_favicon() {
    let (reg, _) = fleet();
    let f = views::Fleet::of(&reg);
    assert_eq!(
        (f.total, f.up, f.down, f.never, f.ok, f.warning, f.critical),
        (5, 3, 1, 1, 1, 1, 1)
    );
    assert_eq!(f.state, "down");
    assert!(favicon_svg("down").contains("#d92d20"));
    assert!(favicon_svg("nonsense").contains("#8a94a6"));
}

#[test]
fn history_json_is_compact() {
    let (reg, _) = fleet();
    let v: serde_json::Value = serde_json::from_str(&history_json(&reg)).expect("json");
    assert_eq!(
        v["hosts"]["web1"]["cpu"],
        serde_json::json!([10.0, 13.0, 16.0, 19.0, 22.0])
    );
    assert_eq!(v["hosts"]["ghost"]["cpu"], serde_json::json!([]));
}

#[test]
fn no_unescaped_output_and_no_html_injection_in_scripts() {
    for (name, text) in assets::TEMPLATES {
        assert!(
            !text.contains("{{{"),
            "template {name} uses unescaped {{{{{{...}}}}}}"
        );
        assert!(
            !text.contains(" style="),
            "template {name}: inline style breaks the CSP"
        );
        assert!(!text.contains("<script>"), "template {name}: inline script");
    }
    for (name, bytes) in assets::STATIC {
        let text = String::from_utf8_lossy(bytes);
        for banned in [
            "innerHTML",
            "outerHTML",
            "insertAdjacentHTML",
            "document.write",
            "eval(",
        ] {
            assert!(!text.contains(banned), "static/{name} uses {banned}");
        }
    }
}
