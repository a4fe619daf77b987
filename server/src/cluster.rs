//! Cluster mode's glue (docs/cluster.md): starts hbd-cluster when `cluster_nats` is set,
//! lets notifications leave through the leader only (hbd-notify's `Announcer` over the
//! engine), runs dynamic DNS on the leader only, shares silences and forgotten hosts with
//! the other nodes,
//! and serves `GET /api/v1/cluster` (also in `/healthz` and `/metrics`, as a sink).

use std::net::IpAddr;
use std::sync::{Arc, OnceLock, Weak};

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use anyhow::Result;
use serde::{Deserialize, Serialize};

use hbd_cluster::{Cluster, ClusterConfig, Mutation};
use hbd_notify::cluster::{Announcer, Claim};
use hbd_notify::control::NewSilence;
use hbd_notify::silence::Silence;
use hbd_notify::Notify;

use crate::api::ApiError;
use crate::sink::Sink;
use crate::state::State;

/// The cluster, when cluster mode is on (app data of the API).
#[derive(Clone, Default)]
pub struct Handle(pub Option<Arc<Cluster>>);

/// A silence as it travels between nodes (ids are each node's own).
#[derive(Debug, Serialize, Deserialize)]
struct SharedSilence {
    hosts: String,
    from_ms: u64,
    until_ms: u64,
    reason: String,
    #[serde(default)]
    by: Option<String>,
}

impl SharedSilence {
    fn of(s: &Silence) -> SharedSilence {
        SharedSilence {
            hosts: s.hosts.clone(),
            from_ms: s.from_ms,
            until_ms: s.until_ms,
            reason: s.reason.clone(),
            by: s.by.clone(),
        }
    }

    fn same(&self, s: &Silence) -> bool {
        self.hosts == s.hosts
            && self.from_ms == s.from_ms
            && self.until_ms == s.until_ms
            && self.reason == s.reason
    }
}

/// Where another node's mutations reach this node's hosts: set once the server's state
/// exists (mutations arriving before that find no host to forget yet).
pub type FleetSlot = Arc<OnceLock<Weak<State>>>;

/// Starts the cluster and wires notifications to it; `None` in single-server mode.
pub fn start(
    config: &ClusterConfig,
    notify: &Notify,
    fleet: FleetSlot,
    newest_event_ms: u64,
) -> Result<Option<Arc<Cluster>>> {
    if !config.enabled() {
        return Ok(None);
    }
    let n = notify.clone();
    // What the leader recorded after this node's newest event, until now, it missed.
    let events = Journal {
        fleet: fleet.clone(),
        since_ms: newest_event_ms,
        until_ms: crate::state::now_ms(),
    };
    let cluster = Cluster::start(
        config,
        Box::new(move |m: &Mutation| apply(&n, &fleet, m)),
        Box::new(Outbox(notify.clone())),
        Box::new(events),
    )?;
    let weak = Arc::downgrade(&cluster);
    notify.set_queue_ack(Box::new(move |token| {
        if let Some(c) = weak.upgrade() {
            c.queue_ack(token);
        }
    }));
    notify.set_announcer(Arc::new(Engine(cluster.clone())));
    Ok(Some(cluster))
}

/// A host forgotten on another node.
#[derive(Debug, Serialize, Deserialize)]
struct Forgotten {
    host: String,
}

/// A test notification asked on another node.
#[derive(Debug, Serialize, Deserialize)]
struct TestAsked {
    channel: Option<String>,
}

/// Applies another node's mutation here.
fn apply(notify: &Notify, fleet: &FleetSlot, m: &Mutation) {
    let now = crate::state::now_ms();
    if m.kind == "notify.test" {
        let Ok(t) = serde_json::from_value::<TestAsked>(m.body.clone()) else {
            tracing::warn!(origin = %m.origin, "cluster: unreadable notify.test skipped");
            return;
        };
        match notify.test(t.channel, Some(&m.origin), now) {
            Ok(channels) => {
                tracing::info!(origin = %m.origin, ?channels, "cluster: test notification asked on another node")
            }
            Err(e) => {
                tracing::warn!(origin = %m.origin, "cluster: test notification asked on another node not sent: {e}")
            }
        }
        return;
    }
    if m.kind == "host.forget" {
        let Ok(f) = serde_json::from_value::<Forgotten>(m.body.clone()) else {
            tracing::warn!(origin = %m.origin, "cluster: unreadable host.forget skipped");
            return;
        };
        if let Some(state) = fleet.get().and_then(Weak::upgrade) {
            let why = format!("forgotten through the API of hbd node {}", m.origin);
            if state.forget_host(&f.host, &why) {
                tracing::info!(host = %f.host, origin = %m.origin, "cluster: host forgotten on another node");
            }
        }
        return;
    }
    let Ok(s) = serde_json::from_value::<SharedSilence>(m.body.clone()) else {
        tracing::warn!(kind = %m.kind, origin = %m.origin, "cluster: unreadable mutation skipped");
        return;
    };
    match m.kind.as_str() {
        "silence.add" => {
            if notify.silences(now).iter().any(|x| s.same(x)) {
                return;
            }
            let by =
                s.by.clone()
                    .or_else(|| Some(format!("hbd node {}", m.origin)));
            let b = NewSilence {
                hosts: s.hosts,
                duration: None,
                until_ms: Some(s.until_ms),
                from_ms: Some(s.from_ms),
                reason: s.reason,
                by,
            };
            if let Err(e) = notify.add_silence(b, now) {
                tracing::warn!(origin = %m.origin, "cluster: a silence from another node was refused: {e}");
            }
        }
        "silence.remove" => {
            for x in notify.silences(now).iter().filter(|x| s.same(x)) {
                notify.end_silence(x.id, now);
            }
        }
        other => tracing::warn!(kind = other, "cluster: unknown mutation skipped"),
    }
}

