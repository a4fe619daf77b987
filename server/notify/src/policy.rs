//! The policy: a pure state machine from events, heartbeats and the clock to the
//! notifications worth sending. No I/O, no threads: every method takes `now_ms`, so
//! confirmation, flapping, storms, reminders and silences are tested with a controlled
//! clock.
//!
//! The core idea is *announced state*: per host the policy keeps what it last told people
//! (DOWN or not, level, flapping) next to the actual state, and every change ends in
//! [`Policy::reconcile`], which announces the difference, unless the host is silenced,
//! flapping (one "flapping" message instead) or waiting for its UP confirmation. A
//! silence ending, a host that stops flapping and a confirmed UP all reconcile the same
//! way, so a host still DOWN after a silence notifies once, and one that recovered during
//! it sends nothing stale.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde::{Deserialize, Serialize};

use hbd_core::event::{Event, EventKind};
use hbd_core::registry::LevelName;

use super::config::PolicySettings;
use super::flap::{Flap, FlapChange};
use super::notification::{Kind, Notification};
use super::rules::distinct_hosts;
use super::silence::Silence;

/// Held notifications beyond this are released at once (memory bound).
const MAX_HELD: usize = 10_000;
/// Distinct system problems remembered for de-duplication.
const MAX_SYSTEM_KEYS: usize = 10_000;
/// A confirmed UP is announced this long after the heartbeat that confirmed it, so the
/// other events of that heartbeat (its level) are in the announcement.
pub const SETTLE_MS: u64 = 100;
/// How often every host's state is swept: old flap history dropped, hosts in their
/// default state forgotten (memory stays proportional to hosts with something to say).
const SWEEP_MS: u64 = 60_000;

/// Liveness as the policy sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
enum Live {
    #[default]
    Up,
    Down,
    /// DOWN without ever having been seen (a watched host).
    NeverSeen,
}

/// What was last announced about a host or check.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Announced {
    down: bool,
    level: LevelName,
    flapping: bool,
    /// When DOWN was last announced or reminded.
    ms: u64,
}

impl Default for Announced {
    fn default() -> Self {
        Announced {
            down: false,
            level: LevelName::Ok,
            flapping: false,
            ms: 0,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct CheckState {
    level: LevelName,
    #[serde(default)]
    message: String,
    since_ms: u64,
    #[serde(default)]
    flap: Flap,
    #[serde(default)]
    ann: Announced,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct HostState {
    live: Live,
    /// Since when `live` holds.
    since_ms: u64,
    level: LevelName,
    level_since_ms: u64,
    /// When it last went DOWN.
    #[serde(default)]
    down_since_ms: u64,
    /// Why the host went DOWN (the event's text).
    #[serde(default)]
    message: String,
    /// Heartbeats counted since the host came back, until `up_after`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pending_up: Option<u32>,
    /// When the last of them was counted.
    #[serde(default)]
    pending_ms: u64,
    #[serde(default)]
    flap: Flap,
    #[serde(default)]
    ann: Announced,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    checks: BTreeMap<String, CheckState>,
}

impl HostState {
    fn new(now_ms: u64) -> HostState {
        HostState {
            live: Live::Up,
            since_ms: now_ms,
            level: LevelName::Ok,
            level_since_ms: now_ms,
            down_since_ms: 0,
            message: String::new(),
            pending_up: None,
            pending_ms: 0,
            flap: Flap::default(),
            ann: Announced::default(),
            checks: BTreeMap::new(),
        }
    }

    /// Nothing worth remembering across a restart.
    fn is_default(&self) -> bool {
        self.live == Live::Up
            && self.level == LevelName::Ok
            && self.pending_up.is_none()
            && self.flap.is_idle()
            && self.ann
                == Announced {
                    ms: self.ann.ms,
                    ..Announced::default()
                }
            && self.checks.is_empty()
    }

    fn state_text(&self) -> &'static str {
        match self.live {
            Live::Up => self.level.as_str(),
            Live::Down => "DOWN",
            Live::NeverSeen => "NEVER_SEEN",
        }
    }
}

/// The policy's state, as saved across restarts.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Saved {
    #[serde(default)]
    hosts: BTreeMap<String, HostState>,
    #[serde(default)]
    silences: Vec<Silence>,
    #[serde(default)]
    next_silence_id: u64,
    #[serde(default)]
    next_id: u64,
    #[serde(default)]
    held: Vec<Notification>,
    #[serde(default)]
    held_since_ms: u64,
    #[serde(default)]
    window_until_ms: u64,
    #[serde(default)]
    lead: Option<String>,
    /// System problems announced and not yet resolved: key → last sent.
    #[serde(default)]
    system: BTreeMap<String, u64>,
}

/// The notification policy.
#[derive(Debug)]
pub struct Policy {
    s: PolicySettings,
    hosts: HashMap<String, HostState>,
    silences: Vec<Silence>,
    next_silence_id: u64,
    next_id: u64,
    /// The storm window: groupable notifications waiting to be released together.
    held: Vec<Notification>,
    held_since_ms: u64,
    /// The storm window is open until then: a groupable notification that comes while
    /// it is open is held; one that comes while it is closed goes out at once and opens
    /// it, so the first alert of a storm is never delayed.
    window_until_ms: u64,
    /// The host whose notification opened the window (sent at once); it counts towards
    /// `storm_threshold`.
    lead: Option<String>,
    system: BTreeMap<String, u64>,
    /// Hosts announced DOWN (for reminders) and hosts or checks flapping (re-evaluated
    /// as time passes): indexes, so a tick does not scan the fleet.
    down: BTreeSet<String>,
    flapping: BTreeSet<(String, Option<String>)>,
    /// Hosts waiting for their UP confirmation.
    pending: BTreeSet<String>,
    last_sweep_ms: u64,
}

/// Why a silence could not be added.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SilenceError {
    #[error("hosts: give a host name or a glob such as web* (at most 255 characters)")]
    Pattern,
    #[error("until: must be in the future and after from")]
    Until,
    #[error("reason: say why (at most 1000 characters)")]
    Reason,
    #[error("too many silences (1000); remove some first")]
    TooMany,
}

impl Policy {
    pub fn new(s: PolicySettings) -> Policy {
        Policy::restore(s, Saved::default())
    }

