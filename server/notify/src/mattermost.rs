//! Mattermost, two ways: an incoming webhook (`POST <mattermost_url>` with JSON
//! `{"text": ...}`, answered 200 `ok`), and the REST API with a bot token
//! (`POST <mattermost_api_url>/api/v4/posts`, `Authorization: Bearer`, JSON
//! `{"channel_id", "message"}`, answered 201).

use super::channel::{http_agent, http_error, truncate, Channel, SendError};
use super::config::Secret;
use super::templates::Rendered;

/// Mattermost's default post size limit (characters).
const MAX_POST: usize = 16_383;

pub struct Webhook {
    url: Secret,
    agent: ureq::Agent,
}

impl Webhook {
    pub fn new(url: Secret) -> Webhook {
        Webhook {
            url,
            agent: http_agent(),
        }
    }
}

impl Channel for Webhook {
    fn send(&mut self, m: &Rendered) -> Result<(), SendError> {
        self.agent
            .post(self.url.expose())
            .send_json(serde_json::json!({ "text": truncate(&m.markdown, MAX_POST) }))
            .map_err(|e| http_error("Mattermost webhook", e))?;
        Ok(())
    }
}

pub struct Api {
    endpoint: String,
    token: Secret,
    channel_id: String,
    agent: ureq::Agent,
}

impl Api {
    pub fn new(base: String, token: Secret, channel_id: String) -> Api {
        Api {
            endpoint: format!("{}/api/v4/posts", base.trim_end_matches('/')),
            token,
            channel_id,
            agent: http_agent(),
        }
    }
}

impl Channel for Api {
    fn send(&mut self, m: &Rendered) -> Result<(), SendError> {
        let resp = self
            .agent
            .post(&self.endpoint)
            .set("Authorization", &format!("Bearer {}", self.token.expose()))
            .send_json(serde_json::json!({
                "channel_id": self.channel_id,
                "message": truncate(&m.markdown, MAX_POST),
            }))
            .map_err(|e| http_error("Mattermost API", e))?;
        if resp.status() == 201 || resp.status() == 200 {
            Ok(())
        } else {
            Err(SendError::new(format!(
                "Mattermost API answered HTTP {} instead of 201 Created",
                resp.status()
            )))
        }
    }
}
