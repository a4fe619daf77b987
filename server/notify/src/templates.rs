//! Message texts: handlebars templates, built in (`templates/*.hbs`) and replaceable file
//! by file from `notify_templates_dir`. Four templates: `title` (subject line, Pushover
//! title), `text` (e-mail plain text, Pushover message), `html` (e-mail HTML
//! alternative) and `markdown` (Mattermost). Only `html` escapes HTML.
//!
//! Every template sees the same variables (docs/notifications.md lists them).

use std::path::Path;

use handlebars::Handlebars;
use serde::Serialize;

use hbd_core::registry::LevelName;

use super::notification::{Check, Kind, Notification};
use super::policy::human_duration;

/// Items listed in a storm message; the rest are counted.
const MAX_ITEMS: usize = 50;

const BUILTIN: &[(&str, &str)] = &[
    ("title", include_str!("templates/title.hbs")),
    ("text", include_str!("templates/text.hbs")),
    ("html", include_str!("templates/html.hbs")),
    ("markdown", include_str!("templates/markdown.hbs")),
];

/// A notification rendered for sending.
#[derive(Debug, Clone, PartialEq)]
pub struct Rendered {
    pub title: String,
    pub text: String,
    pub html: String,
    pub markdown: String,
    /// The host's dashboard page (or the dashboard).
    pub url: String,
    pub level: LevelName,
    pub kind: Kind,
    pub id: String,
    pub ts_ms: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum TemplateError {
    #[error("notification template {file}: {message}")]
    Invalid { file: String, message: String },
    #[error("cannot read notification template {file}: {source}")]
    Read {
        file: String,
        source: std::io::Error,
    },
    #[error("rendering notification template {name}: {message}")]
    Render { name: String, message: String },
}

/// The loaded templates.
pub struct Templates {
    plain: Handlebars<'static>,
    html: Handlebars<'static>,
    dashboard_url: String,
    /// The text of each template as loaded, to tell whether a reload changed anything.
    sources: Vec<String>,
}

#[derive(Serialize)]
struct Item {
    kind: &'static str,
    summary: String,
    icon: &'static str,
    host: String,
    key: Option<String>,
    state: String,
    level: &'static str,
    since: String,
    message: String,
    url: String,
}

#[derive(Serialize)]
struct Context<'a> {
    kind: &'static str,
    summary: String,
    icon: &'static str,
    color: &'static str,
    host: &'a str,
    key: Option<&'a str>,
    state: &'a str,
    from: Option<&'a str>,
    level: &'static str,
    since: String,
    since_ms: u64,
    /// How long since `since`, e.g. "12 min".
    #[serde(rename = "for")]
    for_: String,
    time: String,
    message: &'a str,
    checks: &'a [Check],
    flap_percent: Option<f64>,
    url: String,
    dashboard_url: &'a str,
    storm: bool,
    items: Vec<Item>,
    count: usize,
    more: usize,
    window: String,
    /// Set when the notification waited in the outbox for more than a minute.
    delayed: Option<String>,
    channel: &'a str,
}

fn icon(level: LevelName) -> &'static str {
    match level {
        LevelName::Ok => "✅",
        LevelName::Warning => "⚠️",
        LevelName::Critical => "🔴",
        LevelName::Unknown => "❔",
    }
}

fn color(level: LevelName) -> &'static str {
    match level {
        LevelName::Ok => "#2e7d32",
        LevelName::Warning => "#b26a00",
        LevelName::Critical => "#c62828",
        LevelName::Unknown => "#6a1b9a",
    }
}

/// One line saying what happened.
pub fn summary(n: &Notification) -> String {
    let key = n.key.as_deref().unwrap_or("?");
    match n.kind {
        Kind::Down => format!("{} is DOWN", n.host),
        Kind::NeverSeen => format!("{} is DOWN (never seen since hbd started)", n.host),
        Kind::Up => format!("{} is UP again", n.host),
        Kind::Level => format!("{} is {}", n.host, n.state),
        Kind::Check => format!("{}: {key} is {}", n.host, n.state),
        Kind::Flapping => format!("{} is flapping", n.host),
        Kind::FlappingStopped => format!("{} stopped flapping, now {}", n.host, n.state),
        Kind::CheckFlapping => format!("{}: {key} is flapping", n.host),
        Kind::CheckFlappingStopped => {
            format!("{}: {key} stopped flapping, now {}", n.host, n.state)
        }
        Kind::Reminder => format!("{} is still DOWN", n.host),
        Kind::Storm => format!("{} changed state", n.state),
        Kind::System => {
            let first = n.message.lines().next().unwrap_or("");
            let short: String = first.chars().take(100).collect();
            if n.level == LevelName::Ok {
                format!("{}: resolved: {short}", n.host)
            } else {
                format!("{}: {short}", n.host)
            }
        }
        Kind::ChannelFailing => format!("notification channel {key} is failing"),
        Kind::ChannelRecovered => format!("notification channel {key} works again"),
        Kind::Test => "test notification from hbd".to_string(),
    }
}

