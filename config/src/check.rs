//! `check-config` for both programs: every problem of a config file at once, each with
//! its key, line and column, instead of the first one start-up stops at.
//!
//! How: the program's own parser (all sections and their validation) runs on the text;
//! after each error the top-level key it names is taken out of the text and the parser
//! runs again, so every key with a problem is reported once (at most [`MAX_PROBLEMS`]).
//! Unknown keys are problems here too (at run time they are warnings).

use std::path::Path;

use crate::ConfigError;

/// `check-config` of `program`: reads the config file as start would look it up
/// (`explicit`, else `~/.hb.yaml`, else `system`), prints every problem `parse` finds
/// (see [`problems`]) or that it is fine, and returns the exit code: 0, or 2 on any
/// problem.
pub fn check_file(
    program: &str,
    explicit: Option<&Path>,
    system: &str,
    parse: impl Fn(&str, &Path) -> Result<(Vec<String>, Vec<String>), ConfigError>,
) -> u8 {
    let (path, text) = match crate::read_config_file(explicit, system) {
        Ok(Some(x)) => x,
        Ok(None) => {
            println!("no config file: embedded defaults; config OK");
            return 0;
        }
        Err((path, e)) => {
            eprintln!(
                "{program}: error: cannot read config file {}: {e}",
                path.display()
            );
            return 2;
        }
    };
    let found = problems(&text, &path, |t| parse(t, &path), unknown_key);
    if found.is_empty() {
        println!("{}: config OK", path.display());
        return 0;
    }
    for p in &found {
        eprintln!("{program}: error: {}: {p}", path.display());
    }
    eprintln!(
        "{program}: {} problem(s) in {}",
        found.len(),
        path.display()
    );
    2
}

/// The key an unknown-key warning of [`crate::Document::warnings`] names.
pub fn unknown_key(warning: &str) -> Option<String> {
    warning
        .split_once("unknown key `")
        .and_then(|(_, rest)| rest.rsplit_once("` is ignored"))
        .map(|(k, _)| k.to_string())
}

/// The most problems reported for one file.
pub const MAX_PROBLEMS: usize = 50;

/// One problem of a config file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The top-level key (empty when the file as a whole is wrong).
    pub key: String,
    pub line: usize,
    pub column: usize,
    pub message: String,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "line {}, column {}: {}",
            self.line, self.column, self.message
        )
    }
}

/// What `parse` (the program's parser and validation, `Err` at the first problem) finds
/// in `text`, the unknown keys it warns about (`unknown` picks the key names out of its
/// warnings), and the further problems it reports of a config that parsed (files,
/// templates and keys start would read, as `key: message`), as problems in the order of
/// the file. `parse` returns `(warnings, further problems)`.
pub fn problems(
    text: &str,
    path: &Path,
    parse: impl Fn(&str) -> Result<(Vec<String>, Vec<String>), ConfigError>,
    unknown: impl Fn(&str) -> Option<String>,
) -> Vec<Problem> {
    let mut text = text.to_string();
    let mut found = Vec::new();
    loop {
        match parse(&text) {
            Ok((warnings, more)) => {
                for message in more {
                    let key = key_of(&message, &text).unwrap_or_default();
                    let (line, column) = position(&text, &key).unwrap_or((1, 1));
                    found.push(Problem {
                        key,
                        line,
                        column,
                        message,
                    });
                }
                for w in warnings {
                    if let Some(k) = unknown(&w) {
                        let top = k.split('.').next().unwrap_or(&k);
                        let (line, column) = position(&text, top).unwrap_or((1, 1));
                        found.push(Problem {
                            message: format!("{k}: unknown key (check its spelling)"),
                            key: k,
                            line,
                            column,
                        });
                    }
                }
                break;
            }
            Err(ConfigError::Read { source, .. }) => {
                found.push(Problem {
                    key: String::new(),
                    line: 1,
                    column: 1,
                    message: format!("cannot read {}: {source}", path.display()),
                });
                break;
            }
            Err(ConfigError::Invalid { message, .. }) => {
                let key = key_of(&message, &text);
                let at = line_column(&message)
                    .or_else(|| key.as_deref().and_then(|k| position(&text, k)));
                let (line, column) = at.unwrap_or((1, 1));
                found.push(Problem {
                    key: key.clone().unwrap_or_default(),
                    line,
                    column,
                    message: strip_location(&message),
                });
                let removed = key.as_deref().is_some_and(|k| remove_key(&mut text, k));
                if !removed || found.len() >= MAX_PROBLEMS {
                    break;
                }
            }
        }
    }
    found.sort_by_key(|p| (p.line, p.column));
    found
}

