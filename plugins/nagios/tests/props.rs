//! Property tests: the short, in-suite version of the `nagios_output` fuzz target (`fuzz/`,
//! docs/fuzzing.md). A few hundred cases, well under a second.

use std::collections::HashSet;
use std::time::Duration;

use hbc_nagios::config::Check;
use hbc_nagios::perfdata::{parse_output, parse_perfdata, PerfItem};
use hbc_nagios::readings::readings;
use hbc_nagios::run::{Finished, Outcome};
use proptest::prelude::*;

fn number() -> impl Strategy<Value = f64> {
    prop_oneof![
        (-1000i32..1000).prop_map(f64::from),
        -1e9f64..1e9,
        any::<f64>().prop_filter("finite", |v| v.is_finite()),
    ]
}

/// A well-formed item: any label (quotes and spaces included), value or `U`, a unit,
/// ranges and limits.
fn item() -> impl Strategy<Value = PerfItem> {
    (
        "[a-z]{1,8}|\\PC{1,30}|[a-z 'é]{240,300}",
        proptest::option::of(number()),
        "|s|ms|%|B|KB|c|[a-zA-Z/]{1,3}",
        proptest::option::of("[~@]?[0-9]{1,3}(:[0-9]{0,3})?"),
        proptest::option::of("[0-9]{1,3}"),
        proptest::option::of(number()),
        proptest::option::of(number()),
    )
        .prop_map(|(label, value, uom, warn, crit, min, max)| PerfItem {
            label,
            value,
            uom,
            warn,
            crit,
            min,
            max,
        })
}

/// The item as a check writes it: `'label'=value[uom];warn;crit;min;max`.
fn write(item: &PerfItem) -> String {
    let num = |v: Option<f64>| v.map(|v| v.to_string()).unwrap_or_default();
    format!(
        "'{}'={}{};{};{};{};{}",
        item.label.replace('\'', "''"),
        item.value.map_or("U".to_string(), |v| v.to_string()),
        item.uom,
        item.warn.as_deref().unwrap_or(""),
        item.crit.as_deref().unwrap_or(""),
        num(item.min),
        num(item.max)
    )
}

fn check() -> Check {
    Check {
        name: "disk".into(),
        argv: vec!["/usr/lib/nagios/plugins/check_disk".into()],
        timeout: Duration::from_secs(5),
        timeout_s: 5.0,
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// Items written by a check are read back as written, on the status line or (Nagios 3
    /// style) after long output; the readings made of them have unique keys and fit a
    /// heartbeat whatever the labels are.
    #[test]
    fn written_perfdata_reads_back(
        items in proptest::collection::vec(item(), 0..6),
        message in "[A-Z]{2,8} - [a-z ]{0,20}",
        long in proptest::collection::vec("[a-z ]{0,20}", 0..3),
        code in 0i32..5,
    ) {
        let perf: Vec<String> = items.iter().map(write).collect();
        let (parsed, skipped) = parse_perfdata(&perf.join(" "));
        prop_assert_eq!(skipped, 0);
        prop_assert_eq!(&parsed, &items);

        let split = perf.len() / 2;
        let mut text = format!("{message} | {}\n", perf[..split].join(" "));
        for line in &long {
            text.push_str(line.trim_end());
            text.push('\n');
        }
        text.push_str(&format!("|{}\n", perf[split..].join(" ")));
        let out = parse_output(&text);
        prop_assert_eq!(out.message, message.trim());
        prop_assert_eq!(&out.perfdata, &items);

        let finished = Finished {
            outcome: Outcome::Exited(code),
            stdout: text,
            stderr: String::new(),
            duration: Duration::from_millis(20),
            pgid: None,
        };
        let made = readings(&check(), &finished);
        let numbers = items.iter().filter(|i| i.value.is_some()).count();
        prop_assert_eq!(made.len(), numbers + 2);
        let mut keys = HashSet::new();
        for r in &made {
            prop_assert!(r.key.starts_with("nagios.disk."));
            prop_assert!(!r.key.is_empty() && r.key.len() <= 255, "{} bytes: {}", r.key.len(), r.key);
            prop_assert!(keys.insert(r.key.to_string()), "duplicate key {}", r.key);
        }
    }

    /// Whatever a check prints, parsing never panics and keeps its promises.
    #[test]
    fn any_output_parses(text in "\\PC{0,200}|([a-z' ]{0,6}=[0-9.;~@:U%a-z-]{0,12} ?){0,6}") {
        let out = parse_output(&text);
        prop_assert!(!out.message.contains(['\n', '|']));
        for item in &out.perfdata {
            prop_assert!(!item.label.is_empty());
            prop_assert!(item.value.is_none_or(f64::is_finite));
        }
        let _ = parse_perfdata(&text);
    }
}
