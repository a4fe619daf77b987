//! What each page shows, as plain data for the templates: built from the registry, the
//! journal's events and the subsystems' status, with the clock passed in. Filtering,
//! sorting and paging of the overview live here (the page's script applies the same
//! rules in the browser, so a live page and a reloaded one agree).

use std::collections::HashMap;

use serde::Serialize;

use super::format;
use crate::event::{Event, EventKind};
use crate::registry::{Host, LevelName, Registry, Status, Val};
use crate::state::Summary;

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
    pub fn new(ctx: &Ctx, reg: &Registry, page: &'static str, title: String, body: T) -> Self {
        Page {
            title,
            page,
            version: ctx.version.clone(),
            now_ms: ctx.now_ms,
            now_iso: format::iso(ctx.now_ms),
            now_utc: format::utc(ctx.now_ms),
            fleet: Fleet::of(reg),
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
            f.total += 1;
            match h.status {
                Status::Up => {
                    f.up += 1;
                    match h.level {
                        LevelName::Ok => f.ok += 1,
                        LevelName::Warning => f.warning += 1,
                        LevelName::Critical => f.critical += 1,
                        LevelName::Unknown => f.unknown += 1,
                    }
                }
                Status::Down => f.down += 1,
                Status::NeverSeen => f.never += 1,
            }
        }
        (f.state, f.state_label) = if f.down + f.critical > 0 {
            ("down", "hosts DOWN or CRITICAL")
        } else if f.warning + f.unknown + f.never > 0 {
            ("warn", "hosts need attention")
        } else if f.total > 0 {
            ("ok", "all hosts UP and OK")
        } else {
            ("empty", "no hosts yet")
        };
        f
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
        flatten(status, &mut Vec::new(), host, &mut items);
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
        v => {
            if let Some(text) = leaf(v) {
                push(path, text, host, out);
            }
        }
    }
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

// ---------------------------------------------------------------------------------------
// Overview

/// The overview's filter, sort and page, from the query string (lenient: anything
/// unusable falls back to the default, a dashboard never answers 400).
#[derive(Debug, Clone, PartialEq)]
pub struct OverviewQuery {
    pub q: String,
    /// `UP`, `DOWN`, `NEVER_SEEN` or empty.
    pub status: String,
    /// `OK`, `WARNING`, `CRITICAL`, `UNKNOWN` or empty.
    pub level: String,
    pub sort: SortKey,
    pub desc: bool,
    pub page: usize,
    pub per: usize,
}

pub const PER_PAGE: [usize; 5] = [50, 100, 250, 500, 1000];
const DEFAULT_PER: usize = 250;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SortKey {
    /// DOWN, then CRITICAL, UNKNOWN, WARNING, never seen, OK; then name.
    State,
    Name,
    Address,
    Seen,
    Cpu,
    Mem,
    Fs,
    Load,
    Check,
}

const SORT_KEYS: [(SortKey, &str, &str); 9] = [
    (SortKey::State, "state", "State"),
    (SortKey::Name, "name", "Host"),
    (SortKey::Address, "address", "Address"),
    (SortKey::Seen, "seen", "Last seen"),
    (SortKey::Cpu, "cpu", "CPU"),
    (SortKey::Mem, "mem", "Memory"),
    (SortKey::Fs, "fs", "Fullest FS"),
    (SortKey::Load, "load", "Load"),
    (SortKey::Check, "check", "Worst check"),
];

impl SortKey {
    fn name(self) -> &'static str {
        SORT_KEYS
            .iter()
            .find(|(k, _, _)| *k == self)
            .map_or("state", |(_, n, _)| n)
    }
    /// Figures sort highest first on the first click.
    fn desc_first(self) -> bool {
        matches!(
            self,
            SortKey::Cpu | SortKey::Mem | SortKey::Fs | SortKey::Load
        )
    }
}

