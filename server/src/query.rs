//! The one host query (filter, sort, page) behind `GET /api/v1/hosts` and the dashboard's
//! overview, so both list the same hosts in the same order.
//!
//! Parsing is per parameter and names the parameter in its error (`limit: ...`); the API
//! answers 400 with it, the dashboard falls back to the parameter's default instead.
//! Running a query never holds the registry lock for the whole fleet: the sort keys are
//! copied [`CHUNK`] hosts per lock, sorted without the lock, and only the page's hosts are
//! copied out (again a chunk per lock) for the caller to serialise without the lock.

use std::cmp::Ordering;
use std::collections::HashMap;
use std::net::IpAddr;
use std::ops::Deref;
use std::sync::{Arc, MutexGuard};

use crate::registry::{Host, LevelName, Registry, Status};
use crate::state::State;

/// Hosts looked at (or copied) per lock of the registry: ingest waits for at most this
/// many hosts' worth of copying (about 0.1 ms for 1,000), whatever the fleet's size.
pub const CHUNK: usize = 1000;

/// Most hosts the API returns in one page (and the default).
pub const MAX_LIMIT: usize = 10_000;
pub const DEFAULT_LIMIT: usize = 100;

/// Lends the registry for a moment: hbd's [`State`] locks it, a test's `Registry` is it.
pub trait Lend {
    type Guard<'a>: Deref<Target = Registry>
    where
        Self: 'a;
    fn lend(&self) -> Self::Guard<'_>;
}

impl Lend for Registry {
    type Guard<'a> = &'a Registry;
    fn lend(&self) -> &Registry {
        self
    }
}

impl Lend for State {
    type Guard<'a> = MutexGuard<'a, Registry>;
    fn lend(&self) -> MutexGuard<'_, Registry> {
        self.registry()
    }
}

/// A query parameter that cannot be used: `{param}: {message}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParamError {
    pub param: &'static str,
    pub message: String,
}

impl ParamError {
    fn new(param: &'static str, message: impl Into<String>) -> ParamError {
        ParamError {
            param,
            message: message.into(),
        }
    }
}

impl std::fmt::Display for ParamError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.param, self.message)
    }
}

impl std::error::Error for ParamError {}

/// `status`: `UP`, `DOWN`, `NEVER_SEEN` (any case); empty for any.
pub fn parse_status(s: &str) -> Result<Option<Status>, ParamError> {
    Ok(Some(match s.to_ascii_uppercase().as_str() {
        "" => return Ok(None),
        "UP" => Status::Up,
        "DOWN" => Status::Down,
        "NEVER_SEEN" => Status::NeverSeen,
        _ => {
            return Err(ParamError::new(
                "status",
                format!("{s:?} is not one of UP, DOWN, NEVER_SEEN"),
            ))
        }
    }))
}

/// `level`: `OK`, `WARNING`, `CRITICAL`, `UNKNOWN` (any case); empty for any.
pub fn parse_level(l: &str) -> Result<Option<LevelName>, ParamError> {
    if l.is_empty() {
        return Ok(None);
    }
    LevelName::parse(l).map(Some).ok_or_else(|| {
        ParamError::new(
            "level",
            format!("{l:?} is not one of OK, WARNING, CRITICAL, UNKNOWN"),
        )
    })
}

/// A whole number of at least 0 for `param`.
pub fn parse_count(param: &'static str, s: &str) -> Result<usize, ParamError> {
    s.parse()
        .map_err(|_| ParamError::new(param, format!("{s:?} is not a whole number")))
}

/// Which hosts: all conditions must hold; an empty filter keeps every host.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filter {
    /// Part of the name, any ASCII case (host names are ASCII).
    pub name: String,
    pub status: Option<Status>,
    pub level: Option<LevelName>,
}

impl Filter {
    pub fn matches(&self, h: &Host) -> bool {
        self.status.is_none_or(|s| h.status == s)
            && self.level.is_none_or(|l| h.level == l)
            && contains_ignore_case(&h.name, &self.name)
    }

    pub fn is_empty(&self) -> bool {
        self.name.is_empty() && self.status.is_none() && self.level.is_none()
    }
}

/// Whether `hay` contains `needle`, ignoring ASCII case, without allocating.
fn contains_ignore_case(hay: &str, needle: &str) -> bool {
    needle.is_empty()
        || hay
            .as_bytes()
            .windows(needle.len())
            .any(|w| w.eq_ignore_ascii_case(needle.as_bytes()))
}

/// What hosts are sorted by. Whatever the key, ties go by name (A to Z), and hosts
/// without the figure (or address, or time) come last in either direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SortKey {
    /// The default: DOWN, then UP hosts that are CRITICAL, UNKNOWN, WARNING, then never
    /// seen, then OK.
    #[default]
    State,
    Name,
    /// DOWN, NEVER_SEEN, UP.
    Status,
    /// Worst level first: CRITICAL, UNKNOWN, WARNING, OK.
    Level,
    Address,
    /// Last heartbeat, oldest first.
    Seen,
    Cpu,
    Mem,
    Fs,
    Load,
    /// The worst non-OK reading: worst level first, then its key.
    Check,
}

