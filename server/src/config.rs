//! hbd's configuration: YAML shared with hbc (whose keys are ignored here), embedded
//! defaults, and errors that name the key and the line.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Deserializer};

use hb_config::duration;
pub use hb_config::{parse_duration, ConfigError, Secret};
pub use hbd_journal::Fsync;

/// A watched host's own settings.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Watch {
    /// Grace factor for this host (DOWN after interval × grace).
    pub grace: Option<f64>,
}

/// `watchhosts`: a list of names, or a map of name to settings.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct WatchHosts(pub BTreeMap<String, Watch>);

impl<'de> Deserialize<'de> for WatchHosts {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Repr {
            List(Vec<String>),
            Map(BTreeMap<String, Option<Watch>>),
        }
        Ok(
            match Repr::deserialize(d).map_err(|_| {
                serde::de::Error::custom(
                    "expected a list of host names or a map of host name to {grace: N}",
                )
            })? {
                Repr::List(v) => WatchHosts(v.into_iter().map(|n| (n, Watch::default())).collect()),
                Repr::Map(m) => WatchHosts(
                    m.into_iter()
                        .map(|(k, v)| (k, v.unwrap_or_default()))
                        .collect(),
                ),
            },
        )
    }
}

/// hbd's configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct Config {
    pub hb_port: u16,
    pub hbd_port: u16,
    pub ws_port: u16,
    /// Address every listener binds to.
    pub bind: IpAddr,
    pub logfile: Option<PathBuf>,
    pub pidfile: Option<PathBuf>,
    pub secret: Option<Secret>,
    pub api_token: Option<Secret>,
    pub watchhosts: WatchHosts,
    /// DOWN after interval × grace without a heartbeat.
    pub grace: f64,
    #[serde(deserialize_with = "duration")]
    pub startup_grace: Duration,
    /// With a secret: heartbeats whose send time is further than this from hbd's clock
    /// are dropped (replay protection).
    #[serde(deserialize_with = "duration")]
    pub time_window: Duration,
    pub max_hosts: usize,
    /// Distinct readings one host may hold (new keys beyond are skipped and counted).
    pub max_readings_per_host: usize,
    /// Bytes one host's readings may hold (new keys beyond are skipped and counted).
    pub max_host_bytes: usize,
    /// Readings per second one host may have applied; datagrams beyond are dropped
    /// (`host_rate_limited`). 0: no limit.
    pub host_reading_rate: f64,
    /// Readings a host may send at once above `host_reading_rate`.
    pub host_reading_burst: f64,
    pub history_len: usize,
    pub data_dir: Option<PathBuf>,
    /// The journal (`journal_*`).
    #[serde(skip)]
    pub journal: hbd_journal::JournalSettings,
    #[serde(deserialize_with = "duration")]
    pub snapshot_interval: Duration,
    /// Requested UDP receive buffer (bytes), per ingest socket.
    pub udp_rcvbuf: usize,
    /// UDP ingest threads, each with its own `SO_REUSEPORT` socket on `hb_port`.
    pub ingest_threads: usize,
    /// Messages buffered per WebSocket client before it is dropped as too slow.
    pub ws_client_buffer: usize,
    /// WebSocket clients connected at once, both listeners together; one more gets `503`.
    pub ws_max_clients: usize,
    /// WebSocket clients one address (IPv6: its /64) may hold at once; one more gets `429`.
    pub ws_max_clients_per_address: usize,
    /// `/metrics` lists every host (`hbd_host_*`, `hbd_reading`), not only fleet totals.
    pub metrics_per_host: bool,
    /// Largest HTTP heartbeat body and UDP datagram accepted.
    pub max_heartbeat_bytes: usize,
    /// HTTP requests per second per client address (`/healthz` aside); 0: no limit.
    pub api_rate_limit: f64,
    /// HTTP requests a client address may send at once above `api_rate_limit`.
    pub api_rate_burst: f64,
    /// Without a `secret`: datagrams per second per source address; 0: no limit.
    pub udp_rate_limit: f64,
    /// Datagrams a source may send at once above `udp_rate_limit`.
    pub udp_rate_burst: f64,
    /// Dynamic DNS (docs/dyndns.md): `dyndnshosts`, `dns_*`, `dyndns2_*`.
    #[serde(skip)]
    pub dyndns: hbd_dyndns::DyndnsConfig,
    /// Notifications (docs/notifications.md): the `notify_*`, `pushover_*`,
    /// `mattermost_*`, `smtp*`, `mail*` keys and `dashboard_url`.
    #[serde(skip)]
    pub notify: hbd_notify::NotifyConfig,
    /// Long-term history (docs/history.md): `remote_write` and the `history_*` keys.
    #[serde(skip)]
    pub history: hbd_history::HistoryConfig,
    /// Cluster mode (docs/cluster.md): the `cluster_*` keys; off without `cluster_nats`.
    #[serde(skip)]
    pub cluster: hbd_cluster::ClusterConfig,
    /// Folder whose dashboard templates (`*.hbs`) replace the built-in ones, file by file.
    pub templates_dir: Option<PathBuf>,
    /// Folder whose files replace the dashboard's built-in assets (`/static/...`).
    pub static_dir: Option<PathBuf>,
    // Listener security (docs/configuration.md); checked by `security::validate`.
    /// PEM certificate chain: HTTPS and WSS on both listeners (with `tls_key`).
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of `tls_cert`.
    pub tls_key: Option<PathBuf>,
    /// User name to password: HTTP Basic authentication for reading; none: open.
    pub dashboard_users: BTreeMap<String, Secret>,
    /// Origins besides the listener's own that may open a WebSocket.
    pub ws_allowed_origins: Vec<String>,
    /// Names clients may address hbd by (`Host`), against DNS rebinding; empty: the
    /// machine's host name (IP literals and `localhost` always); `["*"]`: no check.
    pub server_names: Vec<String>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            hb_port: 50003,
            hbd_port: 50004,
            ws_port: 50005,
            bind: IpAddr::from([0, 0, 0, 0]),
            logfile: None,
            pidfile: None,
            secret: None,
            api_token: None,
            watchhosts: WatchHosts::default(),
            grace: 2.5,
            startup_grace: Duration::from_secs(60),
            time_window: Duration::from_secs(300),
            max_hosts: 200_000,
            max_readings_per_host: 2_000,
            max_host_bytes: 640 << 10,
            host_reading_rate: 20_000.0,
            host_reading_burst: 40_000.0,
            history_len: 60,
            data_dir: None,
            journal: hbd_journal::JournalSettings::default(),
            snapshot_interval: Duration::from_secs(60),
            udp_rcvbuf: 8 << 20,
            ingest_threads: 2,
            ws_client_buffer: 1024,
            ws_max_clients: crate::ws::DEFAULT_MAX_CLIENTS,
            ws_max_clients_per_address: crate::ws::DEFAULT_MAX_CLIENTS_PER_ADDRESS,
            metrics_per_host: false,
            max_heartbeat_bytes: 65_507,
            api_rate_limit: 50.0,
            api_rate_burst: 500.0,
            udp_rate_limit: 1000.0,
            udp_rate_burst: 10_000.0,
            dyndns: hbd_dyndns::DyndnsConfig::default(),
            notify: hbd_notify::NotifyConfig::default(),
            history: hbd_history::HistoryConfig::default(),
            cluster: hbd_cluster::ClusterConfig::default(),
            templates_dir: None,
            static_dir: None,
            tls_cert: None,
            tls_key: None,
            dashboard_users: BTreeMap::new(),
            ws_allowed_origins: Vec::new(),
            server_names: Vec::new(),
        }
    }
}

