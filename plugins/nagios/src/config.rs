//! The plugin's options and their validation: which checks to run, with which argument
//! vector and timeout. Everything that can be wrong in the config is reported by
//! [`Check::from_options`] when the plugin starts, not on each collection.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use serde::de::{self, Deserializer, SeqAccess, Visitor};
use serde::Deserialize;

/// Default per-command timeout, seconds.
const DEFAULT_TIMEOUT_S: f64 = 10.0;

/// `plugins.nagios.options` as written in hbc's config.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NagiosOptions {
    /// Default timeout of every command, seconds.
    #[serde(default = "default_timeout")]
    pub timeout: f64,
    /// Check name → command.
    #[serde(default)]
    pub commands: BTreeMap<String, CommandSpec>,
}

fn default_timeout() -> f64 {
    DEFAULT_TIMEOUT_S
}

/// One configured check command.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CommandSpec {
    pub command: CommandLine,
    /// Overrides the default timeout, seconds.
    pub timeout: Option<f64>,
    /// Runs a string command with `/bin/sh -c` instead of splitting it into words.
    #[serde(default)]
    pub shell: bool,
}

/// A command as an argument vector or as one string.
#[derive(Debug, Clone, PartialEq)]
pub enum CommandLine {
    Argv(Vec<String>),
    Line(String),
}

impl<'de> Deserialize<'de> for CommandLine {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct CommandLineVisitor;

        impl<'de> Visitor<'de> for CommandLineVisitor {
            type Value = CommandLine;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a command: a list of arguments or a string")
            }

            fn visit_str<E: de::Error>(self, line: &str) -> Result<CommandLine, E> {
                Ok(CommandLine::Line(line.to_owned()))
            }

            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<CommandLine, A::Error> {
                let mut argv = Vec::new();
                while let Some(arg) = seq.next_element::<String>()? {
                    argv.push(arg);
                }
                Ok(CommandLine::Argv(argv))
            }
        }

        deserializer.deserialize_any(CommandLineVisitor)
    }
}

/// A validated check, ready to run.
#[derive(Debug, Clone, PartialEq)]
pub struct Check {
    /// The name from the config; the second part of every reading key.
    pub name: String,
    /// Program and arguments; never empty.
    pub argv: Vec<String>,
    pub timeout: Duration,
    /// The timeout as configured, for messages ("timed out after 0.5s").
    pub timeout_s: f64,
}

impl Check {
    /// Validates the options into the list of checks, ordered by name.
    pub fn from_options(options: &NagiosOptions) -> Result<Vec<Check>, String> {
        validate_timeout(options.timeout).map_err(|e| format!("invalid options: timeout: {e}"))?;
        options
            .commands
            .iter()
            .map(|(name, spec)| {
                Check::new(name, spec, options.timeout)
                    .map_err(|e| format!("invalid options: commands.{name}: {e}"))
            })
            .collect()
    }

    fn new(name: &str, spec: &CommandSpec, default_timeout_s: f64) -> Result<Check, String> {
        if !is_valid_name(name) {
            return Err("check names may only contain letters, digits, '_', '.' and '-'".into());
        }
        let argv = match (&spec.command, spec.shell) {
            (CommandLine::Argv(_), true) => {
                return Err("command: `shell: true` needs the command as one string".into())
            }
            (CommandLine::Argv(argv), false) => argv.clone(),
            (CommandLine::Line(line), true) => {
                if line.trim().is_empty() {
                    return Err("command: is empty".into());
                }
                // Windows: cmd.exe, as NSClient++ runs a command line.
                if cfg!(windows) {
                    vec!["cmd.exe".into(), "/C".into(), line.clone()]
                } else {
                    vec!["/bin/sh".into(), "-c".into(), line.clone()]
                }
            }
            (CommandLine::Line(line), false) => {
                split_words(line).map_err(|e| format!("command: {e}"))?
            }
        };
        match argv.first() {
            None => return Err("command: is empty".into()),
            Some(program) if program.is_empty() => {
                return Err("command: the program name is empty".into())
            }
            Some(_) => {}
        }
        let timeout_s = spec.timeout.unwrap_or(default_timeout_s);
        let timeout = validate_timeout(timeout_s).map_err(|e| format!("timeout: {e}"))?;
        Ok(Check {
            name: name.to_owned(),
            argv,
            timeout,
            timeout_s,
        })
    }
}

fn is_valid_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}

fn validate_timeout(seconds: f64) -> Result<Duration, String> {
    if seconds.is_nan() || seconds <= 0.0 {
        return Err(format!(
            "must be a positive number of seconds, not {seconds}"
        ));
    }
    Duration::try_from_secs_f64(seconds).map_err(|_| "is too long".to_string())
}

/// Splits a command line into words the way a shell would for the simple cases:
/// whitespace separates words, `'...'` quotes literally, `"..."` quotes with `\"` and `\\`
/// as the only escapes, and a backslash outside quotes escapes the next character.
/// There is no globbing, no variable expansion and no other shell syntax.
pub fn split_words(line: &str) -> Result<Vec<String>, String> {
    let mut words = Vec::new();
    let mut word = String::new();
    // A word can be empty (`''`), so whether one is open is tracked separately.
    let mut in_word = false;
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            c if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            '\'' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(c) => word.push(c),
                        None => return Err("a single quote (') is not closed".into()),
                    }
                }
            }
            '"' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some(c @ ('"' | '\\')) => word.push(c),
                            Some(c) => {
                                word.push('\\');
                                word.push(c);
                            }
                            None => return Err("a double quote (\") is not closed".into()),
                        },
                        Some(c) => word.push(c),
                        None => return Err("a double quote (\") is not closed".into()),
                    }
                }
            }
            '\\' => {
                in_word = true;
                match chars.next() {
                    Some(c) => word.push(c),
                    None => return Err("ends with a backslash".into()),
                }
            }
            c => {
                in_word = true;
                word.push(c);
            }
        }
    }
    if in_word {
        words.push(word);
    }
    Ok(words)
}

