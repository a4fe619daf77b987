//! Turning a finished check into readings: `nagios.<check>.state` with the check's own
//! level and message, one reading per performance data value, and `duration_s`.

use std::collections::HashSet;

use hbc_plugin_api::{Level, Reading};

use crate::config::Check;
use crate::perfdata::{parse_output, PerfItem};
use crate::run::{Finished, Outcome};

/// Key suffixes of our own readings, which a perfdata label must not take over.
const STATE: &str = "state";
const DURATION: &str = "duration_s";
/// Longest reading key the wire format carries (docs/protocol.md); hbc cannot send a
/// heartbeat holding a longer one.
const MAX_KEY: usize = 255;

/// The readings for one check run.
pub fn readings(check: &Check, finished: &Finished) -> Vec<Reading> {
    let name = &check.name;
    let output = parse_output(&finished.stdout);
    let first_line = if output.message.is_empty() {
        first_line(&finished.stderr)
    } else {
        output.message.as_str()
    };

    let (code, message) = match &finished.outcome {
        Outcome::Exited(code @ 0..=3) => (
            i64::from(*code),
            or_else(first_line, || format!("check {name} returned no output")),
        ),
        Outcome::Exited(code) => (
            i64::from(*code),
            with_output(format!("check {name} exited with code {code}"), first_line),
        ),
        Outcome::Signaled(signal) => (
            UNKNOWN,
            with_output(
                format!(
                    "check {name} was killed by signal {signal} ({})",
                    signal_name(*signal)
                ),
                first_line,
            ),
        ),
        Outcome::TimedOut => (
            UNKNOWN,
            format!(
                "check {name} timed out after {}s (process group killed)",
                check.timeout_s
            ),
        ),
        Outcome::NotStarted(e) => (
            UNKNOWN,
            format!("check {name}: cannot run {}: {e}", program(check)),
        ),
        Outcome::Lost(e) => (
            UNKNOWN,
            format!("check {name}: lost track of {}: {e}", program(check)),
        ),
    };

    let mut readings = vec![Reading::integer(format!("nagios.{name}.{STATE}"), code, "")
        .with_state(Level::from_code(code))
        .with_message(message)];
    if !matches!(finished.outcome, Outcome::TimedOut) {
        let mut taken: HashSet<String> = [STATE, DURATION].map(String::from).into();
        let room = MAX_KEY.saturating_sub(format!("nagios.{name}.").len());
        for item in &output.perfdata {
            let Some(value) = item.value else { continue };
            let label = unique(sanitize_label(&item.label), room, &mut taken);
            readings.push(
                Reading::number(format!("nagios.{name}.{label}"), value, &item.uom)
                    .with_message(limits(item)),
            );
        }
    }
    readings.push(Reading::number(
        format!("nagios.{name}.{DURATION}"),
        finished.duration.as_secs_f64(),
        "s",
    ));
    readings
}

const UNKNOWN: i64 = Level::Unknown as i64;

fn program(check: &Check) -> &str {
    check.argv.first().map_or("", String::as_str)
}

fn first_line(text: &str) -> &str {
    text.lines()
        .map(str::trim)
        .find(|line| !line.is_empty())
        .unwrap_or("")
}

fn or_else(line: &str, fallback: impl FnOnce() -> String) -> String {
    if line.is_empty() {
        fallback()
    } else {
        line.to_owned()
    }
}

fn with_output(what: String, line: &str) -> String {
    if line.is_empty() {
        what
    } else {
        format!("{what}: {line}")
    }
}

/// `warn=<w> crit=<c> min=<m> max=<x>`, with only the parts the check gave.
fn limits(item: &PerfItem) -> String {
    let min = item.min.map(|v| v.to_string());
    let max = item.max.map(|v| v.to_string());
    [
        ("warn", item.warn.as_deref()),
        ("crit", item.crit.as_deref()),
        ("min", min.as_deref()),
        ("max", max.as_deref()),
    ]
    .iter()
    .filter_map(|(name, value)| value.map(|v| format!("{name}={v}")))
    .collect::<Vec<_>>()
    .join(" ")
}

