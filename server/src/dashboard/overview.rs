//! The fleet overview (`/`): the query string read leniently (a dashboard never answers
//! 400), the hosts filtered, sorted and paged by the shared host query, and each host on
//! the page as a row with sparklines. The page's script applies the same order in the
//! browser (`static/overview.js`), so a live page and a reloaded one agree.

use std::collections::HashMap;

use serde::Serialize;

use super::format;
use super::views::{level_class, opts, status_class, status_label, Fleet, Opt};
use crate::query::{self, Filter, HostQuery, Lend, Order, SortKey, Window};
use crate::registry::{Host, Sample};
use crate::state::Summary;

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

/// The columns the overview sorts by, with their headings (the shared query knows a few
/// more keys, which the page's script does not).
const HEADERS: [(SortKey, &str); 9] = [
    (SortKey::State, "State"),
    (SortKey::Name, "Host"),
    (SortKey::Address, "Address"),
    (SortKey::Seen, "Last seen"),
    (SortKey::Cpu, "CPU"),
    (SortKey::Mem, "Memory"),
    (SortKey::Fs, "Fullest FS"),
    (SortKey::Load, "Load"),
    (SortKey::Check, "Worst check"),
];

impl OverviewQuery {
    pub fn parse(params: &HashMap<String, String>) -> OverviewQuery {
        let get = |k: &str| params.get(k).map(|s| s.trim()).unwrap_or("");
        let status = get("status").to_ascii_uppercase();
        let level = get("level").to_ascii_uppercase();
        let sort = SortKey::parse(get("sort"))
            .filter(|k| HEADERS.iter().any(|(h, _)| h == k))
            .unwrap_or_default();
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
            status: if query::parse_status(&status).is_ok() {
                status
            } else {
                String::new()
            },
            level: if query::parse_level(&level).is_ok() {
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

    /// The shared host query for this page.
    fn host_query(&self) -> HostQuery {
        HostQuery {
            filter: Filter {
                name: self.q.clone(),
                status: query::parse_status(&self.status).unwrap_or_default(),
                level: query::parse_level(&self.level).unwrap_or_default(),
            },
            order: Order {
                key: self.sort,
                desc: self.desc,
            },
            window: Window::Page {
                page: self.page,
                per: self.per,
            },
        }
    }
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
    /// The fleet's counts, taken in the same pass (for the page's frame).
    #[serde(skip)]
    pub fleet: Fleet,
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

pub const SPARK_W: f64 = 60.0;
pub const SPARK_H: f64 = 16.0;
/// Samples a sparkline shows.
pub const SPARK_SAMPLES: usize = 30;

/// The last [`SPARK_SAMPLES`] of a host's history, for its sparklines.
pub fn recent(h: &Host) -> Vec<Sample> {
    let skip = h.history.len().saturating_sub(SPARK_SAMPLES);
    h.history.iter().skip(skip).collect()
}

impl Row {
    /// `hist`: the host's [`recent`] samples.
    pub fn of(s: &Summary, hist: &[Sample], now_ms: u64) -> Row {
        let series = |f: fn(&Sample) -> f32| -> Vec<f32> { hist.iter().map(f).collect() };
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

/// The overview of the hosts `reg` lends: the registry is locked only to copy what the
/// query needs, a chunk of hosts at a time ([`crate::query::CHUNK`]); the rows are built
/// without it. The fleet's counts are taken in the same pass.
pub fn overview<L: Lend + ?Sized>(reg: &L, q: &OverviewQuery, now_ms: u64) -> Overview {
    let mut fleet = Fleet::default();
    let found = q
        .host_query()
        .run(reg, |h| fleet.count(h), |h| (Summary::of(h), recent(h)));
    let matching = found.total;
    let pages = matching.div_ceil(q.per).max(1);
    let start = found.offset;
    let page = start / q.per + 1;
    let shown: Vec<Row> = found
        .hosts
        .iter()
        .map(|(s, hist)| Row::of(s, hist, now_ms))
        .collect();
    let headers = HEADERS
        .iter()
        .map(|(k, label)| {
            let active = *k == q.sort;
            let desc = if active { !q.desc } else { k.desc_first() };
            Header {
                key: k.name(),
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
        fleet: fleet.finish(),
    }
}