impl Config {
    /// Parses YAML text: hbd's own keys and each subsystem's section, all from the same
    /// flat top level. Unknown keys (not hbc's either) come back as warnings.
    pub fn parse(text: &str, path: &Path) -> Result<(Config, Vec<String>), ConfigError> {
        let mut doc = hb_config::Document::new(text, path);
        let mut config: Config = doc.section()?;
        config.journal = doc.section()?;
        config.notify = doc.section()?;
        config.dyndns = doc.section()?;
        config.history = doc.section()?;
        config.cluster = doc.section()?;
        config.fill_in();
        config.validate().map_err(|m| doc.invalid(m))?;
        Ok((config, doc.warnings(hb_config::keys::is_client_key)))
    }

    /// Values one section takes from another.
    fn fill_in(&mut self) {
        let scheme = if self.tls_cert.is_some() {
            "https"
        } else {
            "http"
        };
        self.notify.dashboard_default = format!(
            "{scheme}://{}:{}",
            hbd_notify::config::hostname(),
            self.hbd_port
        );
    }

    fn validate(&self) -> Result<(), String> {
        for (key, rate, burst_key, burst) in [
            (
                "api_rate_limit",
                self.api_rate_limit,
                "api_rate_burst",
                self.api_rate_burst,
            ),
            (
                "udp_rate_limit",
                self.udp_rate_limit,
                "udp_rate_burst",
                self.udp_rate_burst,
            ),
        ] {
            if !(rate.is_finite() && rate >= 0.0) {
                return Err(format!(
                    "{key}: {rate} is not a rate; use a number of requests per second, or 0 for no limit"
                ));
            }
            if rate > 0.0 && !(burst.is_finite() && burst >= 1.0) {
                return Err(format!(
                    "{burst_key}: {burst} is out of range; use at least 1"
                ));
            }
        }
        if !(1..=16).contains(&self.ingest_threads) {
            return Err(format!(
                "ingest_threads: {} is out of range; use 1 to 16 (default 2)",
                self.ingest_threads
            ));
        }
        if !(self.grace >= 1.0 && self.grace <= 1000.0) {
            return Err(format!(
                "grace: {} is out of range; use 1 to 1000 (default 2.5)",
                self.grace
            ));
        }
        for (name, w) in &self.watchhosts.0 {
            if !hb_proto::valid_host_name(name) {
                return Err(format!("watchhosts: {name:?} is not a valid host name"));
            }
            if let Some(g) = w.grace {
                if !(1.0..=1000.0).contains(&g) {
                    return Err(format!(
                        "watchhosts.{name}.grace: {g} is out of range; use 1 to 1000"
                    ));
                }
            }
        }
        self.journal.validate()?;
        if self.max_hosts == 0 {
            return Err("max_hosts: must be at least 1".into());
        }
        if !(1..=65_535).contains(&self.max_readings_per_host) {
            return Err("max_readings_per_host: use 1 to 65535 (default 2000)".into());
        }
        if !(4096..=(64 << 20)).contains(&self.max_host_bytes) {
            return Err("max_host_bytes: use 4096 to 67108864 (default 655360)".into());
        }
        if !(self.host_reading_rate.is_finite() && self.host_reading_rate >= 0.0) {
            return Err(
                "host_reading_rate: use a number of readings per second, or 0 for no limit".into(),
            );
        }
        if self.host_reading_rate > 0.0
            && !(self.host_reading_burst.is_finite() && self.host_reading_burst >= 1.0)
        {
            return Err("host_reading_burst: use at least 1".into());
        }
        if let Some(s) = &self.secret {
            if s.expose().is_empty() {
                return Err("secret: is empty; remove the key or set a long random string".into());
            }
        }
        if let Some(t) = &self.api_token {
            if t.expose().len() < 8 {
                return Err("api_token: use at least 8 characters".into());
            }
        }
        if self.ws_client_buffer == 0 {
            return Err("ws_client_buffer: must be at least 1".into());
        }
        if self.ws_max_clients == 0 || self.ws_max_clients_per_address == 0 {
            return Err(format!(
                "{}: must be at least 1",
                if self.ws_max_clients == 0 {
                    "ws_max_clients"
                } else {
                    "ws_max_clients_per_address"
                }
            ));
        }
        hbd_dyndns::config::validate(&self.dyndns)?;
        hbd_notify::config::validate(&self.notify)?;
        hbd_history::config::validate(&self.history)?;
        hbd_cluster::config::validate(&self.cluster)?;
        crate::security::validate(self)?;
        Ok(())
    }

