//! The notification settings: hbd's `notify_*`, `pushover_*`, `mattermost_*`, `smtp*`
//! and `mail*` keys and `dashboard_url` ([`NotifyConfig`], one section of the flat config
//! file), their validation, and the resolved [`Settings`] the rest of the crate works
//! from.

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Deserializer};

use hbd_core::registry::LevelName;

use super::notification::Kind;

pub use hb_config::Secret;

/// How hbd talks to the SMTP server (`smtp_tls`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SmtpTls {
    /// Plain connection upgraded with STARTTLS, which is required (default port 587).
    #[default]
    Starttls,
    /// TLS from the first byte, "SMTPS" (default port 465).
    Tls,
    /// No encryption, for a relay on the same machine or network (default port 25).
    None,
}

impl SmtpTls {
    pub fn default_port(self) -> u16 {
        match self {
            SmtpTls::Starttls => 587,
            SmtpTls::Tls => 465,
            SmtpTls::None => 25,
        }
    }
}

/// `mailto`: one address or a list.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MailTo(pub Vec<String>);

impl<'de> Deserialize<'de> for MailTo {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Repr {
            One(String),
            Many(Vec<String>),
        }
        Ok(
            match Repr::deserialize(d).map_err(|_| {
                serde::de::Error::custom("expected an e-mail address or a list of addresses")
            })? {
                // "a@x, b@y" in one string is a list too, as in the original system.
                Repr::One(s) => MailTo(
                    s.split(',')
                        .map(str::trim)
                        .filter(|a| !a.is_empty())
                        .map(str::to_string)
                        .collect(),
                ),
                Repr::Many(v) => MailTo(v),
            },
        )
    }
}

/// One glob or a list of them (`hosts: "web*"` or `hosts: [web*, db1]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Patterns(pub Vec<String>);

impl Default for Patterns {
    fn default() -> Self {
        Patterns(vec!["*".to_string()])
    }
}

impl<'de> Deserialize<'de> for Patterns {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Repr {
            One(String),
            Many(Vec<String>),
        }
        Ok(
            match Repr::deserialize(d).map_err(|_| {
                serde::de::Error::custom("expected a host name pattern or a list of them")
            })? {
                Repr::One(s) => Patterns(vec![s]),
                Repr::Many(v) => Patterns(v),
            },
        )
    }
}

/// One entry of `notify_routes`: notifications about matching hosts, of these kinds and
/// levels, go to these channels.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Route {
    /// Host name globs (`*`, `?`); default every host.
    #[serde(default)]
    pub hosts: Patterns,
    /// Notification kinds (`down`, `up`, `level`, ...); default every kind except the
    /// per-check ones (`check`, `check_flapping`, `check_flapping_stopped`).
    #[serde(default)]
    pub kinds: Option<Vec<Kind>>,
    /// Levels (`OK` means recoveries); default every level.
    #[serde(default)]
    pub levels: Option<Vec<LevelName>>,
    /// Channel names: `pushover`, `mattermost`, `mattermost_api`, `email`.
    pub channels: Vec<String>,
}

/// Every channel name a route can use.
pub const CHANNEL_NAMES: &[&str] = &["pushover", "mattermost", "mattermost_api", "email"];

struct DurationOrOff;

impl serde::de::Visitor<'_> for DurationOrOff {
    type Value = Option<Duration>;
    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a duration such as 30m or 4h, or off")
    }
    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Self::Value, E> {
        if matches!(v.trim(), "off" | "no" | "false" | "") {
            return Ok(None);
        }
        let d = hb_config::parse_duration(v).map_err(E::custom)?;
        Ok((!d.is_zero()).then_some(d))
    }
    fn visit_bool<E: serde::de::Error>(self, v: bool) -> Result<Self::Value, E> {
        if v {
            Err(E::custom("give a duration such as 4h, or off"))
        } else {
            Ok(None)
        }
    }
    fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Self::Value, E> {
        self.visit_str(&v.to_string())
    }
    fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Self::Value, E> {
        self.visit_str(&v.to_string())
    }
    fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Self::Value, E> {
        self.visit_str(&v.to_string())
    }
    fn visit_unit<E: serde::de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_none<E: serde::de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }
}

