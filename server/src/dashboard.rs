//! The web dashboard on the API port: the fleet overview (`/`), one page per host
//! (`/hosts/{name}`), the event journal (`/events`), their assets (`/static/...`) and a
//! favicon coloured by the fleet's state (`/favicon.svg`).
//!
//! Pages are rendered on the server with handlebars (`templates/`, escaped by default:
//! host names, plugin and Nagios output come from the wire) and work without
//! JavaScript; the scripts in `static/` then keep them live over the WebSocket (`/ws`).
//! Every response carries a strict Content-Security-Policy: no inline script or style.
//!
//! **Invariant:** the dashboard only reads hbd's state (registry, journal, subsystems'
//! `status()`); it never changes it, and it knows the subsystems only through `Sink`.

pub mod assets;
pub mod events;
pub mod format;
pub mod history;
pub mod host;
pub mod long_history;
pub mod overview;
pub mod views;

use std::collections::HashMap;
use std::sync::Arc;

use actix_web::http::header::{self, HeaderValue};
use actix_web::http::StatusCode;
use actix_web::middleware::Compress;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::Serialize;

use crate::journal_queries::{JournalQueries, QueryError};
use crate::query::Lend;
use crate::registry::Registry;
use crate::state::{now_ms, Shared, State};
pub use assets::{RenderError, Templates};
pub use history::history_json;
use views::{Ctx, EventsQuery, OverviewQuery, Page};

/// Sent with every dashboard response.
pub const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; \
    img-src 'self' data:; connect-src 'self' ws: wss:; frame-ancestors 'none'; \
    base-uri 'none'; form-action 'self'";

/// Routes of the dashboard (on the API server, port 50004).
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/", web::get().to(overview))
        .route("/hosts/{name}", web::get().to(host))
        .route("/events", web::get().to(events))
        .route("/favicon.svg", web::get().to(favicon))
        .route("/static/{path:.*}", web::get().to(static_file))
        .service(
            web::resource("/dashboard/history.json")
                .wrap(Compress::default())
                .route(web::get().to(history)),
        );
}

// ---------------------------------------------------------------------------------------
// Pages as pure functions of the state (the snapshot tests call these).

/// The overview's data, from the registry `reg` lends (locked a chunk of hosts at a
/// time, never while rendering).
pub fn overview_page<L: Lend + ?Sized>(
    reg: &L,
    q: &OverviewQuery,
    ctx: &Ctx,
) -> Page<views::Overview> {
    let mut body = views::overview(reg, q, ctx.now_ms);
    let fleet = std::mem::take(&mut body.fleet);
    let title = format!("Fleet · {}", Page::<()>::title_counts(&fleet));
    Page::new(ctx, fleet, "overview", title, body)
}

/// A host's page, or `None` if there is no such host. `events` are its latest events,
/// newest first.
pub fn host_page(
    reg: &Registry,
    name: &str,
    events: &[crate::event::Event],
    ctx: &Ctx,
) -> Option<Page<views::HostPage>> {
    let h = reg.get(name)?;
    let body = views::host_page(h, events, &ctx.subsystems, ctx.now_ms);
    let title = format!("{} · {} {}", h.name, body.row.status_label, body.row.level);
    Some(Page::new(ctx, views::Fleet::of(reg), "host", title, body))
}

pub fn events_page(
    reg: &Registry,
    q: &EventsQuery,
    events: Result<Vec<crate::event::Event>, String>,
    ctx: &Ctx,
) -> Page<views::EventsPage> {
    let body = views::events_page(q, events, ctx.now_ms);
    Page::new(ctx, views::Fleet::of(reg), "events", "Events".into(), body)
}

#[derive(Serialize)]
pub struct NotFound {
    pub name: String,
}

pub fn not_found_page(reg: &Registry, name: &str, ctx: &Ctx) -> Page<NotFound> {
    Page::new(
        ctx,
        views::Fleet::of(reg),
        "not_found",
        "No such host".into(),
        NotFound {
            name: name.to_string(),
        },
    )
}

impl<T: Serialize> Page<T> {
    /// `3 DOWN · 2 CRITICAL · 40 hosts` for the window title.
    fn title_counts(f: &views::Fleet) -> String {
        let mut parts = Vec::new();
        if f.down > 0 {
            parts.push(format!("{} DOWN", f.down));
        }
        if f.critical > 0 {
            parts.push(format!("{} CRITICAL", f.critical));
        }
        parts.push(format!(
            "{} host{}",
            f.total,
            if f.total == 1 { "" } else { "s" }
        ));
        parts.join(" · ")
    }
}

// ---------------------------------------------------------------------------------------
// Handlers

fn ctx(state: &State) -> Ctx {
    Ctx {
        now_ms: now_ms(),
        version: assets::version().to_string(),
        subsystems: state
            .sinks
            .iter()
            .map(|s| (s.name().to_string(), s.status()))
            .collect(),
    }
}

fn templates(state: &State) -> std::sync::Arc<Templates> {
    Templates::shared(state.config.templates_dir.as_deref())
}

/// Headers every dashboard response carries.
fn secure(mut res: HttpResponse) -> HttpResponse {
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    res
}

fn html(status: StatusCode, result: Result<String, RenderError>) -> HttpResponse {
    let res = match result {
        Ok(body) => HttpResponse::build(status)
            .content_type("text/html; charset=utf-8")
            .insert_header((header::CACHE_CONTROL, "no-store"))
            .body(body),
        Err(e) => {
            tracing::error!("{e}");
            HttpResponse::InternalServerError()
                .content_type("text/plain; charset=utf-8")
                .body(format!("hbd could not render this page: {e}"))
        }
    };
    secure(res)
}