    /// The HTTP listener's rate limit.
    pub fn api_rate(&self) -> crate::ratelimit::Rate {
        crate::ratelimit::Rate {
            per_second: self.api_rate_limit,
            burst: self.api_rate_burst,
        }
    }

    /// The UDP ingest's limit for unauthenticated datagrams.
    pub fn udp_rate(&self) -> crate::ratelimit::Rate {
        crate::ratelimit::Rate {
            per_second: self.udp_rate_limit,
            burst: self.udp_rate_burst,
        }
    }

    /// The keys set here whose values are secrets (never logged or shown; the config file
    /// holding them should not be readable by every user).
    pub fn secret_keys(&self) -> Vec<&'static str> {
        let set = |o: &Option<Secret>| o.as_ref().is_some_and(|s| !s.expose().is_empty());
        [
            ("secret", set(&self.secret)),
            ("api_token", set(&self.api_token)),
            ("dns_tsig_secret", set(&self.dyndns.dns_tsig_secret)),
            ("dyndns2_password", set(&self.dyndns.dyndns2_password)),
            ("pushover_token", set(&self.notify.pushover_token)),
            ("pushover_user", set(&self.notify.pushover_user)),
            ("mattermost_url", set(&self.notify.mattermost_url)),
            ("mattermost_token", set(&self.notify.mattermost_token)),
            ("smtppass", set(&self.notify.smtppass)),
            ("dashboard_users", !self.dashboard_users.is_empty()),
            (
                "remote_write",
                self.history
                    .remote_write
                    .iter()
                    .any(|r| set(&r.password) || set(&r.bearer_token)),
            ),
        ]
        .into_iter()
        .filter_map(|(k, on)| on.then_some(k))
        .collect()
    }

    /// Loads `explicit`, else `~/.hb.yaml`, else `/etc/hbd.yaml`, else embedded defaults.
    pub fn load(
        explicit: Option<&Path>,
    ) -> Result<(Config, Option<PathBuf>, Vec<String>), ConfigError> {
        match hb_config::read_config_file(explicit, "/etc/hbd.yaml") {
            Ok(Some((path, text))) => {
                let (c, mut w) = Config::parse(&text, &path)?;
                w.extend(hb_config::readable_secrets_warning(&path, &c.secret_keys()));
                Ok((c, Some(path), w))
            }
            Ok(None) => Ok((Config::default(), None, Vec::new())),
            Err((path, source)) => Err(ConfigError::Read { path, source }),
        }
    }

    /// The data folder: `data_dir`, else `/var/lib/hbd` for root, else
    /// `$XDG_STATE_HOME/hbd` or `~/.local/state/hbd`.
    pub fn data_dir(&self) -> PathBuf {
        if let Some(d) = &self.data_dir {
            return d.clone();
        }
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } == 0 {
            return PathBuf::from("/var/lib/hbd");
        }
        if let Some(x) = std::env::var_os("XDG_STATE_HOME") {
            return PathBuf::from(x).join("hbd");
        }
        match std::env::var_os("HOME") {
            Some(h) => PathBuf::from(h).join(".local/state/hbd"),
            None => PathBuf::from("hbd-data"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<(Config, Vec<String>), String> {
        Config::parse(text, Path::new("hbd.yaml")).map_err(|e| e.to_string())
    }

    #[test]
    fn defaults_and_shared_file() {
        let (c, w) = parse(
            "hb_port: 6000\ninterval: 5s\nplugins: {cpu: {isolate: true}}\nwatchhosts: [a, b]\n",
        )
        .expect("ok");
        assert_eq!(c.hb_port, 6000);
        assert_eq!(c.hbd_port, 50004);
        assert_eq!(c.watchhosts.0.len(), 2);
        assert!(w.is_empty(), "hbc keys are not warned about: {w:?}");
    }

    /// hb-config's list of hbd's keys (which hbc reads to stay silent about them) names
    /// every key of every section hbd reads.
    #[test]
    fn every_key_is_listed_as_hbd_s() {
        use hb_config::fields_of;
        let sections = [
            fields_of::<Config>(),
            fields_of::<hbd_journal::JournalSettings>(),
            fields_of::<hbd_notify::NotifyConfig>(),
            fields_of::<hbd_dyndns::DyndnsConfig>(),
            fields_of::<hbd_history::HistoryConfig>(),
            fields_of::<hbd_cluster::ClusterConfig>(),
        ];
        for k in sections.iter().flat_map(|s| s.iter()) {
            assert!(
                hb_config::keys::is_server_key(k),
                "{k} is missing from hb_config::keys::SERVER_KEYS"
            );
            assert!(
                !hb_config::keys::is_client_key(k) || hb_config::keys::SHARED_KEYS.contains(k),
                "{k} is hbc's too"
            );
        }
    }

    #[test]
    fn sections_read_their_keys_from_the_flat_file() {
        let (c, w) =
            parse("journal_keep: 3\nnotify_up_after: 4\ndns_timeout: 2s\nhbd_port: 6001\n")
                .expect("ok");
        assert_eq!(c.journal.journal_keep, 3);
        assert_eq!(c.notify.notify_up_after, 4);
        assert_eq!(c.dyndns.dns_timeout, Duration::from_secs(2));
        assert_eq!(c.hbd_port, 6001);
        assert!(
            c.notify.dashboard_default.ends_with(":6001"),
            "{}",
            c.notify.dashboard_default
        );
        assert!(w.is_empty(), "{w:?}");
        let e = parse("notify_up_after: 0\n").expect_err("bad");
        assert!(e.contains("notify_up_after"), "{e}");
        let e = parse("journal_keep: 0\n").expect_err("bad");
        assert!(e.contains("journal_keep"), "{e}");
        let (_, w) = parse("notify_up_aftr: 3\n").expect("a warning");
        assert!(w[0].contains("notify_up_aftr"), "{w:?}");
    }

    #[test]
    fn watchhosts_as_map() {
        let (c, _) = parse("watchhosts:\n  db1: {grace: 5}\n  web1:\n").expect("ok");
        assert_eq!(c.watchhosts.0["db1"].grace, Some(5.0));
        assert_eq!(c.watchhosts.0["web1"].grace, None);
    }

    #[test]
    fn errors_name_key_and_line() {
        let e = parse("hb_port: 50003\nstartup_grace: later\n").expect_err("bad");
        assert!(e.contains("startup_grace") && e.contains("line 2"), "{e}");
        let e = parse("hbd_port: 99999\n").expect_err("bad");
        assert!(e.contains("hbd_port") && e.contains("line 1"), "{e}");
        let e = parse("journal_fsync: sometimes\n").expect_err("bad");
        assert!(e.contains("journal_fsync"), "{e}");
        let e = parse("watchhosts: ['<script>']\n").expect_err("bad");
        assert!(e.contains("watchhosts"), "{e}");
        let (_, w) = parse("hdb_port: 1\n").expect("unknown key is a warning");
        assert!(w[0].contains("hdb_port"));
    }

    /// Found by the `config` fuzz target (its input, as text): `hostname..` is not hbc's
    /// `hostname` with something below it, and hbd warns about it as hbc does.
    #[test]
    fn dotted_keys_are_not_taken_for_nested_ones() {
        let (_, w) = parse("hostname...: web1.exa-0be.org\ntls_cert: \n").expect("parses");
        assert_eq!(w.len(), 1, "{w:?}");
        assert!(w[0].contains("`hostname...`"), "{w:?}");
    }
}
