//! The dashboard's templates and static files: built into the binary (from the
//! repository's `templates/` and `static/`), each replaceable by a file of the same name
//! in `templates_dir` / `static_dir`, so a site can customise the dashboard without
//! rebuilding. Overriding templates are re-read when they change (handlebars dev mode).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use handlebars::Handlebars;
use serde::Serialize;

/// Built-in templates: name (file stem, also the partial name) and text.
pub const TEMPLATES: &[(&str, &str)] = &[
    ("layout", include_str!("../../../templates/layout.hbs")),
    ("overview", include_str!("../../../templates/overview.hbs")),
    ("host_row", include_str!("../../../templates/host_row.hbs")),
    ("host", include_str!("../../../templates/host.hbs")),
    ("events", include_str!("../../../templates/events.hbs")),
    (
        "event_row",
        include_str!("../../../templates/event_row.hbs"),
    ),
    (
        "not_found",
        include_str!("../../../templates/not_found.hbs"),
    ),
    ("history", include_str!("../../../templates/history.hbs")),
];

/// Built-in static files: name under `/static/` and bytes.
pub const STATIC: &[(&str, &[u8])] = &[
    ("hbd.css", include_bytes!("../../../static/hbd.css")),
    ("hbd.js", include_bytes!("../../../static/hbd.js")),
    ("theme.js", include_bytes!("../../../static/theme.js")),
    ("overview.js", include_bytes!("../../../static/overview.js")),
    ("host.js", include_bytes!("../../../static/host.js")),
    ("events.js", include_bytes!("../../../static/events.js")),
    ("history.js", include_bytes!("../../../static/history.js")),
];

/// Why a page could not be rendered.
#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    #[error("dashboard template {name}: {message}")]
    Template { name: String, message: String },
}

/// A compiled set of templates.
pub struct Templates {
    hb: Handlebars<'static>,
}

impl Templates {
    /// The built-in templates, each replaced by `<dir>/<name>.hbs` where that exists.
    /// A replacement that does not compile is reported and the built-in one is used.
    pub fn load(dir: Option<&Path>) -> Templates {
        let mut hb = Handlebars::new();
        hb.register_escape_fn(handlebars::html_escape);
        // Dev mode re-reads file-backed templates when they change; it must be on before
        // they are registered. Built-in templates are not affected.
        hb.set_dev_mode(dir.is_some());
        for (name, text) in TEMPLATES {
            if let Some(dir) = dir {
                let file = dir.join(format!("{name}.hbs"));
                if file.is_file() {
                    match hb.register_template_file(name, &file) {
                        Ok(()) => continue,
                        Err(e) => tracing::error!(
                            "dashboard template {} does not compile, using the built-in one: {e}",
                            file.display()
                        ),
                    }
                }
            }
            if let Err(e) = hb.register_template_string(name, *text) {
                // Built-in templates are compiled in the unit tests; this cannot happen
                // in a released binary, but must not take hbd down if it did.
                tracing::error!("built-in dashboard template {name} does not compile: {e}");
            }
        }
        Templates { hb }
    }

    /// The shared compiled templates for an override folder (compiled once per folder).
    pub fn shared(dir: Option<&Path>) -> Arc<Templates> {
        static CACHE: OnceLock<Mutex<HashMap<Option<PathBuf>, Arc<Templates>>>> = OnceLock::new();
        let mut cache = CACHE
            .get_or_init(Default::default)
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        cache
            .entry(dir.map(Path::to_path_buf))
            .or_insert_with(|| Arc::new(Templates::load(dir)))
            .clone()
    }

    pub fn render<T: Serialize>(&self, name: &str, data: &T) -> Result<String, RenderError> {
        self.hb
            .render(name, data)
            .map_err(|e| RenderError::Template {
                name: name.to_string(),
                message: e.to_string(),
            })
    }
}

/// A static file ready to serve.
pub struct Asset {
    pub bytes: Vec<u8>,
    pub content_type: &'static str,
    /// Strong validator (CRC-32 of the bytes).
    pub etag: String,
    /// Built in (cacheable for long with a version in the URL) or from `static_dir`.
    pub builtin: bool,
}

/// Only plain relative names: letters, digits, `.`, `-`, `_` and `/`, no `..`.
fn safe_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 200
        && !name.starts_with('/')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_' | b'/'))
        && name
            .split('/')
            .all(|p| !p.is_empty() && p != "." && p != "..")
}

fn content_type(name: &str) -> &'static str {
    match name.rsplit('.').next().unwrap_or("") {
        "css" => "text/css; charset=utf-8",
        "js" => "text/javascript; charset=utf-8",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "ico" => "image/x-icon",
        "woff2" => "font/woff2",
        "json" => "application/json",
        "txt" => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}

fn etag(bytes: &[u8]) -> String {
    format!("\"{:08x}\"", crc32fast::hash(bytes))
}

/// Looks up `/static/<name>`: `static_dir` first, then the built-in files.
pub fn asset(dir: Option<&Path>, name: &str) -> Option<Asset> {
    if !safe_name(name) {
        return None;
    }
    if let Some(dir) = dir {
        if let Ok(bytes) = std::fs::read(dir.join(name)) {
            return Some(Asset {
                etag: etag(&bytes),
                bytes,
                content_type: content_type(name),
                builtin: false,
            });
        }
    }
    STATIC.iter().find(|(n, _)| *n == name).map(|(_, b)| Asset {
        bytes: b.to_vec(),
        content_type: content_type(name),
        etag: etag(b),
        builtin: true,
    })
}

/// A short fingerprint of every built-in static file, appended to asset URLs
/// (`?v=...`) so browsers cache them for long and still see a new release at once.
pub fn version() -> &'static str {
    static V: OnceLock<String> = OnceLock::new();
    V.get_or_init(|| {
        let mut h = crc32fast::Hasher::new();
        for (name, bytes) in STATIC {
            h.update(name.as_bytes());
            h.update(bytes);
        }
        format!("{:08x}", h.finalize())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_checked() {
        assert!(safe_name("hbd.css"));
        assert!(safe_name("img/logo.svg"));
        for bad in ["", "../x", "a/../b", "/etc/passwd", "a//b", "x?y", "a\\b"] {
            assert!(!safe_name(bad), "{bad}");
        }
        assert!(asset(None, "hbd.css").is_some());
        assert!(asset(None, "nope.css").is_none());
    }

    #[test]
    fn overrides_win_and_fall_back() {
        let dir = tempfile::tempdir().expect("tmp");
        std::fs::write(dir.path().join("hbd.css"), "body{}").expect("write");
        let a = asset(Some(dir.path()), "hbd.css").expect("found");
        assert_eq!(a.bytes, b"body{}");
        assert!(!a.builtin);
        assert!(asset(Some(dir.path()), "hbd.js").expect("built in").builtin);

        std::fs::write(dir.path().join("not_found.hbs"), "custom {{name}}").expect("write");
        std::fs::write(dir.path().join("events.hbs"), "{{#if}").expect("write");
        let t = Templates::load(Some(dir.path()));
        let out = t
            .render("not_found", &serde_json::json!({"name": "<x>"}))
            .expect("render");
        assert_eq!(out, "custom &lt;x&gt;");
        // The broken override falls back to the built-in template.
        assert!(t.hb.get_template("events").is_some());
    }
}