/// A duration, or `off` / `0` / `false` for none (`notify_reminder`).
pub fn duration_or_off<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    d.deserialize_any(DurationOrOff)
}

/// The notification keys of hbd's config file.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct NotifyConfig {
    /// Pushover API base URL.
    pub pushsrv: String,
    pub pushover_token: Option<Secret>,
    pub pushover_user: Option<Secret>,
    /// Mattermost incoming webhook URL (its path is a secret).
    pub mattermost_url: Option<Secret>,
    pub mattermost_api_url: Option<String>,
    pub mattermost_token: Option<Secret>,
    pub mattermost_channel_id: Option<String>,
    pub smtpserver: Option<String>,
    pub smtpport: Option<u16>,
    pub smtpuser: Option<String>,
    pub smtppass: Option<Secret>,
    pub smtp_tls: SmtpTls,
    /// Extra CA certificate (PEM) to trust for the SMTP server.
    pub smtp_ca_file: Option<PathBuf>,
    pub mailfrom: Option<String>,
    pub mailto: MailTo,
    pub notify_routes: Vec<Route>,
    /// Heartbeats before a host that was DOWN counts as UP again.
    pub notify_up_after: u32,
    #[serde(deserialize_with = "hb_config::duration")]
    pub notify_flap_window: Duration,
    pub notify_flap_high: f64,
    pub notify_flap_low: f64,
    #[serde(deserialize_with = "hb_config::duration")]
    pub notify_storm_window: Duration,
    pub notify_storm_threshold: usize,
    #[serde(deserialize_with = "duration_or_off")]
    pub notify_reminder: Option<Duration>,
    #[serde(deserialize_with = "hb_config::duration")]
    pub notify_retry_min: Duration,
    #[serde(deserialize_with = "hb_config::duration")]
    pub notify_retry_max: Duration,
    #[serde(deserialize_with = "hb_config::duration")]
    pub notify_channel_alarm: Duration,
    #[serde(deserialize_with = "hb_config::duration")]
    pub notify_system_repeat: Duration,
    pub notify_outbox_max: usize,
    pub notify_templates_dir: Option<PathBuf>,
    /// Base URL of the dashboard, for links in notifications.
    pub dashboard_url: Option<String>,
    /// Not a key: the dashboard's own URL (`http[s]://<host name>:<hbd_port>`), for links
    /// when `dashboard_url` is unset. hbd sets it from its listener settings.
    #[serde(skip)]
    pub dashboard_default: String,
}

impl Default for NotifyConfig {
    fn default() -> Self {
        NotifyConfig {
            pushsrv: "https://api.pushover.net".into(),
            pushover_token: None,
            pushover_user: None,
            mattermost_url: None,
            mattermost_api_url: None,
            mattermost_token: None,
            mattermost_channel_id: None,
            smtpserver: None,
            smtpport: None,
            smtpuser: None,
            smtppass: None,
            smtp_tls: SmtpTls::Starttls,
            smtp_ca_file: None,
            mailfrom: None,
            mailto: MailTo::default(),
            notify_routes: Vec::new(),
            notify_up_after: 2,
            notify_flap_window: Duration::from_secs(600),
            notify_flap_high: 30.0,
            notify_flap_low: 15.0,
            notify_storm_window: Duration::from_secs(10),
            notify_storm_threshold: 5,
            notify_reminder: None,
            notify_retry_min: Duration::from_secs(2),
            notify_retry_max: Duration::from_secs(600),
            notify_channel_alarm: Duration::from_secs(600),
            notify_system_repeat: Duration::from_secs(3600),
            notify_outbox_max: 100_000,
            notify_templates_dir: None,
            dashboard_url: None,
            dashboard_default: format!("http://{}:50004", hostname()),
        }
    }
}

