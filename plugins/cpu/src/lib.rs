//! The `cpu` monitor plugin: CPU usage from `/proc/stat` deltas and load averages from
//! `/proc/loadavg` on Linux; elsewhere from the system's own calls (`other.rs`, where
//! Windows and macOS leave readings out: docs/platforms.md).
//!
//! Readings:
//! - `cpu.usage_percent` (%): time neither idle nor waiting for I/O, all cores together.
//! - `cpu.<N>.usage_percent` (%): the same for core N (`cpu0` gives `cpu.0.usage_percent`);
//!   only with the option `per_core` (default true).
//! - `cpu.iowait_percent` (%): time idle with I/O outstanding, all cores together.
//! - `cpu.load1`, `cpu.load5`, `cpu.load15`: load averages, no unit.
//! - `cpu.cores`: the number of online cores (`cpuN` lines), an integer.
//!
//! Usage is a ratio of two samples: the first is taken in `new`, and a `collect` less than
//! 100 ms after the previous sample waits for the rest of those 100 ms first.

// Off Linux the `/proc` parsers are compiled but unused.
#![cfg_attr(not(target_os = "linux"), allow(dead_code))]

mod loadavg;
#[cfg(not(target_os = "linux"))]
mod other;
mod stat;

use std::time::{Duration, Instant};

use hbc_plugin_api::{Options, Plugin, Reading};
use hbc_plugin_support::KeptFile;

#[cfg(target_os = "linux")]
use crate::loadavg::parse_loadavg;
use crate::loadavg::LoadAvg;
use crate::stat::{parse_proc_stat, usage, ProcStat};

const PROC_STAT: &str = "/proc/stat";
const PROC_LOADAVG: &str = "/proc/loadavg";

/// The shortest time between the two samples of a usage figure; below it the tick counts
/// are too coarse to mean anything.
const MIN_INTERVAL: Duration = Duration::from_millis(100);

/// `plugins.cpu.options` in hbc's config.
#[derive(serde::Deserialize, Debug)]
#[serde(default, deny_unknown_fields)]
struct CpuOptions {
    /// Report `cpu.<N>.usage_percent` for each core.
    per_core: bool,
}

impl Default for CpuOptions {
    fn default() -> Self {
        CpuOptions { per_core: true }
    }
}

/// One read of `/proc/stat`, with when it was taken.
struct Sample {
    at: Instant,
    stat: ProcStat,
}

pub struct CpuPlugin {
    options: CpuOptions,
    /// The sample the next usage figures are computed against.
    previous: Option<Sample>,
    /// Reused for every file read, so a collect allocates little.
    buffer: String,
    /// Kept open: a read is two system calls instead of six (`KeptFile`).
    proc_stat: KeptFile,
    proc_loadavg: KeptFile,
    #[cfg(not(target_os = "linux"))]
    other: other::State,
}

impl Plugin for CpuPlugin {
    const NAME: &'static str = "cpu";
    const DESCRIPTION: &'static str =
        "CPU usage in total and per core, I/O wait, load averages and core count";

    fn new(options: &Options) -> Result<Self, String> {
        let options = options
            .parse::<CpuOptions>()
            .map_err(|e| format!("cpu plugin: {e}"))?;
        #[allow(unused_mut)] // only Linux takes a baseline
        let mut plugin = CpuPlugin {
            options,
            previous: None,
            buffer: String::new(),
            proc_stat: KeptFile::new(PROC_STAT),
            proc_loadavg: KeptFile::new(PROC_LOADAVG),
            #[cfg(not(target_os = "linux"))]
            other: other::State::new()?,
        };
        #[cfg(target_os = "linux")]
        {
            plugin.previous = Some(plugin.sample()?);
        }
        Ok(plugin)
    }

