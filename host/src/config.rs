//! hbc's configuration: the YAML file (shared with hbd, whose keys are ignored here),
//! embedded defaults, and errors that name the key and the line.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

pub use hb_proto::config::parse_duration;
use hb_proto::config::{duration, opt_duration};

use crate::thresholds::ThresholdSpec;

/// Default UDP port of hbd's heartbeat listener.
pub const DEFAULT_HB_PORT: u16 = 50003;
/// The system-wide plugin folder.
pub const SYSTEM_PLUGIN_DIR: &str = "/usr/lib/hbc/plugins";

/// Top-level keys that belong to hbd; hbc ignores them silently because both programs
/// read the same `~/.hb.yaml`.
const SERVER_KEYS: &[&str] = &[
    "hbd_port",
    "ws_port",
    "bind",
    "logfile",
    "watchhosts",
    "data_dir",
    "api_token",
    "dyndnshosts",
    "pushsrv",
    "mailfrom",
    "mailto",
    "smtpserver",
    "smtpport",
    "smtpuser",
    "smtppass",
    "grace",
    "templates_dir",
    "static_dir",
    "notify",
    "silences",
    "tls",
    "tls_cert",
    "tls_key",
    "ws_allowed_origins",
    "max_hosts",
    "pidfile",
    "startup_grace",
    "time_window",
    "snapshot_interval",
    "udp_rcvbuf",
    "ingest_threads",
    "ws_client_buffer",
    "max_heartbeat_bytes",
    "dyndns2_url",
    "dyndns2_user",
    "dyndns2_password",
    "api_rate_limit",
    "api_rate_burst",
    "udp_rate_limit",
    "udp_rate_burst",
];
const SERVER_KEY_PREFIXES: &[&str] = &[
    "journal_",
    "pushover_",
    "mattermost_",
    "smtp_",
    "mail_",
    "dns_",
    "dyndns_",
    "notify_",
    "history_",
    "dashboard_",
];

/// A config error, shown to a person.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config file {path}: {message}")]
    Invalid { path: PathBuf, message: String },
}

/// Per-plugin settings (`plugins.<name>`).
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct PluginConfig {
    pub enabled: bool,
    /// Collection interval; defaults to the heartbeat interval.
    #[serde(deserialize_with = "opt_duration")]
    pub interval: Option<Duration>,
    /// How long one collect may take before its readings go UNKNOWN.
    #[serde(deserialize_with = "opt_duration")]
    pub timeout: Option<Duration>,
    /// Run the plugin in a supervised child process.
    pub isolate: bool,
    /// The plugin's own options, passed to it as JSON.
    pub options: serde_json::Value,
}

impl Default for PluginConfig {
    fn default() -> Self {
        PluginConfig {
            enabled: true,
            interval: None,
            timeout: None,
            isolate: false,
            options: serde_json::Value::Object(Default::default()),
        }
    }
}

/// hbc's configuration after defaults are applied.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct Config {
    /// Default UDP port of servers named without one.
    pub hb_port: u16,
    /// Heartbeat interval.
    #[serde(deserialize_with = "duration")]
    pub interval: Duration,
    /// Shared secret: every datagram is signed with HMAC-SHA256 when set.
    pub secret: Option<hb_proto::config::Secret>,
    /// Servers to send to, in addition to those on the command line.
    pub servers: Vec<String>,
    /// Host name to report; defaults to the system's host name.
    pub hostname: Option<String>,
    /// Extra plugin folders, searched after the system folder.
    pub plugin_dirs: Vec<PathBuf>,
    /// Test-load every plugin in a child process before loading it into hbc, so a
    /// library that crashes when loaded cannot take hbc down.
    pub plugin_probe: bool,
    /// Refuse plugin files and folders that others than root or hbc's user own or may
    /// write (like OpenSSH's StrictModes). Turn off only for development.
    pub plugin_strict_modes: bool,
    /// How often plugin folders are rescanned for new or changed libraries.
    #[serde(deserialize_with = "duration")]
    pub plugin_rescan: Duration,
    /// Default timeout of one collect call.
    #[serde(deserialize_with = "duration")]
    pub plugin_timeout: Duration,
    /// Largest datagram sent; larger heartbeats are split.
    pub max_datagram: usize,
    /// Consecutive samples needed before a reading's level changes (default for rules).
    pub samples: u32,
    pub plugins: BTreeMap<String, PluginConfig>,
    pub thresholds: BTreeMap<String, ThresholdSpec>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            hb_port: DEFAULT_HB_PORT,
            interval: Duration::from_secs(10),
            secret: None,
            servers: Vec::new(),
            hostname: None,
            plugin_dirs: Vec::new(),
            plugin_probe: true,
            plugin_strict_modes: true,
            plugin_rescan: Duration::from_secs(10),
            plugin_timeout: Duration::from_secs(5),
            max_datagram: hb_proto::DEFAULT_MAX_DATAGRAM,
            samples: 1,
            plugins: BTreeMap::new(),
            thresholds: BTreeMap::new(),
        }
    }
}

