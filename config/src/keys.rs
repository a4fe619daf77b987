//! Whose key is it: hbc and hbd read the same `~/.hb.yaml` and each ignores the other's
//! keys silently. Each program knows its own keys from its section structs; these lists
//! name the other program's, and each program has a test that its own keys are here, so
//! the two lists cannot drift.

/// Keys both programs read (the same meaning in both).
pub const SHARED_KEYS: &[&str] = &["hb_port", "secret"];

/// hbc's top-level keys.
pub const CLIENT_KEYS: &[&str] = &[
    "interval",
    "servers",
    "hostname",
    "plugin_dirs",
    "plugin_probe",
    "plugin_strict_modes",
    "plugin_rescan",
    "plugin_timeout",
    "max_datagram",
    "refreshes",
    "samples",
    "plugins",
    "thresholds",
    "state_dir",
    "host_root",
];

/// hbd's top-level keys that no prefix below covers.
pub const SERVER_KEYS: &[&str] = &[
    "hbd_port",
    "ws_port",
    "bind",
    "logfile",
    "pidfile",
    "watchhosts",
    "grace",
    "startup_grace",
    "time_window",
    "max_hosts",
    "max_readings_per_host",
    "max_host_bytes",
    "host_reading_rate",
    "host_reading_burst",
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
    "templates_dir",
    "static_dir",
    "tls_cert",
    "tls_key",
    "ws_allowed_origins",
    "snapshot_interval",
    "server_names",
    "udp_rcvbuf",
    "ingest_threads",
    "ws_client_buffer",
    "metrics_per_host",
    "max_heartbeat_bytes",
    "dyndns2_url",
    "dyndns2_user",
    "dyndns2_password",
    "api_rate_limit",
    "api_rate_burst",
    "udp_rate_limit",
    "udp_rate_burst",
];

/// Prefixes reserved for hbd's keys (present and future): hbc never warns about them.
pub const SERVER_KEY_PREFIXES: &[&str] = &[
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
    "cluster_",
    "remote_write",
    "ws_",
    "server_",
];

/// Whether hbd reads `key` (or reserves it).
pub fn is_server_key(key: &str) -> bool {
    SHARED_KEYS.contains(&key)
        || SERVER_KEYS.contains(&key)
        || SERVER_KEY_PREFIXES.iter().any(|p| key.starts_with(p))
}

/// Whether hbc reads `key`.
pub fn is_client_key(key: &str) -> bool {
    SHARED_KEYS.contains(&key) || CLIENT_KEYS.contains(&key)
}