/// Every key with the names `sort` accepts; the first name is the one links use.
const SORT_NAMES: [(SortKey, &[&str]); 11] = [
    (SortKey::State, &["state", ""]),
    (SortKey::Name, &["name"]),
    (SortKey::Status, &["status"]),
    (SortKey::Level, &["level"]),
    (SortKey::Address, &["address"]),
    (SortKey::Seen, &["seen", "last_seen"]),
    (SortKey::Cpu, &["cpu"]),
    (SortKey::Mem, &["mem"]),
    (SortKey::Fs, &["fs"]),
    (SortKey::Load, &["load"]),
    (SortKey::Check, &["check"]),
];

impl SortKey {
    pub fn parse(s: &str) -> Option<SortKey> {
        SORT_NAMES
            .iter()
            .find(|(_, names)| names.contains(&s))
            .map(|(k, _)| *k)
    }

    pub fn name(self) -> &'static str {
        SORT_NAMES
            .iter()
            .find(|(k, _)| *k == self)
            .and_then(|(_, names)| names.first())
            .copied()
            .unwrap_or("state")
    }

    /// Figures sort highest first when a column is first chosen on the dashboard.
    pub fn desc_first(self) -> bool {
        matches!(
            self,
            SortKey::Cpu | SortKey::Mem | SortKey::Fs | SortKey::Load
        )
    }
}

/// The API's `sort`: a key, `-` in front for descending.
pub fn parse_sort(s: &str) -> Result<Order, ParamError> {
    let (desc, key) = match s.strip_prefix('-') {
        Some(k) => (true, k),
        None => (false, s),
    };
    SortKey::parse(key)
        .map(|key| Order { key, desc })
        .ok_or_else(|| {
            ParamError::new(
                "sort",
                format!(
                    "{s:?} is not one of state, name, status, level, address, last_seen, cpu, \
                     mem, fs, load, check (prefix - for descending)"
                ),
            )
        })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Order {
    pub key: SortKey,
    pub desc: bool,
}

/// Which part of the sorted hosts to return.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Window {
    /// The API's `offset` and `limit`: past the end is an empty page.
    Offset { offset: usize, limit: usize },
    /// The dashboard's pages (from 1): past the end is the last page.
    Page { page: usize, per: usize },
}

impl Window {
    /// `(offset, limit)` for `total` matching hosts.
    pub fn resolve(self, total: usize) -> (usize, usize) {
        match self {
            Window::Offset { offset, limit } => (offset, limit),
            Window::Page { page, per } => {
                let per = per.max(1);
                let pages = total.div_ceil(per).max(1);
                ((page.clamp(1, pages) - 1) * per, per)
            }
        }
    }
}

/// A host as the query sorts it: copied from the registry (the name is shared, not
/// copied), so sorting runs without the lock.
#[derive(Debug, Clone)]
pub struct Entry {
    pub name: Arc<str>,
    pub status: Status,
    pub level: LevelName,
    pub last_seen_ms: Option<u64>,
    pub address: Option<IpAddr>,
    pub cpu: Option<f32>,
    pub mem: Option<f32>,
    pub fs: Option<f32>,
    pub load: Option<f32>,
    /// Level and key of the worst non-OK reading.
    pub worst: Option<(LevelName, Arc<str>)>,
}

impl Entry {
    /// The same figures as [`crate::state::Summary::of`].
    pub fn of(h: &Host) -> Entry {
        let last = h.history.back();
        let finite = |v: Option<f32>| v.filter(|x| x.is_finite());
        Entry {
            name: h.name.clone(),
            status: h.status,
            level: h.level,
            last_seen_ms: h.last_seen_ms,
            address: h.addrs.iter().max_by_key(|a| a.last_ms).map(|a| a.addr),
            cpu: finite(last.map(|s| s.cpu)),
            mem: finite(last.map(|s| s.mem)),
            fs: finite(last.map(|s| s.fs)),
            load: finite(last.map(|s| s.load)),
            worst: h
                .readings
                .iter()
                .filter(|r| r.level != LevelName::Ok)
                .max_by_key(|r| r.level.severity())
                .map(|r| (r.level, r.key_arc().clone())),
        }
    }
}

/// Position in the default order: DOWN, CRITICAL, UNKNOWN, WARNING, never seen, OK.
pub fn rank(status: Status, level: LevelName) -> u8 {
    match status {
        Status::Down => 0,
        Status::NeverSeen => 4,
        Status::Up => match level {
            LevelName::Critical => 1,
            LevelName::Unknown => 2,
            LevelName::Warning => 3,
            LevelName::Ok => 5,
        },
    }
}