impl OverviewQuery {
    pub fn parse(params: &HashMap<String, String>) -> OverviewQuery {
        let get = |k: &str| params.get(k).map(|s| s.trim()).unwrap_or("");
        let status = get("status").to_ascii_uppercase();
        let level = get("level").to_ascii_uppercase();
        let sort = SORT_KEYS
            .iter()
            .find(|(_, n, _)| *n == get("sort"))
            .map_or(SortKey::State, |(k, _, _)| *k);
        let desc = match get("dir") {
            "desc" => true,
            "asc" => false,
            _ => sort.desc_first(),
        };
        let per = get("per")
            .parse()
            .ok()
            .filter(|p| PER_PAGE.contains(p))
            .unwrap_or(DEFAULT_PER);
        OverviewQuery {
            q: get("q").chars().take(200).collect(),
            status: if ["UP", "DOWN", "NEVER_SEEN"].contains(&status.as_str()) {
                status
            } else {
                String::new()
            },
            level: if LevelName::parse(&level).is_some() {
                level
            } else {
                String::new()
            },
            sort,
            desc,
            page: get("page").parse().unwrap_or(1).max(1),
            per,
        }
    }

    /// The query string for this query with some parameters changed; defaults omitted.
    fn href(&self, sort: SortKey, desc: bool, page: usize) -> String {
        let mut parts = Vec::new();
        if !self.q.is_empty() {
            parts.push(format!("q={}", format::query_value(&self.q)));
        }
        if !self.status.is_empty() {
            parts.push(format!("status={}", self.status));
        }
        if !self.level.is_empty() {
            parts.push(format!("level={}", self.level));
        }
        if sort != SortKey::State {
            parts.push(format!("sort={}", sort.name()));
        }
        if desc != sort.desc_first() {
            parts.push(format!("dir={}", if desc { "desc" } else { "asc" }));
        }
        if self.per != DEFAULT_PER {
            parts.push(format!("per={}", self.per));
        }
        if page > 1 {
            parts.push(format!("page={page}"));
        }
        if parts.is_empty() {
            "/".to_string()
        } else {
            format!("/?{}", parts.join("&"))
        }
    }

    fn matches(&self, s: &Summary, needle: &str) -> bool {
        (self.status.is_empty() || s.status.as_str() == self.status)
            && (self.level.is_empty() || s.level.as_str() == self.level)
            && (needle.is_empty() || s.name.to_ascii_lowercase().contains(needle))
    }
}

/// Position in the default order: DOWN, CRITICAL, UNKNOWN, WARNING, never seen, OK.
pub fn rank(s: &Summary) -> u8 {
    match s.status {
        Status::Down => 0,
        Status::NeverSeen => 4,
        Status::Up => match s.level {
            LevelName::Critical => 1,
            LevelName::Unknown => 2,
            LevelName::Warning => 3,
            LevelName::Ok => 5,
        },
    }
}

/// Compares two optional figures; missing ones always sort last.
fn by_figure(a: Option<f32>, b: Option<f32>, desc: bool) -> std::cmp::Ordering {
    use std::cmp::Ordering::*;
    match (a.filter(|v| v.is_finite()), b.filter(|v| v.is_finite())) {
        (Some(x), Some(y)) => {
            let o = x.total_cmp(&y);
            if desc {
                o.reverse()
            } else {
                o
            }
        }
        (Some(_), None) => Less,
        (None, Some(_)) => Greater,
        (None, None) => Equal,
    }
}

/// The overview's order; ties by name. Must match `compare` in `static/overview.js`.
pub fn compare(a: &Summary, b: &Summary, key: SortKey, desc: bool) -> std::cmp::Ordering {
    let flip = |o: std::cmp::Ordering| if desc { o.reverse() } else { o };
    let o = match key {
        SortKey::State => flip(rank(a).cmp(&rank(b))),
        SortKey::Name => flip(a.name.cmp(&b.name)),
        SortKey::Address => match (a.address, b.address) {
            (Some(x), Some(y)) => flip(x.to_string().cmp(&y.to_string())),
            (Some(_), None) => std::cmp::Ordering::Less,
            (None, Some(_)) => std::cmp::Ordering::Greater,
            (None, None) => std::cmp::Ordering::Equal,
        },
        SortKey::Seen => match (a.last_seen_ms, b.last_seen_ms) {
            (Some(x), Some(y)) => flip(x.cmp(&y)),
            (Some(_), None) => std::cmp::Ordering::Less,
            (None, Some(_)) => std::cmp::Ordering::Greater,
            (None, None) => std::cmp::Ordering::Equal,
        },
        SortKey::Cpu => by_figure(a.cpu, b.cpu, desc),
        SortKey::Mem => by_figure(a.mem, b.mem, desc),
        SortKey::Fs => by_figure(a.fs, b.fs, desc),
        SortKey::Load => by_figure(a.load, b.load, desc),
        SortKey::Check => {
            let sev = |s: &Summary| s.worst.as_ref().map_or(0, |w| w.level.severity() + 1);
            flip(sev(b).cmp(&sev(a))).then_with(|| {
                let m = |s: &Summary| s.worst.as_ref().map(|w| w.key.clone());
                flip(m(a).cmp(&m(b)))
            })
        }
    };
    o.then_with(|| a.name.cmp(&b.name))
}

