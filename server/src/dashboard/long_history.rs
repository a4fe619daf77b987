//! The long-term history page, `/dashboard/history/{host}?key=&range=`: one reading of
//! one host over 1 h, 24 h or 7 d, read from `history_url` (a PromQL HTTP API, see
//! docs/history.md) on the server and drawn as an SVG path, so the page is complete
//! without JavaScript and under the dashboard's CSP. Without `history_url` the route
//! answers 404 and the host page shows only the in-memory history.

use std::collections::HashMap;
use std::sync::Arc;

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use hbd_history::query::{Points, Range};
use hbd_history::History;
use serde::Serialize;

use super::format;
use super::views::{Ctx, Fleet, Page};
use crate::registry::Registry;
use crate::state::Shared;

/// Width and height of the chart's SVG box (as the host page's charts).
const W: f64 = 600.0;
const H: f64 = 160.0;
/// Keys offered in the page's list at most.
const MAX_KEYS: usize = 500;

#[derive(Serialize)]
pub struct Choice {
    pub key: String,
    pub selected: bool,
}

#[derive(Serialize)]
pub struct RangeLink {
    pub label: &'static str,
    pub href: String,
    pub current: bool,
}

/// The page's data.
#[derive(Serialize, Default)]
pub struct HistoryPage {
    pub host: String,
    pub host_url: String,
    pub key: String,
    pub unit: String,
    pub range: &'static str,
    pub keys: Vec<Choice>,
    pub ranges: Vec<RangeLink>,
    pub error: Option<String>,
    /// Points drawn (all series).
    pub points: usize,
    pub lines: Vec<String>,
    pub y_max: String,
    pub y_mid: String,
    pub last: String,
    pub start_ms: u64,
    pub start_iso: String,
    pub start_utc: String,
    pub end_ms: u64,
    pub end_iso: String,
    pub end_utc: String,
}

/// The numeric reading keys the registry holds for `host`, sorted.
fn keys_of(reg: &Registry, host: &str) -> Vec<String> {
    let mut keys: Vec<String> = reg
        .get(host)
        .map(|h| {
            h.readings
                .iter()
                .filter(|r| r.number().is_some())
                .map(|r| r.key().to_string())
                .collect()
        })
        .unwrap_or_default();
    keys.sort();
    keys.truncate(MAX_KEYS);
    keys
}

/// The page from what the database answered (pure: the snapshot-style tests call it).
pub fn history_page(
    host: &str,
    key: &str,
    range: Range,
    keys: Vec<String>,
    answer: Result<Vec<Points>, String>,
    now_ms: u64,
) -> HistoryPage {
    let host_url = format::url_segment(host);
    let mut keys: Vec<Choice> = keys
        .into_iter()
        .map(|k| Choice {
            selected: k == key,
            key: k,
        })
        .collect();
    if !key.is_empty() && !keys.iter().any(|c| c.selected) {
        keys.insert(
            0,
            Choice {
                key: key.to_string(),
                selected: true,
            },
        );
    }
    let ranges = Range::ALL
        .iter()
        .map(|r| RangeLink {
            label: r.as_str(),
            href: format!(
                "/dashboard/history/{host_url}?key={}&range={}",
                format::query_value(key),
                r.as_str()
            ),
            current: *r == range,
        })
        .collect();
    // The window the query asked for (aligned to the step), so points land on slots.
    let (start_s, end_s) = range.window(now_ms / 1000);
    let (start_ms, end_ms) = (start_s * 1000, end_s * 1000);
    let mut page = HistoryPage {
        host: host.to_string(),
        host_url,
        key: key.to_string(),
        range: range.as_str(),
        keys,
        ranges,
        start_ms,
        start_iso: format::iso(start_ms),
        start_utc: format::utc(start_ms),
        end_ms,
        end_iso: format::iso(end_ms),
        end_utc: format::utc(end_ms),
        ..Default::default()
    };
    let series = match answer {
        Ok(s) => s,
        Err(e) => {
            page.error = Some(e);
            return page;
        }
    };
    // One grid of slots over the range (the query's step), so gaps stay gaps.
    let step = range.step() as f64;
    let slots = (range.seconds() / range.step()) as usize + 1;
    let t0 = start_ms as f64 / 1000.0;
    let finite = || {
        series
            .iter()
            .flat_map(|s| s.points.iter())
            .map(|p| p.1)
            .filter(|v| v.is_finite())
    };
    let lo = finite().fold(0.0f64, f64::min);
    let hi = finite().fold(f64::NEG_INFINITY, f64::max);
    let max = format::nice_max(hi - lo);
    let mut last: Option<(f64, f64, &str)> = None;
    for s in &series {
        let mut grid = vec![f32::NAN; slots];
        for &(t, v) in &s.points {
            let i = ((t - t0) / step).round();
            if v.is_finite() && i >= 0.0 && (i as usize) < slots {
                grid[i as usize] = (v - lo) as f32;
                page.points += 1;
                if last.is_none_or(|l| t >= l.0) {
                    last = Some((t, v, &s.unit));
                }
            }
        }
        page.lines.push(path(&grid, max));
        if page.unit.is_empty() {
            page.unit = s.unit.clone();
        }
    }
    if let Some((_, v, unit)) = last {
        page.last = format!(
            "{}{}{unit}",
            format::trim(v, 2),
            if unit.is_empty() { "" } else { " " }
        );
    }
    page.y_max = format::trim(lo + max, 2);
    page.y_mid = format::trim(lo + max / 2.0, 2);
    page
}

