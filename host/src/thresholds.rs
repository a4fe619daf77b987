//! Alert thresholds: Nagios ranges, the `thresholds:` config section, and the level of each
//! reading key over time.
//!
//! A reading's level is the worse of what its threshold rule says and what the plugin said
//! itself; [`LevelTracker`] then only reports a change of level once it has been seen for
//! `samples` consecutive evaluations, so a value hovering around a threshold does not flap.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};

use hbc_plugin_api::{Level, Reading};
use serde::de::{self, Deserializer, Visitor};
use serde::Deserialize;
use thiserror::Error;

/// The accepted range forms, shown in every range error.
const RANGE_FORMS: &str = "N (alert outside 0..N), N: (alert below N), ~:N (alert above N), \
                           N:M (alert outside N..M), @N:M (alert inside N..M)";

// ---------------------------------------------------------------------------------------------
// Nagios ranges
// ---------------------------------------------------------------------------------------------

/// A Nagios threshold range, as in the Nagios plugin development guidelines.
///
/// | text     | alerts when          |
/// |----------|----------------------|
/// | `10`     | `v < 0` or `v > 10`  |
/// | `10:`    | `v < 10`             |
/// | `~:10`   | `v > 10`             |
/// | `10:20`  | `v < 10` or `v > 20` |
/// | `@10:20` | `10 <= v <= 20`      |
///
/// Ends are inclusive: the range holds `start <= v <= end`. `start` may be minus infinity
/// (`~`) and `end` plus infinity (an empty end); both are otherwise finite and
/// `start <= end`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Range {
    start: f64,
    end: f64,
    inside: bool,
}

impl Range {
    /// The lower end; `f64::NEG_INFINITY` for `~`.
    pub fn start(&self) -> f64 {
        self.start
    }

    /// The upper end; `f64::INFINITY` when the end was left empty.
    pub fn end(&self) -> f64 {
        self.end
    }

    /// True for `@` ranges, which alert inside the range instead of outside it.
    pub fn inside(&self) -> bool {
        self.inside
    }

    /// Whether `v` raises an alert. NaN is in no range, so an ordinary range alerts on it
    /// and an `@` range does not; [`LevelTracker`] never gets here with NaN.
    pub fn alerts(&self, v: f64) -> bool {
        let within = self.start <= v && v <= self.end;
        within == self.inside
    }
}

/// Parses a Nagios range; the same as `text.parse::<Range>()`.
pub fn parse_range(text: &str) -> Result<Range, RangeError> {
    let error = |kind| RangeError {
        text: text.to_string(),
        kind,
    };
    let body = text.trim();
    if body.is_empty() {
        return Err(error(RangeErrorKind::Empty));
    }
    let (inside, body) = match body.strip_prefix('@') {
        Some(rest) => (true, rest.trim()),
        None => (false, body),
    };
    if body.is_empty() {
        return Err(error(RangeErrorKind::EmptyAfterAt));
    }
    let (start, end) = match body.split_once(':') {
        None => (0.0, parse_bound(body).map_err(error)?),
        Some((start, end)) => {
            if end.contains(':') {
                return Err(error(RangeErrorKind::TooManyColons));
            }
            let (start, end) = (start.trim(), end.trim());
            let start = match start {
                "~" => f64::NEG_INFINITY,
                // The C library reads an empty start as 0, which is rarely what `:10` meant.
                "" => return Err(error(RangeErrorKind::EmptyStart)),
                _ => parse_bound(start).map_err(error)?,
            };
            let end = if end.is_empty() {
                f64::INFINITY
            } else {
                parse_bound(end).map_err(error)?
            };
            (start, end)
        }
    };
    if start > end {
        return Err(error(RangeErrorKind::StartAfterEnd { start, end }));
    }
    Ok(Range { start, end, inside })
}

/// One finite number of a range.
fn parse_bound(text: &str) -> Result<f64, RangeErrorKind> {
    if text == "~" {
        return Err(RangeErrorKind::MisplacedTilde);
    }
    match text.parse::<f64>() {
        Ok(v) if v.is_finite() => Ok(v),
        Ok(_) => Err(RangeErrorKind::NotFinite(text.to_string())),
        Err(_) => Err(RangeErrorKind::NotANumber(text.to_string())),
    }
}

impl FromStr for Range {
    type Err = RangeError;

    fn from_str(text: &str) -> Result<Range, RangeError> {
        parse_range(text)
    }
}

/// The canonical text: `10`, `10:`, `~:10`, `10:20`, `@10:20`; it parses back to the same range.
impl fmt::Display for Range {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.inside {
            f.write_str("@")?;
        }
        let open_start = self.start == f64::NEG_INFINITY;
        let open_end = self.end == f64::INFINITY;
        match (open_start, open_end) {
            (true, true) => f.write_str("~:"),
            (true, false) => write!(f, "~:{}", self.end),
            (false, true) => write!(f, "{}:", self.start),
            (false, false) if self.start == 0.0 => write!(f, "{}", self.end),
            (false, false) => write!(f, "{}:{}", self.start, self.end),
        }
    }
}

/// A range that could not be parsed: the text, what is wrong with it, and the accepted forms.
#[derive(Debug, Clone, PartialEq, Error)]
#[error("invalid range {text:?}: {kind}; accepted forms are {RANGE_FORMS}")]
pub struct RangeError {
    /// The text as given.
    pub text: String,
    pub kind: RangeErrorKind,
}

/// What is wrong with a range.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum RangeErrorKind {
    #[error("it is empty")]
    Empty,
    #[error("nothing follows '@'")]
    EmptyAfterAt,
    #[error("it has more than one ':'")]
    TooManyColons,
    #[error("the start before ':' is empty (write ~:N for no lower bound, 0:N for 0)")]
    EmptyStart,
    #[error("'~' (no lower bound) can only be the start, before ':'")]
    MisplacedTilde,
    #[error("{0:?} is not a number")]
    NotANumber(String),
    #[error(
        "{0:?} is not a finite number (write ~ for no lower bound, nothing for no upper bound)"
    )]
    NotFinite(String),
    #[error("the start {start} is greater than the end {end}")]
    StartAfterEnd { start: f64, end: f64 },
}

// ---------------------------------------------------------------------------------------------
// Config
// ---------------------------------------------------------------------------------------------

