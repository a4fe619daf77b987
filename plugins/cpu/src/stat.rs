//! Parsing the `cpu` lines of `/proc/stat` and turning two samples into usage percentages.
//!
//! Pure functions only: the plugin shell reads the file and keeps the previous sample.

/// Cumulative CPU time of one line of `/proc/stat`, in clock ticks (USER_HZ).
///
/// `guest` and `guest_nice` are left out on purpose: the kernel already counts them in
/// `user` and `nice`, so adding them would count guest time twice.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CpuTimes {
    pub user: u64,
    pub nice: u64,
    pub system: u64,
    pub idle: u64,
    pub iowait: u64,
    pub irq: u64,
    pub softirq: u64,
    pub steal: u64,
}

impl CpuTimes {
    /// All time the CPU accounted for.
    pub fn total(&self) -> u64 {
        self.user
            .saturating_add(self.nice)
            .saturating_add(self.system)
            .saturating_add(self.idle)
            .saturating_add(self.iowait)
            .saturating_add(self.irq)
            .saturating_add(self.softirq)
            .saturating_add(self.steal)
    }
}

/// The `cpu` lines of `/proc/stat`: the aggregate line and one line per online core.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProcStat {
    pub total: CpuTimes,
    /// `(N, times)` for each `cpuN` line, in file order (offline cores have no line).
    pub cores: Vec<(u32, CpuTimes)>,
}

/// Parses the `cpu` and `cpuN` lines of `/proc/stat`; other lines are ignored.
pub fn parse_proc_stat(text: &str) -> Result<ProcStat, String> {
    let mut total = None;
    let mut cores = Vec::new();
    for (index, line) in text.lines().enumerate() {
        let mut fields = line.split_ascii_whitespace();
        let Some(label) = fields.next() else { continue };
        let Some(suffix) = label.strip_prefix("cpu") else {
            continue;
        };
        let times =
            parse_times(fields).map_err(|e| format!("line {} ({label}): {e}", index + 1))?;
        if suffix.is_empty() {
            total = Some(times);
        } else {
            let core = suffix.parse::<u32>().map_err(|_| {
                format!(
                    "line {}: `{label}` is not `cpu` followed by a core number",
                    index + 1
                )
            })?;
            cores.push((core, times));
        }
    }
    let total = total.ok_or("no aggregate `cpu` line")?;
    Ok(ProcStat { total, cores })
}

/// The numbers after the label; kernels older than 2.6.11 have fewer than eight, and the
/// missing ones count as zero.
fn parse_times<'a>(fields: impl Iterator<Item = &'a str>) -> Result<CpuTimes, String> {
    let mut values = [0u64; 8];
    let mut count = 0;
    for (slot, field) in values.iter_mut().zip(fields) {
        *slot = field
            .parse()
            .map_err(|_| format!("field {} is not a number: {field:?}", count + 1))?;
        count += 1;
    }
    if count < 4 {
        return Err(format!("expected at least 4 numbers, found {count}"));
    }
    let [user, nice, system, idle, iowait, irq, softirq, steal] = values;
    Ok(CpuTimes {
        user,
        nice,
        system,
        idle,
        iowait,
        irq,
        softirq,
        steal,
    })
}

/// CPU usage between two samples of the same line.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Usage {
    /// Time not idle and not waiting for I/O, in percent of all time.
    pub busy_percent: f64,
    pub iowait_percent: f64,
}