/// Where the config came from, for messages.
#[derive(Debug, Clone)]
pub enum Source {
    File(PathBuf),
    Embedded,
}

impl Config {
    /// Parses YAML text. Unknown keys (not hbd's either) come back as warnings.
    pub fn parse(text: &str, path: &Path) -> Result<(Config, Vec<String>), ConfigError> {
        let invalid = |message: String| ConfigError::Invalid {
            path: path.to_path_buf(),
            message,
        };
        if text.trim().is_empty() {
            return Ok((Config::default(), Vec::new()));
        }
        let mut unknown = Vec::new();
        let de = serde_norway::Deserializer::from_str(text);
        let config: Config = serde_ignored::deserialize(de, |p| {
            let top = hb_proto::config::top_level_key(&p);
            let server = SERVER_KEYS.contains(&top.as_str())
                || SERVER_KEY_PREFIXES.iter().any(|pre| top.starts_with(pre));
            if !server {
                unknown.push(p.to_string());
            }
        })
        .map_err(|e| invalid(complete_key_path(&e, text)))?;
        config.validate().map_err(invalid)?;
        let warnings = unknown
            .into_iter()
            .map(|k| {
                format!(
                    "config file {}: unknown key `{k}` is ignored (check its spelling)",
                    path.display()
                )
            })
            .collect();
        Ok((config, warnings))
    }

    fn validate(&self) -> Result<(), String> {
        if self.interval < Duration::from_millis(100) {
            return Err(format!(
                "interval: {:?} is too short; use at least 100ms",
                self.interval
            ));
        }
        if self.hb_port == 0 {
            return Err("hb_port: 0 is not a port; use 1-65535 (default 50003)".into());
        }
        if !(1200..=65507).contains(&self.max_datagram) {
            return Err(format!(
                "max_datagram: {} is out of range; use 1200-65507 (default 1400)",
                self.max_datagram
            ));
        }
        if self.samples == 0 {
            return Err("samples: must be at least 1".into());
        }
        if let Some(h) = &self.hostname {
            if !hb_proto::valid_host_name(h) {
                return Err(format!(
                    "hostname: {h:?} is not a valid host name (letters, digits, '.', '-', '_')"
                ));
            }
        }
        if let Some(s) = &self.secret {
            let s = s.expose();
            if s.is_empty() {
                return Err("secret: is empty; remove the key or set a long random string".into());
            }
        }
        for (name, p) in &self.plugins {
            if let Some(t) = p.timeout {
                if t.is_zero() {
                    return Err(format!("plugins.{name}.timeout: must be more than 0"));
                }
            }
            if let Some(i) = p.interval {
                if i < Duration::from_millis(100) {
                    return Err(format!("plugins.{name}.interval: use at least 100ms"));
                }
            }
        }
        crate::thresholds::Thresholds::compile(&self.thresholds, self.samples)
            .map_err(|e| format!("thresholds: {e}"))?;
        Ok(())
    }

    /// Loads `explicit`, else `~/.hb.yaml`, else `/etc/hbc.yaml`, else embedded defaults.
    pub fn load(explicit: Option<&Path>) -> Result<(Config, Source, Vec<String>), ConfigError> {
        match hb_proto::config::read_config_file(explicit, "/etc/hbc.yaml") {
            Ok(Some((path, text))) => {
                let (c, mut w) = Config::parse(&text, &path)?;
                let secrets: &[&str] = if c.secret.is_some() { &["secret"] } else { &[] };
                w.extend(hb_proto::config::readable_secrets_warning(&path, secrets));
                Ok((c, Source::File(path), w))
            }
            Ok(None) => Ok((Config::default(), Source::Embedded, Vec::new())),
            Err((path, source)) => Err(ConfigError::Read { path, source }),
        }
    }

