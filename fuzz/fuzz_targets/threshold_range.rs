//! The Nagios range parser (`hbc::thresholds::parse_range`) and the compile path of the
//! `thresholds:` section: rule resolution and the consecutive-samples tracker.
//!
//! Every line is a range on its own; lines with tabs are also `pattern<TAB>warn<TAB>crit`
//! entries of one `thresholds:` map.

#![no_main]

use std::collections::BTreeMap;

use hbc::thresholds::{parse_range, LevelTracker, Range, ThresholdSpec, Thresholds};
use hbc_plugin_api::{Level, Reading};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let mut map = BTreeMap::new();
    for line in text.split('\n') {
        check_range(line);
        let mut fields = line.split('\t');
        let (Some(pattern), Some(warn)) = (fields.next(), fields.next()) else {
            continue;
        };
        let some = |s: &str| (!s.is_empty()).then(|| s.to_string());
        let crit = fields.next().and_then(some);
        // Small counts only: the tracker check below evaluates `samples` times.
        let samples = fields
            .next()
            .and_then(|s| s.parse::<u8>().ok())
            .map(u32::from);
        map.insert(
            pattern.to_string(),
            ThresholdSpec {
                warn: some(warn),
                crit,
                samples,
            },
        );
    }
    check_compiled(&map, 1 + (data.len() % 3) as u32);
});

fn check_range(text: &str) {
    let Ok(r) = parse_range(text) else { return };
    let (start, end) = (r.start(), r.end());
    assert!(start <= end, "{text:?}: {r:?}");
    assert!(start.is_finite() || start == f64::NEG_INFINITY);
    assert!(end.is_finite() || end == f64::INFINITY);
    // The canonical text parses back to the same range.
    let canonical = r.to_string();
    assert_eq!(
        parse_range(&canonical).ok(),
        Some(r),
        "{text:?} -> {canonical:?}"
    );

    // Ends are inclusive, and just outside them the verdict flips.
    let inside = r.inside();
    for v in [start, end] {
        if v.is_finite() {
            assert_eq!(r.alerts(v), inside, "{text:?} at {v}");
        }
    }
    if start.is_finite() {
        assert_eq!(
            r.alerts(start.next_down()),
            !inside,
            "{text:?} below {start}"
        );
    }
    if end.is_finite() {
        assert_eq!(r.alerts(end.next_up()), !inside, "{text:?} above {end}");
    }
    // `@` inverts the verdict everywhere (NaN aside, which is in no range).
    let flipped = if inside {
        text.trim().trim_start_matches('@').to_string()
    } else {
        format!("@{}", text.trim())
    };
    let other: Range = flipped.parse().expect("flipping @ keeps a valid range");
    for v in [
        start,
        end,
        0.0,
        -1.0,
        1.0,
        1e300,
        -1e300,
        (start + end) / 2.0,
    ] {
        if !v.is_nan() {
            assert_ne!(
                r.alerts(v),
                other.alerts(v),
                "{text:?} vs {flipped:?} at {v}"
            );
        }
    }
}

fn check_compiled(map: &BTreeMap<String, ThresholdSpec>, default_samples: u32) {
    let Ok(t) = Thresholds::compile(map, default_samples) else {
        return;
    };
    assert_eq!(t.rules().len(), map.len());
    for rule in t.rules() {
        let pattern = rule.pattern();
        // A key made from a pattern resolves to it or to something at least as specific.
        let key = pattern.replace('*', "");
        let got = t.resolve(&key).expect("a pattern's own key has a rule");
        if !pattern.contains('*') {
            assert_eq!(got.pattern(), pattern);
        } else if got.pattern().contains('*') {
            assert!(specificity(got.pattern()) >= specificity(pattern));
        } else {
            assert_eq!(got.pattern(), key);
        }
        // check() is the worse of the two ranges' verdicts.
        for v in [0.0, 1.0, -1.0, 50.0, 80.0, 95.0, 100.0, 1e9] {
            let want = if rule.crit().is_some_and(|c| c.alerts(v)) {
                Level::Critical
            } else if rule.warn().is_some_and(|w| w.alerts(v)) {
                Level::Warning
            } else {
                Level::Ok
            };
            assert_eq!(rule.check(v), want);
        }
        // After `samples` equal evaluations the reported level is the raw one.
        let mut tracker = LevelTracker::new();
        let reading = Reading::number(key.as_str(), 97.0, "%");
        let rule_of_key = t.resolve(&key).expect("resolved above");
        let raw = if rule_of_key.has_ranges() {
            rule_of_key.check(97.0)
        } else {
            Level::Ok
        };
        tracker.evaluate(&t, &Reading::number(key.as_str(), f64::NAN, "%"));
        let mut level = Level::Unknown;
        for _ in 0..rule_of_key.samples() {
            level = tracker.evaluate(&t, &reading).level;
        }
        assert_eq!(level, raw, "{pattern:?} key {key:?}");
    }
}

fn specificity(pattern: &str) -> usize {
    pattern.chars().filter(|&c| c != '*').count()
}
