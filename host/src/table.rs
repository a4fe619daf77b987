//! Human-readable output of `hbc --once` and `hbc plugins`.

use std::fmt::Write;

use hb_proto::Value;

use crate::fit::Fitted;
use crate::plugins::Entry;

fn value_text(v: &Value) -> String {
    match v {
        Value::F64(x) if x.fract() == 0.0 && x.abs() < 1e15 => format!("{x:.0}"),
        Value::F64(x) => format!("{x:.2}"),
        Value::I64(x) => x.to_string(),
        Value::Bool(x) => x.to_string(),
        Value::Text(t) => t.clone(),
    }
}

/// Columns padded to their widest cell.
fn render(rows: &[Vec<String>]) -> String {
    let cols = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..cols)
        .map(|c| {
            rows.iter()
                .filter_map(|r| r.get(c))
                .map(|s| s.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for r in rows {
        let mut line = String::new();
        for (i, cell) in r.iter().enumerate() {
            if i + 1 == r.len() {
                line.push_str(cell);
            } else {
                let _ = write!(line, "{cell:<w$}  ", w = widths[i]);
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// The readings of one heartbeat as a table, then its level, size and what was left out.
pub fn readings(fitted: &Fitted) -> String {
    let hb = &fitted.hb;
    let mut rows = vec![vec![
        "KEY".to_string(),
        "VALUE".into(),
        "UNIT".into(),
        "LEVEL".into(),
        "THRESHOLD".into(),
        "MESSAGE".into(),
    ]];
    for r in &hb.readings {
        rows.push(vec![
            r.key.clone(),
            value_text(&r.value),
            r.unit.clone(),
            r.level.as_str().into(),
            r.threshold.clone(),
            r.message.lines().next().unwrap_or("").to_string(),
        ]);
    }
    let mut out = format!(
        "{}host {}: {} ({} readings in {} datagrams, {} bytes)\n",
        render(&rows),
        hb.host,
        hb.level.as_str(),
        hb.readings.len(),
        fitted.datagrams.len(),
        fitted.bytes()
    );
    if let Some(l) = &fitted.left_out {
        let _ = writeln!(out, "trimmed: {}", l.reading().message);
    }
    out
}

/// The plugins found, as a table.
pub fn plugins(entries: &[Entry]) -> String {
    let mut rows = vec![vec![
        "NAME".to_string(),
        "VERSION".into(),
        "FILE".into(),
        "STATUS".into(),
    ]];
    for e in entries {
        rows.push(vec![
            e.name.clone().unwrap_or_else(|| "-".into()),
            e.version.clone().unwrap_or_else(|| "-".into()),
            e.file.display().to_string(),
            e.status.clone(),
        ]);
    }
    render(&rows)
}

/// The readings of one heartbeat as JSON (for `hbc --once --json`), with its size in
/// datagrams and bytes and what was left out (`left_out`, `null` when nothing was).
pub fn json(fitted: &Fitted) -> serde_json::Value {
    let hb = &fitted.hb;
    let readings: Vec<serde_json::Value> = hb
        .readings
        .iter()
        .map(|r| {
            let value = match &r.value {
                Value::F64(x) => serde_json::json!(x),
                Value::I64(x) => serde_json::json!(x),
                Value::Bool(x) => serde_json::json!(x),
                Value::Text(t) => serde_json::json!(t),
            };
            serde_json::json!({
                "key": r.key, "value": value, "unit": r.unit, "level": r.level.as_str(),
                "threshold": r.threshold, "message": r.message,
            })
        })
        .collect();
    let left_out = fitted.left_out.as_ref().map(|l| {
        let plugins: serde_json::Map<String, serde_json::Value> = l
            .plugins
            .iter()
            .map(|(p, n)| (p.clone(), serde_json::json!(n)))
            .collect();
        serde_json::json!({
            "readings": l.readings, "of": l.of, "needed_datagrams": l.needed_parts,
            "plugins": plugins,
        })
    });
    serde_json::json!({
        "host": hb.host, "level": hb.level.as_str(), "datagrams": fitted.datagrams.len(),
        "bytes": fitted.bytes(), "left_out": left_out, "readings": readings,
    })
}
