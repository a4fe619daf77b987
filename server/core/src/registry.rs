//! The host registry: every host's identity, liveness, level, readings and recent history,
//! plus the liveness deadlines.
//!
//! Pure state with an explicit clock: every method takes `now_ms`, so liveness is tested
//! with a controlled clock. Deadlines live in a min-heap holding at most one entry per
//! host; an entry that surfaces early (the host beat since) is pushed again with the
//! host's current deadline, so a check costs O(log n) per due host, never a fleet scan.
//!
//! Memory per host (ARCHITECTURE.md; `tests/memory.rs` measures it): ~350 B of fixed
//! fields, 9 B per reading (value, level and kind; the keys with their units and
//! thresholds are a schema shared by every host with the same keys: `readings.rs`),
//! `history_len` × 10 B of summary history (default 60 samples: 600 B), up to 8
//! addresses and 8 compact recent events.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::Arc;

use hb_proto::{Level, Packet, ValueRef};
use serde::{Deserialize, Serialize};

use crate::event::{Event, EventKind};
use crate::text;

mod readings;

use readings::{Interner, Update};
pub use readings::{OwnedReading, Reading, Readings};

/// Liveness of a host.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Status {
    Up,
    Down,
    /// Watched but never heard from.
    NeverSeen,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Up => "UP",
            Status::Down => "DOWN",
            Status::NeverSeen => "NEVER_SEEN",
        }
    }
}

/// A reading value as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Val {
    Bool(bool),
    I64(i64),
    F64(f64),
    Text(Box<str>),
}

impl Val {
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Val::F64(v) => Some(*v),
            Val::I64(v) => Some(*v as f64),
            Val::Bool(b) => Some(f64::from(u8::from(*b))),
            Val::Text(_) => None,
        }
    }
}

/// Level with serde names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, PartialOrd, Ord)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum LevelName {
    Ok,
    Warning,
    Critical,
    Unknown,
}

impl LevelName {
    pub fn as_str(self) -> &'static str {
        match self {
            LevelName::Ok => "OK",
            LevelName::Warning => "WARNING",
            LevelName::Critical => "CRITICAL",
            LevelName::Unknown => "UNKNOWN",
        }
    }

    /// OK < WARNING < UNKNOWN < CRITICAL.
    pub fn severity(self) -> u8 {
        match self {
            LevelName::Ok => 0,
            LevelName::Warning => 1,
            LevelName::Unknown => 2,
            LevelName::Critical => 3,
        }
    }

    pub fn parse(s: &str) -> Option<LevelName> {
        match s.to_ascii_uppercase().as_str() {
            "OK" => Some(LevelName::Ok),
            "WARNING" => Some(LevelName::Warning),
            "CRITICAL" => Some(LevelName::Critical),
            "UNKNOWN" => Some(LevelName::Unknown),
            _ => None,
        }
    }
}

impl From<Level> for LevelName {
    fn from(l: Level) -> LevelName {
        match l {
            Level::Ok => LevelName::Ok,
            Level::Warning => LevelName::Warning,
            Level::Critical => LevelName::Critical,
            Level::Unknown => LevelName::Unknown,
        }
    }
}

/// One summary sample for sparklines: time and four key figures (NaN when absent).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Sample {
    /// Unix seconds.
    pub t: u32,
    #[serde(deserialize_with = "nan_if_null")]
    pub cpu: f32,
    #[serde(deserialize_with = "nan_if_null")]
    pub mem: f32,
    #[serde(deserialize_with = "nan_if_null")]
    pub fs: f32,
    #[serde(deserialize_with = "nan_if_null")]
    pub load: f32,
}

/// A [`Sample`] as kept: 7 bytes instead of 20 (a host keeps `history_len` of them), as
/// 56 bits: the time as seconds after the sample before (12 bits; the first one's time is
/// kept once per history), the three percentages in tenths (10 bits each, 0 to 102.2),
/// the load in hundredths up to 81.91 and in tenths above, up to 900.9 (14 bits; higher
/// loads are kept as 900.9); all ones for absent.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Packed([u8; 7]);

/// The longest gap between two samples of one history (seconds); a longer one starts the
/// history afresh.
const MAX_GAP: u32 = (1 << 12) - 1;
const PCT_ABSENT: u64 = (1 << 10) - 1;
const LOAD_ABSENT: u64 = (1 << 14) - 1;
/// Load codes from here on are tenths, the first one 81.9.
const LOAD_FINE: u64 = 8_192;
const LOAD_TENTHS_FROM: u64 = 819;

fn pack_pct(v: f32) -> u64 {
    if v.is_finite() {
        (v.max(0.0) * 10.0).round().min((PCT_ABSENT - 1) as f32) as u64
    } else {
        PCT_ABSENT
    }
}

fn unpack_pct(v: u64) -> f32 {
    if v == PCT_ABSENT {
        f32::NAN
    } else {
        v as f32 / 10.0
    }
}

fn pack_load(v: f32) -> u64 {
    if !v.is_finite() {
        return LOAD_ABSENT;
    }
    let hundredths = (v.max(0.0) * 100.0).round();
    if hundredths < LOAD_FINE as f32 {
        return hundredths as u64;
    }
    let tenths = (v * 10.0).round() - LOAD_TENTHS_FROM as f32;
    LOAD_FINE + tenths.clamp(0.0, (LOAD_ABSENT - 1 - LOAD_FINE) as f32) as u64
}

fn unpack_load(v: u64) -> f32 {
    match v {
        LOAD_ABSENT => f32::NAN,
        v if v < LOAD_FINE => v as f32 / 100.0,
        v => (LOAD_TENTHS_FROM + v - LOAD_FINE) as f32 / 10.0,
    }
}

impl Packed {
    fn of(s: Sample, dt: u32) -> Packed {
        let bits = u64::from(dt.min(MAX_GAP))
            | pack_pct(s.cpu) << 12
            | pack_pct(s.mem) << 22
            | pack_pct(s.fs) << 32
            | pack_load(s.load) << 42;
        let b = bits.to_le_bytes();
        Packed([b[0], b[1], b[2], b[3], b[4], b[5], b[6]])
    }

