//! A host's readings, stored by column: the keys (with unit and threshold) are one
//! [`Schema`] shared by every host that has the same keys in the same order, and the host
//! itself keeps only what is its own: 8 bytes of value and 1 byte of level, kind and
//! "seen" per reading, plus the rare texts (a text value, a message) in a short side list.
//!
//! A fleet of like machines has a few dozen schemas, so 30 readings cost a host about
//! 280 bytes instead of 960 (32 per reading before). A schema is copied only when a host's
//! keys change (a new key, a key gone, a new unit or threshold), at most once per datagram,
//! and shared again (interned) at the end of it.

use std::collections::{HashMap, HashSet};
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use hb_proto::ValueRef;
use serde::Serialize;

use super::{differs, LevelName, Val};

/// Interned texts, descriptions and schemas beyond this many are stored unshared.
pub(super) const MAX_INTERNED: usize = 200_000;
/// Bytes of interned texts (never freed) beyond which new ones are stored unshared: a
/// fleet's key names take a few MB; 200,000 hostile texts of 1 KiB would take 200.
pub(super) const MAX_INTERNED_TEXT_BYTES: usize = 8 << 20;
/// Keys of a schema above which it carries an index by key (below, a scan from the
/// expected position is as fast).
pub(super) const INDEX_FROM: usize = 32;

/// The kind of a stored value (the number itself is in the value bits).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    F64 = 0,
    I64 = 1,
    Bool = 2,
    Text = 3,
}

/// A reading's key with its unit and threshold, interned: shared by every host with them.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct Desc {
    key: Arc<str>,
    unit: Arc<str>,
    threshold: Arc<str>,
}

/// A host's keys in the order they came, shared by every host with the same ones.
#[derive(Debug, Clone, Default)]
pub struct Schema {
    descs: Vec<Arc<Desc>>,
    /// Position by key, when there are more than [`INDEX_FROM`] keys.
    index: Option<HashMap<Arc<str>, u32>>,
}

impl Schema {
    fn rebuild_index(&mut self) {
        self.index = (self.descs.len() > INDEX_FROM).then(|| {
            self.descs
                .iter()
                .enumerate()
                .map(|(i, d)| (d.key.clone(), i as u32))
                .collect()
        });
    }
}

/// A schema in the interning set, found by its descriptions.
#[derive(Debug)]
struct Shared(Arc<Schema>);

impl PartialEq for Shared {
    fn eq(&self, other: &Shared) -> bool {
        self.0.descs == other.0.descs
    }
}

impl Eq for Shared {}

impl Hash for Shared {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.0.descs.hash(state);
    }
}

impl std::borrow::Borrow<[Arc<Desc>]> for Shared {
    fn borrow(&self) -> &[Arc<Desc>] {
        &self.0.descs
    }
}

/// Interned texts (keys, units, thresholds, event texts), descriptions and schemas, each
/// at most [`MAX_INTERNED`] (texts also at most [`MAX_INTERNED_TEXT_BYTES`]); beyond that
/// new ones are stored unshared.
#[derive(Debug)]
pub(super) struct Interner {
    strings: HashSet<Arc<str>>,
    /// Their bytes, at most [`MAX_INTERNED_TEXT_BYTES`].
    string_bytes: usize,
    /// By the addresses of the interned key, unit and threshold: an interned text is never
    /// freed (the set holds it), so its address names it for the life of the registry.
    descs: HashMap<(usize, usize, usize), Arc<Desc>>,
    schemas: HashSet<Shared>,
    /// Schemas no host holds any more are dropped from the set when it reaches this size.
    sweep_at: usize,
    /// Text values (an OS name, a kernel version: most of a fleet has the same ones).
    /// Swept as the schemas, so what no host holds any more is freed: the set holds at
    /// most twice the texts hosts hold (at least 1,024), which their budgets count.
    values: HashSet<Arc<str>>,
    values_sweep_at: usize,
}

