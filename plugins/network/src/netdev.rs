//! Parsing `/proc/net/dev` and turning two samples of an interface into rates.
//!
//! Pure functions only: the plugin shell reads the file, keeps the previous sample and
//! measures the time between them.

use std::time::Duration;

use hbc_plugin_support::per_second;

/// The cumulative counters of one interface that the plugin uses.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NetCounters {
    pub rx_bytes: u64,
    pub rx_packets: u64,
    pub rx_errors: u64,
    pub rx_drops: u64,
    pub tx_bytes: u64,
    pub tx_packets: u64,
    pub tx_errors: u64,
    pub tx_drops: u64,
}

/// The number of counters after `name:` (8 received, 8 transmitted).
const COUNTERS: usize = 16;

/// Parses every interface line into `(name, counters)`, in file order; the two header
/// lines (the ones with `|`) are skipped.
pub fn parse_net_dev(text: &str) -> Result<Vec<(&str, NetCounters)>, String> {
    let mut interfaces = Vec::new();
    for (index, line) in text.lines().enumerate() {
        if line.trim().is_empty() || line.contains('|') {
            continue;
        }
        let parsed = parse_line(line).map_err(|e| format!("line {}: {e}", index + 1))?;
        interfaces.push(parsed);
    }
    Ok(interfaces)
}

/// `  eth0: 30842784 1335 0 0 0 0 0 0 85626 819 0 0 0 0 0 0`. Interface names cannot
/// hold `:`, and old kernels leave no space after it when the byte count is large.
fn parse_line(line: &str) -> Result<(&str, NetCounters), String> {
    let (name, rest) = line
        .split_once(':')
        .ok_or("expected `interface: counters`")?;
    let name = name.trim();
    if name.is_empty() {
        return Err("empty interface name".to_string());
    }
    let mut values = [0u64; COUNTERS];
    let mut count = 0;
    for (slot, field) in values.iter_mut().zip(rest.split_ascii_whitespace()) {
        *slot = field
            .parse()
            .map_err(|_| format!("{name}: counter {} is not a number: {field:?}", count + 1))?;
        count += 1;
    }
    if count < COUNTERS {
        return Err(format!(
            "{name}: expected {COUNTERS} counters, found {count}"
        ));
    }
    Ok((
        name,
        NetCounters {
            rx_bytes: values[0],
            rx_packets: values[1],
            rx_errors: values[2],
            rx_drops: values[3],
            tx_bytes: values[8],
            tx_packets: values[9],
            tx_errors: values[10],
            tx_drops: values[11],
        },
    ))
}

/// What an interface did between two samples.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct NetRates {
    pub rx_bytes_per_s: f64,
    pub tx_bytes_per_s: f64,
    pub rx_packets_per_s: f64,
    pub tx_packets_per_s: f64,
}

/// Rates between two samples `elapsed` apart.
pub fn rates(previous: &NetCounters, current: &NetCounters, elapsed: Duration) -> NetRates {
    let seconds = elapsed.as_secs_f64();
    NetRates {
        rx_bytes_per_s: per_second(previous.rx_bytes, current.rx_bytes, seconds),
        tx_bytes_per_s: per_second(previous.tx_bytes, current.tx_bytes, seconds),
        rx_packets_per_s: per_second(previous.rx_packets, current.rx_packets, seconds),
        tx_packets_per_s: per_second(previous.tx_packets, current.tx_packets, seconds),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Captured from a Linux 6.18 VM.
    const SAMPLE: &str = "\
Inter-|   Receive                                                |  Transmit
 face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed
    lo:    3245      30    0    0    0     0          0         0     3245      30    0    0    0     0       0          0
  ifb0:       0       0    0    0    0     0          0         0        0       0    0    0    0     0       0          0
  ifb1:       0       0    0    0    0     0          0         0        0       0    0    0    0     0       0          0
  eth0: 30842784    1335    0    0    0     0          0         0    85626     819    0    0    0     0       0          0
";

    #[test]
    fn parses_the_sample() {
        let interfaces = parse_net_dev(SAMPLE).expect("parse");
        let names: Vec<&str> = interfaces.iter().map(|(n, _)| *n).collect();
        assert_eq!(names, ["lo", "ifb0", "ifb1", "eth0"]);
        assert_eq!(
            interfaces[3].1,
            NetCounters {
                rx_bytes: 30842784,
                rx_packets: 1335,
                tx_bytes: 85626,
                tx_packets: 819,
                ..NetCounters::default()
            }
        );
    }

    #[test]
    fn errors_and_drops_come_from_their_columns() {
        let line = "eth1:1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16\n";
        let (name, c) = parse_net_dev(line).expect("parse")[0];
        assert_eq!(name, "eth1");
        assert_eq!(
            (c.rx_errors, c.rx_drops, c.tx_errors, c.tx_drops),
            (3, 4, 11, 12)
        );
        assert_eq!((c.rx_bytes, c.tx_bytes), (1, 9));
    }

    #[test]
    fn malformed_input_is_an_error() {
        let err = parse_net_dev("eth0 1 2 3\n").expect_err("no colon");
        assert!(err.contains("line 1"), "{err}");
        let err = parse_net_dev("eth0: 1 2 3 4 5 6 7 8\n").expect_err("short");
        assert!(err.contains("eth0") && err.contains("16"), "{err}");
        let err =
            parse_net_dev("eth0: 1 2 3 4 5 6 7 8 9 -1 11 12 13 14 15 16\n").expect_err("negative");
        assert!(
            err.contains("counter 10") && err.contains("\"-1\""),
            "{err}"
        );
        assert!(parse_net_dev(": 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16\n").is_err());
    }

    #[test]
    fn rates_over_half_a_second() {
        let before = NetCounters {
            rx_bytes: 1000,
            rx_packets: 10,
            tx_bytes: 500,
            tx_packets: 5,
            ..NetCounters::default()
        };
        let after = NetCounters {
            rx_bytes: 6000,
            rx_packets: 20,
            tx_bytes: 700,
            tx_packets: 6,
            ..NetCounters::default()
        };
        let r = rates(&before, &after, Duration::from_millis(500));
        assert_eq!(
            r,
            NetRates {
                rx_bytes_per_s: 10_000.0,
                tx_bytes_per_s: 400.0,
                rx_packets_per_s: 20.0,
                tx_packets_per_s: 2.0,
            }
        );
    }

    #[test]
    fn counter_wrap_gives_zero() {
        // A 32-bit rx byte counter wrapping past 4 GiB.
        let before = NetCounters {
            rx_bytes: u64::from(u32::MAX) - 10,
            tx_bytes: 100,
            ..NetCounters::default()
        };
        let after = NetCounters {
            rx_bytes: 5,
            tx_bytes: 300,
            ..NetCounters::default()
        };
        let r = rates(&before, &after, Duration::from_secs(1));
        assert_eq!(r.rx_bytes_per_s, 0.0);
        assert_eq!(r.tx_bytes_per_s, 200.0);
        assert_eq!(per_second(5, 10, 0.0), 0.0);
    }
}
