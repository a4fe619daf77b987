//! What every channel sender implements, and the helpers they share: error texts that
//! never carry a secret, and the HTTP client.

use std::time::Duration;

use super::config::ChannelConfig;
use super::templates::Rendered;

/// How long one delivery attempt may take.
pub const SEND_TIMEOUT: Duration = Duration::from_secs(15);

/// Why a channel did not accept a notification. Every failure is retried (the outbox
/// keeps the notification), so this only says what happened, for the status and the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SendError {
    pub message: String,
    /// The service asked to wait this long (HTTP 429 Retry-After).
    pub retry_after: Option<Duration>,
}

impl SendError {
    pub fn new(message: impl Into<String>) -> SendError {
        SendError {
            message: message.into(),
            retry_after: None,
        }
    }
}

impl std::fmt::Display for SendError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

/// Delivers rendered notifications to one service.
pub trait Channel: Send {
    fn send(&mut self, msg: &Rendered) -> Result<(), SendError>;
}

/// Replaces every secret in `text` with `***`.
pub fn redact(text: &str, secrets: &[String]) -> String {
    let mut out = text.to_string();
    for s in secrets {
        if !s.is_empty() {
            out = out.replace(s.as_str(), "***");
        }
    }
    out
}

/// A blocking HTTP client with timeouts (shared by the HTTP channels).
pub fn http_agent() -> ureq::Agent {
    ureq::AgentBuilder::new()
        .timeout_connect(Duration::from_secs(5))
        .timeout(SEND_TIMEOUT)
        .user_agent(concat!("hbd/", env!("CARGO_PKG_VERSION")))
        .build()
}

/// Describes a failed HTTP exchange without the URL (which can hold a secret): the
/// status and the start of the body, or the kind of transport error.
pub fn http_error(service: &str, e: ureq::Error) -> SendError {
    match e {
        ureq::Error::Status(code, resp) => {
            let retry_after = resp
                .header("retry-after")
                .and_then(|v| v.trim().parse::<u64>().ok())
                .map(Duration::from_secs);
            let body = resp.into_string().unwrap_or_default();
            let detail = service_error_text(&body);
            SendError {
                message: format!("{service} answered HTTP {code}: {detail}"),
                retry_after,
            }
        }
        ureq::Error::Transport(t) => SendError::new(format!(
            "{service} not reached ({}): {}",
            t.kind(),
            t.message().unwrap_or("no detail")
        )),
    }
}

/// The useful part of an error body: Pushover's `errors`, Mattermost's `message`, or
/// the first 200 characters.
pub fn service_error_text(body: &str) -> String {
    if let Ok(v) = serde_json::from_str::<serde_json::Value>(body) {
        if let Some(errs) = v.get("errors").and_then(|e| e.as_array()) {
            let list: Vec<&str> = errs.iter().filter_map(|e| e.as_str()).collect();
            if !list.is_empty() {
                return list.join("; ");
            }
        }
        if let Some(m) = v.get("message").and_then(|m| m.as_str()) {
            return m.to_string();
        }
    }
    let t: String = body.trim().chars().take(200).collect();
    if t.is_empty() {
        "(empty body)".into()
    } else {
        t
    }
}

/// Builds the sender for a configured channel.
pub fn build(cfg: &ChannelConfig) -> Result<Box<dyn Channel>, String> {
    Ok(match cfg {
        ChannelConfig::Pushover { api, token, user } => Box::new(super::pushover::Pushover::new(
            api.clone(),
            token.clone(),
            user.clone(),
        )),
        ChannelConfig::MattermostWebhook { url } => {
            Box::new(super::mattermost::Webhook::new(url.clone()))
        }
        ChannelConfig::MattermostApi {
            base,
            token,
            channel_id,
        } => Box::new(super::mattermost::Api::new(
            base.clone(),
            token.clone(),
            channel_id.clone(),
        )),
        ChannelConfig::Email(e) => Box::new(super::email::Email::new(e.clone())?),
    })
}

/// Cuts `s` to at most `max` characters, marking the cut.
pub fn truncate(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_string();
    }
    let mut t: String = s.chars().take(max.saturating_sub(1)).collect();
    t.push('…');
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redaction_and_error_texts() {
        assert_eq!(
            redact(
                "POST https://x/hooks/abc123 failed for abc123",
                &["abc123".into()]
            ),
            "POST https://x/hooks/*** failed for ***"
        );
        assert_eq!(
            service_error_text(
                r#"{"user":"invalid","errors":["user identifier is invalid"],"status":0}"#
            ),
            "user identifier is invalid"
        );
        assert_eq!(
            service_error_text(r#"{"message":"Invalid token"}"#),
            "Invalid token"
        );
        assert_eq!(service_error_text(""), "(empty body)");
        assert_eq!(truncate("abcdef", 4), "abc…");
        assert_eq!(truncate("abc", 4), "abc");
    }
}