#[derive(Serialize)]
pub struct Overview {
    pub q: String,
    pub status: String,
    pub level: String,
    pub sort: &'static str,
    pub dir: &'static str,
    pub per: usize,
    pub page: usize,
    pub pages: usize,
    /// Hosts matching the filter.
    pub matching: usize,
    pub first: usize,
    pub last: usize,
    pub rows: Vec<Row>,
    pub headers: Vec<Header>,
    pub status_options: Vec<Opt>,
    pub level_options: Vec<Opt>,
    pub per_options: Vec<Opt>,
    pub prev_href: Option<String>,
    pub next_href: Option<String>,
    pub filtered: bool,
}

#[derive(Serialize)]
pub struct Header {
    pub key: &'static str,
    pub label: &'static str,
    pub href: String,
    /// `ascending`, `descending` or `none` (for `aria-sort`).
    pub aria_sort: &'static str,
    pub class: &'static str,
}

#[derive(Serialize)]
pub struct Opt {
    pub value: String,
    pub label: String,
    pub selected: bool,
}

fn opts(values: &[(&str, &str)], current: &str) -> Vec<Opt> {
    values
        .iter()
        .map(|(v, l)| Opt {
            value: v.to_string(),
            label: l.to_string(),
            selected: *v == current,
        })
        .collect()
}

/// One host as a row of the overview (and the head of its page).
#[derive(Serialize)]
pub struct Row {
    pub name: String,
    pub href: String,
    pub status: &'static str,
    pub status_class: &'static str,
    pub status_label: &'static str,
    pub level: &'static str,
    pub level_class: &'static str,
    pub watched: bool,
    pub address: String,
    pub seen_ms: Option<u64>,
    pub seen_iso: String,
    pub seen_utc: String,
    pub seen_ago: String,
    pub since_ms: u64,
    pub since_iso: String,
    pub since_utc: String,
    pub since_ago: String,
    pub metrics: Vec<Metric>,
    pub check: Option<CheckView>,
}

#[derive(Serialize)]
pub struct Metric {
    pub key: &'static str,
    pub label: &'static str,
    pub text: String,
    /// Sparkline path in a 60×16 box.
    pub spark: String,
}

