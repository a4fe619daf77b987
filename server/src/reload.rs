//! What a SIGHUP changes in the registry: watched hosts and the liveness and ingest
//! settings. Hosts, readings, history and deadlines are kept.

use crate::config::Config;
use crate::registry::Settings;
use crate::state::{now_ms, State};

/// Applies the parts of `new` that the registry holds; returns the changed settings that
/// only take effect after a restart.
pub fn apply(state: &State, old: &Config, new: &Config) -> Vec<String> {
    let mut restart = Vec::new();
    let mut need_restart = |changed: bool, key: &str| {
        if changed {
            restart.push(format!("{key} changed: restart hbd to apply it"));
        }
    };
    need_restart(old.bind != new.bind, "bind");
    need_restart(old.hb_port != new.hb_port, "hb_port");
    need_restart(old.hbd_port != new.hbd_port, "hbd_port");
    need_restart(old.ws_port != new.ws_port, "ws_port");
    need_restart(old.data_dir != new.data_dir, "data_dir");
    need_restart(old.secret != new.secret, "secret");
    need_restart(old.api_token != new.api_token, "api_token");
    let (oj, nj) = (&old.journal, &new.journal);
    need_restart(
        oj.journal_max_bytes != nj.journal_max_bytes,
        "journal_max_bytes",
    );
    need_restart(oj.journal_keep != nj.journal_keep, "journal_keep");
    need_restart(oj.journal_fsync != nj.journal_fsync, "journal_fsync");
    for (key, changed) in [
        ("api_rate_limit", old.api_rate_limit != new.api_rate_limit),
        ("api_rate_burst", old.api_rate_burst != new.api_rate_burst),
        ("udp_rate_limit", old.udp_rate_limit != new.udp_rate_limit),
        ("udp_rate_burst", old.udp_rate_burst != new.udp_rate_burst),
    ] {
        need_restart(changed, key);
    }
    need_restart(old.tls_cert != new.tls_cert, "tls_cert");
    need_restart(old.tls_key != new.tls_key, "tls_key");
    need_restart(crate::security::users_changed(old, new), "dashboard_users");
    need_restart(
        old.ws_allowed_origins != new.ws_allowed_origins,
        "ws_allowed_origins",
    );

    let now = now_ms();
    let mut reg = state.registry();
    reg.settings = Settings {
        window_ms: reg.settings.window_ms,
        ..crate::server::settings(new)
    };
    if new.secret.is_some() {
        reg.settings.window_ms = new.time_window.as_millis() as u64;
    }
    for name in old.watchhosts.0.keys() {
        if !new.watchhosts.0.contains_key(name) {
            reg.unwatch(name);
        }
    }
    for (name, w) in &new.watchhosts.0 {
        reg.watch(name, w.grace, now);
    }
    tracing::info!(
        watched = new.watchhosts.0.len(),
        "config reloaded: watched hosts and liveness settings applied"
    );
    restart
}
