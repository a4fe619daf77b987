//! The cluster thread's work, on its own tokio runtime: connect (and reconnect), create
//! the buckets and the mutation stream, hold or contend for the lease, refresh this
//! node's membership, publish and apply mutations, answer claims, and (on the leader)
//! send what the notification queue holds.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::{self, kv, stream};
use bytes::Bytes;
use futures_util::StreamExt;
use tokio::sync::{mpsc, watch, OnceCell};

use super::config::{ClusterConfig, Names};
use super::lease::{LEASE_TTL_MS, RENEW_EVERY_MS, REQUEST_TIMEOUT_MS};
use super::{Claim, Mutation, Shared, QUEUE_ACK_PENDING, QUEUE_ACK_WAIT, QUEUE_MAX};

/// What the handle sends the cluster thread.
pub struct Channels {
    pub mutations: mpsc::Receiver<Mutation>,
    /// Tokens of queued notifications that were sent.
    pub acks: mpsc::Receiver<u64>,
    /// Events the leader shares (message id, JSON).
    pub events: mpsc::Receiver<(String, Vec<u8>)>,
    pub stop: watch::Receiver<bool>,
}

/// Shared events are kept this long and at most this many (a node away longer misses
/// older ones).
const EVENT_AGE: Duration = Duration::from_secs(7 * 24 * 3600);
const EVENT_MAX: i64 = 1_000_000;
/// Largest shared event (a text is at most 1,024 bytes; docs/protocol.md).
const EVENT_MAX_BYTES: usize = 16 * 1024;
/// Shared events published at once (each waits for its acknowledgement).
const SHARE_IN_FLIGHT: usize = 64;
/// Events imported in one call of [`super::Events::import`].
const IMPORT_BATCH: usize = 1_000;

/// The durable consumer every leader takes claimed notifications through.
const QUEUE_CONSUMER: &str = "leader";
/// How often the queue task checks leadership and reports work in progress.
const QUEUE_CHECK: Duration = Duration::from_millis(200);
const QUEUE_PROGRESS: Duration = Duration::from_millis(1_500);

/// The lease's one key.
const LEASE_KEY: &str = "leader";
/// Membership entries live this long after their last refresh.
const MEMBER_TTL: Duration = Duration::from_secs(10);
const MEMBER_EVERY: Duration = Duration::from_secs(2);
/// Mutations are kept this long (a node away longer misses older ones; docs/cluster.md)
/// and at most this many.
const MUTATION_AGE: Duration = Duration::from_secs(7 * 24 * 3600);
const MUTATION_MAX: i64 = 100_000;
/// Mutations a node has received but not yet acknowledged.
const MUTATION_ACK_PENDING: i64 = 256;
/// De-duplication window of the mutation stream.
const DUPLICATE_WINDOW: Duration = Duration::from_secs(120);
/// Largest mutation body (a silence with a long comment fits many times).
const MUTATION_MAX_BYTES: usize = 64 * 1024;

/// The buckets and the stream, once created.
#[derive(Clone)]
pub struct Stores {
    pub lease: kv::Store,
    pub members: kv::Store,
    pub announced: kv::Store,
    js: jetstream::Context,
    outbox_subject: String,
}

/// Puts a claimed notification in the queue (see [`super::Cluster::enqueue`]).
pub async fn enqueue(stores: &Stores, id: &str, body: Vec<u8>) -> Result<(), String> {
    publish_once(&stores.js, &stores.outbox_subject, id, Bytes::from(body)).await
}

/// One publication to a stream, de-duplicated by `id`, until JetStream acknowledges it.
async fn publish_once(
    js: &jetstream::Context,
    subject: &str,
    id: &str,
    body: Bytes,
) -> Result<(), String> {
    let msg = jetstream::message::PublishMessage::build()
        .payload(body)
        .message_id(id);
    js.send_publish(subject.to_string(), msg)
        .await
        .map_err(|e| e.to_string())?
        .await
        .map(|_| ())
        .map_err(|e| e.to_string())
}

/// The KV key of an announced state: the class, then the subject in hex (host names
/// and check keys may hold characters KV keys do not allow).
pub fn announced_key(class: &str, subject: &str) -> String {
    let mut k = String::with_capacity(class.len() + 1 + 2 * subject.len());
    k.push_str(class);
    k.push('.');
    for b in subject.bytes() {
        k.push_str(&format!("{b:02x}"));
    }
    k
}

fn request_timeout() -> Duration {
    Duration::from_millis(REQUEST_TIMEOUT_MS)
}

