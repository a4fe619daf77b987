//! Reading history back from a PromQL HTTP API (`history_url`): one `query_range` for
//! one reading of one host over 1 h, 24 h or 7 d, with a step that gives at most
//! [`POINTS`] points, so an answer's size does not depend on how long the database
//! keeps data. Blocking (ureq): the dashboard calls it off its event loop.

use std::io::Read;
use std::time::Duration;

use serde::Deserialize;

/// Points per chart at most (per series: a reading whose unit changed has two).
pub const POINTS: u64 = 360;
/// Largest answer read from the database.
pub const MAX_ANSWER: u64 = 4 << 20;
/// Series of one reading read at most (a key normally has one: one unit).
pub const MAX_SERIES: usize = 4;

/// The ranges the dashboard offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Range {
    Hour,
    Day,
    Week,
}

impl Range {
    pub const ALL: [Range; 3] = [Range::Hour, Range::Day, Range::Week];

    pub fn parse(s: &str) -> Option<Range> {
        match s {
            "1h" => Some(Range::Hour),
            "24h" => Some(Range::Day),
            "7d" => Some(Range::Week),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Range::Hour => "1h",
            Range::Day => "24h",
            Range::Week => "7d",
        }
    }

    pub fn seconds(self) -> u64 {
        match self {
            Range::Hour => 3_600,
            Range::Day => 86_400,
            Range::Week => 7 * 86_400,
        }
    }

    /// Seconds between points: 10 s, 4 min, 28 min.
    pub fn step(self) -> u64 {
        (self.seconds() / POINTS).max(10)
    }

    /// The queried window `(start, end)` in Unix seconds for a chart ending at `now_s`.
    /// The database evaluates at `start + k × step`, which is where the page puts points.
    pub fn window(self, now_s: u64) -> (u64, u64) {
        (now_s.saturating_sub(self.seconds()), now_s)
    }

    /// The PromQL of one reading: over 1 h the samples themselves (a point every 10 s);
    /// over longer ranges the average of each step, so a point stands for its whole
    /// step rather than for the one sample before it.
    pub fn promql(self, host: &str, key: &str) -> String {
        match self {
            Range::Hour => selector(host, key),
            _ => format!("avg_over_time({}[{}s])", selector(host, key), self.step()),
        }
    }
}

/// A PromQL string literal (double-quoted; backslash, quote and line breaks escaped).
pub fn promql_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// The PromQL selector of one reading of one host.
pub fn selector(host: &str, key: &str) -> String {
    format!(
        "{}{{host={},key={}}}",
        crate::series::READING,
        promql_string(host),
        promql_string(key)
    )
}

/// One series read back: its unit and `(Unix seconds, value)` points in time order.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Points {
    pub unit: String,
    pub points: Vec<(f64, f64)>,
}

/// Why a chart could not be read.
#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    #[error("history database not reached: {0}")]
    Unreachable(String),
    #[error("history database answered HTTP {0}: {1}")]
    Status(u16, String),
    #[error("history database answer not understood: {0}")]
    Answer(String),
}

#[derive(Deserialize)]
struct Answer {
    status: String,
    #[serde(default)]
    error: Option<String>,
    #[serde(default)]
    data: Option<Data>,
}

#[derive(Deserialize)]
struct Data {
    result: Vec<Series>,
}

#[derive(Deserialize)]
struct Series {
    metric: std::collections::BTreeMap<String, String>,
    values: Vec<(f64, String)>,
}

/// Parses a `query_range` answer (pure).
pub fn parse_answer(text: &str) -> Result<Vec<Points>, QueryError> {
    let a: Answer = serde_json::from_str(text).map_err(|e| QueryError::Answer(e.to_string()))?;
    if a.status != "success" {
        return Err(QueryError::Answer(a.error.unwrap_or(a.status)));
    }
    let data = a.data.ok_or_else(|| QueryError::Answer("no data".into()))?;
    Ok(data
        .result
        .into_iter()
        .take(MAX_SERIES)
        .map(|s| Points {
            unit: s.metric.get("unit").cloned().unwrap_or_default(),
            points: s
                .values
                .into_iter()
                .filter_map(|(t, v)| v.parse::<f64>().ok().map(|v| (t, v)))
                .collect(),
        })
        .collect())
}