    /// The settings of plugin `name` (defaults when it has no section).
    pub fn plugin(&self, name: &str) -> PluginConfig {
        self.plugins.get(name).cloned().unwrap_or_default()
    }
}

/// serde's path stops at the map holding a field whose own deserializer failed
/// (`plugins.cpu: "soon" is not a duration`); add the key from the line the error points
/// at, so the message names `plugins.cpu.timeout`.
fn complete_key_path(e: &serde_norway::Error, text: &str) -> String {
    let msg = e.to_string();
    let Some(loc) = e.location() else { return msg };
    let Some(line) = text.lines().nth(loc.line().saturating_sub(1)) else {
        return msg;
    };
    let Some((key, _)) = line.trim_start().trim_start_matches("- ").split_once(':') else {
        return msg;
    };
    let key = key.trim();
    match msg.split_once(": ") {
        Some((path, rest))
            if !path.contains(' ')
                && !path.ends_with(key)
                && !key.is_empty()
                && !key.contains(' ') =>
        {
            format!("{path}.{key}: {rest}")
        }
        _ => msg,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<(Config, Vec<String>), String> {
        Config::parse(text, Path::new("test.yaml")).map_err(|e| e.to_string())
    }

    #[test]
    fn full_config_parses() {
        let (c, warnings) = parse(
            "hb_port: 6000\ninterval: 2s\nsecret: abc\nplugin_dirs: [/opt/p]\n\
             plugins:\n  cpu:\n    interval: 5\n    timeout: 1s\n    isolate: true\n    options: {per_core: false}\n\
             thresholds:\n  cpu.usage_percent: {warn: 80, crit: \"95\", samples: 3}\n\
             hbd_port: 50004\njournal_keep: 4\nwatchhosts: [a]\n",
        )
        .expect("parses");
        assert_eq!(c.hb_port, 6000);
        assert_eq!(c.interval, Duration::from_secs(2));
        assert_eq!(c.plugin("cpu").interval, Some(Duration::from_secs(5)));
        assert!(c.plugin("cpu").isolate);
        assert!(c.plugin("memory").enabled);
        assert!(
            warnings.is_empty(),
            "server keys are not warned about: {warnings:?}"
        );
    }

    #[test]
    fn bad_value_names_key_and_line() {
        let err = parse("hb_port: 50003\ninterval: soon\n").expect_err("bad");
        assert!(err.contains("interval"), "{err}");
        assert!(err.contains("line 2"), "{err}");
        let err = parse("plugins:\n  cpu:\n    isolate: maybe\n").expect_err("bad");
        assert!(
            err.contains("plugins.cpu.isolate") || err.contains("isolate"),
            "{err}"
        );
        assert!(err.contains("line 3"), "{err}");
        let err = parse("thresholds:\n  cpu.usage_percent: {warn: \"20:10\"}\n").expect_err("bad");
        assert!(err.contains("cpu.usage_percent"), "{err}");
    }

    /// Found by the `config` fuzz target (hbd's keys are warned about by neither program
    /// when they share a file): hbd's rate limits were unknown keys to hbc.
    #[test]
    fn rate_limit_keys_belong_to_hbd() {
        for text in [
            "api_rate_limit: 20\n",
            "api_rate_burst: 40\n",
            "udp_rate_limit: 5\n",
            "udp_rate_burst: 10\n",
        ] {
            let (_, w) = parse(text).expect("parses");
            assert!(w.is_empty(), "{text:?}: {w:?}");
        }
    }

    /// Found by the `config` fuzz target: a key holding dots is a key of its own.
    #[test]
    fn dotted_keys_are_not_taken_for_nested_ones() {
        let (_, w) = parse("hbd_port.x: 3\n").expect("parses");
        assert_eq!(w.len(), 1, "{w:?}");
        assert!(w[0].contains("`hbd_port.x`"), "{w:?}");
    }

    #[test]
    fn unknown_keys_warn() {
        let (_, w) = parse("intervall: 5\n").expect("parses");
        assert_eq!(w.len(), 1);
        assert!(w[0].contains("intervall"), "{w:?}");
    }
}
