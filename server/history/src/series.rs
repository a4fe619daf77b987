//! Series naming and the `WriteRequest` of a batch.
//!
//! Prometheus' naming conventions ask for one metric name per kind of quantity, with its
//! base unit as a suffix, and labels for the dimensions. hbd's readings are whatever
//! plugins send (`cpu.usage` in `%`, `net.eth0.rx` in `B/s`, a Nagios perfdata
//! value in `ms`), so a name per key would need a lossy mapping of free text (dots,
//! slashes, non-ASCII) to `[a-zA-Z_:][a-zA-Z0-9_:]*`, with collisions, and the unit
//! suffix would be a guess. hbd therefore sends one gauge family, as the SNMP and
//! collectd exporters do for open-ended inputs:
//!
//! - `hb_reading{host, key, unit}`: every numeric reading (booleans 0/1); `key` is the
//!   reading's key exactly as on the dashboard, `unit` as the plugin gave it (left out
//!   when empty). A key keeps its unit, so `unit` adds no series.
//! - `hb_host_up{host}`: 1 on every heartbeat, 0 when the host goes DOWN (repeated every
//!   [`DOWN_REPEAT`] while it stays DOWN, so the series does not go stale).
//! - `hb_host_level{host}`: the heartbeat's overall level as hbd's severity: OK 0,
//!   WARNING 1, UNKNOWN 2, CRITICAL 3.
//!
//! Plus the target's `labels`. The `hb_` prefix names the application (as `node_` or
//! `prometheus_` do); hbd's own health on `/metrics` keeps `hbd_`.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Duration;

use crate::beat::HostState;
use crate::queue::Entry;
use crate::wire::{self, Label, Sample, TimeSeries, WriteRequest};

/// How often `hb_host_up 0` is repeated for a DOWN host: below Prometheus' default
/// lookback (5 minutes), so the host shows as down rather than absent.
pub const DOWN_REPEAT: Duration = Duration::from_secs(60);

pub const READING: &str = "hb_reading";
pub const HOST_UP: &str = "hb_host_up";
pub const HOST_LEVEL: &str = "hb_host_level";

