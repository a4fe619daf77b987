//! Who may use the HTTP and WebSocket listeners: TLS (`tls.rs`, `tls_cert`/`tls_key`),
//! HTTP Basic authentication for reading (`auth.rs`, `dashboard_users`) and the checks
//! against cross-site requests (`origin.rs`). [`guard`] is the middleware that applies
//! them to every request of both listeners, before any handler runs.
//!
//! The rules (docs/api.md, "Authentication" and "Cross-site requests"):
//! - mutating requests (not GET/HEAD/OPTIONS) must not come from another site and must
//!   carry a JSON body (or a binary heartbeat); their handlers then check the bearer
//!   `api_token` (or the heartbeat's HMAC), never Basic credentials;
//! - WebSocket handshakes from a browser must come from the listener's own origin or one
//!   of `ws_allowed_origins`;
//! - with `dashboard_users`, everything else needs Basic credentials, except
//!   `/healthz`, which without credentials answers only its status;
//! - failed logins are logged (client and user name, never the password) and a client
//!   with too many of them is answered 429 for a while.

pub mod auth;
pub mod origin;
pub mod tls;

use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Instant;

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{self, HeaderMap};
use actix_web::http::{Method, StatusCode};
use actix_web::middleware::Next;
use actix_web::{web, HttpMessage, HttpRequest, HttpResponse};

use crate::config::Config;
use auth::{Credentials, Failures, Users, Verdict};

/// The `WWW-Authenticate` challenge (RFC 7617).
pub const CHALLENGE: &str = "Basic realm=\"hbd\", charset=\"UTF-8\"";

/// Checks the security keys of a config (called by `Config::validate`).
pub fn validate(c: &Config) -> Result<(), String> {
    match (&c.tls_cert, &c.tls_key) {
        (Some(_), None) | (None, Some(_)) => {
            return Err(
                "tls_cert, tls_key: set both (certificate chain and private key) or neither".into(),
            )
        }
        (Some(p), _) | (_, Some(p)) if p.as_os_str().is_empty() => {
            return Err("tls_cert, tls_key: a path is empty".into())
        }
        _ => {}
    }
    for (user, password) in &c.dashboard_users {
        if user.is_empty() || user.contains(':') || user.chars().any(char::is_control) {
            return Err(format!(
                "dashboard_users: {user:?} is not a usable user name (not empty, no ':' or control characters)"
            ));
        }
        if password.expose().chars().count() < 8 {
            return Err(format!(
                "dashboard_users.{user}: use a password of at least 8 characters"
            ));
        }
    }
    for o in &c.ws_allowed_origins {
        if origin::normalize(o).is_none() {
            return Err(format!(
                "ws_allowed_origins: {o:?} is not an origin; write scheme://host[:port], such as https://mon.example.org"
            ));
        }
    }
    Ok(())
}

/// Whether `dashboard_users` differs between two configs.
pub fn users_changed(old: &Config, new: &Config) -> bool {
    old.dashboard_users.len() != new.dashboard_users.len()
        || old
            .dashboard_users
            .iter()
            .zip(&new.dashboard_users)
            .any(|((u1, p1), (u2, p2))| u1 != u2 || p1.expose() != p2.expose())
}

/// What a request that passed [`guard`] may see.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Everything (authenticated, or no `dashboard_users`).
    Full,
    /// `/healthz` without credentials while `dashboard_users` is set: the status only.
    Public,
}

/// Whether the request came through without credentials where they are optional.
pub fn is_public(req: &HttpRequest) -> bool {
    req.extensions().get::<Access>() == Some(&Access::Public)
}

/// What the listeners' security counted (also in the log).
#[derive(Debug, Default)]
pub struct Counters {
    /// Wrong or malformed Basic credentials.
    pub login_failures: AtomicU64,
    /// Requests refused with 429 because their client failed too often.
    pub login_blocked: AtomicU64,
    /// Mutating requests refused as cross-site (403) or for their media type (415).
    pub cross_site_refused: AtomicU64,
    /// WebSocket handshakes refused for their origin.
    pub ws_origin_refused: AtomicU64,
    /// Requests refused for a `Host` not in `server_names` (DNS rebinding).
    pub host_refused: AtomicU64,
    /// Mutating requests refused for a missing or wrong bearer token before their body
    /// was read.
    pub unauthorized: AtomicU64,
    /// Requests refused with 413 for a declared body over the limit.
    pub too_large: AtomicU64,
}

