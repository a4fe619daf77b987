//! The history settings: `remote_write` (where readings go) and the `history_*` keys
//! (`history_url` to read them back, buffer and batch sizes), one section of the flat
//! config file ([`HistoryConfig`]), and their checks.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use crate::glob::Glob;
pub use hb_config::Secret;

/// Samples held per remote_write target while its database is away, by default.
pub const DEFAULT_BUFFER: usize = 500_000;
/// Samples per remote_write request, by default (Prometheus' own sender sends 2,000).
pub const DEFAULT_BATCH: usize = 5_000;
/// Largest `history_buffer`: at about 60 bytes a buffered sample (measured with
/// bench/history.sh), 6 GB; past that use more targets or a database nearer by.
pub const MAX_BUFFER: usize = 100_000_000;

/// One `remote_write` entry.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RemoteWrite {
    /// `http(s)://host:port/api/v1/write` (Prometheus, VictoriaMetrics, Mimir...).
    pub url: String,
    /// HTTP Basic authentication.
    pub user: Option<String>,
    pub password: Option<Secret>,
    /// `Authorization: Bearer ...`.
    pub bearer_token: Option<Secret>,
    /// PEM file of the CA certificates the database's certificate is checked against
    /// (instead of the web's usual roots).
    pub ca_file: Option<PathBuf>,
    /// Reading keys sent (globs, `*` and `?`); empty: every numeric reading.
    pub include: Vec<String>,
    /// Reading keys not sent (globs), applied after `include`.
    pub exclude: Vec<String>,
    /// Labels added to every series sent here (`{datacenter: fra1}`).
    pub labels: BTreeMap<String, String>,
    /// Samples held for this target while it is away (default `history_buffer`).
    pub buffer: Option<usize>,
}

/// The history section: `remote_write` and `history_*`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default)]
pub struct HistoryConfig {
    /// Where readings are sent; empty: nowhere.
    pub remote_write: Vec<RemoteWrite>,
    /// A PromQL HTTP API (`http://127.0.0.1:9090` for Prometheus, `:8428` for
    /// VictoriaMetrics) the dashboard charts readings from.
    pub history_url: Option<String>,
    /// HTTP Basic user for `history_url` (as a `remote_write` entry's `user`).
    pub history_user: Option<String>,
    pub history_password: Option<Secret>,
    /// `Authorization: Bearer ...` for `history_url`.
    pub history_bearer_token: Option<Secret>,
    /// PEM file of the CA certificates `history_url`'s certificate is checked against.
    pub history_ca_file: Option<PathBuf>,
    /// Samples held per target while its database is away (the oldest are dropped, and
    /// counted, past this).
    pub history_buffer: usize,
    /// Samples per request.
    pub history_batch: usize,
    /// Longest a sample waits before it is sent.
    #[serde(deserialize_with = "hb_config::duration")]
    pub history_flush: Duration,
    /// Timeout of one request (writes and dashboard queries).
    #[serde(deserialize_with = "hb_config::duration")]
    pub history_timeout: Duration,
}

impl Default for HistoryConfig {
    fn default() -> Self {
        HistoryConfig {
            remote_write: Vec::new(),
            history_url: None,
            history_user: None,
            history_password: None,
            history_bearer_token: None,
            history_ca_file: None,
            history_buffer: DEFAULT_BUFFER,
            history_batch: DEFAULT_BATCH,
            history_flush: Duration::from_secs(5),
            history_timeout: Duration::from_secs(10),
        }
    }
}

/// Labels hbd sets itself; `labels` may not name them.
pub const OWN_LABELS: &[&str] = &["host", "key", "unit", "__name__"];

/// A Prometheus label name: `[a-zA-Z_][a-zA-Z0-9_]*`, not starting with `__` (reserved).
pub fn valid_label_name(n: &str) -> bool {
    let mut chars = n.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !n.starts_with("__")
}

/// Credentials and CA of one HTTP endpoint (a `remote_write` entry or `history_url`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Access<'a> {
    pub user: Option<&'a str>,
    pub password: Option<&'a Secret>,
    pub bearer_token: Option<&'a Secret>,
    pub ca_file: Option<&'a std::path::Path>,
}

impl RemoteWrite {
    pub fn access(&self) -> Access<'_> {
        Access {
            user: self.user.as_deref(),
            password: self.password.as_ref(),
            bearer_token: self.bearer_token.as_ref(),
            ca_file: self.ca_file.as_deref(),
        }
    }
}