    /// A policy continuing from a saved state.
    pub fn restore(s: PolicySettings, saved: Saved) -> Policy {
        let mut p = Policy {
            s,
            hosts: saved.hosts.into_iter().collect(),
            silences: saved.silences,
            next_silence_id: saved.next_silence_id,
            next_id: saved.next_id,
            held: saved.held,
            held_since_ms: saved.held_since_ms,
            window_until_ms: saved.window_until_ms,
            lead: saved.lead,
            system: saved.system,
            down: BTreeSet::new(),
            flapping: BTreeSet::new(),
            pending: BTreeSet::new(),
            last_sweep_ms: 0,
        };
        for (name, h) in &p.hosts {
            if h.ann.down {
                p.down.insert(name.clone());
            }
            if h.pending_up.is_some() {
                p.pending.insert(name.clone());
            }
            if h.flap.flapping {
                p.flapping.insert((name.clone(), None));
            }
            for (k, c) in &h.checks {
                if c.flap.flapping {
                    p.flapping.insert((name.clone(), Some(k.clone())));
                }
            }
        }
        p
    }

    /// The state worth saving (hosts in their default state are left out).
    pub fn save(&self) -> Saved {
        Saved {
            hosts: self
                .hosts
                .iter()
                .filter(|(_, h)| !h.is_default())
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            silences: self.silences.clone(),
            next_silence_id: self.next_silence_id,
            next_id: self.next_id,
            held: self.held.clone(),
            held_since_ms: self.held_since_ms,
            window_until_ms: self.window_until_ms,
            lead: self.lead.clone(),
            system: self.system.clone(),
        }
    }

    pub fn settings(&self) -> &PolicySettings {
        &self.s
    }

    /// New knobs (a reload): every state is kept; the next event or tick applies them
    /// (a longer `up_after` makes pending hosts wait for more heartbeats, a shorter storm
    /// window releases what it holds at the next tick).
    pub fn set_settings(&mut self, s: PolicySettings) {
        self.s = s;
    }

    /// Whether `host` waits for heartbeats to confirm it is UP.
    pub fn is_pending(&self, host: &str) -> bool {
        self.hosts.get(host).is_some_and(|h| h.pending_up.is_some())
    }

    /// Every host waiting for its UP confirmation.
    pub fn pending_hosts(&self) -> Vec<String> {
        self.pending.iter().cloned().collect()
    }

