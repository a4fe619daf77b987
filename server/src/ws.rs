//! WebSocket push (port 50005, and `/ws` on 50004): a snapshot of every host on connect,
//! then every change as JSON: `{"type": "beat"|"event"|"host", "data": ...}`.
//!
//! Each client reads from a bounded broadcast channel. Ingest never waits for a client:
//! one that falls more than `ws_client_buffer` messages behind, or whose socket does not
//! take a message within 5 s, is closed with the reason "client too slow".

use std::sync::atomic::Ordering;
use std::time::Duration;

use actix_web::{web, HttpRequest, HttpResponse};
use actix_ws::{CloseCode, CloseReason, Message};
use futures_util::StreamExt;
use tokio::sync::broadcast::error::RecvError;

use crate::state::{Shared, Summary};

const SEND_TIMEOUT: Duration = Duration::from_secs(5);

pub async fn connect(
    state: web::Data<Shared>,
    req: HttpRequest,
    body: web::Payload,
) -> Result<HttpResponse, actix_web::Error> {
    let (response, mut session, mut incoming) = actix_ws::handle(&req, body)?;
    let state: Shared = state.get_ref().clone();
    // Subscribe before the snapshot so nothing between the two is missed.
    let mut live = state.live.subscribe();
    actix_web::rt::spawn(async move {
        state.counters.ws_clients.fetch_add(1, Ordering::Relaxed);
        let snapshot = {
            let reg = state.registry();
            let hosts: Vec<Summary> = reg.iter().map(Summary::of).collect();
            serde_json::json!({ "type": "snapshot", "data": { "hosts": hosts, "last_event_id": reg.last_event_id } })
        };
        let mut close: Option<CloseReason> = None;
        if session.text(snapshot.to_string()).await.is_ok() {
            loop {
                tokio::select! {
                    msg = live.recv() => match msg {
                        Ok(text) => match tokio::time::timeout(SEND_TIMEOUT, session.text(text)).await {
                            Ok(Ok(())) => {}
                            Ok(Err(_)) => break,
                            Err(_) => {
                                state.counters.ws_dropped_slow.fetch_add(1, Ordering::Relaxed);
                                close = Some(slow());
                                break;
                            }
                        },
                        Err(RecvError::Lagged(n)) => {
                            tracing::info!("WebSocket client fell {n} messages behind; closing it");
                            state.counters.ws_dropped_slow.fetch_add(1, Ordering::Relaxed);
                            close = Some(slow());
                            break;
                        }
                        Err(RecvError::Closed) => break,
                    },
                    msg = incoming.next() => match msg {
                        Some(Ok(Message::Ping(b))) => {
                            if session.pong(&b).await.is_err() {
                                break;
                            }
                        }
                        Some(Ok(Message::Close(_))) | None | Some(Err(_)) => break,
                        Some(Ok(_)) => {}
                    },
                }
            }
        }
        state.counters.ws_clients.fetch_sub(1, Ordering::Relaxed);
        let _ = tokio::time::timeout(SEND_TIMEOUT, session.close(close)).await;
    });
    Ok(response)
}

fn slow() -> CloseReason {
    CloseReason {
        code: CloseCode::Policy,
        description: Some("client too slow".into()),
    }
}

/// Routes of the WebSocket-only server (port 50005).
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/", web::get().to(connect))
        .route("/ws", web::get().to(connect));
}