impl NotifyConfig {
    /// Reads the notification keys from YAML text (other keys are left to their owners)
    /// and validates them.
    pub fn from_yaml(
        text: &str,
        path: &std::path::Path,
    ) -> Result<NotifyConfig, hb_config::ConfigError> {
        let mut doc = hb_config::Document::new(text, path);
        let c: NotifyConfig = doc.section()?;
        validate(&c).map_err(|m| doc.invalid(m))?;
        Ok(c)
    }
}

/// Checks the notification keys of `c`; the error names the key.
pub fn validate(c: &NotifyConfig) -> Result<(), String> {
    if c.notify_up_after == 0 || c.notify_up_after > 1000 {
        return Err(format!(
            "notify_up_after: {} is out of range; use 1 to 1000 heartbeats (default 2)",
            c.notify_up_after
        ));
    }
    let pct = |v: f64| (0.0..=100.0).contains(&v);
    if !pct(c.notify_flap_high) || !pct(c.notify_flap_low) {
        return Err("notify_flap_high, notify_flap_low: use percentages from 0 to 100".into());
    }
    if c.notify_flap_low > c.notify_flap_high {
        return Err(format!(
            "notify_flap_low: {} is above notify_flap_high ({}); flapping would never stop",
            c.notify_flap_low, c.notify_flap_high
        ));
    }
    if c.notify_retry_min.is_zero() || c.notify_retry_min > c.notify_retry_max {
        return Err(
            "notify_retry_min: must be above 0 and at most notify_retry_max (defaults 2s and 10m)"
                .into(),
        );
    }
    if c.notify_outbox_max == 0 {
        return Err("notify_outbox_max: must be at least 1".into());
    }
    let some = |o: &Option<String>| o.as_deref().is_some_and(|s| !s.trim().is_empty());
    let secret = |o: &Option<Secret>| o.as_ref().is_some_and(|s| !s.0.trim().is_empty());
    if secret(&c.pushover_token) != secret(&c.pushover_user) {
        return Err("pushover_token, pushover_user: set both (application token and user or group key) or neither".into());
    }
    check_url("pushsrv", &c.pushsrv)?;
    if let Some(u) = &c.mattermost_url {
        check_url("mattermost_url", u.expose())?;
    }
    let api = [
        some(&c.mattermost_api_url),
        secret(&c.mattermost_token),
        some(&c.mattermost_channel_id),
    ];
    if api.iter().any(|b| *b) && !api.iter().all(|b| *b) {
        return Err("mattermost_api_url, mattermost_token, mattermost_channel_id: set all three (server URL, bot token, channel id) or none".into());
    }
    if let Some(u) = &c.mattermost_api_url {
        check_url("mattermost_api_url", u)?;
    }
    if some(&c.smtpserver) {
        if !some(&c.mailfrom) {
            return Err("mailfrom: is needed with smtpserver (the sender address)".into());
        }
        if c.mailto.0.is_empty() {
            return Err("mailto: is needed with smtpserver (one address or a list)".into());
        }
        for a in c.mailto.0.iter().chain(c.mailfrom.iter()) {
            if a.parse::<lettre::message::Mailbox>().is_err() {
                return Err(format!("mailto/mailfrom: {a:?} is not an e-mail address"));
            }
        }
        if c.smtpuser.is_some() != c.smtppass.is_some() {
            return Err("smtpuser, smtppass: set both or neither".into());
        }
    }
    if let Some(u) = &c.dashboard_url {
        check_url("dashboard_url", u)?;
    }
    for (i, r) in c.notify_routes.iter().enumerate() {
        if r.channels.is_empty() {
            return Err(format!(
                "notify_routes[{i}].channels: name at least one channel"
            ));
        }
        for ch in &r.channels {
            if !CHANNEL_NAMES.contains(&ch.as_str()) {
                return Err(format!(
                    "notify_routes[{i}].channels: {ch:?} is not a channel; use {}",
                    CHANNEL_NAMES.join(", ")
                ));
            }
        }
        for p in &r.hosts.0 {
            if p.is_empty() {
                return Err(format!("notify_routes[{i}].hosts: empty pattern"));
            }
        }
    }
    Ok(())
}

