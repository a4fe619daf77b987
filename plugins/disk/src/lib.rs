//! The `disk` monitor plugin: I/O rates of whole block devices from `/proc/diskstats`
//! deltas on Linux, from `sysinfo` elsewhere (`other.rs`: bytes only; docs/platforms.md).
//!
//! Readings, for each whole device `<dev>` (one with an entry in `/sys/block`, so
//! partitions are left out):
//! - `disk.<dev>.read_bytes_per_s`, `disk.<dev>.write_bytes_per_s` (B/s)
//! - `disk.<dev>.reads_per_s`, `disk.<dev>.writes_per_s` (1/s): completed requests.
//! - `disk.<dev>.busy_percent` (%): share of the time with I/O in flight.
//!
//! Options: `include` and `exclude`, lists of device names or prefixes ending in `*`
//! (see [`NameFilter`]); by default `loop*`, `ram*` and `zram*` are left out.
//!
//! Rates compare two samples: the first is taken in `new`, and a `collect` less than
//! 100 ms after the previous sample waits for the rest of those 100 ms first. A device
//! that just appeared is reported from its second sample on.

// Off Linux the `/proc/diskstats` parser is compiled but unused.
#![cfg_attr(not(target_os = "linux"), allow(dead_code))]

mod diskstats;
#[cfg(not(target_os = "linux"))]
mod other;

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use hbc_plugin_api::{Options, Plugin, Reading};
use hbc_plugin_support::{KeptFile, NameFilter};

use crate::diskstats::{parse_diskstats, rates, DiskCounters, DiskRates};

const PROC_DISKSTATS: &str = "/proc/diskstats";
const SYS_BLOCK: &str = "/sys/block";

/// Devices left out unless the options say otherwise.
const DEFAULT_EXCLUDE: &[&str] = &["loop*", "ram*", "zram*"];

/// The shortest time between the two samples of a rate.
const MIN_INTERVAL: Duration = Duration::from_millis(100);

/// `plugins.disk.options` in hbc's config.
#[derive(serde::Deserialize, Default, Debug)]
#[serde(default, deny_unknown_fields)]
struct DiskOptions {
    /// Only these devices (names, or prefixes ending in `*`).
    include: Vec<String>,
    /// Not these devices; replaces the default `loop*`, `ram*`, `zram*`.
    exclude: Option<Vec<String>>,
}

pub struct DiskPlugin {
    filter: NameFilter,
    /// The last counters of each reported device.
    previous: HashMap<String, DiskCounters>,
    previous_at: Instant,
    /// Names in `/sys/block` (whole devices), as `/proc/diskstats` spells them.
    whole_devices: HashSet<String>,
    /// Every name `/proc/diskstats` listed when `/sys/block` was last read; a name not in
    /// here means a new device, and `/sys/block` is read again.
    known: HashSet<String>,
    /// Reused for every read, so a collect allocates little.
    buffer: String,
    /// Kept open: a read is two system calls instead of six (`KeptFile`).
    proc_diskstats: KeptFile,
    #[cfg(not(target_os = "linux"))]
    other: other::State,
}

impl Plugin for DiskPlugin {
    const NAME: &'static str = "disk";
    const DESCRIPTION: &'static str = "Block device I/O: bytes and requests per second, busy time";

