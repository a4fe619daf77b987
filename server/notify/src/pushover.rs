//! Pushover: `POST {pushsrv}/1/messages.json`, form-encoded, with the application token,
//! the user (or group) key, title, message, a priority from the level, and a link to the
//! host's dashboard page. Success is HTTP 200 with `{"status": 1}`; errors are 4xx with
//! `{"status": 0, "errors": [...]}` (https://pushover.net/api).

use super::channel::{http_agent, http_error, truncate, Channel, SendError};
use super::config::Secret;
use super::templates::Rendered;
use hbd_core::registry::LevelName;

// Pushover's limits (characters).
const MAX_TITLE: usize = 250;
const MAX_MESSAGE: usize = 1024;
const MAX_URL: usize = 512;

pub struct Pushover {
    endpoint: String,
    token: Secret,
    user: Secret,
    agent: ureq::Agent,
}

/// Pushover priority: -1 quiet for recoveries, 0 normal, 1 high (bypasses quiet hours)
/// for CRITICAL and DOWN. Emergency (2) needs acknowledgement handling; not used.
pub fn priority(level: LevelName) -> i8 {
    match level {
        LevelName::Ok => -1,
        LevelName::Warning | LevelName::Unknown => 0,
        LevelName::Critical => 1,
    }
}

impl Pushover {
    pub fn new(api: String, token: Secret, user: Secret) -> Pushover {
        Pushover {
            endpoint: format!("{}/1/messages.json", api.trim_end_matches('/')),
            token,
            user,
            agent: http_agent(),
        }
    }
}

impl Channel for Pushover {
    fn send(&mut self, m: &Rendered) -> Result<(), SendError> {
        let title = truncate(&m.title, MAX_TITLE);
        let message = truncate(&m.text, MAX_MESSAGE);
        let priority = priority(m.level).to_string();
        let timestamp = (m.ts_ms / 1000).to_string();
        let mut form: Vec<(&str, &str)> = vec![
            ("token", self.token.expose()),
            ("user", self.user.expose()),
            ("title", &title),
            ("message", &message),
            ("priority", &priority),
            ("timestamp", &timestamp),
        ];
        if m.url.len() <= MAX_URL {
            form.push(("url", &m.url));
            form.push(("url_title", "Open in the dashboard"));
        }
        let resp = self
            .agent
            .post(&self.endpoint)
            .send_form(&form)
            .map_err(|e| http_error("Pushover", e))?;
        let body: serde_json::Value = resp.into_json().map_err(|e| {
            SendError::new(format!(
                "Pushover answered 200 with an unreadable body: {e}"
            ))
        })?;
        if body.get("status").and_then(|s| s.as_i64()) == Some(1) {
            Ok(())
        } else {
            Err(SendError::new(format!(
                "Pushover did not accept the message: {}",
                super::channel::service_error_text(&body.to_string())
            )))
        }
    }
}