/// One entry of the `thresholds:` config map, keyed by a reading key or a `*` pattern.
///
/// `warn` and `crit` are Nagios ranges; a plain number is accepted too (`warn: 80`).
/// In YAML a range starting with `@` must be quoted (`warn: "@0:5"`), since `@` is reserved
/// there.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct ThresholdSpec {
    #[serde(default, deserialize_with = "range_text")]
    pub warn: Option<String>,
    #[serde(default, deserialize_with = "range_text")]
    pub crit: Option<String>,
    /// Consecutive samples needed to change level; the global default when absent.
    #[serde(default)]
    pub samples: Option<u32>,
}

/// Reads a range given as text or as a number, into its text form.
fn range_text<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<String>, D::Error> {
    struct RangeText;

    impl<'de> Visitor<'de> for RangeText {
        type Value = Option<String>;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a Nagios range such as 80, \"10:20\" or \"@0:5\" (text or a number)")
        }

        fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }

        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }

        fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
            d.deserialize_any(RangeText)
        }

        fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
            Ok(Some(v.to_string()))
        }

        fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
            Ok(Some(v))
        }

        fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
            Ok(Some(v.to_string()))
        }

        fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
            Ok(Some(v.to_string()))
        }

        fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
            Ok(Some(v.to_string()))
        }
    }

    deserializer.deserialize_option(RangeText)
}

/// Which of a rule's two ranges an error is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bound {
    Warn,
    Crit,
}

impl fmt::Display for Bound {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Bound::Warn => "warn",
            Bound::Crit => "crit",
        })
    }
}

/// A `thresholds:` section that cannot be used.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum ThresholdError {
    // The range error is part of the message rather than a `source`, so it shows however
    // the error is printed.
    #[error("threshold {pattern:?}: {bound}: {error}")]
    BadRange {
        pattern: String,
        bound: Bound,
        error: RangeError,
    },
    #[error("threshold {pattern:?}: samples must be at least 1")]
    ZeroSamples { pattern: String },
    #[error("a threshold has an empty key pattern")]
    EmptyPattern,
    #[error("the default number of threshold samples must be at least 1")]
    ZeroDefaultSamples,
}

// ---------------------------------------------------------------------------------------------
// Compiled thresholds
// ---------------------------------------------------------------------------------------------

/// One compiled threshold entry.
#[derive(Debug, Clone, PartialEq)]
pub struct Rule {
    pattern: String,
    warn: Option<Range>,
    crit: Option<Range>,
    samples: u32,
    /// `warn=80 crit=95`, precomputed since every evaluation reports it.
    text: String,
}

impl Rule {
    /// The key or `*` pattern it was configured under.
    pub fn pattern(&self) -> &str {
        &self.pattern
    }

    pub fn warn(&self) -> Option<&Range> {
        self.warn.as_ref()
    }

    pub fn crit(&self) -> Option<&Range> {
        self.crit.as_ref()
    }

    /// Consecutive samples needed to change level (the global default if not configured).
    pub fn samples(&self) -> u32 {
        self.samples
    }

    /// `warn=80 crit=95`, `crit=@0:5`, or empty when the rule only sets `samples`.
    pub fn threshold_text(&self) -> &str {
        &self.text
    }

    /// Whether the rule has a range to check values against.
    pub fn has_ranges(&self) -> bool {
        self.warn.is_some() || self.crit.is_some()
    }

    /// The level of a numeric value: CRITICAL if `crit` alerts, else WARNING if `warn`
    /// alerts, else OK.
    pub fn check(&self, v: f64) -> Level {
        if self.crit.is_some_and(|r| r.alerts(v)) {
            Level::Critical
        } else if self.warn.is_some_and(|r| r.alerts(v)) {
            Level::Warning
        } else {
            Level::Ok
        }
    }
}

/// Identifies a compiled [`Thresholds`], so a [`LevelTracker`] notices a reload and drops
/// the rule resolutions it cached for the old one.
static NEXT_THRESHOLDS_ID: AtomicU64 = AtomicU64::new(1);

/// The `thresholds:` section, compiled: exact keys and `*` patterns with parsed ranges.
///
/// A key's rule is the exact entry for it if there is one; otherwise the matching pattern
/// with the most non-`*` characters, ties going to the first in sorted order. `*` matches
/// any run of characters, dots and slashes included. [`Thresholds::resolve`] does that
/// search; [`LevelTracker`] caches its result per key.
#[derive(Debug, Clone)]
pub struct Thresholds {
    id: u64,
    rules: Vec<Rule>,
    exact: HashMap<String, usize>,
    /// Indices of pattern rules, most specific first.
    globs: Vec<usize>,
    default_samples: u32,
}

impl Default for Thresholds {
    /// No rules, one sample.
    fn default() -> Thresholds {
        Thresholds {
            id: 0,
            rules: Vec::new(),
            exact: HashMap::new(),
            globs: Vec::new(),
            default_samples: 1,
        }
    }
}

impl Thresholds {
    /// Parses every range; `default_samples` (at least 1) applies to rules without
    /// `samples` and to keys without a rule.
    pub fn compile(
        map: &BTreeMap<String, ThresholdSpec>,
        default_samples: u32,
    ) -> Result<Thresholds, ThresholdError> {
        if default_samples == 0 {
            return Err(ThresholdError::ZeroDefaultSamples);
        }
        let mut rules = Vec::with_capacity(map.len());
        let mut exact = HashMap::new();
        let mut globs = Vec::new();
        for (pattern, spec) in map {
            if pattern.is_empty() {
                return Err(ThresholdError::EmptyPattern);
            }
            let range = |text: &Option<String>, bound| {
                text.as_deref()
                    .map(|t| {
                        parse_range(t).map_err(|error| ThresholdError::BadRange {
                            pattern: pattern.clone(),
                            bound,
                            error,
                        })
                    })
                    .transpose()
            };
            let warn = range(&spec.warn, Bound::Warn)?;
            let crit = range(&spec.crit, Bound::Crit)?;
            let samples = match spec.samples {
                Some(0) => {
                    return Err(ThresholdError::ZeroSamples {
                        pattern: pattern.clone(),
                    })
                }
                Some(n) => n,
                None => default_samples,
            };
            let text = [("warn", warn), ("crit", crit)]
                .iter()
                .filter_map(|(name, r)| r.map(|r| format!("{name}={r}")))
                .collect::<Vec<_>>()
                .join(" ");
            let index = rules.len();
            rules.push(Rule {
                pattern: pattern.clone(),
                warn,
                crit,
                samples,
                text,
            });
            if pattern.contains('*') {
                globs.push(index);
            } else {
                exact.insert(pattern.clone(), index);
            }
        }
        // Stable, so equally specific patterns keep the map's sorted order.
        globs.sort_by_key(|&i| std::cmp::Reverse(specificity(&rules[i].pattern)));
        Ok(Thresholds {
            id: NEXT_THRESHOLDS_ID.fetch_add(1, Ordering::Relaxed),
            rules,
            exact,
            globs,
            default_samples,
        })
    }