fn check_url(key: &str, url: &str) -> Result<(), String> {
    if url.starts_with("http://") || url.starts_with("https://") {
        Ok(())
    } else {
        Err(format!("{key}: must be an http:// or https:// URL"))
    }
}

/// The policy's knobs, in milliseconds.
#[derive(Debug, Clone, PartialEq)]
pub struct PolicySettings {
    pub up_after: u32,
    pub flap_window_ms: u64,
    pub flap_high: f64,
    pub flap_low: f64,
    pub storm_window_ms: u64,
    /// Distinct hosts in one window that make it a storm (0 = never group).
    pub storm_threshold: usize,
    pub reminder_ms: Option<u64>,
    pub system_repeat_ms: u64,
}

impl Default for PolicySettings {
    fn default() -> Self {
        PolicySettings {
            up_after: 2,
            flap_window_ms: 600_000,
            flap_high: 30.0,
            flap_low: 15.0,
            storm_window_ms: 10_000,
            storm_threshold: 5,
            reminder_ms: None,
            system_repeat_ms: 3_600_000,
        }
    }
}

/// One configured channel, with its secrets.
#[derive(Debug, Clone, PartialEq)]
pub enum ChannelConfig {
    Pushover {
        api: String,
        token: Secret,
        user: Secret,
    },
    MattermostWebhook {
        url: Secret,
    },
    MattermostApi {
        base: String,
        token: Secret,
        channel_id: String,
    },
    Email(EmailConfig),
}

#[derive(Debug, Clone, PartialEq)]
pub struct EmailConfig {
    pub server: String,
    pub port: u16,
    pub tls: SmtpTls,
    pub ca_file: Option<PathBuf>,
    pub user: Option<String>,
    pub pass: Option<Secret>,
    pub from: String,
    pub to: Vec<String>,
}

impl ChannelConfig {
    pub fn name(&self) -> &'static str {
        match self {
            ChannelConfig::Pushover { .. } => "pushover",
            ChannelConfig::MattermostWebhook { .. } => "mattermost",
            ChannelConfig::MattermostApi { .. } => "mattermost_api",
            ChannelConfig::Email(_) => "email",
        }
    }

    /// Where it sends to, safe to show (no tokens, no webhook key).
    pub fn target(&self) -> String {
        match self {
            ChannelConfig::Pushover { api, .. } => api.clone(),
            ChannelConfig::MattermostWebhook { url } => {
                // The webhook URL's path is its secret; show only the server.
                let u = url.expose();
                let start = u.find("://").map_or(0, |i| i + 3);
                let end = u[start..].find('/').map_or(u.len(), |i| start + i);
                u[..end].to_string()
            }
            ChannelConfig::MattermostApi {
                base, channel_id, ..
            } => format!("{base} channel {channel_id}"),
            ChannelConfig::Email(e) => {
                format!("{} via {}:{}", e.to.join(", "), e.server, e.port)
            }
        }
    }

    /// Every secret this channel knows, to scrub from error texts.
    pub fn secrets(&self) -> Vec<String> {
        let v: Vec<&Secret> = match self {
            ChannelConfig::Pushover { token, user, .. } => vec![token, user],
            ChannelConfig::MattermostWebhook { url } => vec![url],
            ChannelConfig::MattermostApi { token, .. } => vec![token],
            ChannelConfig::Email(e) => e.pass.iter().collect(),
        };
        v.into_iter()
            .map(|s| s.0.clone())
            .filter(|s| s.len() >= 4)
            .collect()
    }
}

/// Everything the notification subsystem needs, resolved from the config.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    pub channels: Vec<ChannelConfig>,
    pub routes: Vec<Route>,
    pub policy: PolicySettings,
    pub retry_min: Duration,
    pub retry_max: Duration,
    pub channel_alarm: Duration,
    pub outbox_max: usize,
    pub templates_dir: Option<PathBuf>,
    pub dashboard_url: String,
}

fn nonempty(o: &Option<String>) -> Option<String> {
    o.as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
}