    /// Hosts and checks flapping now: (host, reading key).
    pub fn flapping(&self) -> Vec<(String, Option<String>)> {
        self.flapping.iter().cloned().collect()
    }

    /// Notifications held in the storm window.
    pub fn held(&self) -> usize {
        self.held.len()
    }

    pub fn silences(&self, now_ms: u64) -> Vec<Silence> {
        self.silences
            .iter()
            .filter(|s| s.until_ms > now_ms)
            .cloned()
            .collect()
    }

    fn silenced(&self, host: &str, now_ms: u64) -> bool {
        self.silences.iter().any(|s| s.covers(host, now_ms))
    }

    fn new_id(&mut self, now_ms: u64) -> String {
        self.next_id += 1;
        format!("{now_ms}-{}", self.next_id)
    }

    fn notification(&mut self, kind: Kind, host: &str, state: &str, now_ms: u64) -> Notification {
        Notification {
            id: self.new_id(now_ms),
            kind,
            host: host.to_string(),
            key: None,
            state: state.to_string(),
            from: None,
            level: Notification::level_of(state),
            since_ms: now_ms,
            ts_ms: now_ms,
            message: String::new(),
            checks: Vec::new(),
            flap_percent: None,
            items: Vec::new(),
        }
    }

    /// One published event.
    pub fn event(&mut self, e: &Event, now_ms: u64) -> Vec<Notification> {
        let mut out = Vec::new();
        match e.kind {
            EventKind::HostNew => {}
            EventKind::HostUp => {
                let (window, high, low) =
                    (self.s.flap_window_ms, self.s.flap_high, self.s.flap_low);
                let h = self
                    .hosts
                    .entry(e.host.clone())
                    .or_insert_with(|| HostState::new(e.ts_ms));
                let was_down = h.live != Live::Up;
                h.live = Live::Up;
                h.since_ms = e.ts_ms;
                // The heartbeat that brought it back counts as the first; even with
                // `up_after: 1` the announcement waits for the tick (SETTLE_MS), so the
                // same heartbeat's level change is part of it.
                h.pending_up = Some(1);
                h.pending_ms = now_ms;
                self.pending.insert(e.host.clone());
                if was_down && e.from.as_deref() == Some("DOWN") {
                    h.flap.record(now_ms, window, high, low);
                }
                self.reconcile(&e.host, now_ms, &mut out);
            }
            EventKind::HostDown => {
                let (window, high, low) =
                    (self.s.flap_window_ms, self.s.flap_high, self.s.flap_low);
                let h = self
                    .hosts
                    .entry(e.host.clone())
                    .or_insert_with(|| HostState::new(e.ts_ms));
                let never = e.from.as_deref() == Some("NEVER_SEEN");
                if !never {
                    h.flap.record(now_ms, window, high, low);
                }
                h.live = if never { Live::NeverSeen } else { Live::Down };
                h.since_ms = e.ts_ms;
                h.down_since_ms = e.ts_ms;
                h.message = e.message.clone();
                h.pending_up = None;
                self.pending.remove(&e.host);
                self.reconcile(&e.host, now_ms, &mut out);
            }
            EventKind::HostLevel => {
                let Some(level) = e.to.as_deref().and_then(LevelName::parse) else {
                    return out;
                };
                let (window, high, low) =
                    (self.s.flap_window_ms, self.s.flap_high, self.s.flap_low);
                let h = self
                    .hosts
                    .entry(e.host.clone())
                    .or_insert_with(|| HostState::new(e.ts_ms));
                if h.level != level {
                    h.flap.record(now_ms, window, high, low);
                    h.level = level;
                    h.level_since_ms = e.ts_ms;
                }
                self.reconcile(&e.host, now_ms, &mut out);
            }
            EventKind::CheckLevel => {
                let (Some(key), Some(level)) =
                    (e.key.as_ref(), e.to.as_deref().and_then(LevelName::parse))
                else {
                    return out;
                };
                let (window, high, low) =
                    (self.s.flap_window_ms, self.s.flap_high, self.s.flap_low);
                let h = self
                    .hosts
                    .entry(e.host.clone())
                    .or_insert_with(|| HostState::new(e.ts_ms));
                let c = h.checks.entry(key.clone()).or_insert_with(|| CheckState {
                    level: LevelName::Ok,
                    message: String::new(),
                    since_ms: e.ts_ms,
                    flap: Flap::default(),
                    ann: Announced::default(),
                });
                if c.level != level {
                    c.flap.record(now_ms, window, high, low);
                    c.level = level;
                    c.since_ms = e.ts_ms;
                }
                c.message = e.message.clone();
                self.reconcile_check(&e.host, key, now_ms, &mut out);
            }
            EventKind::HostForgotten => {
                self.hosts.remove(&e.host);
                self.pending.remove(&e.host);
                self.down.remove(&e.host);
                self.flapping.retain(|(h, _)| h != &e.host);
            }
            // System problems and kinds this module does not know (a subsystem's own).
            _ => self.system_event(e, now_ms, &mut out),
        }
        self.prune(&e.host);
        self.hold(out, now_ms)
    }

