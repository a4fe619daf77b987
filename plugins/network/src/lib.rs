//! The `network` monitor plugin: traffic per interface from `/proc/net/dev` on Linux, from
//! `sysinfo` elsewhere (`other.rs`: no drop counts there; docs/platforms.md).
//!
//! Readings, for each interface `<if>` (keys start with `network.`, the plugin's name):
//! - `network.<if>.rx_bytes_per_s`, `network.<if>.tx_bytes_per_s` (B/s)
//! - `network.<if>.rx_packets_per_s`, `network.<if>.tx_packets_per_s` (1/s)
//! - `network.<if>.rx_errors`, `network.<if>.tx_errors`, `network.<if>.rx_drops`,
//!   `network.<if>.tx_drops`: cumulative counts since the interface came up, integers.
//!
//! An interface name may hold dots (`eth0.100` for a VLAN); the reading's name is always
//! the part after the last dot.
//!
//! Options: `include` and `exclude`, lists of interface names or prefixes ending in `*`
//! (see [`NameFilter`]); by default `lo` is left out.
//!
//! Rates compare two samples: the first is taken in `new`, and a `collect` less than
//! 100 ms after the previous sample waits for the rest of those 100 ms first. An
//! interface that just appeared gets rates from its second sample on.

// Off Linux the `/proc/net/dev` parser is compiled but unused.
#![cfg_attr(not(target_os = "linux"), allow(dead_code))]

mod netdev;
#[cfg(not(target_os = "linux"))]
mod other;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use hbc_plugin_api::{Options, Plugin, Reading};
use hbc_plugin_support::{KeptFile, NameFilter};

use crate::netdev::{parse_net_dev, rates, NetCounters, NetRates};

const PROC_NET_DEV: &str = "/proc/net/dev";

/// Interfaces left out unless the options say otherwise.
const DEFAULT_EXCLUDE: &[&str] = &["lo"];

/// The shortest time between the two samples of a rate.
const MIN_INTERVAL: Duration = Duration::from_millis(100);

/// `plugins.network.options` in hbc's config.
#[derive(serde::Deserialize, Default, Debug)]
#[serde(default, deny_unknown_fields)]
struct NetworkOptions {
    /// Only these interfaces (names, or prefixes ending in `*`).
    include: Vec<String>,
    /// Not these interfaces; replaces the default `lo`.
    exclude: Option<Vec<String>>,
}

pub struct NetworkPlugin {
    filter: NameFilter,
    /// The last counters of each reported interface.
    previous: HashMap<String, NetCounters>,
    previous_at: Instant,
    /// Reused for every read, so a collect allocates little.
    buffer: String,
    /// Kept open: a read is two system calls instead of six (`KeptFile`).
    proc_net_dev: KeptFile,
    #[cfg(not(target_os = "linux"))]
    other: other::State,
}

impl Plugin for NetworkPlugin {
    const NAME: &'static str = "network";
    const DESCRIPTION: &'static str =
        "Network interfaces: bytes and packets per second, errors and drops";

    fn new(options: &Options) -> Result<Self, String> {
        let options = options
            .parse::<NetworkOptions>()
            .map_err(|e| format!("network plugin: {e}"))?;
        let filter = NameFilter::new(options.include, options.exclude, DEFAULT_EXCLUDE)
            .map_err(|e| format!("network plugin: {e}"))?;
        #[allow(unused_mut)] // only Linux takes a baseline
        let mut plugin = NetworkPlugin {
            filter,
            previous: HashMap::new(),
            previous_at: Instant::now(),
            buffer: String::new(),
            proc_net_dev: KeptFile::new(PROC_NET_DEV),
            #[cfg(not(target_os = "linux"))]
            other: other::State::new(),
        };
        #[cfg(target_os = "linux")]
        plugin.sample()?;
        Ok(plugin)
    }

    #[cfg(target_os = "linux")]
    fn collect(&mut self) -> Result<Vec<Reading>, String> {
        hbc_plugin_support::wait_until_elapsed(self.previous_at, MIN_INTERVAL);
        self.sample()
    }

    #[cfg(not(target_os = "linux"))]
    fn collect(&mut self) -> Result<Vec<Reading>, String> {
        hbc_plugin_support::wait_until_elapsed(self.previous_at, MIN_INTERVAL);
        self.previous_at = Instant::now();
        Ok(self.other.sample(Some(&self.filter)))
    }
}