    fn bits(self) -> u64 {
        let b = self.0;
        u64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], 0])
    }

    fn dt(self) -> u32 {
        (self.bits() & u64::from(MAX_GAP)) as u32
    }

    fn clear_dt(&mut self) {
        let bits = self.bits() & !u64::from(MAX_GAP);
        let b = bits.to_le_bytes();
        self.0 = [b[0], b[1], b[2], b[3], b[4], b[5], b[6]];
    }

    fn sample(self, t: u32) -> Sample {
        let bits = self.bits();
        Sample {
            t,
            cpu: unpack_pct(bits >> 12 & PCT_ABSENT),
            mem: unpack_pct(bits >> 22 & PCT_ABSENT),
            fs: unpack_pct(bits >> 32 & PCT_ABSENT),
            load: unpack_load(bits >> 42 & LOAD_ABSENT),
        }
    }
}

/// A host's summary history, oldest first, kept packed (see [`Packed`]); read as
/// [`Sample`]s, serialized as a list of them. A gap of more than [`MAX_GAP`] seconds (68
/// minutes) between two samples starts the history afresh: what came before is older
/// than the sparkline of the default 60 samples at a 10 s interval shows.
#[derive(Debug, Clone, Default)]
pub struct History {
    /// Time of the oldest and the newest sample (Unix seconds).
    first_t: u32,
    last_t: u32,
    samples: VecDeque<Packed>,
}

impl History {
    pub fn len(&self) -> usize {
        self.samples.len()
    }

    pub fn is_empty(&self) -> bool {
        self.samples.is_empty()
    }

    pub fn get(&self, i: usize) -> Option<Sample> {
        let p = self.samples.get(i)?;
        let t = self
            .samples
            .iter()
            .take(i + 1)
            .fold(self.first_t, |t, p| t.wrapping_add(p.dt()));
        Some(p.sample(t))
    }

    pub fn back(&self) -> Option<Sample> {
        self.samples.back().map(|p| p.sample(self.last_t))
    }

    pub fn iter(&self) -> impl DoubleEndedIterator<Item = Sample> + ExactSizeIterator + '_ {
        let mut t = self.first_t;
        self.samples
            .iter()
            .map(|p| {
                t = t.wrapping_add(p.dt());
                p.sample(t)
            })
            .collect::<Vec<_>>()
            .into_iter()
    }

    /// Appends `s`, dropping the oldest beyond `len`.
    fn push(&mut self, s: Sample, len: usize) {
        let gap = s.t.saturating_sub(self.last_t);
        if self.samples.is_empty() || gap > MAX_GAP {
            self.samples.clear();
            self.first_t = s.t;
            self.last_t = s.t;
            if self.samples.capacity() == 0 {
                self.samples.reserve_exact(len);
            }
            self.samples.push_back(Packed::of(s, 0));
            return;
        }
        if self.samples.len() >= len {
            self.samples.pop_front();
            if let Some(front) = self.samples.front_mut() {
                self.first_t = self.first_t.wrapping_add(front.dt());
                front.clear_dt();
            } else {
                self.first_t = s.t;
            }
        }
        // A clock stepped back: the sample counts as taken with the one before.
        self.last_t = self.last_t.max(s.t);
        self.samples.push_back(Packed::of(s, gap));
    }
}

impl Serialize for History {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.iter())
    }
}

impl<'de> Deserialize<'de> for History {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<History, D::Error> {
        let v = Vec::<Sample>::deserialize(d)?;
        let mut h = History::default();
        let len = v.len();
        for s in v {
            h.push(s, len);
        }
        Ok(h)
    }
}

/// JSON has no NaN: serde_json writes it as `null`, read back here as NaN.
fn nan_if_null<'de, D: serde::Deserializer<'de>>(d: D) -> Result<f32, D::Error> {
    Option::<f32>::deserialize(d).map(|v| v.unwrap_or(f32::NAN))
}

/// Names an event's `from` and `to` usually are: kept as their index here (+1; 0 for
/// none), anything else as an interned text in [`Kept::texts`].
const STATES: [&str; 7] = [
    "UP",
    "DOWN",
    "NEVER_SEEN",
    "OK",
    "WARNING",
    "CRITICAL",
    "UNKNOWN",
];
const STATE_OTHER: u8 = u8::MAX;

/// An event as its host keeps it: the host is the one holding it, states are a byte each,
/// and the rarer texts (a reading's key, states that are not state names, such as a DNS
/// update's addresses) interned in a box most events do not have (48 bytes and the
/// message, instead of 144 and five texts).
#[derive(Debug, Clone)]
struct Kept {
    id: u64,
    ts_ms: u64,
    message: Box<str>,
    /// `[key, from, to]`, when any of them is needed.
    texts: Option<Box<[Option<Arc<str>>; 3]>>,
    kind: EventKind,
    from: u8,
    to: u8,
}

fn state_code(s: Option<&str>) -> u8 {
    match s {
        None => 0,
        Some(s) => STATES
            .iter()
            .position(|x| *x == s)
            .map_or(STATE_OTHER, |i| i as u8 + 1),
    }
}

impl Kept {
    fn of(e: &Event, interned: Option<&mut Interner>) -> Kept {
        let (from, to) = (state_code(e.from.as_deref()), state_code(e.to.as_deref()));
        let texts = (e.key.is_some() || from == STATE_OTHER || to == STATE_OTHER).then(|| {
            let mut interned = interned;
            let mut text = |s: Option<&String>| {
                s.map(|s| match interned.as_deref_mut() {
                    Some(i) => i.text(s).0,
                    None => Arc::from(s.as_str()),
                })
            };
            Box::new([
                text(e.key.as_ref()),
                text(e.from.as_ref().filter(|_| from == STATE_OTHER)),
                text(e.to.as_ref().filter(|_| to == STATE_OTHER)),
            ])
        });
        Kept {
            id: e.id,
            ts_ms: e.ts_ms,
            message: e.message.as_str().into(),
            texts,
            kind: e.kind,
            from,
            to,
        }
    }

    fn text(&self, i: usize, code: u8) -> Option<String> {
        match code {
            0 => None,
            STATE_OTHER => self.texts.as_ref()?[i].as_deref().map(str::to_string),
            c => STATES.get(usize::from(c) - 1).map(|s| (*s).to_string()),
        }
    }