#[derive(Serialize)]
pub struct CheckView {
    pub key: String,
    pub level: &'static str,
    pub level_class: &'static str,
    pub message: String,
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

pub const SPARK_W: f64 = 60.0;
pub const SPARK_H: f64 = 16.0;
/// Samples a sparkline shows.
pub const SPARK_SAMPLES: usize = 30;

impl Row {
    pub fn of(s: &Summary, h: Option<&Host>, now_ms: u64) -> Row {
        let hist: Vec<_> = h
            .map(|h| {
                let skip = h.history.len().saturating_sub(SPARK_SAMPLES);
                h.history.iter().skip(skip).copied().collect()
            })
            .unwrap_or_default();
        let series =
            |f: fn(&crate::registry::Sample) -> f32| -> Vec<f32> { hist.iter().map(f).collect() };
        let load = series(|x| x.load);
        let load_max = format::nice_max(
            load.iter()
                .copied()
                .filter(|v| v.is_finite())
                .fold(1.0f32, f32::max)
                .into(),
        );
        let metrics = vec![
            Metric {
                key: "cpu",
                label: "CPU",
                text: format::pct(s.cpu),
                spark: format::path(&series(|x| x.cpu), SPARK_W, SPARK_H, 100.0),
            },
            Metric {
                key: "mem",
                label: "Memory",
                text: format::pct(s.mem),
                spark: format::path(&series(|x| x.mem), SPARK_W, SPARK_H, 100.0),
            },
            Metric {
                key: "fs",
                label: "Fullest FS",
                text: format::pct(s.fs),
                spark: format::path(&series(|x| x.fs), SPARK_W, SPARK_H, 100.0),
            },
            Metric {
                key: "load",
                label: "Load",
                text: format::load(s.load),
                spark: format::path(&load, SPARK_W, SPARK_H, load_max),
            },
        ];
        Row {
            name: s.name.clone(),
            href: format!("/hosts/{}", format::url_segment(&s.name)),
            status: s.status.as_str(),
            status_class: status_class(s.status),
            status_label: status_label(s.status),
            level: s.level.as_str(),
            level_class: level_class(s.level),
            watched: s.watched,
            address: s.address.map(|a| a.to_string()).unwrap_or_default(),
            seen_ms: s.last_seen_ms,
            seen_iso: s.last_seen_ms.map(format::iso).unwrap_or_default(),
            seen_utc: s.last_seen_ms.map(format::utc).unwrap_or_default(),
            seen_ago: s
                .last_seen_ms
                .map(|t| format::ago(now_ms, t))
                .unwrap_or_else(|| "never".into()),
            since_ms: s.since_ms,
            since_iso: format::iso(s.since_ms),
            since_utc: format::utc(s.since_ms),
            since_ago: format::ago(now_ms, s.since_ms),
            metrics,
            check: s.worst.as_ref().map(|w| CheckView {
                key: w.key.clone(),
                level: w.level.as_str(),
                level_class: level_class(w.level),
                message: w.message.clone(),
            }),
        }
    }
}

pub fn overview(reg: &Registry, q: &OverviewQuery, now_ms: u64) -> Overview {
    let needle = q.q.to_ascii_lowercase();
    let mut rows: Vec<Summary> = reg
        .iter()
        .map(Summary::of)
        .filter(|s| q.matches(s, &needle))
        .collect();
    rows.sort_by(|a, b| compare(a, b, q.sort, q.desc));
    let matching = rows.len();
    let pages = matching.div_ceil(q.per).max(1);
    let page = q.page.min(pages);
    let start = (page - 1) * q.per;
    let shown: Vec<Row> = rows
        .iter()
        .skip(start)
        .take(q.per)
        .map(|s| Row::of(s, reg.get(&s.name), now_ms))
        .collect();
    let headers = SORT_KEYS
        .iter()
        .map(|(k, name, label)| {
            let active = *k == q.sort;
            let desc = if active { !q.desc } else { k.desc_first() };
            Header {
                key: name,
                label,
                href: q.href(*k, desc, 1),
                aria_sort: match (active, q.desc) {
                    (false, _) => "none",
                    (true, false) => "ascending",
                    (true, true) => "descending",
                },
                class: match k {
                    SortKey::Cpu | SortKey::Mem | SortKey::Fs | SortKey::Load => "num",
                    _ => "",
                },
            }
        })
        .collect();
    Overview {
        q: q.q.clone(),
        status: q.status.clone(),
        level: q.level.clone(),
        sort: q.sort.name(),
        dir: if q.desc { "desc" } else { "asc" },
        per: q.per,
        page,
        pages,
        matching,
        first: if matching == 0 { 0 } else { start + 1 },
        last: start + shown.len(),
        rows: shown,
        headers,
        status_options: opts(
            &[
                ("", "any state"),
                ("UP", "UP"),
                ("DOWN", "DOWN"),
                ("NEVER_SEEN", "never seen"),
            ],
            &q.status,
        ),
        level_options: opts(
            &[
                ("", "any level"),
                ("OK", "OK"),
                ("WARNING", "WARNING"),
                ("CRITICAL", "CRITICAL"),
                ("UNKNOWN", "UNKNOWN"),
            ],
            &q.level,
        ),
        per_options: PER_PAGE
            .iter()
            .map(|p| Opt {
                value: p.to_string(),
                label: format!("{p} per page"),
                selected: *p == q.per,
            })
            .collect(),
        prev_href: (page > 1).then(|| q.href(q.sort, q.desc, page - 1)),
        next_href: (page < pages).then(|| q.href(q.sort, q.desc, page + 1)),
        filtered: !(q.q.is_empty() && q.status.is_empty() && q.level.is_empty()),
    }
}

// ---------------------------------------------------------------------------------------
// Host page

#[derive(Serialize)]
pub struct HostPage {
    pub row: Row,
    pub first_seen_iso: String,
    pub first_seen_utc: String,
    pub first_seen_ms: Option<u64>,
    pub interval: String,
    pub interval_ms: u32,
    pub grace: String,
    pub deadline_ms: Option<u64>,
    pub deadline_iso: String,
    pub deadline_utc: String,
    pub received: u64,
    pub lost: u64,
    pub loss_pct: String,
    pub addresses: Vec<AddrView>,
    pub groups: Vec<Group>,
    pub nagios: Vec<NagiosCheck>,
    pub charts: Vec<Chart>,
    pub events: Vec<EventRow>,
    pub events_href: String,
    pub subsystems: Vec<Subsystem>,
}

#[derive(Serialize)]
pub struct AddrView {
    pub addr: String,
    pub last_ms: u64,
    pub last_iso: String,
    pub last_utc: String,
    pub last_ago: String,
}

#[derive(Serialize)]
pub struct Group {
    pub plugin: String,
    pub count: usize,
    pub level: &'static str,
    pub level_class: &'static str,
    pub readings: Vec<ReadingView>,
}

#[derive(Serialize)]
pub struct ReadingView {
    pub key: String,
    /// The key without its plugin prefix.
    pub name: String,
    pub value: String,
    /// The raw number, for the page's script to chart while it is open.
    pub number: Option<f64>,
    pub unit: String,
    pub level: &'static str,
    pub level_class: &'static str,
    pub threshold: String,
    pub message: String,
}

#[derive(Serialize)]
pub struct NagiosCheck {
    pub name: String,
    pub level: &'static str,
    pub level_class: &'static str,
    pub output: String,
    pub perfdata: Vec<ReadingView>,
    pub duration: String,
}

#[derive(Serialize)]
pub struct Chart {
    pub id: &'static str,
    pub title: &'static str,
    pub lines: Vec<ChartLine>,
    pub y_max: String,
    pub y_mid: String,
    pub start_ms: u64,
    pub start_iso: String,
    pub start_utc: String,
    pub end_ms: u64,
    pub end_iso: String,
    pub end_utc: String,
    pub samples: usize,
    /// Text alternative: each line's last, lowest and highest value.
    pub description: String,
}

#[derive(Serialize)]
pub struct ChartLine {
    pub key: &'static str,
    pub label: &'static str,
    pub d: String,
    pub last: String,
}

/// A chart line: key (CSS class), label, and the figure it plots.
type LineSpec = (
    &'static str,
    &'static str,
    fn(&crate::registry::Sample) -> f32,
);

pub const CHART_W: f64 = 600.0;
pub const CHART_H: f64 = 160.0;

fn chart(
    host: &Host,
    id: &'static str,
    title: &'static str,
    lines: &[LineSpec],
    percent: bool,
) -> Chart {
    let hist: Vec<_> = host.history.iter().copied().collect();
    let series: Vec<Vec<f32>> = lines
        .iter()
        .map(|(_, _, f)| hist.iter().map(f).collect())
        .collect();
    let max = if percent {
        100.0
    } else {
        format::nice_max(
            series
                .iter()
                .flatten()
                .copied()
                .filter(|v| v.is_finite())
                .fold(0.0f32, f32::max)
                .into(),
        )
    };
    let fmt = |v: f64| {
        if percent {
            format!("{} %", format::trim(v, 1))
        } else {
            format::trim(v, 2)
        }
    };
    let mut description = Vec::new();
    let lines = lines
        .iter()
        .zip(&series)
        .map(|((key, label, _), vals)| {
            let finite: Vec<f64> = vals
                .iter()
                .filter(|v| v.is_finite())
                .map(|v| f64::from(*v))
                .collect();
            let last = finite.last().map(|v| fmt(*v)).unwrap_or_else(|| "–".into());
            if let (Some(lo), Some(hi)) = (
                finite.iter().copied().reduce(f64::min),
                finite.iter().copied().reduce(f64::max),
            ) {
                description.push(format!(
                    "{label}: now {last}, lowest {}, highest {}",
                    fmt(lo),
                    fmt(hi)
                ));
            }
            ChartLine {
                key,
                label,
                d: format::path(vals, CHART_W, CHART_H, max),
                last,
            }
        })
        .collect();
    let start_ms = hist.first().map_or(0, |s| u64::from(s.t) * 1000);
    let end_ms = hist.last().map_or(0, |s| u64::from(s.t) * 1000);
    Chart {
        id,
        title,
        lines,
        y_max: fmt(max),
        y_mid: fmt(max / 2.0),
        start_ms,
        start_iso: format::iso(start_ms),
        start_utc: format::utc(start_ms),
        end_ms,
        end_iso: format::iso(end_ms),
        end_utc: format::utc(end_ms),
        samples: hist.len(),
        description: if description.is_empty() {
            "no data yet".into()
        } else {
            description.join("; ")
        },
    }
}

fn reading_view(r: &crate::registry::Reading, prefix: &str) -> ReadingView {
    ReadingView {
        key: r.key.to_string(),
        name: r
            .key
            .strip_prefix(prefix)
            .and_then(|k| k.strip_prefix('.'))
            .unwrap_or(&r.key)
            .to_string(),
        value: format::value(&r.value, &r.unit),
        number: match &r.value {
            Val::Text(_) | Val::Bool(_) => None,
            v => v.as_f64().filter(|f| f.is_finite()),
        },
        unit: r.unit.to_string(),
        level: r.level.as_str(),
        level_class: level_class(r.level),
        threshold: r.threshold.to_string(),
        message: r.message.to_string(),
    }
}

pub fn host_page(
    h: &Host,
    events: &[Event],
    subsystems: &[(String, serde_json::Value)],
    now_ms: u64,
) -> HostPage {
    let summary = Summary::of(h);
    // Readings grouped by plugin (the key's first part), in the order they came.
    let mut groups: Vec<Group> = Vec::new();
    for r in &h.readings {
        let plugin = r.key.split('.').next().unwrap_or("").to_string();
        let view = reading_view(r, &plugin);
        match groups.iter_mut().find(|g| g.plugin == plugin) {
            Some(g) => g.readings.push(view),
            None => groups.push(Group {
                plugin,
                count: 0,
                level: "OK",
                level_class: "ok",
                readings: vec![view],
            }),
        }
    }
    for g in &mut groups {
        g.count = g.readings.len();
        let worst = g
            .readings
            .iter()
            .filter_map(|r| LevelName::parse(r.level))
            .max_by_key(|l| l.severity())
            .unwrap_or(LevelName::Ok);
        g.level = worst.as_str();
        g.level_class = level_class(worst);
    }
    // Nagios checks: `nagios.<check>.state` carries the level and output, the other
    // `nagios.<check>.*` readings are its perfdata.
    let mut nagios = Vec::new();
    for r in &h.readings {
        let Some(check) = r
            .key
            .strip_prefix("nagios.")
            .and_then(|k| k.strip_suffix(".state"))
        else {
            continue;
        };
        let prefix = format!("nagios.{check}");
        let mut perfdata = Vec::new();
        let mut duration = String::new();
        for p in &h.readings {
            if p.key
                .strip_prefix(prefix.as_str())
                .and_then(|k| k.strip_prefix('.'))
                == Some("duration_s")
            {
                duration = format::value(&p.value, &p.unit);
            } else if p.key.starts_with(&format!("{prefix}.")) && p.key != r.key {
                perfdata.push(reading_view(p, &prefix));
            }
        }
        nagios.push(NagiosCheck {
            name: check.to_string(),
            level: r.level.as_str(),
            level_class: level_class(r.level),
            output: r.message.to_string(),
            perfdata,
            duration,
        });
    }
    let charts = vec![
        chart(
            h,
            "usage",
            "CPU, memory and fullest filesystem (%)",
            &[
                ("cpu", "CPU", |s| s.cpu),
                ("mem", "Memory", |s| s.mem),
                ("fs", "Fullest FS", |s| s.fs),
            ],
            true,
        ),
        chart(
            h,
            "load",
            "Load (1 min)",
            &[("load", "Load", |s| s.load)],
            false,
        ),
    ];
    let deadline = (h.status == Status::Up && h.deadline_ms > 0).then_some(h.deadline_ms);
    let total = h.received + h.lost;
    HostPage {
        row: Row::of(&summary, Some(h), now_ms),
        first_seen_iso: h.first_seen_ms.map(format::iso).unwrap_or_default(),
        first_seen_utc: h.first_seen_ms.map(format::utc).unwrap_or_default(),
        first_seen_ms: h.first_seen_ms,
        interval: if h.interval_ms > 0 {
            format::interval(u64::from(h.interval_ms))
        } else {
            "–".into()
        },
        interval_ms: h.interval_ms,
        grace: format::trim(h.grace, 2),
        deadline_ms: deadline,
        deadline_iso: deadline.map(format::iso).unwrap_or_default(),
        deadline_utc: deadline.map(format::utc).unwrap_or_default(),
        received: h.received,
        lost: h.lost,
        loss_pct: if total > 0 {
            format!(
                "{} %",
                format::trim(h.lost as f64 * 100.0 / total as f64, 2)
            )
        } else {
            "–".into()
        },
        addresses: {
            let mut a: Vec<AddrView> = h
                .addrs
                .iter()
                .map(|a| AddrView {
                    addr: a.addr.to_string(),
                    last_ms: a.last_ms,
                    last_iso: format::iso(a.last_ms),
                    last_utc: format::utc(a.last_ms),
                    last_ago: format::ago(now_ms, a.last_ms),
                })
                .collect();
            a.sort_by_key(|x| std::cmp::Reverse(x.last_ms));
            a
        },
        groups,
        nagios,
        charts,
        events: events.iter().map(|e| EventRow::of(e, now_ms)).collect(),
        events_href: format!("/events?host={}", format::query_value(&h.name)),
        subsystems: subsystems
            .iter()
            .map(|(n, v)| Subsystem::of(n, v, Some(&h.name)))
            .filter(|s| !s.items.is_empty())
            .collect(),
    }
}

// ---------------------------------------------------------------------------------------
// Events

/// Every kind hbd itself makes; subsystems may add others (shown as they come).
pub const KINDS: [(&str, &str); 7] = [
    ("host_new", "new host"),
    ("host_up", "host UP"),
    ("host_down", "host DOWN"),
    ("host_level", "host level"),
    ("check_level", "check level"),
    ("host_forgotten", "host forgotten"),
    ("system", "hbd itself"),
];

#[derive(Serialize)]
pub struct EventRow {
    pub id: u64,
    pub ts_ms: u64,
    pub iso: String,
    pub utc: String,
    pub ago: String,
    pub host: String,
    pub host_href: String,
    pub kind: &'static str,
    pub kind_label: String,
    /// Colour of the change: the level or state it went to.
    pub to_class: &'static str,
    pub key: String,
    pub from: String,
    pub to: String,
    pub message: String,
}

impl EventRow {
    pub fn of(e: &Event, now_ms: u64) -> EventRow {
        let kind = e.kind.as_str();
        let to = e.to.clone().unwrap_or_default();
        let to_class = match to.as_str() {
            "UP" | "OK" => "ok",
            "DOWN" | "CRITICAL" => "critical",
            "WARNING" => "warning",
            "UNKNOWN" | "NEVER_SEEN" => "unknown",
            _ if e.kind == EventKind::System => "unknown",
            _ => "none",
        };
        EventRow {
            id: e.id,
            ts_ms: e.ts_ms,
            iso: format::iso(e.ts_ms),
            utc: format::utc(e.ts_ms),
            ago: format::ago(now_ms, e.ts_ms),
            host: e.host.clone(),
            host_href: format!("/hosts/{}", format::url_segment(&e.host)),
            kind,
            kind_label: KINDS
                .iter()
                .find(|(k, _)| *k == kind)
                .map_or_else(|| kind.replace('_', " "), |(_, l)| l.to_string()),
            to_class,
            key: e.key.clone().unwrap_or_default(),
            from: e.from.clone().unwrap_or_default(),
            to,
            message: e.message.clone(),
        }
    }
}

/// The events page's filter, from the query string.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EventsQuery {
    pub host: String,
    pub kind: String,
    /// `datetime-local` values, in the viewer's zone when `tz` (minutes behind UTC, from
    /// the page's script) is given, else UTC.
    pub from: String,
    pub to: String,
    pub tz: Option<i64>,
    pub before: Option<u64>,
    pub per: usize,
}