/// The top-level key a message is about: the text before its first `:` or `.` when that
/// is a plain key name, else its first word when `text` has that key.
fn key_of(message: &str, text: &str) -> Option<String> {
    let plain = |k: &str| !k.is_empty() && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    let head = message.split(':').next()?.trim();
    let key = head.split(['.', '[']).next()?.trim();
    if plain(key) {
        return Some(key.to_string());
    }
    let word = message.split_whitespace().next()?;
    (plain(word) && position(text, word).is_some()).then(|| word.to_string())
}

/// `at line N column M` in a YAML error.
fn line_column(message: &str) -> Option<(usize, usize)> {
    let rest = &message[message.rfind("at line ")? + "at line ".len()..];
    let mut words = rest.split_whitespace();
    let line = words.next()?.parse().ok()?;
    let column = match (words.next(), words.next()) {
        (Some("column"), Some(c)) => c
            .trim_end_matches(|c: char| !c.is_ascii_digit())
            .parse()
            .ok()?,
        _ => 1,
    };
    Some((line, column))
}

fn strip_location(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(i) => message[..i].to_string(),
        None => message.to_string(),
    }
}

/// Line and column (1-based) of top-level `key:` in `text`.
fn position(text: &str, key: &str) -> Option<(usize, usize)> {
    text.lines()
        .position(|l| is_key_line(l, key))
        .map(|i| (i + 1, 1))
}

fn is_key_line(line: &str, key: &str) -> bool {
    line.strip_prefix(key)
        .is_some_and(|rest| rest.trim_start().starts_with(':'))
}

/// Takes top-level `key` (its line and the indented or list lines below it) out of
/// `text`, keeping the line count (removed lines become empty) so later positions stay
/// true. False when the key is not there.
fn remove_key(text: &mut String, key: &str) -> bool {
    let mut out = Vec::new();
    let mut removing = false;
    let mut removed = false;
    for line in text.lines() {
        if is_key_line(line, key) {
            removing = true;
            removed = true;
            out.push("");
            continue;
        }
        if removing {
            let continues = line.starts_with(' ')
                || line.starts_with('\t')
                || line.starts_with('-')
                || line.trim().is_empty()
                || line.starts_with('#');
            if continues {
                out.push("");
                continue;
            }
            removing = false;
        }
        out.push(line);
    }
    *text = out.join("\n");
    text.push('\n');
    removed
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A stand-in program: `a` and `b` must be numbers, `c` below 10, `d` a list.
    fn parse(text: &str) -> Result<(Vec<String>, Vec<String>), ConfigError> {
        #[derive(serde::Deserialize, Default)]
        #[serde(default)]
        struct C {
            a: u32,
            b: u32,
            c: u32,
            d: Vec<u32>,
        }
        let mut doc = crate::Document::new(text, Path::new("t.yaml"));
        let c: C = doc.section()?;
        if c.c >= 10 {
            return Err(doc.invalid(format!("c: {} is out of range; use 0 to 9", c.c)));
        }
        let more = if c.b == 7 {
            vec!["b is unlucky".to_string()]
        } else {
            Vec::new()
        };
        Ok((doc.warnings(|_| false), more))
    }

    fn unknown(w: &str) -> Option<String> {
        unknown_key(w)
    }

    #[test]
    fn every_problem_at_once_in_file_order() {
        let text = "a: one\nb: 7\nc: 12\nd:\n  - x\n  - 3\nzz: 1\n";
        let p = problems(text, Path::new("t.yaml"), parse, unknown);
        let keys: Vec<_> = p.iter().map(|p| (p.key.as_str(), p.line)).collect();
        assert_eq!(
            keys,
            [("a", 1), ("b", 2), ("c", 3), ("d", 5), ("zz", 7)],
            "{p:#?}"
        );
        assert!(p[0].column > 1, "{p:#?}");
        assert!(p[1].message.contains("unlucky"), "{p:#?}");
        assert!(p[2].message.contains("out of range"), "{p:#?}");
        assert!(p[4].message.contains("unknown key"), "{p:#?}");
    }

    #[test]
    fn a_good_file_has_none() {
        assert!(problems("a: 1\nd: [1, 2]\n", Path::new("t.yaml"), parse, unknown).is_empty());
    }
}