impl Default for Interner {
    fn default() -> Self {
        Interner {
            strings: HashSet::new(),
            string_bytes: 0,
            descs: HashMap::new(),
            schemas: HashSet::new(),
            sweep_at: 1_024,
            values: HashSet::new(),
            values_sweep_at: 1_024,
        }
    }
}

impl Interner {
    /// The shared copy of `s` (and whether it is shared).
    pub(super) fn text(&mut self, s: &str) -> (Arc<str>, bool) {
        if let Some(a) = self.strings.get(s) {
            return (a.clone(), true);
        }
        let a: Arc<str> = Arc::from(s);
        if self.strings.len() < MAX_INTERNED
            && self.string_bytes + s.len() <= MAX_INTERNED_TEXT_BYTES
        {
            self.string_bytes += s.len();
            self.strings.insert(a.clone());
            return (a, true);
        }
        (a, false)
    }

    fn desc(&mut self, key: &str, unit: &str, threshold: &str) -> Arc<Desc> {
        let (key, k) = self.text(key);
        let (unit, u) = self.text(unit);
        let (threshold, t) = self.text(threshold);
        if !(k && u && t) {
            return Arc::new(Desc {
                key,
                unit,
                threshold,
            });
        }
        let addr = |a: &Arc<str>| Arc::as_ptr(a) as *const u8 as usize;
        let id = (addr(&key), addr(&unit), addr(&threshold));
        if let Some(d) = self.descs.get(&id) {
            return d.clone();
        }
        let d = Arc::new(Desc {
            key,
            unit,
            threshold,
        });
        if self.descs.len() < MAX_INTERNED {
            self.descs.insert(id, d.clone());
        }
        d
    }

    /// A schema of the host's own to change: taken out of the set if no other host holds
    /// it, else copied (O(keys)).
    fn own<'a>(&mut self, schema: &'a mut Option<Arc<Schema>>) -> &'a mut Schema {
        let s = schema.get_or_insert_with(Arc::default);
        if Arc::strong_count(s) == 2
            && self
                .schemas
                .get(&s.descs[..])
                .is_some_and(|x| Arc::ptr_eq(&x.0, s))
        {
            self.schemas.remove(&s.descs[..]);
        }
        Arc::make_mut(s)
    }

    /// The shared copy of a schema the host changed.
    fn share(&mut self, schema: &mut Option<Arc<Schema>>) {
        let Some(s) = schema.as_mut() else { return };
        if s.descs.is_empty() {
            *schema = None;
            return;
        }
        if let Some(x) = self.schemas.get(&s.descs[..]) {
            *s = x.0.clone();
            return;
        }
        if self.schemas.len() >= self.sweep_at {
            self.schemas.retain(|x| Arc::strong_count(&x.0) > 1);
            self.sweep_at = (2 * self.schemas.len()).max(1_024);
        }
        if self.schemas.len() < MAX_INTERNED {
            self.schemas.insert(Shared(s.clone()));
        }
    }

    /// The shared copy of a text value.
    fn value(&mut self, s: &str) -> Arc<str> {
        if let Some(a) = self.values.get(s) {
            return a.clone();
        }
        if self.values.len() >= self.values_sweep_at {
            self.values.retain(|x| Arc::strong_count(x) > 1);
            self.values_sweep_at = (2 * self.values.len()).max(1_024);
        }
        let a: Arc<str> = Arc::from(s);
        if self.values.len() < MAX_INTERNED {
            self.values.insert(a.clone());
        }
        a
    }

    /// Distinct schemas shared, for the memory report.
    pub(super) fn schemas(&self) -> usize {
        self.schemas.len()
    }
}

/// What a reading has besides its number: rare (text values, messages), so kept apart.
#[derive(Debug, Clone, Default)]
struct Extra {
    /// Position of the reading.
    pos: u32,
    /// Interned ([`Interner::value`]).
    text: Arc<str>,
    message: Box<str>,
}

impl Extra {
    fn is_empty(&self) -> bool {
        self.text.is_empty() && self.message.is_empty()
    }
}