    #[cfg(target_os = "linux")]
    fn collect(&mut self) -> Result<Vec<Reading>, String> {
        let previous = match self.previous.take() {
            Some(sample) => sample,
            None => self.sample()?,
        };
        hbc_plugin_support::wait_until_elapsed(previous.at, MIN_INTERVAL);
        let current = match self.sample() {
            Ok(sample) => sample,
            Err(e) => {
                self.previous = Some(previous);
                return Err(e);
            }
        };
        let mut readings = usage_readings(&previous.stat, &current.stat, self.options.per_core);
        self.previous = Some(current);

        self.proc_loadavg.read_into(Self::NAME, &mut self.buffer)?;
        let load = parse_loadavg(&self.buffer)
            .map_err(|e| format!("cpu plugin: cannot parse {PROC_LOADAVG}: {e}"))?;
        readings.extend(load_readings(&load));
        Ok(readings)
    }

    #[cfg(not(target_os = "linux"))]
    fn collect(&mut self) -> Result<Vec<Reading>, String> {
        self.other.collect(self.options.per_core)
    }
}

impl CpuPlugin {
    fn sample(&mut self) -> Result<Sample, String> {
        self.proc_stat.read_into(Self::NAME, &mut self.buffer)?;
        let at = Instant::now();
        let stat = parse_proc_stat(&self.buffer)
            .map_err(|e| format!("cpu plugin: cannot parse {PROC_STAT}: {e}"))?;
        Ok(Sample { at, stat })
    }
}

// Off when bundled into `plugins/system` (one library exporting several plugins).
#[cfg(feature = "export")]
hbc_plugin_api::export_plugin!(CpuPlugin);

/// Usage readings between two samples. A core without a previous sample (it just came
/// online) is left out until the next cycle.
fn usage_readings(previous: &ProcStat, current: &ProcStat, per_core: bool) -> Vec<Reading> {
    let total = usage(&previous.total, &current.total);
    let mut readings = Vec::with_capacity(3 + if per_core { current.cores.len() } else { 0 });
    readings.push(Reading::number(
        "cpu.usage_percent",
        total.busy_percent,
        "%",
    ));
    readings.push(Reading::number(
        "cpu.iowait_percent",
        total.iowait_percent,
        "%",
    ));
    readings.push(Reading::integer(
        "cpu.cores",
        current.cores.len() as i64,
        "",
    ));
    if per_core {
        for (index, (core, now)) in current.cores.iter().enumerate() {
            // Cores are listed in the same order each time; search only when they are not.
            let before = match previous.cores.get(index) {
                Some((c, times)) if c == core => Some(times),
                _ => previous
                    .cores
                    .iter()
                    .find(|(c, _)| c == core)
                    .map(|(_, t)| t),
            };
            if let Some(before) = before {
                let key = format!("cpu.{core}.usage_percent");
                readings.push(Reading::number(key, usage(before, now).busy_percent, "%"));
            }
        }
    }
    readings
}