    fn event(&self, host: &str) -> Event {
        Event {
            id: self.id,
            ts_ms: self.ts_ms,
            host: host.to_string(),
            kind: self.kind,
            key: self
                .texts
                .as_ref()
                .and_then(|t| t[0].as_deref())
                .map(str::to_string),
            from: self.text(1, self.from),
            to: self.text(2, self.to),
            message: self.message.to_string(),
        }
    }
}

/// A host's latest events (at most [`MAX_RECENT`]), oldest first, kept compact; read as
/// [`Event`]s, serialized as a list of them (with an empty host: the host holding them).
#[derive(Debug, Clone, Default)]
pub struct Recent(Vec<Kept>);

impl Recent {
    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The kind of the oldest event kept.
    pub fn first_kind(&self) -> Option<EventKind> {
        self.0.first().map(|k| k.kind)
    }

    /// The events, oldest first, as events of `host`.
    pub fn events<'a>(
        &'a self,
        host: &'a str,
    ) -> impl DoubleEndedIterator<Item = Event> + ExactSizeIterator + 'a {
        self.0.iter().map(move |k| k.event(host))
    }

    fn push(&mut self, e: &Event, interned: &mut Interner) {
        if self.0.len() >= MAX_RECENT {
            // At most 8 events: shifting them is cheaper than a ring's bookkeeping.
            self.0.remove(0);
        }
        // Room for one more at a time: most hosts keep two or three.
        self.0.reserve_exact(1);
        self.0.push(Kept::of(e, Some(interned)));
    }
}

impl Serialize for Recent {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.events(""))
    }
}

impl<'de> Deserialize<'de> for Recent {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Recent, D::Error> {
        let v = Vec::<Event>::deserialize(d)?;
        Ok(Recent(v.iter().map(|e| Kept::of(e, None)).collect()))
    }
}

/// Where a host's heartbeats came from.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SeenAddr {
    pub addr: IpAddr,
    pub last_ms: u64,
}

/// Everything known about one host.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Host {
    pub name: Arc<str>,
    pub status: Status,
    pub level: LevelName,
    pub watched: bool,
    /// Grace factor: DOWN after interval × grace without a heartbeat.
    pub grace: f64,
    pub first_seen_ms: Option<u64>,
    pub last_seen_ms: Option<u64>,
    /// When the status last changed (for "DOWN since").
    pub since_ms: u64,
    pub interval_ms: u32,
    pub instance: u64,
    pub last_seq: u64,
    /// Parts of the current heartbeat seen (bit n: part n; parts < [`MAX_PARTS`]).
    #[serde(skip)]
    parts_seen: u64,
    pub received: u64,
    pub lost: u64,
    /// Recent heartbeat loss, 0..1: an exponentially weighted average over about the
    /// last [`LOSS_WINDOW`] heartbeats (1 for each lost, 0 for each received).
    #[serde(default)]
    pub loss_recent: f32,
    /// Refreshes that kept the host alive (docs/protocol.md "Refreshes").
    #[serde(default)]
    pub refreshes: u64,
    /// Newest `sent_ms` accepted: a copy of a part already applied is a refresh only
    /// when it was sent later than anything before it.
    #[serde(default)]
    pub last_sent_ms: u64,
    pub addrs: smallvec::SmallVec<[SeenAddr; 1]>,
    #[serde(skip)]
    pub readings: Readings,
    pub history: History,
    pub recent: Recent,
    pub deadline_ms: u64,
    #[serde(skip)]
    in_heap: bool,
    /// Bytes its readings hold, as [`reading_bytes`] counts them.
    #[serde(skip)]
    bytes: usize,
    /// Readings it may still have applied (token bucket of `host_reading_rate`).
    #[serde(skip)]
    budget: f64,
    /// When `budget` was last refilled (Unix ms).
    #[serde(skip)]
    budget_ms: u64,
}

const MAX_ADDRS: usize = 8;
const MAX_RECENT: usize = 8;

/// Most datagrams one heartbeat may have (`parts`). hbc's own limit is lower
/// (docs/protocol.md); a datagram claiming more is dropped as `too_many_parts`, so one
/// heartbeat costs at most this many datagrams of work.
pub const MAX_PARTS: u8 = 64;
/// What one reading costs in [`Settings::max_host_bytes`] besides its texts: its value
/// and level (9 B), and when no other host has its key, its place in the host's own
/// schema and the schema's index, and the interned key and description with their table
/// entries (with the slack of a table that just grew): `tests/memory.rs` checks that
/// readings of keys no other host has cost no more (306 B measured).
pub const READING_OVERHEAD: usize = 296;

/// The bytes a reading holds, for the per-host budget.
fn reading_bytes(key: &str, unit: &str, message: &str, threshold: &str, text: usize) -> usize {
    READING_OVERHEAD + key.len() + unit.len() + message.len() + threshold.len() + text
}

/// Readings the registry skipped, by reason: the heartbeat is applied, these readings
/// are not (docs/configuration.md). Plain counters: they change under the registry lock.
#[derive(Debug, Default, Clone, Copy)]
pub struct ReadingDrops {
    /// A key with a control or bidi-control character ([`crate::text::valid_key`]).
    pub bad_key: u64,
    /// A new key while the host holds `max_readings_per_host`.
    pub host_reading_cap: u64,
    /// A new key that would take the host past `max_host_bytes`.
    pub host_byte_budget: u64,
}

impl ReadingDrops {
    /// `(reason, count)` for `/metrics`.
    pub fn iter(&self) -> [(&'static str, u64); 3] {
        [
            ("bad_key", self.bad_key),
            ("host_reading_cap", self.host_reading_cap),
            ("host_byte_budget", self.host_byte_budget),
        ]
    }
}

/// What an accepted datagram did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    /// A new heartbeat or another part of the current one: readings applied.
    Heartbeat,
    /// A refresh: a later copy of a part already applied. Only the host's liveness
    /// (deadline, last seen) is renewed; no readings, no reading budget, and it is not a
    /// heartbeat for anything counting heartbeats (notification confirmation).
    Refresh,
}