    /// Forgets a host whose state is the default (UP, OK, nothing announced or pending).
    fn prune(&mut self, host: &str) {
        if self.hosts.get(host).is_some_and(HostState::is_default) {
            self.hosts.remove(host);
        }
    }

    /// Drops flap history older than the window and forgets hosts in the default state.
    fn sweep(&mut self, now_ms: u64) {
        let (window, high, low) = (self.s.flap_window_ms, self.s.flap_high, self.s.flap_low);
        let names: Vec<String> = self.hosts.keys().cloned().collect();
        for name in names {
            let Some(h) = self.hosts.get_mut(&name) else {
                continue;
            };
            if !h.flap.flapping {
                h.flap.evaluate(now_ms, window, high, low);
            }
            for c in h.checks.values_mut() {
                if !c.flap.flapping {
                    c.flap.evaluate(now_ms, window, high, low);
                }
            }
            h.checks.retain(|_, c| {
                !(c.level == LevelName::Ok && c.ann == Announced::default() && c.flap.is_idle())
            });
            self.prune(&name);
        }
        // A table grown for a burst (a fleet starting: every new host has state until its
        // UP is confirmed) keeps its size after the burst's hosts are forgotten: give the
        // room back once most of it is empty.
        if self.hosts.capacity() > 4 * self.hosts.len().max(64) {
            self.hosts.shrink_to(2 * self.hosts.len());
        }
    }

    /// One accepted heartbeat of `host`: counts towards its UP confirmation, which the
    /// next [`Policy::tick`] after `SETTLE_MS` announces.
    pub fn heartbeat(&mut self, host: &str, now_ms: u64) {
        if let Some(h) = self.hosts.get_mut(host) {
            if let Some(n) = h.pending_up.as_mut() {
                *n = n.saturating_add(1);
                h.pending_ms = now_ms;
            }
        }
    }

    /// Hosts with enough heartbeats: no longer pending; reconciled.
    fn confirm(&mut self, now_ms: u64, out: &mut Vec<Notification>) {
        let up_after = self.s.up_after;
        let ready: Vec<String> = self
            .pending
            .iter()
            .filter(|h| {
                self.hosts.get(*h).is_none_or(|s| {
                    s.pending_up.is_none_or(|n| n >= up_after)
                        && now_ms.saturating_sub(s.pending_ms) >= SETTLE_MS
                })
            })
            .cloned()
            .collect();
        for host in ready {
            self.pending.remove(&host);
            if let Some(h) = self.hosts.get_mut(&host) {
                h.pending_up = None;
            }
            self.reconcile(&host, now_ms, out);
            self.prune(&host);
        }
    }

