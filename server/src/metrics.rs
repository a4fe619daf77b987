//! `GET /metrics`: hbd's own counters and per-host gauges in the Prometheus text format
//! (version 0.0.4), so an existing Prometheus can keep long-term history.

use std::fmt::{Display, Write};
use std::sync::atomic::{AtomicU64, Ordering};

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

/// A metric with a single sample: `name value`.
fn single(out: &mut String, name: &str, kind: &str, help: &str, value: impl Display) {
    head(out, name, kind, help);
    let _ = writeln!(out, "{name} {value}");
}

/// A metric whose samples differ by one label: `name{label="x"} value` for each `(x,
/// value)`. The label values must be escaped already.
fn labelled<X: Display, V: Display>(
    out: &mut String,
    name: &str,
    kind: &str,
    help: &str,
    label: &str,
    samples: impl IntoIterator<Item = (X, V)>,
) {
    head(out, name, kind, help);
    for (x, value) in samples {
        let _ = writeln!(out, "{name}{{{label}=\"{x}\"}} {value}");
    }
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
    let load = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
    let mut out = String::with_capacity(64 * 1024);
    labelled(
        &mut out,
        "hbd_datagrams_received_total",
        "counter",
        "Heartbeat datagrams received, by transport.",
        "transport",
        [
            ("udp", load(&c.udp_received)),
            ("http", load(&c.http_received)),
        ],
    );
    single(
        &mut out,
        "hbd_datagrams_accepted_total",
        "counter",
        "Heartbeat datagrams verified and applied.",
        load(&c.accepted),
    );
    labelled(
        &mut out,
        "hbd_datagrams_dropped_total",
        "counter",
        "Heartbeat datagrams dropped, by reason.",
        "reason",
        c.dropped.iter().map(|(r, n)| (r.as_str(), n)),
    );
    let reading_drops = state.registry().reading_drops;
    labelled(
        &mut out,
        "hbd_readings_dropped_total",
        "counter",
        "Readings of applied heartbeats that were not stored, by reason.",
        "reason",
        reading_drops.iter(),
    );
    single(
        &mut out,
        "hbd_events_total",
        "counter",
        "Events published.",
        load(&c.events),
    );
    let js = &state.journal.stats;
    single(
        &mut out,
        "hbd_journal_appended_total",
        "counter",
        "Events written to the journal.",
        load(&js.appended),
    );
    single(
        &mut out,
        "hbd_journal_write_errors_total",
        "counter",
        "Failed journal writes.",
        load(&js.write_errors),
    );
    single(
        &mut out,
        "hbd_journal_pending",
        "gauge",
        "Events waiting to be written (disk failing).",
        load(&js.pending),
    );
    single(
        &mut out,
        "hbd_journal_dropped_total",
        "counter",
        "Events the journal could not keep.",
        load(&js.dropped) + load(&c.journal_dropped),
    );
    single(
        &mut out,
        "hbd_websocket_clients",
        "gauge",
        "Connected WebSocket clients.",
        load(&c.ws_clients),
    );
    single(
        &mut out,
        "hbd_websocket_messages_total",
        "counter",
        "Live messages published.",
        load(&c.ws_messages),
    );
    single(
        &mut out,
        "hbd_websocket_slow_clients_dropped_total",
        "counter",
        "Clients disconnected for falling behind.",
        load(&c.ws_dropped_slow),
    );

    // Per-host families are gathered a thousand hosts at a time, so the registry lock
    // that ingest needs is never held for a whole fleet (100,000 hosts render ~260 MB).
    let mut up_lines = String::new();
    let mut seen_lines = String::new();
    let mut level_lines = String::new();
    let mut lost_lines = String::new();
    let mut reading_lines = String::new();
    let (mut up, mut down, mut never) = (0u64, 0u64, 0u64);
    let slots = state.registry().slots();
    let mut start = 0;
    while start < slots {
        let end = (start + 1000).min(slots);
        let reg = state.registry();
        for h in (start..end).filter_map(|i| reg.slot(i)) {
            match h.status {
                Status::Up => up += 1,
                Status::Down => down += 1,
                Status::NeverSeen => never += 1,
            }
            let host = escape(&h.name);
            let _ = writeln!(
                up_lines,
                "hbd_host_up{{host=\"{host}\"}} {}",
                u8::from(h.status == Status::Up)
            );
            if let Some(t) = h.last_seen_ms {
                let _ = writeln!(
                    seen_lines,
                    "hbd_host_last_seen_seconds{{host=\"{host}\"}} {}",
                    float(t as f64 / 1000.0)
                );
            }
            let level = match h.level {
                LevelName::Ok => 0,
                LevelName::Warning => 1,
                LevelName::Critical => 2,
                LevelName::Unknown => 3,
            };
            let _ = writeln!(level_lines, "hbd_host_level{{host=\"{host}\"}} {level}");
            let _ = writeln!(
                lost_lines,
                "hbd_host_lost_heartbeats_total{{host=\"{host}\"}} {}",
                h.lost
            );
            for r in &h.readings {
                if let Some(v) = r.value.as_f64() {
                    let _ = writeln!(
                        reading_lines,
                        "hbd_reading{{host=\"{host}\",key=\"{}\",unit=\"{}\"}} {}",
                        escape(&r.key),
                        escape(&r.unit),
                        float(v)
                    );
                }
            }
        }
        drop(reg);
        start = end;
    }
    labelled(
        &mut out,
        "hbd_hosts",
        "gauge",
        "Hosts by liveness status.",
        "status",
        [("up", up), ("down", down), ("never_seen", never)],
    );
    for (name, kind, help, lines) in [
        ("hbd_host_up", "gauge", "1 if the host is UP.", up_lines),
        (
            "hbd_host_last_seen_seconds",
            "gauge",
            "Unix time of the host's last heartbeat.",
            seen_lines,
        ),
        (
            "hbd_host_level",
            "gauge",
            "Overall level: 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN.",
            level_lines,
        ),
        (
            "hbd_host_lost_heartbeats_total",
            "counter",
            "Heartbeats missing from the sequence.",
            lost_lines,
        ),
        (
            "hbd_reading",
            "gauge",
            "Numeric readings reported by hbc, by host, key and unit.",
            reading_lines,
        ),
    ] {
        head(&mut out, name, kind, help);
        out.push_str(&lines);
    }
    out
}