impl HistoryConfig {
    /// `history_url`'s credentials and CA.
    pub fn read_access(&self) -> Access<'_> {
        Access {
            user: self.history_user.as_deref(),
            password: self.history_password.as_ref(),
            bearer_token: self.history_bearer_token.as_ref(),
            ca_file: self.history_ca_file.as_deref(),
        }
    }
}

impl Access<'_> {
    /// The `Authorization` header value, if any (bearer, else Basic).
    pub fn header(&self) -> Option<String> {
        if let Some(t) = self.bearer_token {
            return Some(format!("Bearer {}", t.expose()));
        }
        self.user.map(|u| {
            let pass = self.password.map(|p| p.expose()).unwrap_or("");
            format!("Basic {}", base64(format!("{u}:{pass}").as_bytes()))
        })
    }

    /// Checks that the keys fit together; `names` are the keys' names as the user wrote
    /// them: (user, password, bearer_token).
    fn check(&self, names: [&str; 3]) -> Result<(), String> {
        let [user, password, bearer] = names;
        if self.password.is_some() && self.user.is_none() {
            return Err(format!("{password}: needs {user}"));
        }
        if self.bearer_token.is_some() && self.user.is_some() {
            return Err(format!("{user}/{password} and {bearer} exclude each other"));
        }
        Ok(())
    }
}