/// Usage between `previous` and `current`.
///
/// A reset (the total went down, as when a core goes offline and back) gives zero for
/// this cycle. Single fields may step back a little (the kernel's idle and iowait
/// accounting is known to), so each field's delta is clamped at zero.
pub fn usage(previous: &CpuTimes, current: &CpuTimes) -> Usage {
    const IDLE: Usage = Usage {
        busy_percent: 0.0,
        iowait_percent: 0.0,
    };
    if current.total() < previous.total() {
        return IDLE;
    }
    let delta = |now: u64, before: u64| now.saturating_sub(before);
    let idle = delta(current.idle, previous.idle);
    let iowait = delta(current.iowait, previous.iowait);
    let all = delta(current.user, previous.user)
        + delta(current.nice, previous.nice)
        + delta(current.system, previous.system)
        + idle
        + iowait
        + delta(current.irq, previous.irq)
        + delta(current.softirq, previous.softirq)
        + delta(current.steal, previous.steal);
    if all == 0 {
        return IDLE;
    }
    let busy = all - idle - iowait;
    Usage {
        busy_percent: busy as f64 / all as f64 * 100.0,
        iowait_percent: iowait as f64 / all as f64 * 100.0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Captured from a 2-core Linux 6.18 VM (the long `intr` line shortened).
    const SAMPLE: &str = "\
cpu  1964 0 1133 42933 102 0 11 5 0 0
cpu0 744 0 492 21797 11 0 4 1 0 0
cpu1 1220 0 641 21136 90 0 7 3 0 0
intr 77378 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 1 1 14 0 0 0 0 46 18 0 16
ctxt 181701
btime 1795490865
processes 3626
procs_running 2
procs_blocked 0
softirq 36853 0 5328 4 1555 5755 0 56 11676 0 12479
";

    #[test]
    fn parses_aggregate_and_cores() {
        let stat = parse_proc_stat(SAMPLE).expect("parse");
        assert_eq!(
            stat.total,
            CpuTimes {
                user: 1964,
                nice: 0,
                system: 1133,
                idle: 42933,
                iowait: 102,
                irq: 0,
                softirq: 11,
                steal: 5,
            }
        );
        assert_eq!(stat.cores.len(), 2);
        assert_eq!(stat.cores[0].0, 0);
        assert_eq!(stat.cores[1].0, 1);
        assert_eq!(stat.cores[1].1.user, 1220);
        assert_eq!(stat.total.total(), 1964 + 1133 + 42933 + 102 + 11 + 5);
    }

    #[test]
    fn old_kernels_with_four_fields_parse() {
        let stat = parse_proc_stat("cpu 1 2 3 4\ncpu0 1 2 3 4\n").expect("parse");
        assert_eq!(stat.total.idle, 4);
        assert_eq!(stat.total.iowait, 0);
    }

    #[test]
    fn malformed_input_is_an_error() {
        let err = parse_proc_stat("cpu 1 2 x 4\n").expect_err("bad number");
        assert!(err.contains("line 1") && err.contains("\"x\""), "{err}");
        let err = parse_proc_stat("cpu 1 2 3\n").expect_err("too few fields");
        assert!(err.contains("at least 4"), "{err}");
        let err = parse_proc_stat("cpu0 1 2 3 4\n").expect_err("no aggregate line");
        assert!(err.contains("aggregate"), "{err}");
        let err = parse_proc_stat("cpu 1 2 3 4\ncpuX 1 2 3 4\n").expect_err("bad label");
        assert!(err.contains("cpuX"), "{err}");
        assert!(parse_proc_stat("").is_err());
    }

    #[test]
    fn usage_from_deltas() {
        let before = CpuTimes {
            user: 100,
            idle: 800,
            iowait: 100,
            ..CpuTimes::default()
        };
        // +30 user, +10 system, +50 idle, +10 iowait: 100 ticks, 40 busy, 10 iowait.
        let after = CpuTimes {
            user: 130,
            system: 10,
            idle: 850,
            iowait: 110,
            ..CpuTimes::default()
        };
        let u = usage(&before, &after);
        assert!((u.busy_percent - 40.0).abs() < 1e-9, "{u:?}");
        assert!((u.iowait_percent - 10.0).abs() < 1e-9, "{u:?}");
    }

    #[test]
    fn no_time_passed_is_zero_not_nan() {
        let t = CpuTimes {
            user: 5,
            idle: 5,
            ..CpuTimes::default()
        };
        assert_eq!(usage(&t, &t).busy_percent, 0.0);
    }

    #[test]
    fn counter_reset_gives_zero() {
        let before = CpuTimes {
            user: 1000,
            idle: 5000,
            ..CpuTimes::default()
        };
        let after = CpuTimes {
            user: 10,
            idle: 50,
            ..CpuTimes::default()
        };
        let u = usage(&before, &after);
        assert_eq!(u.busy_percent, 0.0);
        assert_eq!(u.iowait_percent, 0.0);
    }

    #[test]
    fn iowait_stepping_back_stays_within_bounds() {
        let before = CpuTimes {
            user: 100,
            idle: 100,
            iowait: 50,
            ..CpuTimes::default()
        };
        let after = CpuTimes {
            user: 150,
            idle: 150,
            iowait: 48,
            ..CpuTimes::default()
        };
        let u = usage(&before, &after);
        assert!((u.busy_percent - 50.0).abs() < 1e-9, "{u:?}");
        assert_eq!(u.iowait_percent, 0.0);
    }
}
