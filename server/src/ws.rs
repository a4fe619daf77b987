//! WebSocket push (port 50005, and `/ws` on 50004): a snapshot of every host on connect,
//! then every change as JSON: `{"type": "beat"|"event"|"host", "data": ...}`.
//!
//! Each client reads from a bounded broadcast channel. Ingest never waits for a client:
//! one that falls more than `ws_client_buffer` messages behind gets a fresh snapshot
//! instead of what it missed (at a large fleet's heartbeat rate, a client falls behind
//! while its first snapshot is built and sent), at most [`MAX_RESYNCS`] times a minute;
//! beyond that, or when its socket does not take a message within 5 s, it is closed with
//! the reason "client too slow". Resyncs are counted in `hbd_websocket_resyncs_total`.
//!
//! What a handshake may cost: both listeners are behind the HTTP rate limit
//! (`api_rate_limit`, one bucket per client address for both), at most `ws_max_clients`
//! clients are connected at once (one more gets `503`) and at most
//! `ws_max_clients_per_address` from one address (IPv6: its /64; one more gets `429`),
//! each refusal counted in `hbd_websocket_refused_total`. The snapshot is serialised once
//! and shared ([`Snapshots`]): a handshake reuses the last one unless something was
//! published since, and handshakes that arrive while one is being built wait for it, so a
//! flood of handshakes costs one build at a time, each reading the registry
//! [`SNAPSHOT_HOSTS_PER_LOCK`] hosts at a time and serialising outside the lock.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use actix_ws::{CloseCode, CloseReason, Message};
use bytestring::ByteString;
use futures_util::StreamExt;
use tokio::sync::broadcast::{self, error::RecvError};

use crate::config::Config;
use crate::state::{Shared, State, Summary};

const SEND_TIMEOUT: Duration = Duration::from_secs(5);
/// A client that falls more than `ws_client_buffer` messages behind gets a fresh
/// snapshot instead of the messages it missed, at most this many times per window;
/// once more and it is closed as too slow.
const MAX_RESYNCS: usize = 3;
const RESYNC_WINDOW: Duration = Duration::from_secs(60);

/// Default of `ws_max_clients`: clients of both WebSocket listeners together.
pub const DEFAULT_MAX_CLIENTS: usize = 1000;
/// Default of `ws_max_clients_per_address`: a few browsers' tabs behind one NAT address.
pub const DEFAULT_MAX_CLIENTS_PER_ADDRESS: usize = 20;
/// Seconds a refused client is asked to wait (`Retry-After`).
pub const RETRY_AFTER_S: u64 = 5;
/// Hosts copied under one lock of the registry when a snapshot is built.
pub const SNAPSHOT_HOSTS_PER_LOCK: usize = 1000;

/// Connected clients by address, the caps, and the shared snapshot; one for both
/// listeners (app data).
pub struct Clients {
    max: usize,
    per_address: usize,
    /// Clients by address key ([`crate::ratelimit::client_key`]); an address leaves the
    /// map with its last client, so it holds at most `max` entries.
    connected: Mutex<Connected>,
    /// Handshakes refused because `ws_max_clients` were connected.
    pub refused_total: AtomicU64,
    /// Handshakes refused because the address held `ws_max_clients_per_address`.
    pub refused_per_address: AtomicU64,
    pub snapshots: Snapshots,
}

#[derive(Default)]
struct Connected {
    total: usize,
    by_address: HashMap<IpAddr, usize>,
}

/// Why a handshake was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// `ws_max_clients` are connected: `503`.
    Full(usize),
    /// The address holds `ws_max_clients_per_address`: `429`.
    PerAddress(usize),
}

/// A connected client's place; gives it back when dropped.
pub struct Slot {
    clients: Arc<Clients>,
    key: IpAddr,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut c = self.clients.lock();
        c.total = c.total.saturating_sub(1);
        if let Some(n) = c.by_address.get_mut(&self.key) {
            *n -= 1;
            if *n == 0 {
                c.by_address.remove(&self.key);
            }
        }
        if c.total == 0 {
            // Nobody to share a snapshot with: drop it, and with it the receiver that
            // would keep ingest building live messages for no one.
            self.clients.snapshots.clear();
        }
    }
}