fn nonempty_secret(o: &Option<Secret>) -> Option<Secret> {
    o.as_ref().filter(|s| !s.0.trim().is_empty()).cloned()
}

/// This machine's name, for the default dashboard URL.
pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "localhost".to_string())
}

impl Settings {
    pub fn from_config(c: &NotifyConfig) -> Settings {
        let mut channels = Vec::new();
        if let (Some(token), Some(user)) = (
            nonempty_secret(&c.pushover_token),
            nonempty_secret(&c.pushover_user),
        ) {
            channels.push(ChannelConfig::Pushover {
                api: c.pushsrv.trim_end_matches('/').to_string(),
                token,
                user,
            });
        }
        if let Some(url) = nonempty_secret(&c.mattermost_url) {
            channels.push(ChannelConfig::MattermostWebhook { url });
        }
        if let (Some(base), Some(token), Some(channel_id)) = (
            nonempty(&c.mattermost_api_url),
            nonempty_secret(&c.mattermost_token),
            nonempty(&c.mattermost_channel_id),
        ) {
            channels.push(ChannelConfig::MattermostApi {
                base: base.trim_end_matches('/').to_string(),
                token,
                channel_id,
            });
        }
        if let Some(server) = nonempty(&c.smtpserver) {
            channels.push(ChannelConfig::Email(EmailConfig {
                server,
                port: c.smtpport.unwrap_or(c.smtp_tls.default_port()),
                tls: c.smtp_tls,
                ca_file: c.smtp_ca_file.clone(),
                user: nonempty(&c.smtpuser),
                pass: nonempty_secret(&c.smtppass),
                from: c.mailfrom.clone().unwrap_or_default(),
                to: c.mailto.0.clone(),
            }));
        }
        let dashboard_url = c
            .dashboard_url
            .clone()
            .unwrap_or_else(|| c.dashboard_default.clone())
            .trim_end_matches('/')
            .to_string();
        Settings {
            channels,
            routes: c.notify_routes.clone(),
            policy: PolicySettings {
                up_after: c.notify_up_after,
                flap_window_ms: c.notify_flap_window.as_millis() as u64,
                flap_high: c.notify_flap_high,
                flap_low: c.notify_flap_low,
                storm_window_ms: c.notify_storm_window.as_millis() as u64,
                storm_threshold: c.notify_storm_threshold,
                reminder_ms: c.notify_reminder.map(|d| d.as_millis() as u64),
                system_repeat_ms: c.notify_system_repeat.as_millis() as u64,
            },
            retry_min: c.notify_retry_min,
            retry_max: c.notify_retry_max,
            channel_alarm: c.notify_channel_alarm,
            outbox_max: c.notify_outbox_max,
            templates_dir: c.notify_templates_dir.clone(),
            dashboard_url,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn parse(text: &str) -> Result<(NotifyConfig, Vec<String>), String> {
        NotifyConfig::from_yaml(text, Path::new("hbd.yaml"))
            .map(|c| (c, Vec::new()))
            .map_err(|e| e.to_string())
    }

    const FULL: &str = r#"
pushsrv: http://127.0.0.1:9/
pushover_token: azGDORePK8gMaC0QOYAMyEEuzJnyUi
pushover_user: uQiRzpo4DXghDmr9QzzfQu27cmVRsG
mattermost_url: https://chat.example.org/hooks/xi3k8fjo9pbmxgzr5q7dmnq1ye
mattermost_api_url: https://chat.example.org
mattermost_token: 9xuqwrwgstrb3mzrxb83nb357a
mattermost_channel_id: 4xp9fdt77pncbef59f4k1qe83o
smtpserver: mail.example.org
smtpuser: hbd
smtppass: hunter22
smtp_tls: tls
mailfrom: hbd@example.org
mailto: "ops@example.org, oncall@example.org"
notify_routes:
  - {hosts: "db*", levels: [CRITICAL, OK], channels: [pushover]}
  - {kinds: [down, up, check], channels: [email, mattermost]}
notify_up_after: 3
notify_flap_window: 30m
notify_storm_window: 20s
notify_storm_threshold: 8
notify_reminder: 4h
dashboard_url: https://mon.example.org/
"#;

    #[test]
    fn every_key_parses_into_settings() {
        let (c, warnings) = parse(FULL).expect("valid");
        assert!(warnings.is_empty(), "{warnings:?}");
        let s = Settings::from_config(&c);
        let names: Vec<&str> = s.channels.iter().map(ChannelConfig::name).collect();
        assert_eq!(names, ["pushover", "mattermost", "mattermost_api", "email"]);
        match &s.channels[3] {
            ChannelConfig::Email(e) => {
                assert_eq!(
                    (e.port, e.tls),
                    (465, SmtpTls::Tls),
                    "port from the TLS mode"
                );
                assert_eq!(e.to, ["ops@example.org", "oncall@example.org"]);
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(s.channels[0].target(), "http://127.0.0.1:9");
        assert_eq!(
            s.channels[1].target(),
            "https://chat.example.org",
            "no webhook key"
        );
        assert_eq!(s.routes.len(), 2);
        assert_eq!(s.routes[0].hosts.0, ["db*"]);
        assert_eq!(
            s.routes[1].kinds.as_deref(),
            Some(&[Kind::Down, Kind::Up, Kind::Check][..])
        );
        assert_eq!(s.policy.up_after, 3);
        assert_eq!(s.policy.flap_window_ms, 1_800_000);
        assert_eq!(s.policy.reminder_ms, Some(14_400_000));
        assert_eq!(
            (s.policy.storm_window_ms, s.policy.storm_threshold),
            (20_000, 8)
        );
        assert_eq!(s.dashboard_url, "https://mon.example.org");
        // Secrets never show in Debug output (a config dump in a log).
        let dump = format!("{c:?} {s:?}");
        for secret in ["hunter22", "azGDORe", "uQiRzpo", "xi3k8fj", "9xuqwrw"] {
            assert!(!dump.contains(secret), "{secret} in {dump}");
        }
    }

    #[test]
    fn defaults_send_nothing_and_reminders_are_off() {
        let (c, _) = parse("hb_port: 50003\n").expect("valid");
        let s = Settings::from_config(&c);
        assert!(s.channels.is_empty());
        assert_eq!(s.policy.reminder_ms, None);
        assert_eq!(s.policy.up_after, 2);
        assert!(s.dashboard_url.ends_with(":50004"), "{}", s.dashboard_url);
        let (c, _) = parse("notify_reminder: off\n").expect("valid");
        assert_eq!(c.notify_reminder, None);
        let (c, _) = parse("notify_reminder: 0\n").expect("valid");
        assert_eq!(c.notify_reminder, None);
    }

    #[test]
    fn errors_name_the_key() {
        for (yaml, key) in [
            ("pushover_token: abc\n", "pushover_user"),
            ("smtpserver: m\nmailto: a@b.c\n", "mailfrom"),
            ("smtpserver: m\nmailfrom: a@b.c\n", "mailto"),
            (
                "smtpserver: m\nmailfrom: a@b.c\nmailto: [not an address]\n",
                "mailto",
            ),
            ("smtp_tls: ssl\n", "smtp_tls"),
            ("mattermost_api_url: https://x\n", "mattermost_token"),
            (
                "mattermost_url: chat.example.org/hooks/x\n",
                "mattermost_url",
            ),
            (
                "notify_routes: [{channels: [sms]}]\n",
                "notify_routes[0].channels",
            ),
            (
                "notify_routes: [{channels: [email], kinds: [explosion]}]\n",
                "notify_routes",
            ),
            ("notify_up_after: 0\n", "notify_up_after"),
            (
                "notify_flap_low: 50\nnotify_flap_high: 40\n",
                "notify_flap_low",
            ),
            ("notify_reminder: sometimes\n", "notify_reminder"),
            ("notify_retry_min: 20m\n", "notify_retry_min"),
        ] {
            let e = parse(yaml).expect_err(yaml);
            assert!(e.contains(key), "{yaml:?}: {e}");
        }
    }
}
