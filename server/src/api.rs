//! The REST API (`/api/v1/...`), health, metrics and the OpenAPI description.
//!
//! JSON everywhere, errors as `{"error": "..."}` with the right status. Mutating
//! endpoints need `Authorization: Bearer <api_token>`; without an `api_token` configured
//! they are disabled.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse, ResponseError};
use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;

use crate::event::EventKind;
use crate::journal;
use crate::journal_queries::JournalQueries;
use crate::query::HostQuery;
use crate::state::{Shared, Summary};
use hbd_core::drop::DropReason;

/// An API error: status and message.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            message: message.into(),
        }
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.status
    }
    fn error_response(&self) -> HttpResponse {
        HttpResponse::build(self.status).json(serde_json::json!({ "error": self.message }))
    }
}

fn bad(msg: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, msg)
}

/// Checks the bearer token of a mutating request.
pub(crate) fn authorize(state: &Shared, req: &HttpRequest) -> Result<(), ApiError> {
    let Some(token) = state.config.api_token.as_ref().map(|t| t.expose()) else {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "mutating endpoints are disabled: set api_token in hbd's config",
        ));
    };
    let given = req
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    if given.is_empty() {
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "missing token: send Authorization: Bearer <api_token>",
        ));
    }
    if bool::from(given.as_bytes().ct_eq(token.as_bytes())) {
        Ok(())
    } else {
        Err(ApiError::new(StatusCode::UNAUTHORIZED, "wrong token"))
    }
}

#[derive(Serialize)]
struct HostList {
    total: usize,
    offset: usize,
    limit: usize,
    hosts: Vec<Summary>,
}

/// `GET /api/v1/hosts`: the shared host query ([`crate::query`]); summaries are built
/// under the lock for the page only, and serialised after it is released.
async fn list_hosts(
    state: web::Data<Shared>,
    params: web::Query<HashMap<String, String>>,
) -> Result<HttpResponse, ApiError> {
    let query = HostQuery::from_api(&params).map_err(|e| bad(e.to_string()))?;
    let found = query.run(&***state, |_| {}, Summary::of);
    Ok(HttpResponse::Ok().json(HostList {
        total: found.total,
        offset: found.offset,
        limit: found.limit,
        hosts: found.hosts,
    }))
}

#[derive(Serialize)]
struct HostDetail {
    #[serde(flatten)]
    summary: Summary,
    first_seen_ms: Option<u64>,
    received: u64,
    grace: f64,
    deadline_ms: u64,
    addresses: Vec<crate::registry::SeenAddr>,
    readings: Vec<crate::registry::OwnedReading>,
    history: Vec<crate::registry::Sample>,
    recent_events: Vec<crate::event::Event>,
}

async fn get_host(
    state: web::Data<Shared>,
    name: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let reg = state.registry();
    let h = reg.get(&name).ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            format!("no host named {:?}", name.as_str()),
        )
    })?;
    let detail = HostDetail {
        summary: Summary::of(h),
        first_seen_ms: h.first_seen_ms,
        received: h.received,
        grace: h.grace,
        deadline_ms: h.deadline_ms,
        addresses: h.addrs.to_vec(),
        readings: h.readings.iter().map(|r| r.to_owned()).collect(),
        history: h.history.iter().collect(),
        recent_events: h.recent.events(&h.name).collect(),
    };
    drop(reg);
    Ok(HttpResponse::Ok().json(detail))
}

async fn forget_host(
    state: web::Data<Shared>,
    cluster: web::Data<crate::cluster::Handle>,
    req: HttpRequest,
    name: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    authorize(&state, &req)?;
    if !state.forget_host(&name, "forgotten through the API") {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            format!("no host named {:?}", name.as_str()),
        ));
    }
    // In cluster mode every node forgets it (docs/cluster.md).
    crate::cluster::host_forgotten(&cluster, &name);
    Ok(HttpResponse::NoContent().finish())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventQuery {
    host: Option<String>,
    /// Comma-separated kinds.
    kind: Option<String>,
    /// Unix milliseconds. The numbers are read as text so that a bad one is named in the
    /// error (`limit: "abc" is not a whole number`).
    since: Option<String>,
    until: Option<String>,
    /// Paging: events with smaller ids than this.
    before: Option<String>,
    limit: Option<String>,
}

/// Query parameter `name` as a whole number, or an error that names it.
fn number(name: &str, v: Option<&str>) -> Result<Option<u64>, ApiError> {
    v.map(|t| {
        t.parse::<u64>()
            .map_err(|_| bad(format!("{name}: {t:?} is not a whole number")))
    })
    .transpose()
}

/// `GET /api/v1/events`: a journal query, within `journal_max_queries` at once (beyond:
/// `503` with `Retry-After`, see [`crate::journal_queries`]).
async fn list_events(
    state: web::Data<Shared>,
    queries: web::Data<Arc<JournalQueries>>,
    q: web::Query<EventQuery>,
) -> Result<HttpResponse, ApiError> {
    let mut kinds = Vec::new();
    for k in q
        .kind
        .as_deref()
        .unwrap_or("")
        .split(',')
        .filter(|k| !k.is_empty())
    {
        kinds.push(
            EventKind::parse(k).ok_or_else(|| bad(format!("kind: {k:?} is not an event kind")))?,
        );
    }
    let since = number("since", q.since.as_deref())?;
    let until = number("until", q.until.as_deref())?;
    let before = number("before", q.before.as_deref())?;
    let limit = number("limit", q.limit.as_deref())?.unwrap_or(100) as usize;
    if limit == 0 || limit > 10_000 {
        return Err(bad("limit: use 1 to 10000"));
    }
    if let (Some(s), Some(u)) = (since, until) {
        if s > u {
            return Err(bad("since is after until"));
        }
    }
    let query = journal::Query {
        host: q.host.clone(),
        kinds,
        since_ms: since,
        until_ms: until,
        before_id: before,
        limit,
    };
    let events = match queries.run(&state, query).await {
        Ok(events) => events,
        Err(e) => return Ok(e.response()),
    };
    let next_before = if events.len() == limit {
        events.last().map(|e| e.id)
    } else {
        None
    };
    Ok(
        HttpResponse::Ok()
            .json(serde_json::json!({ "events": events, "next_before": next_before })),
    )
}

