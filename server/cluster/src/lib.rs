//! hbd's cluster mode (docs/cluster.md): several hbd watch the same fleet, each with its
//! own registry fed directly by hbc, and agree through NATS JetStream on what must happen
//! once. This crate holds the engine side: the leader lease and its fencing
//! ([`lease`]), the announced states notifications claim ([`Cluster::claim`]), the
//! replicated queue of claimed notifications the leader sends ([`Cluster::enqueue`],
//! [`QueueHandler`]), the shared mutations every node applies ([`Mutation`]), and the
//! members and connection state ([`Status`]).
//!
//! It runs its own single-threaded tokio runtime on one thread (`hbd-cluster`); callers
//! on other threads use blocking methods with a bounded wait. **Invariants:** heartbeats
//! never pass through here; no actix, no other hbd subsystem; every queue is bounded.

pub mod config;
pub mod lease;
mod runtime;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

pub use config::ClusterConfig;
use lease::Fence;

/// Mutations waiting to be published (a silence, a forgotten host): far more than an
/// operator makes while the engine is briefly away; past that they are dropped, counted.
pub const MUTATION_QUEUE: usize = 1_024;
/// Longest wait of a blocking call ([`Cluster::claim`]) for the engine.
pub const CALL_TIMEOUT: Duration = Duration::from_millis(2_000);
/// After this long without the engine, notifications are sent by every node on its own
/// (docs/cluster.md: "the whole engine is unreachable").
pub const ALONE_AFTER: Duration = Duration::from_secs(30);

/// The engine counts as reachable while a lease request was answered this recently.
const REACHABLE_WITHIN_MS: u64 = 2_000;

/// Claimed notifications the leader has taken from the queue and not yet acknowledged
/// (sent): beyond this the engine gives it no more until some are sent.
pub const QUEUE_ACK_PENDING: usize = 1_000;
/// A message the leader took and neither acknowledged nor reported in progress for this
/// long is given again (to the next leader, when this one died).
pub const QUEUE_ACK_WAIT: Duration = Duration::from_secs(5);
/// Messages the queue holds at most (claimed and not sent: a fleet-wide outage with
/// every channel down); beyond it a claimed notification is sent from the leader's own
/// outbox, counted in `queue_refused`.
pub const QUEUE_MAX: i64 = 100_000;

/// What the leader does with the queue of claimed notifications (hbd's notifications).
pub trait QueueHandler: Send + Sync {
    /// A queued notification for this node, the leader, to send: once its channel
    /// accepted it, the handler calls [`Cluster::queue_ack`] with `token`. An error says
    /// why it cannot be sent here (it is then ended in the queue and counted).
    fn deliver(&self, body: &[u8], token: u64) -> Result<(), String>;
    /// This node stopped leading: it drops what it took and has not sent (the queue
    /// gives it to the next leader). Returns how many.
    fn release(&self) -> usize;
}

/// Events waiting to be shared (the leader's journal events): past it they are not
/// shared, counted in `events_dropped`.
pub const EVENT_QUEUE: usize = 4_096;
/// Most events a node imports when it catches up (newest of its absence are not
/// preferred: the stream is read oldest first; the rest are counted as dropped).
pub const CATCH_UP_MAX: u64 = 100_000;

/// What the cluster asks of hbd's journal: a node that was away catches up on the
/// events the leader recorded meanwhile.
pub trait Events: Send + Sync {
    /// Whether events can be imported yet (hbd's state exists).
    fn ready(&self) -> bool;
    /// Unix ms of the newest event this node recorded before it started (0: none):
    /// events after it, and before this start, are imported.
    fn since_ms(&self) -> u64;
    /// Unix ms when this node started.
    fn until_ms(&self) -> u64;
    /// Records events (JSON, as shared) another node recorded while this one was away,
    /// oldest first, naming that node. Must not block for long.
    fn import(&self, origin: &str, events: Vec<Vec<u8>>);
}

/// An event as it travels: its JSON and the node that recorded it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SharedEvent {
    pub origin: String,
    pub event: serde_json::Value,
}

/// Errors of starting the cluster.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cluster: {0}")]
    Config(String),
    #[error("cluster: cannot start the cluster thread: {0}")]
    Thread(#[source] std::io::Error),
    #[error("cluster: cannot read cluster_nats_creds {path}: {source}")]
    Creds {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

/// A change made on one node that every node applies: `kind` names it for the glue
/// (`silence.add`, `silence.remove`, `host.forget`), `body` is the glue's JSON.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Mutation {
    /// The node it was made on (nodes skip their own).
    pub origin: String,
    /// Unique per mutation: the de-duplication id of its publication.
    pub id: String,
    pub kind: String,
    pub body: serde_json::Value,
}

/// What a leader's claim of an announcement found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Claim {
    /// This node is leader and recorded the new state: send it.
    Send,
    /// The engine holds this state already (another leader said it): do not repeat it.
    Announced,
    /// This node is not the leader (or was fenced meanwhile).
    NotLeader,
    /// The engine did not answer in time.
    Unreachable,
}

