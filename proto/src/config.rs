//! The duration syntax of the shared config file (`~/.hb.yaml` holds hbc's and hbd's
//! keys side by side, so both read durations the same way): `500ms`, `10s`, `2m`, `1h`,
//! or a bare number of seconds.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Deserializer};

/// A password, token or key from the config: read like a string, never shown by `Debug`
/// (so a config dumped into a log or an error shows `"***"`).
#[derive(Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct Secret(pub String);

impl Secret {
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("\"***\"")
    }
}

/// Reads the config file both programs look for: `explicit` (which must exist), else
/// `~/.hb.yaml`, else `system` (`/etc/hbc.yaml` or `/etc/hbd.yaml`). `Ok(None)` when
/// none exists (built-in defaults); the error names the file that could not be read.
pub fn read_config_file(
    explicit: Option<&Path>,
    system: &str,
) -> Result<Option<(PathBuf, String)>, (PathBuf, std::io::Error)> {
    let candidates: Vec<PathBuf> = match explicit {
        Some(p) => vec![p.to_path_buf()],
        None => std::env::var_os("HOME")
            .map(|home| PathBuf::from(home).join(".hb.yaml"))
            .into_iter()
            .chain([PathBuf::from(system)])
            .collect(),
    };
    for path in candidates {
        match std::fs::read_to_string(&path) {
            Ok(text) => return Ok(Some((path, text))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && explicit.is_none() => {}
            Err(e) => return Err((path, e)),
        }
    }
    Ok(None)
}

/// A warning when `path` holds secrets (the keys named in `secrets`) and every user of the
/// machine may read it. Group-readable is fine (the packages install hbd's file 0640
/// root:hbd); `None` when nothing is wrong or the mode cannot be read.
pub fn readable_secrets_warning(path: &Path, secrets: &[&str]) -> Option<String> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if secrets.is_empty() {
            return None;
        }
        let mode = std::fs::metadata(path).ok()?.permissions().mode();
        (mode & 0o004 != 0).then(|| {
            format!(
                "{} holds secrets ({}) and every user of this machine can read it (mode {:04o}); \
                 run chmod o-r {} (and chgrp it to the service's group if needed)",
                path.display(),
                secrets.join(", "),
                mode & 0o7777,
                path.display()
            )
        })
    }
    #[cfg(not(unix))]
    {
        let _ = (path, secrets);
        None
    }
}

/// The top-level key of a path that `serde_ignored` reports as unknown, which decides
/// whose key it is. Not the text before the first `.` of the path as displayed: a YAML key
/// may itself hold dots (`hostname..: x`), and hbd then took it for a key of hbc's with
/// something below it and stayed silent (found by the `config` fuzz target).
pub fn top_level_key(path: &serde_ignored::Path<'_>) -> String {
    use serde_ignored::Path;
    match path {
        Path::Root => String::new(),
        Path::Map {
            parent: Path::Root,
            key,
        } => key.clone(),
        Path::Map { parent, .. }
        | Path::Seq { parent, .. }
        | Path::Some { parent }
        | Path::NewtypeStruct { parent }
        | Path::NewtypeVariant { parent } => top_level_key(parent),
    }
}

/// Parses `500ms`, `10s`, `2m`, `1h`, or a bare number of seconds.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let t = text.trim();
    let (num, mult) = if let Some(n) = t.strip_suffix("ms") {
        (n, 0.001)
    } else if let Some(n) = t.strip_suffix('s') {
        (n, 1.0)
    } else if let Some(n) = t.strip_suffix('m') {
        (n, 60.0)
    } else if let Some(n) = t.strip_suffix('h') {
        (n, 3600.0)
    } else {
        (t, 1.0)
    };
    let v: f64 = num
        .trim()
        .parse()
        .map_err(|_| format!("{text:?} is not a duration; use e.g. 500ms, 10s, 2m or 1h"))?;
    if !v.is_finite() || v < 0.0 || v * mult > 1e9 {
        return Err(format!("{text:?} is not a usable duration"));
    }
    Ok(Duration::from_secs_f64(v * mult))
}

/// Accepts a number of seconds or a text like `500ms`. A visitor (not an untagged enum)
/// so that errors are raised inside the YAML deserializer and carry the line.
struct DurationVisitor;

impl serde::de::Visitor<'_> for DurationVisitor {
    type Value = Duration;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a duration such as 500ms, 10s, 2m, 1h or a number of seconds")
    }

    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Duration, E> {
        parse_duration(v).map_err(E::custom)
    }

    fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Duration, E> {
        parse_duration(&v.to_string()).map_err(E::custom)
    }

    fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Duration, E> {
        parse_duration(&v.to_string()).map_err(E::custom)
    }

    fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Duration, E> {
        parse_duration(&v.to_string()).map_err(E::custom)
    }
}

/// For `#[serde(deserialize_with = "...")]` on a `Duration` field.
pub fn duration<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    d.deserialize_any(DurationVisitor)
}

/// For `#[serde(deserialize_with = "...")]` on an `Option<Duration>` field.
pub fn opt_duration<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    duration(d).map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("10"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert!(parse_duration("soon").is_err());
        assert!(parse_duration("-1s").is_err());
        assert!(parse_duration("NaN").is_err());
        assert!(parse_duration("1e12h").is_err());
    }

    #[test]
    fn an_explicit_file_must_exist_the_defaults_need_not() {
        let dir = std::env::temp_dir().join(format!("hb-proto-cfg-{}", std::process::id()));
        let missing = dir.join("nope.yaml");
        let err = read_config_file(Some(&missing), "/nonexistent/hbx.yaml").expect_err("missing");
        assert_eq!(err.0, missing);
        std::fs::create_dir_all(&dir).expect("dir");
        let file = dir.join("c.yaml");
        std::fs::write(&file, "interval: 5s\n").expect("write");
        let got = read_config_file(Some(&file), "/nonexistent/hbx.yaml").expect("read");
        assert_eq!(got, Some((file.clone(), "interval: 5s\n".to_string())));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
