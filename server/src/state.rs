//! The state every part of hbd shares: the registry, counters, the journal writer and the
//! WebSocket broadcast; and the one path every heartbeat takes, whether it came by UDP or
//! HTTP.

use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use bytestring::ByteString;
use serde::Serialize;

use hbd_core::drop::{DropCounters, DropReason};
use hbd_core::fleet::{CheckView, FleetView};

use crate::config::Config;
use crate::event::Event;
use crate::journal;
use crate::registry::{Applied, Detector, Host, LevelName, Registry, Status};

pub use hbd_core::now_ms;

/// Ingest and delivery counters.
#[derive(Debug, Default)]
pub struct Counters {
    pub udp_received: AtomicU64,
    pub http_received: AtomicU64,
    pub accepted: AtomicU64,
    pub bytes: AtomicU64,
    /// Datagrams dropped, by reason.
    pub dropped: DropCounters,
    pub events: AtomicU64,
    pub ws_clients: AtomicU64,
    pub ws_messages: AtomicU64,
    pub ws_dropped_slow: AtomicU64,
    /// Fresh snapshots sent to clients that fell behind (docs in ws.rs).
    pub ws_resyncs: AtomicU64,
    /// HTTP requests answered 429 (`api_rate_limit`).
    pub http_limited: AtomicU64,
    pub journal_dropped: AtomicU64,
}

/// The fields of a host every list and live update carries.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    pub name: String,
    pub status: Status,
    pub level: LevelName,
    pub watched: bool,
    pub last_seen_ms: Option<u64>,
    pub since_ms: u64,
    pub interval_ms: u32,
    pub address: Option<IpAddr>,
    pub lost: u64,
    /// Heartbeats lost recently (about the last 50), percent: why a host is `suspect`.
    pub loss_percent: f32,
    /// The liveness detector's state now: `alive`, `suspect` (nothing for longer than
    /// an interval, not DOWN yet), `down`, `never_seen` (docs/api.md).
    pub detector: Detector,
    /// Refreshes that kept the host alive (docs/protocol.md "Refreshes").
    pub refreshes: u64,
    pub cpu: Option<f32>,
    pub mem: Option<f32>,
    pub fs: Option<f32>,
    pub load: Option<f32>,
    /// The worst non-OK reading: key, level and message.
    pub worst: Option<Worst>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Worst {
    pub key: String,
    pub level: LevelName,
    pub message: String,
}

fn finite(v: f32) -> Option<f32> {
    v.is_finite().then_some(v)
}

impl Summary {
    /// The summary now (the detector's state depends on the time).
    pub fn of(h: &Host) -> Summary {
        Summary::at(h, now_ms())
    }

    /// The summary at `now_ms`.
    pub fn at(h: &Host, now_ms: u64) -> Summary {
        let last = h.history.back();
        let worst = h
            .readings
            .iter()
            .filter(|r| r.level != LevelName::Ok)
            .max_by_key(|r| r.level.severity())
            .map(|r| Worst {
                key: r.key().to_string(),
                level: r.level,
                message: r.message().to_string(),
            });
        Summary {
            name: h.name.to_string(),
            status: h.status,
            level: h.level,
            watched: h.watched,
            last_seen_ms: h.last_seen_ms,
            since_ms: h.since_ms,
            interval_ms: h.interval_ms,
            address: h.addrs.iter().max_by_key(|a| a.last_ms).map(|a| a.addr),
            lost: h.lost,
            loss_percent: (h.loss_recent * 1000.0).round() / 10.0,
            detector: h.detector(now_ms),
            refreshes: h.refreshes,
            cpu: last.and_then(|s| finite(s.cpu)),
            mem: last.and_then(|s| finite(s.mem)),
            fs: last.and_then(|s| finite(s.fs)),
            load: last.and_then(|s| finite(s.load)),
            worst,
        }
    }
}

