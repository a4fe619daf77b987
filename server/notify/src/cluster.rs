//! Notifications in cluster mode (docs/cluster.md): every node runs the policy on its own
//! registry, but a notification leaves through the leader only, after the leader
//! recorded the state it announces in the engine by compare-and-set ([`Announcer`]).
//! So a node that takes over neither repeats what the previous leader said (the engine
//! holds it) nor skips what it did not say (followers keep their latest undelivered
//! notification per subject, [`Gate`], and a new leader claims those).
//!
//! A notification the leader claimed does not wait in the leader's own outbox: it is put
//! in the engine's replicated queue ([`Announcer::enqueue`], one message per channel,
//! a [`Queued`]), and the leader sends what that queue gives it, acknowledging each
//! message once its channel accepted it. So a notification claimed by a leader that dies
//! (or whose channel fails) before sending it is sent by the next leader. When the
//! engine does not take it, it goes to the local outbox as in single-server mode.
//!
//! What the engine is, is the caller's business: this crate knows the [`Announcer`]
//! trait only (hbd implements it over hbd-cluster).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::notification::{Kind, Notification};

/// A message of the cluster's notification queue: a claimed notification routed to one
/// channel (channels are named alike on every node; docs/cluster.md).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Queued {
    pub channel: String,
    pub n: Notification,
}

/// What a claim found (see hbd-cluster's `Claim`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Claim {
    /// Recorded by this node, the leader: send it.
    Send,
    /// Already announced: drop it.
    Announced,
    /// Not the leader: keep it in case the leader never says it.
    NotLeader,
    /// The engine did not answer.
    Unreachable,
}

/// What notifications may ask of the cluster.
pub trait Announcer: Send + Sync {
    /// Whether this node acts as leader now.
    fn is_leader(&self) -> bool;
    /// Whether the engine is unreachable for so long that every node notifies alone.
    fn alone(&self) -> bool;
    /// Records `state` for `subject` in `class` if the engine does not hold it yet.
    /// `quiet`: do not announce it if the engine holds nothing (UP, OK).
    fn claim(&self, class: &str, subject: &str, state: &str, quiet: bool) -> Claim;
    /// This node's name (shown in notifications sent alone).
    fn node(&self) -> String;
    /// Puts a claimed notification (a [`Queued`] as JSON, de-duplicated by `id`) in the
    /// engine's replicated queue, from which the leader sends it. False when the engine
    /// did not take it: the caller queues it locally instead.
    fn enqueue(&self, _id: &str, _body: Vec<u8>) -> bool {
        false
    }
}

/// Undelivered notifications a follower keeps, one per subject: beyond this the oldest
/// are dropped (a follower of a fleet this size in a storm is far behind anyway).
pub const MAX_DEFERRED: usize = 100_000;
/// A follower's notification older than this is dropped: the leader had that long to
/// announce it (several lease lifetimes), and a takeover is decided well within it.
pub const DEFERRED_FOR_MS: u64 = 30_000;
/// How often a leader retries claims the engine did not answer.
const RETRY_EVERY_MS: u64 = 1_000;

/// How a notification is claimed: its class, subject and whether its state is quiet.
/// `None`: not claimed through the engine.
fn identity(n: &Notification) -> Option<(&'static str, String, bool)> {
    match n.kind {
        Kind::Down | Kind::Up => Some(("host", n.host.clone(), n.kind == Kind::Up)),
        Kind::Level => Some(("level", n.host.clone(), n.state == "OK")),
        Kind::Check => Some((
            "check",
            format!("{}\u{1f}{}", n.host, n.key.as_deref().unwrap_or("")),
            n.state == "OK",
        )),
        _ => None,
    }
}

/// Whether a notification is this node's own business (its own problems, its own
/// channels, a test asked of it): sent by every node, never through the leader.
fn local(n: &Notification) -> bool {
    matches!(
        n.kind,
        Kind::System | Kind::ChannelFailing | Kind::ChannelRecovered | Kind::Test
    )
}

