//! The events page (`/events`): the journal's events as rows, and the page's filter
//! (host, kinds, time range in the viewer's zone, paging by id) read from the query string.

use std::collections::HashMap;

use serde::Serialize;

use super::format;
use super::views::Opt;
use crate::event::{Event, EventKind};

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
