//! Parsing `/proc/meminfo` into the few figures the memory plugin reports.

/// The `/proc/meminfo` figures the plugin needs, converted to bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemInfo {
    pub total: u64,
    /// `MemAvailable`, or on kernels older than 3.14 (which lack it) an estimate from
    /// `MemFree + Buffers + Cached`.
    pub available: u64,
    pub swap_total: u64,
    pub swap_free: u64,
}

impl MemInfo {
    pub fn used(&self) -> u64 {
        self.total.saturating_sub(self.available)
    }

    pub fn used_percent(&self) -> f64 {
        if self.total == 0 {
            0.0
        } else {
            self.used() as f64 / self.total as f64 * 100.0
        }
    }

    pub fn swap_used(&self) -> u64 {
        self.swap_total.saturating_sub(self.swap_free)
    }
}

/// Parses `Key:   12345 kB` lines. Lines the plugin does not use are skipped unread, but
/// a used key that is missing or not a number is an error.
pub fn parse_meminfo(text: &str) -> Result<MemInfo, String> {
    let mut total = None;
    let mut available = None;
    let mut free = None;
    let mut buffers = None;
    let mut cached = None;
    let mut swap_total = None;
    let mut swap_free = None;
    for (index, line) in text.lines().enumerate() {
        let Some((key, rest)) = line.split_once(':') else {
            continue;
        };
        let slot = match key {
            "MemTotal" => &mut total,
            "MemAvailable" => &mut available,
            "MemFree" => &mut free,
            "Buffers" => &mut buffers,
            "Cached" => &mut cached,
            "SwapTotal" => &mut swap_total,
            "SwapFree" => &mut swap_free,
            _ => continue,
        };
        *slot = Some(parse_kb(rest).map_err(|e| format!("line {} ({key}): {e}", index + 1))?);
    }
    let require = |value: Option<u64>, key: &str| value.ok_or_else(|| format!("no {key} line"));
    let total = require(total, "MemTotal")?;
    let available = match available {
        Some(v) => v,
        None => require(free, "MemAvailable or MemFree")?
            .saturating_add(buffers.unwrap_or(0))
            .saturating_add(cached.unwrap_or(0))
            .min(total),
    };
    Ok(MemInfo {
        total,
        available,
        // A kernel built without swap support has no swap lines.
        swap_total: swap_total.unwrap_or(0),
        swap_free: swap_free.unwrap_or(0),
    })
}

/// `   24684084 kB` in bytes.
fn parse_kb(text: &str) -> Result<u64, String> {
    let mut fields = text.split_ascii_whitespace();
    let number = fields.next().ok_or("no value")?;
    let kb: u64 = number
        .parse()
        .map_err(|_| format!("not a number: {number:?}"))?;
    match fields.next() {
        Some("kB") => {}
        other => return Err(format!("expected the unit kB, found {other:?}")),
    }
    kb.checked_mul(1024)
        .ok_or_else(|| format!("{kb} kB does not fit in 64 bits"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Captured from a Linux 6.18 VM with 24 GB and no swap.
    const SAMPLE: &str = "\
MemTotal:       24684084 kB
MemFree:        23918484 kB
MemAvailable:   24363480 kB
Buffers:            6452 kB
Cached:           642364 kB
SwapCached:            0 kB
Active:           249640 kB
Inactive:         410488 kB
Active(anon):       1508 kB
Inactive(anon):    18772 kB
Active(file):     248132 kB
Inactive(file):   391716 kB
Unevictable:       13232 kB
Mlocked:           12276 kB
SwapTotal:             0 kB
SwapFree:              0 kB
Zswap:                 0 kB
Zswapped:              0 kB
Dirty:            171476 kB
Writeback:             0 kB
AnonPages:         11052 kB
Shmem:              8872 kB
VmallocTotal:   34359738367 kB
HugePages_Total:       0
HugePages_Free:        0
Hugepagesize:       2048 kB
DirectMap1G:    25165824 kB
";

    #[test]
    fn parses_the_sample() {
        let m = parse_meminfo(SAMPLE).expect("parse");
        assert_eq!(m.total, 24684084 * 1024);
        assert_eq!(m.available, 24363480 * 1024);
        assert_eq!(m.used(), (24684084 - 24363480) * 1024);
        assert_eq!(m.swap_total, 0);
        assert_eq!(m.swap_used(), 0);
        let expected = (24684084.0 - 24363480.0) / 24684084.0 * 100.0;
        assert!((m.used_percent() - expected).abs() < 1e-9);
    }

    #[test]
    fn swap_in_use() {
        let text =
            "MemTotal: 1000 kB\nMemAvailable: 250 kB\nSwapTotal: 2048 kB\nSwapFree: 1024 kB\n";
        let m = parse_meminfo(text).expect("parse");
        assert_eq!(m.swap_total, 2048 * 1024);
        assert_eq!(m.swap_used(), 1024 * 1024);
        assert_eq!(m.used_percent(), 75.0);
    }

    #[test]
    fn old_kernels_without_memavailable_estimate_it() {
        let text = "MemTotal: 1000 kB\nMemFree: 100 kB\nBuffers: 50 kB\nCached: 250 kB\n";
        let m = parse_meminfo(text).expect("parse");
        assert_eq!(m.available, 400 * 1024);
    }

    #[test]
    fn malformed_input_is_an_error() {
        let err = parse_meminfo("MemTotal: lots kB\n").expect_err("not a number");
        assert!(err.contains("line 1") && err.contains("MemTotal"), "{err}");
        let err = parse_meminfo("MemTotal: 12 MB\nMemAvailable: 1 kB\n").expect_err("unit");
        assert!(err.contains("kB"), "{err}");
        let err = parse_meminfo("MemFree: 12 kB\n").expect_err("no total");
        assert!(err.contains("MemTotal"), "{err}");
        let err = parse_meminfo("MemTotal: 12 kB\n").expect_err("no available");
        assert!(err.contains("MemAvailable"), "{err}");
        assert!(parse_meminfo("MemTotal: 99999999999999999 kB\nMemFree: 1 kB\n").is_err());
        assert!(parse_meminfo("").is_err());
    }
}