const LEVEL_MASK: u8 = 0b11;
const KIND_SHIFT: u8 = 2;
const SEEN: u8 = 1 << 4;

fn level_bits(l: LevelName) -> u8 {
    match l {
        LevelName::Ok => 0,
        LevelName::Warning => 1,
        LevelName::Critical => 2,
        LevelName::Unknown => 3,
    }
}

fn level_of(meta: u8) -> LevelName {
    match meta & LEVEL_MASK {
        0 => LevelName::Ok,
        1 => LevelName::Warning,
        2 => LevelName::Critical,
        _ => LevelName::Unknown,
    }
}

fn kind_of(meta: u8) -> Kind {
    match (meta >> KIND_SHIFT) & 0b11 {
        0 => Kind::F64,
        1 => Kind::I64,
        2 => Kind::Bool,
        _ => Kind::Text,
    }
}

/// A host's readings (see the module).
#[derive(Debug, Clone, Default)]
pub struct Readings {
    schema: Option<Arc<Schema>>,
    /// One allocation for the values and their meta bytes: the value bits of the n
    /// readings (the schema's length), then their meta bytes, 8 to a word: level (2
    /// bits), kind (2 bits) and whether the current heartbeat carried it.
    cols: Vec<u64>,
    /// Sorted by position.
    extras: Vec<Extra>,
}

/// One stored reading, read through its methods; JSON as `{key, value, unit, level,
/// message, threshold}`.
#[derive(Debug, Clone, Copy)]
pub struct Reading<'a> {
    desc: &'a Desc,
    bits: u64,
    kind: Kind,
    extra: Option<&'a Extra>,
    pub level: LevelName,
}

impl<'a> Reading<'a> {
    pub fn key(&self) -> &'a str {
        &self.desc.key
    }

    /// The interned key, shared by every host with this key.
    pub fn key_arc(&self) -> &'a Arc<str> {
        &self.desc.key
    }

    pub fn unit(&self) -> &'a str {
        &self.desc.unit
    }

    pub fn threshold(&self) -> &'a str {
        &self.desc.threshold
    }

    pub fn message(&self) -> &'a str {
        self.extra.map_or("", |e| &e.message)
    }

    fn text(&self) -> &'a str {
        self.extra.map_or("", |e| &e.text)
    }

    pub fn value(&self) -> Val {
        match self.kind {
            Kind::F64 => Val::F64(f64::from_bits(self.bits)),
            Kind::I64 => Val::I64(self.bits as i64),
            Kind::Bool => Val::Bool(self.bits != 0),
            Kind::Text => Val::Text(self.text().into()),
        }
    }

    /// The value as a number, if it is one (text is not).
    pub fn number(&self) -> Option<f64> {
        match self.kind {
            Kind::F64 => Some(f64::from_bits(self.bits)),
            Kind::I64 => Some(self.bits as i64 as f64),
            Kind::Bool => Some(f64::from(u8::from(self.bits != 0))),
            Kind::Text => None,
        }
    }

    /// What it counts for in a host's byte budget ([`super::reading_bytes`]).
    pub(super) fn stored_bytes(&self) -> usize {
        super::reading_bytes(
            self.key(),
            self.unit(),
            self.message(),
            self.threshold(),
            self.text().len(),
        )
    }
}

/// A reading copied out of the registry, to be serialized after its lock is released
/// (JSON as [`Reading`]).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OwnedReading {
    pub key: Arc<str>,
    pub value: Val,
    pub unit: Arc<str>,
    pub level: LevelName,
    pub message: Box<str>,
    pub threshold: Arc<str>,
}

impl Reading<'_> {
    pub fn to_owned(&self) -> OwnedReading {
        OwnedReading {
            key: self.desc.key.clone(),
            value: self.value(),
            unit: self.desc.unit.clone(),
            level: self.level,
            message: self.message().into(),
            threshold: self.desc.threshold.clone(),
        }
    }
}

