//! Extension points for the subsystems that react to what ingest sees: notifications
//! (`notify`), dynamic DNS (`dyndns`), history (`history`). Each is a [`Sink`]; hbd calls every sink for every
//! published event and every accepted heartbeat, on the ingest path, so a sink must only
//! queue work (bounded) and return at once. Its routes and its settings (start, SIGHUP)
//! are hbd's business: hbd holds each subsystem's concrete type for those. A sink publishes its own events (a failed DNS
//! update, a channel that keeps failing) through its [`Emitter`].

use std::net::IpAddr;
use std::sync::mpsc::{Receiver, SyncSender, TrySendError};

use crate::event::Event;
use crate::fleet::FleetView;

/// What a subsystem hooks into.
pub trait Sink: Send + Sync {
    /// Short name for logs and status (`notify`, `dyndns`).
    fn name(&self) -> &'static str;

    /// Every event after it got its id (journaled separately).
    fn event(&self, _event: &Event) {}

    /// Every accepted heartbeat: host, source address, and whether it was verified
    /// (HMAC-signed with the configured secret).
    fn heartbeat(&self, _host: &str, _addr: IpAddr, _verified: bool) {}

    /// Every accepted datagram as decoded, with hbd's receive time: for subsystems that
    /// keep readings (history). Called right after [`Sink::heartbeat`]; the packet
    /// borrows from the datagram, so copy what you keep. Its readings are the sender's:
    /// the registry may still skip some (`bad_key`, the per-host caps).
    fn readings(&self, _packet: &hb_proto::Packet<'_>, _now_ms: u64) {}

    /// Called once, when hbd's shared state exists and before any event or heartbeat:
    /// for subsystems that read the fleet (notifications list a host's failing checks).
    fn attach(&self, _fleet: std::sync::Weak<dyn FleetView>) {}

    /// Appends the subsystem's own families to `/metrics` (Prometheus text; fleet-sized
    /// families are not welcome here).
    fn metrics(&self, _out: &mut String) {}

    /// Status for `/healthz` and the dashboard, as JSON.
    fn status(&self) -> serde_json::Value {
        serde_json::Value::Null
    }

    /// Called once at shutdown: persist and stop (bounded time).
    fn shutdown(&self) {}
}

/// What travels from emitters to hbd: an event, or the word to stop reading.
enum Message {
    Event(Event),
    Stop,
}

/// Lets a subsystem publish events (hbd gives them ids, journals and broadcasts them).
#[derive(Clone)]
pub struct Emitter {
    tx: SyncSender<Message>,
}

/// hbd's end of the events subsystems emit.
pub struct Emitted {
    rx: Receiver<Message>,
}

impl Emitted {
    /// The next event; `None` once [`Emitter::stop`] was called (or every emitter is
    /// gone). Blocks until then.
    pub fn recv(&self) -> Option<Event> {
        match self.rx.recv() {
            Ok(Message::Event(e)) => Some(e),
            Ok(Message::Stop) | Err(_) => None,
        }
    }

    /// The next event if one comes within `d`.
    pub fn recv_timeout(&self, d: std::time::Duration) -> Option<Event> {
        match self.rx.recv_timeout(d) {
            Ok(Message::Event(e)) => Some(e),
            _ => None,
        }
    }
}

impl Emitter {
    /// A bounded channel of events; hbd drains the receiver.
    pub fn channel(capacity: usize) -> (Emitter, Emitted) {
        let (tx, rx) = std::sync::mpsc::sync_channel(capacity);
        (Emitter { tx }, Emitted { rx })
    }

    /// Queues an event; false (and logged) if hbd is far behind or stopping.
    pub fn emit(&self, event: Event) -> bool {
        match self.tx.try_send(Message::Event(event)) {
            Ok(()) => true,
            Err(TrySendError::Full(Message::Event(e))) => {
                tracing::error!(host = %e.host, "event queue full; dropped {:?} event: {}", e.kind, e.message);
                false
            }
            Err(_) => false,
        }
    }

    /// Tells the reader to stop after the events queued before this (waits for room).
    pub fn stop(&self) {
        let _ = self.tx.send(Message::Stop);
    }
}