/// Compare-and-set of an announced state (see [`super::Cluster::claim`]).
pub async fn claim(stores: &Stores, shared: &Shared, key: &str, state: &str, quiet: bool) -> Claim {
    let (found, before) = match stores.announced.entry(key).await {
        Ok(e) => {
            let before = e.as_ref().map(|e| e.revision);
            (e.filter(|e| e.operation == kv::Operation::Put), before)
        }
        Err(e) => {
            tracing::warn!(key, "cluster: cannot read an announced state: {e}");
            return Claim::Unreachable;
        }
    };
    let written = match found {
        Some(e) if e.value.as_ref() == state.as_bytes() => return Claim::Announced,
        Some(e) => {
            if !shared.is_leader() {
                return Claim::NotLeader;
            }
            stores
                .announced
                .update(key, Bytes::from(state.to_string()), e.revision)
                .await
                .map_err(|e| e.to_string())
        }
        None if quiet => return Claim::Announced,
        None => {
            if !shared.is_leader() {
                return Claim::NotLeader;
            }
            stores
                .announced
                .create(key, Bytes::from(state.to_string()))
                .await
                .map_err(|e| e.to_string())
        }
    };
    let Err(e) = written else {
        return Claim::Send;
    };
    // Either someone wrote between our read and our write (only a leader does, so a
    // former leader's last claim: what it wrote is what was announced), or the engine
    // could not take the write (a stream without a leader during an election): read
    // again to tell which.
    match stores.announced.entry(key).await {
        Ok(now) if now.as_ref().map(|e| e.revision) != before => {
            tracing::warn!(
                key,
                "cluster: announced state changed under this claim: {e}"
            );
            Claim::Announced
        }
        Ok(_) => {
            tracing::warn!(key, "cluster: cannot record an announced state: {e}");
            Claim::Unreachable
        }
        Err(e2) => {
            tracing::warn!(
                key,
                "cluster: cannot record an announced state: {e}; reading it again: {e2}"
            );
            Claim::Unreachable
        }
    }
}

/// The cluster thread's main task: runs until `stop` turns true.
pub async fn main(
    shared: Arc<Shared>,
    config: ClusterConfig,
    cell: Arc<OnceCell<Stores>>,
    channels: Channels,
) {
    let Channels {
        mut mutations,
        acks,
        events,
        mut stop,
    } = channels;
    let names = Names::new(&config.name());
    let client = tokio::select! {
        c = connect(&shared, &config) => match c {
            Some(c) => c,
            None => return,
        },
        _ = stop.changed() => return,
    };
    let stores = tokio::select! {
        s = setup(&shared, &client, &names, &config) => s,
        _ = stop.changed() => return,
    };
    let _ = cell.set(stores.clone());
    shared.view().ready = true;

    let consume = tokio::spawn(consume_mutations(
        shared.clone(),
        stores.js.clone(),
        names.clone(),
    ));
    let sharer = {
        let (shared, js, names) = (shared.clone(), stores.js.clone(), names.clone());
        // Several publications in flight, so a burst (a fleet's first heartbeats: one
        // `host_new` each) drains at the engine's pace, not one round trip at a time; a
        // node catching up sorts what it imports by the events' ids.
        let queued = futures_util::stream::unfold(events, |mut rx| async move {
            rx.recv().await.map(|e| (e, rx))
        });
        tokio::spawn(
            queued.for_each_concurrent(SHARE_IN_FLIGHT, move |(id, body)| {
                let (shared, js, names) = (shared.clone(), js.clone(), names.clone());
                async move { share(&shared, &js, &names, &id, body).await }
            }),
        )
    };
    let catch_up = tokio::spawn(catch_up(shared.clone(), stores.js.clone(), names.clone()));
    let queue = tokio::spawn(serve_queue(
        shared.clone(),
        stores.js.clone(),
        names.clone(),
        acks,
        stop.clone(),
    ));
    // Publishing waits out an engine election (seconds) on its own task, so the lease is
    // renewed meanwhile; the bounded channel is the queue.
    let publisher = {
        let (shared, js, names) = (shared.clone(), stores.js.clone(), names.clone());
        tokio::spawn(async move {
            while let Some(m) = mutations.recv().await {
                publish(&shared, &js, &names, m).await;
            }
        })
    };
    let mut lease_tick = tokio::time::interval(Duration::from_millis(RENEW_EVERY_MS));
    lease_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut member_tick = tokio::time::interval(MEMBER_EVERY);
    member_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut lease = LeaseState::default();
    loop {
        tokio::select! {
            _ = lease_tick.tick() => {
                lease.step(&shared, &stores.lease).await;
                let st = client.statistics();
                let mut v = shared.view();
                v.messages = (st.out_messages.load(Ordering::Relaxed), st.in_messages.load(Ordering::Relaxed));
                v.state = match client.connection_state() {
                    async_nats::connection::State::Connected => "connected",
                    async_nats::connection::State::Disconnected => "disconnected",
                    async_nats::connection::State::Pending => "pending",
                };
            }
            _ = member_tick.tick() => refresh_members(&shared, &stores.members).await,
            _ = stop.changed() => break,
        }
    }
    consume.abort();
    publisher.abort();
    sharer.abort();
    catch_up.abort();
    // The queue task acknowledges what was sent and gives back the rest.
    if tokio::time::timeout(request_timeout(), queue)
        .await
        .is_err()
    {
        tracing::warn!(node = %shared.node, "cluster: the notification queue did not stop in time");
    }
    // Hand over: a deleted lease is free at once, not after its TTL.
    if shared.is_leader() {
        shared.fence.step_down();
        if let Some(rev) = lease.revision {
            let _ = tokio::time::timeout(
                request_timeout(),
                stores.lease.delete_expect_revision(LEASE_KEY, Some(rev)),
            )
            .await;
            tracing::info!(node = %shared.node, "cluster: leader lease handed over at shutdown");
        }
    }
    let _ = tokio::time::timeout(request_timeout(), stores.members.delete(&shared.node)).await;
    let _ = tokio::time::timeout(request_timeout(), client.flush()).await;
}

