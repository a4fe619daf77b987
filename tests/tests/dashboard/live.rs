//! The dashboard against a running hbd fed by the real hbc: the host appears, a new
//! heartbeat updates its row without a reload, stopping hbc turns it DOWN on screen, and
//! the connection-lost banner appears when hbd stops. Screenshots of the overview and a
//! host page, light and dark, laptop and phone.

use std::time::Duration;

use crate::browser::{Browser, Options};
use crate::util::*;

const HOST: &str = "web-e2e";

fn row(field: &str) -> String {
    format!("var r = document.querySelector('tr[data-host=\"{HOST}\"]'); return r && {field};")
}

#[test]
fn live_overview_and_host_page_follow_the_real_hbc() {
    let dir = tempfile::tempdir().expect("tmp");
    let hbd = Hbd::start(config(""), dir.path(), 0);
    let server = hbd.udp.to_string();
    let hbc = Hbc::start(
        &server,
        "1s",
        "",
        &["cpu", "memory", "filesystem", "os"],
        HOST,
    );
    // A second host that keeps beating, so the screenshots show more than one row.
    let _other = Hbc::start(&server, "1s", "", &["cpu", "memory"], "db-e2e");
    hbd.wait_for(Duration::from_secs(15), "hbc's host is UP", |h| {
        h.status(HOST).as_deref() == Some("UP")
    });

    let b = Browser::start(Options::default());
    b.goto(&hbd.url("/"));
    // The host appears, from the server-rendered page and then from the live model.
    b.wait(
        Duration::from_secs(10),
        "the host's row",
        &row("r.querySelector('.c-state').textContent"),
    );
    b.wait(
        Duration::from_secs(10),
        "the WebSocket snapshot is drawn",
        "return window.hbdStats && window.hbdStats.firstRender !== null && window.hbdStats.connected;",
    );
    let state = b.exec(&row("r.querySelector('.c-state').textContent"));
    assert!(state.as_str().unwrap_or("").contains("UP"), "{state}");

    // A new heartbeat updates the row in place: the page is not reloaded (a variable
    // set on the window survives), and the row's last-seen time moves.
    b.exec("window.notReloaded = true; return 1;");
    let seen0 = b.exec(&row("+r.querySelector('time.ago').getAttribute('data-ms')"));
    let seen0 = seen0.as_f64().expect("last seen");
    b.wait(
        Duration::from_secs(10),
        "a newer heartbeat in the row",
        &row(&format!(
            "+r.querySelector('time.ago').getAttribute('data-ms') > {seen0}"
        )),
    );
    b.wait(
        Duration::from_secs(5),
        "sparklines drawn from history and live data",
        &row("r.querySelector('.m-cpu path').getAttribute('d').indexOf('L') > 0"),
    );
    assert_eq!(b.exec("return window.notReloaded === true;"), true);
    // "last seen" ticks without a heartbeat changing it.
    let ago = b.exec(&row("r.querySelector('time.ago').textContent"));
    assert!(ago.as_str().unwrap_or("").ends_with(" s ago"), "{ago}");

    std::thread::sleep(Duration::from_millis(1500));
    b.screenshot("overview-laptop-light", false);
    b.dark(true);
    b.screenshot("overview-laptop-dark", false);

    // The host page: readings grouped by plugin, charts, events, addresses.
    b.goto(&hbd.url(&format!("/hosts/{HOST}")));
    b.wait(
        Duration::from_secs(10),
        "the host page",
        "return document.querySelectorAll('#readings details[data-plugin]').length >= 3;",
    );
    for plugin in ["cpu", "memory", "fs", "os"] {
        assert_eq!(
            b.count(&format!("#readings details[data-plugin=\"{plugin}\"]")),
            1,
            "group {plugin}"
        );
    }
    assert!(b.count("#charts svg path.line") >= 2);
    assert!(
        b.text("#host-events").contains("new host") || b.text("#host-events").contains("host UP")
    );
    assert!(b.text("#addresses").contains("127.0.0.1"));
    // The host page follows heartbeats too, without a reload.
    b.exec("window.notReloaded = true; return 1;");
    let received = |b: &Browser| -> u64 {
        b.exec("var d = [...document.querySelectorAll('.facts div')].find(x => x.querySelector('dt').textContent === 'Heartbeats received'); return d ? +d.querySelector('dd').textContent : 0;")
            .as_u64()
            .unwrap_or(0)
    };
    let r0 = received(&b);
    b.wait(
        Duration::from_secs(10),
        "the host page's heartbeat count grows",
        &format!("var d = [...document.querySelectorAll('.facts div')].find(x => x.querySelector('dt').textContent === 'Heartbeats received'); return d && +d.querySelector('dd').textContent > {r0} && window.notReloaded === true;"),
    );
    b.wait(
        Duration::from_secs(10),
        "trend lines of readings while the page is open",
        "return document.querySelectorAll('#readings td.trend svg').length > 0;",
    );
    assert!(received(&b) > r0);
    b.dark(false);
    b.screenshot("host-laptop-light", true);
    b.dark(true);
    b.screenshot("host-laptop-dark", true);
    b.dark(false);

    // The journal, newest first.
    b.goto(&hbd.url("/events"));
    b.wait(
        Duration::from_secs(10),
        "the events page",
        "return document.querySelectorAll('#event-rows tr').length >= 2;",
    );
    assert!(b.text("#event-rows tr:first-child").contains("e2e"));
    b.screenshot("events-laptop-light", false);

    // Phone width.
    b.phone();
    b.goto(&hbd.url("/"));
    b.wait(
        Duration::from_secs(10),
        "the overview on a phone",
        "return window.hbdStats && window.hbdStats.firstRender !== null;",
    );
    b.screenshot("overview-phone-light", false);
    b.goto(&hbd.url(&format!("/hosts/{HOST}")));
    b.wait(
        Duration::from_secs(10),
        "the host page on a phone",
        "return document.querySelectorAll('#readings details').length > 0;",
    );
    b.screenshot("host-phone-light", false);
    b.cdp(
        "Emulation.clearDeviceMetricsOverride",
        serde_json::json!({}),
    );

    // Stopping hbc turns the host DOWN on screen (interval 1 s × grace 2.5).
    b.goto(&hbd.url("/"));
    b.wait(
        Duration::from_secs(10),
        "live overview",
        "return window.hbdStats && window.hbdStats.connected && window.hbdStats.firstRender !== null;",
    );
    b.exec("window.notReloaded = true; return 1;");
    hbc.stop();
    b.wait(
        Duration::from_secs(15),
        "the host turns DOWN on screen",
        &row("r.querySelector('.c-state .badge').textContent === 'DOWN'"),
    );
    assert_eq!(b.exec("return window.notReloaded === true;"), true);
    // DOWN sorts first and is counted.
    assert_eq!(
        b.exec("return document.querySelector('#host-rows tr').getAttribute('data-host');"),
        HOST
    );
    b.wait(
        Duration::from_secs(5),
        "the DOWN count and the favicon follow",
        "return document.querySelector('.tiles [data-count=\"down\"]').textContent === '1' \
         && document.getElementById('favicon').getAttribute('href') === '/favicon.svg?s=down';",
    );
    b.screenshot("overview-host-down", false);

    // hbd stops: the page says so, visibly.
    drop(_other);
    hbd.stop();
    b.wait(
        Duration::from_secs(10),
        "the connection-lost banner",
        "var c = document.getElementById('conn'); return c && !c.hidden && c.offsetHeight > 0 && c.textContent.indexOf('Live updates lost') >= 0;",
    );
    let text = b.text("#conn");
    assert!(text.contains("Reconnecting"), "{text}");
    assert_eq!(b.text("#live"), "Offline");
    b.screenshot("overview-connection-lost", false);
}

