//! Parsing `/proc/diskstats` and turning two samples of a device into rates.
//!
//! Pure functions only: the plugin shell reads the file, keeps the previous sample and
//! measures the time between them.

use std::time::Duration;

use hbc_plugin_support::per_second;

/// `/proc/diskstats` counts sectors of 512 bytes whatever the device's sector size.
const SECTOR_BYTES: u64 = 512;

/// The cumulative counters of one `/proc/diskstats` line that the plugin uses.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DiskCounters {
    /// Reads completed.
    pub reads: u64,
    pub sectors_read: u64,
    /// Writes completed.
    pub writes: u64,
    pub sectors_written: u64,
    /// Milliseconds spent with I/O in flight.
    pub io_ticks_ms: u64,
}

/// Parses every line into `(device name, counters)`, in file order. Partitions are
/// included; telling them apart needs `/sys/block`, which is the shell's business.
pub fn parse_diskstats(text: &str) -> Result<Vec<(&str, DiskCounters)>, String> {
    let mut devices = Vec::new();
    for (index, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        devices.push(parse_line(line).map_err(|e| format!("line {}: {e}", index + 1))?);
    }
    Ok(devices)
}

/// `major minor name reads reads_merged sectors_read ms_reading writes writes_merged
/// sectors_written ms_writing in_flight io_ticks weighted_ms [discard and flush fields]`.
fn parse_line(line: &str) -> Result<(&str, DiskCounters), String> {
    const NEEDED: usize = 14;
    let mut fields = [""; NEEDED];
    let mut count = 0;
    for (slot, field) in fields.iter_mut().zip(line.split_ascii_whitespace()) {
        *slot = field;
        count += 1;
    }
    if count < NEEDED {
        return Err(format!("expected at least {NEEDED} fields, found {count}"));
    }
    let name = fields[2];
    let number = |index: usize| -> Result<u64, String> {
        let field = fields[index];
        field
            .parse()
            .map_err(|_| format!("{name}: field {} is not a number: {field:?}", index + 1))
    };
    Ok((
        name,
        DiskCounters {
            reads: number(3)?,
            sectors_read: number(5)?,
            writes: number(7)?,
            sectors_written: number(9)?,
            io_ticks_ms: number(12)?,
        },
    ))
}

/// What a device did between two samples.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DiskRates {
    pub read_bytes_per_s: f64,
    pub write_bytes_per_s: f64,
    pub reads_per_s: f64,
    pub writes_per_s: f64,
    /// Share of the time with I/O in flight, 0 to 100.
    pub busy_percent: f64,
}

/// Rates between two samples `elapsed` apart.
pub fn rates(previous: &DiskCounters, current: &DiskCounters, elapsed: Duration) -> DiskRates {
    let seconds = elapsed.as_secs_f64();
    let busy_ms = per_second(previous.io_ticks_ms, current.io_ticks_ms, seconds);
    DiskRates {
        read_bytes_per_s: per_second(previous.sectors_read, current.sectors_read, seconds)
            * SECTOR_BYTES as f64,
        write_bytes_per_s: per_second(previous.sectors_written, current.sectors_written, seconds)
            * SECTOR_BYTES as f64,
        reads_per_s: per_second(previous.reads, current.reads, seconds),
        writes_per_s: per_second(previous.writes, current.writes, seconds),
        // Milliseconds busy per second, over 1000 ms; the kernel's tick accounting can
        // overshoot the wall clock a little.
        busy_percent: (busy_ms / 10.0).min(100.0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Captured from a Linux 6.18 VM (20 fields per line since 5.5: discards and flushes).
    const SAMPLE: &str = "\
   7       0 loop0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0
   7       1 loop1 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0
 254       0 vda 21156 5275 3633314 26443 3071 17496 1710560 4724 0 4400 31439 4009 35 220432 265 140 4
 253       0 zram0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0
";

    /// The 14-field format of kernels 2.6.25 to 4.17, with a partition line.
    const OLD_FORMAT: &str = "\
   8       0 sda 9361 2803 609170 5352 3420 5116 255872 4968 0 6948 10320
   8       1 sda1 9271 2803 604898 5324 3420 5116 255872 4968 0 6916 10292
";

    #[test]
    fn parses_the_sample() {
        let devices = parse_diskstats(SAMPLE).expect("parse");
        let names: Vec<&str> = devices.iter().map(|(n, _)| *n).collect();
        assert_eq!(names, ["loop0", "loop1", "vda", "zram0"]);
        assert_eq!(
            devices[2].1,
            DiskCounters {
                reads: 21156,
                sectors_read: 3633314,
                writes: 3071,
                sectors_written: 1710560,
                io_ticks_ms: 4400,
            }
        );
    }

    #[test]
    fn the_fourteen_field_format_of_older_kernels_parses() {
        let devices = parse_diskstats(OLD_FORMAT).expect("parse");
        assert_eq!(devices.len(), 2);
        assert_eq!(devices[1].0, "sda1");
        assert_eq!(devices[0].1.io_ticks_ms, 6948);
    }

    #[test]
    fn malformed_input_is_an_error() {
        let err = parse_diskstats("   8 0 sda 1 2 3\n").expect_err("short line");
        assert!(err.contains("line 1") && err.contains("14 fields"), "{err}");
        let err = parse_diskstats(" 8 0 sda 1 2 3 4 5 6 x 8 9 10 11\n").expect_err("bad number");
        assert!(err.contains("sda") && err.contains("\"x\""), "{err}");
        assert_eq!(parse_diskstats("").expect("empty"), Vec::new());
    }

    #[test]
    fn rates_over_two_seconds() {
        let before = DiskCounters {
            reads: 100,
            sectors_read: 1000,
            writes: 50,
            sectors_written: 400,
            io_ticks_ms: 10_000,
        };
        let after = DiskCounters {
            reads: 300,
            sectors_read: 5000,
            writes: 60,
            sectors_written: 800,
            io_ticks_ms: 10_500,
        };
        let r = rates(&before, &after, Duration::from_secs(2));
        assert_eq!(r.reads_per_s, 100.0);
        assert_eq!(r.writes_per_s, 5.0);
        assert_eq!(r.read_bytes_per_s, 2000.0 * 512.0);
        assert_eq!(r.write_bytes_per_s, 200.0 * 512.0);
        assert_eq!(r.busy_percent, 25.0);
    }

    #[test]
    fn busy_never_exceeds_100() {
        let before = DiskCounters::default();
        let after = DiskCounters {
            io_ticks_ms: 1010,
            ..DiskCounters::default()
        };
        assert_eq!(
            rates(&before, &after, Duration::from_secs(1)).busy_percent,
            100.0
        );
    }

    #[test]
    fn counter_reset_gives_zero() {
        let before = DiskCounters {
            reads: 1_000_000,
            sectors_read: 9_000_000,
            writes: 1_000,
            sectors_written: 4_000,
            io_ticks_ms: 50_000,
        };
        let after = DiskCounters {
            reads: 10,
            sectors_read: 80,
            writes: 1_001,
            sectors_written: 4_008,
            io_ticks_ms: 20,
        };
        let r = rates(&before, &after, Duration::from_secs(1));
        assert_eq!(r.reads_per_s, 0.0);
        assert_eq!(r.read_bytes_per_s, 0.0);
        assert_eq!(r.busy_percent, 0.0);
        // Counters that did not go back still count.
        assert_eq!(r.writes_per_s, 1.0);
        assert_eq!(r.write_bytes_per_s, 8.0 * 512.0);
    }
}