/// Connects, retrying in the background; `None` if the options are unusable.
async fn connect(shared: &Arc<Shared>, config: &ClusterConfig) -> Option<async_nats::Client> {
    let events = shared.clone();
    let mut opts = async_nats::ConnectOptions::new()
        .name(format!("hbd {}", shared.node))
        .retry_on_initial_connect()
        .connection_timeout(Duration::from_secs(2))
        .request_timeout(Some(request_timeout()))
        .event_callback(move |ev| {
            let s = events.clone();
            async move {
                match ev {
                    async_nats::Event::Connected => {
                        s.counters.connects.fetch_add(1, Ordering::Relaxed);
                        tracing::info!(node = %s.node, "cluster: connected to NATS");
                    }
                    async_nats::Event::Disconnected => {
                        s.counters.disconnects.fetch_add(1, Ordering::Relaxed);
                        tracing::warn!(node = %s.node, "cluster: disconnected from NATS; reconnecting");
                    }
                    other => tracing::info!(node = %s.node, "cluster: NATS: {other}"),
                }
            }
        });
    if let Some(p) = &config.cluster_nats_creds {
        opts = match opts.credentials_file(p).await {
            Ok(o) => o,
            Err(e) => {
                tracing::error!(
                    "cluster: cannot read cluster_nats_creds {}: {e}",
                    p.display()
                );
                return None;
            }
        };
    }
    if let Some(ca) = &config.cluster_nats_ca {
        opts = opts.add_root_certificates(ca.clone()).require_tls(true);
    }
    let addrs: Vec<async_nats::ServerAddr> = config
        .cluster_nats
        .iter()
        .filter_map(|u| match u.parse() {
            Ok(a) => Some(a),
            Err(e) => {
                tracing::error!("cluster_nats: {u}: {e}");
                None
            }
        })
        .collect();
    match opts.connect(addrs).await {
        Ok(c) => Some(c),
        Err(e) => {
            tracing::error!("cluster: cannot connect to NATS: {e}");
            None
        }
    }
}

/// Creates (or opens) the buckets and the stream, retrying until it works.
async fn setup(
    shared: &Shared,
    client: &async_nats::Client,
    names: &Names,
    config: &ClusterConfig,
) -> Stores {
    let js = jetstream::new(client.clone());
    // R3 where the engine has three servers or more (R1 for a single test server).
    let replicas = config.cluster_nats.len().clamp(1, 3);
    let mut delay = Duration::from_millis(200);
    loop {
        match try_setup(&js, names, replicas).await {
            Ok(s) => {
                tracing::info!(node = %shared.node, replicas, "cluster: buckets and streams ready");
                return s;
            }
            Err(e) => {
                tracing::warn!(node = %shared.node, "cluster: cannot set up the buckets yet: {e}");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(5));
            }
        }
    }
}