/// The filter between the policy and the outboxes.
#[derive(Default)]
pub struct Gate {
    announcer: Option<Arc<dyn Announcer>>,
    /// Follower: latest undelivered claimed notification per (class, subject).
    deferred: HashMap<(&'static str, String), Notification>,
    was_leader: bool,
    /// Next time a leader retries what it could not claim (engine slow or away).
    retry_at: u64,
    /// The last claim found the engine unreachable.
    unreachable: bool,
    /// Notifications dropped because the leader had announced them (or had not to).
    pub announced: u64,
    /// Notifications a follower left to the leader.
    pub left_to_leader: u64,
    /// What this node sent alone (the engine unreachable) and the engine does not hold
    /// yet, by subject: the state and whether it is quiet. Kept (with its deferred copy)
    /// while the engine is away and [`DEFERRED_FOR_MS`] after it is back; a leader
    /// records it then without sending it again, so the next change compares with what
    /// people were told (a recovery after a DOWN sent alone is announced).
    alone_sent: HashMap<(&'static str, String), (String, bool)>,
    /// States sent alone that the leader recorded in the engine afterwards.
    pub recorded_alone: u64,
    /// Ids of what [`Gate::filter`] or [`Gate::tick`] let through because this node
    /// claimed it (taken by [`Gate::take_claimed`]): those go through the engine's queue.
    claimed: HashSet<String>,
    /// Claimed notifications put in the engine's queue, and those it did not take.
    pub enqueued: u64,
    pub enqueue_failed: u64,
}

impl Gate {
    pub fn set(&mut self, a: Arc<dyn Announcer>) {
        self.announcer = Some(a);
    }

    /// This node's name in cluster mode.
    pub fn node(&self) -> Option<String> {
        self.announcer.as_ref().map(|a| a.node())
    }

    /// What of `ns` this node sends now.
    pub fn filter(&mut self, ns: Vec<Notification>, now: u64) -> Vec<Notification> {
        let Some(a) = self.announcer.clone() else {
            return ns;
        };
        let mut out = Vec::with_capacity(ns.len());
        for mut n in ns {
            if local(&n) {
                out.push(n);
                continue;
            }
            if n.kind == Kind::Storm {
                // A storm groups many hosts: each item is claimed on its own.
                let items = std::mem::take(&mut n.items);
                n.items = self.filter(items, now);
                if !n.items.is_empty() {
                    // Every item's mark is taken (no short cut), then the storm is marked.
                    let mut all = true;
                    for i in &n.items {
                        all &= self.claimed.remove(&i.id);
                    }
                    if all {
                        self.claimed.insert(n.id.clone());
                    }
                    out.push(n);
                }
                continue;
            }
            if let Some(n) = self.pass(&*a, n, now) {
                out.push(n);
            }
        }
        out
    }

    fn pass(&mut self, a: &dyn Announcer, mut n: Notification, now: u64) -> Option<Notification> {
        let id = identity(&n);
        if a.is_leader() {
            let Some((class, subject, quiet)) = id else {
                return Some(n);
            };
            let key = id_of(class, subject.clone());
            self.deferred.remove(&key);
            if let Some((state, q)) = self.alone_sent.remove(&key) {
                // Sent alone earlier: record it first (not sent again).
                match a.claim(class, &subject, &state, q) {
                    Claim::Send | Claim::Announced => {
                        self.recorded_alone += 1;
                        if state == n.state {
                            return None;
                        }
                    }
                    Claim::NotLeader | Claim::Unreachable => {
                        self.unreachable = true;
                        self.alone_sent.insert(key.clone(), (state, q));
                        self.defer(key, n, now);
                        return None;
                    }
                }
            }
            return match a.claim(class, &subject, &n.state, quiet) {
                Claim::Send => {
                    self.claimed.insert(n.id.clone());
                    Some(n)
                }
                Claim::Announced => {
                    self.announced += 1;
                    None
                }
                // Fenced meanwhile, or the engine is away: keep it for later.
                Claim::NotLeader | Claim::Unreachable => {
                    self.unreachable = true;
                    self.defer(id_of(class, subject), n, now);
                    None
                }
            };
        }
        if a.alone() {
            // The engine is away for long: every node says it, and says so.
            n.message = format!(
                "{} (sent by hbd node {} alone: the cluster engine is unreachable)",
                n.message,
                a.node()
            )
            .trim_start()
            .to_string();
            if let Some((class, subject, quiet)) = id {
                let key = id_of(class, subject);
                self.alone_sent
                    .insert(key.clone(), (n.state.clone(), quiet));
                self.defer(key, n.clone(), now);
            }
            return Some(n);
        }
        self.left_to_leader += 1;
        if let Some((class, subject, _)) = id {
            self.defer(id_of(class, subject), n, now);
        }
        None
    }

    fn defer(&mut self, key: (&'static str, String), mut n: Notification, now: u64) {
        if self.deferred.len() >= MAX_DEFERRED && !self.deferred.contains_key(&key) {
            let oldest = self
                .deferred
                .iter()
                .min_by_key(|(_, n)| n.ts_ms)
                .map(|(k, _)| k.clone());
            if let Some(k) = oldest {
                self.deferred.remove(&k);
            }
        }
        if n.ts_ms == 0 {
            n.ts_ms = now;
        }
        self.deferred.insert(key, n);
    }

    /// Every tick: old deferred notifications go; on becoming leader, the rest are
    /// claimed (what the former leader did not announce is sent now).
    pub fn tick(&mut self, now: u64) -> Vec<Notification> {
        let Some(a) = self.announcer.clone() else {
            return Vec::new();
        };
        if a.alone() {
            // What was sent alone is kept while the engine is away.
            for (k, n) in self.deferred.iter_mut() {
                if self.alone_sent.contains_key(k) {
                    n.ts_ms = now;
                }
            }
        }
        self.deferred
            .retain(|_, n| now.saturating_sub(n.ts_ms) < DEFERRED_FOR_MS);
        let deferred = &self.deferred;
        self.alone_sent.retain(|k, _| deferred.contains_key(k));
        let leader = a.is_leader();
        let took_over = leader && !self.was_leader;
        self.was_leader = leader;
        if !leader || self.deferred.is_empty() || (!took_over && now < self.retry_at) {
            return Vec::new();
        }
        self.retry_at = now + RETRY_EVERY_MS;
        let mut held: Vec<_> = self.deferred.drain().collect();
        held.sort_by_key(|(_, n)| n.ts_ms);
        let mut out = Vec::new();
        self.unreachable = false;
        for (key, n) in held {
            // The engine is slow or away: the rest wait for the next retry.
            if self.unreachable {
                self.deferred.insert(key, n);
            } else if let Some(n) = self.pass(&*a, n, now) {
                out.push(n);
            }
        }
        if took_over && !out.is_empty() {
            tracing::warn!(
                count = out.len(),
                "cluster: became leader; sending what the former leader had not announced"
            );
        }
        out
    }
}

impl Gate {
    /// Whether `n` (let through by the last [`Gate::filter`] or [`Gate::tick`]) was
    /// claimed by this node; forgets it.
    pub fn take_claimed(&mut self, n: &Notification) -> bool {
        self.claimed.remove(&n.id)
    }

    /// Forgets what was not taken (every call of filter or tick is followed by routing).
    pub fn clear_claimed(&mut self) {
        self.claimed.clear();
    }

    /// Puts `n`, routed to `channel`, in the engine's queue; false if it is not there
    /// (no cluster, or the engine did not take it).
    pub fn enqueue(&mut self, channel: &str, n: &Notification) -> bool {
        let Some(a) = self.announcer.clone() else {
            return false;
        };
        let q = Queued {
            channel: channel.to_string(),
            n: n.clone(),
        };
        let Ok(body) = serde_json::to_vec(&q) else {
            return false;
        };
        // The id names the notification and the channel: a retried publication that did
        // land is not queued twice.
        let id = format!("{}/{channel}", n.id);
        if a.enqueue(&id, body) {
            self.enqueued += 1;
            true
        } else {
            self.enqueue_failed += 1;
            tracing::warn!(channel, host = %n.host, "cluster: the engine did not take a claimed notification; it is sent from this node's outbox");
            false
        }
    }
}

fn id_of(class: &'static str, subject: String) -> (&'static str, String) {
    (class, subject)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Mutex;

    /// An engine in memory: one leader flag, the announced states.
    #[derive(Default)]
    struct Fake {
        leader: AtomicBool,
        alone: AtomicBool,
        states: Mutex<HashMap<String, String>>,
        /// What the engine's queue took (id, body); refuses while `refuse` is set.
        queued: Mutex<Vec<(String, Vec<u8>)>>,
        refuse: AtomicBool,
    }

    impl Announcer for Fake {
        fn is_leader(&self) -> bool {
            self.leader.load(Ordering::Relaxed)
        }
        fn alone(&self) -> bool {
            self.alone.load(Ordering::Relaxed)
        }
        fn claim(&self, class: &str, subject: &str, state: &str, quiet: bool) -> Claim {
            if !self.is_leader() {
                return Claim::NotLeader;
            }
            let mut s = self.states.lock().expect("lock");
            let k = format!("{class}/{subject}");
            match s.get(&k) {
                Some(v) if v == state => Claim::Announced,
                None if quiet => Claim::Announced,
                _ => {
                    s.insert(k, state.into());
                    Claim::Send
                }
            }
        }
        fn node(&self) -> String {
            "n".into()
        }
        fn enqueue(&self, id: &str, body: Vec<u8>) -> bool {
            if self.refuse.load(Ordering::Relaxed) {
                return false;
            }
            self.queued.lock().expect("lock").push((id.into(), body));
            true
        }
    }

    fn note(kind: Kind, host: &str, state: &str, ts: u64) -> Notification {
        Notification {
            id: format!("{ts}"),
            kind,
            host: host.into(),
            key: None,
            state: state.into(),
            from: None,
            level: Notification::level_of(state),
            since_ms: ts,
            ts_ms: ts,
            message: String::new(),
            checks: Vec::new(),
            flap_percent: None,
            items: Vec::new(),
        }
    }

    #[test]
    fn two_nodes_announce_each_transition_once_across_a_takeover() {
        let engine_states = Arc::new(Fake::default());
        let a = Arc::new(Fake::default());
        let b = Arc::new(Fake::default());
        // Both share the engine's states: b reads what a wrote.
        let shared = |f: &Arc<Fake>| {
            let e = engine_states.clone();
            let f = f.clone();
            move || *e.states.lock().expect("lock") = f.states.lock().expect("lock").clone()
        };
        let (mut ga, mut gb) = (Gate::default(), Gate::default());
        ga.set(a.clone());
        gb.set(b.clone());
        a.leader.store(true, Ordering::Relaxed);
        // web1 DOWN: a (leader) sends, b leaves it to a.
        assert_eq!(
            ga.filter(vec![note(Kind::Down, "web1", "DOWN", 1)], 1)
                .len(),
            1
        );
        assert!(gb
            .filter(vec![note(Kind::Down, "web1", "DOWN", 1)], 1)
            .is_empty());
        shared(&a)();
        *b.states.lock().expect("lock") = engine_states.states.lock().expect("lock").clone();
        // web2 DOWN seen by b only before a dies without saying it.
        assert!(gb
            .filter(vec![note(Kind::Down, "web2", "DOWN", 2)], 2)
            .is_empty());
        a.leader.store(false, Ordering::Relaxed);
        b.leader.store(true, Ordering::Relaxed);
        // b takes over: web1 was announced (not repeated), web2 was not (sent now).
        let sent = gb.tick(3);
        assert_eq!(sent.len(), 1);
        assert_eq!(sent[0].host, "web2");
        // An UP for a host never announced DOWN is not news.
        assert!(gb
            .filter(vec![note(Kind::Up, "web3", "UP", 4)], 4)
            .is_empty());
        assert_eq!(gb.filter(vec![note(Kind::Up, "web1", "UP", 5)], 5).len(), 1);
        // Local kinds always pass, leader or not.
        assert_eq!(
            ga.filter(vec![note(Kind::System, "hbd", "WARNING", 6)], 6)
                .len(),
            1
        );
    }

    #[test]
    fn deferred_notifications_expire() {
        let a = Arc::new(Fake::default());
        let mut g = Gate::default();
        g.set(a.clone());
        assert!(g
            .filter(vec![note(Kind::Down, "h", "DOWN", 1)], 1)
            .is_empty());
        assert!(g.tick(1 + DEFERRED_FOR_MS).is_empty());
        a.leader.store(true, Ordering::Relaxed);
        assert!(g.tick(2 + DEFERRED_FOR_MS).is_empty());
    }

    #[test]
    fn what_was_sent_alone_is_recorded_when_the_engine_returns_so_the_recovery_is_announced() {
        // One engine shared by two nodes.
        let engine = Arc::new(Fake::default());
        let mut a = Gate::default();
        let mut b = Gate::default();
        a.set(engine.clone());
        b.set(engine.clone());
        // The engine is away for long: both nodes send web1's DOWN alone, and say so.
        engine.alone.store(true, Ordering::Relaxed);
        for g in [&mut a, &mut b] {
            let sent = g.filter(vec![note(Kind::Down, "web1", "DOWN", 1)], 1);
            assert_eq!(sent.len(), 1);
            assert!(sent[0].message.contains("alone"), "{}", sent[0].message);
            assert!(g.tick(100_000).is_empty(), "kept, not expired, while alone");
        }
        // The engine returns and a becomes leader: the DOWN is recorded, not sent again.
        engine.alone.store(false, Ordering::Relaxed);
        engine.leader.store(true, Ordering::Relaxed);
        assert!(a.tick(100_001).is_empty());
        assert_eq!(a.recorded_alone, 1);
        assert_eq!(
            engine
                .states
                .lock()
                .expect("lock")
                .get("host/web1")
                .map(String::as_str),
            Some("DOWN")
        );
        // web1 recovers: the UP is news (before the fix the engine still held nothing
        // for web1 and the quiet UP was dropped).
        let sent = a.filter(vec![note(Kind::Up, "web1", "UP", 100_002)], 100_002);
        assert_eq!(sent.len(), 1, "the recovery is announced");
        // The follower's record of what it sent alone goes after the grace.
        engine.leader.store(false, Ordering::Relaxed);
        assert!(b.tick(100_001 + DEFERRED_FOR_MS).is_empty());
        assert!(b.alone_sent.is_empty() && b.deferred.is_empty());
    }

    #[test]
    fn a_change_reaching_the_leader_before_its_tick_still_compares_with_what_was_sent_alone() {
        let engine = Arc::new(Fake::default());
        let mut a = Gate::default();
        a.set(engine.clone());
        engine.alone.store(true, Ordering::Relaxed);
        assert_eq!(
            a.filter(vec![note(Kind::Down, "db", "DOWN", 1)], 1).len(),
            1
        );
        engine.alone.store(false, Ordering::Relaxed);
        engine.leader.store(true, Ordering::Relaxed);
        // The UP arrives first: the DOWN sent alone is recorded, then the UP announced.
        assert_eq!(a.filter(vec![note(Kind::Up, "db", "UP", 2)], 2).len(), 1);
        assert_eq!(a.recorded_alone, 1);
        // A repeat of what was sent alone is not sent again.
        engine.alone.store(true, Ordering::Relaxed);
        engine.leader.store(false, Ordering::Relaxed);
        assert_eq!(
            a.filter(vec![note(Kind::Down, "db", "DOWN", 3)], 3).len(),
            1
        );
        engine.alone.store(false, Ordering::Relaxed);
        engine.leader.store(true, Ordering::Relaxed);
        assert!(a
            .filter(vec![note(Kind::Down, "db", "DOWN", 3)], 4)
            .is_empty());
    }

    #[test]
    fn what_the_leader_claims_goes_through_the_engines_queue_and_nothing_else_does() {
        let engine = Arc::new(Fake::default());
        let mut g = Gate::default();
        g.set(engine.clone());
        engine.leader.store(true, Ordering::Relaxed);
        let sent = g.filter(
            vec![
                note(Kind::Down, "web1", "DOWN", 1),
                note(Kind::System, "hbd", "WARNING", 2),
            ],
            3,
        );
        assert_eq!(sent.len(), 2);
        assert!(g.take_claimed(&sent[0]), "the claimed DOWN");
        assert!(!g.take_claimed(&sent[1]), "hbd's own problem is local");
        assert!(g.enqueue("email", &sent[0]));
        let q = engine.queued.lock().expect("lock").clone();
        assert_eq!(q.len(), 1);
        assert_eq!(
            q[0].0, "1/email",
            "de-duplicated by notification and channel"
        );
        let back: Queued = serde_json::from_slice(&q[0].1).expect("a Queued");
        assert_eq!(
            (back.channel.as_str(), back.n.host.as_str()),
            ("email", "web1")
        );
        // The engine does not take it: the caller keeps it (and it is counted).
        engine.refuse.store(true, Ordering::Relaxed);
        assert!(!g.enqueue("email", &sent[0]));
        assert_eq!((g.enqueued, g.enqueue_failed), (1, 1));
        // A storm is claimed when every item it holds was; sent alone it is local.
        engine.refuse.store(false, Ordering::Relaxed);
        let mut storm = note(Kind::Storm, "", "", 4);
        storm.id = "storm".into();
        storm.items = vec![
            note(Kind::Down, "a", "DOWN", 5),
            note(Kind::Down, "b", "DOWN", 6),
        ];
        let sent = g.filter(vec![storm.clone()], 7);
        assert_eq!(sent.len(), 1);
        assert!(g.take_claimed(&sent[0]));
        g.clear_claimed();
        engine.leader.store(false, Ordering::Relaxed);
        engine.alone.store(true, Ordering::Relaxed);
        storm.items = vec![note(Kind::Down, "c", "DOWN", 8)];
        let sent = g.filter(vec![storm], 9);
        assert_eq!(sent.len(), 1);
        assert!(
            !g.take_claimed(&sent[0]),
            "sent alone: not through the engine"
        );
    }
}