/// Heartbeats [`Host::loss_recent`] averages over (its weight is `1/LOSS_WINDOW`).
pub const LOSS_WINDOW: u32 = 50;

/// What the liveness detector thinks of a host now, for people (the API and dashboard
/// show it next to the loss rate so it is clear why a host is or is not DOWN).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Detector {
    /// Heard from within an interval (plus 1 s).
    Alive,
    /// Nothing for longer than an interval plus 1 s: at least a heartbeat and its
    /// refreshes were lost in a row. Not DOWN until the deadline.
    Suspect,
    /// Past its deadline.
    Down,
    /// Watched, never heard from.
    NeverSeen,
}

impl Host {
    /// The detector's state at `now_ms`.
    pub fn detector(&self, now_ms: u64) -> Detector {
        match (self.status, self.last_seen_ms) {
            (Status::Down, _) => Detector::Down,
            (Status::NeverSeen, _) | (_, None) => Detector::NeverSeen,
            (Status::Up, Some(last)) => {
                if now_ms.saturating_sub(last) > u64::from(self.interval_ms) + 1000 {
                    Detector::Suspect
                } else {
                    Detector::Alive
                }
            }
        }
    }
}

impl Detector {
    pub fn as_str(self) -> &'static str {
        match self {
            Detector::Alive => "alive",
            Detector::Suspect => "suspect",
            Detector::Down => "down",
            Detector::NeverSeen => "never_seen",
        }
    }
}

/// Why a heartbeat was not applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reject {
    /// Sequence not newer than what was seen (duplicate, reordered or replayed).
    Replayed,
    /// `sent_ms` outside the accepted window around the server's clock.
    OutsideWindow,
    /// The registry is full and this would be a new host.
    HostCap,
    /// More than [`MAX_PARTS`] parts.
    TooManyParts,
    /// The host sent more readings than `host_reading_rate` allows.
    HostRateLimited,
}

impl Reject {
    pub fn reason(self) -> &'static str {
        match self {
            Reject::Replayed => "replayed",
            Reject::OutsideWindow => "outside_time_window",
            Reject::HostCap => "host_cap",
            Reject::TooManyParts => "too_many_parts",
            Reject::HostRateLimited => "host_rate_limited",
        }
    }
}

/// Settings the registry needs.
#[derive(Debug, Clone)]
pub struct Settings {
    pub grace: f64,
    /// Reject `sent_ms` further than this from now (only with a secret; 0 = off).
    pub window_ms: u64,
    pub max_hosts: usize,
    pub history_len: usize,
    /// Never-seen watched hosts go DOWN this long after start-up.
    pub startup_grace_ms: u64,
    /// Distinct readings one host may hold; new keys beyond are skipped.
    pub max_readings_per_host: usize,
    /// Bytes one host's readings may hold (texts plus [`READING_OVERHEAD`] each); new
    /// keys beyond are skipped.
    pub max_host_bytes: usize,
    /// Readings per second one host may have applied (a token bucket); a datagram
    /// beyond is dropped as `host_rate_limited`. Bounds the registry work, and so the
    /// lock time, any one host can cause. 0: no limit.
    pub host_reading_rate: f64,
    /// Readings a host may send at once above `host_reading_rate`.
    pub host_reading_burst: f64,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            grace: 2.5,
            window_ms: 0,
            max_hosts: 100_000,
            history_len: 60,
            startup_grace_ms: 60_000,
            max_readings_per_host: 2_000,
            max_host_bytes: 640 << 10,
            host_reading_rate: 20_000.0,
            host_reading_burst: 40_000.0,
        }
    }
}

/// Hosts by id, in chunks of [`Slots::CHUNK`]: the registry grows without copying its
/// hosts and without the room a doubling vector keeps (up to as much again as it holds,
/// and old and new copies side by side while it grows).
#[derive(Debug, Default)]
struct Slots {
    chunks: Vec<Box<[Option<Host>]>>,
    len: usize,
}

impl Slots {
    const CHUNK: usize = 1_024;

    fn len(&self) -> usize {
        self.len
    }

    fn get(&self, i: usize) -> Option<&Option<Host>> {
        if i >= self.len {
            return None;
        }
        self.chunks.get(i / Self::CHUNK)?.get(i % Self::CHUNK)
    }

    fn get_mut(&mut self, i: usize) -> Option<&mut Option<Host>> {
        if i >= self.len {
            return None;
        }
        self.chunks
            .get_mut(i / Self::CHUNK)?
            .get_mut(i % Self::CHUNK)
    }

    fn push(&mut self, h: Option<Host>) {
        if self.len == self.chunks.len() * Self::CHUNK {
            self.chunks
                .push((0..Self::CHUNK).map(|_| None).collect::<Vec<_>>().into());
        }
        let i = self.len;
        self.len += 1;
        if let Some(slot) = self.get_mut(i) {
            *slot = h;
        }
    }

    fn iter(&self) -> impl Iterator<Item = &Option<Host>> {
        self.chunks.iter().flat_map(|c| c.iter()).take(self.len)
    }

    fn iter_mut(&mut self) -> impl Iterator<Item = &mut Option<Host>> {
        let len = self.len;
        self.chunks.iter_mut().flat_map(|c| c.iter_mut()).take(len)
    }
}

impl std::ops::Index<usize> for Slots {
    type Output = Option<Host>;

    fn index(&self, i: usize) -> &Option<Host> {
        &self.chunks[i / Self::CHUNK][i % Self::CHUNK]
    }
}

impl std::ops::IndexMut<usize> for Slots {
    fn index_mut(&mut self, i: usize) -> &mut Option<Host> {
        &mut self.chunks[i / Self::CHUNK][i % Self::CHUNK]
    }
}

/// All hosts.
#[derive(Debug, Default)]
pub struct Registry {
    hosts: Slots,
    free: Vec<u32>,
    by_name: HashMap<Arc<str>, u32>,
    heap: BinaryHeap<Reverse<(u64, u32)>>,
    interned: Interner,
    pub settings: Settings,
    pub count: usize,
    /// Id of the last event created; ids only grow (restored from the journal).
    pub last_event_id: u64,
    /// Readings skipped, by reason.
    pub reading_drops: ReadingDrops,
}