async fn bucket(
    js: &jetstream::Context,
    name: &str,
    max_age: Duration,
    storage: stream::StorageType,
    replicas: usize,
) -> Result<kv::Store, String> {
    let config = kv::Config {
        bucket: name.to_string(),
        history: 1,
        max_age,
        storage,
        num_replicas: replicas,
        max_value_size: 1024,
        ..Default::default()
    };
    match js.create_key_value(config).await {
        Ok(s) => Ok(s),
        // Made by another node (or an older version) with other settings: use it.
        Err(e) => js
            .get_key_value(name)
            .await
            .map_err(|e2| format!("bucket {name}: {e}; {e2}")),
    }
}

async fn try_setup(
    js: &jetstream::Context,
    names: &Names,
    replicas: usize,
) -> Result<Stores, String> {
    let lease = bucket(
        js,
        &names.lease,
        Duration::from_millis(LEASE_TTL_MS),
        stream::StorageType::File,
        replicas,
    )
    .await?;
    let members = bucket(
        js,
        &names.members,
        MEMBER_TTL,
        stream::StorageType::Memory,
        replicas,
    )
    .await?;
    let announced = bucket(
        js,
        &names.announced,
        Duration::ZERO,
        stream::StorageType::File,
        replicas,
    )
    .await?;
    let replicated = |name: &str, subject: &str, config: stream::Config| stream::Config {
        name: name.to_string(),
        subjects: vec![subject.to_string()],
        num_replicas: replicas,
        duplicate_window: DUPLICATE_WINDOW,
        ..config
    };
    let streams = [
        replicated(
            &names.mutations,
            &names.mutation_subject,
            stream::Config {
                max_age: MUTATION_AGE,
                max_messages: MUTATION_MAX,
                discard: stream::DiscardPolicy::Old,
                ..Default::default()
            },
        ),
        replicated(
            &names.outbox,
            &names.outbox_subject,
            stream::Config {
                retention: stream::RetentionPolicy::WorkQueue,
                max_messages: QUEUE_MAX,
                discard: stream::DiscardPolicy::New,
                ..Default::default()
            },
        ),
        replicated(
            &names.events,
            &names.event_subject,
            stream::Config {
                max_age: EVENT_AGE,
                max_messages: EVENT_MAX,
                discard: stream::DiscardPolicy::Old,
                ..Default::default()
            },
        ),
    ];
    for config in streams {
        let name = config.name.clone();
        js.get_or_create_stream(config)
            .await
            .map_err(|e| format!("stream {name}: {e}"))?;
    }
    Ok(Stores {
        lease,
        members,
        announced,
        js: js.clone(),
        outbox_subject: names.outbox_subject.clone(),
    })
}

/// The lease as this node holds it.
#[derive(Default)]
struct LeaseState {
    /// Revision of our lease entry while we hold it.
    revision: Option<u64>,
}

impl LeaseState {
    /// One round: the leader renews, a follower tries to take a free lease.
    async fn step(&mut self, shared: &Shared, lease: &kv::Store) {
        let sent = shared.now_ms();
        let value = Bytes::from(shared.node.clone());
        match self.revision {
            Some(rev) => {
                match tokio::time::timeout(request_timeout(), lease.update(LEASE_KEY, value, rev))
                    .await
                {
                    Ok(Ok(r)) => {
                        self.revision = Some(r);
                        shared.fence.renewed(sent);
                        shared.view().last_ok = Some(std::time::Instant::now());
                    }
                    Ok(Err(e)) if e.kind() == kv::UpdateErrorKind::WrongLastRevision => {
                        // A timed-out renewal may have landed: is it still ours?
                        match lease.entry(LEASE_KEY).await {
                            Ok(Some(e))
                                if e.operation == kv::Operation::Put
                                    && e.value.as_ref() == shared.node.as_bytes() =>
                            {
                                self.revision = Some(e.revision);
                            }
                            _ => self.lose(shared, "another node holds the lease"),
                        }
                    }
                    Ok(Err(e)) => {
                        tracing::warn!(node = %shared.node, "cluster: cannot renew the leader lease: {e}")
                    }
                    Err(_) => {
                        tracing::warn!(node = %shared.node, "cluster: renewing the leader lease timed out")
                    }
                }
                if self.revision.is_some() && !shared.fence.is_leader(shared.now_ms()) {
                    shared.counters.fenced.fetch_add(1, Ordering::Relaxed);
                    self.lose(shared, "lease not renewed in time (fenced)");
                }
            }
            None => match tokio::time::timeout(request_timeout(), lease.create(LEASE_KEY, value))
                .await
            {
                Ok(Ok(r)) => {
                    self.revision = Some(r);
                    shared.fence.renewed(sent);
                    shared.counters.takeovers.fetch_add(1, Ordering::Relaxed);
                    let mut v = shared.view();
                    v.last_ok = Some(std::time::Instant::now());
                    v.leader = Some(shared.node.clone());
                    tracing::warn!(node = %shared.node, "cluster: this node is now the leader");
                }
                Ok(Err(e)) if e.kind() == kv::CreateErrorKind::AlreadyExists => {
                    let holder = lease.entry(LEASE_KEY).await;
                    let mut v = shared.view();
                    v.last_ok = Some(std::time::Instant::now());
                    v.leader = match holder {
                        Ok(Some(e)) if e.operation == kv::Operation::Put => {
                            Some(String::from_utf8_lossy(&e.value).into_owned())
                        }
                        _ => None,
                    };
                }
                Ok(Err(e)) => {
                    tracing::debug!(node = %shared.node, "cluster: cannot take the lease: {e}")
                }
                Err(_) => {
                    tracing::debug!(node = %shared.node, "cluster: taking the lease timed out")
                }
            },
        }
    }