    fn new(options: &Options) -> Result<Self, String> {
        let options = options
            .parse::<DiskOptions>()
            .map_err(|e| format!("disk plugin: {e}"))?;
        let filter = NameFilter::new(options.include, options.exclude, DEFAULT_EXCLUDE)
            .map_err(|e| format!("disk plugin: {e}"))?;
        #[cfg(not(target_os = "linux"))]
        let other = other::State::new(&filter);
        #[allow(unused_mut)] // only Linux takes a baseline
        let mut plugin = DiskPlugin {
            filter,
            previous: HashMap::new(),
            previous_at: Instant::now(),
            whole_devices: HashSet::new(),
            known: HashSet::new(),
            buffer: String::new(),
            proc_diskstats: KeptFile::new(PROC_DISKSTATS),
            #[cfg(not(target_os = "linux"))]
            other,
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
        Ok(self.other.sample(&self.filter))
    }
}

// Off when bundled into `plugins/system` (one library exporting several plugins).
#[cfg(feature = "export")]
hbc_plugin_api::export_plugin!(DiskPlugin);

impl DiskPlugin {
    /// Reads `/proc/diskstats`, returns the rates since the previous sample and keeps this
    /// one as the next baseline.
    fn sample(&mut self) -> Result<Vec<Reading>, String> {
        // Taken out so the parsed names can borrow it while `self` changes.
        let mut buffer = std::mem::take(&mut self.buffer);
        let result = self.sample_from(&mut buffer);
        self.buffer = buffer;
        result
    }

