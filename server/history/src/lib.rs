//! hbd's long-term history (docs/history.md): every numeric reading, and each host's
//! liveness and level, sent to one or more time-series databases as Prometheus
//! remote_write ([`wire`], [`series`]), and read back for the dashboard's charts with
//! PromQL ([`query`]).
//!
//! Ingest hands each accepted datagram to [`History`] as a [`Sink`]; it copies the
//! numeric readings once ([`beat`]) and appends them to each target's bounded
//! [`queue`] (the oldest dropped and counted past `history_buffer`), and one
//! [`sender`] thread per target batches, sends and retries with backoff.
//!
//! **Invariants:** ingest never waits for a database (a short lock to append, nothing
//! else); every sample not delivered is counted by [`DropReason`]; no async runtime, no
//! web framework (blocking ureq on rustls); passwords and tokens never reach logs,
//! status or errors (the URL is shown without user information or query).

pub mod beat;
pub mod config;
pub mod glob;
pub mod query;
pub mod queue;
pub mod sender;
pub mod series;
pub mod wire;

use std::fmt::Write as _;
use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, RwLock};
use std::thread::JoinHandle;

use hbd_core::event::{Event, EventKind};
use hbd_core::sink::Sink;

pub use config::HistoryConfig;
pub use queue::DropReason;

use beat::{Beat, HostState};
use config::{Filter, RemoteWrite};
use queue::{Entry, Queue};

/// A start-up error naming the key.
#[derive(Debug, thiserror::Error)]
#[error("{key}: {message}")]
pub struct StartError {
    pub key: String,
    pub message: String,
}

struct Target {
    queue: Arc<Queue>,
    filter: Filter,
    shown: String,
}

/// What chart queries use: `history_url` with its credentials and TLS settings.
struct Reader {
    url: Option<String>,
    agent: ureq::Agent,
    /// `Authorization` header (`history_user`/`history_password` or
    /// `history_bearer_token`).
    auth: Option<String>,
}

impl Reader {
    fn new(c: &HistoryConfig) -> Result<Reader, StartError> {
        Ok(Reader {
            url: c.history_url.clone(),
            agent: query::agent(
                c.history_timeout,
                tls_config(c.history_ca_file.as_deref(), "history_ca_file")?,
            ),
            auth: c.read_access().header(),
        })
    }
}

/// The running history subsystem.
pub struct History {
    targets: Vec<Target>,
    threads: Mutex<Vec<JoinHandle<()>>>,
    /// Replaced whole on SIGHUP ([`History::reload`]).
    reader: RwLock<Arc<Reader>>,
    /// The settings hbd started with: the export's, which a reload does not change.
    started: HistoryConfig,
}

/// The URL without user information, query or fragment (for logs, labels, status).
pub fn shown_url(url: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("", url));
    let rest = rest.split(['?', '#']).next().unwrap_or("");
    let (authority, path) = match rest.find('/') {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    let authority = authority.rsplit('@').next().unwrap_or(authority);
    format!("{scheme}://{authority}{path}")
}

/// rustls' client settings: the roots from `ca_file` (an error names `ca_key`), else
/// the web's usual roots.
fn tls_config(
    ca_file: Option<&Path>,
    ca_key: &str,
) -> Result<Arc<rustls::ClientConfig>, StartError> {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::CertificateDer;
    let mut roots = rustls::RootCertStore::empty();
    match ca_file {
        Some(path) => {
            let err = |m: String| StartError {
                key: ca_key.to_string(),
                message: format!("{}: {m}", path.display()),
            };
            let certs = CertificateDer::pem_file_iter(path)
                .map_err(|e| err(e.to_string()))?
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| err(e.to_string()))?;
            if certs.is_empty() {
                return Err(err("no PEM certificate in it".into()));
            }
            for c in certs {
                roots.add(c).map_err(|e| err(e.to_string()))?;
            }
        }
        None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let cfg = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| StartError {
            key: ca_key.to_string(),
            message: e.to_string(),
        })?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(cfg))
}

fn client(rw: &RemoteWrite, key: &str, c: &HistoryConfig) -> Result<sender::Client, StartError> {
    let agent = ureq::AgentBuilder::new()
        .timeout_connect(c.history_timeout.min(std::time::Duration::from_secs(5)))
        .timeout(c.history_timeout)
        .user_agent(concat!("hbd/", env!("CARGO_PKG_VERSION")))
        .tls_config(tls_config(
            rw.ca_file.as_deref(),
            &format!("{key}.ca_file"),
        )?)
        .build();
    Ok(sender::Client {
        agent,
        url: rw.url.clone(),
        auth: rw.access().header(),
        shown: shown_url(&rw.url),
    })
}