/// `a` and `b` in `order`, missing values last either way. Must match `compare` in
/// `static/overview.js` for the keys the dashboard offers.
pub fn compare(a: &Entry, b: &Entry, order: Order) -> Ordering {
    let flip = |o: Ordering| if order.desc { o.reverse() } else { o };
    let o = match order.key {
        SortKey::State => flip(rank(a.status, a.level).cmp(&rank(b.status, b.level))),
        SortKey::Name => flip(a.name.cmp(&b.name)),
        SortKey::Status => {
            let st = |s: Status| match s {
                Status::Down => 0,
                Status::NeverSeen => 1,
                Status::Up => 2,
            };
            flip(st(a.status).cmp(&st(b.status)))
        }
        SortKey::Level => flip(b.level.severity().cmp(&a.level.severity())),
        // Addresses as text, as the page's script compares them.
        SortKey::Address => missing_last(a.address, b.address, |x, y| {
            flip(x.to_string().cmp(&y.to_string()))
        }),
        SortKey::Seen => missing_last(a.last_seen_ms, b.last_seen_ms, |x, y| flip(x.cmp(&y))),
        SortKey::Cpu => missing_last(a.cpu, b.cpu, |x, y| flip(x.total_cmp(&y))),
        SortKey::Mem => missing_last(a.mem, b.mem, |x, y| flip(x.total_cmp(&y))),
        SortKey::Fs => missing_last(a.fs, b.fs, |x, y| flip(x.total_cmp(&y))),
        SortKey::Load => missing_last(a.load, b.load, |x, y| flip(x.total_cmp(&y))),
        SortKey::Check => {
            let sev = |e: &Entry| e.worst.as_ref().map_or(0, |w| w.0.severity() + 1);
            flip(sev(b).cmp(&sev(a))).then_with(|| {
                let key = |e: &Entry| e.worst.as_ref().map(|w| w.1.clone());
                flip(key(a).cmp(&key(b)))
            })
        }
    };
    o.then_with(|| a.name.cmp(&b.name))
}

fn missing_last<T: Copy>(a: Option<T>, b: Option<T>, cmp: impl Fn(T, T) -> Ordering) -> Ordering {
    match (a, b) {
        (Some(x), Some(y)) => cmp(x, y),
        (Some(_), None) => Ordering::Less,
        (None, Some(_)) => Ordering::Greater,
        (None, None) => Ordering::Equal,
    }
}

/// Filter, order and window of one list of hosts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostQuery {
    pub filter: Filter,
    pub order: Order,
    pub window: Window,
}

/// One page of the query's answer.
#[derive(Debug)]
pub struct Found<T> {
    /// Hosts matching the filter.
    pub total: usize,
    pub offset: usize,
    pub limit: usize,
    pub hosts: Vec<T>,
}

/// The parameters of `GET /api/v1/hosts`.
const API_PARAMS: [&str; 6] = ["q", "status", "level", "sort", "offset", "limit"];

impl HostQuery {
    /// `GET /api/v1/hosts`'s parameters; the first unusable one is the error.
    pub fn from_api(params: &HashMap<String, String>) -> Result<HostQuery, ParamError> {
        let mut unknown: Vec<&String> = params
            .keys()
            .filter(|k| !API_PARAMS.contains(&k.as_str()))
            .collect();
        unknown.sort();
        if let Some(k) = unknown.first() {
            return Err(ParamError {
                param: "query",
                message: format!(
                    "{k:?} is not a parameter of this endpoint (use {})",
                    API_PARAMS.join(", ")
                ),
            });
        }
        let get = |k: &str| params.get(k).map(String::as_str).unwrap_or("");
        let limit = match get("limit") {
            "" => DEFAULT_LIMIT,
            l => parse_count("limit", l)?,
        };
        if limit == 0 || limit > MAX_LIMIT {
            return Err(ParamError::new("limit", format!("use 1 to {MAX_LIMIT}")));
        }
        let offset = match get("offset") {
            "" => 0,
            o => parse_count("offset", o)?,
        };
        Ok(HostQuery {
            filter: Filter {
                name: get("q").to_string(),
                status: parse_status(get("status"))?,
                level: parse_level(get("level"))?,
            },
            order: parse_sort(get("sort"))?,
            window: Window::Offset { offset, limit },
        })
    }