fn event(
    now_ms: u64,
    host: &str,
    kind: EventKind,
    from: Option<&str>,
    to: Option<&str>,
    message: String,
) -> Event {
    Event {
        id: 0,
        ts_ms: now_ms,
        host: host.to_string(),
        kind,
        key: None,
        from: from.map(str::to_string),
        to: to.map(str::to_string),
        message,
    }
}

/// What one host with 30 readings and a full default history may cost in heap bytes
/// (malloc's block overhead included), checked by `tests/memory.rs`; ARCHITECTURE.md
/// breaks it down.
pub const BYTES_PER_HOST_BUDGET: usize = 1_450;

impl Registry {
    pub fn new(settings: Settings) -> Registry {
        Registry {
            settings,
            ..Registry::default()
        }
    }

    pub fn get(&self, name: &str) -> Option<&Host> {
        let id = *self.by_name.get(name)?;
        self.hosts.get(id as usize)?.as_ref()
    }

    pub fn iter(&self) -> impl Iterator<Item = &Host> {
        self.hosts.iter().flatten()
    }

    /// Host names by slot, for iterating in chunks without holding a lock throughout.
    pub fn slots(&self) -> usize {
        self.hosts.len()
    }

    pub fn slot(&self, i: usize) -> Option<&Host> {
        self.hosts.get(i).and_then(Option::as_ref)
    }

    /// Where a host's bytes go, averaged over the hosts (estimates from sizes and
    /// capacities; heap blocks of malloc not included).
    pub fn memory_report(&self) -> String {
        let n = self.count.max(1);
        let (mut readings, mut extra, mut history, mut recent, mut addrs) =
            (0usize, 0usize, 0usize, 0usize, 0usize);
        for h in self.iter() {
            let (cols, extras) = h.readings.own_bytes();
            readings += cols;
            extra += extras;
            history += h.history.samples.capacity() * std::mem::size_of::<Packed>();
            recent += h.recent.0.capacity() * std::mem::size_of::<Kept>()
                + h.recent.0.iter().map(|e| e.message.len()).sum::<usize>();
            if h.addrs.spilled() {
                addrs += h.addrs.capacity() * std::mem::size_of::<SeenAddr>();
            }
        }
        let fixed = std::mem::size_of::<Option<Host>>()
            + std::mem::size_of::<(Arc<str>, u32)>()
            + 8
            + std::mem::size_of::<Reverse<(u64, u32)>>();
        format!(
            "per host: fixed {fixed} B (Host {} B, name index, heap entry), name {} B, \
             readings {} B (9 B each; keys in {} shared schemas), reading texts {} B, \
             history {} B (sample {} B), recent events {} B (kept event {} B), addresses beyond the first {} B",
            std::mem::size_of::<Host>(),
            self.iter().map(|h| h.name.len() + 16).sum::<usize>() / n,
            readings / n,
            self.interned.schemas(),
            extra / n,
            history / n,
            std::mem::size_of::<Packed>(),
            recent / n,
            std::mem::size_of::<Kept>(),
            addrs / n,
        )
    }

    fn new_host(&mut self, name: &str, watched: bool, grace: f64, now_ms: u64) -> u32 {
        let name = self.intern_name(name);
        let host = Host {
            name: name.clone(),
            status: Status::NeverSeen,
            level: LevelName::Unknown,
            watched,
            grace,
            first_seen_ms: None,
            last_seen_ms: None,
            since_ms: now_ms,
            interval_ms: 0,
            instance: 0,
            last_seq: 0,
            parts_seen: 0,
            received: 0,
            lost: 0,
            loss_recent: 0.0,
            refreshes: 0,
            last_sent_ms: 0,
            addrs: smallvec::SmallVec::new(),
            readings: Readings::default(),
            history: History::default(),
            recent: Recent::default(),
            deadline_ms: 0,
            in_heap: false,
            bytes: 0,
            budget: self.settings.host_reading_burst,
            budget_ms: now_ms,
        };
        let id = match self.free.pop() {
            Some(id) => {
                self.hosts[id as usize] = Some(host);
                id
            }
            None => {
                self.hosts.push(Some(host));
                (self.hosts.len() - 1) as u32
            }
        };
        self.by_name.insert(name, id);
        self.count += 1;
        id
    }

    fn intern_name(&self, name: &str) -> Arc<str> {
        Arc::from(name)
    }

    /// Adds or updates a watched host (from `watchhosts`). A never-seen one goes DOWN
    /// `startup_grace` after `now_ms`.
    pub fn watch(&mut self, name: &str, grace: Option<f64>, now_ms: u64) {
        let grace = grace.unwrap_or(self.settings.grace);
        let id = match self.by_name.get(name) {
            Some(id) => *id,
            None => self.new_host(name, true, grace, now_ms),
        };
        let deadline = now_ms + self.settings.startup_grace_ms;
        if let Some(h) = self.hosts[id as usize].as_mut() {
            h.watched = true;
            h.grace = grace;
            if h.status == Status::NeverSeen && h.deadline_ms == 0 {
                h.deadline_ms = deadline;
            }
        }
        self.schedule(id);
    }

    /// Stops watching `name` (it stays if it was ever seen).
    pub fn unwatch(&mut self, name: &str) {
        if let Some(&id) = self.by_name.get(name) {
            if let Some(h) = self.hosts[id as usize].as_mut() {
                h.watched = false;
                h.grace = self.settings.grace;
            }
        }
    }

    fn schedule(&mut self, id: u32) {
        if let Some(h) = self.hosts[id as usize].as_mut() {
            if !h.in_heap && h.deadline_ms > 0 {
                h.in_heap = true;
                self.heap.push(Reverse((h.deadline_ms, id)));
            }
        }
    }

    /// Removes a host. Returns false if unknown.
    pub fn forget(&mut self, name: &str) -> bool {
        let Some(id) = self.by_name.remove(name) else {
            return false;
        };
        self.hosts[id as usize] = None;
        self.free.push(id);
        self.count -= 1;
        true
    }

