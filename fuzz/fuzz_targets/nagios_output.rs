//! The Nagios output and performance data parser (`hbc_nagios::perfdata`), and the
//! readings the plugin makes of a check's output, which must always fit a heartbeat.

#![no_main]

use std::collections::HashSet;
use std::time::Duration;

use hbc_nagios::config::Check;
use hbc_nagios::perfdata::{parse_output, parse_perfdata, PerfItem};
use hbc_nagios::readings::{readings, sanitize_label};
use hbc_nagios::run::{Finished, Outcome};
use hbc_plugin_api::Value;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // The plugin decodes a check's output lossily; do the same.
    let text = String::from_utf8_lossy(data);
    let out = parse_output(&text);
    assert!(!out.message.contains(['\n', '|']), "{:?}", out.message);
    assert_eq!(out.message, out.message.trim());
    assert!(!out.long_output.ends_with('\n'));
    for item in &out.perfdata {
        check_item(item);
    }
    // Written back in canonical form, the items parse to themselves.
    let canonical: Vec<String> = out.perfdata.iter().map(write_item).collect();
    let (again, skipped) = parse_perfdata(&canonical.join(" "));
    assert_eq!(skipped, 0, "{canonical:?}");
    assert_eq!(again, out.perfdata, "{canonical:?}");
    // parse_perfdata alone never panics either.
    let _ = parse_perfdata(&text);

    for item in &out.perfdata {
        let label = sanitize_label(&item.label);
        assert_eq!(label.chars().count(), item.label.chars().count());
        assert!(label
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_./:%-".contains(c)));
    }

    let check = Check {
        name: "fuzz".into(),
        argv: vec!["/bin/true".into()],
        timeout: Duration::from_secs(1),
        timeout_s: 1.0,
    };
    let finished = Finished {
        outcome: Outcome::Exited(i32::from(data.first().copied().unwrap_or(0) % 5)),
        stdout: text.into_owned(),
        stderr: String::new(),
        duration: Duration::from_millis(12),
        pgid: None,
    };
    let made = readings(&check, &finished);
    let mut keys = HashSet::new();
    for r in &made {
        assert!(r.key.starts_with("nagios.fuzz."), "{}", r.key);
        assert!(keys.insert(r.key.to_string()), "duplicate key {}", r.key);
        if let Value::F64(v) = r.value {
            assert!(v.is_finite());
        }
    }
    // Whatever a check prints, the heartbeat that carries its readings can be sent.
    let hb = hb_proto::Heartbeat {
        host: "fuzz".into(),
        instance: 1,
        seq: 1,
        sent_ms: 1,
        interval_ms: 10_000,
        level: hb_proto::Level::Ok,
        readings: made
            .iter()
            .map(|r| hb_proto::Reading {
                key: r.key.to_string(),
                value: hb_proto::Value::F64(0.0),
                unit: r.unit.to_string(),
                level: hb_proto::Level::Ok,
                message: r.message.to_string(),
                threshold: String::new(),
            })
            .collect(),
    };
    if let Err(e) = hb_proto::encode(&hb, None, hb_proto::DEFAULT_MAX_DATAGRAM) {
        panic!("readings of a check cannot be sent: {e}");
    }
});

fn check_item(item: &PerfItem) {
    assert!(!item.label.is_empty());
    for v in [item.value, item.min, item.max].into_iter().flatten() {
        assert!(v.is_finite());
    }
    assert!(!item
        .uom
        .chars()
        .any(|c| c.is_ascii_digit() || c.is_whitespace() || ";=|'\"".contains(c)));
    for range in [&item.warn, &item.crit].into_iter().flatten() {
        assert!(!range.is_empty() && !range.contains(';') && !range.contains(char::is_whitespace));
    }
}

/// `'label'=value[uom];[warn];[crit];[min];[max]`, quotes doubled inside the label.
fn write_item(item: &PerfItem) -> String {
    let value = item.value.map_or("U".to_string(), |v| v.to_string());
    let opt = |v: Option<f64>| v.map(|v| v.to_string()).unwrap_or_default();
    format!(
        "'{}'={value}{};{};{};{};{}",
        item.label.replace('\'', "''"),
        item.uom,
        item.warn.as_deref().unwrap_or(""),
        item.crit.as_deref().unwrap_or(""),
        opt(item.min),
        opt(item.max),
    )
}