    /// Announces the difference between a host's actual and announced state.
    fn reconcile(&mut self, host: &str, now_ms: u64, out: &mut Vec<Notification>) {
        if self.silenced(host, now_ms) {
            return;
        }
        let pct = {
            let Some(h) = self.hosts.get(host) else {
                return;
            };
            h.flap.percent(now_ms, self.s.flap_window_ms)
        };
        let Some(h) = self.hosts.get(host).cloned() else {
            return;
        };
        let mut ann = h.ann.clone();
        let down = h.live != Live::Up;
        let mut made = None;
        if h.flap.flapping {
            self.flapping.insert((host.to_string(), None));
            if !ann.flapping {
                let mut n = self.notification(Kind::Flapping, host, h.state_text(), now_ms);
                n.flap_percent = Some(round1(pct));
                n.since_ms = h.since_ms.min(h.level_since_ms);
                n.message = format!(
                    "{:.0} % state changes in the last {}; its changes are held back until it settles",
                    pct,
                    human_duration(self.s.flap_window_ms)
                );
                ann.flapping = true;
                made = Some(n);
            }
        } else if ann.flapping {
            self.flapping.remove(&(host.to_string(), None));
            // One message with the state it settled in; that state counts as announced.
            // A host still waiting for its UP confirmation settled DOWN for now.
            let settled_down = down || h.pending_up.is_some();
            let state = if settled_down && h.live == Live::Up {
                "DOWN"
            } else {
                h.state_text()
            };
            let mut n = self.notification(Kind::FlappingStopped, host, state, now_ms);
            n.flap_percent = Some(round1(pct));
            n.message = format!("stopped flapping; now {state}");
            ann = Announced {
                down: settled_down,
                level: h.level,
                flapping: false,
                ms: now_ms,
            };
            made = Some(n);
        } else if h.pending_up.is_some() {
            // Neither DOWN nor UP until enough heartbeats confirm it.
        } else if down && !ann.down {
            let kind = if h.live == Live::NeverSeen {
                Kind::NeverSeen
            } else {
                Kind::Down
            };
            let mut n = self.notification(kind, host, "DOWN", now_ms);
            n.from = Some(if h.live == Live::NeverSeen {
                "NEVER_SEEN".into()
            } else {
                "UP".into()
            });
            n.since_ms = h.since_ms;
            n.message = h.message.clone();
            ann.down = true;
            ann.ms = now_ms;
            made = Some(n);
        } else if !down && ann.down {
            let mut n = self.notification(Kind::Up, host, "UP", now_ms);
            n.from = Some("DOWN".into());
            n.since_ms = h.since_ms;
            n.message = format!(
                "heartbeats again after {} DOWN; level {}",
                human_duration(h.since_ms.saturating_sub(h.down_since_ms)),
                h.level.as_str()
            );
            ann.down = false;
            ann.level = h.level;
            made = Some(n);
        } else if !down && h.level != ann.level {
            let mut n = self.notification(Kind::Level, host, h.level.as_str(), now_ms);
            n.from = Some(ann.level.as_str().into());
            n.since_ms = h.level_since_ms;
            ann.level = h.level;
            made = Some(n);
        }
        if ann.down {
            self.down.insert(host.to_string());
        } else {
            self.down.remove(host);
        }
        if let Some(hs) = self.hosts.get_mut(host) {
            hs.ann = ann;
        }
        out.extend(made);
    }

    fn reconcile_check(&mut self, host: &str, key: &str, now_ms: u64, out: &mut Vec<Notification>) {
        if self.silenced(host, now_ms) {
            return;
        }
        let Some(h) = self.hosts.get(host) else {
            return;
        };
        if h.live != Live::Up || h.pending_up.is_some() {
            return;
        }
        let Some(c) = h.checks.get(key).cloned() else {
            return;
        };
        let pct = c.flap.percent(now_ms, self.s.flap_window_ms);
        let mut ann = c.ann.clone();
        let flap_key = (host.to_string(), Some(key.to_string()));
        let made = if c.flap.flapping {
            self.flapping.insert(flap_key);
            (!ann.flapping).then(|| {
                ann.flapping = true;
                Kind::CheckFlapping
            })
        } else if ann.flapping {
            self.flapping.remove(&flap_key);
            ann.flapping = false;
            ann.level = c.level;
            Some(Kind::CheckFlappingStopped)
        } else if c.level != ann.level {
            let from = ann.level;
            ann.level = c.level;
            let mut n = self.notification(Kind::Check, host, c.level.as_str(), now_ms);
            n.key = Some(key.to_string());
            n.from = Some(from.as_str().into());
            n.since_ms = c.since_ms;
            n.message = c.message.clone();
            out.push(n);
            None
        } else {
            None
        };
        if let Some(kind) = made {
            let mut n = self.notification(kind, host, c.level.as_str(), now_ms);
            n.key = Some(key.to_string());
            n.flap_percent = Some(round1(pct));
            n.message = c.message.clone();
            out.push(n);
        }
        if let Some(c) = self.hosts.get_mut(host).and_then(|h| h.checks.get_mut(key)) {
            c.ann = ann;
        }
        // Checks back to OK and quiet need no memory.
        if let Some(h) = self.hosts.get_mut(host) {
            if h.checks.get(key).is_some_and(|c| {
                c.level == LevelName::Ok && c.ann == Announced::default() && c.flap.is_idle()
            }) {
                h.checks.remove(key);
            }
        }
    }