    /// Runs the query: `each` sees every host (matching or not, e.g. to count the fleet),
    /// `copy` takes what the caller needs of each host on the page. Both run under the
    /// registry lock, [`CHUNK`] hosts per lock; everything else runs without it.
    ///
    /// Not a snapshot: a host that changes between chunks is seen as it was when its
    /// chunk was read, and a host forgotten before its page is copied is left out.
    pub fn run<L: Lend + ?Sized, T>(
        &self,
        lender: &L,
        mut each: impl FnMut(&Host),
        mut copy: impl FnMut(&Host) -> T,
    ) -> Found<T> {
        let mut entries = Vec::new();
        let mut start = 0;
        loop {
            let reg = lender.lend();
            let end = (start + CHUNK).min(reg.slots());
            if start >= end {
                break;
            }
            for h in (start..end).filter_map(|i| reg.slot(i)) {
                each(h);
                if self.filter.matches(h) {
                    entries.push(Entry::of(h));
                }
            }
            drop(reg);
            start = end;
        }
        entries.sort_by(|a, b| compare(a, b, self.order));
        let total = entries.len();
        let (offset, limit) = self.window.resolve(total);
        let page = entries.get(offset..).unwrap_or_default();
        let page = &page[..limit.min(page.len())];
        let mut hosts = Vec::with_capacity(page.len());
        for chunk in page.chunks(CHUNK) {
            let reg = lender.lend();
            hosts.extend(chunk.iter().filter_map(|e| reg.get(&e.name)).map(&mut copy));
        }
        Found {
            total,
            offset,
            limit,
            hosts,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(q: &str) -> HashMap<String, String> {
        q.split('&')
            .filter_map(|kv| kv.split_once('='))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn api_error(q: &str) -> String {
        HostQuery::from_api(&params(q))
            .expect_err("invalid")
            .to_string()
    }

    #[test]
    fn api_errors_name_the_parameter() {
        assert!(api_error("limit=abc").starts_with("limit: "));
        assert_eq!(api_error("limit=0"), "limit: use 1 to 10000");
        assert_eq!(api_error("limit=10001"), "limit: use 1 to 10000");
        assert!(api_error("offset=-1").starts_with("offset: "));
        assert!(api_error("status=maybe").starts_with("status: "));
        assert!(api_error("level=bad").starts_with("level: "));
        assert!(api_error("sort=color").starts_with("sort: "));
        assert!(api_error("colour=red").contains("\"colour\" is not a parameter"));
    }

    #[test]
    fn api_defaults_and_sort_names() {
        let q = HostQuery::from_api(&params("")).expect("valid");
        assert_eq!(q.order, Order::default());
        assert_eq!(
            q.window,
            Window::Offset {
                offset: 0,
                limit: DEFAULT_LIMIT
            }
        );
        let q = HostQuery::from_api(&params("sort=-last_seen&status=down&level=critical"))
            .expect("valid");
        assert_eq!(
            q.order,
            Order {
                key: SortKey::Seen,
                desc: true
            }
        );
        assert_eq!(q.filter.status, Some(Status::Down));
        assert_eq!(q.filter.level, Some(LevelName::Critical));
        for (k, names) in SORT_NAMES {
            for n in names {
                assert_eq!(SortKey::parse(n), Some(k));
            }
            assert_eq!(SortKey::parse(k.name()), Some(k));
        }
    }

    #[test]
    fn pages_past_the_end() {
        assert_eq!(Window::Page { page: 9, per: 50 }.resolve(120), (100, 50));
        assert_eq!(Window::Page { page: 0, per: 50 }.resolve(0), (0, 50));
        assert_eq!(
            Window::Offset {
                offset: 500,
                limit: 10
            }
            .resolve(3),
            (500, 10)
        );
    }

    /// More hosts than one chunk: every host is seen once, the order holds across
    /// chunks, and a page is copied from several locks.
    #[test]
    fn runs_across_chunks() {
        let mut reg = Registry::new(crate::registry::Settings {
            max_hosts: 3 * CHUNK,
            ..Default::default()
        });
        let n = 2 * CHUNK + 500;
        for i in 0..n {
            reg.watch(&format!("h{i:05}"), None, 1);
        }
        let mut q = HostQuery::from_api(&params("sort=-name&limit=10000")).expect("valid");
        let mut seen = 0;
        let found = q.run(&reg, |_| seen += 1, |h| h.name.to_string());
        assert_eq!((seen, found.total, found.hosts.len()), (n, n, n));
        assert_eq!(found.hosts[0], format!("h{:05}", n - 1));
        assert!(found.hosts.windows(2).all(|w| w[0] > w[1]));
        q.filter.name = "H01".into();
        q.window = Window::Page { page: 2, per: 50 };
        let found = q.run(&reg, |_| {}, |h| h.name.to_string());
        assert_eq!(
            (found.total, found.offset, found.hosts.len()),
            (1000, 50, 50)
        );
        assert_eq!(found.hosts[0], "h01949");
    }

    #[test]
    fn name_filter_ignores_ascii_case() {
        assert!(contains_ignore_case("web-01", "WEB"));
        assert!(contains_ignore_case("web-01", ""));
        assert!(!contains_ignore_case("db", "db-long"));
    }
}