/// Standard base64 with padding (for one Basic header; not worth a crate).
pub fn base64(data: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(A[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

fn check_url(key: &str, url: &str) -> Result<(), String> {
    if !(url.starts_with("http://") || url.starts_with("https://")) {
        return Err(format!("{key}: {url:?} is not an http:// or https:// URL"));
    }
    Ok(())
}

/// Checks the section; the message names the key (and entry).
pub fn validate(c: &HistoryConfig) -> Result<(), String> {
    for (i, rw) in c.remote_write.iter().enumerate() {
        let key = format!("remote_write[{i}]");
        check_url(&format!("{key}.url"), &rw.url)?;
        rw.access().check([
            &format!("{key}.user"),
            &format!("{key}.password"),
            &format!("{key}.bearer_token"),
        ])?;
        for (name, _) in rw.labels.iter() {
            if !valid_label_name(name) || OWN_LABELS.contains(&name.as_str()) {
                return Err(format!(
                    "{key}.labels: {name:?} is not a label name hbd may add (letters, digits, _; \
                     not host, key, unit or starting with __)"
                ));
            }
        }
        if let Some(b) = rw.buffer {
            if b < c.history_batch || b > MAX_BUFFER {
                return Err(format!(
                    "{key}.buffer: must be history_batch ({}) to {MAX_BUFFER}",
                    c.history_batch
                ));
            }
        }
        for g in rw.include.iter().chain(&rw.exclude) {
            if g.is_empty() {
                return Err(format!("{key}: an empty include/exclude pattern"));
            }
        }
    }
    match &c.history_url {
        Some(u) => check_url("history_url", u)?,
        None => {
            let set = [
                ("history_user", c.history_user.is_some()),
                ("history_password", c.history_password.is_some()),
                ("history_bearer_token", c.history_bearer_token.is_some()),
                ("history_ca_file", c.history_ca_file.is_some()),
            ];
            if let Some((k, _)) = set.iter().find(|(_, on)| *on) {
                return Err(format!("{k}: needs history_url"));
            }
        }
    }
    c.read_access()
        .check(["history_user", "history_password", "history_bearer_token"])?;
    if c.history_buffer == 0 || c.history_buffer > MAX_BUFFER {
        return Err(format!("history_buffer: must be 1 to {MAX_BUFFER}"));
    }
    if c.history_batch == 0 || c.history_batch > c.history_buffer {
        return Err("history_batch: must be at least 1 and at most history_buffer".into());
    }
    if c.history_flush.is_zero() || c.history_timeout.is_zero() {
        return Err("history_flush, history_timeout: must be more than 0".into());
    }
    Ok(())
}

/// One target's reading filter.
#[derive(Debug, Clone)]
pub struct Filter {
    include: Vec<Glob>,
    exclude: Vec<Glob>,
}

impl Filter {
    pub fn new(rw: &RemoteWrite) -> Filter {
        Filter {
            include: rw.include.iter().map(|g| Glob::new(g)).collect(),
            exclude: rw.exclude.iter().map(|g| Glob::new(g)).collect(),
        }
    }

    /// Whether every key passes (no glob to try on the ingest path).
    pub fn all(&self) -> bool {
        self.include.is_empty() && self.exclude.is_empty()
    }

    pub fn passes(&self, key: &str) -> bool {
        (self.include.is_empty() || self.include.iter().any(|g| g.matches(key)))
            && !self.exclude.iter().any(|g| g.matches(key))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<HistoryConfig, String> {
        let mut doc = hb_config::Document::new(text, std::path::Path::new("t.yaml"));
        let c: HistoryConfig = doc.section().map_err(|e| e.to_string())?;
        validate(&c)?;
        Ok(c)
    }

    #[test]
    fn reads_targets_from_the_flat_file() {
        let c = parse(
            "remote_write:\n  - url: http://127.0.0.1:9090/api/v1/write\n    include: [cpu.*]\n    labels: {dc: fra1}\n  - url: https://vm:8428/api/v1/write\n    bearer_token: t0k\nhistory_url: http://127.0.0.1:9090\nhistory_buffer: 1000\nhistory_batch: 100\nhistory_flush: 2s\n",
        )
        .expect("valid");
        assert_eq!(c.remote_write.len(), 2);
        assert_eq!(c.remote_write[0].labels["dc"], "fra1");
        assert_eq!(c.history_flush, Duration::from_secs(2));
        assert!(format!("{c:?}").contains("***") && !format!("{c:?}").contains("t0k"));
    }

    #[test]
    fn errors_name_the_key() {
        for (text, key) in [
            ("remote_write:\n  - url: ftp://x\n", "remote_write[0].url"),
            (
                "remote_write:\n  - url: http://x\n    labels: {host: a}\n",
                "labels",
            ),
            (
                "remote_write:\n  - url: http://x\n    labels: {__x: a}\n",
                "labels",
            ),
            ("history_url: x\n", "history_url"),
            ("history_buffer: 0\n", "history_buffer"),
            ("history_buffer: 10\nhistory_batch: 11\n", "history_batch"),
            (
                "remote_write:\n  - url: http://x\n    colour: red\n",
                "colour",
            ),
            (
                "remote_write:\n  - url: http://x\n    password: p\n",
                "remote_write[0].password: needs remote_write[0].user",
            ),
            ("history_user: u\n", "history_user: needs history_url"),
            (
                "history_url: http://x\nhistory_password: p\n",
                "history_password: needs history_user",
            ),
            (
                "history_url: http://x\nhistory_user: u\nhistory_bearer_token: t\n",
                "history_user/history_password and history_bearer_token exclude each other",
            ),
        ] {
            let e = parse(text).expect_err(text);
            assert!(e.contains(key), "{text}: {e}");
        }
    }

    #[test]
    fn history_url_takes_the_same_credentials_as_remote_write() {
        let c = parse(
            "history_url: https://prom:9090\nhistory_user: hb\nhistory_password: s3cret\nhistory_ca_file: ca.pem\n",
        )
        .expect("valid");
        let a = c.read_access();
        assert_eq!(a.header().as_deref(), Some("Basic aGI6czNjcmV0"));
        assert_eq!(a.ca_file, Some(std::path::Path::new("ca.pem")));
        assert!(!format!("{c:?}").contains("s3cret"));
        let c = parse("history_url: http://vm:8428\nhistory_bearer_token: t0k\n").expect("valid");
        assert_eq!(c.read_access().header().as_deref(), Some("Bearer t0k"));
        assert_eq!(
            parse("history_url: http://x\n")
                .expect("valid")
                .read_access()
                .header(),
            None
        );
    }

    #[test]
    fn base64_as_rfc4648() {
        for (i, o) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64(i.as_bytes()), o);
        }
    }

    #[test]
    fn filters() {
        let rw = RemoteWrite {
            include: vec!["cpu.*".into(), "mem.used".into()],
            exclude: vec!["cpu.core?.*".into()],
            ..Default::default()
        };
        let f = Filter::new(&rw);
        assert!(f.passes("cpu.usage") && f.passes("mem.used"));
        assert!(!f.passes("cpu.core1.usage") && !f.passes("disk.root"));
        assert!(Filter::new(&RemoteWrite::default()).all());
    }
}