/// `2024-05-01 12:00:00 UTC` from Unix milliseconds.
pub fn utc(ms: u64) -> String {
    let secs = ms / 1000;
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02} UTC",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60
    )
}

impl Templates {
    /// The built-in templates, each replaced by `<dir>/<name>.hbs` where that exists.
    pub fn load(dir: Option<&Path>, dashboard_url: &str) -> Result<Templates, TemplateError> {
        let mut plain = Handlebars::new();
        plain.register_escape_fn(handlebars::no_escape);
        plain.set_strict_mode(false);
        let mut html = Handlebars::new();
        html.set_strict_mode(false);
        let mut sources = Vec::with_capacity(BUILTIN.len());
        for (name, builtin) in BUILTIN {
            let file = format!("{name}.hbs");
            let (text, origin) = match dir.map(|d| d.join(&file)) {
                Some(p) if p.exists() => (
                    std::fs::read_to_string(&p).map_err(|source| TemplateError::Read {
                        file: p.display().to_string(),
                        source,
                    })?,
                    p.display().to_string(),
                ),
                _ => (builtin.to_string(), format!("(built-in) {file}")),
            };
            let reg = if *name == "html" {
                &mut html
            } else {
                &mut plain
            };
            reg.register_template_string(name, &text)
                .map_err(|e| TemplateError::Invalid {
                    file: origin,
                    message: e.to_string(),
                })?;
            sources.push(text);
        }
        Ok(Templates {
            plain,
            html,
            dashboard_url: dashboard_url.trim_end_matches('/').to_string(),
            sources,
        })
    }

    /// Whether `other` renders exactly like these (same texts, same dashboard URL).
    pub fn same_as(&self, other: &Templates) -> bool {
        self.dashboard_url == other.dashboard_url && self.sources == other.sources
    }

    fn host_url(&self, host: &str, kind: Kind) -> String {
        match kind {
            Kind::Storm | Kind::ChannelFailing | Kind::ChannelRecovered | Kind::Test => {
                format!("{}/", self.dashboard_url)
            }
            Kind::System if host == "hbd" => format!("{}/", self.dashboard_url),
            _ => format!("{}/hosts/{host}", self.dashboard_url),
        }
    }

    /// Renders `n` for `channel`; `queued_ms` is when it entered the outbox.
    pub fn render(
        &self,
        n: &Notification,
        channel: &str,
        queued_ms: u64,
        now_ms: u64,
    ) -> Result<Rendered, TemplateError> {
        let url = self.host_url(&n.host, n.kind);
        let items: Vec<Item> = n
            .items
            .iter()
            .take(MAX_ITEMS)
            .map(|i| Item {
                kind: i.kind.as_str(),
                summary: summary(i),
                icon: icon(i.level),
                host: i.host.clone(),
                key: i.key.clone(),
                state: i.state.clone(),
                level: i.level.as_str(),
                since: utc(i.since_ms),
                message: i.message.clone(),
                url: self.host_url(&i.host, i.kind),
            })
            .collect();
        let waited = now_ms.saturating_sub(queued_ms);
        let ctx = Context {
            kind: n.kind.as_str(),
            summary: summary(n),
            icon: icon(n.level),
            color: color(n.level),
            host: &n.host,
            key: n.key.as_deref(),
            state: &n.state,
            from: n.from.as_deref(),
            level: n.level.as_str(),
            since: utc(n.since_ms),
            since_ms: n.since_ms,
            for_: human_duration(now_ms.saturating_sub(n.since_ms)),
            time: utc(n.ts_ms),
            message: &n.message,
            checks: &n.checks,
            flap_percent: n.flap_percent,
            url: url.clone(),
            dashboard_url: &self.dashboard_url,
            storm: n.kind == Kind::Storm,
            count: n.items.len(),
            more: n.items.len().saturating_sub(MAX_ITEMS),
            items,
            window: human_duration(n.ts_ms.saturating_sub(n.since_ms).max(1000)),
            delayed: (waited >= 60_000).then(|| {
                format!(
                    "queued {} ago, at {}",
                    human_duration(waited),
                    utc(queued_ms)
                )
            }),
            channel,
        };
        let render = |reg: &Handlebars<'static>, name: &str| {
            reg.render(name, &ctx).map_err(|e| TemplateError::Render {
                name: name.to_string(),
                message: e.to_string(),
            })
        };
        let title = render(&self.plain, "title")?;
        Ok(Rendered {
            title: title.lines().next().unwrap_or("").trim().to_string(),
            text: tidy(&render(&self.plain, "text")?),
            html: render(&self.html, "html")?,
            markdown: tidy(&render(&self.plain, "markdown")?),
            url,
            level: n.level,
            kind: n.kind,
            id: n.id.clone(),
            ts_ms: n.ts_ms,
        })
    }
}