impl Serialize for Reading<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut st = s.serialize_struct("Reading", 6)?;
        st.serialize_field("key", self.key())?;
        st.serialize_field("value", &self.value())?;
        st.serialize_field("unit", self.unit())?;
        st.serialize_field("level", &self.level)?;
        st.serialize_field("message", self.message())?;
        st.serialize_field("threshold", self.threshold())?;
        st.end()
    }
}

/// What a datagram brings for one reading.
pub(super) struct Update<'p> {
    pub value: ValueRef<'p>,
    pub level: LevelName,
    /// Cleaned already, as are `unit` and `threshold`, except in [`Readings::update`].
    pub message: &'p str,
    pub unit: &'p str,
    pub threshold: &'p str,
}

impl Readings {
    pub fn len(&self) -> usize {
        self.descs().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn val(&self, i: usize) -> Option<u64> {
        (i < self.len())
            .then(|| self.cols.get(i).copied())
            .flatten()
    }

    fn meta(&self, i: usize) -> Option<u8> {
        let n = self.len();
        if i >= n {
            return None;
        }
        let w = self.cols.get(n + i / 8)?;
        Some((w >> (8 * (i % 8))) as u8)
    }

    fn set_meta(&mut self, i: usize, m: u8) {
        let n = self.len();
        if let Some(w) = self.cols.get_mut(n + i / 8) {
            let shift = 8 * (i % 8);
            *w = (*w & !(0xff << shift)) | u64::from(m) << shift;
        }
    }

    fn metas(&self) -> impl Iterator<Item = u8> + '_ {
        (0..self.len()).map(|i| self.meta(i).unwrap_or(0))
    }

    fn clear_seen(&mut self) {
        let n = self.len();
        let seen = u64::from_ne_bytes([SEEN; 8]);
        for w in self.cols.iter_mut().skip(n) {
            *w &= !seen;
        }
    }

    fn descs(&self) -> &[Arc<Desc>] {
        self.schema.as_deref().map_or(&[], |s| &s.descs)
    }

    fn extra(&self, i: usize) -> Option<&Extra> {
        self.extras
            .binary_search_by_key(&(i as u32), |e| e.pos)
            .ok()
            .map(|j| &self.extras[j])
    }

