//! Parsing the `/proc` files the os plugin reads: `uptime`, the `btime` line of `stat`,
//! and the task count of `loadavg`.

/// Whole seconds since boot from `/proc/uptime` (`231.81 429.34`).
pub fn parse_uptime(text: &str) -> Result<u64, String> {
    let field = text.split_ascii_whitespace().next().ok_or("empty file")?;
    match field.parse::<f64>() {
        // `as` saturates; uptime is far below u64::MAX anyway.
        Ok(seconds) if seconds.is_finite() && seconds >= 0.0 => Ok(seconds.floor() as u64),
        _ => Err(format!("uptime is not a number of seconds: {field:?}")),
    }
}

/// Boot time in Unix seconds from the `btime` line of `/proc/stat`.
pub fn parse_btime(text: &str) -> Result<i64, String> {
    let line = text
        .lines()
        .find_map(|line| line.strip_prefix("btime "))
        .ok_or("no btime line")?;
    line.trim()
        .parse()
        .map_err(|_| format!("btime is not a number: {:?}", line.trim()))
}

/// The number of tasks (processes and threads) from `/proc/loadavg`: the `95` in
/// `0.14 0.09 0.03 2/95 3626`.
pub fn parse_task_count(text: &str) -> Result<u64, String> {
    let field = text
        .split_ascii_whitespace()
        .nth(3)
        .ok_or("no fourth field (running/total)")?;
    field
        .split_once('/')
        .and_then(|(_, total)| total.parse().ok())
        .ok_or_else(|| format!("fourth field is not running/total: {field:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Captured from a Linux 6.18 VM.
    const UPTIME: &str = "231.81 429.34\n";
    const LOADAVG: &str = "0.14 0.09 0.03 2/95 3626\n";
    const STAT: &str = "\
cpu  1964 0 1133 42933 102 0 11 5 0 0
cpu0 744 0 492 21797 11 0 4 1 0 0
intr 77378 0 0 0 0 0 0 0
ctxt 181701
btime 1795490865
processes 3626
procs_running 2
";

    #[test]
    fn parses_the_samples() {
        assert_eq!(parse_uptime(UPTIME), Ok(231));
        assert_eq!(parse_btime(STAT), Ok(1_795_490_865));
        assert_eq!(parse_task_count(LOADAVG), Ok(95));
    }

    #[test]
    fn malformed_input_is_an_error() {
        assert!(parse_uptime("").is_err());
        assert!(parse_uptime("-1 2").is_err());
        let err = parse_uptime("soon 2").expect_err("not a number");
        assert!(err.contains("soon"), "{err}");
        let err = parse_btime("cpu 1 2 3 4\n").expect_err("no btime");
        assert!(err.contains("btime"), "{err}");
        assert!(parse_btime("btime yesterday\n").is_err());
        let err = parse_task_count("0.1 0.2 0.3 95 3626").expect_err("no slash");
        assert!(err.contains("\"95\""), "{err}");
        assert!(parse_task_count("0.1 0.2").is_err());
        assert!(parse_task_count("0.1 0.2 0.3 2/x 1").is_err());
    }
}