/// Starts one sender thread per `remote_write` entry (none without any).
pub fn start(c: &HistoryConfig) -> Result<Arc<History>, StartError> {
    let mut targets = Vec::new();
    let mut threads = Vec::new();
    let mut clients = Vec::new();
    for (i, rw) in c.remote_write.iter().enumerate() {
        clients.push(client(rw, &format!("remote_write[{i}]"), c)?);
    }
    for (rw, client) in c.remote_write.iter().zip(clients) {
        let queue = Arc::new(Queue::new(
            rw.buffer.unwrap_or(c.history_buffer),
            c.history_batch,
        ));
        let shown = client.shown.clone();
        let builder = series::Builder::new(&rw.labels);
        let q = queue.clone();
        let flush = c.history_flush;
        let t = std::thread::Builder::new()
            .name("hbd-history".into())
            .spawn(move || sender::run(q, client, builder, flush))
            .map_err(|e| StartError {
                key: "remote_write".into(),
                message: format!("cannot start a sender thread: {e}"),
            })?;
        threads.push(t);
        tracing::info!(target_url = %shown, "remote_write: sending readings");
        targets.push(Target {
            queue,
            filter: Filter::new(rw),
            shown,
        });
    }
    Ok(Arc::new(History {
        targets,
        threads: Mutex::new(threads),
        reader: RwLock::new(Arc::new(Reader::new(c)?)),
        started: c.clone(),
    }))
}

impl History {
    /// Whether any target is configured (else the sink does nothing).
    pub fn exporting(&self) -> bool {
        !self.targets.is_empty()
    }

    fn push(&self, beat: Beat) {
        if beat.is_empty() {
            return;
        }
        let beat = Arc::new(beat);
        for t in &self.targets {
            let (pick, n) = if t.filter.all() {
                (None, beat.len())
            } else {
                let p: Box<[u32]> = (0..beat.len())
                    .filter(|&i| t.filter.passes(beat.reading(i).0))
                    .map(|i| i as u32)
                    .collect();
                let n = p.len();
                (Some(p), n)
            };
            t.queue.push(Entry {
                beat: beat.clone(),
                pick,
                samples: n + beat.state_samples(),
            });
        }
    }

    fn reader(&self) -> Arc<Reader> {
        self.reader
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Whether `history_url` is set (the dashboard offers long-term charts).
    pub fn reads(&self) -> bool {
        self.reader().url.is_some()
    }

    /// SIGHUP: applies `history_url` and its credentials, CA (the file read again) and
    /// timeout at once (chart queries hold no state); returns the changed keys that need
    /// a restart: the export (`remote_write`, `history_buffer`, `history_batch`,
    /// `history_flush`, and `history_timeout` for writes), whose running senders hold
    /// buffered samples and counters. They are compared with what hbd started with, so
    /// every reload repeats them until a restart. A `history_ca_file` that cannot be read
    /// is an error and keeps the running reader.
    pub fn reload(&self, new: &HistoryConfig) -> Result<Vec<String>, StartError> {
        let reader = Reader::new(new)?;
        let old = std::mem::replace(
            &mut *self.reader.write().unwrap_or_else(|p| p.into_inner()),
            Arc::new(reader),
        );
        if old.url != new.history_url {
            tracing::info!(
                history_url = %new.history_url.as_deref().map(shown_url).unwrap_or_default(),
                "SIGHUP: history_url applied"
            );
        }
        let s = &self.started;
        let mut restart = Vec::new();
        if s.remote_write != new.remote_write {
            restart.push("remote_write");
        }
        if s.history_buffer != new.history_buffer {
            restart.push("history_buffer");
        }
        if s.history_batch != new.history_batch {
            restart.push("history_batch");
        }
        if s.history_flush != new.history_flush {
            restart.push("history_flush");
        }
        if s.history_timeout != new.history_timeout && !s.remote_write.is_empty() {
            restart.push("history_timeout (for remote_write; chart queries use the new one)");
        }
        Ok(restart
            .into_iter()
            .map(|k| {
                format!(
                    "{k} changed: the running export keeps the old setting until hbd is restarted"
                )
            })
            .collect())
    }

    /// Reads one reading of one host back from `history_url` (blocking).
    pub fn query(
        &self,
        host: &str,
        key: &str,
        range: query::Range,
        now_ms: u64,
    ) -> Option<Result<Vec<query::Points>, query::QueryError>> {
        let reader = self.reader();
        let base = reader.url.as_deref()?;
        Some(query::query_range(
            &reader.agent,
            base,
            reader.auth.as_deref(),
            host,
            key,
            range,
            now_ms / 1000,
        ))
    }

    /// The `/metrics` families (nothing without targets).
    pub fn metrics_text(&self, out: &mut String) {
        if self.targets.is_empty() {
            return;
        }
        let esc = |s: &str| {
            s.replace('\\', "\\\\")
                .replace('"', "\\\"")
                .replace('\n', "\\n")
        };
        type Get = fn(&Queue) -> u64;
        let families: [(&str, &str, &str, Get); 5] = [
            (
                "hbd_history_sent_samples_total",
                "counter",
                "Samples a remote_write target accepted.",
                |q| q.counters.sent_samples.load(Ordering::Relaxed),
            ),
            (
                "hbd_history_sent_bytes_total",
                "counter",
                "Request bytes (snappy-compressed protobuf) a remote_write target accepted.",
                |q| q.counters.sent_bytes.load(Ordering::Relaxed),
            ),
            (
                "hbd_history_requests_total",
                "counter",
                "remote_write requests made, retries included.",
                |q| q.counters.requests.load(Ordering::Relaxed),
            ),
            (
                "hbd_history_retries_total",
                "counter",
                "remote_write requests that failed and were tried again (database away, 5xx, 429).",
                |q| q.counters.retries.load(Ordering::Relaxed),
            ),
            (
                "hbd_history_buffered_samples",
                "gauge",
                "Samples waiting for a remote_write target: in its buffer (at most its buffer) or in the request being sent (at most history_batch).",
                |q| q.pending() as u64,
            ),
        ];
        for (name, kind, help, get) in families {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
            for (i, t) in self.targets.iter().enumerate() {
                let _ = writeln!(
                    out,
                    "{name}{{target=\"{i}\",url=\"{}\"}} {}",
                    esc(&t.shown),
                    get(&t.queue)
                );
            }
        }
        let name = "hbd_history_dropped_samples_total";
        let _ = writeln!(out, "# HELP {name} Samples never delivered to a remote_write target, by reason.\n# TYPE {name} counter");
        for (i, t) in self.targets.iter().enumerate() {
            for r in DropReason::ALL {
                let _ = writeln!(
                    out,
                    "{name}{{target=\"{i}\",url=\"{}\",reason=\"{}\"}} {}",
                    esc(&t.shown),
                    r.as_str(),
                    t.queue.counters.dropped(r)
                );
            }
        }
    }
}

impl Sink for History {
    fn name(&self) -> &'static str {
        "history"
    }