fn load_readings(load: &LoadAvg) -> [Reading; 3] {
    [
        Reading::number("cpu.load1", load.load1, ""),
        Reading::number("cpu.load5", load.load5, ""),
        Reading::number("cpu.load15", load.load15, ""),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use hbc_plugin_api::Value;

    fn find<'a>(readings: &'a [Reading], key: &str) -> Option<&'a Reading> {
        readings.iter().find(|r| r.key.as_str() == key)
    }

    fn number(readings: &[Reading], key: &str) -> f64 {
        hbc_plugin_support::testing::value(readings, key)
            .as_f64()
            .unwrap_or(f64::NAN)
    }

    #[test]
    fn readings_per_core_and_in_total() {
        let before = parse_proc_stat(
            "cpu  100 0 0 300 0 0 0 0 0 0\ncpu0 50 0 0 150 0 0 0 0 0 0\ncpu1 50 0 0 150 0 0 0 0 0 0\n",
        )
        .expect("parse");
        // cpu0 fully busy, cpu1 idle for 100 ticks each.
        let after = parse_proc_stat(
            "cpu  200 0 0 400 0 0 0 0 0 0\ncpu0 150 0 0 150 0 0 0 0 0 0\ncpu1 50 0 0 250 0 0 0 0 0 0\n",
        )
        .expect("parse");
        let r = usage_readings(&before, &after, true);
        assert_eq!(number(&r, "cpu.usage_percent"), 50.0);
        assert_eq!(number(&r, "cpu.0.usage_percent"), 100.0);
        assert_eq!(number(&r, "cpu.1.usage_percent"), 0.0);
        assert_eq!(number(&r, "cpu.iowait_percent"), 0.0);
        assert_eq!(
            find(&r, "cpu.cores").map(|r| &r.value),
            Some(&Value::I64(2))
        );
        assert_eq!(
            find(&r, "cpu.0.usage_percent").map(|r| r.unit.as_str()),
            Some("%")
        );

        let without = usage_readings(&before, &after, false);
        assert!(find(&without, "cpu.0.usage_percent").is_none());
        assert_eq!(without.len(), 3);
    }

    #[test]
    fn a_core_coming_online_waits_for_its_second_sample() {
        let before = parse_proc_stat("cpu 1 0 0 1\ncpu0 1 0 0 1\n").expect("parse");
        let after = parse_proc_stat("cpu 2 0 0 2\ncpu0 2 0 0 1\ncpu1 0 0 0 1\n").expect("parse");
        let r = usage_readings(&before, &after, true);
        assert!(find(&r, "cpu.0.usage_percent").is_some());
        assert!(find(&r, "cpu.1.usage_percent").is_none());
        assert_eq!(
            find(&r, "cpu.cores").map(|r| &r.value),
            Some(&Value::I64(2))
        );
    }

    #[test]
    fn options_default_to_per_core_and_reject_unknown_fields() {
        let o: CpuOptions = Options::from_json("{}")
            .and_then(|o| o.parse())
            .expect("defaults");
        assert!(o.per_core);
        let o: CpuOptions = Options::from_json(r#"{"per_core": false}"#)
            .and_then(|o| o.parse())
            .expect("per_core");
        assert!(!o.per_core);
        let err = match CpuPlugin::new(&Options::from_json(r#"{"percore": 1}"#).expect("json")) {
            Ok(_) => panic!("unknown field accepted"),
            Err(e) => e,
        };
        assert!(
            err.starts_with("cpu plugin:") && err.contains("percore"),
            "{err}"
        );
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn collects_on_this_machine() {
        let options = Options::from_json("{}").expect("options");
        let mut plugin = CpuPlugin::new(&options).expect("new");
        let started = Instant::now();
        let readings = plugin.collect().expect("collect");
        // The baseline was taken in `new`, so this collect waited for the minimum interval.
        assert!(started.elapsed() >= MIN_INTERVAL / 2);

        let stat = std::fs::read_to_string("/proc/stat").expect("read /proc/stat");
        let cores = stat
            .lines()
            .filter(|l| {
                l.strip_prefix("cpu")
                    .and_then(|rest| rest.chars().next())
                    .is_some_and(|c| c.is_ascii_digit())
            })
            .count();
        assert!(cores >= 1);
        assert_eq!(
            find(&readings, "cpu.cores").map(|r| &r.value),
            Some(&Value::I64(cores as i64))
        );
        let total = number(&readings, "cpu.usage_percent");
        assert!((0.0..=100.0).contains(&total), "{total}");
        for core in 0..cores {
            let key = format!("cpu.{core}.usage_percent");
            let v = number(&readings, &key);
            assert!((0.0..=100.0).contains(&v), "{key} = {v}");
        }
        let iowait = number(&readings, "cpu.iowait_percent");
        assert!((0.0..=100.0).contains(&iowait), "{iowait}");
        for key in ["cpu.load1", "cpu.load5", "cpu.load15"] {
            let v = number(&readings, key);
            assert!(v.is_finite() && v >= 0.0, "{key} = {v}");
        }
        assert!(readings.iter().all(|r| r.key.starts_with("cpu.")));

        // A second collect right away works the same.
        let again = plugin.collect().expect("second collect");
        assert_eq!(again.len(), readings.len());
    }
}