/// A host forgotten through this node's API, for the other nodes.
pub fn host_forgotten(handle: &Handle, host: &str) {
    if let Some(c) = &handle.0 {
        c.publish(
            "host.forget",
            serde_json::json!(Forgotten { host: host.into() }),
        );
    }
}

/// A test notification asked through this node's API: every other node sends one too.
/// Whether it was published (cluster mode).
pub fn test_asked(handle: &Handle, channel: Option<String>) -> bool {
    match &handle.0 {
        Some(c) => {
            c.publish("notify.test", serde_json::json!(TestAsked { channel }));
            true
        }
        None => false,
    }
}

/// A silence added through this node's API, for the other nodes.
pub fn silence_added(handle: &Handle, s: &Silence) {
    if let Some(c) = &handle.0 {
        c.publish("silence.add", serde_json::json!(SharedSilence::of(s)));
    }
}

/// A silence ended through this node's API, for the other nodes.
pub fn silence_ended(handle: &Handle, s: &Silence) {
    if let Some(c) = &handle.0 {
        c.publish("silence.remove", serde_json::json!(SharedSilence::of(s)));
    }
}

/// The leader's side of the cluster's notification queue: what it gives goes to the
/// channels' outboxes, acknowledged once sent.
struct Outbox(Notify);

impl hbd_cluster::QueueHandler for Outbox {
    fn deliver(&self, body: &[u8], token: u64) -> Result<(), String> {
        self.0.deliver_queued(body, token)
    }
    fn release(&self) -> usize {
        self.0.drop_queued()
    }
}

/// The journal's side of shared events: what this node missed while away is imported
/// into its journal and recent events (not notified: the leader did that).
struct Journal {
    fleet: FleetSlot,
    since_ms: u64,
    until_ms: u64,
}

impl hbd_cluster::Events for Journal {
    fn ready(&self) -> bool {
        self.fleet.get().is_some()
    }
    fn since_ms(&self) -> u64 {
        self.since_ms
    }
    fn until_ms(&self) -> u64 {
        self.until_ms
    }
    fn import(&self, origin: &str, events: Vec<Vec<u8>>) {
        let Some(state) = self.fleet.get().and_then(Weak::upgrade) else {
            return;
        };
        let events: Vec<hbd_core::event::Event> = events
            .iter()
            .filter_map(|b| serde_json::from_slice::<hbd_core::event::Event>(b).ok())
            .map(|e| imported(e, origin))
            .collect();
        state.import_events(events);
    }
}

/// An event another node shared, as this node records it: its texts cleaned as hbd
/// cleans what a heartbeat carries (the stream is another program's input), the message
/// naming the node that recorded it.
fn imported(mut e: hbd_core::event::Event, origin: &str) -> hbd_core::event::Event {
    use hbd_core::text::{clean, clean_line};
    let line = |t: &str| clean_line(t).into_owned();
    e.host = line(&e.host);
    e.key = e.key.as_deref().map(line);
    e.from = e.from.as_deref().map(line);
    e.to = e.to.as_deref().map(line);
    let origin = line(origin);
    e.message = format!(
        "{} (recorded by hbd node {origin} while this node was away)",
        clean(&e.message)
    )
    .trim_start()
    .to_string();
    e
}

/// hbd-notify's view of the engine.
struct Engine(Arc<Cluster>);