/// Trims trailing spaces and collapses runs of blank lines left by template blocks.
fn tidy(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut blank = 0;
    for line in s.lines() {
        let l = line.trim_end();
        if l.is_empty() {
            blank += 1;
            if blank > 1 || out.is_empty() {
                continue;
            }
        } else {
            blank = 0;
        }
        out.push_str(l);
        out.push('\n');
    }
    while out.ends_with("\n\n") {
        out.pop();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn down() -> Notification {
        Notification {
            id: "1-1".into(),
            kind: Kind::Down,
            host: "web1".into(),
            key: None,
            state: "DOWN".into(),
            from: Some("UP".into()),
            level: LevelName::Critical,
            since_ms: 1_714_564_800_000,
            ts_ms: 1_714_564_800_000,
            message: "no heartbeat for 25.0 s <b>".into(),
            checks: vec![Check {
                key: "fs./.used_percent".into(),
                level: LevelName::Critical,
                value: "97 %".into(),
                threshold: "crit 95".into(),
                message: String::new(),
            }],
            flap_percent: None,
            items: Vec::new(),
        }
    }

    #[test]
    fn utc_dates() {
        assert_eq!(utc(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(utc(1_714_564_800_000), "2024-05-01 12:00:00 UTC");
        assert_eq!(utc(951_782_400_000), "2000-02-29 00:00:00 UTC");
    }

    #[test]
    fn builtin_templates_render_every_kind() {
        let t = Templates::load(None, "http://mon:50004/").expect("templates");
        let now = 1_714_565_100_000;
        let r = t.render(&down(), "email", now, now).expect("render");
        assert_eq!(r.title, "[hbd] web1 is DOWN");
        assert_eq!(r.url, "http://mon:50004/hosts/web1");
        expect_test::expect![[r#"
            web1 is DOWN

            Host:    web1
            State:   DOWN (was UP)
            Level:   CRITICAL
            Since:   2024-05-01 12:00:00 UTC (5 min)

            no heartbeat for 25.0 s <b>

            Failing readings:
              - fs./.used_percent CRITICAL: 97 % (threshold crit 95)

            http://mon:50004/hosts/web1
        "#]]
        .assert_eq(&r.text);
        assert!(
            r.html.contains("25.0 s &lt;b&gt;"),
            "HTML is escaped: {}",
            r.html
        );
        assert!(r.markdown.contains("**web1 is DOWN**"), "{}", r.markdown);
        for &kind in Kind::ALL {
            let mut n = down();
            n.kind = kind;
            n.key = Some("pushover".into());
            n.items = vec![down(), down()];
            let r = t
                .render(&n, "pushover", now - 3_600_000, now)
                .expect("render");
            assert!(!r.title.is_empty() && !r.text.is_empty(), "{kind:?}");
            assert!(r.title.ends_with("(delayed)"), "{}", r.title);
            assert!(r.text.contains("queued 1 h ago"), "{}", r.text);
        }
    }

    #[test]
    fn storms_list_their_hosts() {
        let t = Templates::load(None, "http://mon").expect("templates");
        let mut g = down();
        g.kind = Kind::Storm;
        g.host = "hbd".into();
        g.state = "60 hosts".into();
        g.message = "60 DOWN".into();
        g.ts_ms = g.since_ms + 10_000;
        g.items = (0..60)
            .map(|i| {
                let mut n = down();
                n.host = format!("h{i}");
                n
            })
            .collect();
        let r = t.render(&g, "email", g.ts_ms, g.ts_ms).expect("render");
        assert_eq!(r.title, "[hbd] 60 hosts changed state");
        assert!(r.text.contains("60 DOWN within 10 s:"), "{}", r.text);
        assert!(r.text.contains("  - h49 is DOWN"));
        assert!(!r.text.contains("h50 is DOWN"));
        assert!(r.text.contains("... and 10 more"));
        assert_eq!(r.url, "http://mon/");
    }

    #[test]
    fn templates_from_a_folder_replace_builtins_and_errors_name_the_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("title.hbs"), "ALERT {{host}} {{state}}").expect("write");
        let t = Templates::load(Some(dir.path()), "http://mon").expect("templates");
        let r = t.render(&down(), "email", 0, 0).expect("render");
        assert_eq!(r.title, "ALERT web1 DOWN");
        assert!(r.text.starts_with("web1 is DOWN"), "others stay built in");
        std::fs::write(dir.path().join("text.hbs"), "{{#if host}}unclosed").expect("write");
        let e = Templates::load(Some(dir.path()), "http://mon")
            .err()
            .expect("invalid");
        assert!(e.to_string().contains("text.hbs"), "{e}");
    }
}
