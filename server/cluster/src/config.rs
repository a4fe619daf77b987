//! The cluster section of the flat config file: `cluster_nats` (non-empty turns cluster
//! mode on), `cluster_node`, `cluster_name`, `cluster_nats_creds`, `cluster_nats_ca`
//! ([`ClusterConfig`]), and the names derived from it (buckets, streams, subjects).

use std::path::PathBuf;

use serde::Deserialize;

/// The `cluster_*` keys (docs/cluster.md).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct ClusterConfig {
    /// `nats://host:port` URLs of the JetStream cluster; empty: single server.
    pub cluster_nats: Vec<String>,
    /// This node's name (default: the machine's host name). Unique in the cluster.
    pub cluster_node: Option<String>,
    /// Prefix of every bucket, stream and subject (default `hbd`): several hbd clusters
    /// can share one NATS cluster.
    pub cluster_name: Option<String>,
    /// NATS credentials file (`.creds`: JWT and NKey seed).
    pub cluster_nats_creds: Option<PathBuf>,
    /// PEM file of the CA the NATS servers' certificates are checked against (TLS on).
    pub cluster_nats_ca: Option<PathBuf>,
}

/// Longest `cluster_node` / `cluster_name` (they become bucket and consumer names).
pub const MAX_NAME: usize = 64;

impl ClusterConfig {
    /// Cluster mode is on.
    pub fn enabled(&self) -> bool {
        !self.cluster_nats.is_empty()
    }

    /// The prefix of buckets and streams.
    pub fn name(&self) -> String {
        self.cluster_name.clone().unwrap_or_else(|| "hbd".into())
    }

    /// This node's name: `cluster_node`, or the host name's first label with other
    /// characters than letters, digits, `-` and `_` replaced by `-`.
    pub fn node(&self) -> String {
        self.cluster_node.clone().unwrap_or_else(|| {
            let h = host_name();
            let first = h.split('.').next().unwrap_or("hbd");
            let clean: String = first
                .chars()
                .take(MAX_NAME)
                .map(|c| {
                    if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                        c
                    } else {
                        '-'
                    }
                })
                .collect();
            if clean.is_empty() {
                "hbd".into()
            } else {
                clean
            }
        })
    }
}

/// The machine's host name (`/proc/sys/kernel/hostname`, else `HOSTNAME`, else `hbd`).
pub fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "hbd".into())
}

/// A name usable in NATS bucket, stream and consumer names: letters, digits, `-`, `_`.
fn valid_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= MAX_NAME
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Checks the section; the error names the key.
pub fn validate(c: &ClusterConfig) -> Result<(), String> {
    for url in &c.cluster_nats {
        let ok =
            ["nats://", "tls://"].iter().any(|p| url.starts_with(p)) && url.len() > "nats://".len();
        if !ok {
            return Err(format!(
                "cluster_nats: {url:?} is not a nats://host:port (or tls://host:port) URL"
            ));
        }
    }
    if !c.enabled() {
        return Ok(());
    }
    if !valid_name(&c.node()) {
        return Err(format!(
            "cluster_node: {:?} must be 1 to {MAX_NAME} letters, digits, '-' or '_'{}",
            c.node(),
            if c.cluster_node.is_none() {
                " (it defaults to the host name; set it)"
            } else {
                ""
            }
        ));
    }
    if !valid_name(&c.name()) {
        return Err(format!(
            "cluster_name: {:?} must be 1 to {MAX_NAME} letters, digits, '-' or '_'",
            c.name()
        ));
    }
    for (key, path) in [
        ("cluster_nats_creds", &c.cluster_nats_creds),
        ("cluster_nats_ca", &c.cluster_nats_ca),
    ] {
        if let Some(p) = path {
            if !p.is_file() {
                return Err(format!("{key}: {} is not a readable file", p.display()));
            }
        }
    }
    Ok(())
}

/// Names of what the cluster keeps in JetStream, all prefixed with `cluster_name`.
#[derive(Debug, Clone)]
pub struct Names {
    /// KV bucket holding the leader lease (one key, `leader`, with the bucket's TTL).
    pub lease: String,
    /// KV bucket of live members (each node's key, refreshed, with a TTL).
    pub members: String,
    /// KV bucket of announced states (what notifications already said, per host).
    pub announced: String,
    /// Stream of mutations (silences, forgotten hosts) every node applies.
    pub mutations: String,
    /// Subject of mutations.
    pub mutation_subject: String,
    /// Work-queue stream of claimed notifications the leader sends.
    pub outbox: String,
    /// Subject of claimed notifications.
    pub outbox_subject: String,
    /// Stream of the events the leader records (a node that was away catches up on it).
    pub events: String,
    pub event_subject: String,
}

impl Names {
    pub fn new(prefix: &str) -> Names {
        Names {
            lease: format!("{prefix}_lease"),
            members: format!("{prefix}_members"),
            announced: format!("{prefix}_announced"),
            mutations: format!("{prefix}_mutations"),
            mutation_subject: format!("{prefix}.mutation"),
            outbox: format!("{prefix}_outbox"),
            outbox_subject: format!("{prefix}.outbox"),
            events: format!("{prefix}_events"),
            event_subject: format!("{prefix}.event"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn off_without_urls_and_names_checked() {
        let mut c = ClusterConfig::default();
        assert!(!c.enabled());
        assert_eq!(validate(&c), Ok(()));
        c.cluster_nats = vec!["nats://127.0.0.1:4222".into()];
        c.cluster_node = Some("a b".into());
        let e = validate(&c).expect_err("bad node name");
        assert!(e.starts_with("cluster_node:"), "{e}");
        c.cluster_node = Some("node-1".into());
        assert_eq!(validate(&c), Ok(()));
        c.cluster_nats.push("http://x".into());
        assert!(validate(&c)
            .expect_err("bad url")
            .starts_with("cluster_nats:"));
        assert_eq!(Names::new("hbd").lease, "hbd_lease");
    }
}
