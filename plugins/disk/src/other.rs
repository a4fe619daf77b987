//! Disk I/O off Linux, from `sysinfo`'s per-disk usage counters (`IOCTL_DISK_PERFORMANCE`
//! on Windows, IOKit on macOS): read and write bytes per second. Request counts and busy
//! time are not available there, so `reads_per_s`, `writes_per_s` and `busy_percent` are
//! left out. A device is named as sysinfo names the disk (the volume on Windows,
//! `disk1s1` on macOS).

use std::collections::HashMap;
use std::time::Instant;

use hbc_plugin_api::Reading;
use hbc_plugin_support::{per_second, NameFilter};

pub struct State {
    disks: sysinfo::Disks,
    /// Total (read, written) bytes of each disk at the previous sample.
    previous: HashMap<String, (u64, u64)>,
    previous_at: Instant,
}

impl State {
    pub fn new(filter: &NameFilter) -> State {
        let mut state = State {
            disks: sysinfo::Disks::new_with_refreshed_list(),
            previous: HashMap::new(),
            previous_at: Instant::now(),
        };
        let _ = state.sample(filter);
        state
    }

    /// Rates since the previous sample, for the disks `filter` accepts.
    pub fn sample(&mut self, filter: &NameFilter) -> Vec<Reading> {
        self.disks.refresh(true);
        let at = Instant::now();
        let seconds = at.saturating_duration_since(self.previous_at).as_secs_f64();
        let mut readings = Vec::new();
        let mut seen = HashMap::new();
        for disk in self.disks.list() {
            let name = disk.name().to_string_lossy().into_owned();
            if name.is_empty() || !filter.accepts(&name) || seen.contains_key(&name) {
                continue;
            }
            let usage = disk.usage();
            let now = (usage.total_read_bytes, usage.total_written_bytes);
            if let Some(before) = self.previous.get(&name) {
                readings.push(Reading::number(
                    format!("disk.{name}.read_bytes_per_s"),
                    per_second(before.0, now.0, seconds),
                    "B/s",
                ));
                readings.push(Reading::number(
                    format!("disk.{name}.write_bytes_per_s"),
                    per_second(before.1, now.1, seconds),
                    "B/s",
                ));
            }
            seen.insert(name, now);
        }
        self.previous = seen;
        self.previous_at = at;
        readings
    }
}