/// An SVG path through the slots (x by slot, y scaled to `0..=max`; empty slots break
/// the line). A point with no neighbour is drawn as a short dash, so a reading seen
/// once is visible.
fn path(grid: &[f32], max: f64) -> String {
    use std::fmt::Write;
    let mut d = String::new();
    let n = grid.len();
    if n < 2 || max <= 0.0 {
        return d;
    }
    let x = |i: usize| i as f64 * W / (n - 1) as f64;
    let y = |v: f32| H - (f64::from(v).clamp(0.0, max) / max) * H;
    let ok = |i: usize| grid.get(i).is_some_and(|v| v.is_finite());
    for (i, &v) in grid.iter().enumerate() {
        if !v.is_finite() {
            continue;
        }
        let (prev, next) = (i > 0 && ok(i - 1), ok(i + 1));
        let (xs, ys) = (format::trim(x(i), 1), format::trim(y(v), 1));
        if prev {
            let _ = write!(d, "L{xs},{ys}");
        } else if next {
            let _ = write!(d, "M{xs},{ys}");
        } else {
            let (a, b) = (format::trim(x(i) - 2.0, 1), format::trim(x(i) + 2.0, 1));
            let _ = write!(d, "M{a},{ys}L{b},{ys}");
        }
    }
    d
}

/// Mounts the page (hbd calls this with the running history subsystem).
pub fn configure(cfg: &mut web::ServiceConfig, history: Arc<History>) {
    cfg.route(
        "/dashboard/history/{host}",
        web::get().to(
            move |state: web::Data<Shared>,
                  host: web::Path<String>,
                  q: web::Query<HashMap<String, String>>| {
                let history = history.clone();
                async move { page(state, history, host.into_inner(), q.into_inner()).await }
            },
        ),
    );
}

async fn page(
    state: web::Data<Shared>,
    history: Arc<History>,
    host: String,
    q: HashMap<String, String>,
) -> HttpResponse {
    let ctx: Ctx = super::ctx(&state);
    let t = super::templates(&state);
    let (keys, fleet) = {
        let reg = state.registry();
        (keys_of(&reg, &host), Fleet::of(&reg))
    };
    let range = q.get("range").map(String::as_str).unwrap_or("1h");
    let (status, range, answer) = match Range::parse(range) {
        None => (
            StatusCode::BAD_REQUEST,
            Range::Hour,
            Err(format!("range: {range:?} is not one of 1h, 24h, 7d")),
        ),
        Some(r) if !history.reads() => (
            StatusCode::NOT_FOUND,
            r,
            Err(
                "history_url is not configured: only the recent history on the host page is kept"
                    .into(),
            ),
        ),
        Some(r) => (StatusCode::OK, r, Ok(())),
    };
    // The host's busiest reading is a better first chart than none.
    let key = q
        .get("key")
        .cloned()
        .or_else(|| {
            keys.iter()
                .find(|k| k.as_str() == "cpu.usage_percent")
                .cloned()
        })
        .or_else(|| keys.first().cloned())
        .unwrap_or_default();
    let answer = match answer {
        Err(e) => Err(e),
        Ok(()) if key.is_empty() => Err("no reading chosen (key=)".into()),
        Ok(()) => {
            let (h, k, now) = (host.clone(), key.clone(), ctx.now_ms);
            match web::block(move || history.query(&h, &k, range, now)).await {
                Ok(Some(Ok(points))) => Ok(points),
                Ok(Some(Err(e))) => {
                    tracing::warn!(host = %host, key = %key, "history page: {e}");
                    Err(e.to_string())
                }
                Ok(None) => Err("history_url is not configured".into()),
                Err(e) => Err(format!("history query not run: {e}")),
            }
        }
    };
    let body = history_page(&host, &key, range, keys, answer, ctx.now_ms);
    let title = format!("{host} · {key} · {}", range.as_str());
    let page = Page::new(&ctx, fleet, "history", title, body);
    super::html(status, t.render("history", &page))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn draws_points_on_the_step_grid_with_gaps() {
        let end_ms = 1_700_000_000_000;
        let t0 = Range::Hour.window(end_ms / 1000).0 as f64;
        let answer = Ok(vec![Points {
            unit: "%".into(),
            points: vec![
                (t0, 10.0),
                (t0 + 10.0, 20.0),
                (t0 + 30.0, f64::NAN),
                (t0 + 40.0, 40.0),
            ],
        }]);
        let p = history_page(
            "web<1>",
            "cpu.usage",
            Range::Hour,
            vec!["cpu.usage".into(), "mem.used".into()],
            answer,
            end_ms,
        );
        assert_eq!(p.points, 3);
        assert_eq!(p.lines.len(), 1);
        assert!(p.lines[0].starts_with("M0,"), "{}", p.lines[0]);
        assert_eq!(
            p.lines[0].matches('M').count(),
            2,
            "a gap breaks the line: {}",
            p.lines[0]
        );
        assert_eq!(p.last, "40 %");
        assert_eq!((p.y_max.as_str(), p.y_mid.as_str()), ("50", "25"));
        assert_eq!(p.host_url, "web%3C1%3E");
        assert!(p.keys[0].selected && !p.keys[1].selected);
        assert_eq!(
            p.ranges[2].href,
            "/dashboard/history/web%3C1%3E?key=cpu.usage&range=7d"
        );
    }

    #[test]
    fn an_error_is_shown_instead_of_a_chart() {
        let p = history_page("h", "k", Range::Day, vec![], Err("not reached".into()), 0);
        assert_eq!(p.error.as_deref(), Some("not reached"));
        assert_eq!(p.points, 0);
        assert_eq!(p.keys.len(), 1, "the asked key is offered");
    }
}