async fn post_heartbeat(
    state: web::Data<Shared>,
    req: HttpRequest,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    state.counters.http_received.fetch_add(1, Ordering::Relaxed);
    let ip: IpAddr = req
        .peer_addr()
        .map(|a| a.ip())
        .ok_or_else(|| bad("no peer address"))?;
    let mut events = Vec::new();
    match state.ingest(&body, ip, &mut events) {
        Ok(()) => Ok(HttpResponse::Accepted().json(serde_json::json!({ "accepted": true }))),
        Err(reason) => {
            let status = if matches!(reason, DropReason::BadSignature | DropReason::Unsigned) {
                StatusCode::UNAUTHORIZED
            } else {
                StatusCode::BAD_REQUEST
            };
            Err(ApiError::new(
                status,
                format!("heartbeat dropped: {reason}"),
            ))
        }
    }
}

async fn healthz(state: web::Data<Shared>, req: HttpRequest) -> HttpResponse {
    let journal_error = state.journal.stats.last_error();
    if crate::security::is_public(&req) {
        // Open to load balancers while the rest needs a login: the status, nothing else.
        let status = if journal_error.is_none() {
            "ok"
        } else {
            "degraded"
        };
        let code = if journal_error.is_none() {
            StatusCode::OK
        } else {
            StatusCode::SERVICE_UNAVAILABLE
        };
        return HttpResponse::build(code).json(serde_json::json!({ "status": status }));
    }
    let subsystems: serde_json::Map<String, serde_json::Value> = state
        .sinks
        .iter()
        .map(|s| (s.name().to_string(), s.status()))
        .collect();
    let body = serde_json::json!({
        "subsystems": subsystems,
        "status": if journal_error.is_none() { "ok" } else { "degraded" },
        "journal": journal_error.as_deref().unwrap_or("ok"),
        "hosts": state.registry().count,
        "uptime_s": (crate::state::now_ms() - state.started_ms) / 1000,
    });
    if journal_error.is_none() {
        HttpResponse::Ok().json(body)
    } else {
        HttpResponse::ServiceUnavailable().json(body)
    }
}

/// `GET /metrics`, streamed chunk by chunk ([`crate::metrics::Scrape`]); per-host
/// families only with `metrics_per_host`.
async fn metrics(
    state: web::Data<Shared>,
    security: Option<web::Data<crate::security::Security>>,
    queries: Option<web::Data<Arc<JournalQueries>>>,
    ws: Option<web::Data<Arc<crate::ws::Clients>>>,
) -> HttpResponse {
    let mut extra = String::new();
    if let Some(s) = security {
        extra.push_str(&s.metrics());
    }
    if let Some(q) = queries {
        q.metrics(&mut extra);
    }
    if let Some(w) = ws {
        w.metrics(&mut extra);
    }
    let per_host = state.config.metrics_per_host;
    let scrape = crate::metrics::Scrape::new(state.get_ref().clone(), per_host, extra);
    let body = futures_util::stream::iter(
        scrape.map(|chunk| Ok::<_, std::convert::Infallible>(web::Bytes::from(chunk))),
    );
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .streaming(body)
}

const OPENAPI: &str = include_str!("../../docs/openapi.yaml");

async fn openapi() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/yaml")
        .body(OPENAPI)
}

async fn not_found(req: HttpRequest) -> HttpResponse {
    HttpResponse::NotFound().json(serde_json::json!({ "error": format!("no such endpoint: {} {}", req.method(), req.path()) }))
}

fn json_error(err: impl std::fmt::Display) -> actix_web::Error {
    ApiError::new(StatusCode::BAD_REQUEST, err.to_string()).into()
}

/// Routes of the API server (port 50004).
pub fn configure(cfg: &mut web::ServiceConfig, max_body: usize) {
    cfg.app_data(web::QueryConfig::default().error_handler(|e, _| json_error(e)))
        .app_data(web::PathConfig::default().error_handler(|e, _| json_error(e)))
        .app_data(web::PayloadConfig::new(max_body))
        .route("/healthz", web::get().to(healthz))
        .route("/metrics", web::get().to(metrics))
        .route("/api/v1/openapi.yaml", web::get().to(openapi))
        .route("/api/v1/hosts", web::get().to(list_hosts))
        .route("/api/v1/hosts/{name}", web::get().to(get_host))
        .route("/api/v1/hosts/{name}", web::delete().to(forget_host))
        .route("/api/v1/events", web::get().to(list_events))
        .route("/api/v1/heartbeat", web::post().to(post_heartbeat))
        .route("/ws", web::get().to(crate::ws::connect))
        .configure(crate::dashboard::configure)
        .default_service(web::to(not_found));
}