impl Announcer for Engine {
    fn is_leader(&self) -> bool {
        self.0.is_leader()
    }
    fn alone(&self) -> bool {
        self.0.alone()
    }
    fn claim(&self, class: &str, subject: &str, state: &str, quiet: bool) -> Claim {
        match self.0.claim(class, subject, state, quiet) {
            hbd_cluster::Claim::Send => Claim::Send,
            hbd_cluster::Claim::Announced => Claim::Announced,
            hbd_cluster::Claim::NotLeader => Claim::NotLeader,
            hbd_cluster::Claim::Unreachable => Claim::Unreachable,
        }
    }
    fn node(&self) -> String {
        self.0.node().to_string()
    }
    fn enqueue(&self, id: &str, body: Vec<u8>) -> bool {
        self.0.enqueue(id, body)
    }
}

/// The cluster as a sink: status in `/healthz`, families in `/metrics`, stopped (lease
/// handed over) at shutdown, after the subsystems before it.
pub struct ClusterSink(pub Arc<Cluster>);

impl Sink for ClusterSink {
    fn name(&self) -> &'static str {
        "cluster"
    }
    fn metrics(&self, out: &mut String) {
        self.0.metrics(out);
    }
    fn status(&self) -> serde_json::Value {
        serde_json::to_value(self.0.status()).unwrap_or(serde_json::Value::Null)
    }
    fn shutdown(&self) {
        self.0.stop();
    }
}

/// Forwards heartbeats to a subsystem only while this node leads (dynamic DNS: one
/// node updates the records; a new leader updates on the next heartbeat).
pub struct LeaderOnly<S: Sink> {
    pub inner: Arc<S>,
    pub cluster: Arc<Cluster>,
}

impl<S: Sink> Sink for LeaderOnly<S> {
    fn name(&self) -> &'static str {
        self.inner.name()
    }
    fn event(&self, event: &hbd_core::event::Event) {
        self.inner.event(event);
    }
    fn heartbeat(&self, host: &str, addr: IpAddr, verified: bool) {
        if self.cluster.is_leader() {
            self.inner.heartbeat(host, addr, verified);
        }
    }
    fn attach(&self, fleet: std::sync::Weak<dyn hbd_core::fleet::FleetView>) {
        self.inner.attach(fleet);
    }
    fn metrics(&self, out: &mut String) {
        self.inner.metrics(out);
    }
    fn status(&self) -> serde_json::Value {
        self.inner.status()
    }
    fn shutdown(&self) {
        self.inner.shutdown();
    }
}

async fn cluster_status(handle: web::Data<Handle>) -> Result<HttpResponse, ApiError> {
    match &handle.0 {
        Some(c) => Ok(HttpResponse::Ok().json(c.status())),
        None => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "cluster mode is off (cluster_nats is empty)",
        )),
    }
}

/// `GET /api/v1/cluster`, and the handle the silence routes publish through.
pub fn configure(cfg: &mut web::ServiceConfig, handle: Handle) {
    cfg.app_data(web::Data::new(handle))
        .route("/api/v1/cluster", web::get().to(cluster_status));
}

/// Shares the events this node records while it leads (not hbd's own `system` events,
/// which are each node's), for nodes that were away.
pub struct EventShare(pub Arc<Cluster>);

impl Sink for EventShare {
    fn name(&self) -> &'static str {
        "cluster-events"
    }
    fn event(&self, event: &hbd_core::event::Event) {
        if event.kind == hbd_core::event::EventKind::System || !self.0.is_leader() {
            return;
        }
        if let Ok(v) = serde_json::to_value(event) {
            self.0.share_event(event.id, v);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hbd_core::event::{Event, EventKind};

    #[test]
    fn an_imported_event_is_cleaned_and_names_its_node() {
        let e = Event {
            id: 7,
            ts_ms: 1,
            host: "web\u{1b}[31m1".into(),
            kind: EventKind::HostDown,
            key: Some("cpu\u{202e}exe".into()),
            from: Some("UP\0".into()),
            to: Some("DOWN\r".into()),
            message: format!("bell\u{7}{}", "x".repeat(30_000)),
        };
        let got = imported(e, "n1\u{1b}");
        for t in [
            &got.host,
            got.key.as_deref().unwrap_or(""),
            got.from.as_deref().unwrap_or(""),
            got.to.as_deref().unwrap_or(""),
            &got.message,
        ] {
            assert!(
                !t.chars().any(|c| c.is_control() && c != '\n' && c != '\t'
                    || ('\u{202a}'..='\u{202e}').contains(&c)),
                "{t:?}"
            );
        }
        assert!(
            got.message.len() < hbd_core::text::MAX_TEXT + 100,
            "{}",
            got.message.len()
        );
        assert!(
            got.message
                .ends_with("(recorded by hbd node n1\u{fffd} while this node was away)"),
            "{}",
            &got.message[got.message.len() - 80..]
        );
    }
}