    /// Applies one verified datagram; pushes resulting events into `events`.
    ///
    /// Cost: O(1) besides the datagram's own readings, each an index lookup (or a scan of
    /// at most [`INDEX_FROM`] readings); a host's readings per second are bounded by
    /// `host_reading_rate`, so no host can hold the registry for long.
    pub fn apply(
        &mut self,
        p: &Packet<'_>,
        src: IpAddr,
        now_ms: u64,
        events: &mut Vec<Event>,
    ) -> Result<Applied, Reject> {
        let start = events.len();
        if self.settings.window_ms > 0 && p.sent_ms.abs_diff(now_ms) > self.settings.window_ms {
            return Err(Reject::OutsideWindow);
        }
        if p.parts > MAX_PARTS {
            return Err(Reject::TooManyParts);
        }
        let id = self.host_for(p, src, now_ms, events)?;
        let Registry {
            hosts,
            interned,
            settings,
            reading_drops,
            ..
        } = self;
        let Some(h) = hosts[id as usize].as_mut() else {
            return Err(Reject::Replayed);
        };
        let new_seq = match accept_sequence(h, p, settings.window_ms) {
            // Checked before the reading budget: a refresh applies no readings.
            Err(Reject::Replayed) if is_refresh(h, p) => {
                h.refreshes += 1;
                h.last_sent_ms = p.sent_ms;
                note_liveness(h, p, src, now_ms, events);
                self.schedule(id);
                self.stamp(&mut events[start..]);
                self.remember(id, &events[start..]);
                return Ok(Applied::Refresh);
            }
            r => r?,
        };
        // A host's first datagram is always applied (its `host_new` event is made).
        let first = h.received == 0;
        if !take_budget(h, settings, p.readings.len(), now_ms) && !first {
            return Err(Reject::HostRateLimited);
        }
        if new_seq {
            start_heartbeat(h, p, interned);
        }
        h.parts_seen |= 1u64 << p.part;
        h.last_sent_ms = h.last_sent_ms.max(p.sent_ms);
        note_liveness(h, p, src, now_ms, events);
        let level = LevelName::from(p.level);
        if level != h.level && new_seq {
            events.push(event(
                now_ms,
                p.host,
                EventKind::HostLevel,
                Some(h.level.as_str()),
                Some(level.as_str()),
                String::new(),
            ));
            h.level = level;
        }
        let summary = apply_readings(h, p, now_ms, settings, interned, reading_drops, events);
        if p.part == 0 && settings.history_len > 0 {
            h.history.push(summary, settings.history_len);
        }
        self.schedule(id);
        self.stamp(&mut events[start..]);
        self.remember(id, &events[start..]);
        Ok(Applied::Heartbeat)
    }

    /// The host a datagram is from, created (with a `host_new` event) if it is new.
    fn host_for(
        &mut self,
        p: &Packet<'_>,
        src: IpAddr,
        now_ms: u64,
        events: &mut Vec<Event>,
    ) -> Result<u32, Reject> {
        if let Some(&id) = self.by_name.get(p.host) {
            return Ok(id);
        }
        if self.count >= self.settings.max_hosts {
            return Err(Reject::HostCap);
        }
        let id = self.new_host(p.host, false, self.settings.grace, now_ms);
        events.push(event(
            now_ms,
            p.host,
            EventKind::HostNew,
            None,
            None,
            format!("first heartbeat from {src}"),
        ));
        Ok(id)
    }

    /// Gives events their ids.
    pub fn stamp(&mut self, events: &mut [Event]) {
        for e in events {
            self.last_event_id += 1;
            e.id = self.last_event_id;
        }
    }

    /// Adds events made elsewhere to their hosts' recent lists.
    pub fn note_recent(&mut self, events: &[Event]) {
        for e in events {
            if let Some(&id) = self.by_name.get(e.host.as_str()) {
                self.remember(id, std::slice::from_ref(e));
            }
        }
    }

    /// Adds new events of host `id` to its recent list.
    fn remember(&mut self, id: u32, events: &[Event]) {
        if let Some(h) = self.hosts[id as usize].as_mut() {
            for e in events {
                h.recent.push(e, &mut self.interned);
            }
        }
    }

    /// Moves every pending deadline by `step_ms`: the system clock was stepped (by an
    /// operator, or NTP correcting a large offset), and a deadline means "this long after
    /// the last heartbeat", not a time of day. Without this a step forward would turn every
    /// host DOWN at once and a step back would postpone every DOWN by the step. O(hosts);
    /// clock steps are rare.
    pub fn shift_deadlines(&mut self, step_ms: i64) {
        self.heap.clear();
        for (id, slot) in self.hosts.iter_mut().enumerate() {
            let Some(h) = slot.as_mut() else { continue };
            h.in_heap = false;
            if h.deadline_ms == 0 {
                continue;
            }
            h.deadline_ms = h.deadline_ms.saturating_add_signed(step_ms).max(1);
            h.in_heap = true;
            self.heap.push(Reverse((h.deadline_ms, id as u32)));
        }
    }

    /// The earliest pending deadline.
    pub fn next_deadline(&self) -> Option<u64> {
        self.heap.peek().map(|Reverse((d, _))| *d)
    }

    /// Marks every host whose deadline passed as DOWN.
    pub fn tick(&mut self, now_ms: u64, events: &mut Vec<Event>) {
        while let Some(&Reverse((deadline, id))) = self.heap.peek() {
            if deadline > now_ms {
                break;
            }
            self.heap.pop();
            let Some(h) = self.hosts.get_mut(id as usize).and_then(Option::as_mut) else {
                continue;
            };
            h.in_heap = false;
            if h.deadline_ms > now_ms {
                // The host beat since this entry was queued.
                self.schedule(id);
                continue;
            }
            // The host's own deadline has passed too, even if it is not this entry's: it
            // moved earlier (a shorter interval) or later without a tick in between (found
            // by fuzzing: skipping such a host left it UP forever). 0: no deadline, DOWN.
            if h.deadline_ms == 0 {
                continue;
            }
            let e = match h.status {
                Status::Up => {
                    let silent = now_ms.saturating_sub(h.last_seen_ms.unwrap_or(now_ms));
                    Some(event(
                        now_ms,
                        &h.name,
                        EventKind::HostDown,
                        Some("UP"),
                        Some("DOWN"),
                        format!(
                            "no heartbeat for {:.1} s (interval {:.1} s × grace {})",
                            silent as f64 / 1000.0,
                            f64::from(h.interval_ms) / 1000.0,
                            h.grace
                        ),
                    ))
                }
                Status::NeverSeen if h.watched => Some(event(
                    now_ms,
                    &h.name,
                    EventKind::HostDown,
                    Some("NEVER_SEEN"),
                    Some("DOWN"),
                    "watched host never sent a heartbeat since hbd started".to_string(),
                )),
                _ => None,
            };
            if let Some(e) = e {
                h.status = Status::Down;
                h.since_ms = now_ms;
                h.deadline_ms = 0;
                events.push(e);
                let n = events.len();
                self.stamp(&mut events[n - 1..]);
                self.remember(id, &events[n - 1..]);
            }
        }
    }