    /// hbd's own problems and events of kinds this module does not know.
    fn system_event(&mut self, e: &Event, now_ms: u64, out: &mut Vec<Notification>) {
        let key = e.key.clone().unwrap_or_default();
        // A notification channel's own alarm (raised by its dispatcher).
        if let Some(channel) = key.strip_prefix("notify.") {
            let failing = e.to.as_deref() == Some("FAILING");
            let kind = if failing {
                Kind::ChannelFailing
            } else {
                Kind::ChannelRecovered
            };
            let mut n = self.notification(
                kind,
                &e.host,
                if failing { "FAILING" } else { "OK" },
                now_ms,
            );
            n.key = Some(channel.to_string());
            n.since_ms = e.ts_ms;
            n.message = e.message.clone();
            if !self.silenced(&e.host, now_ms) {
                out.push(n);
            }
            return;
        }
        let kind = e.kind.as_str();
        let ok_word = |t: &str| {
            matches!(
                t.to_ascii_uppercase().as_str(),
                "OK" | "UP" | "SUCCESS" | "SUCCEEDED" | "RESOLVED" | "RECOVERED"
            )
        };
        // A subsystem's kinds: `*_failed` / `*error*` are problems; others are news only
        // as the end of a problem of the same base kind (`dns_update` after
        // `dns_update_failed`).
        let failure_kind = kind.contains("fail") || kind.contains("error");
        let (level, state) = if e.kind == EventKind::System {
            match e.to.as_deref() {
                None => (LevelName::Critical, "PROBLEM".to_string()),
                Some(t) if ok_word(t) => (LevelName::Ok, "OK".to_string()),
                Some(t) => (
                    LevelName::parse(t).unwrap_or(LevelName::Critical),
                    t.to_ascii_uppercase(),
                ),
            }
        } else if failure_kind {
            (LevelName::Critical, "FAILED".to_string())
        } else {
            match e.to.as_deref().and_then(LevelName::parse) {
                Some(l) => (l, l.as_str().to_string()),
                None => (LevelName::Ok, "OK".to_string()),
            }
        };
        let base = ["_failed", "_failure", "_error"]
            .iter()
            .fold(kind, |k, suffix| k.strip_suffix(suffix).unwrap_or(k));
        let topic = format!("{base}|{}|{}", e.host, key);
        if level == LevelName::Ok {
            // A success is news only after a notified problem of the same topic.
            let prefix = format!("{topic}|");
            let open: Vec<String> = self
                .system
                .range(prefix.clone()..)
                .take_while(|(k, _)| k.starts_with(&prefix))
                .map(|(k, _)| k.clone())
                .collect();
            if open.is_empty() {
                return;
            }
            for k in open {
                self.system.remove(&k);
            }
        } else {
            // hbd's own problems differ by text; a subsystem's repeat per topic.
            let dedup = if e.kind == EventKind::System {
                format!("{topic}|{}", e.message)
            } else {
                format!("{topic}|")
            };
            if let Some(&last) = self.system.get(&dedup) {
                if now_ms.saturating_sub(last) < self.s.system_repeat_ms {
                    return;
                }
            }
            if self.system.len() >= MAX_SYSTEM_KEYS {
                // Forget the oldest problem.
                if let Some(k) = self
                    .system
                    .iter()
                    .min_by_key(|(_, t)| **t)
                    .map(|(k, _)| k.clone())
                {
                    self.system.remove(&k);
                }
            }
            self.system.insert(dedup, now_ms);
        }
        if self.silenced(&e.host, now_ms) {
            return;
        }
        let mut n = self.notification(Kind::System, &e.host, &state, now_ms);
        n.level = level;
        n.key = e.key.clone();
        n.from = e.from.clone();
        n.since_ms = e.ts_ms;
        n.message = if e.kind == EventKind::System {
            e.message.clone()
        } else {
            format!("{}: {}", e.kind.as_str(), e.message)
        };
        out.push(n);
    }