/// How the connection to the engine stands (`engine` in `/api/v1/cluster`).
#[derive(Debug, Clone, Serialize, Default)]
pub struct EngineStatus {
    /// `connected`, `disconnected` or `pending` (never connected yet).
    pub state: &'static str,
    /// The configured URLs.
    pub servers: Vec<String>,
    /// The NATS server this node is connected to, if any.
    pub server: Option<String>,
    /// Buckets and the mutation stream exist.
    pub ready: bool,
    /// Milliseconds since the engine last answered (0 while it does).
    pub unreachable_ms: u64,
    /// Whether this node notifies on its own (the engine unreachable for 30 s or more).
    pub alone: bool,
    /// Connections made (1 + reconnections).
    pub connects: u64,
    pub disconnects: u64,
    /// Times this node became leader.
    pub takeovers: u64,
    /// Times this node stopped being leader because it could not renew its lease.
    pub fenced: u64,
    pub lease_ttl_ms: u64,
    pub claims_sent: u64,
    pub claims_announced: u64,
    pub claims_failed: u64,
    pub mutations_published: u64,
    pub mutations_applied: u64,
    pub mutations_dropped: u64,
    /// Claimed notifications put in the queue, taken from it by this node as leader,
    /// acknowledged (sent), refused by the engine (sent from the outbox instead), ended
    /// (unreadable or for an unknown channel), released when leadership was lost.
    pub queue_enqueued: u64,
    pub queue_taken: u64,
    pub queue_acked: u64,
    pub queue_refused: u64,
    pub queue_ended: u64,
    pub queue_released: u64,
    /// Taken and not yet sent.
    pub queue_held: u64,
    /// Events this node shared as leader, could not share (queue full, too large),
    /// and imported when it caught up after an absence.
    pub events_shared: u64,
    pub events_dropped: u64,
    pub events_imported: u64,
    pub messages_out: u64,
    pub messages_in: u64,
}

/// `GET /api/v1/cluster`.
#[derive(Debug, Clone, Serialize)]
pub struct Status {
    pub node: String,
    /// The node holding the lease as this node last saw it; null when none does.
    pub leader: Option<String>,
    /// Whether this node acts as leader now.
    pub is_leader: bool,
    /// Nodes that refreshed their membership within the last 10 s, sorted.
    pub members: Vec<String>,
    pub engine: EngineStatus,
}

/// Counters the runtime and the callers update.
#[derive(Debug, Default)]
struct Counters {
    connects: AtomicU64,
    disconnects: AtomicU64,
    takeovers: AtomicU64,
    fenced: AtomicU64,
    claims_sent: AtomicU64,
    claims_announced: AtomicU64,
    claims_failed: AtomicU64,
    mutations_published: AtomicU64,
    mutations_applied: AtomicU64,
    mutations_dropped: AtomicU64,
    queue_enqueued: AtomicU64,
    queue_taken: AtomicU64,
    queue_acked: AtomicU64,
    queue_refused: AtomicU64,
    queue_ended: AtomicU64,
    queue_released: AtomicU64,
    queue_held: AtomicU64,
    events_shared: AtomicU64,
    events_dropped: AtomicU64,
    events_imported: AtomicU64,
}

/// What the views of the runtime hold (small, copied out under the lock).
#[derive(Debug, Default)]
struct View {
    leader: Option<String>,
    members: Vec<String>,
    server: Option<String>,
    ready: bool,
    /// When the engine last answered (None: never).
    last_ok: Option<Instant>,
    state: &'static str,
    messages: (u64, u64),
}

/// What the runtime thread and the handle share.
struct Shared {
    node: String,
    servers: Vec<String>,
    started: Instant,
    /// Unix ms of the start (event ids are unique per node and start).
    started_wall_ms: u64,
    fence: Fence,
    counters: Counters,
    view: Mutex<View>,
    /// Applies a mutation made on another node (called on the cluster thread).
    apply: Box<dyn Fn(&Mutation) + Send + Sync>,
    /// Sends what the notification queue gives the leader.
    queue: Box<dyn QueueHandler>,
    /// The journal's side of shared events.
    events: Box<dyn Events>,
}

