//! Network interfaces off Linux, from `sysinfo` (`GetIfTable2` on Windows, `getifaddrs`
//! link data on macOS). Byte and packet rates and error counts as on Linux; neither
//! system reports drops through sysinfo, so `rx_drops`/`tx_drops` are left out.

use std::collections::HashMap;
use std::time::Instant;

use hbc_plugin_api::Reading;
use hbc_plugin_support::{per_second, NameFilter};

/// Cumulative counters of one interface.
#[derive(Clone, Copy)]
struct Counters {
    rx_bytes: u64,
    tx_bytes: u64,
    rx_packets: u64,
    tx_packets: u64,
}

pub struct State {
    networks: sysinfo::Networks,
    previous: HashMap<String, Counters>,
    previous_at: Instant,
}

impl State {
    pub fn new() -> State {
        let mut state = State {
            networks: sysinfo::Networks::new_with_refreshed_list(),
            previous: HashMap::new(),
            previous_at: Instant::now(),
        };
        // The baseline, as Linux takes one in `new`.
        let _ = state.sample(None);
        state
    }

    /// Readings since the previous sample; `filter` `None` takes every interface.
    pub fn sample(&mut self, filter: Option<&NameFilter>) -> Vec<Reading> {
        self.networks.refresh(true);
        let at = Instant::now();
        let seconds = at.saturating_duration_since(self.previous_at).as_secs_f64();
        let mut readings = Vec::new();
        let mut seen = HashMap::new();
        for (name, data) in &self.networks {
            if filter.is_some_and(|f| !f.accepts(name)) {
                continue;
            }
            let now = Counters {
                rx_bytes: data.total_received(),
                tx_bytes: data.total_transmitted(),
                rx_packets: data.total_packets_received(),
                tx_packets: data.total_packets_transmitted(),
            };
            if let Some(before) = self.previous.get(name) {
                let rate = |key: &str, b: u64, n: u64, unit: &str| {
                    Reading::number(
                        format!("network.{name}.{key}"),
                        per_second(b, n, seconds),
                        unit,
                    )
                };
                readings.push(rate("rx_bytes_per_s", before.rx_bytes, now.rx_bytes, "B/s"));
                readings.push(rate("tx_bytes_per_s", before.tx_bytes, now.tx_bytes, "B/s"));
                readings.push(rate(
                    "rx_packets_per_s",
                    before.rx_packets,
                    now.rx_packets,
                    "1/s",
                ));
                readings.push(rate(
                    "tx_packets_per_s",
                    before.tx_packets,
                    now.tx_packets,
                    "1/s",
                ));
            }
            let count = |key: &str, v: u64| {
                Reading::integer(
                    format!("network.{name}.{key}"),
                    i64::try_from(v).unwrap_or(i64::MAX),
                    "",
                )
            };
            readings.push(count("rx_errors", data.total_errors_on_received()));
            readings.push(count("tx_errors", data.total_errors_on_transmitted()));
            seen.insert(name.clone(), now);
        }
        self.previous = seen;
        self.previous_at = at;
        readings
    }
}
