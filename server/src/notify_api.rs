//! The notification routes of the API server (the subsystem is `hbd_notify`):
//!
//! - `GET /api/v1/notify`: channels, silences, flapping hosts, counters (the status).
//! - `GET /api/v1/notify/channels`: each channel's queue, last success and last error.
//! - `POST /api/v1/notify/test` (token): a test notification to every channel, or to
//!   `{"channel": "email"}`; in cluster mode every node sends one (`every_node`).
//! - `GET /api/v1/silences`: active and planned silences.
//! - `POST /api/v1/silences` (token): `{"hosts": "web*", "duration": "2h" | "until_ms":
//!   ..., "from_ms": ... (optional), "reason": "...", "by": "..." (optional)}`.
//! - `DELETE /api/v1/silences/{id}` (token): ends a silence now.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use hbd_notify::control::{NewSilence, TestRequest};
use hbd_notify::Notify;

use crate::api::{authorize, ApiError};
use crate::state::{now_ms, Shared};

fn internal(e: impl std::fmt::Display) -> ApiError {
    ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string())
}

fn bad(msg: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, msg)
}

async fn status(notify: web::Data<Notify>) -> HttpResponse {
    HttpResponse::Ok().json(notify.report())
}

async fn channels(notify: web::Data<Notify>) -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({ "channels": notify.channel_status() }))
}

async fn list_silences(notify: web::Data<Notify>) -> HttpResponse {
    let now = now_ms();
    let silences = notify.silences(now);
    HttpResponse::Ok().json(serde_json::json!({ "silences": silences, "now_ms": now }))
}

async fn add_silence(
    state: web::Data<Shared>,
    notify: web::Data<Notify>,
    cluster: web::Data<crate::cluster::Handle>,
    req: HttpRequest,
    body: web::Json<NewSilence>,
) -> Result<HttpResponse, ApiError> {
    authorize(&state, &req)?;
    let b = body.into_inner();
    let n = notify.into_inner();
    let silence = web::block(move || n.add_silence(b, now_ms()))
        .await
        .map_err(internal)?
        .map_err(|e| bad(e.to_string()))?;
    crate::cluster::silence_added(&cluster, &silence);
    Ok(HttpResponse::Created().json(silence))
}

async fn remove_silence(
    state: web::Data<Shared>,
    notify: web::Data<Notify>,
    cluster: web::Data<crate::cluster::Handle>,
    req: HttpRequest,
    id: web::Path<u64>,
) -> Result<HttpResponse, ApiError> {
    authorize(&state, &req)?;
    let id = id.into_inner();
    let n = notify.into_inner();
    match web::block(move || n.end_silence(id, now_ms()))
        .await
        .map_err(internal)?
    {
        Some(s) => {
            crate::cluster::silence_ended(&cluster, &s);
            Ok(HttpResponse::NoContent().finish())
        }
        None => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            format!("no silence with id {id}"),
        )),
    }
}

async fn test(
    state: web::Data<Shared>,
    notify: web::Data<Notify>,
    cluster: web::Data<crate::cluster::Handle>,
    req: HttpRequest,
    body: Option<web::Json<TestRequest>>,
) -> Result<HttpResponse, ApiError> {
    authorize(&state, &req)?;
    let channel = body.and_then(|b| b.into_inner().channel);
    let n = notify.into_inner();
    let c = channel.clone();
    let queued = web::block(move || n.test(c, None, now_ms()))
        .await
        .map_err(internal)?
        .map_err(bad)?;
    let every_node = crate::cluster::test_asked(&cluster, channel);
    Ok(HttpResponse::Accepted()
        .json(serde_json::json!({ "queued": queued, "every_node": every_node })))
}

/// A body that is not the JSON expected (400), or larger than the limit (413).
fn json_error(err: actix_web::error::JsonPayloadError) -> actix_web::Error {
    use actix_web::ResponseError;
    let status = match err.status_code() {
        StatusCode::PAYLOAD_TOO_LARGE => StatusCode::PAYLOAD_TOO_LARGE,
        _ => StatusCode::BAD_REQUEST,
    };
    ApiError::new(status, format!("invalid JSON body: {err}")).into()
}

pub fn configure(cfg: &mut web::ServiceConfig, notify: Notify) {
    let data = web::Data::new(notify);
    cfg.service(
        web::scope("/api/v1/notify")
            .app_data(data.clone())
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
            .app_data(data)
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
