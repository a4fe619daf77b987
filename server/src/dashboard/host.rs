//! A host's page (`/hosts/{name}`): its head row, counters, addresses, readings grouped
//! by plugin, Nagios checks with their perfdata, history charts, latest events and what
//! the subsystems say about it.

use serde::Serialize;

use super::events::EventRow;
use super::format;
use super::overview::{recent, Row};
use super::views::{level_class, Subsystem};
use crate::event::Event;
use crate::registry::{Host, LevelName, Status, Val};
use crate::state::Summary;

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
    /// Heartbeats lost recently (about the last 50), e.g. `4.8 %`.
    pub loss_recent: String,
    /// Refreshes that kept the host alive (docs/protocol.md "Refreshes").
    pub refreshes: u64,
    /// The liveness detector's state (`alive`, `suspect`, `down`, `never_seen`) and
    /// why, so an operator sees why a host is or is not DOWN.
    pub detector: &'static str,
    pub detector_text: String,
    pub addresses: Vec<AddrView>,
    pub groups: Vec<Group>,
    pub nagios: Vec<NagiosCheck>,
    pub charts: Vec<Chart>,
    pub events: Vec<EventRow>,
    pub events_href: String,
    pub subsystems: Vec<Subsystem>,
    /// The long-term history page, when `history_url` is set (docs/history.md).
    pub history_href: Option<String>,
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
    /// A point in time (`*_time`, integer seconds, no unit: `os.boot_time`), shown as a
    /// time in the viewer's zone rather than as the number.
    pub time_ms: Option<u64>,
    pub time_iso: String,
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
    let hist: Vec<_> = host.history.iter().collect();
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
    let time_ms = point_in_time(r.key(), &r.value(), r.unit());
    ReadingView {
        key: r.key().to_string(),
        name: r
            .key()
            .strip_prefix(prefix)
            .and_then(|k| k.strip_prefix('.'))
            .unwrap_or(r.key())
            .to_string(),
        value: match time_ms {
            Some(ms) => format::utc(ms),
            None => format::value(&r.value(), r.unit()),
        },
        number: match &r.value() {
            Val::Text(_) | Val::Bool(_) => None,
            v => v.as_f64().filter(|f| f.is_finite()),
        },
        unit: r.unit().to_string(),
        level: r.level.as_str(),
        level_class: level_class(r.level),
        threshold: r.threshold().to_string(),
        message: r.message().to_string(),
        time_ms,
        time_iso: time_ms.map(format::iso).unwrap_or_default(),
    }
}

/// The Unix time in ms of a reading named `*_time` with an integer value and no unit.
fn point_in_time(key: &str, value: &Val, unit: &str) -> Option<u64> {
    match value {
        Val::I64(secs) if key.ends_with("_time") && unit.is_empty() && *secs > 0 => {
            u64::try_from(*secs).ok()?.checked_mul(1000)
        }
        _ => None,
    }
}

/// The detector's state in words: what it saw and what happens next.
fn detector_text(h: &Host, now_ms: u64) -> String {
    use crate::registry::Detector;
    let silent = h.last_seen_ms.map(|l| now_ms.saturating_sub(l));
    let secs = |ms: u64| format!("{} s", format::trim(ms as f64 / 1000.0, 1));
    match (h.detector(now_ms), silent) {
        (Detector::Alive, Some(s)) => format!("alive: heard from {} ago", secs(s)),
        (Detector::Suspect, Some(s)) => format!(
            "suspect: nothing for {} (more than an interval); DOWN at the deadline unless a datagram arrives",
            secs(s)
        ),
        (Detector::Down, Some(s)) => format!("down: nothing for {}", secs(s)),
        _ => "never seen".to_string(),
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
        let plugin = r.key().split('.').next().unwrap_or("").to_string();
        let view = reading_view(&r, &plugin);
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
            .key()
            .strip_prefix("nagios.")
            .and_then(|k| k.strip_suffix(".state"))
        else {
            continue;
        };
        let prefix = format!("nagios.{check}");
        let mut perfdata = Vec::new();
        let mut duration = String::new();
        for p in &h.readings {
            if p.key()
                .strip_prefix(prefix.as_str())
                .and_then(|k| k.strip_prefix('.'))
                == Some("duration_s")
            {
                duration = format::value(&p.value(), p.unit());
            } else if p.key().starts_with(&format!("{prefix}.")) && p.key() != r.key() {
                perfdata.push(reading_view(&p, &prefix));
            }
        }
        nagios.push(NagiosCheck {
            name: check.to_string(),
            level: r.level.as_str(),
            level_class: level_class(r.level),
            output: r.message().to_string(),
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
        row: Row::of(&summary, &recent(h), now_ms),
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
        loss_recent: format!("{} %", format::trim(f64::from(h.loss_recent) * 100.0, 1)),
        refreshes: h.refreshes,
        detector: h.detector(now_ms).as_str(),
        detector_text: detector_text(h, now_ms),
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
        history_href: subsystems
            .iter()
            .any(|(n, v)| n == "history" && v["history_url"].is_string())
            .then(|| format!("/dashboard/history/{}", format::url_segment(&h.name))),
    }
}