    fn readings(&self, packet: &hb_proto::Packet<'_>, now_ms: u64) {
        if self.exporting() {
            self.push(Beat::of(packet, now_ms));
        }
    }

    fn event(&self, e: &Event) {
        if !self.exporting() {
            return;
        }
        let state = match e.kind {
            EventKind::HostDown => HostState::Down,
            EventKind::HostForgotten => HostState::Forgotten,
            _ => return,
        };
        self.push(Beat::state(&e.host, e.ts_ms, state));
    }

    fn metrics(&self, out: &mut String) {
        self.metrics_text(out);
    }

    fn status(&self) -> serde_json::Value {
        let targets: Vec<serde_json::Value> = self
            .targets
            .iter()
            .map(|t| {
                let c = &t.queue.counters;
                let mut dropped = serde_json::Map::new();
                for r in DropReason::ALL {
                    dropped.insert(r.as_str().into(), c.dropped(r).into());
                }
                serde_json::json!({
                    "url": t.shown,
                    "sent_samples": c.sent_samples.load(Ordering::Relaxed),
                    "buffered_samples": t.queue.pending(),
                    "retries": c.retries.load(Ordering::Relaxed),
                    "dropped_samples": dropped,
                })
            })
            .collect();
        serde_json::json!({ "remote_write": targets, "history_url": self.reader().url.as_deref().map(shown_url) })
    }

    fn shutdown(&self) {
        for t in &self.targets {
            t.queue.stop();
        }
        let threads = std::mem::take(&mut *self.threads.lock().unwrap_or_else(|p| p.into_inner()));
        for t in threads {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_shown_without_credentials() {
        assert_eq!(
            shown_url("https://u:p@vm.example:8428/api/v1/write?token=x#y"),
            "https://vm.example:8428/api/v1/write"
        );
        assert_eq!(shown_url("http://127.0.0.1:9090"), "http://127.0.0.1:9090");
    }

    #[test]
    fn sighup_applies_history_url_and_names_export_keys_needing_a_restart() {
        let h = start(&HistoryConfig::default()).expect("started");
        assert!(!h.reads());
        let mut c = HistoryConfig {
            history_url: Some("http://127.0.0.1:9/".into()),
            ..HistoryConfig::default()
        };
        assert_eq!(h.reload(&c).expect("applied"), Vec::<String>::new());
        assert!(h.reads());
        c.remote_write.push(RemoteWrite {
            url: "http://127.0.0.1:9/api/v1/write".into(),
            ..RemoteWrite::default()
        });
        c.history_batch = 100;
        let p = h.reload(&c).expect("applied");
        assert!(
            p.len() == 2
                && p[0].starts_with("remote_write changed")
                && p[1].starts_with("history_batch changed"),
            "{p:?}"
        );
        // Still not applied: said again on the next reload.
        assert_eq!(h.reload(&c).expect("applied").len(), 2);
        c.history_ca_file = Some("no-such-ca-file.pem".into());
        let e = h.reload(&c).expect_err("unreadable CA");
        assert_eq!(e.key, "history_ca_file");
        assert!(h.reads(), "the running reader is kept");
    }
}
