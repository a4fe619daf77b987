//! A local stand-in for Pushover and Mattermost (which cannot run here): one HTTP server
//! answering Pushover's messages API, a Mattermost incoming webhook and Mattermost's
//! `POST /api/v4/posts`, checking every request against the published APIs (method,
//! path, content type, authentication, required and allowed fields, length limits) and
//! failing on demand. Requests that break the API are recorded as violations, which
//! every test asserts are none.
//!
//! References: https://pushover.net/api, https://developers.mattermost.com/integrate/webhooks/incoming/,
//! https://api.mattermost.com/#tag/posts/operation/CreatePost

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

pub const PUSHOVER_TOKEN: &str = "azGDORePK8gMaC0QOYAMyEEuzJnyUi";
pub const PUSHOVER_USER: &str = "uQiRzpo4DXghDmr9QzzfQu27cmVRsG";
pub const WEBHOOK_KEY: &str = "xi3k8fjo9pbmxgzr5q7dmnq1ye";
pub const MM_TOKEN: &str = "9xuqwrwgstrb3mzrxb83nb357a";
pub const MM_CHANNEL: &str = "4xp9fdt77pncbef59f4k1qe83o";

/// Which API a request used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Api {
    Pushover,
    Webhook,
    Posts,
}

/// One accepted request: the API and its fields (form fields, or the JSON object's
/// string fields).
#[derive(Debug, Clone)]
pub struct Accepted {
    pub api: Api,
    pub fields: BTreeMap<String, String>,
}

impl Accepted {
    pub fn get(&self, k: &str) -> &str {
        self.fields.get(k).map(String::as_str).unwrap_or("")
    }

    /// The text people read: Pushover's message, Mattermost's text or message.
    pub fn text(&self) -> &str {
        match self.api {
            Api::Pushover => self.get("message"),
            Api::Webhook => self.get("text"),
            Api::Posts => self.get("message"),
        }
    }
}

/// How the stand-in answers valid requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Accept,
    /// Answer with this HTTP status (5xx: an outage; 429: rate limited).
    Fail(u16),
}

#[derive(Default)]
struct Shared {
    mode: Mutex<Option<Mode>>,
    accepted: Mutex<Vec<Accepted>>,
    violations: Mutex<Vec<String>>,
    failed: AtomicUsize,
}

pub struct Stub {
    pub url: String,
    shared: Arc<Shared>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

fn header(req: &tiny_http::Request, name: &str) -> String {
    req.headers()
        .iter()
        .find(|h| h.field.as_str().as_str().eq_ignore_ascii_case(name))
        .map(|h| h.value.as_str().to_string())
        .unwrap_or_default()
}

fn percent_decode(s: &str) -> Result<String, String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = s.get(i + 1..i + 3).ok_or("truncated %-escape")?;
                out.push(u8::from_str_radix(hex, 16).map_err(|_| "bad %-escape")?);
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).map_err(|_| "form value is not UTF-8".to_string())
}

fn parse_form(body: &str) -> Result<BTreeMap<String, String>, String> {
    let mut m = BTreeMap::new();
    for pair in body.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').ok_or("form field without =")?;
        if m.insert(percent_decode(k)?, percent_decode(v)?).is_some() {
            return Err(format!("form field {k} given twice"));
        }
    }
    Ok(m)
}

fn json_fields(body: &str) -> Result<BTreeMap<String, String>, String> {
    let v: serde_json::Value =
        serde_json::from_str(body).map_err(|e| format!("body is not JSON: {e}"))?;
    let obj = v.as_object().ok_or("body is not a JSON object")?;
    Ok(obj
        .iter()
        .map(|(k, v)| {
            (
                k.clone(),
                v.as_str()
                    .map(str::to_string)
                    .unwrap_or_else(|| v.to_string()),
            )
        })
        .collect())
}