    /// The rule for `key`, searched afresh; see the type's docs for the precedence.
    pub fn resolve(&self, key: &str) -> Option<&Rule> {
        self.resolve_index(key).and_then(|i| self.rules.get(i))
    }

    fn resolve_index(&self, key: &str) -> Option<usize> {
        if let Some(&i) = self.exact.get(key) {
            return Some(i);
        }
        self.globs
            .iter()
            .copied()
            .find(|&i| glob_matches(self.rules[i].pattern.as_bytes(), key.as_bytes()))
    }

    /// Samples for keys without a rule and rules without their own.
    pub fn default_samples(&self) -> u32 {
        self.default_samples
    }

    /// All rules, in the sorted order of their patterns.
    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }
}

/// How specific a pattern is: its number of non-`*` characters.
fn specificity(pattern: &str) -> usize {
    pattern.chars().filter(|&c| c != '*').count()
}

/// Whether `text` matches `pattern`, where `*` matches any run of bytes. Working on bytes is
/// exact for UTF-8, since the literal parts must match whole characters at their positions.
fn glob_matches(pattern: &[u8], text: &[u8]) -> bool {
    let (mut p, mut t) = (0, 0);
    // After a `*`: where the pattern resumes, and the text position the `*` has eaten up to.
    let mut backtrack: Option<(usize, usize)> = None;
    while t < text.len() {
        match pattern.get(p) {
            Some(b'*') => {
                p += 1;
                backtrack = Some((p, t));
            }
            Some(&c) if c == text[t] => {
                p += 1;
                t += 1;
            }
            _ => match backtrack {
                Some((resume, eaten)) => {
                    p = resume;
                    t = eaten + 1;
                    backtrack = Some((resume, eaten + 1));
                }
                None => return false,
            },
        }
    }
    pattern[p..].iter().all(|&c| c == b'*')
}

// ---------------------------------------------------------------------------------------------
// Levels over time
// ---------------------------------------------------------------------------------------------

/// The level of one reading after thresholds and the consecutive-sample rule.
#[derive(Debug, Clone, PartialEq)]
pub struct Evaluated {
    pub level: Level,
    /// The rule's ranges, `warn=80 crit=95`, or empty when no rule (or no range) applies.
    pub threshold: String,
    /// Why the threshold check gave UNKNOWN (`threshold on non-numeric reading`); only set
    /// while that evaluation is the reported level.
    pub message: Option<String>,
}

/// The state of one key.
#[derive(Debug, Clone, Copy)]
struct KeyState {
    /// The reported level.
    current: Level,
    /// The latest raw level, and for how many consecutive evaluations it has been seen.
    candidate: Level,
    count: u32,
    /// The cycle this key was last evaluated in.
    cycle: u64,
    /// The cached rule resolution, and the [`Thresholds`] it was made for.
    rule: Option<usize>,
    rule_for: u64,
}

impl KeyState {
    /// Records a raw level and returns the level to report.
    fn observe(&mut self, raw: Level, samples: u32) -> Level {
        if raw == self.candidate {
            self.count = self.count.saturating_add(1);
        } else {
            self.candidate = raw;
            self.count = 1;
        }
        if self.candidate != self.current && self.count >= samples {
            self.current = self.candidate;
        }
        self.current
    }
}

/// What threshold evaluation looks at in a reading: its key, its value as a number (`None`
/// for text; booleans are 0 and 1) and the level its plugin gave it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Observed<'a> {
    pub key: &'a str,
    pub number: Option<f64>,
    pub state: Option<Level>,
}

impl<'a> Observed<'a> {
    pub fn of(reading: &'a Reading) -> Observed<'a> {
        Observed {
            key: reading.key.as_str(),
            number: reading.value.as_f64(),
            state: reading.state.into_option(),
        }
    }
}

/// Reported levels per reading key, with hysteresis against flapping.
///
/// A key's reported level changes only once a different raw level has been seen for
/// `samples` consecutive evaluations (the matching rule's `samples`, else the default);
/// any change of raw level in between starts the count again. The rule is symmetric:
/// recovering to OK takes as many samples as escalating. `samples: 1` reports every change
/// at once, and the first evaluation of a key is reported as is, having nothing to hold
/// against.
///
/// Call [`LevelTracker::end_cycle`] after each round of evaluations so keys that stopped
/// appearing are forgotten.
#[derive(Debug, Default)]
pub struct LevelTracker {
    states: HashMap<String, KeyState>,
    cycle: u64,
}

impl LevelTracker {
    pub fn new() -> LevelTracker {
        LevelTracker::default()
    }

    /// The level to report for `reading`, updating the key's history.
    pub fn evaluate(&mut self, thresholds: &Thresholds, reading: &Reading) -> Evaluated {
        self.observe(thresholds, Observed::of(reading))
    }

    /// [`LevelTracker::evaluate`] for what it looks at of a reading (the heartbeat loop
    /// has its own copy of each reading and does not build the plugin type for this).
    pub fn observe(&mut self, thresholds: &Thresholds, reading: Observed<'_>) -> Evaluated {
        let key = reading.key;
        // One lookup: the rule cached with the key's history, if still current.
        let state = self.states.get_mut(key);
        let rule_index = match &state {
            Some(state) if state.rule_for == thresholds.id => state.rule,
            _ => thresholds.resolve_index(key),
        };
        let rule = rule_index.and_then(|i| thresholds.rules.get(i));
        let (raw, message) = raw_level(rule, reading.number, reading.state);
        let samples = rule.map_or(thresholds.default_samples, |r| r.samples);

        let level = match state {
            Some(state) => {
                state.rule = rule_index;
                state.rule_for = thresholds.id;
                state.cycle = self.cycle;
                let before = state.current;
                let level = state.observe(raw, samples);
                if level != before {
                    tracing::debug!(key, from = %before, to = %level, samples, "level changed");
                }
                level
            }
            None => {
                self.states.insert(
                    key.to_string(),
                    KeyState {
                        current: raw,
                        candidate: raw,
                        count: 1,
                        cycle: self.cycle,
                        rule: rule_index,
                        rule_for: thresholds.id,
                    },
                );
                raw
            }
        };
        Evaluated {
            level,
            threshold: rule.map(|r| r.text.clone()).unwrap_or_default(),
            message: message.filter(|_| level == raw),
        }
    }