async fn overview(
    state: web::Data<Shared>,
    params: web::Query<HashMap<String, String>>,
) -> HttpResponse {
    let q = OverviewQuery::parse(&params);
    let ctx = ctx(&state);
    let page = overview_page(&***state, &q, &ctx);
    html(StatusCode::OK, templates(&state).render("overview", &page))
}

/// Events shown on a host's page.
const HOST_EVENTS: usize = 25;

async fn host(
    state: web::Data<Shared>,
    queries: web::Data<Arc<JournalQueries>>,
    name: web::Path<String>,
) -> HttpResponse {
    let name = name.into_inner();
    // The registry keeps each host's latest events: all of them when they reach back to
    // its first heartbeat, and the page then needs no journal query. Otherwise the journal
    // is asked (within `journal_max_queries`), and when it is busy or failing the page
    // shows what memory holds.
    let recent = state.registry().get(&name).map(|h| {
        let all = h.recent.first_kind() == Some(crate::event::EventKind::HostNew);
        let newest_first: Vec<crate::event::Event> =
            h.recent.events(&h.name).rev().take(HOST_EVENTS).collect();
        (newest_first, all)
    });
    let events = match recent {
        None => Vec::new(),
        Some((recent, true)) => recent,
        Some((recent, false)) => {
            let query = crate::journal::Query {
                host: Some(name.clone()),
                limit: HOST_EVENTS,
                ..Default::default()
            };
            match queries.run(&state, query).await {
                Ok(events) => events,
                Err(QueryError::Busy(_)) => recent,
                Err(e) => {
                    tracing::warn!(host = %name, "host page: {e}");
                    recent
                }
            }
        }
    };
    let ctx = ctx(&state);
    let t = templates(&state);
    let page = host_page(&state.registry(), &name, &events, &ctx);
    match page {
        Some(page) => html(StatusCode::OK, t.render("host", &page)),
        None => {
            let page = not_found_page(&state.registry(), &name, &ctx);
            html(StatusCode::NOT_FOUND, t.render("not_found", &page))
        }
    }
}

async fn events(
    state: web::Data<Shared>,
    queries: web::Data<Arc<JournalQueries>>,
    params: web::Query<HashMap<String, String>>,
) -> HttpResponse {
    let q = EventsQuery::parse(&params);
    let (result, status) = match q.journal() {
        Ok(query) => match queries.run(&state, query).await {
            Ok(events) => (Ok(events), StatusCode::OK),
            Err(e @ QueryError::Busy(_)) => (Err(e.to_string()), StatusCode::SERVICE_UNAVAILABLE),
            Err(e) => (Err(e.to_string()), StatusCode::INTERNAL_SERVER_ERROR),
        },
        Err(e) => (Err(e), StatusCode::BAD_REQUEST),
    };
    let ctx = ctx(&state);
    let page = events_page(&state.registry(), &q, result, &ctx);
    html(status, templates(&state).render("events", &page))
}

async fn static_file(
    state: web::Data<Shared>,
    req: HttpRequest,
    path: web::Path<String>,
) -> HttpResponse {
    let Some(asset) = assets::asset(state.config.static_dir.as_deref(), &path) else {
        return secure(
            HttpResponse::NotFound()
                .content_type("text/plain; charset=utf-8")
                .body("no such file"),
        );
    };
    // A built-in file requested with the current fingerprint never changes.
    let versioned = asset.builtin && req.query_string() == format!("v={}", assets::version());
    let cache = if versioned {
        "public, max-age=31536000, immutable"
    } else {
        "no-cache"
    };
    let fresh = req
        .headers()
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == asset.etag));
    let mut res = if fresh {
        HttpResponse::NotModified()
    } else {
        HttpResponse::Ok()
    };
    res.insert_header((header::CACHE_CONTROL, cache))
        .insert_header((header::ETAG, asset.etag.clone()));
    secure(if fresh {
        res.finish()
    } else {
        res.content_type(asset.content_type).body(asset.bytes)
    })
}

/// The favicon: a dot in the fleet's colour, or in the colour `?s=` asks for (the
/// page's script swaps it live).
pub fn favicon_svg(state: &str) -> String {
    let (fill, mark) = match state {
        "down" => ("#d92d20", "M12 7v7M12 17v.5"),
        "warn" => ("#e0a100", "M12 7v7M12 17v.5"),
        "ok" => ("#1f9d55", "M7.5 12.5l3 3 6-6.5"),
        _ => ("#8a94a6", "M8 12h8"),
    };
    format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 24 24\">\
         <circle cx=\"12\" cy=\"12\" r=\"11\" fill=\"{fill}\"/>\
         <path d=\"{mark}\" stroke=\"#fff\" stroke-width=\"2.6\" stroke-linecap=\"round\" \
         stroke-linejoin=\"round\" fill=\"none\"/></svg>"
    )
}

async fn favicon(state: web::Data<Shared>, req: HttpRequest) -> HttpResponse {
    let asked = web::Query::<HashMap<String, String>>::from_query(req.query_string())
        .ok()
        .and_then(|q| q.get("s").cloned());
    let (s, cache) = match asked.as_deref() {
        Some(s @ ("down" | "warn" | "ok" | "empty")) => (s.to_string(), "public, max-age=86400"),
        _ => (
            views::Fleet::of(&state.registry()).state.to_string(),
            "no-cache",
        ),
    };
    secure(
        HttpResponse::Ok()
            .content_type("image/svg+xml")
            .insert_header((header::CACHE_CONTROL, cache))
            .body(favicon_svg(&s)),
    )
}

async fn history(state: web::Data<Shared>) -> HttpResponse {
    let body = history_json(&state.registry());
    secure(
        HttpResponse::Ok()
            .content_type("application/json")
            .insert_header((header::CACHE_CONTROL, "no-store"))
            .body(body),
    )
}

#[cfg(test)]
mod tests;