/// Reads one reading of one host over `range` ending at `end_s` (Unix seconds), with
/// `auth` as the `Authorization` header.
pub fn query_range(
    agent: &ureq::Agent,
    base: &str,
    auth: Option<&str>,
    host: &str,
    key: &str,
    range: Range,
    end_s: u64,
) -> Result<Vec<Points>, QueryError> {
    let url = format!("{}/api/v1/query_range", base.trim_end_matches('/'));
    let step = range.step();
    let (start, end) = range.window(end_s);
    let mut req = agent
        .get(&url)
        .query("query", &range.promql(host, key))
        .query("start", &start.to_string())
        .query("end", &end.to_string())
        .query("step", &step.to_string());
    if let Some(a) = auth {
        req = req.set("Authorization", a);
    }
    let resp = req.call();
    let resp = match resp {
        Ok(r) => r,
        Err(ureq::Error::Status(code, r)) => {
            let mut t = String::new();
            let _ = r.into_reader().take(300).read_to_string(&mut t);
            return Err(QueryError::Status(code, t));
        }
        // Kind and message only: ureq's Display repeats the URL, which may hold user
        // information.
        Err(ureq::Error::Transport(t)) => {
            let mut m = t.kind().to_string();
            if let Some(x) = t.message() {
                m = format!("{m}: {x}");
            }
            if let Some(src) = std::error::Error::source(&t) {
                m = format!("{m}: {src}");
            }
            return Err(QueryError::Unreachable(m));
        }
    };
    let mut text = String::new();
    resp.into_reader()
        .take(MAX_ANSWER)
        .read_to_string(&mut text)
        .map_err(|e| QueryError::Unreachable(e.to_string()))?;
    parse_answer(&text)
}

/// A blocking client for queries with the given timeout and TLS settings
/// (`history_ca_file`).
pub fn agent(timeout: Duration, tls: std::sync::Arc<rustls::ClientConfig>) -> ureq::Agent {
    ureq::AgentBuilder::new()
        .timeout_connect(timeout.min(Duration::from_secs(5)))
        .timeout(timeout)
        .user_agent(concat!("hbd/", env!("CARGO_PKG_VERSION")))
        .tls_config(tls)
        .build()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selectors_escape_label_values() {
        assert_eq!(
            selector("web\"1", "fs./a\\b.used"),
            r#"hb_reading{host="web\"1",key="fs./a\\b.used"}"#
        );
    }

    #[test]
    fn ranges_and_steps() {
        let steps: Vec<u64> = Range::ALL.iter().map(|r| r.step()).collect();
        assert_eq!(steps, [10, 240, 1680]);
        assert_eq!(Range::parse("24h"), Some(Range::Day));
        assert_eq!(Range::parse("1y"), None);
        assert_eq!(
            Range::Day.promql("a", "b"),
            r#"avg_over_time(hb_reading{host="a",key="b"}[240s])"#
        );
        assert_eq!(Range::Hour.window(10_000), (6_400, 10_000));
    }

    /// An answer in the shape Prometheus' HTTP API documents (`resultType: matrix`).
    #[test]
    fn parses_a_query_range_answer() {
        let text = r#"{"status":"success","data":{"resultType":"matrix","result":[{"metric":{"__name__":"hb_reading","host":"web1","key":"cpu.usage","unit":"%"},"values":[[1700000000,"12.5"],[1700000010,"NaN"],[1700000020,"13"]]}]}}"#;
        let p = parse_answer(text).expect("parsed");
        assert_eq!(p.len(), 1);
        assert_eq!(p[0].unit, "%");
        assert_eq!(p[0].points.len(), 3);
        assert_eq!(p[0].points[2], (1_700_000_020.0, 13.0));
        let e = parse_answer(r#"{"status":"error","error":"parse error"}"#).expect_err("error");
        assert!(e.to_string().contains("parse error"));
    }
}