    fn lose(&mut self, shared: &Shared, why: &str) {
        self.revision = None;
        shared.fence.step_down();
        shared.view().leader = None;
        tracing::error!(node = %shared.node, "cluster: stopped acting as leader: {why}");
    }
}

async fn refresh_members(shared: &Shared, members: &kv::Store) {
    let put = tokio::time::timeout(
        request_timeout(),
        members.put(&shared.node, Bytes::from_static(b"1")),
    )
    .await;
    if !matches!(put, Ok(Ok(_))) {
        return;
    }
    let Ok(Ok(mut keys)) = tokio::time::timeout(request_timeout(), members.keys()).await else {
        return;
    };
    let mut list = Vec::new();
    // Bounded: a cluster has a handful of nodes; a runaway bucket is cut at 1,000.
    while let Ok(Some(Ok(k))) = tokio::time::timeout(request_timeout(), keys.next()).await {
        list.push(k);
        if list.len() >= 1_000 {
            break;
        }
    }
    list.sort();
    shared.view().members = list;
}

async fn publish(shared: &Shared, js: &jetstream::Context, names: &Names, m: Mutation) {
    let Ok(body) = serde_json::to_vec(&m) else {
        return;
    };
    if body.len() > MUTATION_MAX_BYTES {
        shared
            .counters
            .mutations_dropped
            .fetch_add(1, Ordering::Relaxed);
        tracing::error!(kind = %m.kind, "cluster: mutation too large to share ({} bytes)", body.len());
        return;
    }
    // Retried until the engine takes it (an election after a NATS server died takes
    // 5-10 s; the engine may be away for longer): the message id makes a retry of a
    // publication that did land harmless within the stream's de-duplication window, and
    // applying a mutation twice changes nothing after that. Later mutations wait in the
    // bounded queue meanwhile.
    let mut pause = Duration::from_millis(250);
    let mut attempt = 0u32;
    loop {
        attempt = attempt.saturating_add(1);
        let sent = publish_once(
            js,
            &names.mutation_subject,
            &m.id,
            Bytes::from(body.clone()),
        );
        match tokio::time::timeout(request_timeout(), sent).await {
            Ok(Ok(_)) => {
                shared
                    .counters
                    .mutations_published
                    .fetch_add(1, Ordering::Relaxed);
                return;
            }
            // Said on attempts 1, 2, 4, 8...: a long outage does not fill the log.
            Ok(Err(e)) if attempt.is_power_of_two() => {
                tracing::warn!(kind = %m.kind, attempt, "cluster: cannot publish a mutation yet: {e}")
            }
            Err(_) if attempt.is_power_of_two() => {
                tracing::warn!(kind = %m.kind, attempt, "cluster: publishing a mutation timed out")
            }
            _ => {}
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_secs(2));
    }
}