pub const EVENTS_PER_PAGE: usize = 100;

impl EventsQuery {
    pub fn parse(params: &HashMap<String, String>) -> EventsQuery {
        let get = |k: &str| params.get(k).map(|s| s.trim()).unwrap_or("").to_string();
        EventsQuery {
            host: get("host").chars().take(300).collect(),
            kind: get("kind"),
            from: get("from"),
            to: get("to"),
            tz: get("tz").parse().ok().filter(|m: &i64| m.abs() <= 24 * 60),
            before: get("before").parse().ok(),
            per: get("per")
                .parse()
                .ok()
                .filter(|p| (10..=1000).contains(p))
                .unwrap_or(EVENTS_PER_PAGE),
        }
    }

    /// The journal query, or what is wrong with the filter.
    pub fn journal(&self) -> Result<crate::journal::Query, String> {
        let mut kinds = Vec::new();
        for k in self.kind.split(',').filter(|k| !k.is_empty()) {
            kinds.push(EventKind::parse(k).ok_or_else(|| format!("{k:?} is not an event kind"))?);
        }
        let tz = self.tz.unwrap_or(0);
        let time = |t: &str, what: &str| -> Result<Option<u64>, String> {
            if t.is_empty() {
                return Ok(None);
            }
            format::parse_local(t, tz)
                .map(Some)
                .ok_or_else(|| format!("{what}: {t:?} is not a date and time (YYYY-MM-DDTHH:MM)"))
        };
        let since_ms = time(&self.from, "from")?;
        // `to` is inclusive of its whole minute.
        let until_ms = time(&self.to, "to")?.map(|t| t + 59_999);
        if let (Some(s), Some(u)) = (since_ms, until_ms) {
            if s > u {
                return Err("from is after to".into());
            }
        }
        Ok(crate::journal::Query {
            host: (!self.host.is_empty()).then(|| self.host.clone()),
            kinds,
            since_ms,
            until_ms,
            before_id: self.before,
            limit: self.per,
        })
    }