    /// Ends a round of evaluations: forgets every key not evaluated since the previous
    /// call, and returns how many. With plugins on different schedules, keep one tracker
    /// per plugin (or per schedule) so a round only covers keys that were due.
    pub fn end_cycle(&mut self) -> usize {
        let cycle = self.cycle;
        let before = self.states.len();
        self.states.retain(|_, state| state.cycle == cycle);
        self.cycle = self.cycle.wrapping_add(1);
        before - self.states.len()
    }

    /// Forgets one key; true if it was known.
    pub fn forget(&mut self, key: &str) -> bool {
        self.states.remove(key).is_some()
    }

    /// The level currently reported for `key`.
    pub fn level(&self, key: &str) -> Option<Level> {
        self.states.get(key).map(|state| state.current)
    }

    /// How many keys have history.
    pub fn len(&self) -> usize {
        self.states.len()
    }

    pub fn is_empty(&self) -> bool {
        self.states.is_empty()
    }
}

/// The level of one evaluation before the sample rule, with a message when it is UNKNOWN
/// because the threshold could not be checked.
fn raw_level(
    rule: Option<&Rule>,
    number: Option<f64>,
    state: Option<Level>,
) -> (Level, Option<String>) {
    let (level, message) = match rule {
        Some(rule) if rule.has_ranges() => match number {
            Some(v) if v.is_nan() => (Level::Unknown, Some("threshold on NaN reading")),
            Some(v) => (rule.check(v), None),
            None => (Level::Unknown, Some("threshold on non-numeric reading")),
        },
        _ => (Level::Ok, None),
    };
    let level = match state {
        Some(state) => level.worst(state),
        None => level,
    };
    (level, message.map(str::to_string))
}

/// The worst of `levels` by [`Level::worst`]; OK when there are none.
pub fn overall(levels: impl Iterator<Item = Level>) -> Level {
    levels.fold(Level::Ok, Level::worst)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn range(text: &str) -> Range {
        parse_range(text).unwrap_or_else(|e| panic!("{text:?} should parse: {e}"))
    }

    fn range_error(text: &str) -> RangeError {
        match parse_range(text) {
            Ok(r) => panic!("{text:?} should not parse, got {r:?}"),
            Err(e) => e,
        }
    }

    // --- ranges ---

    #[test]
    fn plain_number_alerts_outside_zero_to_n() {
        let r = range("10");
        assert_eq!((r.start(), r.end(), r.inside()), (0.0, 10.0, false));
        for v in [0.0, 5.0, 10.0] {
            assert!(!r.alerts(v), "{v}");
        }
        for v in [10.0001, -0.1, -1e9, 1e9] {
            assert!(r.alerts(v), "{v}");
        }
    }

    #[test]
    fn open_end_alerts_below_start() {
        let r = range("10:");
        assert_eq!((r.start(), r.end()), (10.0, f64::INFINITY));
        assert!(r.alerts(9.999));
        assert!(r.alerts(-5.0));
        assert!(!r.alerts(10.0));
        assert!(!r.alerts(1e300));
        assert!(!r.alerts(f64::INFINITY));
    }

    #[test]
    fn tilde_start_alerts_above_end() {
        let r = range("~:10");
        assert_eq!((r.start(), r.end()), (f64::NEG_INFINITY, 10.0));
        assert!(!r.alerts(10.0));
        assert!(!r.alerts(-1e300));
        assert!(!r.alerts(f64::NEG_INFINITY));
        assert!(r.alerts(10.0001));
    }

    #[test]
    fn start_end_alerts_outside_inclusive() {
        let r = range("10:20");
        assert!(!r.alerts(10.0));
        assert!(!r.alerts(15.0));
        assert!(!r.alerts(20.0));
        assert!(r.alerts(9.9999));
        assert!(r.alerts(20.0001));
    }

    #[test]
    fn at_alerts_inside_inclusive() {
        let r = range("@10:20");
        assert!(r.inside());
        assert!(r.alerts(10.0));
        assert!(r.alerts(15.0));
        assert!(r.alerts(20.0));
        assert!(!r.alerts(9.9999));
        assert!(!r.alerts(20.0001));
    }

    #[test]
    fn at_with_other_forms() {
        let r = range("@10");
        assert!(r.alerts(0.0) && r.alerts(10.0));
        assert!(!r.alerts(-0.1) && !r.alerts(10.1));
        let r = range("@~:5");
        assert!(r.alerts(-100.0) && r.alerts(5.0) && !r.alerts(5.1));
        let r = range("@5:");
        assert!(r.alerts(5.0) && r.alerts(1e9) && !r.alerts(4.9));
    }

    #[test]
    fn decimals_and_negatives() {
        let r = range("-5:5");
        assert_eq!((r.start(), r.end()), (-5.0, 5.0));
        assert!(!r.alerts(-5.0) && !r.alerts(5.0));
        assert!(r.alerts(-5.01) && r.alerts(5.01));

        let r = range("1.5");
        assert_eq!((r.start(), r.end()), (0.0, 1.5));
        assert!(!r.alerts(1.5) && r.alerts(1.51));

        let r = range("-10:-2.5");
        assert!(r.alerts(-2.4) && !r.alerts(-2.5) && !r.alerts(-10.0) && r.alerts(-10.1));

        let r = range("~:-1");
        assert!(r.alerts(-0.5) && !r.alerts(-1.0));
    }

    #[test]
    fn equal_ends_and_whole_line() {
        let r = range("5:5");
        assert!(!r.alerts(5.0) && r.alerts(4.99) && r.alerts(5.01));
        let never = range("~:");
        assert!(!never.alerts(-1e300) && !never.alerts(1e300));
        let always = range("@~:");
        assert!(always.alerts(0.0) && always.alerts(-1e300));
    }

    #[test]
    fn surrounding_whitespace_is_ignored() {
        assert_eq!(range(" 10:20 "), range("10:20"));
        assert_eq!(range("@ 1 : 2"), range("@1:2"));
    }

    #[test]
    fn nan_is_in_no_range() {
        assert!(range("10").alerts(f64::NAN));
        assert!(!range("@10").alerts(f64::NAN));
    }

    #[test]
    fn from_str_matches_parse_range() {
        let r: Range = "@1:2".parse().expect("parses");
        assert_eq!(r, range("@1:2"));
        assert!("abc".parse::<Range>().is_err());
    }

    #[test]
    fn display_is_canonical_and_round_trips() {
        for (text, canonical) in [
            ("10", "10"),
            ("0:10", "10"),
            ("10:", "10:"),
            ("~:10", "~:10"),
            ("10:20", "10:20"),
            ("@10:20", "@10:20"),
            ("@0:5", "@5"),
            ("-5:5", "-5:5"),
            ("1.5", "1.5"),
            ("10.0:20.50", "10:20.5"),
            ("~:", "~:"),
            ("@~:", "@~:"),
            ("-3:", "-3:"),
        ] {
            let r = range(text);
            assert_eq!(r.to_string(), canonical, "{text}");
            assert_eq!(range(canonical), r, "{text}");
        }
    }

    #[test]
    fn every_error_case() {
        use RangeErrorKind::*;
        let cases: &[(&str, RangeErrorKind)] = &[
            ("", Empty),
            ("   ", Empty),
            ("@", EmptyAfterAt),
            ("abc", NotANumber("abc".into())),
            ("10:abc", NotANumber("abc".into())),
            ("@@10", NotANumber("@10".into())),
            (
                "20:10",
                StartAfterEnd {
                    start: 20.0,
                    end: 10.0,
                },
            ),
            (
                "-1",
                StartAfterEnd {
                    start: 0.0,
                    end: -1.0,
                },
            ),
            ("1:2:3", TooManyColons),
            ("::", TooManyColons),
            (":10", EmptyStart),
            (":", EmptyStart),
            ("~", MisplacedTilde),
            ("10:~", MisplacedTilde),
            ("NaN", NotFinite("NaN".into())),
            ("nan:5", NotFinite("nan".into())),
            ("1:inf", NotFinite("inf".into())),
            ("-inf:1", NotFinite("-inf".into())),
        ];
        for (text, kind) in cases {
            let e = range_error(text);
            assert_eq!(&e.kind, kind, "{text:?}");
            assert_eq!(e.text, *text);
        }
    }

    #[test]
    fn error_message_says_what_and_shows_forms() {
        let message = range_error("20:10").to_string();
        assert_eq!(
            message,
            "invalid range \"20:10\": the start 20 is greater than the end 10; accepted forms \
             are N (alert outside 0..N), N: (alert below N), ~:N (alert above N), N:M (alert \
             outside N..M), @N:M (alert inside N..M)"
        );
        let message = range_error("abc").to_string();
        assert!(message.starts_with("invalid range \"abc\": \"abc\" is not a number;"));
    }

    // --- config ---

    fn spec(warn: Option<&str>, crit: Option<&str>, samples: Option<u32>) -> ThresholdSpec {
        ThresholdSpec {
            warn: warn.map(str::to_string),
            crit: crit.map(str::to_string),
            samples,
        }
    }

    fn compile(entries: &[(&str, ThresholdSpec)], default_samples: u32) -> Thresholds {
        let map = entries
            .iter()
            .map(|(k, s)| (k.to_string(), s.clone()))
            .collect::<BTreeMap<_, _>>();
        Thresholds::compile(&map, default_samples).expect("compiles")
    }

    #[test]
    fn spec_accepts_numbers_and_text_from_json() {
        let s: ThresholdSpec =
            serde_json::from_str(r#"{"warn": 80, "crit": "@0:5", "samples": 3}"#).expect("json");
        assert_eq!(s.warn.as_deref(), Some("80"));
        assert_eq!(s.crit.as_deref(), Some("@0:5"));
        assert_eq!(s.samples, Some(3));

        let s: ThresholdSpec =
            serde_json::from_str(r#"{"warn": -1.5, "crit": 95.25}"#).expect("json");
        assert_eq!(s.warn.as_deref(), Some("-1.5"));
        assert_eq!(s.crit.as_deref(), Some("95.25"));
        assert_eq!(s.samples, None);

        let s: ThresholdSpec = serde_json::from_str(r#"{"warn": null}"#).expect("json");
        assert_eq!(s.warn, None);
        assert_eq!(s.crit, None);
    }

    #[test]
    fn spec_rejects_unknown_fields_and_bad_types() {
        let e =
            serde_json::from_str::<ThresholdSpec>(r#"{"warning": 80}"#).expect_err("unknown field");
        assert!(e.to_string().contains("unknown field `warning`"), "{e}");
        let e = serde_json::from_str::<ThresholdSpec>(r#"{"warn": true}"#).expect_err("bool");
        assert!(e.to_string().contains("a Nagios range"), "{e}");
        let e = serde_json::from_str::<ThresholdSpec>(r#"{"warn": [1]}"#).expect_err("list");
        assert!(e.to_string().contains("a Nagios range"), "{e}");
    }

    #[test]
    fn spec_from_yaml() {
        let yaml = "
cpu.usage_percent:
  warn: 80
  crit: 95.5
fs.*.used_percent:
  warn: '80'
  crit: 10:20
  samples: 2
load.*:
  warn: ~:4
  crit: \"@0:1\"
none.here:
  warn: ~
";
        let map: BTreeMap<String, ThresholdSpec> = serde_norway::from_str(yaml).expect("yaml");
        let cpu = &map["cpu.usage_percent"];
        assert_eq!(cpu.warn.as_deref(), Some("80"));
        assert_eq!(cpu.crit.as_deref(), Some("95.5"));
        let fs = &map["fs.*.used_percent"];
        assert_eq!(fs.warn.as_deref(), Some("80"));
        assert_eq!(fs.crit.as_deref(), Some("10:20"));
        assert_eq!(fs.samples, Some(2));
        let load = &map["load.*"];
        assert_eq!(load.warn.as_deref(), Some("~:4"));
        assert_eq!(load.crit.as_deref(), Some("@0:1"));
        assert_eq!(map["none.here"].warn, None);

        let t = Thresholds::compile(&map, 1).expect("compiles");
        let rule = t.resolve("cpu.usage_percent").expect("rule");
        assert_eq!(rule.threshold_text(), "warn=80 crit=95.5");
    }

    #[test]
    fn compile_errors_name_pattern_and_bound() {
        let map = BTreeMap::from([("fs.*".to_string(), spec(Some("80"), Some("abc"), None))]);
        let e = Thresholds::compile(&map, 1).expect_err("bad crit");
        match &e {
            ThresholdError::BadRange { pattern, bound, .. } => {
                assert_eq!((pattern.as_str(), *bound), ("fs.*", Bound::Crit))
            }
            other => panic!("unexpected {other:?}"),
        }
        assert!(
            e.to_string().starts_with(
                "threshold \"fs.*\": crit: invalid range \"abc\": \"abc\" is not a number"
            ),
            "{e}"
        );

        let map = BTreeMap::from([("cpu.x".to_string(), spec(Some("20:10"), None, None))]);
        let e = Thresholds::compile(&map, 1).expect_err("bad warn");
        assert!(
            matches!(&e, ThresholdError::BadRange { bound: Bound::Warn, pattern, .. } if pattern == "cpu.x")
        );
        assert!(
            e.to_string().starts_with("threshold \"cpu.x\": warn: "),
            "{e}"
        );

        let map = BTreeMap::from([("cpu.x".to_string(), spec(Some("1"), None, Some(0)))]);
        assert_eq!(
            Thresholds::compile(&map, 1).expect_err("zero samples"),
            ThresholdError::ZeroSamples {
                pattern: "cpu.x".into()
            }
        );
        let map = BTreeMap::from([(String::new(), spec(Some("1"), None, None))]);
        assert_eq!(
            Thresholds::compile(&map, 1).expect_err("empty pattern"),
            ThresholdError::EmptyPattern
        );
        assert_eq!(
            Thresholds::compile(&BTreeMap::new(), 0).expect_err("zero default"),
            ThresholdError::ZeroDefaultSamples
        );
    }

    #[test]
    fn threshold_text_and_samples() {
        let t = compile(
            &[
                ("a", spec(Some("80"), Some("95"), None)),
                ("b", spec(None, Some("@0:5"), Some(4))),
                ("c", spec(None, None, Some(2))),
            ],
            3,
        );
        let a = t.resolve("a").expect("a");
        assert_eq!((a.threshold_text(), a.samples()), ("warn=80 crit=95", 3));
        let b = t.resolve("b").expect("b");
        assert_eq!((b.threshold_text(), b.samples()), ("crit=@5", 4));
        let c = t.resolve("c").expect("c");
        assert_eq!((c.threshold_text(), c.has_ranges()), ("", false));
        assert_eq!(t.default_samples(), 3);
        assert_eq!(t.rules().len(), 3);
    }

    // --- globs ---

    #[test]
    fn glob_matching() {
        let m = |p: &str, t: &str| glob_matches(p.as_bytes(), t.as_bytes());
        assert!(m("fs.*.used_percent", "fs./var/lib.used_percent"));
        assert!(m("fs.*.used_percent", "fs./.used_percent"));
        assert!(m("fs.*.used_percent", "fs..used_percent"));
        assert!(!m("fs.*.used_percent", "fs./var.used_bytes"));
        assert!(!m("fs.*.used_percent", "xfs./var.used_percent"));
        assert!(!m("fs.*.used_percent", "fs./var.used_percent2"));
        assert!(m("*", ""));
        assert!(m("*", "anything/at.all"));
        assert!(m("*.a*b", "x.aab"));
        assert!(m("a*a*a", "aaa"));
        assert!(!m("a*a*a", "aa"));
        assert!(m("**", "x"));
        assert!(m("cpu.*", "cpu.core.0.usage"));
        assert!(!m("cpu.*", "cpu"));
        assert!(m("*.é*", "x.éé"));
        assert!(!m("abc", "abcd"));
        assert!(m("abc", "abc"));
    }

    #[test]
    fn exact_match_wins_over_any_glob() {
        let t = compile(
            &[
                ("cpu.usage_percent", spec(Some("1"), None, None)),
                ("cpu.usage_percen*", spec(Some("2"), None, None)),
                ("*", spec(Some("3"), None, None)),
            ],
            1,
        );
        let rule = t.resolve("cpu.usage_percent").expect("rule");
        assert_eq!(rule.pattern(), "cpu.usage_percent");
    }

    #[test]
    fn most_specific_glob_wins() {
        let t = compile(
            &[
                ("*", spec(Some("1"), None, None)),
                ("fs.*", spec(Some("2"), None, None)),
                ("fs.*.used_percent", spec(Some("3"), None, None)),
                ("fs./var*.used_percent", spec(Some("4"), None, None)),
            ],
            1,
        );
        let pattern = |key: &str| t.resolve(key).map(|r| r.pattern().to_string());
        assert_eq!(
            pattern("fs./var/lib.used_percent").as_deref(),
            Some("fs./var*.used_percent")
        );
        assert_eq!(
            pattern("fs./home.used_percent").as_deref(),
            Some("fs.*.used_percent")
        );
        assert_eq!(pattern("fs./home.free_bytes").as_deref(), Some("fs.*"));
        assert_eq!(pattern("mem.used").as_deref(), Some("*"));
    }

    #[test]
    fn equally_specific_globs_go_to_the_first_sorted() {
        let t = compile(
            &[
                ("b.*", spec(Some("1"), None, None)),
                ("*.c", spec(Some("2"), None, None)),
                ("a*", spec(Some("3"), None, None)),
            ],
            1,
        );
        // "*.c" < "a*" < "b.*" in byte order; "b.*" and "*.c" both have 2 literal characters.
        assert_eq!(t.resolve("b.c").map(Rule::pattern), Some("*.c"));
        assert_eq!(t.resolve("b.x").map(Rule::pattern), Some("b.*"));
        assert_eq!(t.resolve("ab").map(Rule::pattern), Some("a*"));
        assert_eq!(t.resolve("zz"), None);
    }

    #[test]
    fn no_rule_without_match() {
        let t = compile(&[("cpu.*", spec(Some("1"), None, None))], 1);
        assert_eq!(t.resolve("mem.used"), None);
        assert!(Thresholds::default().resolve("x").is_none());
        assert!(Thresholds::default().is_empty());
    }

    // --- evaluation ---

    fn eval(tracker: &mut LevelTracker, t: &Thresholds, key: &str, v: f64) -> Level {
        tracker.evaluate(t, &Reading::number(key, v, "%")).level
    }

    #[test]
    fn raw_levels_from_ranges() {
        let t = compile(&[("k", spec(Some("80"), Some("95"), None))], 1);
        let mut tr = LevelTracker::new();
        assert_eq!(eval(&mut tr, &t, "k", 50.0), Level::Ok);
        assert_eq!(eval(&mut tr, &t, "k", 80.0), Level::Ok);
        assert_eq!(eval(&mut tr, &t, "k", 80.5), Level::Warning);
        assert_eq!(eval(&mut tr, &t, "k", 95.0), Level::Warning);
        assert_eq!(eval(&mut tr, &t, "k", 99.0), Level::Critical);
        assert_eq!(eval(&mut tr, &t, "k", -1.0), Level::Critical);
        let e = tr.evaluate(&t, &Reading::integer("k", 10, "%"));
        assert_eq!(
            e,
            Evaluated {
                level: Level::Ok,
                threshold: "warn=80 crit=95".into(),
                message: None
            }
        );
    }

    #[test]
    fn only_crit_or_only_warn() {
        let t = compile(
            &[
                ("c", spec(None, Some("@0:5"), None)),
                ("w", spec(Some("10:"), None, None)),
            ],
            1,
        );
        let mut tr = LevelTracker::new();
        assert_eq!(eval(&mut tr, &t, "c", 3.0), Level::Critical);
        assert_eq!(eval(&mut tr, &t, "c", 6.0), Level::Ok);
        assert_eq!(eval(&mut tr, &t, "w", 3.0), Level::Warning);
        assert_eq!(eval(&mut tr, &t, "w", 1e9), Level::Ok);
    }

    #[test]
    fn booleans_are_numbers() {
        let t = compile(&[("up", spec(None, Some("1:"), None))], 1);
        let mut tr = LevelTracker::new();
        assert_eq!(
            tr.evaluate(&t, &Reading::boolean("up", true)).level,
            Level::Ok
        );
        assert_eq!(
            tr.evaluate(&t, &Reading::boolean("up", false)).level,
            Level::Critical
        );
    }

    #[test]
    fn no_rule_is_ok_with_empty_threshold() {
        let t = compile(&[("cpu.*", spec(Some("1"), None, None))], 1);
        let mut tr = LevelTracker::new();
        let e = tr.evaluate(&t, &Reading::number("mem.used", 1e9, "B"));
        assert_eq!(
            e,
            Evaluated {
                level: Level::Ok,
                threshold: String::new(),
                message: None
            }
        );
        let e = tr.evaluate(&t, &Reading::text("os.name", "Linux"));
        assert_eq!((e.level, e.message), (Level::Ok, None));
    }

    #[test]
    fn non_numeric_value_with_rule_is_unknown() {
        let t = compile(&[("os.*", spec(Some("1"), None, None))], 1);
        let mut tr = LevelTracker::new();
        let e = tr.evaluate(&t, &Reading::text("os.name", "Linux"));
        assert_eq!(
            e,
            Evaluated {
                level: Level::Unknown,
                threshold: "warn=1".into(),
                message: Some("threshold on non-numeric reading".into())
            }
        );
    }

    #[test]
    fn rule_without_ranges_does_not_check_text() {
        let t = compile(&[("os.*", spec(None, None, Some(3)))], 1);
        let mut tr = LevelTracker::new();
        let e = tr.evaluate(&t, &Reading::text("os.name", "Linux"));
        assert_eq!(
            (e.level, e.message, e.threshold.as_str()),
            (Level::Ok, None, "")
        );
    }

    #[test]
    fn nan_value_is_unknown() {
        let t = compile(&[("k", spec(Some("10"), None, None))], 1);
        let mut tr = LevelTracker::new();
        let e = tr.evaluate(&t, &Reading::number("k", f64::NAN, ""));
        assert_eq!(e.level, Level::Unknown);
        assert_eq!(e.message.as_deref(), Some("threshold on NaN reading"));
    }

    #[test]
    fn plugin_state_is_combined_by_worst() {
        let t = compile(&[("k", spec(Some("80"), Some("95"), None))], 1);
        let mut tr = LevelTracker::new();
        let mut level = |v: f64, state: Option<Level>| {
            let mut r = Reading::number("k", v, "%");
            if let Some(s) = state {
                r = r.with_state(s);
            }
            tr.evaluate(&t, &r).level
        };
        assert_eq!(level(10.0, Some(Level::Warning)), Level::Warning);
        assert_eq!(level(90.0, Some(Level::Ok)), Level::Warning);
        assert_eq!(level(90.0, Some(Level::Unknown)), Level::Unknown);
        assert_eq!(level(99.0, Some(Level::Unknown)), Level::Critical);
        assert_eq!(level(10.0, Some(Level::Critical)), Level::Critical);
        assert_eq!(level(10.0, None), Level::Ok);

        // Without any rule the plugin's own level stands.
        let none = Thresholds::default();
        let r = Reading::text("nagios.check_x", "down").with_state(Level::Critical);
        assert_eq!(tr.evaluate(&none, &r).level, Level::Critical);
    }

    #[test]
    fn plugin_state_with_text_reading_and_rule() {
        let t = compile(&[("n.*", spec(Some("1"), None, None))], 1);
        let mut tr = LevelTracker::new();
        let r = Reading::text("n.x", "down").with_state(Level::Critical);
        let e = tr.evaluate(&t, &r);
        assert_eq!(e.level, Level::Critical);
        assert_eq!(
            e.message.as_deref(),
            Some("threshold on non-numeric reading")
        );
    }

    #[test]
    fn three_samples_escalation() {
        let t = compile(&[("k", spec(Some("80"), Some("95"), Some(3)))], 1);
        let mut tr = LevelTracker::new();
        assert_eq!(eval(&mut tr, &t, "k", 10.0), Level::Ok);
        assert_eq!(eval(&mut tr, &t, "k", 90.0), Level::Ok);
        assert_eq!(eval(&mut tr, &t, "k", 90.0), Level::Ok);
        assert_eq!(eval(&mut tr, &t, "k", 90.0), Level::Warning);
        assert_eq!(eval(&mut tr, &t, "k", 90.0), Level::Warning);
        assert_eq!(tr.level("k"), Some(Level::Warning));
    }

    #[test]
    fn interrupted_sequence_resets_the_count() {
        let t = compile(&[("k", spec(Some("80"), Some("95"), Some(3)))], 1);
        let mut tr = LevelTracker::new();
        let levels: Vec<Level> = [10.0, 90.0, 90.0, 10.0, 90.0, 90.0, 99.0, 90.0, 90.0, 90.0]
            .iter()
            .map(|&v| eval(&mut tr, &t, "k", v))
            .collect();
        use Level::*;
        assert_eq!(levels, [Ok, Ok, Ok, Ok, Ok, Ok, Ok, Ok, Ok, Warning]);
    }

    #[test]
    fn changing_non_ok_levels_also_reset() {
        let t = compile(&[("k", spec(Some("80"), Some("95"), Some(3)))], 1);
        let mut tr = LevelTracker::new();
        let levels: Vec<Level> = [10.0, 90.0, 99.0, 90.0, 99.0, 99.0, 99.0]
            .iter()
            .map(|&v| eval(&mut tr, &t, "k", v))
            .collect();
        use Level::*;
        assert_eq!(levels, [Ok, Ok, Ok, Ok, Ok, Ok, Critical]);
    }

    #[test]
    fn recovery_also_needs_the_samples() {
        let t = compile(&[("k", spec(Some("80"), Some("95"), Some(3)))], 1);
        let mut tr = LevelTracker::new();
        // First evaluation is immediate, even at CRITICAL.
        assert_eq!(eval(&mut tr, &t, "k", 99.0), Level::Critical);
        assert_eq!(eval(&mut tr, &t, "k", 10.0), Level::Critical);
        assert_eq!(eval(&mut tr, &t, "k", 10.0), Level::Critical);
        assert_eq!(eval(&mut tr, &t, "k", 99.0), Level::Critical);
        assert_eq!(eval(&mut tr, &t, "k", 10.0), Level::Critical);
        assert_eq!(eval(&mut tr, &t, "k", 10.0), Level::Critical);
        assert_eq!(eval(&mut tr, &t, "k", 10.0), Level::Ok);
    }

    #[test]
    fn one_sample_is_immediate() {
        let t = compile(&[("k", spec(Some("80"), Some("95"), None))], 1);
        let mut tr = LevelTracker::new();
        use Level::*;
        let levels: Vec<Level> = [10.0, 90.0, 99.0, 10.0, 99.0]
            .iter()
            .map(|&v| eval(&mut tr, &t, "k", v))
            .collect();
        assert_eq!(levels, [Ok, Warning, Critical, Ok, Critical]);
    }

    #[test]
    fn default_samples_apply_to_rules_and_unmatched_keys() {
        let t = compile(&[("k", spec(Some("80"), None, None))], 2);
        let mut tr = LevelTracker::new();
        assert_eq!(eval(&mut tr, &t, "k", 10.0), Level::Ok);
        assert_eq!(eval(&mut tr, &t, "k", 90.0), Level::Ok);
        assert_eq!(eval(&mut tr, &t, "k", 90.0), Level::Warning);

        // An unmatched key only changes through the plugin's state; still held for 2.
        let r = |s: Level| Reading::number("other", 1.0, "").with_state(s);
        assert_eq!(tr.evaluate(&t, &r(Level::Ok)).level, Level::Ok);
        assert_eq!(tr.evaluate(&t, &r(Level::Critical)).level, Level::Ok);
        assert_eq!(tr.evaluate(&t, &r(Level::Critical)).level, Level::Critical);
    }

    #[test]
    fn message_only_while_the_unknown_is_reported() {
        let t = compile(&[("k", spec(Some("80"), None, Some(2)))], 1);
        let mut tr = LevelTracker::new();
        assert_eq!(eval(&mut tr, &t, "k", 10.0), Level::Ok);
        let e = tr.evaluate(&t, &Reading::text("k", "oops"));
        assert_eq!((e.level, e.message), (Level::Ok, None));
        let e = tr.evaluate(&t, &Reading::text("k", "oops"));
        assert_eq!(e.level, Level::Unknown);
        assert_eq!(
            e.message.as_deref(),
            Some("threshold on non-numeric reading")
        );
    }

    #[test]
    fn keys_are_tracked_independently() {
        let t = compile(&[("*", spec(Some("80"), None, Some(2)))], 1);
        let mut tr = LevelTracker::new();
        assert_eq!(eval(&mut tr, &t, "a", 10.0), Level::Ok);
        assert_eq!(eval(&mut tr, &t, "b", 90.0), Level::Warning);
        assert_eq!(eval(&mut tr, &t, "a", 90.0), Level::Ok);
        assert_eq!(eval(&mut tr, &t, "b", 10.0), Level::Warning);
        assert_eq!(eval(&mut tr, &t, "a", 90.0), Level::Warning);
        assert_eq!(eval(&mut tr, &t, "b", 10.0), Level::Ok);
    }

    #[test]
    fn reloaded_thresholds_replace_cached_rules_but_keep_levels() {
        let old = compile(&[("k", spec(Some("80"), None, Some(2)))], 1);
        let new = compile(&[("k", spec(Some("50"), None, Some(1)))], 1);
        let mut tr = LevelTracker::new();
        assert_eq!(eval(&mut tr, &old, "k", 60.0), Level::Ok);
        assert_eq!(eval(&mut tr, &old, "k", 60.0), Level::Ok);
        let e = tr.evaluate(&new, &Reading::number("k", 60.0, ""));
        assert_eq!((e.level, e.threshold.as_str()), (Level::Warning, "warn=50"));
        // Back to the old rules: 60 is fine there, and the rule's 2 samples apply.
        assert_eq!(eval(&mut tr, &old, "k", 60.0), Level::Warning);
        assert_eq!(eval(&mut tr, &old, "k", 60.0), Level::Ok);
    }

    #[test]
    fn end_cycle_forgets_keys_not_seen() {
        let t = Thresholds::default();
        let mut tr = LevelTracker::new();
        assert!(tr.is_empty());
        eval(&mut tr, &t, "a", 1.0);
        eval(&mut tr, &t, "b", 1.0);
        assert_eq!(tr.end_cycle(), 0);
        assert_eq!(tr.len(), 2);

        eval(&mut tr, &t, "a", 1.0);
        assert_eq!(tr.end_cycle(), 1);
        assert_eq!(tr.level("a"), Some(Level::Ok));
        assert_eq!(tr.level("b"), None);

        assert_eq!(tr.end_cycle(), 1);
        assert!(tr.is_empty());
    }

    #[test]
    fn forgotten_key_starts_afresh() {
        let t = compile(&[("k", spec(Some("80"), None, Some(3)))], 1);
        let mut tr = LevelTracker::new();
        assert_eq!(eval(&mut tr, &t, "k", 10.0), Level::Ok);
        tr.end_cycle();
        tr.end_cycle();
        // Gone, so its next evaluation is a first one and takes effect at once.
        assert_eq!(eval(&mut tr, &t, "k", 90.0), Level::Warning);
        assert!(tr.forget("k"));
        assert!(!tr.forget("k"));
        assert_eq!(eval(&mut tr, &t, "k", 10.0), Level::Ok);
    }

    #[test]
    fn overall_is_worst_or_ok() {
        use Level::*;
        assert_eq!(overall(std::iter::empty()), Ok);
        assert_eq!(overall([Ok, Ok].into_iter()), Ok);
        assert_eq!(overall([Ok, Warning, Ok].into_iter()), Warning);
        assert_eq!(overall([Warning, Unknown].into_iter()), Unknown);
        assert_eq!(overall([Critical, Unknown, Warning].into_iter()), Critical);
    }
}