/// Shared state.
pub struct State {
    registry: Mutex<Registry>,
    pub counters: Counters,
    pub config: Config,
    pub secret: Option<Vec<u8>>,
    pub journal: journal::Writer,
    pub journal_dir: std::path::PathBuf,
    /// Serialized live messages for WebSocket clients; never blocks the sender.
    pub live: tokio::sync::broadcast::Sender<ByteString>,
    pub started_ms: u64,
    /// Subsystems fed with events and heartbeats (notifications, dynamic DNS).
    pub sinks: Vec<Arc<dyn crate::sink::Sink>>,
    /// After an unclean stop: signed heartbeats sent (`sent_ms`) before this are replays,
    /// since the `(instance, seq)` they would be judged by may not have been saved.
    /// 0: no floor.
    replay_floor_ms: AtomicU64,
}

impl State {
    pub fn new(
        config: Config,
        registry: Registry,
        journal: journal::Writer,
        journal_dir: std::path::PathBuf,
        sinks: Vec<Arc<dyn crate::sink::Sink>>,
    ) -> State {
        let (live, _) = tokio::sync::broadcast::channel(config.ws_client_buffer);
        State {
            registry: Mutex::new(registry),
            counters: Counters::default(),
            secret: config
                .secret
                .as_ref()
                .map(|s| s.expose().as_bytes().to_vec()),
            config,
            journal,
            journal_dir,
            live,
            started_ms: now_ms(),
            sinks,
            replay_floor_ms: AtomicU64::new(0),
        }
    }

    /// Refuses signed heartbeats sent before `ms` as replays (set at start after an
    /// unclean stop).
    pub fn set_replay_floor(&self, ms: u64) {
        self.replay_floor_ms.store(ms, Ordering::Relaxed);
    }