#[cfg(test)]
mod tests {
    use std::net::{IpAddr, Ipv4Addr};

    use expect_test::expect;
    use hb_proto::{decode, encode, Heartbeat, Level, Reading, Value};

    use super::*;
    use crate::config::Config;
    use crate::journal::{Journal, JournalConfig, Writer};
    use crate::registry::{Registry, Settings};

    fn reading(key: &str, value: Value, unit: &str) -> Reading {
        Reading {
            key: key.into(),
            value,
            unit: unit.into(),
            level: Level::Ok,
            message: String::new(),
            threshold: String::new(),
        }
    }

    fn beat(registry: &mut Registry, host: &str, readings: Vec<Reading>, now_ms: u64) {
        let heartbeat = Heartbeat {
            host: host.into(),
            instance: 1,
            seq: 1,
            sent_ms: now_ms,
            interval_ms: 10_000,
            level: Level::Warning,
            readings,
        };
        let source = IpAddr::V4(Ipv4Addr::LOCALHOST);
        for datagram in encode(&heartbeat, None, 1400).expect("encode") {
            let packet = decode(&datagram, None).expect("decode");
            registry
                .apply(&packet, source, now_ms, &mut Vec::new())
                .expect("apply");
        }
    }

    #[test]
    fn renders_counters_and_per_host_gauges() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let (journal, _) = Journal::open(JournalConfig::new(tmp.path()), |_| {}).expect("open");
        let writer = Writer::spawn(journal, 16).expect("spawn");
        let mut registry = Registry::new(Settings::default());
        beat(
            &mut registry,
            "web1",
            vec![
                reading("cpu.usage_percent", Value::F64(12.5), "%"),
                reading("os.name", Value::Text("Debian".into()), ""),
                reading("fs./mnt/a\"b\\c.used_bytes", Value::I64(4096), "B"),
            ],
            1_700_000_000_250,
        );
        registry.watch("db1", None, 1_700_000_000_000);
        let state = State::new(
            Config::default(),
            registry,
            writer,
            tmp.path().to_path_buf(),
            Vec::new(),
        );
        state
            .counters
            .dropped
            .add(hbd_core::drop::DropReason::BadSignature);

