//! What the ingest path queues: one datagram's numeric readings (or a change of a host's
//! liveness) copied into one allocation of text plus a small vector, so queuing costs
//! two allocations however many readings a datagram holds.

use hb_proto::{Packet, ValueRef};

/// A host's liveness as the `hb_host_up` / `hb_host_level` series show it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum HostState {
    /// Part 0 of a heartbeat: up, with the heartbeat's overall level (severity 0-3).
    Up(u8),
    /// Passed its liveness deadline: `hb_host_up` 0 (repeated while DOWN).
    Down,
    /// Removed through the API: no more samples.
    Forgotten,
}

/// One numeric reading: where its key and unit end in [`Beat::text`], and its value.
#[derive(Debug, Clone, Copy)]
struct Item {
    key_end: u32,
    unit_end: u32,
    value: f64,
}

/// One queued datagram (or state change) of one host.
#[derive(Debug)]
pub struct Beat {
    pub host: Box<str>,
    /// hbd's receive time, Unix ms.
    pub ts_ms: i64,
    pub state: Option<HostState>,
    /// Host name excluded: keys and units of the readings, back to back.
    text: String,
    items: Vec<Item>,
}

/// A reading's value as a sample: numbers as they are, booleans 0/1, text none.
fn sample_value(v: &ValueRef<'_>) -> Option<f64> {
    match *v {
        ValueRef::F64(f) => Some(f),
        ValueRef::I64(i) => Some(i as f64),
        ValueRef::Bool(b) => Some(f64::from(u8::from(b))),
        ValueRef::Text(_) => None,
    }
}

/// OK 0, WARNING 1, UNKNOWN 2, CRITICAL 3: hbd's severity order, so `max` and `>= 2`
/// mean what an operator expects.
pub fn severity(l: hb_proto::Level) -> u8 {
    hbd_core::registry::LevelName::from(l).severity()
}

impl Beat {
    /// The numeric readings of a datagram with a key the registry accepts
    /// ([`hbd_core::text::valid_key`]); part 0 also carries the host's state.
    pub fn of(p: &Packet<'_>, now_ms: u64) -> Beat {
        let mut text = String::new();
        let mut items = Vec::with_capacity(p.readings.len());
        for r in &p.readings {
            let Some(value) = sample_value(&r.value) else {
                continue;
            };
            if !hbd_core::text::valid_key(r.key)
                || text.len() + r.key.len() + r.unit.len() > u32::MAX as usize
            {
                continue;
            }
            text.push_str(r.key);
            let key_end = text.len() as u32;
            text.push_str(r.unit);
            items.push(Item {
                key_end,
                unit_end: text.len() as u32,
                value,
            });
        }
        Beat {
            host: p.host.into(),
            ts_ms: now_ms as i64,
            state: (p.part == 0).then(|| HostState::Up(severity(p.level))),
            text,
            items,
        }
    }

    /// Part 0 of a heartbeat with these `(key, unit, value)` readings (tests elsewhere
    /// in the crate).
    #[cfg(test)]
    pub(crate) fn of_readings(
        host: &str,
        now_ms: u64,
        severity: u8,
        readings: &[(String, String, f64)],
    ) -> Beat {
        let mut text = String::new();
        let mut items = Vec::new();
        for (k, u, value) in readings {
            text.push_str(k);
            let key_end = text.len() as u32;
            text.push_str(u);
            items.push(Item {
                key_end,
                unit_end: text.len() as u32,
                value: *value,
            });
        }
        Beat {
            host: host.into(),
            ts_ms: now_ms as i64,
            state: Some(HostState::Up(severity)),
            text,
            items,
        }
    }

    /// A change of liveness only.
    pub fn state(host: &str, now_ms: u64, state: HostState) -> Beat {
        Beat {
            host: host.into(),
            ts_ms: now_ms as i64,
            state: Some(state),
            text: String::new(),
            items: Vec::new(),
        }
    }

    pub fn len(&self) -> usize {
        self.items.len()
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty() && self.state.is_none()
    }

    /// Reading `i`: key, unit, value.
    pub fn reading(&self, i: usize) -> (&str, &str, f64) {
        let it = self.items[i];
        let key_start = if i == 0 {
            0
        } else {
            self.items[i - 1].unit_end as usize
        };
        (
            &self.text[key_start..it.key_end as usize],
            &self.text[it.key_end as usize..it.unit_end as usize],
            it.value,
        )
    }

    /// The samples the host state makes: `hb_host_up` and, when up, `hb_host_level`.
    pub fn state_samples(&self) -> usize {
        match self.state {
            Some(HostState::Up(_)) => 2,
            Some(HostState::Down) => 1,
            _ => 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hb_proto::{Level, ReadingRef};

    fn packet<'a>(part: u8, readings: Vec<ReadingRef<'a>>) -> Packet<'a> {
        Packet {
            signed: false,
            instance: 1,
            seq: 1,
            sent_ms: 0,
            interval_ms: 10_000,
            level: Level::Warning,
            part,
            parts: 2,
            host: "web1",
            readings,
        }
    }

    fn r<'a>(key: &'a str, value: ValueRef<'a>, unit: &'a str) -> ReadingRef<'a> {
        ReadingRef {
            key,
            value,
            unit,
            level: Level::Ok,
            message: "",
            threshold: "",
        }
    }

    #[test]
    fn keeps_numbers_and_booleans_with_valid_keys() {
        let p = packet(
            0,
            vec![
                r("cpu.usage", ValueRef::F64(12.5), "%"),
                r("os.name", ValueRef::Text("Debian"), ""),
                r("bad\nkey", ValueRef::I64(1), ""),
                r("disk.ok", ValueRef::Bool(true), ""),
                r("net.rx", ValueRef::I64(42), "B/s"),
            ],
        );
        let b = Beat::of(&p, 1_000);
        assert_eq!(b.len(), 3);
        assert_eq!(b.reading(0), ("cpu.usage", "%", 12.5));
        assert_eq!(b.reading(1), ("disk.ok", "", 1.0));
        assert_eq!(b.reading(2), ("net.rx", "B/s", 42.0));
        assert_eq!(b.state, Some(HostState::Up(1)));
        assert_eq!(b.state_samples(), 2);
        let later = Beat::of(&packet(1, vec![]), 1_000);
        assert_eq!(later.state, None);
        assert!(later.is_empty());
    }
}