/// An answer: status, content type, body.
type Answer = (u16, &'static str, String);

fn pushover_error(field: &str, error: &str) -> Answer {
    (
        400,
        "application/json",
        serde_json::json!({field: "invalid", "errors": [error], "status": 0, "request": "5042853c-402d-4a18-abcb-168734a801de"}).to_string(),
    )
}

const PUSHOVER_FIELDS: &[&str] = &[
    "token",
    "user",
    "message",
    "attachment_base64",
    "attachment_type",
    "device",
    "html",
    "monospace",
    "priority",
    "sound",
    "timestamp",
    "title",
    "ttl",
    "url",
    "url_title",
    "retry",
    "expire",
    "callback",
    "tags",
];

/// Pushover's messages API. Err is a violation of the published API.
fn pushover(method: &str, ctype: &str, body: &str) -> Result<Result<Accepted, Answer>, String> {
    if method != "POST" {
        return Err(format!("Pushover: method {method}, the API takes POST"));
    }
    let fields = if ctype.starts_with("application/x-www-form-urlencoded") {
        parse_form(body)?
    } else if ctype.starts_with("application/json") {
        json_fields(body)?
    } else {
        return Err(format!(
            "Pushover: content type {ctype:?}; use form-encoded or JSON"
        ));
    };
    for k in fields.keys() {
        if !PUSHOVER_FIELDS.contains(&k.as_str()) {
            return Err(format!("Pushover: unknown parameter {k}"));
        }
    }
    let len = |k: &str| fields.get(k).map_or(0, |v| v.chars().count());
    let message = fields.get("message").map(String::as_str).unwrap_or("");
    if message.trim().is_empty() {
        return Err("Pushover: message is required".into());
    }
    for (k, max) in [
        ("message", 1024),
        ("title", 250),
        ("url", 512),
        ("url_title", 100),
    ] {
        if len(k) > max {
            return Err(format!(
                "Pushover: {k} is {} characters, the limit is {max}",
                len(k)
            ));
        }
    }
    if let Some(p) = fields.get("priority") {
        let p: i32 = p
            .parse()
            .map_err(|_| format!("Pushover: priority {p:?} is not a number"))?;
        if !(-2..=2).contains(&p) {
            return Err(format!("Pushover: priority {p} is outside -2..2"));
        }
        if p == 2 && !(fields.contains_key("retry") && fields.contains_key("expire")) {
            return Err("Pushover: priority 2 needs retry and expire".into());
        }
    }
    if let Some(t) = fields.get("timestamp") {
        t.parse::<u64>()
            .map_err(|_| format!("Pushover: timestamp {t:?} is not a Unix time"))?;
    }
    if fields.get("html").map(String::as_str) == Some("1")
        && fields.get("monospace").map(String::as_str) == Some("1")
    {
        return Err("Pushover: html and monospace are exclusive".into());
    }
    let token = fields.get("token").map(String::as_str).unwrap_or("");
    let user = fields.get("user").map(String::as_str).unwrap_or("");
    let shape = |s: &str| s.len() == 30 && s.bytes().all(|b| b.is_ascii_alphanumeric());
    if !shape(token) || token != PUSHOVER_TOKEN {
        return Ok(Err(pushover_error("token", "application token is invalid")));
    }
    if !shape(user) || user != PUSHOVER_USER {
        return Ok(Err(pushover_error(
            "user",
            "user identifier is not a valid user, group, or subscribed user key",
        )));
    }
    Ok(Ok(Accepted {
        api: Api::Pushover,
        fields,
    }))
}

fn mattermost_webhook(
    method: &str,
    path: &str,
    ctype: &str,
    body: &str,
) -> Result<Result<Accepted, Answer>, String> {
    if method != "POST" {
        return Err(format!("Mattermost webhook: method {method}, use POST"));
    }
    if !ctype.starts_with("application/json") {
        return Err(format!(
            "Mattermost webhook: content type {ctype:?}, use application/json"
        ));
    }
    let fields = json_fields(body)?;
    for k in fields.keys() {
        if ![
            "text",
            "channel",
            "username",
            "icon_url",
            "icon_emoji",
            "attachments",
            "type",
            "props",
            "priority",
        ]
        .contains(&k.as_str())
        {
            return Err(format!("Mattermost webhook: unknown field {k}"));
        }
    }
    if fields.get("text").is_none_or(|t| t.trim().is_empty()) && !fields.contains_key("attachments")
    {
        return Err("Mattermost webhook: text (or attachments) is required".into());
    }
    if path != format!("/hooks/{WEBHOOK_KEY}") {
        return Ok(Err((
            400,
            "application/json",
            r#"{"id":"web.incoming_webhook.invalid.app_error","message":"Invalid webhook.","status_code":400}"#.into(),
        )));
    }
    Ok(Ok(Accepted {
        api: Api::Webhook,
        fields,
    }))
}

fn mattermost_posts(
    method: &str,
    auth: &str,
    ctype: &str,
    body: &str,
) -> Result<Result<Accepted, Answer>, String> {
    if method != "POST" {
        return Err(format!(
            "Mattermost API: method {method}, create a post with POST"
        ));
    }
    if !ctype.starts_with("application/json") {
        return Err(format!(
            "Mattermost API: content type {ctype:?}, use application/json"
        ));
    }
    let fields = json_fields(body)?;
    let channel = fields.get("channel_id").map(String::as_str).unwrap_or("");
    if channel.len() != 26
        || !channel
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
    {
        return Err(format!(
            "Mattermost API: channel_id {channel:?} is not a 26-character id"
        ));
    }
    if !fields.contains_key("message") {
        return Err("Mattermost API: message is required".into());
    }
    if auth != format!("Bearer {MM_TOKEN}") {
        return Ok(Err((
            401,
            "application/json",
            r#"{"id":"api.context.session_expired.app_error","message":"Invalid or expired session, please login again.","status_code":401}"#.into(),
        )));
    }
    Ok(Ok(Accepted {
        api: Api::Posts,
        fields,
    }))
}

fn handle(shared: &Shared, mut req: tiny_http::Request) {
    let method = req.method().as_str().to_string();
    let path = req.url().to_string();
    let ctype = header(&req, "content-type");
    let auth = header(&req, "authorization");
    let mut body = String::new();
    let read = req.as_reader().read_to_string(&mut body);
    let checked = match read {
        Err(e) => Err(format!("{path}: body is not UTF-8 text: {e}")),
        Ok(_) if path == "/1/messages.json" => pushover(&method, &ctype, &body),
        Ok(_) if path.starts_with("/hooks/") => mattermost_webhook(&method, &path, &ctype, &body),
        Ok(_) if path == "/api/v4/posts" => mattermost_posts(&method, &auth, &ctype, &body),
        Ok(_) => Err(format!("{method} {path}: no such endpoint in either API")),
    };
    let mode = shared
        .mode
        .lock()
        .map(|m| m.unwrap_or(Mode::Accept))
        .unwrap_or(Mode::Accept);
    let (status, ctype, text): Answer = match checked {
        Err(v) => {
            shared.violations.lock().expect("lock").push(v.clone());
            (
                400,
                "application/json",
                serde_json::json!({"errors": [v], "status": 0}).to_string(),
            )
        }
        Ok(Err(answer)) => answer,
        Ok(Ok(_)) if matches!(mode, Mode::Fail(_)) => {
            shared.failed.fetch_add(1, Ordering::SeqCst);
            let Mode::Fail(code) = mode else {
                unreachable!()
            };
            (
                code,
                "text/html",
                "<html><body>upstream unavailable</body></html>".into(),
            )
        }
        Ok(Ok(a)) => {
            let answer = match a.api {
                Api::Pushover => (200, "application/json", r#"{"status":1,"request":"647d2300-702c-4b38-8b2f-d56326ae460b"}"#.into()),
                Api::Webhook => (200, "text/plain", "ok".into()),
                Api::Posts => (
                    201,
                    "application/json",
                    serde_json::json!({"id": "abcdefghijklmnopqrstuvwxyz", "create_at": 1, "channel_id": a.get("channel_id"), "message": a.get("message")}).to_string(),
                ),
            };
            shared.accepted.lock().expect("lock").push(a);
            answer
        }
    };
    let resp = tiny_http::Response::from_string(text)
        .with_status_code(status)
        .with_header(tiny_http::Header::from_bytes("Content-Type", ctype).expect("header"));
    let _ = req.respond(resp);
}

impl Stub {
    pub fn start() -> Stub {
        let server = tiny_http::Server::http("127.0.0.1:0").expect("stub server");
        let port = server
            .server_addr()
            .to_ip()
            .map(|a| a.port())
            .expect("stub port");
        let shared = Arc::new(Shared::default());
        let stop = Arc::new(AtomicBool::new(false));
        let (s, st) = (shared.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            while !st.load(Ordering::Relaxed) {
                if let Ok(Some(req)) = server.recv_timeout(Duration::from_millis(50)) {
                    handle(&s, req);
                }
            }
        });
        Stub {
            url: format!("http://127.0.0.1:{port}"),
            shared,
            stop,
            thread: Some(thread),
        }
    }

    pub fn set_mode(&self, mode: Mode) {
        *self.shared.mode.lock().expect("lock") = Some(mode);
    }

    pub fn accepted(&self) -> Vec<Accepted> {
        self.shared.accepted.lock().expect("lock").clone()
    }

    pub fn of(&self, api: Api) -> Vec<Accepted> {
        self.accepted()
            .into_iter()
            .filter(|a| a.api == api)
            .collect()
    }

    /// Requests answered with a failure on demand.
    pub fn failed(&self) -> usize {
        self.shared.failed.load(Ordering::SeqCst)
    }

    /// Panics if any request broke the published API.
    pub fn assert_no_violations(&self) {
        let v = self.shared.violations.lock().expect("lock").clone();
        assert!(
            v.is_empty(),
            "requests that break the published API: {v:#?}"
        );
    }
}

impl Drop for Stub {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[test]
fn the_stub_itself_rejects_what_the_apis_reject() {
    // The checks must be able to fail, or the channel tests prove nothing.
    let form = |s: &str| pushover("POST", "application/x-www-form-urlencoded", s);
    assert!(form("token=x&user=y").is_err(), "message is required");
    assert!(pushover("GET", "application/x-www-form-urlencoded", "").is_err());
    assert!(pushover("POST", "text/plain", "message=hi").is_err());
    assert!(form(&format!(
        "token={PUSHOVER_TOKEN}&user={PUSHOVER_USER}&message=hi&priority=2"
    ))
    .is_err());
    assert!(form(&format!(
        "token={PUSHOVER_TOKEN}&user={PUSHOVER_USER}&message=hi&colour=red"
    ))
    .is_err());
    let long = "x".repeat(1025);
    assert!(form(&format!(
        "token={PUSHOVER_TOKEN}&user={PUSHOVER_USER}&message={long}"
    ))
    .is_err());
    assert!(matches!(
        form("token=bad&user=bad&message=hi"),
        Ok(Err((400, _, _)))
    ));
    let ok = form(&format!(
        "token={PUSHOVER_TOKEN}&user={PUSHOVER_USER}&message=a+b%21&priority=1"
    ))
    .expect("valid")
    .expect("accepted");
    assert_eq!(ok.get("message"), "a b!");
    assert!(mattermost_webhook("POST", "/hooks/x", "application/json", "{}").is_err());
    assert!(mattermost_webhook(
        "POST",
        "/hooks/x",
        "application/x-www-form-urlencoded",
        "payload=x"
    )
    .is_err());
    assert!(mattermost_posts(
        "POST",
        "",
        "application/json",
        r#"{"message":"x","channel_id":"short"}"#
    )
    .is_err());
    assert!(matches!(
        mattermost_posts(
            "POST",
            "Bearer wrong",
            "application/json",
            &format!(r#"{{"message":"x","channel_id":"{MM_CHANNEL}"}}"#)
        ),
        Ok(Err((401, _, _)))
    ));
}