    /// Restores a host from a snapshot. Hosts that were UP get a fresh deadline from
    /// `now_ms`, so a restart of hbd does not turn hosts that keep beating DOWN.
    pub fn restore(&mut self, mut h: Host, now_ms: u64) {
        if self.by_name.contains_key(&*h.name) {
            return;
        }
        h.in_heap = false;
        h.parts_seen = u64::MAX;
        h.budget = self.settings.host_reading_burst;
        h.budget_ms = now_ms;
        if h.status == Status::Up {
            let span = (f64::from(h.interval_ms.max(100)) * h.grace) as u64;
            h.deadline_ms = h
                .deadline_ms
                .max(now_ms + span.max(u64::from(h.interval_ms) + 1000));
        } else if h.status == Status::NeverSeen {
            h.deadline_ms = now_ms + self.settings.startup_grace_ms;
        } else {
            h.deadline_ms = 0;
        }
        let name = h.name.clone();
        let id = match self.free.pop() {
            Some(id) => {
                self.hosts[id as usize] = Some(h);
                id
            }
            None => {
                self.hosts.push(Some(h));
                (self.hosts.len() - 1) as u32
            }
        };
        self.by_name.insert(name, id);
        self.count += 1;
        self.schedule(id);
    }

    /// Applies a journaled event during replay (for hosts newer than the snapshot).
    pub fn replay(&mut self, e: &Event, now_ms: u64) {
        self.last_event_id = self.last_event_id.max(e.id);
        let id = match self.by_name.get(e.host.as_str()) {
            Some(&id) => id,
            None if e.kind == EventKind::HostForgotten || e.kind == EventKind::System => return,
            None => self.new_host(&e.host, false, self.settings.grace, e.ts_ms),
        };
        match e.kind {
            EventKind::HostForgotten => {
                self.forget(&e.host.clone());
                return;
            }
            EventKind::System => return,
            _ => {}
        }
        let startup = self.settings.startup_grace_ms;
        let Some(h) = self.hosts[id as usize].as_mut() else {
            return;
        };
        match e.kind {
            EventKind::HostNew | EventKind::HostUp => {
                h.status = Status::Up;
                h.since_ms = e.ts_ms;
                h.first_seen_ms.get_or_insert(e.ts_ms);
                h.last_seen_ms = Some(h.last_seen_ms.unwrap_or(0).max(e.ts_ms));
                // Unknown interval after a replay: expect a beat within the start-up grace.
                h.deadline_ms = now_ms + startup;
            }
            EventKind::HostDown => {
                h.status = Status::Down;
                h.since_ms = e.ts_ms;
                h.deadline_ms = 0;
            }
            EventKind::HostLevel => {
                if let Some(l) = e.to.as_deref().and_then(LevelName::parse) {
                    h.level = l;
                }
            }
            _ => {}
        }
        h.recent.push(e, &mut self.interned);
        self.schedule(id);
    }
}

/// Judges `(instance, seq, part)` against what the host sent before: whether this is a
/// new heartbeat (`Ok(true)`), another part of the current one (`Ok(false)`), or a
/// duplicate, reordered or replayed datagram.
fn accept_sequence(h: &Host, p: &Packet<'_>, window_ms: u64) -> Result<bool, Reject> {
    // Ordering: (instance, seq) only grows; a known seq may bring its other parts.
    let order = (p.instance, p.seq).cmp(&(h.instance, h.last_seq));
    // A lower instance is a restarted hbc whose clock went back; only accepted without a
    // time window (no secret), where replay protection is moot.
    let restarted_back = p.instance < h.instance && window_ms == 0;
    let part_repeated = h.parts_seen & (1u64 << p.part) != 0;
    match order {
        std::cmp::Ordering::Less if !restarted_back => Err(Reject::Replayed),
        std::cmp::Ordering::Equal if h.received > 0 && part_repeated => Err(Reject::Replayed),
        _ => Ok(order != std::cmp::Ordering::Equal || h.received == 0),
    }
}

/// A datagram refused as a repeat is a refresh when it repeats a part of the host's
/// current heartbeat that was applied, and was sent after everything accepted so far
/// (signed, when hbd has a secret: an old datagram replayed is no sign of life).
/// Duplicates made by the network carry the same `sent_ms` and stay `replayed`.
fn is_refresh(h: &Host, p: &Packet<'_>) -> bool {
    h.received > 0
        && (p.instance, p.seq) == (h.instance, h.last_seq)
        && h.parts_seen & (1u64 << p.part) != 0
        && p.sent_ms > h.last_sent_ms
}

/// Takes `n` readings from the host's budget (refilled at `host_reading_rate`); false
/// when it does not hold them.
fn take_budget(h: &mut Host, s: &Settings, n: usize, now_ms: u64) -> bool {
    if s.host_reading_rate <= 0.0 {
        return true;
    }
    let elapsed = now_ms.saturating_sub(h.budget_ms) as f64 / 1000.0;
    h.budget_ms = h.budget_ms.max(now_ms);
    h.budget = (h.budget + elapsed * s.host_reading_rate).min(s.host_reading_burst);
    // A datagram with no readings still costs one: it is work too.
    let cost = n.max(1) as f64;
    if h.budget < cost {
        return false;
    }
    h.budget -= cost;
    true
}