    pub fn get(&self, i: usize) -> Option<Reading<'_>> {
        let desc = self.descs().get(i)?;
        let meta = self.meta(i)?;
        Some(Reading {
            desc,
            bits: self.val(i)?,
            kind: kind_of(meta),
            extra: self.extra(i),
            level: level_of(meta),
        })
    }

    pub fn iter(&self) -> Iter<'_> {
        Iter {
            r: self,
            front: 0,
            back: self.len(),
        }
    }

    /// Where the reading with `key` is: at `pos` (keys usually come in the same order as
    /// last time), else by the index, else by a short scan.
    pub(super) fn find(&self, key: &str, pos: usize) -> Option<usize> {
        let s = self.schema.as_deref()?;
        if s.descs.get(pos).is_some_and(|d| &*d.key == key) {
            return Some(pos);
        }
        match &s.index {
            Some(ix) => ix.get(key).map(|&i| i as usize),
            None => s.descs.iter().position(|d| &*d.key == key),
        }
    }

    /// Sets reading `i` from `u`, whose texts are as the datagram has them (cleaned here
    /// when they differ from what is stored), and marks it carried by the current
    /// heartbeat. Returns its level before and the change of its bytes in the host's
    /// budget. `edited` says whether the host's schema is its own for this datagram (it
    /// is made so when the unit or threshold changed).
    pub(super) fn update(
        &mut self,
        i: usize,
        u: &Update<'_>,
        interned: &mut Interner,
        edited: &mut bool,
    ) -> (LevelName, isize) {
        let before = level_of(self.meta(i).unwrap_or(0));
        let Some(desc) = self.descs().get(i) else {
            return (before, 0);
        };
        let extra = self.extra(i);
        let texts_may_change = differs(&desc.unit, u.unit)
            || differs(&desc.threshold, u.threshold)
            || differs(extra.map_or("", |e| &e.message), u.message)
            || extra.is_some()
            || matches!(u.value, ValueRef::Text(_));
        if !texts_may_change {
            // The common case: a number, no texts; nothing to clean, compare or count.
            self.set(i, u, interned);
            return (before, 0);
        }
        let bytes_before = self.get(i).map_or(0, |r| r.stored_bytes());
        let (unit, threshold) = (
            super::text::clean_line(u.unit),
            super::text::clean_line(u.threshold),
        );
        let message = super::text::clean(u.message);
        if let Some(desc) = self.descs().get(i) {
            if differs(&desc.unit, &unit) || differs(&desc.threshold, &threshold) {
                let key = desc.key.clone();
                let d = interned.desc(&key, &unit, &threshold);
                if !*edited {
                    interned.own(&mut self.schema);
                    *edited = true;
                }
                if let Some(s) = self.schema.as_mut().and_then(Arc::get_mut) {
                    s.descs[i] = d;
                }
            }
        }
        let cleaned = Update {
            value: u.value,
            level: u.level,
            message: &message,
            unit: &unit,
            threshold: &threshold,
        };
        self.set(i, &cleaned, interned);
        let bytes_after = self.get(i).map_or(0, |r| r.stored_bytes());
        (before, bytes_after as isize - bytes_before as isize)
    }

    /// Appends a reading of a key the host does not have.
    pub(super) fn push(
        &mut self,
        key: &str,
        u: &Update<'_>,
        interned: &mut Interner,
        edited: &mut bool,
    ) {
        let d = interned.desc(key, u.unit, u.threshold);
        if !*edited {
            interned.own(&mut self.schema);
            *edited = true;
        }
        let Some(s) = self.schema.as_mut().and_then(Arc::get_mut) else {
            return;
        };
        let i = s.descs.len();
        if let Some(ix) = s.index.as_mut() {
            ix.insert(d.key.clone(), i as u32);
        }
        s.descs.push(d);
        if s.index.is_none() && s.descs.len() > INDEX_FROM {
            s.rebuild_index();
        }
        // The new value goes before the meta words; a ninth meta byte needs a new word.
        self.cols.insert(i.min(self.cols.len()), 0);
        if (i + 1).div_ceil(8) > i.div_ceil(8) {
            self.cols.push(0);
        }
        self.set(i, u, interned);
    }

    /// Value, kind, level and message of reading `i`; marks it seen.
    fn set(&mut self, i: usize, u: &Update<'_>, interned: &mut Interner) {
        let (kind, bits, text) = match u.value {
            ValueRef::F64(x) => (Kind::F64, x.to_bits(), None),
            ValueRef::I64(x) => (Kind::I64, x as u64, None),
            ValueRef::Bool(b) => (Kind::Bool, u64::from(b), None),
            ValueRef::Text(t) => (Kind::Text, 0, Some(t)),
        };
        if let Some(v) = self.cols.get_mut(i) {
            *v = bits;
        }
        self.set_meta(i, level_bits(u.level) | (kind as u8) << KIND_SHIFT | SEEN);
        let text = text.map(super::text::clean);
        let at = self.extras.binary_search_by_key(&(i as u32), |e| e.pos);
        let wanted = text.as_ref().is_some_and(|t| !t.is_empty()) || !u.message.is_empty();
        match at {
            Ok(j) => {
                let e = &mut self.extras[j];
                match text {
                    // Texts (OS name, kernel) rarely change: keep the allocation.
                    Some(t) if differs(&e.text, &t) => e.text = interned.value(&t),
                    Some(_) => {}
                    None => e.text = Arc::default(),
                }
                if differs(&e.message, u.message) {
                    e.message = u.message.into();
                }
                if e.is_empty() {
                    self.extras.remove(j);
                }
            }
            Err(j) if wanted => {
                self.extras.insert(
                    j,
                    Extra {
                        pos: i as u32,
                        text: text.map_or_else(Arc::default, |t| interned.value(&t)),
                        message: u.message.into(),
                    },
                );
            }
            Err(_) => {}
        }
    }

    /// A new heartbeat begins: the readings the previous one did not carry are dropped
    /// (returns the bytes they counted for), the rest marked not yet carried.
    pub(super) fn start_heartbeat(&mut self, interned: &mut Interner) -> usize {
        if self.metas().all(|m| m & SEEN != 0) {
            self.clear_seen();
            return 0;
        }
        let keep: Vec<bool> = self.metas().map(|m| m & SEEN != 0).collect();
        let freed: usize = (0..self.len())
            .filter(|&i| !keep[i])
            .filter_map(|i| self.get(i))
            .map(|r| r.stored_bytes())
            .sum();
        let kept: Vec<(u64, u8)> = (0..self.len())
            .filter(|&i| keep[i])
            .map(|i| (self.val(i).unwrap_or(0), self.meta(i).unwrap_or(0) & !SEEN))
            .collect();
        // New positions of the kept readings.
        let mut to = Vec::with_capacity(keep.len());
        let mut n = 0u32;
        for &k in &keep {
            to.push(n);
            n += u32::from(k);
        }
        {
            let s = interned.own(&mut self.schema);
            let mut it = keep.iter();
            s.descs.retain(|_| it.next().copied().unwrap_or(false));
            s.rebuild_index();
        }
        let n = kept.len();
        self.cols.clear();
        self.cols.extend(kept.iter().map(|(v, _)| *v));
        self.cols.resize(n + n.div_ceil(8), 0);
        for (i, (_, m)) in kept.iter().enumerate() {
            self.set_meta(i, *m);
        }
        self.extras.retain_mut(|e| {
            let k = keep.get(e.pos as usize).copied().unwrap_or(false);
            if let Some(&p) = to.get(e.pos as usize) {
                e.pos = p;
            }
            k
        });
        interned.share(&mut self.schema);
        self.shrink();
        freed
    }

    /// Ends a datagram that changed the keys: the schema is shared again, no room kept.
    pub(super) fn finish(&mut self, interned: &mut Interner) {
        interned.share(&mut self.schema);
        self.shrink();
    }

    fn shrink(&mut self) {
        // No room kept for more keys: most hosts send the same ones every time.
        self.cols.shrink_to_fit();
        self.extras.shrink_to_fit();
    }

    /// Whether its schema has an index by key.
    #[cfg(test)]
    pub(super) fn indexed(&self) -> bool {
        self.schema.as_ref().is_some_and(|s| s.index.is_some())
    }

    /// Heap bytes of what the host holds itself (the schema is counted once per schema).
    pub(super) fn own_bytes(&self) -> (usize, usize) {
        let cols = self.cols.capacity() * 8;
        // Text values are shared: counted once, in the interner.
        let extras = self.extras.capacity() * std::mem::size_of::<Extra>()
            + self.extras.iter().map(|e| e.message.len()).sum::<usize>();
        (cols, extras)
    }
}

/// The readings of a host in order.
pub struct Iter<'a> {
    r: &'a Readings,
    front: usize,
    back: usize,
}

impl<'a> Iterator for Iter<'a> {
    type Item = Reading<'a>;

    fn next(&mut self) -> Option<Reading<'a>> {
        if self.front >= self.back {
            return None;
        }
        self.front += 1;
        self.r.get(self.front - 1)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let n = self.back - self.front;
        (n, Some(n))
    }
}

impl DoubleEndedIterator for Iter<'_> {
    fn next_back(&mut self) -> Option<Self::Item> {
        if self.front >= self.back {
            return None;
        }
        self.back -= 1;
        self.r.get(self.back)
    }
}

impl ExactSizeIterator for Iter<'_> {}

impl<'a> IntoIterator for &'a Readings {
    type Item = Reading<'a>;
    type IntoIter = Iter<'a>;

    fn into_iter(self) -> Iter<'a> {
        self.iter()
    }
}