/// Applies every other node's mutations, through this node's durable consumer (so a node
/// that was away catches up on what it missed).
async fn consume_mutations(shared: Arc<Shared>, js: jetstream::Context, names: Names) {
    let mut delay = Duration::from_millis(200);
    loop {
        if let Err(e) = consume_once(&shared, &js, &names).await {
            tracing::warn!(node = %shared.node, "cluster: reading mutations: {e}");
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(Duration::from_secs(5));
    }
}

async fn consume_once(
    shared: &Shared,
    js: &jetstream::Context,
    names: &Names,
) -> Result<(), String> {
    let stream = js
        .get_stream(&names.mutations)
        .await
        .map_err(|e| e.to_string())?;
    let consumer = stream
        .get_or_create_consumer(
            &shared.node,
            jetstream::consumer::pull::Config {
                durable_name: Some(shared.node.clone()),
                deliver_policy: jetstream::consumer::DeliverPolicy::All,
                ack_policy: jetstream::consumer::AckPolicy::Explicit,
                max_ack_pending: MUTATION_ACK_PENDING,
                ..Default::default()
            },
        )
        .await
        .map_err(|e| e.to_string())?;
    let mut messages = consumer.messages().await.map_err(|e| e.to_string())?;
    while let Some(msg) = messages.next().await {
        let msg = msg.map_err(|e| e.to_string())?;
        match serde_json::from_slice::<Mutation>(&msg.payload) {
            Ok(m) if m.origin != shared.node => {
                (shared.apply)(&m);
                shared
                    .counters
                    .mutations_applied
                    .fetch_add(1, Ordering::Relaxed);
            }
            Ok(_) => {}
            Err(e) => tracing::warn!("cluster: a mutation that is not ours to read: {e}"),
        }
        msg.ack().await.map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// The messages a leader took from the queue and has not acknowledged yet.
#[derive(Default)]
struct Held {
    by_token: HashMap<u64, jetstream::Message>,
    /// Stream sequence to token: a message given again while held is not sent twice.
    by_seq: HashMap<u64, u64>,
    next_token: u64,
}

impl Held {
    fn count(&self, shared: &Shared) {
        shared
            .counters
            .queue_held
            .store(self.by_token.len() as u64, Ordering::Relaxed);
    }

    /// Forgets every held message (not acknowledged: the engine gives them again);
    /// returns how many there were.
    fn clear(&mut self, shared: &Shared) -> usize {
        let n = self.by_token.len();
        self.by_token.clear();
        self.by_seq.clear();
        self.count(shared);
        n
    }
}

/// While this node leads: takes claimed notifications from the queue, hands them to the
/// [`super::QueueHandler`], acknowledges each once sent, and reports the others in
/// progress so the engine does not give them to anyone else. On losing the lead it
/// releases them (the engine gives them to the next leader after [`QUEUE_ACK_WAIT`]);
/// at stop it acknowledges what was sent and gives back the rest at once.
async fn serve_queue(
    shared: Arc<Shared>,
    js: jetstream::Context,
    names: Names,
    mut acks: mpsc::Receiver<u64>,
    mut stop: watch::Receiver<bool>,
) {
    let mut held = Held::default();
    let mut check = tokio::time::interval(QUEUE_CHECK);
    check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut delay = Duration::from_millis(200);
    loop {
        // Followers wait; acknowledgements of a former lead are still made.
        while !shared.is_leader() {
            tokio::select! {
                _ = check.tick() => {}
                Some(t) = acks.recv() => ack(&shared, &mut held, t).await,
                _ = stop.changed() => return finish(&shared, &mut held, &mut acks).await,
            }
        }
        let messages = async {
            let stream = js
                .get_stream(&names.outbox)
                .await
                .map_err(|e| e.to_string())?;
            let consumer = stream
                .get_or_create_consumer(
                    QUEUE_CONSUMER,
                    jetstream::consumer::pull::Config {
                        durable_name: Some(QUEUE_CONSUMER.into()),
                        ack_policy: jetstream::consumer::AckPolicy::Explicit,
                        ack_wait: QUEUE_ACK_WAIT,
                        max_ack_pending: QUEUE_ACK_PENDING as i64,
                        ..Default::default()
                    },
                )
                .await
                .map_err(|e| e.to_string())?;
            consumer
                .stream()
                .max_messages_per_batch(20)
                .expires(Duration::from_secs(1))
                .messages()
                .await
                .map_err(|e| e.to_string())
        };
        let mut messages = match tokio::time::timeout(request_timeout(), messages).await {
            Ok(Ok(m)) => m,
            Ok(Err(e)) => {
                tracing::warn!(node = %shared.node, "cluster: cannot read the notification queue yet: {e}");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(5));
                continue;
            }
            Err(_) => {
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(5));
                continue;
            }
        };
        delay = Duration::from_millis(200);
        let mut progress = tokio::time::interval(QUEUE_PROGRESS);
        progress.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                m = messages.next() => match m {
                    Some(Ok(m)) => take(&shared, &mut held, m).await,
                    Some(Err(e)) => {
                        tracing::debug!(node = %shared.node, "cluster: notification queue: {e}");
                    }
                    None => break,
                },
                Some(t) = acks.recv() => ack(&shared, &mut held, t).await,
                _ = progress.tick() => {
                    for m in held.by_token.values() {
                        let _ = m.ack_with(jetstream::AckKind::Progress).await;
                    }
                }
                _ = check.tick() => {
                    if !shared.is_leader() {
                        break;
                    }
                }
                _ = stop.changed() => return finish(&shared, &mut held, &mut acks).await,
            }
        }
        drop(messages);
        if !shared.is_leader() {
            let released = shared.queue.release();
            let n = held.clear(&shared);
            shared
                .counters
                .queue_released
                .fetch_add(n as u64, Ordering::Relaxed);
            if n > 0 || released > 0 {
                tracing::warn!(node = %shared.node, held = n, dropped = released, "cluster: no longer leader: notifications taken from the queue and not sent are left to the next leader");
            }
        }
    }
}

