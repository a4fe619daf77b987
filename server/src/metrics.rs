//! `GET /metrics`: hbd's own counters and per-host gauges in the Prometheus text format
//! (version 0.0.4), so an existing Prometheus can keep long-term history.

use std::fmt::Write;
use std::sync::atomic::Ordering;

use crate::registry::{LevelName, Status};
use crate::state::State;

/// Escapes a label value: backslash, double quote and newline.
pub fn escape(v: &str) -> String {
    let mut s = String::with_capacity(v.len());
    for c in v.chars() {
        match c {
            '\\' => s.push_str("\\\\"),
            '"' => s.push_str("\\\""),
            '\n' => s.push_str("\\n"),
            c => s.push(c),
        }
    }
    s
}

fn head(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

fn float(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v.is_infinite() {
        if v > 0.0 {
            "+Inf".into()
        } else {
            "-Inf".into()
        }
    } else {
        format!("{v}")
    }
}

/// Renders every metric.
pub fn render(state: &State) -> String {
    let c = &state.counters;
    let mut out = String::with_capacity(64 * 1024);
    head(
        &mut out,
        "hbd_datagrams_received_total",
        "counter",
        "Heartbeat datagrams received, by transport.",
    );
    let _ = writeln!(
        out,
        "hbd_datagrams_received_total{{transport=\"udp\"}} {}",
        c.udp_received.load(Ordering::Relaxed)
    );
    let _ = writeln!(
        out,
        "hbd_datagrams_received_total{{transport=\"http\"}} {}",
        c.http_received.load(Ordering::Relaxed)
    );
    head(
        &mut out,
        "hbd_datagrams_accepted_total",
        "counter",
        "Heartbeat datagrams verified and applied.",
    );
    let _ = writeln!(
        out,
        "hbd_datagrams_accepted_total {}",
        c.accepted.load(Ordering::Relaxed)
    );
    head(
        &mut out,
        "hbd_datagrams_dropped_total",
        "counter",
        "Heartbeat datagrams dropped, by reason.",
    );
    for (reason, n) in c.dropped() {
        let _ = writeln!(
            out,
            "hbd_datagrams_dropped_total{{reason=\"{reason}\"}} {n}"
        );
    }
    head(&mut out, "hbd_events_total", "counter", "Events published.");
    let _ = writeln!(out, "hbd_events_total {}", c.events.load(Ordering::Relaxed));
    let js = &state.journal.stats;
    head(
        &mut out,
        "hbd_journal_appended_total",
        "counter",
        "Events written to the journal.",
    );
    let _ = writeln!(
        out,
        "hbd_journal_appended_total {}",
        js.appended.load(Ordering::Relaxed)
    );
    head(
        &mut out,
        "hbd_journal_write_errors_total",
        "counter",
        "Failed journal writes.",
    );
    let _ = writeln!(
        out,
        "hbd_journal_write_errors_total {}",
        js.write_errors.load(Ordering::Relaxed)
    );
    head(
        &mut out,
        "hbd_journal_pending",
        "gauge",
        "Events waiting to be written (disk failing).",
    );
    let _ = writeln!(
        out,
        "hbd_journal_pending {}",
        js.pending.load(Ordering::Relaxed)
    );
    head(
        &mut out,
        "hbd_journal_dropped_total",
        "counter",
        "Events the journal could not keep.",
    );
    let _ = writeln!(
        out,
        "hbd_journal_dropped_total {}",
        js.dropped.load(Ordering::Relaxed) + c.journal_dropped.load(Ordering::Relaxed)
    );
    head(
        &mut out,
        "hbd_websocket_clients",
        "gauge",
        "Connected WebSocket clients.",
    );
    let _ = writeln!(
        out,
        "hbd_websocket_clients {}",
        c.ws_clients.load(Ordering::Relaxed)
    );
    head(
        &mut out,
        "hbd_websocket_messages_total",
        "counter",
        "Live messages published.",
    );
    let _ = writeln!(
        out,
        "hbd_websocket_messages_total {}",
        c.ws_messages.load(Ordering::Relaxed)
    );
    head(
        &mut out,
        "hbd_websocket_slow_clients_dropped_total",
        "counter",
        "Clients disconnected for falling behind.",
    );
    let _ = writeln!(
        out,
        "hbd_websocket_slow_clients_dropped_total {}",
        c.ws_dropped_slow.load(Ordering::Relaxed)
    );

    let reg = state.registry();
    let (mut up, mut down, mut never) = (0, 0, 0);
    for h in reg.iter() {
        match h.status {
            Status::Up => up += 1,
            Status::Down => down += 1,
            Status::NeverSeen => never += 1,
        }
    }
    head(&mut out, "hbd_hosts", "gauge", "Hosts by liveness status.");
    let _ = writeln!(out, "hbd_hosts{{status=\"up\"}} {up}\nhbd_hosts{{status=\"down\"}} {down}\nhbd_hosts{{status=\"never_seen\"}} {never}");

    head(&mut out, "hbd_host_up", "gauge", "1 if the host is UP.");
    for h in reg.iter() {
        let _ = writeln!(
            out,
            "hbd_host_up{{host=\"{}\"}} {}",
            escape(&h.name),
            u8::from(h.status == Status::Up)
        );
    }
    head(
        &mut out,
        "hbd_host_last_seen_seconds",
        "gauge",
        "Unix time of the host's last heartbeat.",
    );
    for h in reg.iter() {
        if let Some(t) = h.last_seen_ms {
            let _ = writeln!(
                out,
                "hbd_host_last_seen_seconds{{host=\"{}\"}} {}",
                escape(&h.name),
                float(t as f64 / 1000.0)
            );
        }
    }
    head(
        &mut out,
        "hbd_host_level",
        "gauge",
        "Overall level: 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN.",
    );
    for h in reg.iter() {
        let v = match h.level {
            LevelName::Ok => 0,
            LevelName::Warning => 1,
            LevelName::Critical => 2,
            LevelName::Unknown => 3,
        };
        let _ = writeln!(out, "hbd_host_level{{host=\"{}\"}} {v}", escape(&h.name));
    }
    head(
        &mut out,
        "hbd_host_lost_heartbeats_total",
        "counter",
        "Heartbeats missing from the sequence.",
    );
    for h in reg.iter() {
        let _ = writeln!(
            out,
            "hbd_host_lost_heartbeats_total{{host=\"{}\"}} {}",
            escape(&h.name),
            h.lost
        );
    }
    head(
        &mut out,
        "hbd_reading",
        "gauge",
        "Numeric readings reported by hbc, by host, key and unit.",
    );
    for h in reg.iter() {
        let host = escape(&h.name);
        for r in &h.readings {
            if let Some(v) = r.value.as_f64() {
                let _ = writeln!(
                    out,
                    "hbd_reading{{host=\"{host}\",key=\"{}\",unit=\"{}\"}} {}",
                    escape(&r.key),
                    escape(&r.unit),
                    float(v)
                );
            }
        }
    }
    out
}
