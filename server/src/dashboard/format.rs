//! Formatting for the dashboard: the shared time and value formatter of `hbd_core`
//! (the same words notifications use), and the geometry of sparklines and charts. No I/O
//! and no clock: callers pass `now_ms`, so the rendered pages are reproducible.

pub use hbd_core::format::*;

/// An SVG path (`d`) through `values` in a `w`×`h` box: x evenly spaced, y scaled to
/// `0..=max` (values above `max` are clipped). Missing values break the line.
pub fn path(values: &[f32], w: f64, h: f64, max: f64) -> String {
    use std::fmt::Write;
    let mut d = String::new();
    if values.is_empty() || max <= 0.0 {
        return d;
    }
    let step = if values.len() > 1 {
        w / (values.len() - 1) as f64
    } else {
        0.0
    };
    let mut pen_down = false;
    for (i, v) in values.iter().enumerate() {
        if !v.is_finite() {
            pen_down = false;
            continue;
        }
        let x = if values.len() > 1 { i as f64 * step } else { w };
        let y = h - (f64::from(*v).clamp(0.0, max) / max) * h;
        let _ = write!(
            d,
            "{}{},{}",
            if pen_down { "L" } else { "M" },
            trim(x, 1),
            trim(y, 1)
        );
        pen_down = true;
    }
    d
}

/// A "nice" upper bound for a chart axis: 1, 2 or 5 times a power of ten, at least `v`.
pub fn nice_max(v: f64) -> f64 {
    if !(v.is_finite() && v > 0.0) {
        return 1.0;
    }
    let p = 10f64.powf(v.log10().floor());
    for m in [1.0, 2.0, 5.0, 10.0] {
        if m * p >= v {
            return m * p;
        }
    }
    10.0 * p
}

/// Percent-encodes a path segment (host names reach URLs through here).
pub fn url_segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Encodes a query-string value (`application/x-www-form-urlencoded`).
pub fn query_value(s: &str) -> String {
    url_segment(s).replace("%20", "+")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn geometry() {
        assert_eq!(
            path(&[0.0, 50.0, f32::NAN, 100.0], 30.0, 10.0, 100.0),
            "M0,10L10,5M30,0"
        );
        assert_eq!(path(&[], 30.0, 10.0, 100.0), "");
        assert_eq!(nice_max(0.0), 1.0);
        assert_eq!(nice_max(3.2), 5.0);
        assert_eq!(nice_max(12.0), 20.0);
        assert_eq!(url_segment("a b/<c>"), "a%20b%2F%3Cc%3E");
    }
}