/// A message from the queue: handed over unless it is one already held.
async fn take(shared: &Shared, held: &mut Held, m: jetstream::Message) {
    let seq = match m.info() {
        Ok(i) => i.stream_sequence,
        Err(e) => {
            tracing::warn!("cluster: a queue message without its metadata: {e}");
            return;
        }
    };
    if let Some(t) = held.by_seq.get(&seq) {
        // Given again (an acknowledgement or a progress report was lost): keep the
        // newer handle, do not send it twice.
        held.by_token.insert(*t, m);
        return;
    }
    held.next_token += 1;
    let token = held.next_token;
    match shared.queue.deliver(&m.payload, token) {
        Ok(()) => {
            shared.counters.queue_taken.fetch_add(1, Ordering::Relaxed);
            held.by_seq.insert(seq, token);
            held.by_token.insert(token, m);
            held.count(shared);
        }
        Err(e) => {
            shared.counters.queue_ended.fetch_add(1, Ordering::Relaxed);
            tracing::error!(node = %shared.node, "cluster: a queued notification cannot be sent by this node and is ended: {e}");
            let _ = m.ack_with(jetstream::AckKind::Term).await;
        }
    }
}

async fn ack(shared: &Shared, held: &mut Held, token: u64) {
    let Some(m) = held.by_token.remove(&token) else {
        return;
    };
    if let Ok(i) = m.info() {
        held.by_seq.remove(&i.stream_sequence);
    }
    held.count(shared);
    match m.ack().await {
        Ok(()) => {
            shared.counters.queue_acked.fetch_add(1, Ordering::Relaxed);
        }
        Err(e) => {
            tracing::warn!(node = %shared.node, "cluster: cannot acknowledge a sent notification (it may be sent again): {e}")
        }
    }
}

/// At stop: acknowledges what was sent, gives back what was not (at once, not after
/// the acknowledgement wait).
async fn finish(shared: &Shared, held: &mut Held, acks: &mut mpsc::Receiver<u64>) {
    while let Ok(t) = acks.try_recv() {
        ack(shared, held, t).await;
    }
    if held.by_token.is_empty() {
        return;
    }
    shared.queue.release();
    for m in held.by_token.values() {
        let _ = m.ack_with(jetstream::AckKind::Nak(None)).await;
    }
    let n = held.clear(shared);
    tracing::info!(node = %shared.node, count = n, "cluster: notifications taken from the queue and not sent are given back for the next leader");
}

/// Publishes one shared event; a few tries, then it is counted as dropped (events are
/// a record for nodes that were away, not worth holding the queue for).
async fn share(shared: &Shared, js: &jetstream::Context, names: &Names, id: &str, body: Vec<u8>) {
    if body.len() > EVENT_MAX_BYTES {
        shared
            .counters
            .events_dropped
            .fetch_add(1, Ordering::Relaxed);
        return;
    }
    let body = Bytes::from(body);
    for attempt in 0..3u32 {
        let sent = publish_once(js, &names.event_subject, id, body.clone());
        if let Ok(Ok(_)) = tokio::time::timeout(request_timeout(), sent).await {
            shared
                .counters
                .events_shared
                .fetch_add(1, Ordering::Relaxed);
            return;
        }
        tokio::time::sleep(Duration::from_millis(250 << attempt)).await;
    }
    shared
        .counters
        .events_dropped
        .fetch_add(1, Ordering::Relaxed);
    tracing::warn!(node = %shared.node, "cluster: an event could not be shared");
}

