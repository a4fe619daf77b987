//! The frame every dashboard page shares, as plain data for the templates: the clock
//! and version ([`Ctx`]), the fleet's counts ([`Fleet`]), the subsystems' status flattened
//! to lines ([`Subsystem`]), and the words and CSS classes of states and levels. Each
//! page's own data is built in its module: `overview.rs`, `host.rs`, `events.rs`,
//! `history.rs` (re-exported here).

use serde::Serialize;

use super::format;
use crate::registry::{Host, LevelName, Registry, Status};

pub use super::events::{events_page, EventRow, EventsPage, EventsQuery, EVENTS_PER_PAGE, KINDS};
pub use super::host::{host_page, HostPage};
pub use super::overview::{overview, Overview, OverviewQuery, Row, PER_PAGE, SPARK_SAMPLES};

/// What every page gets besides its own data.
pub struct Ctx {
    pub now_ms: u64,
    /// Fingerprint appended to asset URLs.
    pub version: String,
    /// Each subsystem's status (`Sink::status()`), by name.
    pub subsystems: Vec<(String, serde_json::Value)>,
}

/// The frame of every page.
#[derive(Serialize)]
pub struct Page<T: Serialize> {
    pub title: String,
    /// `data-page` of `<body>`: which script drives it.
    pub page: &'static str,
    pub version: String,
    pub now_ms: u64,
    pub now_iso: String,
    pub now_utc: String,
    pub fleet: Fleet,
    pub subsystems: Vec<Subsystem>,
    pub body: T,
}

impl<T: Serialize> Page<T> {
    pub fn new(ctx: &Ctx, fleet: Fleet, page: &'static str, title: String, body: T) -> Self {
        Page {
            title,
            page,
            version: ctx.version.clone(),
            now_ms: ctx.now_ms,
            now_iso: format::iso(ctx.now_ms),
            now_utc: format::utc(ctx.now_ms),
            fleet,
            subsystems: ctx
                .subsystems
                .iter()
                .map(|(n, v)| Subsystem::of(n, v, None))
                .collect(),
            body,
        }
    }
}

/// Counts per state, and the fleet's colour for the favicon.
#[derive(Debug, Default, Serialize, PartialEq)]
pub struct Fleet {
    pub total: usize,
    pub up: usize,
    pub down: usize,
    pub never: usize,
    pub ok: usize,
    pub warning: usize,
    pub critical: usize,
    pub unknown: usize,
    /// `down`, `warn`, `ok` or `empty`.
    pub state: &'static str,
    pub state_label: &'static str,
}

impl Fleet {
    pub fn of(reg: &Registry) -> Fleet {
        let mut f = Fleet::default();
        for h in reg.iter() {
            f.count(h);
        }
        f.finish()
    }

    /// Counts one more host.
    pub fn count(&mut self, h: &Host) {
        self.total += 1;
        match h.status {
            Status::Up => {
                self.up += 1;
                match h.level {
                    LevelName::Ok => self.ok += 1,
                    LevelName::Warning => self.warning += 1,
                    LevelName::Critical => self.critical += 1,
                    LevelName::Unknown => self.unknown += 1,
                }
            }
            Status::Down => self.down += 1,
            Status::NeverSeen => self.never += 1,
        }
    }

    /// The fleet's state once every host is counted.
    pub fn finish(self) -> Fleet {
        let f = &self;
        let (state, state_label) = if f.down + f.critical > 0 {
            ("down", "hosts DOWN or CRITICAL")
        } else if f.warning + f.unknown + f.never > 0 {
            ("warn", "hosts need attention")
        } else if f.total > 0 {
            ("ok", "all hosts UP and OK")
        } else {
            ("empty", "no hosts yet")
        };
        Fleet {
            state,
            state_label,
            ..self
        }
    }
}

/// One subsystem's status, flattened to lines of `key: value`.
#[derive(Debug, Serialize)]
pub struct Subsystem {
    pub name: String,
    pub items: Vec<Item>,
}

#[derive(Debug, Serialize)]
pub struct Item {
    pub key: String,
    pub value: String,
}

const MAX_ITEMS: usize = 40;

impl Subsystem {
    /// Flattens any JSON; with `host`, keeps only what is filed under that host's name.
    pub fn of(name: &str, status: &serde_json::Value, host: Option<&str>) -> Subsystem {
        let mut items = Vec::new();
        if !dns_records(status, host, &mut items) {
            flatten(status, &mut Vec::new(), host, &mut items);
        }
        Subsystem {
            name: name.to_string(),
            items,
        }
    }
}