/// A new heartbeat begins: count lost ones from the sequence gap and forget readings
/// the previous heartbeat did not carry.
fn start_heartbeat(h: &mut Host, p: &Packet<'_>, interned: &mut Interner) {
    let mut gap = 0;
    if p.instance == h.instance && h.received > 0 && p.seq > h.last_seq + 1 {
        // Saturating: gaps of hostile (or restarted) senders add up across instances and
        // overflowed (found by fuzzing).
        gap = p.seq - h.last_seq - 1;
        h.lost = h.lost.saturating_add(gap);
    }
    // `gap` lost (each moves the average towards 1), then this one received.
    let keep = 1.0 - 1.0 / LOSS_WINDOW as f32;
    let lost = 1.0 - (1.0 - h.loss_recent) * keep.powi(gap.min(10_000) as i32);
    h.loss_recent = if h.received > 0 { lost * keep } else { 0.0 };
    if h.received > 0 {
        let freed = h.readings.start_heartbeat(interned);
        h.bytes = h.bytes.saturating_sub(freed);
    }
    h.instance = p.instance;
    h.last_seq = p.seq;
    h.parts_seen = 0;
    h.received += 1;
}

/// Last seen, source address, deadline, and UP if it was not.
fn note_liveness(h: &mut Host, p: &Packet<'_>, src: IpAddr, now_ms: u64, events: &mut Vec<Event>) {
    if h.first_seen_ms.is_none() {
        h.first_seen_ms = Some(now_ms);
    }
    h.last_seen_ms = Some(now_ms);
    h.interval_ms = p.interval_ms;
    match h.addrs.iter_mut().find(|a| a.addr == src) {
        Some(a) => a.last_ms = now_ms,
        None => {
            if h.addrs.len() >= MAX_ADDRS {
                h.addrs.sort_by_key(|a| Reverse(a.last_ms));
                h.addrs.truncate(MAX_ADDRS - 1);
            }
            // Most hosts have one address: kept inline; more spill to the heap.
            h.addrs.push(SeenAddr {
                addr: src,
                last_ms: now_ms,
            });
        }
    }
    let span = (f64::from(p.interval_ms.max(100)) * h.grace) as u64;
    h.deadline_ms = now_ms + span.max(u64::from(p.interval_ms) + 1000);
    if h.status != Status::Up {
        let from = h.status.as_str();
        events.push(event(
            now_ms,
            p.host,
            EventKind::HostUp,
            Some(from),
            Some("UP"),
            format!("heartbeat from {src}"),
        ));
        h.status = Status::Up;
        h.since_ms = now_ms;
    }
}

/// Stores the datagram's readings (cleaned: [`crate::text`]), within the host's caps;
/// returns the summary sample (CPU, memory, fullest file system, load).
fn apply_readings(
    h: &mut Host,
    p: &Packet<'_>,
    now_ms: u64,
    settings: &Settings,
    interned: &mut Interner,
    drops: &mut ReadingDrops,
    events: &mut Vec<Event>,
) -> Sample {
    let mut pos = 0usize;
    let mut summary = Sample {
        t: (now_ms / 1000) as u32,
        cpu: f32::NAN,
        mem: f32::NAN,
        fs: f32::NAN,
        load: f32::NAN,
    };
    // Whether the host's schema is its own in this datagram (a key was added or a unit
    // or threshold changed): then it is shared again at the end.
    let mut edited = false;
    for r in &p.readings {
        let lvl = LevelName::from(r.level);
        match h.readings.find(r.key, pos) {
            Some(i) => {
                let u = Update {
                    value: r.value,
                    level: lvl,
                    message: r.message,
                    unit: r.unit,
                    threshold: r.threshold,
                };
                let (before, bytes) = h.readings.update(i, &u, interned, &mut edited);
                if before != lvl {
                    let mut e = event(
                        now_ms,
                        p.host,
                        EventKind::CheckLevel,
                        Some(before.as_str()),
                        Some(lvl.as_str()),
                        text::clean(r.message).into_owned(),
                    );
                    e.key = Some(r.key.to_string());
                    events.push(e);
                }
                h.bytes = h.bytes.saturating_add_signed(bytes);
                pos = i + 1;
            }
            None => {
                if !text::valid_key(r.key) {
                    drops.bad_key += 1;
                    continue;
                }
                if h.readings.len() >= settings.max_readings_per_host {
                    drops.host_reading_cap += 1;
                    continue;
                }
                let message = text::clean(r.message);
                let threshold = text::clean_line(r.threshold);
                let unit = text::clean_line(r.unit);
                let text_len = match r.value {
                    ValueRef::Text(t) => t.len().min(text::MAX_TEXT),
                    _ => 0,
                };
                let cost = reading_bytes(r.key, &unit, &message, &threshold, text_len);
                if h.bytes + cost > settings.max_host_bytes {
                    drops.host_byte_budget += 1;
                    continue;
                }
                let u = Update {
                    value: r.value,
                    level: lvl,
                    message: &message,
                    unit: &unit,
                    threshold: &threshold,
                };
                h.readings.push(r.key, &u, interned, &mut edited);
                h.bytes += cost;
                pos = h.readings.len();
            }
        }
        if let Some(v) = r.value_f64() {
            match r.key {
                "cpu.usage_percent" => summary.cpu = v as f32,
                "memory.used_percent" => summary.mem = v as f32,
                "cpu.load1" => summary.load = v as f32,
                k if k.starts_with("fs.")
                    && k.ends_with(".used_percent")
                    && (summary.fs.is_nan() || (v as f32) > summary.fs) =>
                {
                    summary.fs = v as f32;
                }
                _ => {}
            }
        }
    }
    if edited {
        h.readings.finish(interned);
    }
    summary
}

/// `a != b`, without calling memcmp for two empty strings: an empty `Box<str>` points
/// at a dangling address, and glibc's vectorised memcmp took 90-180 ns on it even for
/// length 0 (measured: half of all ingest time went there, bench/README.md).
#[inline]
fn differs(a: &str, b: &str) -> bool {
    a.len() != b.len() || (!a.is_empty() && a != b)
}

trait ValueF64 {
    fn value_f64(&self) -> Option<f64>;
}

impl ValueF64 for hb_proto::ReadingRef<'_> {
    fn value_f64(&self) -> Option<f64> {
        match self.value {
            ValueRef::F64(v) => Some(v),
            ValueRef::I64(v) => Some(v as f64),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests;