/// Once per start: imports the events other nodes shared between this node's newest
/// journal event and its start (what it missed while away), oldest first, at most
/// [`super::CATCH_UP_MAX`]. Retried until it completes once.
async fn catch_up(shared: Arc<Shared>, js: jetstream::Context, names: Names) {
    let (since, until) = (shared.events.since_ms(), shared.events.until_ms());
    if since == 0 || since >= until {
        return;
    }
    while !shared.events.ready() {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut delay = Duration::from_millis(500);
    loop {
        match catch_up_once(&shared, &js, &names, since, until).await {
            Ok(n) => {
                if n > 0 {
                    tracing::info!(node = %shared.node, events = n, "cluster: caught up on the events recorded while this node was away");
                }
                return;
            }
            Err(e) => {
                tracing::warn!(node = %shared.node, "cluster: cannot catch up on events yet: {e}");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(10));
            }
        }
    }
}

/// The id of a shared event (ids grow on the node that recorded it).
#[derive(serde::Deserialize)]
struct EventId {
    #[serde(default)]
    id: u64,
}

async fn catch_up_once(
    shared: &Shared,
    js: &jetstream::Context,
    names: &Names,
    since: u64,
    until: u64,
) -> Result<u64, String> {
    let start = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(since) * 1_000_000)
        .map_err(|e| e.to_string())?;
    let stream = js
        .get_stream(&names.events)
        .await
        .map_err(|e| e.to_string())?;
    let consumer = stream
        .create_consumer(jetstream::consumer::pull::OrderedConfig {
            deliver_policy: jetstream::consumer::DeliverPolicy::ByStartTime { start_time: start },
            ..Default::default()
        })
        .await
        .map_err(|e| e.to_string())?;
    let mut messages = consumer.messages().await.map_err(|e| e.to_string())?;
    let mut batch: Vec<Vec<u8>> = Vec::new();
    let mut origin = String::new();
    let mut imported = 0u64;
    let flush = |origin: &str, batch: &mut Vec<Vec<u8>>, imported: &mut u64| {
        if !batch.is_empty() {
            // Publications run concurrently: restore the recording node's order.
            batch.sort_by_key(|b| serde_json::from_slice::<EventId>(b).map_or(0, |e| e.id));
            *imported += batch.len() as u64;
            shared
                .counters
                .events_imported
                .fetch_add(batch.len() as u64, Ordering::Relaxed);
            shared.events.import(origin, std::mem::take(batch));
        }
    };
    loop {
        let next = tokio::time::timeout(Duration::from_secs(2), messages.next()).await;
        let m = match next {
            // Nothing more for 2 s: caught up.
            Err(_) | Ok(None) => break,
            Ok(Some(Err(e))) => return Err(e.to_string()),
            Ok(Some(Ok(m))) => m,
        };
        let pending = m.info().map(|i| i.pending).unwrap_or(0);
        // Larger than any event hbd shares (or not one): not imported, counted. A
        // batch of imports is at most IMPORT_BATCH × EVENT_MAX_BYTES.
        let parsed = (m.payload.len() <= EVENT_MAX_BYTES)
            .then(|| serde_json::from_slice::<super::SharedEvent>(&m.payload).ok())
            .flatten();
        if parsed.is_none() {
            shared
                .counters
                .events_dropped
                .fetch_add(1, Ordering::Relaxed);
        }
        if let Some(e) = parsed {
            let ts = e.event.get("ts_ms").and_then(|t| t.as_u64()).unwrap_or(0);
            if ts >= until {
                break;
            }
            if ts > since && e.origin != shared.node {
                if e.origin != origin || batch.len() >= IMPORT_BATCH {
                    flush(&origin, &mut batch, &mut imported);
                    origin = e.origin.clone();
                }
                if let Ok(body) = serde_json::to_vec(&e.event) {
                    batch.push(body);
                }
            }
        }
        if imported + batch.len() as u64 >= super::CATCH_UP_MAX {
            shared
                .counters
                .events_dropped
                .fetch_add(pending, Ordering::Relaxed);
            tracing::warn!(node = %shared.node, skipped = pending, "cluster: too many events to catch up on; the newer ones are not imported");
            break;
        }
        if pending == 0 {
            break;
        }
    }
    flush(&origin, &mut batch, &mut imported);
    Ok(imported)
}