fn flatten(v: &serde_json::Value, path: &mut Vec<String>, host: Option<&str>, out: &mut Vec<Item>) {
    use serde_json::Value;
    if out.len() >= MAX_ITEMS || path.len() > 6 {
        return;
    }
    let leaf = |v: &Value| match v {
        Value::String(s) => Some(s.clone()),
        Value::Null => Some("–".into()),
        Value::Bool(b) => Some(if *b { "yes" } else { "no" }.into()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    };
    match v {
        Value::Object(m) => {
            for (k, v) in m {
                path.push(k.clone());
                flatten(v, path, host, out);
                path.pop();
            }
        }
        Value::Array(a) if a.iter().all(|x| leaf(x).is_some()) => {
            let text = a.iter().filter_map(leaf).collect::<Vec<_>>().join(", ");
            push(path, text, host, out);
        }
        Value::Array(a) => {
            for (i, v) in a.iter().enumerate() {
                path.push(i.to_string());
                flatten(v, path, host, out);
                path.pop();
            }
        }
        // Times (`last_success_ms`) as times, not as numbers of milliseconds.
        Value::Number(n) if path.last().is_some_and(|k| k.ends_with("_ms")) => {
            let text = n.as_u64().map_or_else(|| n.to_string(), format::utc);
            push(path, text, host, out);
        }
        v => {
            if let Some(text) = leaf(v) {
                push(path, text, host, out);
            }
        }
    }
}

/// The dynamic DNS status (`{"backend", "records": {name: {host, records: {"A": ...}}},
/// ...}`) as one line per record, `web1.dyn.example. A` = `192.0.2.7, updated <time>`,
/// instead of the flattened JSON (whose keys would hold the dotted names). False when
/// `status` has another shape.
fn dns_records(status: &serde_json::Value, host: Option<&str>, out: &mut Vec<Item>) -> bool {
    let (Some(names), Some(backend)) = (status["records"].as_object(), status.get("backend"))
    else {
        return false;
    };
    if host.is_none() {
        if let Some(b) = backend.as_str() {
            out.push(Item {
                key: "backend".into(),
                value: b.to_string(),
            });
        }
    }
    for (name, n) in names {
        if host.is_some_and(|h| n["host"].as_str() != Some(h)) {
            continue;
        }
        for (rtype, r) in n["records"].as_object().into_iter().flatten() {
            let mut parts = vec![r["address"]
                .as_str()
                .unwrap_or("not written yet")
                .to_string()];
            if let Some(p) = r["pending"].as_str() {
                parts.push(format!("{p} pending"));
            }
            if let Some(ms) = r["last_success_ms"].as_u64() {
                parts.push(format!("updated {}", format::utc(ms)));
            }
            if let Some(e) = r["last_error"].as_str() {
                let failures = r["failures"].as_u64().unwrap_or(0);
                parts.push(format!("failing ({failures}×): {e}"));
            }
            out.push(Item {
                key: format!("{name} {rtype}"),
                value: parts.join(", "),
            });
            if out.len() >= MAX_ITEMS {
                return true;
            }
        }
    }
    if host.is_none() {
        for counter in ["queue_dropped", "ignored_unverified"] {
            if let Some(n) = status[counter].as_u64().filter(|n| *n > 0) {
                out.push(Item {
                    key: counter.replace('_', " "),
                    value: n.to_string(),
                });
            }
        }
    }
    true
}

fn push(path: &[String], value: String, host: Option<&str>, out: &mut Vec<Item>) {
    let key = match host {
        None => path.join("."),
        Some(h) => {
            if !path.iter().any(|p| p == h) {
                return;
            }
            path.iter()
                .filter(|p| *p != h)
                .cloned()
                .collect::<Vec<_>>()
                .join(".")
        }
    };
    out.push(Item {
        key: if key.is_empty() { "status".into() } else { key },
        value,
    });
}

#[derive(Serialize)]
pub struct Opt {
    pub value: String,
    pub label: String,
    pub selected: bool,
}

pub(super) fn opts(values: &[(&str, &str)], current: &str) -> Vec<Opt> {
    values
        .iter()
        .map(|(v, l)| Opt {
            value: v.to_string(),
            label: l.to_string(),
            selected: *v == current,
        })
        .collect()
}

pub fn status_class(s: Status) -> &'static str {
    match s {
        Status::Up => "up",
        Status::Down => "down",
        Status::NeverSeen => "never",
    }
}

pub fn status_label(s: Status) -> &'static str {
    match s {
        Status::Up => "UP",
        Status::Down => "DOWN",
        Status::NeverSeen => "NEVER SEEN",
    }
}

pub fn level_class(l: LevelName) -> &'static str {
    match l {
        LevelName::Ok => "ok",
        LevelName::Warning => "warning",
        LevelName::Critical => "critical",
        LevelName::Unknown => "unknown",
    }
}