    pub fn registry(&self) -> MutexGuard<'_, Registry> {
        // The registry holds plain data; a panic elsewhere cannot leave it half-updated
        // in a way that matters more than stopping ingest would.
        let mut reg = self.registry.lock().unwrap_or_else(|p| p.into_inner());
        // A step of the system clock moves every deadline before anything reads them.
        if let Some(step) = crate::clock::take_step() {
            reg.shift_deadlines(step);
        }
        reg
    }

    /// Decodes, verifies and applies one heartbeat datagram. Returns the drop reason
    /// (already counted).
    pub fn ingest(
        &self,
        data: &[u8],
        src: IpAddr,
        events: &mut Vec<Event>,
    ) -> Result<(), DropReason> {
        self.counters
            .bytes
            .fetch_add(data.len() as u64, Ordering::Relaxed);
        if data.len() > self.config.max_heartbeat_bytes {
            self.counters.dropped.add(DropReason::Oversized);
            return Err(DropReason::Oversized);
        }
        let packet = match hb_proto::decode(data, self.secret.as_deref()) {
            Ok(p) => p,
            Err(e) => {
                let r = DropReason::from(&e);
                self.counters.dropped.add(r);
                return Err(r);
            }
        };
        if packet.signed && packet.sent_ms < self.replay_floor_ms.load(Ordering::Relaxed) {
            self.counters.dropped.add(DropReason::Replayed);
            return Err(DropReason::Replayed);
        }
        let now = now_ms();
        let live = self.live.receiver_count() > 0;
        let beat = {
            let mut reg = self.registry();
            match reg.apply(&packet, src, now, events) {
                Ok(Applied::Heartbeat) => {}
                // A sign of life only: not a heartbeat for the sinks (notifications count
                // heartbeats to confirm UP), no readings.
                Ok(Applied::Refresh) => {
                    drop(reg);
                    self.counters.accepted.fetch_add(1, Ordering::Relaxed);
                    self.publish(events);
                    return Ok(());
                }
                Err(r) => {
                    drop(reg);
                    let r = DropReason::from(r);
                    self.counters.dropped.add(r);
                    return Err(r);
                }
            }
            // Live clients get a summary of the host after each heartbeat.
            live.then(|| reg.get(packet.host).map(Summary::of))
                .flatten()
        };
        self.counters.accepted.fetch_add(1, Ordering::Relaxed);
        for sink in &self.sinks {
            sink.heartbeat(packet.host, src, packet.signed && self.secret.is_some());
            sink.readings(&packet, now);
        }
        if let Some(s) = beat {
            self.send_live("beat", &s);
        }
        self.publish(events);
        Ok(())
    }

    /// Journals events and pushes them to live clients and the sinks; clears `events`.
    pub fn publish(&self, events: &mut Vec<Event>) {
        self.record(events, true);
    }

    /// [`State::publish`]; `to_sinks`: false for events another node already acted on.
    fn record(&self, events: &mut Vec<Event>, to_sinks: bool) {
        for e in events.drain(..) {
            self.counters.events.fetch_add(1, Ordering::Relaxed);
            match e.kind {
                crate::event::EventKind::HostDown | crate::event::EventKind::HostUp if to_sinks => {
                    tracing::info!(host = %e.host, "{} → {}: {}", e.from.as_deref().unwrap_or("?"), e.to.as_deref().unwrap_or("?"), e.message)
                }
                _ => tracing::debug!(host = %e.host, kind = e.kind.as_str(), "event"),
            }
            if self.live.receiver_count() > 0 {
                self.send_live("event", &e);
            }
            if to_sinks {
                for sink in &self.sinks {
                    sink.event(&e);
                }
            }
            if !self.journal.submit(e) {
                self.counters
                    .journal_dropped
                    .fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// Sends `{"type": kind, "data": value}` to every live client.
    pub fn send_live<T: Serialize>(&self, kind: &str, value: &T) {
        #[derive(Serialize)]
        struct Msg<'a, T> {
            #[serde(rename = "type")]
            kind: &'a str,
            data: &'a T,
        }
        if let Ok(text) = serde_json::to_string(&Msg { kind, data: value }) {
            self.counters.ws_messages.fetch_add(1, Ordering::Relaxed);
            let _ = self.live.send(ByteString::from(text));
        }
    }

    /// Publishes a problem of hbd itself as a `system` event.
    /// `topic` names the subsystem (`journal`), `to` is `FAILING` or `OK`; notifications
    /// send the problem once and its end once.
    pub fn system_event(&self, topic: &str, to: &str, message: String) {
        self.publish_external(Event {
            id: 0,
            ts_ms: now_ms(),
            host: "hbd".to_string(),
            kind: crate::event::EventKind::System,
            key: Some(topic.to_string()),
            from: None,
            to: Some(to.to_string()),
            message,
        });
    }

    /// Publishes an event made outside the registry (a sink's, a system problem): gives
    /// it an id, records it in its host's recent events, journals and broadcasts it.
    /// Forgets host `name` (its registry entry; the journal keeps its events) and
    /// records a `host_forgotten` event saying `why`. False if there is no such host.
    pub fn forget_host(&self, name: &str, why: &str) -> bool {
        let mut events = vec![Event {
            id: 0,
            ts_ms: now_ms(),
            host: name.to_string(),
            kind: crate::event::EventKind::HostForgotten,
            key: None,
            from: None,
            to: None,
            message: why.to_string(),
        }];
        {
            let mut reg = self.registry();
            if !reg.forget(name) {
                return false;
            }
            reg.stamp(&mut events);
        }
        self.publish(&mut events);
        true
    }

    /// Records events another cluster node recorded while this one was away (journal,
    /// recent events, live clients), without notifying anyone: the leader did.
    pub fn import_events(&self, mut events: Vec<Event>) {
        {
            let mut reg = self.registry();
            reg.stamp(&mut events);
            reg.note_recent(&events);
        }
        self.record(&mut events, false);
    }

    pub fn publish_external(&self, event: Event) {
        let mut e = vec![event];
        {
            let mut reg = self.registry();
            reg.stamp(&mut e);
            reg.note_recent(&e);
        }
        self.publish(&mut e);
    }
}

pub type Shared = Arc<State>;

/// What subsystems may ask of the fleet, answered from one host under the registry lock.
impl FleetView for State {
    fn failing_checks(&self, host: &str, max: usize) -> Option<Vec<CheckView>> {
        let reg = self.registry();
        let h = reg.get(host)?;
        let mut checks: Vec<CheckView> = h
            .readings
            .iter()
            .filter(|r| r.level != LevelName::Ok)
            .map(|r| CheckView {
                key: r.key().to_string(),
                level: r.level,
                value: r.value(),
                unit: r.unit().to_string(),
                threshold: r.threshold().to_string(),
                message: r.message().to_string(),
            })
            .collect();
        drop(reg);
        hbd_core::fleet::worst_first(&mut checks, max);
        Some(checks)
    }
}