#[cfg(test)]
mod tests {
    use super::*;
    use hbc_plugin_api::Options;

    fn words(line: &str) -> Vec<String> {
        split_words(line).expect("splits")
    }

    #[test]
    fn splits_on_whitespace() {
        assert_eq!(
            words("  /usr/lib/nagios/plugins/check_load -w 5,4,3\t-c 10,8,6 "),
            [
                "/usr/lib/nagios/plugins/check_load",
                "-w",
                "5,4,3",
                "-c",
                "10,8,6"
            ]
        );
        assert!(words("").is_empty());
        assert!(words(" \t ").is_empty());
    }

    #[test]
    fn splits_quoted_words() {
        assert_eq!(
            words(r#"check_x -m 'a b  c' --label="x y" '' "" 'it'\''s'"#),
            ["check_x", "-m", "a b  c", "--label=x y", "", "", "it's"]
        );
        assert_eq!(words(r#"'$HOME *' "$HOME""#), ["$HOME *", "$HOME"]);
        assert_eq!(words(r#""say \"hi\" \\ \n""#), [r#"say "hi" \ \n"#]);
        assert_eq!(words(r"a\ b c"), ["a b", "c"]);
        assert_eq!(words("'a'\"b\"c"), ["abc"]);
    }

    #[test]
    fn rejects_unclosed_quotes() {
        assert!(split_words("check 'abc").is_err());
        assert!(split_words("check \"abc").is_err());
        assert!(split_words("check \"abc\\\"").is_err());
        assert!(split_words("check abc\\").is_err());
    }

    fn checks(json: &str) -> Result<Vec<Check>, String> {
        let options: NagiosOptions = Options::from_json(json)?.parse()?;
        Check::from_options(&options)
    }

    #[test]
    fn builds_checks_from_options() {
        let checks = checks(
            r#"{"timeout": 7, "commands": {
                "load": {"command": ["/bin/check_load", "-w", "5,4,3"], "timeout": 2.5},
                "words": {"command": "check_x -m 'a b'"},
                "sh": {"command": "exit 2", "shell": true}
            }}"#,
        )
        .expect("valid");
        let names: Vec<_> = checks.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["load", "sh", "words"]);
        assert_eq!(checks[0].argv, ["/bin/check_load", "-w", "5,4,3"]);
        assert_eq!(checks[0].timeout, Duration::from_millis(2500));
        assert_eq!(checks[0].timeout_s, 2.5);
        assert_eq!(checks[1].argv, ["/bin/sh", "-c", "exit 2"]);
        assert_eq!(checks[2].argv, ["check_x", "-m", "a b"]);
        assert_eq!(checks[2].timeout, Duration::from_secs(7));
        assert_eq!(checks[2].timeout_s, 7.0);
    }

    #[test]
    fn defaults_to_no_checks_and_ten_seconds() {
        assert!(checks("{}").expect("valid").is_empty());
        let checks = checks(r#"{"commands": {"t": {"command": "true"}}}"#).expect("valid");
        assert_eq!(checks[0].timeout, Duration::from_secs(10));
    }

    #[test]
    fn rejects_bad_options() {
        let cases = [
            (
                r#"{"commands": {"bad name": {"command": "true"}}}"#,
                "commands.bad name",
            ),
            (r#"{"commands": {"": {"command": "true"}}}"#, "check names"),
            (
                r#"{"commands": {"a/b": {"command": "true"}}}"#,
                "check names",
            ),
            (r#"{"commands": {"x": {"command": []}}}"#, "empty"),
            (r#"{"commands": {"x": {"command": ""}}}"#, "empty"),
            (
                r#"{"commands": {"x": {"command": "  ", "shell": true}}}"#,
                "empty",
            ),
            (r#"{"commands": {"x": {"command": [""]}}}"#, "program name"),
            (
                r#"{"commands": {"x": {"command": ["a"], "shell": true}}}"#,
                "one string",
            ),
            (r#"{"commands": {"x": {"command": "a 'b"}}}"#, "not closed"),
            (
                r#"{"commands": {"x": {"command": "a", "timeout": 0}}}"#,
                "positive",
            ),
            (
                r#"{"commands": {"x": {"command": "a", "timeout": -1}}}"#,
                "positive",
            ),
            (
                r#"{"commands": {"x": {"command": "a", "timeout": 1e300}}}"#,
                "too long",
            ),
            (r#"{"timeout": 0, "commands": {}}"#, "timeout"),
            (
                r#"{"commands": {"x": {"command": 5}}}"#,
                "list of arguments or a string",
            ),
            (
                r#"{"commands": {"x": {"command": "a", "shel": true}}}"#,
                "unknown field",
            ),
            (r#"{"command": {}}"#, "unknown field"),
        ];
        for (json, expected) in cases {
            let err = checks(json).expect_err(json);
            assert!(err.contains(expected), "{json}: {err}");
        }
    }
}
