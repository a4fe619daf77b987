//! Parsing `os-release` (`/etc/os-release`, `/usr/lib/os-release`): the distribution's
//! name and version.
//!
//! The format is a list of shell-style `KEY=value` assignments, values optionally in
//! single or double quotes (os-release(5)).

/// The fields of `os-release` that the plugin reports.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OsRelease {
    pub name: Option<String>,
    pub pretty_name: Option<String>,
    pub version_id: Option<String>,
}

impl OsRelease {
    /// `PRETTY_NAME`, else `NAME`, else `Linux` (the default os-release(5) gives `NAME`).
    pub fn display_name(&self) -> &str {
        self.pretty_name
            .as_deref()
            .or(self.name.as_deref())
            .unwrap_or("Linux")
    }
}

pub fn parse_os_release(text: &str) -> Result<OsRelease, String> {
    let mut release = OsRelease::default();
    for (index, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let at = |e: String| format!("line {}: {e}", index + 1);
        let (key, value) = line
            .split_once('=')
            .ok_or_else(|| at(format!("expected KEY=value, found {line:?}")))?;
        if key.is_empty() || !key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
            return Err(at(format!("{key:?} is not a variable name")));
        }
        let slot = match key {
            "NAME" => &mut release.name,
            "PRETTY_NAME" => &mut release.pretty_name,
            "VERSION_ID" => &mut release.version_id,
            _ => continue,
        };
        *slot = Some(unquote(value).map_err(|e| at(format!("{key}: {e}")))?);
    }
    Ok(release)
}

/// `"Debian GNU/Linux 12 (bookworm)"`, `'x'` or `bare`. In double quotes, a backslash
/// makes the next `"`, `\`, `$` or `` ` `` literal.
fn unquote(value: &str) -> Result<String, String> {
    if let Some(inner) = value.strip_prefix('\'') {
        let inner = inner
            .strip_suffix('\'')
            .ok_or_else(|| format!("unterminated single quote in {value}"))?;
        return Ok(inner.to_string());
    }
    let Some(inner) = value.strip_prefix('"') else {
        if value.contains(['"', '\'', '\\', '`', '$']) || value.contains(char::is_whitespace) {
            return Err(format!("unquoted value {value:?} needs quotes"));
        }
        return Ok(value.to_string());
    };
    let mut out = String::with_capacity(inner.len());
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        match c {
            '"' => {
                return match chars.as_str() {
                    "" => Ok(out),
                    rest => Err(format!("text after the closing quote: {rest:?}")),
                };
            }
            '\\' => match chars.next() {
                Some(escaped @ ('"' | '\\' | '$' | '`')) => out.push(escaped),
                Some(other) => {
                    out.push('\\');
                    out.push(other);
                }
                None => break,
            },
            other => out.push(other),
        }
    }
    Err(format!("unterminated double quote in {value}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `/etc/os-release` of Debian 12.
    const DEBIAN: &str = r#"PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"
NAME="Debian GNU/Linux"
VERSION_ID="12"
VERSION="12 (bookworm)"
VERSION_CODENAME=bookworm
ID=debian
HOME_URL="https://www.debian.org/"
SUPPORT_URL="https://www.debian.org/support"
BUG_REPORT_URL="https://bugs.debian.org/"
"#;

    #[test]
    fn parses_debian() {
        let r = parse_os_release(DEBIAN).expect("parse");
        assert_eq!(r.display_name(), "Debian GNU/Linux 12 (bookworm)");
        assert_eq!(r.name.as_deref(), Some("Debian GNU/Linux"));
        assert_eq!(r.version_id.as_deref(), Some("12"));
    }

    #[test]
    fn name_falls_back_and_quotes_are_understood() {
        let text = "# a comment\n\nNAME='Arch Linux'\nBUILD_ID=rolling\n";
        let r = parse_os_release(text).expect("parse");
        assert_eq!(r.display_name(), "Arch Linux");
        assert_eq!(r.version_id, None);
        assert_eq!(parse_os_release("").expect("empty").display_name(), "Linux");
        let r = parse_os_release(r#"PRETTY_NAME="say \"hi\" for \$5 \n""#).expect("escapes");
        assert_eq!(r.display_name(), r#"say "hi" for $5 \n"#);
        let r = parse_os_release("VERSION_ID=22.04").expect("bare");
        assert_eq!(r.version_id.as_deref(), Some("22.04"));
    }

    #[test]
    fn malformed_input_is_an_error() {
        let err = parse_os_release("NAME=\"Debian\nVERSION_ID=12\n").expect_err("open quote");
        assert!(
            err.contains("line 1") && err.contains("unterminated"),
            "{err}"
        );
        let err = parse_os_release("ID=x\nJUST TEXT\n").expect_err("no =");
        assert!(err.contains("line 2"), "{err}");
        assert!(parse_os_release("NAME='x").is_err());
        assert!(parse_os_release("NAME=\"x\"y").is_err());
        assert!(parse_os_release("NAME=two words").is_err());
        assert!(parse_os_release("BAD KEY=x").is_err());
    }
}