/// The listeners' security settings and state, shared by both listeners.
pub struct Security {
    users: Option<Users>,
    failures: Mutex<Failures>,
    /// `ws_allowed_origins`, normalized.
    allowed_origins: Vec<String>,
    /// `server_names` (or the machine's names): the `Host` values accepted.
    names: origin::ServerNames,
    /// The largest request body read (`max_heartbeat_bytes`); a larger
    /// `Content-Length` is answered 413 before anything else.
    max_body: usize,
    pub counters: Counters,
}

impl Security {
    pub fn new(config: &Config) -> Security {
        Security {
            users: (!config.dashboard_users.is_empty())
                .then(|| Users::new(&config.dashboard_users)),
            failures: Mutex::new(Failures::default()),
            allowed_origins: config
                .ws_allowed_origins
                .iter()
                .filter_map(|o| origin::normalize(o))
                .collect(),
            names: origin::ServerNames::new(
                &config.server_names,
                &[hbd_notify::config::hostname()],
            ),
            max_body: config.max_heartbeat_bytes,
            counters: Counters::default(),
        }
    }

    /// The counters in Prometheus text format (appended to `/metrics`).
    pub fn metrics(&self) -> String {
        let c = &self.counters;
        let mut out = String::from(
            "# HELP hbd_http_refused_total Requests refused by the listeners' security, by reason.\n\
             # TYPE hbd_http_refused_total counter\n",
        );
        for (reason, n) in [
            ("login_failed", &c.login_failures),
            ("login_blocked", &c.login_blocked),
            ("cross_site", &c.cross_site_refused),
            ("websocket_origin", &c.ws_origin_refused),
            ("host", &c.host_refused),
            ("unauthorized", &c.unauthorized),
            ("too_large", &c.too_large),
        ] {
            out.push_str(&format!(
                "hbd_http_refused_total{{reason=\"{reason}\"}} {}\n",
                n.load(Ordering::Relaxed)
            ));
        }
        out
    }

    fn failures(&self) -> std::sync::MutexGuard<'_, Failures> {
        self.failures.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Lets the request through (with what it may see) or answers it.
    fn decide(&self, req: &ServiceRequest) -> Result<Access, Box<HttpResponse>> {
        let headers = req.headers();
        let text = |name: header::HeaderName| headers.get(name).and_then(|v| v.to_str().ok());
        let (own, host_ok) = {
            let info = req.connection_info();
            (
                origin::own_origin(info.scheme(), info.host()),
                self.names.check(info.host()),
            )
        };
        if let Err(r) = host_ok {
            self.counters.host_refused.fetch_add(1, Ordering::Relaxed);
            tracing::info!(client = %client(req), path = req.path(), "{}", refusal_message(&r));
            return Err(refused(r));
        }
        if declared_length(headers).is_some_and(|n| n > self.max_body as u64) {
            self.counters.too_large.fetch_add(1, Ordering::Relaxed);
            return Err(json(
                error(StatusCode::PAYLOAD_TOO_LARGE),
                &format!(
                    "request body too large: at most {} bytes (max_heartbeat_bytes)",
                    self.max_body
                ),
            ));
        }
        let safe = matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS);
        if !safe {
            let m = origin::Mutation {
                sec_fetch_site: text(header::HeaderName::from_static("sec-fetch-site")),
                origin: text(header::ORIGIN),
                own: own.as_deref(),
                content_type: text(header::CONTENT_TYPE),
                has_body: has_body(headers),
                binary: req.path() == "/api/v1/heartbeat",
            };
            return match origin::check_mutation(&m) {
                // Heartbeats carry their HMAC; everything else its bearer token, checked
                // here before any body is read (and again by the handler).
                Ok(()) if m.binary => Ok(Access::Full),
                Ok(()) => match req.app_data::<web::Data<crate::state::Shared>>() {
                    Some(state) => match crate::api::authorize(state, req.request()) {
                        Ok(()) => Ok(Access::Full),
                        Err(e) => {
                            self.counters.unauthorized.fetch_add(1, Ordering::Relaxed);
                            Err(Box::new(actix_web::ResponseError::error_response(&e)))
                        }
                    },
                    None => Ok(Access::Full),
                },
                Err(r) => {
                    self.counters
                        .cross_site_refused
                        .fetch_add(1, Ordering::Relaxed);
                    tracing::info!(
                        client = %client(req),
                        method = %req.method(),
                        path = req.path(),
                        "cross-site request refused: {}",
                        refusal_message(&r)
                    );
                    Err(refused(r))
                }
            };
        }
        if is_websocket(headers) {
            if let Err(r) =
                origin::check_websocket(text(header::ORIGIN), own.as_deref(), &self.allowed_origins)
            {
                self.counters
                    .ws_origin_refused
                    .fetch_add(1, Ordering::Relaxed);
                tracing::info!(client = %client(req), "{}", refusal_message(&r));
                return Err(refused(r));
            }
        }
        let Some(users) = &self.users else {
            return Ok(Access::Full);
        };
        let creds = auth::parse_basic(headers.get(header::AUTHORIZATION).map(|v| v.as_bytes()));
        let open = req.path() == "/healthz";
        if open && creds == Credentials::None {
            return Ok(Access::Public);
        }
        let ip = client(req);
        let now = Instant::now();
        if let Some(left) = self.failures().blocked(ip, now) {
            self.counters.login_blocked.fetch_add(1, Ordering::Relaxed);
            return Err(too_many(left.as_secs().max(1)));
        }
        let user = match creds {
            Credentials::None => return Err(unauthorized("authentication required")),
            Credentials::Basic { user, password } if users.verify(&user, &password) => {
                return Ok(Access::Full)
            }
            Credentials::Basic { user, .. } => auth::loggable_user(&user),
            Credentials::Malformed => "(malformed Basic credentials)".to_string(),
        };
        self.counters.login_failures.fetch_add(1, Ordering::Relaxed);
        let verdict = self.failures().fail(ip, now);
        tracing::warn!(client = %ip, user = %user, path = req.path(), "login failed: wrong user name or password");
        if verdict == Verdict::Blocked {
            tracing::warn!(
                client = %ip,
                "{} failed logins within {} s: this client is refused for {} s",
                auth::MAX_FAILURES,
                auth::WINDOW.as_secs(),
                auth::WINDOW.as_secs()
            );
        }
        Err(unauthorized("wrong user name or password"))
    }
}