#[test]
fn pages_render_without_javascript() {
    let dir = tempfile::tempdir().expect("tmp");
    let hbd = Hbd::start(config(""), dir.path(), 0);
    let _hbc = Hbc::start(&hbd.udp.to_string(), "1s", "", &["cpu", "memory"], HOST);
    hbd.wait_for(Duration::from_secs(15), "host UP", |h| {
        h.status(HOST).as_deref() == Some("UP")
    });
    let b = Browser::start(Options {
        javascript: false,
        ..Options::default()
    });
    b.goto(&hbd.url("/?sort=name"));
    assert_eq!(b.count(&format!("tr[data-host=\"{HOST}\"]")), 1);
    assert!(b
        .text(&format!("tr[data-host=\"{HOST}\"] .c-state"))
        .contains("UP"));
    // No script ran (hbd.js marks <html> with `js`), yet the page is complete.
    assert_eq!(b.count("html.js"), 0);
    assert_eq!(b.count("#filters button.apply"), 1);
    assert!(b.text("#live").starts_with("Updated"));
    b.screenshot("overview-no-javascript", false);
    b.goto(&hbd.url(&format!("/hosts/{HOST}")));
    assert!(b.count("#readings details") >= 2);
    b.goto(&hbd.url("/events"));
    assert!(b.count("#event-rows tr") >= 1);
}