    /// Puts groupable notifications into the storm window; returns what goes out now.
    /// The first one after a quiet window goes out at once and opens the window; those
    /// that follow within it are held and released together when it closes.
    fn hold(&mut self, out: Vec<Notification>, now_ms: u64) -> Vec<Notification> {
        if self.s.storm_window_ms == 0 || self.s.storm_threshold == 0 {
            return out;
        }
        let mut now = Vec::new();
        for n in out {
            if n.kind.groupable() {
                if self.held.is_empty() && now_ms >= self.window_until_ms {
                    self.window_until_ms = now_ms.saturating_add(self.s.storm_window_ms);
                    self.lead = Some(n.host.clone());
                    now.push(n);
                    continue;
                }
                if self.held.is_empty() {
                    self.held_since_ms = now_ms;
                }
                self.held.push(n);
            } else {
                now.push(n);
            }
        }
        if self.held.len() >= MAX_HELD {
            now.extend(self.release(now_ms));
        }
        now
    }

    /// Releases the storm window: one group when enough hosts changed, else each.
    fn release(&mut self, now_ms: u64) -> Vec<Notification> {
        let held = std::mem::take(&mut self.held);
        if held.is_empty() {
            return held;
        }
        let hosts = distinct_hosts(&held);
        let lead = self
            .lead
            .take()
            .filter(|l| !held.iter().any(|n| &n.host == l));
        if hosts + usize::from(lead.is_some()) < self.s.storm_threshold {
            return held;
        }
        let mut g = self.notification(Kind::Storm, "hbd", "", now_ms);
        g.state = format!("{hosts} hosts");
        g.since_ms = self.held_since_ms;
        g.level = held
            .iter()
            .map(|n| n.level)
            .max_by_key(|l| l.severity())
            .unwrap_or(LevelName::Unknown);
        let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
        for n in &held {
            *counts.entry(n.state.as_str()).or_default() += 1;
        }
        g.message = counts
            .iter()
            .map(|(s, c)| format!("{c} {s}"))
            .collect::<Vec<_>>()
            .join(", ");
        if let Some(l) = lead {
            g.message
                .push_str(&format!(" (after {l}, announced at once)"));
        }
        g.items = held;
        vec![g]
    }

    /// Time passing: the storm window, reminders, flapping decay, silences ending.
    pub fn tick(&mut self, now_ms: u64) -> Vec<Notification> {
        let mut out = Vec::new();
        self.confirm(now_ms, &mut out);
        if now_ms.saturating_sub(self.last_sweep_ms) >= SWEEP_MS {
            self.last_sweep_ms = now_ms;
            self.sweep(now_ms);
        }
        // Silences that ended: reconcile every host they covered.
        let (ended, kept): (Vec<Silence>, Vec<Silence>) = std::mem::take(&mut self.silences)
            .into_iter()
            .partition(|s| s.until_ms <= now_ms);
        self.silences = kept;
        for s in ended {
            self.after_silence(&s, now_ms, &mut out);
        }
        // Flapping decays as changes age out.
        let (window, high, low) = (self.s.flap_window_ms, self.s.flap_high, self.s.flap_low);
        for (host, key) in self.flapping.clone() {
            let Some(h) = self.hosts.get_mut(&host) else {
                self.flapping.remove(&(host, key));
                continue;
            };
            let flap = match &key {
                None => &mut h.flap,
                Some(k) => match h.checks.get_mut(k) {
                    Some(c) => &mut c.flap,
                    None => {
                        self.flapping.remove(&(host, key));
                        continue;
                    }
                },
            };
            if flap.evaluate(now_ms, window, high, low) == Some(FlapChange::Stopped) {
                match &key {
                    None => self.reconcile(&host, now_ms, &mut out),
                    Some(k) => self.reconcile_check(&host, k, now_ms, &mut out),
                }
            }
        }
        // Reminders for hosts still DOWN.
        if let Some(every) = self.s.reminder_ms {
            for host in self.down.clone() {
                if self.silenced(&host, now_ms) {
                    continue;
                }
                let Some(h) = self.hosts.get(&host) else {
                    self.down.remove(&host);
                    continue;
                };
                let due = h.ann.down
                    && !h.ann.flapping
                    && h.live != Live::Up
                    && now_ms.saturating_sub(h.ann.ms) >= every;
                if !due {
                    continue;
                }
                let (since, msg) = (h.since_ms, h.message.clone());
                let mut n = self.notification(Kind::Reminder, &host, "DOWN", now_ms);
                n.since_ms = since;
                n.message = format!(
                    "still DOWN after {}; {msg}",
                    human_duration(now_ms.saturating_sub(since))
                );
                if let Some(h) = self.hosts.get_mut(&host) {
                    h.ann.ms = now_ms;
                }
                out.push(n);
            }
        }
        let mut now = self.hold(out, now_ms);
        if !self.held.is_empty() && now_ms >= self.window_until_ms {
            now.extend(self.release(now_ms));
            // A storm still going on is grouped in the next window, not led again.
            self.window_until_ms = now_ms.saturating_add(self.s.storm_window_ms);
        }
        now
    }