impl Shared {
    fn now_ms(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }

    fn view(&self) -> MutexGuard<'_, View> {
        self.view.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn is_leader(&self) -> bool {
        self.fence.is_leader(self.now_ms())
    }
}

/// The handle hbd holds: status, leadership, claims and mutations.
pub struct Cluster {
    shared: Arc<Shared>,
    handle: tokio::runtime::Handle,
    mutations: tokio::sync::mpsc::Sender<Mutation>,
    /// Tokens of queued notifications sent (acknowledged by the queue task).
    acks: tokio::sync::mpsc::Sender<u64>,
    /// Events to share (message id, JSON).
    events: tokio::sync::mpsc::Sender<(String, Vec<u8>)>,
    claims: Arc<tokio::sync::OnceCell<runtime::Stores>>,
    stop: tokio::sync::watch::Sender<bool>,
    thread: Mutex<Option<JoinHandle<()>>>,
    stopped: AtomicBool,
    next_id: AtomicU64,
}

impl Cluster {
    /// Starts the cluster thread; it connects (and reconnects) in the background, so a
    /// missing engine does not stop hbd from starting. `apply` is called, on the cluster
    /// thread, for every mutation another node made; it must only queue or lock briefly.
    pub fn start(
        config: &ClusterConfig,
        apply: Box<dyn Fn(&Mutation) + Send + Sync>,
        queue: Box<dyn QueueHandler>,
        events: Box<dyn Events>,
    ) -> Result<Arc<Cluster>, Error> {
        config::validate(config).map_err(Error::Config)?;
        let shared = Arc::new(Shared {
            node: config.node(),
            servers: config.cluster_nats.clone(),
            started: Instant::now(),
            started_wall_ms: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_millis() as u64)
                .unwrap_or(0),
            fence: Fence::default(),
            counters: Counters::default(),
            view: Mutex::new(View {
                state: "pending",
                ..View::default()
            }),
            apply,
            queue,
            events,
        });
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(Error::Thread)?;
        let handle = rt.handle().clone();
        let (mtx, mrx) = tokio::sync::mpsc::channel(MUTATION_QUEUE);
        // Never more tokens outstanding than messages held (QUEUE_ACK_PENDING), twice
        // that across a change of leadership.
        let (atx, arx) = tokio::sync::mpsc::channel(2 * QUEUE_ACK_PENDING);
        let (etx, erx) = tokio::sync::mpsc::channel(EVENT_QUEUE);
        let (stop, stop_rx) = tokio::sync::watch::channel(false);
        let stores = Arc::new(tokio::sync::OnceCell::new());
        let task = runtime::main(
            shared.clone(),
            config.clone(),
            stores.clone(),
            runtime::Channels {
                mutations: mrx,
                acks: arx,
                events: erx,
                stop: stop_rx,
            },
        );
        let thread = std::thread::Builder::new()
            .name("hbd-cluster".into())
            .spawn(move || rt.block_on(task))
            .map_err(Error::Thread)?;
        tracing::info!(node = %shared.node, servers = ?shared.servers, "cluster mode: connecting to NATS");
        Ok(Arc::new(Cluster {
            shared,
            handle,
            mutations: mtx,
            acks: atx,
            events: etx,
            claims: stores,
            stop,
            thread: Mutex::new(Some(thread)),
            stopped: AtomicBool::new(false),
            next_id: AtomicU64::new(0),
        }))
    }

    /// This node's name.
    pub fn node(&self) -> &str {
        &self.shared.node
    }

    /// Whether this node may act as leader now (fenced: false once its lease may have
    /// run out, whatever the engine says later).
    pub fn is_leader(&self) -> bool {
        self.shared.is_leader()
    }

    /// Whether the engine has been unreachable for longer than [`ALONE_AFTER`] (or was
    /// never reached in that long): every node then notifies on its own.
    pub fn alone(&self) -> bool {
        let last = self.shared.view().last_ok;
        let since = last.unwrap_or(self.shared.started);
        since.elapsed() >= ALONE_AFTER
    }

    pub fn status(&self) -> Status {
        let alone = self.alone();
        let v = self.shared.view();
        let c = &self.shared.counters;
        let is_leader = self.shared.is_leader();
        // Reachable means answering: connected, set up, and a lease request (renewal or
        // attempt) answered within the last 2 s (they run every 0.4 s). A connection
        // whose JetStream requests fail (streams still electing after a restart of the
        // whole engine) counts as unreachable, as it does for `alone`.
        let unreachable_ms = match v.last_ok {
            Some(t)
                if v.state == "connected"
                    && v.ready
                    && t.elapsed() < Duration::from_millis(REACHABLE_WITHIN_MS) =>
            {
                0
            }
            Some(t) => t.elapsed().as_millis() as u64,
            None => self.shared.started.elapsed().as_millis() as u64,
        };
        let leader = if is_leader {
            Some(self.shared.node.clone())
        } else if unreachable_ms > lease::LEASE_TTL_MS {
            None
        } else {
            v.leader.clone()
        };
        let n = |a: &AtomicU64| a.load(Ordering::Relaxed);
        Status {
            node: self.shared.node.clone(),
            leader,
            is_leader,
            members: v.members.clone(),
            engine: EngineStatus {
                state: v.state,
                servers: self.shared.servers.clone(),
                server: v.server.clone(),
                ready: v.ready,
                unreachable_ms,
                alone,
                connects: n(&c.connects),
                disconnects: n(&c.disconnects),
                takeovers: n(&c.takeovers),
                fenced: n(&c.fenced),
                lease_ttl_ms: lease::LEASE_TTL_MS,
                claims_sent: n(&c.claims_sent),
                claims_announced: n(&c.claims_announced),
                claims_failed: n(&c.claims_failed),
                mutations_published: n(&c.mutations_published),
                mutations_applied: n(&c.mutations_applied),
                mutations_dropped: n(&c.mutations_dropped),
                queue_enqueued: n(&c.queue_enqueued),
                queue_taken: n(&c.queue_taken),
                queue_acked: n(&c.queue_acked),
                queue_refused: n(&c.queue_refused),
                queue_ended: n(&c.queue_ended),
                queue_released: n(&c.queue_released),
                queue_held: n(&c.queue_held),
                events_shared: n(&c.events_shared),
                events_dropped: n(&c.events_dropped),
                events_imported: n(&c.events_imported),
                messages_out: v.messages.0,
                messages_in: v.messages.1,
            },
        }
    }

    /// The leader records that `subject` (a host, or `host` plus a check) now has the
    /// announced `state` in `class` (`host`, `level`, `check`), by compare-and-set on its
    /// revision, so two nodes can never both announce the same change. `quiet`: a state
    /// not worth announcing when the engine holds nothing for the subject yet (UP, OK).
    /// Blocks at most [`CALL_TIMEOUT`].
    pub fn claim(&self, class: &str, subject: &str, state: &str, quiet: bool) -> Claim {
        if !self.is_leader() {
            return Claim::NotLeader;
        }
        let Some(stores) = self.claims.get().cloned() else {
            return Claim::Unreachable;
        };
        let key = runtime::announced_key(class, subject);
        let state = state.to_string();
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        let shared = self.shared.clone();
        self.handle.spawn(async move {
            let r = tokio::time::timeout(
                CALL_TIMEOUT,
                runtime::claim(&stores, &shared, &key, &state, quiet),
            )
            .await
            .unwrap_or(Claim::Unreachable);
            let _ = tx.send(r);
        });
        let r = rx
            .recv_timeout(CALL_TIMEOUT + Duration::from_millis(200))
            .unwrap_or(Claim::Unreachable);
        let c = &self.shared.counters;
        match r {
            Claim::Send => c.claims_sent.fetch_add(1, Ordering::Relaxed),
            Claim::Announced => c.claims_announced.fetch_add(1, Ordering::Relaxed),
            Claim::Unreachable => c.claims_failed.fetch_add(1, Ordering::Relaxed),
            Claim::NotLeader => 0,
        };
        r
    }

    /// Puts a claimed notification in the replicated queue (de-duplicated by `id`), from
    /// which the leader sends it. Blocks at most [`CALL_TIMEOUT`]; false when the engine
    /// did not take it (the caller sends it from its own outbox).
    pub fn enqueue(&self, id: &str, body: Vec<u8>) -> bool {
        let Some(stores) = self.claims.get().cloned() else {
            return false;
        };
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        let id = id.to_string();
        self.handle.spawn(async move {
            let r = tokio::time::timeout(CALL_TIMEOUT, runtime::enqueue(&stores, &id, body))
                .await
                .unwrap_or_else(|_| Err("timed out".into()));
            let _ = tx.send(r);
        });
        let r = rx
            .recv_timeout(CALL_TIMEOUT + Duration::from_millis(200))
            .unwrap_or_else(|_| Err("timed out".into()));
        let c = &self.shared.counters;
        match r {
            Ok(()) => {
                c.queue_enqueued.fetch_add(1, Ordering::Relaxed);
                true
            }
            Err(e) => {
                c.queue_refused.fetch_add(1, Ordering::Relaxed);
                tracing::warn!("cluster: cannot queue a claimed notification: {e}");
                false
            }
        }
    }

    /// A queued notification given by [`QueueHandler::deliver`] was sent: acknowledge
    /// it in the queue (never blocks; the queue task does it).
    pub fn queue_ack(&self, token: u64) {
        if self.acks.try_send(token).is_err() {
            tracing::warn!(
                token,
                "cluster: acknowledgement queue full or stopped; the notification may be sent again"
            );
        }
    }

    /// The leader shares an event it recorded (`id` unique per node and event; `event`
    /// its JSON), so a node that was away catches up (queued, bounded; never blocks).
    /// Does nothing on a follower.
    pub fn share_event(&self, id: u64, event: serde_json::Value) {
        if !self.is_leader() {
            return;
        }
        let e = SharedEvent {
            origin: self.shared.node.clone(),
            event,
        };
        let Ok(body) = serde_json::to_vec(&e) else {
            return;
        };
        let id = format!("{}-{}-{id}", self.shared.node, self.shared.started_wall_ms);
        if self.events.try_send((id, body)).is_err() {
            self.shared
                .counters
                .events_dropped
                .fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Publishes a mutation for the other nodes (queued, bounded; never blocks).
    pub fn publish(&self, kind: &str, body: serde_json::Value) {
        let n = self.next_id.fetch_add(1, Ordering::Relaxed);
        let wall = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis())
            .unwrap_or(0);
        let m = Mutation {
            origin: self.shared.node.clone(),
            id: format!("{}-{wall}-{n}", self.shared.node),
            kind: kind.to_string(),
            body,
        };
        if self.mutations.try_send(m).is_err() {
            let d = self
                .shared
                .counters
                .mutations_dropped
                .fetch_add(1, Ordering::Relaxed);
            tracing::error!(
                kind,
                dropped = d + 1,
                "cluster: mutation queue full or stopped; the other nodes will not see this change"
            );
        }
    }

    /// Prometheus families (`hbd_cluster_*`).
    pub fn metrics(&self, out: &mut String) {
        use std::fmt::Write;
        let s = self.status();
        let _ = writeln!(
            out,
            "# HELP hbd_cluster_leader 1 while this node acts as the cluster leader.\n# TYPE hbd_cluster_leader gauge\nhbd_cluster_leader {}",
            u8::from(s.is_leader)
        );
        let _ = writeln!(
            out,
            "# HELP hbd_cluster_members Cluster nodes seen alive.\n# TYPE hbd_cluster_members gauge\nhbd_cluster_members {}",
            s.members.len()
        );
        let _ = writeln!(
            out,
            "# HELP hbd_cluster_engine_connected 1 while connected to NATS with the buckets ready.\n# TYPE hbd_cluster_engine_connected gauge\nhbd_cluster_engine_connected {}",
            u8::from(s.engine.state == "connected" && s.engine.ready)
        );
        for (name, help, v) in [
            (
                "takeovers",
                "Times this node became leader.",
                s.engine.takeovers,
            ),
            (
                "fenced",
                "Times this node stopped leading because it could not renew its lease.",
                s.engine.fenced,
            ),
            (
                "claims_failed",
                "Announcements the engine did not answer in time.",
                s.engine.claims_failed,
            ),
            (
                "mutations_dropped",
                "Mutations not published (queue full).",
                s.engine.mutations_dropped,
            ),
            (
                "queue_refused",
                "Claimed notifications the engine's queue did not take (sent from the local outbox).",
                s.engine.queue_refused,
            ),
            (
                "events_dropped",
                "Events not shared (queue full, engine away) or not imported (beyond the catch-up bound).",
                s.engine.events_dropped,
            ),
            (
                "queue_acked",
                "Notifications this node, as leader, sent from the engine's queue.",
                s.engine.queue_acked,
            ),
        ] {
            let _ = writeln!(
                out,
                "# HELP hbd_cluster_{name}_total {help}\n# TYPE hbd_cluster_{name}_total counter\nhbd_cluster_{name}_total {v}"
            );
        }
    }

    /// Hands the lease over (deletes it when leader, so another node takes over at once)
    /// and joins the cluster thread. Safe to call more than once.
    pub fn stop(&self) {
        if self.stopped.swap(true, Ordering::AcqRel) {
            return;
        }
        let _ = self.stop.send(true);
        let t = self.thread.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(t) = t {
            let _ = t.join();
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.stop();
    }
}