impl Clients {
    pub fn new(config: &Config) -> Arc<Clients> {
        Arc::new(Clients {
            max: config.ws_max_clients.max(1),
            per_address: config.ws_max_clients_per_address.max(1),
            connected: Mutex::new(Connected::default()),
            refused_total: AtomicU64::new(0),
            refused_per_address: AtomicU64::new(0),
            snapshots: Snapshots::default(),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Connected> {
        self.connected
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Takes a place for a client from `ip`, or says why not (counted).
    pub fn admit(self: &Arc<Self>, ip: IpAddr) -> Result<Slot, Refused> {
        let key = crate::ratelimit::client_key(ip);
        let mut c = self.lock();
        if c.total >= self.max {
            self.refused_total.fetch_add(1, Ordering::Relaxed);
            return Err(Refused::Full(self.max));
        }
        let n = c.by_address.entry(key).or_insert(0);
        if *n >= self.per_address {
            self.refused_per_address.fetch_add(1, Ordering::Relaxed);
            return Err(Refused::PerAddress(self.per_address));
        }
        *n += 1;
        c.total += 1;
        Ok(Slot {
            clients: self.clone(),
            key,
        })
    }

    /// Clients connected now.
    pub fn connected(&self) -> usize {
        self.lock().total
    }

    /// `hbd_websocket_refused_total` and `hbd_websocket_snapshots_built_total`.
    pub fn metrics(&self, out: &mut String) {
        crate::metrics::labelled(
            out,
            "hbd_websocket_refused_total",
            "counter",
            "WebSocket handshakes refused, by the cap that was reached.",
            "reason",
            [
                ("max_clients", self.refused_total.load(Ordering::Relaxed)),
                (
                    "max_clients_per_address",
                    self.refused_per_address.load(Ordering::Relaxed),
                ),
            ],
        );
        crate::metrics::single(
            out,
            "hbd_websocket_snapshots_built_total",
            "counter",
            "Handshake snapshots serialised (each shared by every handshake it could serve).",
            self.snapshots.built.load(Ordering::Relaxed),
        );
    }
}

impl Refused {
    fn response(self, ip: IpAddr) -> HttpResponse {
        let (status, error) = match self {
            Refused::Full(max) => (
                StatusCode::SERVICE_UNAVAILABLE,
                format!("{max} WebSocket clients are connected (ws_max_clients); retry after {RETRY_AFTER_S} s"),
            ),
            Refused::PerAddress(max) => (
                StatusCode::TOO_MANY_REQUESTS,
                format!("{ip} has {max} WebSocket clients connected (ws_max_clients_per_address); retry after {RETRY_AFTER_S} s"),
            ),
        };
        HttpResponse::build(status)
            .insert_header(("Retry-After", RETRY_AFTER_S.to_string()))
            .json(serde_json::json!({ "error": error }))
    }
}

/// The last snapshot built, while it can still be used.
struct Cached {
    /// Builds are numbered in the order they start.
    generation: u64,
    text: ByteString,
    /// Subscribed to the live messages before the registry was read: while it is empty,
    /// nothing was published since, and the snapshot is current.
    witness: broadcast::Receiver<ByteString>,
}

/// The handshake snapshot, built once and shared (see the module doc).
///
/// A client subscribes to the live messages first, then takes a snapshot that is current
/// as of a moment after its subscription: one whose build started after it subscribed,
/// or one that nothing has been published since. Either way no change falls between the
/// snapshot and the live messages.
#[derive(Default)]
pub struct Snapshots {
    /// Builds started.
    started: AtomicU64,
    /// Builds finished (for `/metrics` and tests).
    pub built: AtomicU64,
    cached: Mutex<Option<Cached>>,
    /// One build at a time; handshakes wait here for the build in progress.
    building: tokio::sync::Mutex<()>,
}

impl Snapshots {
    fn cached(&self) -> std::sync::MutexGuard<'_, Option<Cached>> {
        self.cached.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn clear(&self) {
        self.cached().take();
    }

    /// The snapshot if it is current for a client that subscribed before `ticket` was
    /// read from `started`.
    fn current(&self, ticket: u64) -> Option<ByteString> {
        let mut cached = self.cached();
        let c = cached.as_ref()?;
        if c.generation > ticket || c.witness.is_empty() {
            return Some(c.text.clone());
        }
        // Stale for this client, and so for every later one: the text of a large fleet is
        // tens of MB, not kept for nobody.
        cached.take();
        None
    }

    /// A current snapshot for a client subscribed just before this call.
    pub async fn get(&self, state: &Shared) -> Result<ByteString, actix_web::Error> {
        let ticket = self.started.load(Ordering::SeqCst);
        if let Some(text) = self.current(ticket) {
            return Ok(text);
        }
        let _one = self.building.lock().await;
        if let Some(text) = self.current(ticket) {
            return Ok(text);
        }
        let generation = self.started.fetch_add(1, Ordering::SeqCst) + 1;
        let witness = state.live.subscribe();
        let s = state.clone();
        let text = web::block(move || build(&s)).await?;
        self.built.fetch_add(1, Ordering::Relaxed);
        *self.cached() = Some(Cached {
            generation,
            text: text.clone(),
            witness,
        });
        Ok(text)
    }
}

/// `{"type": "snapshot", "data": {"hosts": [...], "last_event_id": N}}`: the summaries
/// copied [`SNAPSHOT_HOSTS_PER_LOCK`] hosts at a time and written out as JSON without the
/// lock, chunk by chunk: what it costs beyond the text itself is one chunk of summaries
/// (a JSON value tree of the whole fleet cost 1.5 KB per host and made hbd's memory peak
/// when a fleet of 100,000 hosts started).
fn build(state: &State) -> ByteString {
    let mut out: Vec<u8> = br#"{"type":"snapshot","data":{"hosts":["#.to_vec();
    let mut first = true;
    let mut last_event_id = None;
    let mut start = 0;
    loop {
        let (chunk, end, slots) = {
            let reg = state.registry();
            last_event_id.get_or_insert(reg.last_event_id);
            let end = (start + SNAPSHOT_HOSTS_PER_LOCK).min(reg.slots());
            let chunk: Vec<Summary> = (start..end)
                .filter_map(|i| reg.slot(i))
                .map(Summary::of)
                .collect();
            (chunk, end, reg.slots())
        };
        for s in &chunk {
            let mark = out.len();
            if !first {
                out.push(b',');
            }
            match serde_json::to_writer(&mut out, s) {
                Ok(()) => first = false,
                Err(e) => {
                    out.truncate(mark);
                    tracing::warn!(host = %s.name, "left out of the WebSocket snapshot: {e}");
                }
            }
        }
        if end >= slots {
            break;
        }
        start = end;
    }
    out.extend_from_slice(
        format!(r#"],"last_event_id":{}}}}}"#, last_event_id.unwrap_or(0)).as_bytes(),
    );
    // serde_json writes UTF-8 only; were it ever not, the text is kept, repaired.
    ByteString::from(match String::from_utf8(out) {
        Ok(text) => text,
        Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
    })
}

pub async fn connect(
    state: web::Data<Shared>,
    clients: web::Data<Arc<Clients>>,
    req: HttpRequest,
    body: web::Payload,
) -> Result<HttpResponse, actix_web::Error> {
    let ip = req
        .peer_addr()
        .map(|a| a.ip())
        .unwrap_or(IpAddr::from([0, 0, 0, 0]));
    let slot = match clients.admit(ip) {
        Ok(slot) => slot,
        Err(refused) => {
            tracing::debug!(client = %ip, ?refused, "WebSocket handshake refused");
            return Ok(refused.response(ip));
        }
    };
    let (response, mut session, mut incoming) = actix_ws::handle(&req, body)?;
    let state: Shared = state.get_ref().clone();
    let clients: Arc<Clients> = clients.get_ref().clone();
    // Subscribe before the snapshot so nothing between the two is missed.
    let mut live = state.live.subscribe();
    actix_web::rt::spawn(async move {
        let _slot = slot;
        state.counters.ws_clients.fetch_add(1, Ordering::Relaxed);
        let mut close: Option<CloseReason> = None;
        let sent = send_snapshot(&clients, &state, &mut session, None).await;
        let mut resyncs: Vec<tokio::time::Instant> = Vec::with_capacity(MAX_RESYNCS);
        if sent {
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
                            // Behind, typically while its snapshot of a large fleet was
                            // built and sent: a fresh snapshot brings it up to date (the
                            // page replaces what it had), a few times a minute at most.
                            let now = tokio::time::Instant::now();
                            resyncs.retain(|t| now.duration_since(*t) < RESYNC_WINDOW);
                            if resyncs.len() >= MAX_RESYNCS {
                                tracing::info!("WebSocket client fell {n} messages behind again; closing it");
                                state.counters.ws_dropped_slow.fetch_add(1, Ordering::Relaxed);
                                close = Some(slow());
                                break;
                            }
                            resyncs.push(now);
                            state.counters.ws_resyncs.fetch_add(1, Ordering::Relaxed);
                            live = state.live.subscribe();
                            if !send_snapshot(&clients, &state, &mut session, Some(SEND_TIMEOUT)).await {
                                state.counters.ws_dropped_slow.fetch_add(1, Ordering::Relaxed);
                                close = Some(slow());
                                break;
                            }
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

/// Sends the current snapshot (see [`Snapshots`]); false when it could not be built or
/// sent (within `limit`, when given).
async fn send_snapshot(
    clients: &Clients,
    state: &Shared,
    session: &mut actix_ws::Session,
    limit: Option<Duration>,
) -> bool {
    let snapshot = match clients.snapshots.get(state).await {
        Ok(snapshot) => snapshot,
        Err(e) => {
            tracing::warn!("cannot build the WebSocket snapshot: {e}");
            return false;
        }
    };
    match limit {
        Some(limit) => matches!(
            tokio::time::timeout(limit, session.text(snapshot)).await,
            Ok(Ok(()))
        ),
        None => session.text(snapshot).await.is_ok(),
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn clients(max: usize, per_address: usize) -> Arc<Clients> {
        Clients::new(&Config {
            ws_max_clients: max,
            ws_max_clients_per_address: per_address,
            ..Config::default()
        })
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("ip")
    }

    #[test]
    fn caps_per_address_and_in_total() {
        let c = clients(5, 2);
        let a1 = c.admit(ip("192.0.2.1")).expect("first");
        let _a2 = c.admit(ip("192.0.2.1")).expect("second");
        assert_eq!(c.admit(ip("192.0.2.1")).err(), Some(Refused::PerAddress(2)));
        // IPv6 counts by /64.
        let _b1 = c.admit(ip("2001:db8::1")).expect("v6");
        let _b2 = c.admit(ip("2001:db8::2")).expect("v6, same /64");
        assert_eq!(
            c.admit(ip("2001:db8::3")).err(),
            Some(Refused::PerAddress(2))
        );
        let _d = c.admit(ip("192.0.2.9")).expect("fifth");
        assert_eq!(c.admit(ip("192.0.2.10")).err(), Some(Refused::Full(5)));
        assert_eq!(c.connected(), 5);
        // A place comes back when its client goes.
        drop(a1);
        assert_eq!(c.connected(), 4);
        let _a3 = c.admit(ip("192.0.2.1")).expect("room again");
        assert_eq!(c.refused_per_address.load(Ordering::Relaxed), 2);
        assert_eq!(c.refused_total.load(Ordering::Relaxed), 1);
        let mut text = String::new();
        c.metrics(&mut text);
        assert!(text.contains("hbd_websocket_refused_total{reason=\"max_clients\"} 1"));
    }
}