/// Makes a perfdata label safe as the last part of a key: whitespace and anything outside
/// `[A-Za-z0-9_./:%-]` becomes `_`.
pub fn sanitize_label(label: &str) -> String {
    label
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '/' | ':' | '%' | '-') {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// `label`, or `label_2`, `label_3`, ... when taken, cut to at most `room` bytes (a long
/// label made the whole heartbeat unsendable; found by fuzzing); records the result as
/// taken. `label` is ASCII (from [`sanitize_label`]), so any cut is a character boundary.
fn unique(label: String, room: usize, taken: &mut HashSet<String>) -> String {
    let cut = |suffix: &str| {
        let keep = label.len().min(room.saturating_sub(suffix.len()));
        format!("{}{suffix}", &label[..keep])
    };
    let mut candidate = cut("");
    let mut n = 2;
    while taken.contains(&candidate) {
        candidate = cut(&format!("_{n}"));
        n += 1;
    }
    taken.insert(candidate.clone());
    candidate
}

/// Windows has no signals: `Outcome::Signaled` never happens there.
#[cfg(not(unix))]
fn signal_name(_signal: i32) -> &'static str {
    "a signal"
}

#[cfg(unix)]
fn signal_name(signal: i32) -> &'static str {
    match signal {
        libc::SIGHUP => "SIGHUP",
        libc::SIGINT => "SIGINT",
        libc::SIGQUIT => "SIGQUIT",
        libc::SIGILL => "SIGILL",
        libc::SIGTRAP => "SIGTRAP",
        libc::SIGABRT => "SIGABRT",
        libc::SIGBUS => "SIGBUS",
        libc::SIGFPE => "SIGFPE",
        libc::SIGKILL => "SIGKILL",
        libc::SIGUSR1 => "SIGUSR1",
        libc::SIGSEGV => "SIGSEGV",
        libc::SIGUSR2 => "SIGUSR2",
        libc::SIGPIPE => "SIGPIPE",
        libc::SIGALRM => "SIGALRM",
        libc::SIGTERM => "SIGTERM",
        libc::SIGXCPU => "SIGXCPU",
        libc::SIGXFSZ => "SIGXFSZ",
        _ => "unnamed signal",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hbc_plugin_api::abi_stable::std_types::ROption;
    use hbc_plugin_api::Value;
    use std::time::Duration;

    fn check(name: &str) -> Check {
        Check {
            name: name.into(),
            argv: vec!["/usr/lib/nagios/plugins/check_x".into()],
            timeout: Duration::from_millis(500),
            timeout_s: 0.5,
        }
    }

    fn finished(outcome: Outcome, stdout: &str, stderr: &str) -> Finished {
        Finished {
            outcome,
            stdout: stdout.into(),
            stderr: stderr.into(),
            duration: Duration::from_millis(250),
            pgid: Some(1234),
        }
    }

    fn keys(readings: &[Reading]) -> Vec<&str> {
        readings.iter().map(|r| r.key.as_str()).collect()
    }

    #[test]
    fn state_perfdata_and_duration() {
        let r = readings(
            &check("web"),
            &finished(
                Outcome::Exited(1),
                "HTTP WARNING - slow|time=1.5s;1;2;0;10 size=512B 'x y'=U ''''=3\nmore\n",
                "",
            ),
        );
        assert_eq!(
            keys(&r),
            [
                "nagios.web.state",
                "nagios.web.time",
                "nagios.web.size",
                "nagios.web._",
                "nagios.web.duration_s"
            ]
        );
        assert_eq!(r[0].value, Value::I64(1));
        assert_eq!(r[0].state, ROption::RSome(Level::Warning));
        assert_eq!(r[0].message.as_str(), "HTTP WARNING - slow");
        assert_eq!(r[1].value, Value::F64(1.5));
        assert_eq!(r[1].unit.as_str(), "s");
        assert_eq!(r[1].message.as_str(), "warn=1 crit=2 min=0 max=10");
        assert_eq!(r[1].state, ROption::RNone);
        assert_eq!(r[2].unit.as_str(), "B");
        assert_eq!(r[2].message.as_str(), "");
        assert_eq!(r[4].value, Value::F64(0.25));
        assert_eq!(r[4].unit.as_str(), "s");
    }

    #[test]
    fn labels_are_sanitized_and_made_unique() {
        assert_eq!(sanitize_label("/var/log"), "/var/log");
        assert_eq!(sanitize_label("a b\tc"), "a_b_c");
        assert_eq!(sanitize_label("it's=ü"), "it_s__");
        assert_eq!(sanitize_label("cpu:0.user%-x_y"), "cpu:0.user%-x_y");
        let r = readings(
            &check("c"),
            &finished(
                Outcome::Exited(0),
                "OK|'a b'=1 a_b=2 'a?b'=3 a_b_2=4 state=5 duration_s=6",
                "",
            ),
        );
        assert_eq!(
            keys(&r),
            [
                "nagios.c.state",
                "nagios.c.a_b",
                "nagios.c.a_b_2",
                "nagios.c.a_b_3",
                "nagios.c.a_b_2_2",
                "nagios.c.state_2",
                "nagios.c.duration_s_2",
                "nagios.c.duration_s",
            ]
        );
        assert_eq!(r[4].value, Value::F64(4.0));
    }

    /// Found by the `nagios_output` fuzz target: a perfdata label of 300 characters made a
    /// key longer than the wire format's 255 bytes, and hbc could send no heartbeat at all.
    #[test]
    fn long_labels_are_cut_to_fit_a_key() {
        let label = "é".repeat(150) + &"x".repeat(150);
        let stdout = format!("OK|'{label}'=1 '{label}'=2 '{label}y'=3");
        let r = readings(&check("disk"), &finished(Outcome::Exited(0), &stdout, ""));
        let keys = keys(&r);
        assert_eq!(keys.len(), 5);
        assert!(keys.iter().all(|k| k.len() <= MAX_KEY), "{keys:?}");
        assert_eq!(keys[1].len(), MAX_KEY);
        assert!(keys[1].starts_with("nagios.disk.___"));
        assert!(keys[2].ends_with("x_2"), "{}", keys[2]);
        assert!(keys[3].ends_with("x_3"), "{}", keys[3]);
        let unique: HashSet<&&str> = keys.iter().collect();
        assert_eq!(unique.len(), 5);
    }

    #[test]
    fn messages_for_each_outcome() {
        let cases = [
            (Outcome::Exited(0), "", "", 0, "check x returned no output"),
            (Outcome::Exited(2), "", "\n  boom  \nmore", 2, "boom"),
            (Outcome::Exited(2), "|a=1", "from stderr", 2, "from stderr"),
            (
                Outcome::Exited(3),
                "UNKNOWN - what",
                "ignored",
                3,
                "UNKNOWN - what",
            ),
            (
                Outcome::Exited(127),
                "",
                "sh: 1: check_y: not found",
                127,
                "check x exited with code 127: sh: 1: check_y: not found",
            ),
            (
                Outcome::Exited(-1),
                "",
                "",
                -1,
                "check x exited with code -1",
            ),
            (
                Outcome::Signaled(libc::SIGSEGV),
                "partial",
                "",
                3,
                "check x was killed by signal 11 (SIGSEGV): partial",
            ),
            (
                Outcome::TimedOut,
                "",
                "",
                3,
                "check x timed out after 0.5s (process group killed)",
            ),
            (
                Outcome::NotStarted(std::io::Error::from_raw_os_error(libc::ENOENT)),
                "",
                "",
                3,
                "check x: cannot run /usr/lib/nagios/plugins/check_x: \
                 No such file or directory (os error 2)",
            ),
        ];
        for (outcome, stdout, stderr, code, message) in cases {
            let r = readings(&check("x"), &finished(outcome, stdout, stderr));
            assert_eq!(r[0].key.as_str(), "nagios.x.state");
            assert_eq!(r[0].value, Value::I64(code), "{message}");
            assert_eq!(r[0].state, ROption::RSome(Level::from_code(code)));
            assert_eq!(r[0].message.as_str(), message);
            assert_eq!(
                r.last().map(|r| r.key.as_str()),
                Some("nagios.x.duration_s")
            );
        }
    }

    #[test]
    fn a_timed_out_check_reports_no_perfdata() {
        let r = readings(&check("t"), &finished(Outcome::TimedOut, "OK|a=1", ""));
        assert_eq!(keys(&r), ["nagios.t.state", "nagios.t.duration_s"]);
    }
}