// Off when bundled into `plugins/system` (one library exporting several plugins).
#[cfg(feature = "export")]
hbc_plugin_api::export_plugin!(NetworkPlugin);

impl NetworkPlugin {
    /// Reads `/proc/net/dev`, returns the readings since the previous sample and keeps
    /// this one as the next baseline.
    fn sample(&mut self) -> Result<Vec<Reading>, String> {
        // Taken out so the parsed names can borrow it while `self` changes.
        let mut buffer = std::mem::take(&mut self.buffer);
        let result = self.sample_from(&mut buffer);
        self.buffer = buffer;
        result
    }

    fn sample_from(&mut self, buffer: &mut String) -> Result<Vec<Reading>, String> {
        self.proc_net_dev.read_into(Self::NAME, buffer)?;
        let at = Instant::now();
        let interfaces = parse_net_dev(buffer)
            .map_err(|e| format!("network plugin: cannot parse {PROC_NET_DEV}: {e}"))?;

        let elapsed = at.saturating_duration_since(self.previous_at);
        let mut readings = Vec::new();
        let mut reported = 0;
        for (name, now) in &interfaces {
            if !self.filter.accepts(name) {
                continue;
            }
            reported += 1;
            match self.previous.get_mut(*name) {
                Some(before) => {
                    readings.extend(rate_readings(name, &rates(before, now, elapsed)));
                    *before = *now;
                }
                None => {
                    self.previous.insert(name.to_string(), *now);
                }
            }
            readings.extend(count_readings(name, now));
        }
        // Every reported interface is in `previous` now; more entries means some went away.
        if self.previous.len() > reported {
            self.previous
                .retain(|name, _| interfaces.iter().any(|(n, _)| n == name));
        }
        self.previous_at = at;
        Ok(readings)
    }
}

fn rate_readings(name: &str, rates: &NetRates) -> [Reading; 4] {
    [
        Reading::number(
            format!("network.{name}.rx_bytes_per_s"),
            rates.rx_bytes_per_s,
            "B/s",
        ),
        Reading::number(
            format!("network.{name}.tx_bytes_per_s"),
            rates.tx_bytes_per_s,
            "B/s",
        ),
        Reading::number(
            format!("network.{name}.rx_packets_per_s"),
            rates.rx_packets_per_s,
            "1/s",
        ),
        Reading::number(
            format!("network.{name}.tx_packets_per_s"),
            rates.tx_packets_per_s,
            "1/s",
        ),
    ]
}