        expect![[r##"
            # HELP hbd_datagrams_received_total Heartbeat datagrams received, by transport.
            # TYPE hbd_datagrams_received_total counter
            hbd_datagrams_received_total{transport="udp"} 0
            hbd_datagrams_received_total{transport="http"} 0
            # HELP hbd_datagrams_accepted_total Heartbeat datagrams verified and applied.
            # TYPE hbd_datagrams_accepted_total counter
            hbd_datagrams_accepted_total 0
            # HELP hbd_datagrams_dropped_total Heartbeat datagrams dropped, by reason.
            # TYPE hbd_datagrams_dropped_total counter
            hbd_datagrams_dropped_total{reason="short"} 0
            hbd_datagrams_dropped_total{reason="bad_magic"} 0
            hbd_datagrams_dropped_total{reason="bad_version"} 0
            hbd_datagrams_dropped_total{reason="bad_flags"} 0
            hbd_datagrams_dropped_total{reason="unsigned"} 0
            hbd_datagrams_dropped_total{reason="bad_signature"} 1
            hbd_datagrams_dropped_total{reason="truncated"} 0
            hbd_datagrams_dropped_total{reason="trailing_bytes"} 0
            hbd_datagrams_dropped_total{reason="bad_utf8"} 0
            hbd_datagrams_dropped_total{reason="bad_host_name"} 0
            hbd_datagrams_dropped_total{reason="bad_level"} 0
            hbd_datagrams_dropped_total{reason="bad_value_type"} 0
            hbd_datagrams_dropped_total{reason="bad_part"} 0
            hbd_datagrams_dropped_total{reason="empty_key"} 0
            hbd_datagrams_dropped_total{reason="replayed"} 0
            hbd_datagrams_dropped_total{reason="outside_time_window"} 0
            hbd_datagrams_dropped_total{reason="host_cap"} 0
            hbd_datagrams_dropped_total{reason="oversized"} 0
            hbd_datagrams_dropped_total{reason="rate_limited"} 0
            hbd_datagrams_dropped_total{reason="too_many_parts"} 0
            hbd_datagrams_dropped_total{reason="host_rate_limited"} 0
            # HELP hbd_readings_dropped_total Readings of applied heartbeats that were not stored, by reason.
            # TYPE hbd_readings_dropped_total counter
            hbd_readings_dropped_total{reason="bad_key"} 0
            hbd_readings_dropped_total{reason="host_reading_cap"} 0
            hbd_readings_dropped_total{reason="host_byte_budget"} 0
            # HELP hbd_events_total Events published.
            # TYPE hbd_events_total counter
            hbd_events_total 0
            # HELP hbd_journal_appended_total Events written to the journal.
            # TYPE hbd_journal_appended_total counter
            hbd_journal_appended_total 0
            # HELP hbd_journal_write_errors_total Failed journal writes.
            # TYPE hbd_journal_write_errors_total counter
            hbd_journal_write_errors_total 0
            # HELP hbd_journal_pending Events waiting to be written (disk failing).
            # TYPE hbd_journal_pending gauge
            hbd_journal_pending 0
            # HELP hbd_journal_dropped_total Events the journal could not keep.
            # TYPE hbd_journal_dropped_total counter
            hbd_journal_dropped_total 0
            # HELP hbd_websocket_clients Connected WebSocket clients.
            # TYPE hbd_websocket_clients gauge
            hbd_websocket_clients 0
            # HELP hbd_websocket_messages_total Live messages published.
            # TYPE hbd_websocket_messages_total counter
            hbd_websocket_messages_total 0
            # HELP hbd_websocket_slow_clients_dropped_total Clients disconnected for falling behind.
            # TYPE hbd_websocket_slow_clients_dropped_total counter
            hbd_websocket_slow_clients_dropped_total 0
            # HELP hbd_hosts Hosts by liveness status.
            # TYPE hbd_hosts gauge
            hbd_hosts{status="up"} 1
            hbd_hosts{status="down"} 0
            hbd_hosts{status="never_seen"} 1
            # HELP hbd_host_up 1 if the host is UP.
            # TYPE hbd_host_up gauge
            hbd_host_up{host="web1"} 1
            hbd_host_up{host="db1"} 0
            # HELP hbd_host_last_seen_seconds Unix time of the host's last heartbeat.
            # TYPE hbd_host_last_seen_seconds gauge
            hbd_host_last_seen_seconds{host="web1"} 1700000000.25
            # HELP hbd_host_level Overall level: 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN.
            # TYPE hbd_host_level gauge
            hbd_host_level{host="web1"} 1
            hbd_host_level{host="db1"} 3
            # HELP hbd_host_lost_heartbeats_total Heartbeats missing from the sequence.
            # TYPE hbd_host_lost_heartbeats_total counter
            hbd_host_lost_heartbeats_total{host="web1"} 0
            hbd_host_lost_heartbeats_total{host="db1"} 0
            # HELP hbd_reading Numeric readings reported by hbc, by host, key and unit.
            # TYPE hbd_reading gauge
            hbd_reading{host="web1",key="cpu.usage_percent",unit="%"} 12.5
            hbd_reading{host="web1",key="fs./mnt/a\"b\\c.used_bytes",unit="B"} 4096
        "##]]
        .assert_eq(&render(&state));
    }
}