    fn sample_from(&mut self, buffer: &mut String) -> Result<Vec<Reading>, String> {
        self.proc_diskstats.read_into(Self::NAME, buffer)?;
        let at = Instant::now();
        let devices = parse_diskstats(buffer)
            .map_err(|e| format!("disk plugin: cannot parse {PROC_DISKSTATS}: {e}"))?;
        if devices.iter().any(|(name, _)| !self.known.contains(*name)) {
            self.whole_devices = list_whole_devices()?;
            self.known = devices.iter().map(|(name, _)| name.to_string()).collect();
        }

        let elapsed = at.saturating_duration_since(self.previous_at);
        let mut readings = Vec::new();
        let mut reported = 0;
        for (name, now) in &devices {
            if !self.whole_devices.contains(*name) || !self.filter.accepts(name) {
                continue;
            }
            reported += 1;
            match self.previous.get_mut(*name) {
                Some(before) => {
                    readings.extend(device_readings(name, &rates(before, now, elapsed)));
                    *before = *now;
                }
                None => {
                    self.previous.insert(name.to_string(), *now);
                }
            }
        }
        // Every reported device is in `previous` now; more entries means some went away.
        if self.previous.len() > reported {
            self.previous
                .retain(|name, _| devices.iter().any(|(n, _)| n == name));
        }
        self.previous_at = at;
        Ok(readings)
    }
}

/// The names in `/sys/block`. The kernel writes a `/` in a device name (`cciss/c0d0`) as
/// `!` there, and as `/` in `/proc/diskstats`.
fn list_whole_devices() -> Result<HashSet<String>, String> {
    let error = |e: std::io::Error| format!("disk plugin: cannot list {SYS_BLOCK}: {e}");
    let mut names = HashSet::new();
    let sys_block = hbc_plugin_support::host_path(SYS_BLOCK);
    for entry in std::fs::read_dir(&*sys_block).map_err(error)? {
        let name = entry.map_err(error)?.file_name();
        names.insert(name.to_string_lossy().replace('!', "/"));
    }
    Ok(names)
}

fn device_readings(name: &str, rates: &DiskRates) -> [Reading; 5] {
    [
        Reading::number(
            format!("disk.{name}.read_bytes_per_s"),
            rates.read_bytes_per_s,
            "B/s",
        ),
        Reading::number(
            format!("disk.{name}.write_bytes_per_s"),
            rates.write_bytes_per_s,
            "B/s",
        ),
        Reading::number(format!("disk.{name}.reads_per_s"), rates.reads_per_s, "1/s"),
        Reading::number(
            format!("disk.{name}.writes_per_s"),
            rates.writes_per_s,
            "1/s",
        ),
        Reading::number(format!("disk.{name}.busy_percent"), rates.busy_percent, "%"),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn new_plugin(json: &str) -> Result<DiskPlugin, String> {
        DiskPlugin::new(&Options::from_json(json)?)
    }

    #[test]
    fn readings_of_a_device() {
        let r = device_readings(
            "vda",
            &DiskRates {
                read_bytes_per_s: 1024.0,
                write_bytes_per_s: 2048.0,
                reads_per_s: 2.0,
                writes_per_s: 4.0,
                busy_percent: 12.5,
            },
        );
        let keys: Vec<(&str, &str)> = r
            .iter()
            .map(|r| (r.key.as_str(), r.unit.as_str()))
            .collect();
        assert_eq!(
            keys,
            [
                ("disk.vda.read_bytes_per_s", "B/s"),
                ("disk.vda.write_bytes_per_s", "B/s"),
                ("disk.vda.reads_per_s", "1/s"),
                ("disk.vda.writes_per_s", "1/s"),
                ("disk.vda.busy_percent", "%"),
            ]
        );
        assert_eq!(r[4].value.as_f64(), Some(12.5));
    }

    #[test]
    fn defaults_skip_loop_ram_and_zram() {
        let f = NameFilter::new(Vec::new(), None, DEFAULT_EXCLUDE).expect("filter");
        assert!(f.accepts("vda"));
        assert!(f.accepts("nvme0n1"));
        assert!(!f.accepts("loop0"));
        assert!(!f.accepts("ram15"));
        assert!(!f.accepts("zram0"));
    }

    #[test]
    fn bad_options_are_refused() {
        let err = new_plugin(r#"{"exclude": ["s*a"]}"#)
            .err()
            .unwrap_or_default();
        assert!(
            err.starts_with("disk plugin:") && err.contains("s*a"),
            "{err}"
        );
        let err = new_plugin(r#"{"devices": []}"#).err().unwrap_or_default();
        assert!(err.contains("devices"), "{err}");
    }

    /// The whole devices `/proc/diskstats` lists that the default filter keeps.
    #[cfg(target_os = "linux")]
    fn expected_devices() -> Vec<String> {
        let stats = std::fs::read_to_string(PROC_DISKSTATS).expect("read /proc/diskstats");
        let whole = list_whole_devices().expect("list /sys/block");
        stats
            .lines()
            .filter_map(|l| l.split_whitespace().nth(2))
            .filter(|n| whole.contains(*n))
            .filter(|n| !["loop", "ram", "zram"].iter().any(|p| n.starts_with(p)))
            .map(str::to_string)
            .collect()
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn collects_on_this_machine() {
        let mut plugin = new_plugin("{}").expect("new");
        let started = Instant::now();
        let readings = plugin.collect().expect("collect");
        assert!(started.elapsed() >= MIN_INTERVAL / 2);

        let devices = expected_devices();
        assert_eq!(readings.len(), devices.len() * 5, "{readings:?}");
        for device in &devices {
            for suffix in [
                "read_bytes_per_s",
                "write_bytes_per_s",
                "reads_per_s",
                "writes_per_s",
                "busy_percent",
            ] {
                let key = format!("disk.{device}.{suffix}");
                let value = readings
                    .iter()
                    .find(|r| r.key == key.as_str())
                    .and_then(|r| r.value.as_f64());
                let Some(value) = value else {
                    panic!("no reading {key} in {readings:?}");
                };
                assert!(value.is_finite() && value >= 0.0, "{key} = {value}");
                if suffix == "busy_percent" {
                    assert!(value <= 100.0, "{key} = {value}");
                }
            }
        }
        assert!(readings.iter().all(|r| !r.key.contains(".loop")));
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn include_selects_devices() {
        let mut plugin = new_plugin(r#"{"include": ["loop0"]}"#).expect("new");
        let readings = plugin.collect().expect("collect");
        let has_loop0 = list_whole_devices().expect("list").contains("loop0")
            && std::fs::read_to_string(PROC_DISKSTATS)
                .expect("read")
                .lines()
                .any(|l| l.split_whitespace().nth(2) == Some("loop0"));
        assert_eq!(
            readings.len(),
            if has_loop0 { 5 } else { 0 },
            "{readings:?}"
        );
        assert!(readings.iter().all(|r| r.key.starts_with("disk.loop0.")));
    }
}