fn count_readings(name: &str, counters: &NetCounters) -> [Reading; 4] {
    let count = |suffix: &str, value: u64| {
        Reading::integer(
            format!("network.{name}.{suffix}"),
            i64::try_from(value).unwrap_or(i64::MAX),
            "",
        )
    };
    [
        count("rx_errors", counters.rx_errors),
        count("tx_errors", counters.tx_errors),
        count("rx_drops", counters.rx_drops),
        count("tx_drops", counters.tx_drops),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use hbc_plugin_api::Value;

    fn new_plugin(json: &str) -> Result<NetworkPlugin, String> {
        NetworkPlugin::new(&Options::from_json(json)?)
    }

    #[test]
    fn readings_of_an_interface() {
        let rates = NetRates {
            rx_bytes_per_s: 1.0,
            tx_bytes_per_s: 2.0,
            rx_packets_per_s: 3.0,
            tx_packets_per_s: 4.0,
        };
        let counters = NetCounters {
            rx_errors: 5,
            tx_errors: 6,
            rx_drops: 7,
            tx_drops: 8,
            ..NetCounters::default()
        };
        let r: Vec<Reading> = rate_readings("eth0", &rates)
            .into_iter()
            .chain(count_readings("eth0", &counters))
            .collect();
        let got: Vec<(&str, &Value, &str)> = r
            .iter()
            .map(|r| (r.key.as_str(), &r.value, r.unit.as_str()))
            .collect();
        assert_eq!(
            got,
            [
                ("network.eth0.rx_bytes_per_s", &Value::F64(1.0), "B/s"),
                ("network.eth0.tx_bytes_per_s", &Value::F64(2.0), "B/s"),
                ("network.eth0.rx_packets_per_s", &Value::F64(3.0), "1/s"),
                ("network.eth0.tx_packets_per_s", &Value::F64(4.0), "1/s"),
                ("network.eth0.rx_errors", &Value::I64(5), ""),
                ("network.eth0.tx_errors", &Value::I64(6), ""),
                ("network.eth0.rx_drops", &Value::I64(7), ""),
                ("network.eth0.tx_drops", &Value::I64(8), ""),
            ]
        );
    }

    #[test]
    fn defaults_skip_loopback() {
        let f = NameFilter::new(Vec::new(), None, DEFAULT_EXCLUDE).expect("filter");
        assert!(f.accepts("eth0"));
        assert!(f.accepts("lo0"));
        assert!(!f.accepts("lo"));
    }

    #[test]
    fn bad_options_are_refused() {
        let err = new_plugin(r#"{"include": "eth0"}"#)
            .err()
            .unwrap_or_default();
        assert!(
            err.starts_with("network plugin:") && err.contains("sequence"),
            "{err}"
        );
        let err = new_plugin(r#"{"exclude": ["*e"]}"#)
            .err()
            .unwrap_or_default();
        assert!(err.contains("*e"), "{err}");
    }

    /// The interfaces `/proc/net/dev` lists, without `lo`.
    #[cfg(target_os = "linux")]
    fn interfaces_here() -> Vec<String> {
        std::fs::read_to_string(PROC_NET_DEV)
            .expect("read /proc/net/dev")
            .lines()
            .filter(|l| !l.contains('|'))
            .filter_map(|l| l.split_once(':'))
            .map(|(name, _)| name.trim().to_string())
            .filter(|name| name != "lo")
            .collect()
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn collects_on_this_machine() {
        let mut plugin = new_plugin("{}").expect("new");
        let started = Instant::now();
        let readings = plugin.collect().expect("collect");
        assert!(started.elapsed() >= MIN_INTERVAL / 2);

        let interfaces = interfaces_here();
        assert_eq!(readings.len(), interfaces.len() * 8, "{readings:?}");
        for name in &interfaces {
            for suffix in [
                "rx_bytes_per_s",
                "tx_bytes_per_s",
                "rx_packets_per_s",
                "tx_packets_per_s",
            ] {
                let key = format!("network.{name}.{suffix}");
                let value = readings
                    .iter()
                    .find(|r| r.key == key.as_str())
                    .and_then(|r| r.value.as_f64());
                let Some(value) = value else {
                    panic!("no reading {key} in {readings:?}");
                };
                assert!(value.is_finite() && value >= 0.0, "{key} = {value}");
            }
            let key = format!("network.{name}.rx_errors");
            let errors = readings
                .iter()
                .find(|r| r.key == key.as_str())
                .map(|r| &r.value);
            assert!(
                matches!(errors, Some(Value::I64(n)) if *n >= 0),
                "{key}: {errors:?}"
            );
        }
        assert!(readings.iter().all(|r| !r.key.starts_with("network.lo.")));
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn loopback_counts_its_own_traffic() {
        let mut plugin = new_plugin(r#"{"include": ["lo"]}"#).expect("new");
        // Traffic over loopback between the baseline and the collect.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let address = listener.local_addr().expect("address");
        let sender = std::thread::spawn(move || {
            use std::io::Write;
            let mut stream = std::net::TcpStream::connect(address).expect("connect");
            stream.write_all(&[7u8; 256 * 1024]).expect("write");
        });
        let (mut stream, _) = listener.accept().expect("accept");
        let mut received = Vec::new();
        std::io::Read::read_to_end(&mut stream, &mut received).expect("read");
        sender.join().expect("sender thread");
        assert_eq!(received.len(), 256 * 1024);

        let readings = plugin.collect().expect("collect");
        assert!(readings.iter().all(|r| r.key.starts_with("network.lo.")));
        let rx = readings
            .iter()
            .find(|r| r.key == "network.lo.rx_bytes_per_s")
            .and_then(|r| r.value.as_f64())
            .unwrap_or(0.0);
        // 256 KiB in at most a few seconds.
        assert!(
            rx > 256.0 * 1024.0 / 10.0,
            "network.lo.rx_bytes_per_s = {rx}"
        );
    }
}