    /// Releases everything held (at shutdown).
    pub fn flush(&mut self, now_ms: u64) -> Vec<Notification> {
        self.release(now_ms)
    }

    fn after_silence(&mut self, s: &Silence, now_ms: u64, out: &mut Vec<Notification>) {
        let names: Vec<String> = self
            .hosts
            .keys()
            .filter(|h| super::rules::glob(&s.hosts, h))
            .cloned()
            .collect();
        for host in names {
            if self.silenced(&host, now_ms) {
                continue;
            }
            self.reconcile(&host, now_ms, out);
            let keys: Vec<String> = self
                .hosts
                .get(&host)
                .map(|h| h.checks.keys().cloned().collect())
                .unwrap_or_default();
            for k in keys {
                self.reconcile_check(&host, &k, now_ms, out);
            }
        }
    }

    /// Adds a silence; returns it with its id.
    pub fn add_silence(
        &mut self,
        hosts: &str,
        from_ms: Option<u64>,
        until_ms: u64,
        reason: &str,
        by: Option<String>,
        now_ms: u64,
    ) -> Result<Silence, SilenceError> {
        let hosts = hosts.trim();
        if hosts.is_empty()
            || hosts.len() > 255
            || !hosts
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.*?".contains(c))
        {
            return Err(SilenceError::Pattern);
        }
        let from_ms = from_ms.unwrap_or(now_ms);
        if until_ms <= now_ms || until_ms <= from_ms {
            return Err(SilenceError::Until);
        }
        if reason.trim().is_empty() || reason.len() > 1000 {
            return Err(SilenceError::Reason);
        }
        if self.silences.len() >= 1000 {
            return Err(SilenceError::TooMany);
        }
        self.next_silence_id += 1;
        let s = Silence {
            id: self.next_silence_id,
            hosts: hosts.to_string(),
            from_ms,
            until_ms,
            reason: reason.trim().to_string(),
            by: by.map(|b| b.chars().take(100).collect()),
            created_ms: now_ms,
        };
        self.silences.push(s.clone());
        Ok(s)
    }

    /// Ends a silence now; returns it and what ending it announces.
    pub fn remove_silence(&mut self, id: u64, now_ms: u64) -> Option<(Silence, Vec<Notification>)> {
        let i = self.silences.iter().position(|s| s.id == id)?;
        let s = self.silences.remove(i);
        let mut out = Vec::new();
        self.after_silence(&s, now_ms, &mut out);
        Some((s, self.hold(out, now_ms)))
    }

    /// A notification made outside events (a test message from the API).
    pub fn make(
        &mut self,
        kind: Kind,
        host: &str,
        state: &str,
        message: String,
        now_ms: u64,
    ) -> Notification {
        let mut n = self.notification(kind, host, state, now_ms);
        n.message = message;
        n
    }
}

fn round1(v: f64) -> f64 {
    (v * 10.0).round() / 10.0
}

/// `45 s`, `12 min`, `3 h 5 min`, `2 d 4 h`.
pub fn human_duration(ms: u64) -> String {
    let s = ms / 1000;
    if s < 60 {
        format!("{s} s")
    } else if s < 3600 {
        format!("{} min", s / 60)
    } else if s < 86_400 {
        match (s % 3600) / 60 {
            0 => format!("{} h", s / 3600),
            m => format!("{} h {m} min", s / 3600),
        }
    } else {
        match (s % 86_400) / 3600 {
            0 => format!("{} d", s / 86_400),
            h => format!("{} d {h} h", s / 86_400),
        }
    }
}

#[cfg(test)]
mod tests;
