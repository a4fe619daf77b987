//! Property tests: the short, in-suite versions of the `threshold_range` and `config` fuzz
//! targets (`fuzz/`, docs/fuzzing.md). Each runs a few hundred cases in well under a second.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use hbc::config::Config;
use hbc::thresholds::{parse_range, LevelTracker, ThresholdSpec, Thresholds};
use hbc_plugin_api::{Level, Reading};
use proptest::prelude::*;

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: 256,
        ..ProptestConfig::default()
    }
}

/// A finite number as a config or check might write it.
fn number() -> impl Strategy<Value = f64> {
    prop_oneof![
        (-1000i32..1000).prop_map(f64::from),
        -1e6f64..1e6,
        any::<f64>().prop_filter("finite", |v| v.is_finite()),
    ]
}

/// A range in one of the five Nagios forms, with its expected start, end and `@`.
fn range_text() -> impl Strategy<Value = (String, f64, f64, bool)> {
    (number(), number(), 0u8..4, any::<bool>(), " {0,2}").prop_map(|(a, b, form, at, pad)| {
        let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
        let (body, start, end) = match form {
            0 => (format!("{}", hi.abs()), 0.0, hi.abs()),
            1 => (format!("{lo}:"), lo, f64::INFINITY),
            2 => (format!("~:{hi}"), f64::NEG_INFINITY, hi),
            _ => (format!("{lo}:{hi}"), lo, hi),
        };
        let at_sign = if at { "@" } else { "" };
        (format!("{pad}{at_sign}{body}{pad}"), start, end, at)
    })
}

proptest! {
    #![proptest_config(config())]

    /// Every form parses to its bounds; the canonical text parses back; the ends are
    /// inclusive and `@` inverts the verdict.
    #[test]
    fn ranges_parse_to_their_bounds((text, start, end, inside) in range_text(), v in number()) {
        let r = parse_range(&text).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!((r.start(), r.end(), r.inside()), (start, end, inside));
        prop_assert_eq!(parse_range(&r.to_string()), Ok(r));
        prop_assert_eq!(r.alerts(v), (start <= v && v <= end) == inside);
        if start.is_finite() {
            prop_assert_eq!(r.alerts(start), inside);
        }
        if end.is_finite() {
            prop_assert_eq!(r.alerts(end), inside);
        }
    }

    /// Arbitrary text never panics the parser, and what it accepts is well-formed.
    #[test]
    fn any_text_parses_or_is_refused(text in "[@~:0-9.eE+-]{0,12}|\\PC{0,16}") {
        if let Ok(r) = parse_range(&text) {
            prop_assert!(r.start() <= r.end());
            prop_assert!(!r.start().is_nan() && !r.end().is_nan());
            prop_assert_eq!(parse_range(&r.to_string()), Ok(r));
        }
    }

    /// A compiled rule resolves for its own key and, after `samples` equal evaluations,
    /// reports the level its ranges give.
    #[test]
    fn compiled_rules_resolve_and_settle(
        warn in proptest::option::of(range_text()),
        crit in proptest::option::of(range_text()),
        samples in 1u32..5,
        value in number(),
        glob in any::<bool>(),
    ) {
        let pattern = if glob { "cpu.*" } else { "cpu.usage_percent" };
        let spec = ThresholdSpec {
            warn: warn.as_ref().map(|w| w.0.clone()),
            crit: crit.as_ref().map(|c| c.0.clone()),
            samples: Some(samples),
        };
        let t = Thresholds::compile(&BTreeMap::from([(pattern.to_string(), spec)]), 1)
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
        let rule = t.resolve("cpu.usage_percent").expect("the rule applies");
        prop_assert_eq!(rule.pattern(), pattern);
        let alerts = |r: &Option<(String, f64, f64, bool)>| {
            r.as_ref().is_some_and(|(_, s, e, inside)| (*s <= value && value <= *e) == *inside)
        };
        let want = if alerts(&crit) {
            Level::Critical
        } else if alerts(&warn) {
            Level::Warning
        } else {
            Level::Ok
        };
        let mut tracker = LevelTracker::new();
        tracker.evaluate(&t, &Reading::text("cpu.usage_percent", "first"));
        let mut level = None;
        for _ in 0..samples {
            level = Some(tracker.evaluate(&t, &Reading::number("cpu.usage_percent", value, "%")).level);
        }
        let want = if warn.is_none() && crit.is_none() { Level::Ok } else { want };
        prop_assert_eq!(level, Some(want));
    }

    /// Generated config files: valid values load as written, invalid ones are refused with
    /// the key named, and server keys are never warned about.
    #[test]
    fn generated_configs_load_or_name_the_key(
        interval_ms in 0u64..100_000,
        samples in 0u32..4,
        max_datagram in 1000usize..70_000,
        hostname in "[a-z0-9.-]{0,12}|[<> ]{1,3}",
        server_key in prop::sample::select(vec!["hbd_port: 50004", "journal_keep: 3", "notify_up_after: 1", "watchhosts: [a]"]),
    ) {
        let text = format!(
            "interval: {interval_ms}ms\nsamples: {samples}\nmax_datagram: {max_datagram}\nhostname: \"{hostname}\"\n{server_key}\n"
        );
        let valid_host = hb_proto::valid_host_name(&hostname);
        match Config::parse(&text, Path::new("props.yaml")) {
            Ok((c, warnings)) => {
                prop_assert_eq!(c.interval, Duration::from_millis(interval_ms));
                prop_assert!(interval_ms >= 100 && samples >= 1 && valid_host);
                prop_assert!((1200..=65507).contains(&max_datagram));
                prop_assert_eq!(c.samples, samples);
                prop_assert!(warnings.is_empty(), "{:?}", warnings);
            }
            Err(e) => {
                let e = e.to_string();
                let named = ["interval", "samples", "max_datagram", "hostname"].iter().any(|k| e.contains(k));
                prop_assert!(named, "{}", e);
                prop_assert!(interval_ms < 100 || samples == 0 || !valid_host || !(1200..=65507).contains(&max_datagram));
            }
        }
    }

    /// Arbitrary text never panics the loader.
    #[test]
    fn any_text_loads_or_is_refused(text in "\\PC{0,64}|([a-z_]{1,10}: [\\[\\]{}a-z0-9:@ ,\"-]{0,12}\n){0,4}") {
        let _ = Config::parse(&text, Path::new("props.yaml"));
    }
}
