//! `GET /metrics`: hbd's own counters and per-host gauges in the Prometheus text format
//! (version 0.0.4), so an existing Prometheus can keep long-term history.
//!
//! The answer is streamed ([`Scrape`] yields it a chunk at a time as the client reads):
//! fleet-level families first (counters, `hbd_hosts`); the per-host families only with
//! `metrics_per_host: true`, one family after the other, each read from the registry
//! [`HOSTS_PER_LOCK`] hosts at a time under a short lock and sent in chunks of about
//! [`CHUNK_BYTES`]. So a scrape holds neither the lock nor memory in proportion to the
//! fleet (100,000 hosts with their readings are ~260 MB of text).

use std::fmt::{Display, Write};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::registry::{Host, LevelName, Status};
use crate::state::{Shared, State};

/// Hosts read under one lock of the registry for the per-host families.
pub const HOSTS_PER_LOCK: usize = 1000;
/// A chunk of the answer is handed to the connection once it holds this much text (one
/// host's readings may take it past this: at most `max_readings_per_host` lines).
pub const CHUNK_BYTES: usize = 64 << 10;

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

pub(crate) fn head(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

/// A metric with a single sample: `name value`.
pub(crate) fn single(out: &mut String, name: &str, kind: &str, help: &str, value: impl Display) {
    head(out, name, kind, help);
    let _ = writeln!(out, "{name} {value}");
}

/// A metric whose samples differ by one label: `name{label="x"} value` for each `(x,
/// value)`. The label values must be escaped already.
pub(crate) fn labelled<X: Display, V: Display>(
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

/// The fleet-level counters (no lock held but for a copy of the reading drops).
fn counters(state: &State, out: &mut String) {
    let c = &state.counters;
    let load = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
    labelled(
        out,
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
        out,
        "hbd_datagrams_accepted_total",
        "counter",
        "Heartbeat datagrams verified and applied.",
        load(&c.accepted),
    );
    labelled(
        out,
        "hbd_datagrams_dropped_total",
        "counter",
        "Heartbeat datagrams dropped, by reason.",
        "reason",
        c.dropped.iter().map(|(r, n)| (r.as_str(), n)),
    );
    let reading_drops = state.registry().reading_drops;
    labelled(
        out,
        "hbd_readings_dropped_total",
        "counter",
        "Readings of applied heartbeats that were not stored, by reason.",
        "reason",
        reading_drops.iter(),
    );
    single(
        out,
        "hbd_events_total",
        "counter",
        "Events published.",
        load(&c.events),
    );
    let js = &state.journal.stats;
    single(
        out,
        "hbd_journal_appended_total",
        "counter",
        "Events written to the journal.",
        load(&js.appended),
    );
    single(
        out,
        "hbd_journal_write_errors_total",
        "counter",
        "Failed journal writes.",
        load(&js.write_errors),
    );
    single(
        out,
        "hbd_journal_pending",
        "gauge",
        "Events waiting to be written (disk failing).",
        load(&js.pending),
    );
    single(
        out,
        "hbd_journal_dropped_total",
        "counter",
        "Events the journal could not keep.",
        load(&js.dropped) + load(&c.journal_dropped),
    );
    single(
        out,
        "hbd_websocket_clients",
        "gauge",
        "Connected WebSocket clients.",
        load(&c.ws_clients),
    );
    single(
        out,
        "hbd_websocket_messages_total",
        "counter",
        "Live messages published.",
        load(&c.ws_messages),
    );
    single(
        out,
        "hbd_websocket_slow_clients_dropped_total",
        "counter",
        "Clients disconnected for falling behind.",
        load(&c.ws_dropped_slow),
    );
    single(
        out,
        "hbd_websocket_resyncs_total",
        "counter",
        "Fresh snapshots sent to clients that fell behind, instead of closing them.",
        load(&c.ws_resyncs),
    );
    single(
        out,
        "hbd_http_rate_limited_total",
        "counter",
        "HTTP requests answered 429 Too Many Requests (api_rate_limit).",
        load(&c.http_limited),
    );
}

/// The per-host families: name, type, help.
const PER_HOST: [(&str, &str, &str); 5] = [
    ("hbd_host_up", "gauge", "1 if the host is UP."),
    (
        "hbd_host_last_seen_seconds",
        "gauge",
        "Unix time of the host's last heartbeat.",
    ),
    (
        "hbd_host_level",
        "gauge",
        "Overall level: 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN.",
    ),
    (
        "hbd_host_lost_heartbeats_total",
        "counter",
        "Heartbeats missing from the sequence.",
    ),
    (
        "hbd_reading",
        "gauge",
        "Numeric readings reported by hbc, by host, key and unit.",
    ),
];

/// Appends host `h`'s samples of per-host family `family` (an index into [`PER_HOST`]).
fn host_lines(out: &mut String, family: usize, h: &Host) {
    let host = escape(&h.name);
    match family {
        0 => {
            let _ = writeln!(
                out,
                "hbd_host_up{{host=\"{host}\"}} {}",
                u8::from(h.status == Status::Up)
            );
        }
        1 => {
            if let Some(t) = h.last_seen_ms {
                let _ = writeln!(
                    out,
                    "hbd_host_last_seen_seconds{{host=\"{host}\"}} {}",
                    float(t as f64 / 1000.0)
                );
            }
        }
        2 => {
            let level = match h.level {
                LevelName::Ok => 0,
                LevelName::Warning => 1,
                LevelName::Critical => 2,
                LevelName::Unknown => 3,
            };
            let _ = writeln!(out, "hbd_host_level{{host=\"{host}\"}} {level}");
        }
        3 => {
            let _ = writeln!(
                out,
                "hbd_host_lost_heartbeats_total{{host=\"{host}\"}} {}",
                h.lost
            );
        }
        _ => {
            for r in &h.readings {
                if let Some(v) = r.number() {
                    let _ = writeln!(
                        out,
                        "hbd_reading{{host=\"{host}\",key=\"{}\",unit=\"{}\"}} {}",
                        escape(r.key()),
                        escape(r.unit()),
                        float(v)
                    );
                }
            }
        }
    }
}

/// Where a [`Scrape`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    /// Counters, `extra`, then `hbd_hosts`.
    Fleet,
    /// Per-host family `family` (index into [`PER_HOST`]), from registry slot `slot`.
    PerHost {
        family: usize,
        slot: usize,
    },
    Done,
}

/// One scrape of `/metrics`, as chunks of text: an iterator the HTTP body pulls from as
/// the client reads, so only one chunk exists at a time.
pub struct Scrape {
    state: Shared,
    per_host: bool,
    /// Fleet-level families of other parts (security, journal queries, WebSocket), after
    /// the counters.
    extra: String,
    step: Step,
}

impl Scrape {
    pub fn new(state: Shared, per_host: bool, extra: String) -> Scrape {
        Scrape {
            state,
            per_host,
            extra,
            step: Step::Fleet,
        }
    }

    /// The counters, `extra` and `hbd_hosts` (counted [`HOSTS_PER_LOCK`] hosts at a time).
    fn fleet(&mut self) -> String {
        let mut out = String::with_capacity(16 << 10);
        counters(&self.state, &mut out);
        // ---- Subsystems' own families (history: hbd_history_*; docs/history.md). ----
        for sink in &self.state.sinks {
            sink.metrics(&mut out);
        }
        // ---- end of subsystems' families ----
        out.push_str(&std::mem::take(&mut self.extra));
        let (mut up, mut down, mut never) = (0u64, 0u64, 0u64);
        let mut start = 0;
        loop {
            let reg = self.state.registry();
            let end = (start + HOSTS_PER_LOCK).min(reg.slots());
            for h in (start..end).filter_map(|i| reg.slot(i)) {
                match h.status {
                    Status::Up => up += 1,
                    Status::Down => down += 1,
                    Status::NeverSeen => never += 1,
                }
            }
            if end >= reg.slots() {
                break;
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
        out
    }

    /// The next chunk of family `family` from `slot`: at most [`HOSTS_PER_LOCK`] hosts
    /// under one lock, fewer once [`CHUNK_BYTES`] are written. Returns the chunk and the
    /// next slot (`None` at the end of the registry).
    fn per_host(&self, family: usize, slot: usize) -> (String, Option<usize>) {
        let mut out = String::with_capacity(CHUNK_BYTES + 1024);
        if slot == 0 {
            let (name, kind, help) = PER_HOST[family];
            head(&mut out, name, kind, help);
        }
        let reg = self.state.registry();
        let slots = reg.slots();
        let end = (slot + HOSTS_PER_LOCK).min(slots);
        let mut i = slot;
        while i < end && out.len() < CHUNK_BYTES {
            if let Some(h) = reg.slot(i) {
                host_lines(&mut out, family, h);
            }
            i += 1;
        }
        (out, (i < slots).then_some(i))
    }
}

impl Iterator for Scrape {
    type Item = String;

    fn next(&mut self) -> Option<String> {
        match self.step {
            Step::Fleet => {
                let out = self.fleet();
                self.step = if self.per_host {
                    Step::PerHost { family: 0, slot: 0 }
                } else {
                    Step::Done
                };
                Some(out)
            }
            Step::PerHost { family, slot } => {
                let (out, next) = self.per_host(family, slot);
                self.step = match next {
                    Some(slot) => Step::PerHost { family, slot },
                    None if family + 1 < PER_HOST.len() => Step::PerHost {
                        family: family + 1,
                        slot: 0,
                    },
                    None => Step::Done,
                };
                Some(out)
            }
            Step::Done => None,
        }
    }
}

/// The whole answer as one string (tests, and small fleets).
pub fn render(state: &Shared, per_host: bool) -> String {
    Scrape::new(state.clone(), per_host, String::new()).collect()
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
        let state = std::sync::Arc::new(State::new(
            Config::default(),
            registry,
            writer,
            tmp.path().to_path_buf(),
            Vec::new(),
        ));
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
            # HELP hbd_websocket_resyncs_total Fresh snapshots sent to clients that fell behind, instead of closing them.
            # TYPE hbd_websocket_resyncs_total counter
            hbd_websocket_resyncs_total 0
            # HELP hbd_http_rate_limited_total HTTP requests answered 429 Too Many Requests (api_rate_limit).
            # TYPE hbd_http_rate_limited_total counter
            hbd_http_rate_limited_total 0
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
        .assert_eq(&render(&state, true));
        // By default the fleet-level families only: the same text up to the per-host ones.
        let fleet = render(&state, false);
        assert!(
            fleet.ends_with("hbd_hosts{status=\"never_seen\"} 1\n"),
            "{fleet}"
        );
        assert!(render(&state, true).starts_with(&fleet));
        assert!(!fleet.contains("hbd_host_up"));
    }

    /// 2,500 hosts: every family comes once and whole, each host once in it, and no chunk
    /// is much larger than CHUNK_BYTES or covers more than HOSTS_PER_LOCK hosts.
    #[test]
    fn streams_families_in_bounded_chunks() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let (journal, _) = Journal::open(JournalConfig::new(tmp.path()), |_| {}).expect("open");
        let writer = Writer::spawn(journal, 16).expect("spawn");
        let mut registry = Registry::new(Settings::default());
        let hosts = 2500;
        for i in 0..hosts {
            let readings = (0..8)
                .map(|k| reading(&format!("disk.sd{k}.used_percent"), Value::F64(1.0), "%"))
                .collect();
            beat(
                &mut registry,
                &format!("host{i:05}.example.org"),
                readings,
                1_700_000_000_000,
            );
        }
        let state = std::sync::Arc::new(State::new(
            Config::default(),
            registry,
            writer,
            tmp.path().to_path_buf(),
            Vec::new(),
        ));
        let chunks: Vec<String> = Scrape::new(state.clone(), true, String::new()).collect();
        assert!(
            chunks.len() > 5 * hosts / HOSTS_PER_LOCK,
            "{}",
            chunks.len()
        );
        for c in &chunks[1..] {
            assert!(c.len() < CHUNK_BYTES + 2048, "{}", c.len());
            let hosts_in = c.lines().filter(|l| l.starts_with("hbd_host_up{")).count();
            assert!(hosts_in <= HOSTS_PER_LOCK);
        }
        let text: String = chunks.concat();
        for (name, _, _) in PER_HOST {
            let heads: Vec<usize> = text
                .lines()
                .enumerate()
                .filter(|(_, l)| {
                    *l == format!(
                        "# TYPE {name} {}",
                        if name.ends_with("_total") {
                            "counter"
                        } else {
                            "gauge"
                        }
                    )
                })
                .map(|(i, _)| i)
                .collect();
            assert_eq!(heads.len(), 1, "{name}");
            let samples: Vec<&str> = text
                .lines()
                .filter(|l| l.starts_with(&format!("{name}{{")))
                .collect();
            let want = if name == "hbd_reading" {
                hosts * 8
            } else {
                hosts
            };
            assert_eq!(samples.len(), want, "{name}");
            // Contiguous: every sample of the family right after its header.
            let lines: Vec<&str> = text.lines().collect();
            let block = &lines[heads[0] + 1..heads[0] + 1 + want];
            assert!(
                block.iter().all(|l| l.starts_with(&format!("{name}{{"))),
                "{name}"
            );
        }
    }
}