    fn href(&self, before: Option<u64>) -> String {
        let mut parts = Vec::new();
        for (k, v) in [
            ("host", &self.host),
            ("kind", &self.kind),
            ("from", &self.from),
            ("to", &self.to),
        ] {
            if !v.is_empty() {
                parts.push(format!("{k}={}", format::query_value(v)));
            }
        }
        if let Some(tz) = self.tz {
            parts.push(format!("tz={tz}"));
        }
        if self.per != EVENTS_PER_PAGE {
            parts.push(format!("per={}", self.per));
        }
        if let Some(b) = before {
            parts.push(format!("before={b}"));
        }
        if parts.is_empty() {
            "/events".into()
        } else {
            format!("/events?{}", parts.join("&"))
        }
    }
}

#[derive(Serialize)]
pub struct EventsPage {
    pub host: String,
    pub kind: String,
    pub from: String,
    pub to: String,
    pub tz: String,
    pub kinds: Vec<Opt>,
    pub rows: Vec<EventRow>,
    pub error: Option<String>,
    pub older_href: Option<String>,
    pub newest_href: Option<String>,
    /// First page: new events are added live.
    pub live: bool,
    pub filtered: bool,
}

pub fn events_page(q: &EventsQuery, events: Result<Vec<Event>, String>, now_ms: u64) -> EventsPage {
    let (rows, error) = match events {
        Ok(ev) => (ev.iter().map(|e| EventRow::of(e, now_ms)).collect(), None),
        Err(e) => (Vec::new(), Some(e)),
    };
    let rows: Vec<EventRow> = rows;
    let older_href = (rows.len() == q.per)
        .then(|| rows.last().map(|r| q.href(Some(r.id))))
        .flatten();
    let mut kinds = vec![Opt {
        value: String::new(),
        label: "any kind".into(),
        selected: q.kind.is_empty(),
    }];
    kinds.extend(KINDS.iter().map(|(k, l)| Opt {
        value: k.to_string(),
        label: l.to_string(),
        selected: q.kind == *k,
    }));
    if !q.kind.is_empty() && !KINDS.iter().any(|(k, _)| *k == q.kind) {
        kinds.push(Opt {
            value: q.kind.clone(),
            label: q.kind.clone(),
            selected: true,
        });
    }
    EventsPage {
        host: q.host.clone(),
        kind: q.kind.clone(),
        from: q.from.clone(),
        to: q.to.clone(),
        tz: q.tz.map(|t| t.to_string()).unwrap_or_default(),
        kinds,
        rows,
        error,
        older_href,
        newest_href: q.before.map(|_| q.href(None)),
        live: q.before.is_none() && q.to.is_empty(),
        filtered: !(q.host.is_empty() && q.kind.is_empty() && q.from.is_empty() && q.to.is_empty()),
    }
}
