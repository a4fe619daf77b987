//! One formatter for times, durations and values with units, shared by the dashboard
//! and notifications so both say the same thing the same way. Pure: callers pass
//! `now_ms`, so rendered pages and messages are reproducible.

use crate::registry::Val;

/// `2025-01-02 03:04:05 UTC`: the text shown when JavaScript is off (JavaScript
/// rewrites every `<time data-ms>` into the viewer's time zone).
pub fn utc(ms: u64) -> String {
    let (y, mo, d, h, mi, s) = civil(ms);
    format!("{y:04}-{mo:02}-{d:02} {h:02}:{mi:02}:{s:02} UTC")
}

/// `2025-01-02T03:04:05Z`, for `<time datetime>`.
pub fn iso(ms: u64) -> String {
    let (y, mo, d, h, mi, s) = civil(ms);
    format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}Z")
}

/// Unix milliseconds to UTC calendar fields (Howard Hinnant's `civil_from_days`).
fn civil(ms: u64) -> (i64, u32, u32, u32, u32, u32) {
    let secs = (ms / 1000) as i64;
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400) as u32;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d, rem / 3600, rem / 60 % 60, rem % 60)
}

/// Parses `YYYY-MM-DDTHH:MM` (an HTML `datetime-local` value, optionally with `:SS`)
/// as a time `offset_min` minutes behind UTC (JavaScript's `getTimezoneOffset`).
pub fn parse_local(text: &str, offset_min: i64) -> Option<u64> {
    let t = text.trim();
    let (date, time) = t.split_once('T').or_else(|| t.split_once(' '))?;
    let mut dp = date.split('-').map(|p| p.parse::<i64>().ok());
    let (y, mo, d) = (dp.next()??, dp.next()??, dp.next()??);
    let mut tp = time.split(':').map(|p| p.parse::<i64>().ok());
    let (h, mi) = (tp.next()??, tp.next()??);
    let s = tp.next().flatten().unwrap_or(0);
    if !(1970..=9999).contains(&y)
        || !(1..=12).contains(&mo)
        || !(1..=31).contains(&d)
        || !(0..24).contains(&h)
        || !(0..60).contains(&mi)
        || !(0..60).contains(&s)
    {
        return None;
    }
    // days_from_civil
    let y2 = if mo <= 2 { y - 1 } else { y };
    let era = y2.div_euclid(400);
    let yoe = y2 - era * 400;
    let mp = if mo > 2 { mo - 3 } else { mo + 9 };
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let secs = days * 86_400 + h * 3600 + mi * 60 + s + offset_min * 60;
    u64::try_from(secs).ok().map(|s| s * 1000)
}

/// `12 s ago`, `5 min ago`, `3 h ago`, `2 d ago` (the same words the page's script uses).
pub fn ago(now_ms: u64, then_ms: u64) -> String {
    format!("{} ago", span(now_ms.saturating_sub(then_ms)))
}

/// A length of time in its largest sensible unit: `12 s`, `5 min`, `3 h`, `2 d`.
pub fn span(ms: u64) -> String {
    let s = ms / 1000;
    if s < 120 {
        format!("{s} s")
    } else if s < 7200 {
        format!("{} min", s / 60)
    } else if s < 172_800 {
        format!("{} h", s / 3600)
    } else {
        format!("{} d", s / 86_400)
    }
}

/// An interval such as `10 s`, `500 ms` or `1.5 min`.
pub fn interval(ms: u64) -> String {
    if ms < 1000 {
        format!("{ms} ms")
    } else if ms < 120_000 {
        format!("{} s", trim(ms as f64 / 1000.0, 1))
    } else {
        format!("{} min", trim(ms as f64 / 60_000.0, 1))
    }
}

/// A number with at most `decimals` decimals and no trailing zeros.
pub fn trim(v: f64, decimals: usize) -> String {
    let s = format!("{v:.decimals$}");
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    }
}

/// A percentage for a table cell: `12.3 %`, or an en dash when unknown.
pub fn pct(v: Option<f32>) -> String {
    match v {
        Some(v) if v.is_finite() => format!("{} %", trim(f64::from(v), 1)),
        _ => "–".to_string(),
    }
}

/// A load average: `0.52`, or an en dash when unknown.
pub fn load(v: Option<f32>) -> String {
    match v {
        Some(v) if v.is_finite() => format!("{:.2}", v),
        _ => "–".to_string(),
    }
}

/// A reading's value with its unit, made readable: bytes in binary units, seconds as
/// durations, long floats rounded.
pub fn value(v: &Val, unit: &str) -> String {
    match v {
        Val::Bool(b) => if *b { "yes" } else { "no" }.to_string(),
        Val::Text(t) => t.to_string(),
        Val::I64(i) => with_unit(*i as f64, unit, true),
        Val::F64(f) => with_unit(*f, unit, false),
    }
}

fn with_unit(v: f64, unit: &str, integer: bool) -> String {
    if !v.is_finite() {
        return format!("{v}");
    }
    match unit {
        "B" | "bytes" => bytes(v),
        "B/s" => format!("{}/s", bytes(v)),
        "%" => format!("{} %", trim(v, 1)),
        "" if integer => format!("{}", v as i64),
        "" => trim(v, 3),
        u if integer => format!("{} {u}", v as i64),
        u => format!("{} {u}", trim(v, if v.abs() >= 100.0 { 1 } else { 3 })),
    }
}

fn bytes(v: f64) -> String {
    const UNITS: [&str; 7] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    let mut x = v;
    let mut i = 0;
    while x.abs() >= 1024.0 && i + 1 < UNITS.len() {
        x /= 1024.0;
        i += 1;
    }
    if i == 0 {
        format!("{} B", trim(x, 0))
    } else {
        format!("{} {}", trim(x, 1), UNITS[i])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times() {
        assert_eq!(utc(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(iso(1_700_000_000_123), "2023-11-14T22:13:20Z");
        assert_eq!(utc(951_782_400_000), "2000-02-29 00:00:00 UTC");
        assert_eq!(
            parse_local("2023-11-14T22:13", 0),
            Some(1_700_000_000_000 - 20_000)
        );
        // UTC+1 (offset -60): local 23:13 is 22:13 UTC.
        assert_eq!(
            parse_local("2023-11-14T23:13:20", -60),
            Some(1_700_000_000_000)
        );
        assert_eq!(parse_local("2023-13-01T00:00", 0), None);
        assert_eq!(parse_local("yesterday", 0), None);
        assert_eq!(ago(100_000, 88_000), "12 s ago");
        assert_eq!(ago(1_000_000, 0), "16 min ago");
        assert_eq!(span(3 * 86_400_000), "3 d");
        assert_eq!(interval(10_000), "10 s");
        assert_eq!(interval(500), "500 ms");
        assert_eq!(interval(90_000), "90 s");
    }

    #[test]
    fn values() {
        assert_eq!(value(&Val::I64(3 << 30), "B"), "3 GiB");
        assert_eq!(value(&Val::F64(12.345_67), "%"), "12.3 %");
        assert_eq!(value(&Val::F64(0.123_456), "s"), "0.123 s");
        assert_eq!(value(&Val::I64(2), ""), "2");
        assert_eq!(value(&Val::Bool(true), ""), "yes");
        assert_eq!(value(&Val::Text("<b>".into()), ""), "<b>");
        assert_eq!(pct(Some(99.96)), "100 %");
        assert_eq!(pct(None), "–");
        assert_eq!(load(Some(0.5)), "0.50");
    }
}
