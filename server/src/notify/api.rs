//! The notification routes of the API server:
//!
//! - `GET /api/v1/notify`: channels, silences, flapping hosts, counters (the status).
//! - `GET /api/v1/notify/channels`: each channel's queue, last success and last error.
//! - `POST /api/v1/notify/test` (token): a test notification to every channel, or to
//!   `{"channel": "email"}`.
//! - `GET /api/v1/silences`: active and planned silences.
//! - `POST /api/v1/silences` (token): `{"hosts": "web*", "duration": "2h" | "until_ms":
//!   ..., "from_ms": ... (optional), "reason": "...", "by": "..." (optional)}`.
//! - `DELETE /api/v1/silences/{id}` (token): ends a silence now.

use std::sync::Arc;

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;

use crate::api::{authorize, ApiError};
use crate::event::{Event, EventKind};
use crate::state::{now_ms, Shared};

use super::engine::lock;
use super::notification::Kind;
use super::templates::utc;
use super::Inner;

fn internal(e: impl std::fmt::Display) -> ApiError {
    ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string())
}

async fn status(inner: web::Data<Inner>) -> HttpResponse {
    HttpResponse::Ok().json(inner.status())
}

async fn channels(inner: web::Data<Inner>) -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({ "channels": inner.channel_status() }))
}

async fn list_silences(inner: web::Data<Inner>) -> HttpResponse {
    let now = now_ms();
    let silences = lock(&inner.engine).policy.silences(now);
    HttpResponse::Ok().json(serde_json::json!({ "silences": silences, "now_ms": now }))
}

/// The body of `POST /api/v1/silences`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewSilence {
    pub hosts: String,
    #[serde(default)]
    pub duration: Option<String>,
    #[serde(default)]
    pub until_ms: Option<u64>,
    #[serde(default)]
    pub from_ms: Option<u64>,
    pub reason: String,
    #[serde(default)]
    pub by: Option<String>,
}

impl NewSilence {
    /// When the silence ends: `until_ms`, or `duration` after its start (`from_ms`, or
    /// now if that is absent or earlier). The rest is checked by `Policy::add_silence`.
    pub fn end_ms(&self, now_ms: u64) -> Result<u64, String> {
        match (&self.duration, self.until_ms) {
            (Some(d), None) => {
                let d = crate::config::parse_duration(d).map_err(|e| format!("duration: {e}"))?;
                // Checked: a `from_ms` near the end of time overflowed (found by fuzzing).
                let start = self.from_ms.unwrap_or(now_ms).max(now_ms);
                start
                    .checked_add(d.as_millis() as u64)
                    .ok_or_else(|| format!("from_ms: {start} is too far in the future"))
            }
            (None, Some(u)) => Ok(u),
            _ => Err("give either duration (e.g. \"2h\") or until_ms".into()),
        }
    }
}

fn bad(msg: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, msg)
}

async fn add_silence(
    state: web::Data<Shared>,
    inner: web::Data<Inner>,
    req: HttpRequest,
    body: web::Json<NewSilence>,
) -> Result<HttpResponse, ApiError> {
    authorize(&state, &req)?;
    let b = body.into_inner();
    let now = now_ms();
    let until = b.end_ms(now).map_err(bad)?;
    let inner2 = inner.clone();
    let silence = web::block(move || {
        let mut e = lock(&inner2.engine);
        let s = e
            .policy
            .add_silence(&b.hosts, b.from_ms, until, &b.reason, b.by, now)?;
        e.save_logged();
        Ok::<_, super::policy::SilenceError>(s)
    })
    .await
    .map_err(internal)?
    .map_err(|e| bad(e.to_string()))?;
    tracing::info!(id = silence.id, hosts = %silence.hosts, until = %utc(silence.until_ms), "silence added: {}", silence.reason);
    inner.emitter.emit(Event {
        id: 0,
        ts_ms: now,
        host: "hbd".into(),
        kind: EventKind::System,
        key: Some(format!("silence.{}", silence.id)),
        from: None,
        to: Some("SILENCED".into()),
        message: format!(
            "silence {} for {} from {} until {}{}: {}",
            silence.id,
            silence.hosts,
            utc(silence.from_ms),
            utc(silence.until_ms),
            silence
                .by
                .as_deref()
                .map(|b| format!(" by {b}"))
                .unwrap_or_default(),
            silence.reason
        ),
    });
    Ok(HttpResponse::Created().json(silence))
}