/// Which series one sample belongs to, borrowed from the batch.
#[derive(Hash, PartialEq, Eq, Clone, Copy)]
enum Key<'a> {
    Reading(&'a str, &'a str, &'a str),
    Up(&'a str),
    Level(&'a str),
}

/// Turns batches into requests for one target; remembers which hosts are DOWN.
pub struct Builder {
    extra: Vec<(String, String)>,
    down: HashSet<Box<str>>,
}

impl Builder {
    pub fn new(labels: &BTreeMap<String, String>) -> Builder {
        Builder {
            extra: labels.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
            down: HashSet::new(),
        }
    }

    fn labels(&self, name: &str, pairs: &[(&str, &str)]) -> Vec<Label> {
        let mut l: Vec<Label> = std::iter::once(("__name__", name))
            .chain(pairs.iter().copied())
            .filter(|(_, v)| !v.is_empty())
            .chain(self.extra.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .map(|(n, v)| Label {
                name: n.to_string(),
                value: v.to_string(),
            })
            .collect();
        // remote_write wants labels sorted by name.
        l.sort_by(|a, b| a.name.cmp(&b.name));
        l
    }

    /// The request for a batch: one `TimeSeries` per series, its samples in time order.
    pub fn request<'a>(&mut self, batch: &'a [Entry]) -> WriteRequest {
        let mut index: HashMap<Key<'a>, usize> = HashMap::new();
        let mut series: Vec<TimeSeries> = Vec::new();
        let mut add = |this: &Self, key: Key<'a>, ts: i64, value: f64| {
            let i = *index.entry(key).or_insert_with_key(|k| {
                let labels = match *k {
                    Key::Reading(h, k, u) => {
                        this.labels(READING, &[("host", h), ("key", k), ("unit", u)])
                    }
                    Key::Up(h) => this.labels(HOST_UP, &[("host", h)]),
                    Key::Level(h) => this.labels(HOST_LEVEL, &[("host", h)]),
                };
                series.push(TimeSeries {
                    labels,
                    samples: Vec::new(),
                });
                series.len() - 1
            });
            series[i].samples.push(Sample {
                value,
                timestamp: ts,
            });
        };
        for e in batch {
            let b = &*e.beat;
            let host = &*b.host;
            match b.state {
                Some(HostState::Up(level)) => {
                    add(self, Key::Up(host), b.ts_ms, 1.0);
                    add(self, Key::Level(host), b.ts_ms, f64::from(level));
                }
                Some(HostState::Down) => add(self, Key::Up(host), b.ts_ms, 0.0),
                _ => {}
            }
            for (k, u, v) in e.readings() {
                add(self, Key::Reading(host, k, u), b.ts_ms, v);
            }
        }
        for e in batch {
            let b = &*e.beat;
            match b.state {
                Some(HostState::Down) => {
                    self.down.insert(b.host.clone());
                }
                Some(_) => {
                    self.down.remove(&b.host);
                }
                None => {}
            }
        }
        WriteRequest { timeseries: series }
    }

    /// The protobuf `WriteRequest` of a batch, written straight from the batch's
    /// borrowed strings: the same series, labels and samples, in the same order and the
    /// same bytes as prost's encoding of [`Builder::request`] (tested), without the
    /// ten-odd `String`s per sample an owned `WriteRequest` needs (measured with
    /// `examples/bench_encode`). Not compressed.
    pub fn encode<'a>(&mut self, batch: &'a [Entry]) -> Vec<u8> {
        let mut index: HashMap<Key<'a>, u32> = HashMap::new();
        let mut keys: Vec<Key<'a>> = Vec::new();
        // (series, sample) in arrival order; a stable sort groups them by series.
        let mut samples: Vec<(u32, Sample)> = Vec::with_capacity(batch.len() * 32);
        let mut add = |key: Key<'a>, timestamp: i64, value: f64| {
            let i = *index.entry(key).or_insert_with_key(|k| {
                keys.push(*k);
                (keys.len() - 1) as u32
            });
            samples.push((i, Sample { value, timestamp }));
        };
        for e in batch {
            let b = &*e.beat;
            let host = &*b.host;
            match b.state {
                Some(HostState::Up(level)) => {
                    add(Key::Up(host), b.ts_ms, 1.0);
                    add(Key::Level(host), b.ts_ms, f64::from(level));
                }
                Some(HostState::Down) => add(Key::Up(host), b.ts_ms, 0.0),
                _ => {}
            }
            for (k, u, v) in e.readings() {
                add(Key::Reading(host, k, u), b.ts_ms, v);
            }
        }
        samples.sort_by_key(|(i, _)| *i);
        let mut out = Vec::with_capacity(samples.len() * 80);
        let mut labels: Vec<(&str, &str)> = Vec::with_capacity(8);
        let mut rest = &samples[..];
        for (i, key) in keys.iter().enumerate() {
            let n = rest.iter().take_while(|(s, _)| *s as usize == i).count();
            let (mine, tail) = rest.split_at(n);
            rest = tail;
            labels.clear();
            let (name, pairs): (&str, [(&str, &str); 3]) = match *key {
                Key::Reading(h, k, u) => (READING, [("host", h), ("key", k), ("unit", u)]),
                Key::Up(h) => (HOST_UP, [("host", h), ("", ""), ("", "")]),
                Key::Level(h) => (HOST_LEVEL, [("host", h), ("", ""), ("", "")]),
            };
            labels.push(("__name__", name));
            labels.extend(pairs.iter().filter(|(_, v)| !v.is_empty()).copied());
            labels.extend(self.extra.iter().map(|(k, v)| (k.as_str(), v.as_str())));
            labels.sort_by(|a, b| a.0.cmp(b.0));
            wire::put_series(&mut out, &labels, mine.iter().map(|(_, s)| s));
        }
        for e in batch {
            let b = &*e.beat;
            match b.state {
                Some(HostState::Down) => {
                    self.down.insert(b.host.clone());
                }
                Some(_) => {
                    self.down.remove(&b.host);
                }
                None => {}
            }
        }
        out
    }

    /// `hb_host_up 0` for every host still DOWN (every [`DOWN_REPEAT`]).
    pub fn down_request(&self, now_ms: i64) -> Option<WriteRequest> {
        if self.down.is_empty() {
            return None;
        }
        let timeseries = self
            .down
            .iter()
            .map(|h| TimeSeries {
                labels: self.labels(HOST_UP, &[("host", h)]),
                samples: vec![Sample {
                    value: 0.0,
                    timestamp: now_ms,
                }],
            })
            .collect();
        Some(WriteRequest { timeseries })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::beat::Beat;
    use std::sync::Arc;

    fn entry(b: Beat) -> Entry {
        let samples = b.len() + b.state_samples();
        Entry {
            beat: Arc::new(b),
            pick: None,
            samples,
        }
    }

    #[test]
    fn one_series_per_host_and_key_with_sorted_labels() {
        let mut labels = BTreeMap::new();
        labels.insert("dc".to_string(), "fra1".to_string());
        let mut b = Builder::new(&labels);
        let batch = vec![
            entry(Beat::state("web1", 1_000, HostState::Up(3))),
            entry(Beat::state("web1", 2_000, HostState::Up(0))),
            entry(Beat::state("db1", 2_000, HostState::Down)),
        ];
        let req = b.request(&batch);
        let text: Vec<String> = req
            .timeseries
            .iter()
            .map(|s| {
                let l: Vec<String> = s
                    .labels
                    .iter()
                    .map(|l| format!("{}={}", l.name, l.value))
                    .collect();
                let v: Vec<String> = s
                    .samples
                    .iter()
                    .map(|x| format!("{}@{}", x.value, x.timestamp))
                    .collect();
                format!("{} {}", l.join(","), v.join(" "))
            })
            .collect();
        expect_test::expect![[r#"
            [
                "__name__=hb_host_up,dc=fra1,host=web1 1@1000 1@2000",
                "__name__=hb_host_level,dc=fra1,host=web1 3@1000 0@2000",
                "__name__=hb_host_up,dc=fra1,host=db1 0@2000",
            ]
        "#]]
        .assert_debug_eq(&text);
        assert_eq!(b.down_request(9_000).map(|r| r.timeseries.len()), Some(1));
        b.request(&[entry(Beat::state("db1", 3_000, HostState::Up(0)))]);
        assert!(b.down_request(9_000).is_none(), "up again");
    }

    /// The hand-written encoding is prost's, byte for byte, on a batch with every kind
    /// of sample: readings with and without unit, picked readings, zero values (which
    /// protobuf leaves out), states up and down, extra labels, a host twice.
    #[test]
    fn encode_is_prosts_encoding_of_request() {
        use prost::Message;
        let mut labels = BTreeMap::new();
        labels.insert("dc".to_string(), "fra1".to_string());
        labels.insert("a_first".to_string(), "x".to_string());
        let mut batch = Vec::new();
        for (i, host) in ["web1", "db1", "web1"].iter().enumerate() {
            let readings: Vec<(String, String, f64)> = (0..6)
                .map(|k| {
                    let unit = if k % 2 == 0 { "%" } else { "" };
                    (format!("cpu.m{k}"), unit.to_string(), (i * k) as f64 - 2.5)
                })
                .collect();
            let b = Beat::of_readings(host, 1_000 * i as u64, i as u8, &readings);
            batch.push(entry(b));
        }
        batch.push(entry(Beat::state("db1", 4_000, HostState::Down)));
        let b = Beat::of_readings(
            "pick",
            5_000,
            0,
            &[
                ("a".into(), "".into(), 1.0),
                ("b".into(), "B".into(), 0.0),
                ("c".into(), "".into(), -0.0),
            ],
        );
        batch.push(Entry {
            samples: 2 + b.state_samples(),
            beat: Arc::new(b),
            pick: Some(vec![0, 2].into_boxed_slice()),
        });
        let mut one = Builder::new(&labels);
        let mut two = Builder::new(&labels);
        let want = one.request(&batch).encode_to_vec();
        let got = two.encode(&batch);
        assert_eq!(got, want);
        assert_eq!(
            WriteRequest::decode(got.as_slice()).map(|r| r.timeseries.len()),
            // web1 and db1: up, level, 6 readings each; pick: up, level, 2 picked.
            Ok(8 + 8 + 4)
        );
        assert_eq!(one.down.len(), 1);
        assert_eq!(
            two.down.len(),
            1,
            "DOWN hosts are remembered as by request()"
        );
    }
}