/// The peer's address (not `X-Forwarded-For`, which any client can write).
fn client(req: &ServiceRequest) -> IpAddr {
    req.peer_addr()
        .map(|a| a.ip())
        .unwrap_or(IpAddr::from([0, 0, 0, 0]))
}

/// The `Content-Length` a request declares, if it is a number.
fn declared_length(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()
}

fn has_body(headers: &HeaderMap) -> bool {
    headers.contains_key(header::TRANSFER_ENCODING)
        || headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.trim() != "0")
}

fn is_websocket(headers: &HeaderMap) -> bool {
    headers
        .get(header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(',')
                .any(|p| p.trim().eq_ignore_ascii_case("websocket"))
        })
}

fn refusal_message(r: &origin::Refusal) -> &str {
    match r {
        origin::Refusal::Forbidden(m) | origin::Refusal::MediaType(m) => m,
    }
}

fn error(status: StatusCode) -> actix_web::HttpResponseBuilder {
    let mut b = HttpResponse::build(status);
    b.insert_header((header::CACHE_CONTROL, "no-store"));
    b
}

fn json(mut b: actix_web::HttpResponseBuilder, message: &str) -> Box<HttpResponse> {
    Box::new(b.json(serde_json::json!({ "error": message })))
}

fn refused(r: origin::Refusal) -> Box<HttpResponse> {
    let status = match r {
        origin::Refusal::Forbidden(_) => StatusCode::FORBIDDEN,
        origin::Refusal::MediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
    };
    json(error(status), refusal_message(&r))
}

fn unauthorized(message: &str) -> Box<HttpResponse> {
    let mut b = error(StatusCode::UNAUTHORIZED);
    b.insert_header((header::WWW_AUTHENTICATE, CHALLENGE));
    json(b, message)
}

fn too_many(retry_after_s: u64) -> Box<HttpResponse> {
    let mut b = error(StatusCode::TOO_MANY_REQUESTS);
    b.insert_header((header::RETRY_AFTER, retry_after_s.to_string()));
    json(
        b,
        &format!("too many failed logins from this address; try again in {retry_after_s} s"),
    )
}

/// The middleware of both listeners (`App::wrap(from_fn(guard))`, with a
/// `web::Data<Security>` in the app data).
pub async fn guard(
    mut req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    // HEAD wherever GET is (load balancers' checks): routed as GET; the connection
    // still knows the request was HEAD and sends the headers only.
    if req.method() == Method::HEAD {
        req.head_mut().method = Method::GET;
    }
    let decision = match req.app_data::<web::Data<Security>>() {
        Some(sec) => sec.decide(&req),
        None => Ok(Access::Full),
    };
    match decision {
        Ok(access) => {
            req.extensions_mut().insert(access);
            Ok(next.call(req).await?.map_into_boxed_body())
        }
        Err(res) => Ok(req.into_response(*res)),
    }
}
