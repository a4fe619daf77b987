//! hbc's configuration: the YAML file (shared with hbd, whose keys are ignored here),
//! embedded defaults, and errors that name the key and the line.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

pub use hb_config::parse_duration;
pub use hb_config::ConfigError;
use hb_config::{duration, opt_duration};

use crate::thresholds::ThresholdSpec;

/// The variable that passes the host root to the plugins (`hbc_plugin_support::host_root`
/// reads the same name); hbc also takes it as `--host-root`'s default.
pub const HOST_ROOT_ENV: &str = "HBC_HOST_ROOT";

/// Default UDP port of hbd's heartbeat listener.
pub const DEFAULT_HB_PORT: u16 = 50003;
/// The system-wide plugin folder.
#[cfg(not(any(windows, target_os = "macos")))]
pub const SYSTEM_PLUGIN_DIR: &str = "/usr/lib/hbc/plugins";
/// The system-wide plugin folder (Homebrew-style prefix: `/usr/lib` is read-only on macOS).
#[cfg(target_os = "macos")]
pub const SYSTEM_PLUGIN_DIR: &str = "/usr/local/lib/hbc/plugins";
/// On Windows the system folders depend on the machine: see [`system_plugin_dirs`].
#[cfg(windows)]
pub const SYSTEM_PLUGIN_DIR: &str = "";

/// The system-wide plugin folders: [`SYSTEM_PLUGIN_DIR`]; on Windows
/// `%ProgramData%\hbc\plugins`, then `plugins` in the folder holding `hbc.exe`.
pub fn system_plugin_dirs() -> Vec<PathBuf> {
    #[cfg(windows)]
    {
        let mut dirs = Vec::new();
        if let Some(data) = std::env::var_os("ProgramData").filter(|d| !d.is_empty()) {
            dirs.push(PathBuf::from(data).join("hbc").join("plugins"));
        }
        if let Some(dir) = std::env::current_exe()
            .ok()
            .and_then(|e| e.parent().map(Path::to_path_buf))
        {
            dirs.push(dir.join("plugins"));
        }
        dirs
    }
    #[cfg(not(windows))]
    {
        vec![PathBuf::from(SYSTEM_PLUGIN_DIR)]
    }
}

/// The system-wide config file: `/etc/hbc.yaml`, `/usr/local/etc/hbc.yaml` on macOS,
/// `%ProgramData%\hbc\hbc.yaml` on Windows.
pub fn system_config_file() -> PathBuf {
    #[cfg(windows)]
    {
        let data = std::env::var_os("ProgramData").unwrap_or_else(|| "C:\\ProgramData".into());
        PathBuf::from(data).join("hbc").join("hbc.yaml")
    }
    #[cfg(target_os = "macos")]
    {
        PathBuf::from("/usr/local/etc/hbc.yaml")
    }
    #[cfg(not(any(windows, target_os = "macos")))]
    {
        PathBuf::from("/etc/hbc.yaml")
    }
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

/// Refreshes per interval by default: with two, hbd sees a datagram every third of an
/// interval, so a false DOWN (deadline 2.5 intervals) takes seven lost in a row
/// (docs/faults.md, "Packet loss").
pub const DEFAULT_REFRESHES: u32 = 2;
/// Most refreshes per interval: each costs a datagram per server.
pub const MAX_REFRESHES: u32 = 9;

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
    pub secret: Option<hb_config::Secret>,
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
    /// Refreshes per interval: the heartbeat's smallest datagram sent again, evenly
    /// spaced between heartbeats with a new send time (docs/protocol.md "Refreshes").
    /// They keep the host alive at hbd through lost datagrams; 0 turns them off.
    pub refreshes: u32,
    /// Where hbc keeps what must outlive it (crash markers, quarantined plugins);
    /// default: `$STATE_DIRECTORY`, `/var/lib/hbc` for root, else
    /// `$XDG_STATE_HOME/hbc` or `~/.local/state/hbc`.
    pub state_dir: Option<PathBuf>,
    /// Consecutive samples needed before a reading's level changes (default for rules).
    pub samples: u32,
    /// Where the monitored host's `/proc`, `/sys` and `/` are mounted when hbc runs in a
    /// container (`/host`; docs/containers.md). The bundled plugins read them there.
    pub host_root: Option<PathBuf>,
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
            refreshes: DEFAULT_REFRESHES,
            state_dir: None,
            samples: 1,
            host_root: None,
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
        let mut doc = hb_config::Document::new(text, path);
        let config: Config = doc.section()?;
        config.validate().map_err(|m| doc.invalid(m))?;
        Ok((config, doc.warnings(hb_config::keys::is_server_key)))
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
        if self.refreshes > MAX_REFRESHES {
            return Err(format!(
                "refreshes: {} is too many; use 0-{MAX_REFRESHES} (default {DEFAULT_REFRESHES})",
                self.refreshes
            ));
        }
        if self.samples == 0 {
            return Err("samples: must be at least 1".into());
        }
        if let Some(root) = &self.host_root {
            if !root.is_absolute() {
                return Err(format!(
                    "host_root: {} is not an absolute path (e.g. /host)",
                    root.display()
                ));
            }
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

    /// Loads `explicit`, else `~/.hb.yaml`, else the system file ([`system_config_file`]:
    /// `/etc/hbc.yaml` on Linux), else embedded defaults.
    pub fn load(explicit: Option<&Path>) -> Result<(Config, Source, Vec<String>), ConfigError> {
        let system = system_config_file();
        match hb_config::read_config_file(explicit, &system.to_string_lossy()) {
            Ok(Some((path, text))) => {
                let (c, mut w) = Config::parse(&text, &path)?;
                let secrets: &[&str] = if c.secret.is_some() { &["secret"] } else { &[] };
                w.extend(hb_config::readable_secrets_warning(&path, secrets));
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

    /// hb-config's list of hbc's keys (which hbd reads to stay silent about them) names
    /// every key hbc reads.
    #[test]
    fn every_key_is_listed_as_hbc_s() {
        for k in hb_config::fields_of::<Config>() {
            assert!(
                hb_config::keys::is_client_key(k),
                "{k} is missing from hb_config::keys::CLIENT_KEYS"
            );
            assert!(
                !hb_config::keys::is_server_key(k) || hb_config::keys::SHARED_KEYS.contains(k),
                "{k} is hbd's too"
            );
        }
    }

    #[test]
    fn unknown_keys_warn() {
        let (_, w) = parse("intervall: 5\n").expect("parses");
        assert_eq!(w.len(), 1);
        assert!(w[0].contains("intervall"), "{w:?}");
    }
}
