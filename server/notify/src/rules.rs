//! Routing: which channels get a notification, from `notify_routes` (host globs, kinds,
//! levels). Without routes every channel gets every notification except the per-check
//! kinds. Pure functions, no I/O.

use hbd_core::registry::LevelName;

use super::config::Route;
use super::notification::{Kind, Notification};

/// Shell-style glob on host names: `*` any run, `?` one character; case-insensitive
/// (host names are).
pub fn glob(pattern: &str, name: &str) -> bool {
    let p: Vec<char> = pattern.to_ascii_lowercase().chars().collect();
    let n: Vec<char> = name.to_ascii_lowercase().chars().collect();
    // Iterative matcher with one backtrack point: linear for patterns with one star,
    // O(p·n) at worst; names and patterns are short.
    let (mut pi, mut ni) = (0usize, 0usize);
    let mut star: Option<(usize, usize)> = None;
    while ni < n.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == n[ni]) {
            pi += 1;
            ni += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some((pi, ni));
            pi += 1;
        } else if let Some((sp, sn)) = star {
            pi = sp + 1;
            ni = sn + 1;
            star = Some((sp, sn + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

/// Decides the channels of each notification.
#[derive(Debug, Clone)]
pub struct Router {
    routes: Vec<Route>,
    /// Names of the configured channels, in order; routes index into this.
    channels: Vec<String>,
}

impl Router {
    pub fn new(routes: Vec<Route>, channels: Vec<String>) -> Router {
        Router { routes, channels }
    }

    pub fn channels(&self) -> &[String] {
        &self.channels
    }

    fn matches(r: &Route, n: &Notification) -> bool {
        let kind_ok = match &r.kinds {
            Some(k) => k.contains(&n.kind),
            None => !n.kind.per_check(),
        };
        kind_ok
            && r.levels.as_ref().is_none_or(|l| l.contains(&n.level))
            && r.hosts.0.iter().any(|p| glob(p, &n.host))
    }

    /// Indices (into [`Router::channels`]) of the channels `n` goes to.
    pub fn route(&self, n: &Notification) -> Vec<usize> {
        match n.kind {
            // About a channel: every other channel, whatever the routes say (a route
            // could otherwise leave nobody to hear about it).
            Kind::ChannelFailing | Kind::ChannelRecovered => {
                let failing = n.key.as_deref().unwrap_or("");
                return (0..self.channels.len())
                    .filter(|&i| self.channels[i] != failing)
                    .collect();
            }
            Kind::Test => {
                return match n.key.as_deref() {
                    Some(c) => self
                        .channels
                        .iter()
                        .position(|x| x == c)
                        .into_iter()
                        .collect(),
                    None => (0..self.channels.len()).collect(),
                }
            }
            _ => {}
        }
        if self.routes.is_empty() {
            return if n.kind.per_check() {
                Vec::new()
            } else {
                (0..self.channels.len()).collect()
            };
        }
        let mut out: Vec<usize> = Vec::new();
        for r in self.routes.iter().filter(|r| Self::matches(r, n)) {
            for c in &r.channels {
                // A route may name a channel that is not configured: skipped (it is
                // reported once at start-up).
                if let Some(i) = self.channels.iter().position(|x| x == c) {
                    if !out.contains(&i) {
                        out.push(i);
                    }
                }
            }
        }
        out.sort_unstable();
        out
    }

    /// Routes a storm: each channel gets one notification listing the items routed to
    /// it (or the item itself when only one is).
    pub fn route_group(&self, group: &Notification) -> Vec<(usize, Notification)> {
        let mut per: Vec<Vec<Notification>> = vec![Vec::new(); self.channels.len()];
        for item in &group.items {
            for c in self.route(item) {
                per[c].push(item.clone());
            }
        }
        let mut out = Vec::new();
        for (c, items) in per.into_iter().enumerate() {
            match items.len() {
                0 => {}
                1 => out.extend(items.into_iter().map(|n| (c, n))),
                _ => {
                    let mut g = group.clone();
                    g.level = items
                        .iter()
                        .map(|n| n.level)
                        .max_by_key(|l| l.severity())
                        .unwrap_or(LevelName::Unknown);
                    g.state = format!("{} hosts", distinct_hosts(&items));
                    g.items = items;
                    out.push((c, g));
                }
            }
        }
        out
    }
}

pub fn distinct_hosts(items: &[Notification]) -> usize {
    let mut hosts: Vec<&str> = items.iter().map(|n| n.host.as_str()).collect();
    hosts.sort_unstable();
    hosts.dedup();
    hosts.len()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Patterns;

    #[test]
    fn globs() {
        assert!(glob("*", "anything"));
        assert!(glob("web*", "web1"));
        assert!(glob("WEB?", "web1"));
        assert!(!glob("web?", "web12"));
        assert!(glob("*.example.org", "a.b.example.org"));
        assert!(glob("db*-*", "db1-eu"));
        assert!(!glob("db*-*", "db1eu"));
        assert!(glob("a*b*c", "axxbyyc"));
        assert!(!glob("a*b*c", "axxbyy"));
        assert!(glob("", ""));
        assert!(!glob("", "x"));
    }

    fn n(kind: Kind, host: &str, level: LevelName) -> Notification {
        Notification {
            id: "1".into(),
            kind,
            host: host.into(),
            key: None,
            state: level.as_str().into(),
            from: None,
            level,
            since_ms: 0,
            ts_ms: 0,
            message: String::new(),
            checks: Vec::new(),
            flap_percent: None,
            items: Vec::new(),
        }
    }

    fn chans() -> Vec<String> {
        vec!["pushover".into(), "email".into(), "mattermost".into()]
    }

    #[test]
    fn without_routes_everything_but_checks_goes_everywhere() {
        let r = Router::new(Vec::new(), chans());
        assert_eq!(r.route(&n(Kind::Down, "a", LevelName::Critical)), [0, 1, 2]);
        assert!(r.route(&n(Kind::Check, "a", LevelName::Warning)).is_empty());
    }

    #[test]
    fn routes_select_by_host_kind_and_level() {
        let routes = vec![
            Route {
                hosts: Patterns(vec!["db*".into()]),
                kinds: None,
                levels: Some(vec![LevelName::Critical, LevelName::Ok]),
                channels: vec!["pushover".into()],
            },
            Route {
                hosts: Patterns::default(),
                kinds: Some(vec![Kind::Down, Kind::Up, Kind::Check]),
                levels: None,
                channels: vec!["email".into(), "nonexistent".into()],
            },
        ];
        let r = Router::new(routes, chans());
        assert_eq!(r.route(&n(Kind::Down, "db1", LevelName::Critical)), [0, 1]);
        assert_eq!(
            r.route(&n(Kind::Level, "db1", LevelName::Warning)),
            Vec::<usize>::new()
        );
        assert_eq!(r.route(&n(Kind::Level, "db1", LevelName::Critical)), [0]);
        assert_eq!(r.route(&n(Kind::Down, "web1", LevelName::Critical)), [1]);
        assert_eq!(r.route(&n(Kind::Check, "web1", LevelName::Warning)), [1]);
        let mut f = n(Kind::ChannelFailing, "hbd", LevelName::Critical);
        f.key = Some("email".into());
        assert_eq!(r.route(&f), [0, 2]);
    }

    #[test]
    fn groups_are_split_per_channel() {
        let routes = vec![
            Route {
                hosts: Patterns(vec!["db*".into()]),
                kinds: None,
                levels: None,
                channels: vec!["pushover".into()],
            },
            Route {
                hosts: Patterns::default(),
                kinds: None,
                levels: None,
                channels: vec!["email".into()],
            },
        ];
        let r = Router::new(routes, chans());
        let mut g = n(Kind::Storm, "hbd", LevelName::Critical);
        g.items = vec![
            n(Kind::Down, "db1", LevelName::Critical),
            n(Kind::Down, "web1", LevelName::Critical),
            n(Kind::Down, "web2", LevelName::Critical),
        ];
        let out = r.route_group(&g);
        assert_eq!(out.len(), 2);
        assert_eq!(
            (out[0].0, out[0].1.kind),
            (0, Kind::Down),
            "one item: sent as is"
        );
        assert_eq!(
            (out[1].0, out[1].1.kind, out[1].1.items.len()),
            (1, Kind::Storm, 3)
        );
        assert_eq!(out[1].1.state, "3 hosts");
    }
}
