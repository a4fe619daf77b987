//! Rate limits: the HTTP listener answers 429 with Retry-After once a client address has
//! used its burst (`/healthz` never limited); without a secret, a source flooding UDP is
//! cut to its rate and counted (`rate_limited`) while other sources go on; with a secret,
//! forged datagrams are dropped by signature and never block a real host's heartbeats.

use std::net::UdpSocket;
use std::sync::atomic::Ordering;
use std::time::Duration;

use crate::util::*;

fn received(hbd: &Hbd) -> u64 {
    hbd.state.counters.udp_received.load(Ordering::Relaxed)
}

fn accepted(hbd: &Hbd) -> u64 {
    hbd.state.counters.accepted.load(Ordering::Relaxed)
}

#[test]
fn http_clients_over_their_rate_get_429_with_retry_after() {
    let dir = tempfile::tempdir().expect("tmp");
    let hbd = Hbd::start(
        config("api_rate_limit: 2\napi_rate_burst: 10\n"),
        dir.path(),
        0,
    );
    // Start-up already asked /healthz, which is never limited.
    for i in 0..10 {
        let (code, _) = hbd.get("/api/v1/hosts");
        assert_eq!(code, 200, "request {i} is within the burst");
    }
    let limited = ureq::get(&hbd.url("/api/v1/hosts"))
        .timeout(Duration::from_secs(5))
        .call();
    let resp = match limited {
        Err(ureq::Error::Status(429, r)) => r,
        other => panic!("expected 429, got {other:?}"),
    };
    let retry: u64 = resp
        .header("retry-after")
        .and_then(|v| v.parse().ok())
        .expect("Retry-After in seconds");
    assert_eq!(retry, 1, "one token comes back in 0.5 s: retry after 1 s");
    let body: serde_json::Value = resp.into_json().expect("json error");
    let msg = body["error"].as_str().expect("error text");
    assert!(
        msg.contains("api_rate_limit") && msg.contains("127.0.0.1"),
        "{msg}"
    );
    // The dashboard is limited too; the health check is not.
    let (code, _) = hbd.get("/");
    assert_eq!(code, 429);
    for _ in 0..20 {
        assert_eq!(hbd.get("/healthz").0, 200);
    }
    // Tokens come back at the rate.
    std::thread::sleep(Duration::from_millis(600));
    assert_eq!(hbd.get("/api/v1/hosts").0, 200);
    assert_eq!(hbd.get("/api/v1/hosts").0, 429);
    // Every 429 is counted for /metrics (hbd_http_rate_limited_total): three above.
    assert_eq!(hbd.state.counters.http_limited.load(Ordering::Relaxed), 3);
    let metrics = hbd::metrics::render(&hbd.state, false);
    assert!(
        metrics.contains("hbd_http_rate_limited_total 3"),
        "{metrics}"
    );
}

#[test]
fn without_a_secret_a_flooding_source_is_cut_to_its_rate_and_others_go_on() {
    let dir = tempfile::tempdir().expect("tmp");
    let hbd = Hbd::start(
        config("udp_rate_limit: 5\nudp_rate_burst: 20\ningest_threads: 1\n"),
        dir.path(),
        0,
    );
    let flood = UdpSocket::bind("127.0.0.1:0").expect("bind");
    for i in 0..200 {
        flood
            .send_to(&datagram(&format!("flood-{i}"), 1, 1, None, 1), hbd.udp)
            .expect("send");
    }
    // Another address (all of 127/8 is loopback) is not affected.
    let other = UdpSocket::bind("127.0.0.2:0").expect("bind 127.0.0.2");
    other
        .send_to(&datagram("quiet", 1, 1, None, 1), hbd.udp)
        .expect("send");
    hbd.wait_for(Duration::from_secs(5), "all 201 received", |h| {
        received(h) >= 201
    });
    hbd.wait_for(Duration::from_secs(5), "all counted", |h| {
        accepted(h) + dropped(h, "rate_limited") >= 201
    });
    let limited = dropped(&hbd, "rate_limited");
    let ok = accepted(&hbd);
    assert_eq!(ok + limited, 201, "each datagram counted once");
    // 20 at once, plus at most what 5/s brings back while the test sends.
    assert!((21..=26).contains(&ok), "accepted {ok}, limited {limited}");
    assert!(
        hbd.host("quiet").is_some(),
        "the other source's host is there"
    );
    let (_, list) = hbd.get("/api/v1/hosts?limit=1");
    assert_eq!(list["total"].as_u64(), Some(ok));
    // /metrics shows the reason.
    let metrics = hbd.get_text("/metrics");
    assert!(
        metrics.contains(&format!("reason=\"rate_limited\"}} {limited}")),
        "{metrics}"
    );
}

#[test]
fn with_a_secret_forgeries_never_block_the_real_host() {
    let dir = tempfile::tempdir().expect("tmp");
    let hbd = Hbd::start(
        config("secret: real-secret\nudp_rate_limit: 5\nudp_rate_burst: 20\ningest_threads: 1\n"),
        dir.path(),
        0,
    );
    // A forger using the real host's own address and name.
    let sock = UdpSocket::bind("127.0.0.1:0").expect("bind");
    for seq in 1..=300 {
        sock.send_to(&datagram("web1", 7, seq, Some(b"forged"), 1), hbd.udp)
            .expect("send");
    }
    sock.send_to(&datagram("web1", 1, 1, Some(b"real-secret"), 1), hbd.udp)
        .expect("send");
    hbd.wait_for(Duration::from_secs(5), "the real heartbeat", |h| {
        h.host("web1").is_some()
    });
    assert_eq!(dropped(&hbd, "bad_signature"), 300);
    assert_eq!(dropped(&hbd, "rate_limited"), 0);
    assert_eq!(accepted(&hbd), 1);
}