async fn remove_silence(
    state: web::Data<Shared>,
    inner: web::Data<Inner>,
    req: HttpRequest,
    id: web::Path<u64>,
) -> Result<HttpResponse, ApiError> {
    authorize(&state, &req)?;
    let id = id.into_inner();
    let inner2 = inner.clone();
    let removed = web::block(move || {
        let now = now_ms();
        let mut e = lock(&inner2.engine);
        let r = e.policy.remove_silence(id, now);
        if let Some((_, out)) = &r {
            e.deliver(out.clone(), now);
            e.save_logged();
        }
        r.map(|(s, _)| s)
    })
    .await
    .map_err(internal)?;
    let Some(s) = removed else {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            format!("no silence with id {id}"),
        ));
    };
    inner.emitter.emit(Event {
        id: 0,
        ts_ms: now_ms(),
        host: "hbd".into(),
        kind: EventKind::System,
        key: Some(format!("silence.{}", s.id)),
        from: Some("SILENCED".into()),
        to: Some("ENDED".into()),
        message: format!("silence {} for {} ended through the API", s.id, s.hosts),
    });
    Ok(HttpResponse::NoContent().finish())
}

/// The optional body of `POST /api/v1/notify/test`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TestRequest {
    #[serde(default)]
    pub channel: Option<String>,
}

async fn test(
    state: web::Data<Shared>,
    inner: web::Data<Inner>,
    req: HttpRequest,
    body: Option<web::Json<TestRequest>>,
) -> Result<HttpResponse, ApiError> {
    authorize(&state, &req)?;
    let channel = body.and_then(|b| b.into_inner().channel);
    let inner2 = inner.clone();
    let queued = web::block(move || {
        let now = now_ms();
        let mut e = lock(&inner2.engine);
        if let Some(c) = &channel {
            if !e.channel_names().contains(c) {
                return Err(format!(
                    "channel: {c:?} is not configured; configured: {}",
                    e.channel_names().join(", ")
                ));
            }
        }
        let mut n = e.policy.make(
            Kind::Test,
            "hbd",
            "OK",
            "If you read this, hbd's notifications reach you.".into(),
            now,
        );
        n.key = channel.clone();
        e.deliver(vec![n], now);
        Ok(match channel {
            Some(c) => vec![c],
            None => e.channel_names().to_vec(),
        })
    })
    .await
    .map_err(internal)?
    .map_err(bad)?;
    Ok(HttpResponse::Accepted().json(serde_json::json!({ "queued": queued })))
}

fn json_error(err: impl std::fmt::Display) -> actix_web::Error {
    ApiError::new(StatusCode::BAD_REQUEST, format!("invalid JSON body: {err}")).into()
}

pub fn configure(cfg: &mut web::ServiceConfig, inner: Arc<Inner>) {
    cfg.service(
        web::scope("/api/v1/notify")
            .app_data(web::Data::from(inner.clone()))
            .app_data(
                web::JsonConfig::default()
                    .limit(16 << 10)
                    .error_handler(|e, _| json_error(e)),
            )
            .route("", web::get().to(status))
            .route("/channels", web::get().to(channels))
            .route("/test", web::post().to(test)),
    )
    .service(
        web::scope("/api/v1/silences")
            .app_data(web::Data::from(inner))
            .app_data(
                web::JsonConfig::default()
                    .limit(16 << 10)
                    .error_handler(|e, _| json_error(e)),
            )
            .app_data(web::PathConfig::default().error_handler(|e, _| {
                ApiError::new(StatusCode::BAD_REQUEST, format!("silence id: {e}")).into()
            }))
            .route("", web::get().to(list_silences))
            .route("", web::post().to(add_silence))
            .route("/{id}", web::delete().to(remove_silence)),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = 1_700_000_000_000;

    fn body(json: &[u8]) -> NewSilence {
        serde_json::from_slice(json).expect("a valid body")
    }

    #[test]
    fn end_is_until_or_duration_after_the_start() {
        let b = body(br#"{"hosts":"web*","duration":"2h","reason":"r"}"#);
        assert_eq!(b.end_ms(NOW), Ok(NOW + 7_200_000));
        let b = body(br#"{"hosts":"web*","duration":"1s","from_ms":1800000000000,"reason":"r"}"#);
        assert_eq!(b.end_ms(NOW), Ok(1_800_000_001_000));
        let b = body(br#"{"hosts":"a","until_ms":5,"reason":"r"}"#);
        assert_eq!(b.end_ms(NOW), Ok(5));
        for both_or_none in [
            &br#"{"hosts":"a","until_ms":5,"duration":"1h","reason":"r"}"#[..],
            br#"{"hosts":"a","reason":"r"}"#,
        ] {
            assert!(body(both_or_none).end_ms(NOW).is_err());
        }
    }

    /// A start near the end of time overflowed when the duration was added: a panic in
    /// debug builds; in release an end in 1970, refused as "until: must be in the future".
    /// The body as the client sent it.
    #[test]
    fn a_start_at_the_end_of_time_is_refused() {
        let b =
            body(br#"{"hosts":"*","from_ms":18446744073709551000,"duration":"1h","reason":"x"}"#);
        let e = b.end_ms(NOW).expect_err("refused");
        assert!(e.starts_with("from_ms:"), "{e}");
    }
}
