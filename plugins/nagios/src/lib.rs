//! The `nagios` monitor plugin: runs Nagios-style check commands (the monitoring-plugins
//! `check_*` programs, or any script that follows their conventions) and reports each
//! check's state, message, performance data and run time as readings.
//!
//! - [`config`]: options and their validation, command-line splitting.
//! - [`run`]: running all commands concurrently with timeouts and process-group kills.
//! - [`perfdata`]: the pure parser for check output.
//! - [`readings`]: from a finished check to `nagios.<check>.*` readings.

pub mod config;
pub mod perfdata;
pub mod readings;
#[cfg(unix)]
pub mod run;
#[cfg(windows)]
#[path = "run_windows.rs"]
pub mod run;

use hbc_plugin_api::{Options, Plugin, Reading};

use crate::config::{Check, NagiosOptions};
use crate::run::Job;

/// The plugin: a fixed list of checks, all run on every collection.
#[derive(Debug)]
pub struct Nagios {
    checks: Vec<Check>,
}

impl Plugin for Nagios {
    const NAME: &'static str = "nagios";
    const DESCRIPTION: &'static str =
        "Runs Nagios-style check commands and reports their state and performance data";

    fn new(options: &Options) -> Result<Self, String> {
        let options: NagiosOptions = options.parse()?;
        Ok(Nagios {
            checks: Check::from_options(&options)?,
        })
    }

    fn collect(&mut self) -> Result<Vec<Reading>, String> {
        let jobs: Vec<Job<'_>> = self
            .checks
            .iter()
            .map(|check| Job {
                argv: &check.argv,
                timeout: check.timeout,
            })
            .collect();
        let results = run::run_all(&jobs);
        Ok(self
            .checks
            .iter()
            .zip(&results)
            .flat_map(|(check, finished)| readings::readings(check, finished))
            .collect())
    }
}

hbc_plugin_api::export_plugin!(Nagios);

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;
    use std::time::{Duration, Instant};

    use hbc_plugin_api::abi_stable::std_types::ROption;
    use hbc_plugin_api::{Level, Value};
    use hbc_plugin_support::testing::reading as find;

    const PLUGINS: &str = "/usr/lib/nagios/plugins";

    fn plugin(options: &str) -> Nagios {
        let options = Options::from_json(options).expect("valid JSON");
        Nagios::new(&options).expect("valid options")
    }

    fn collect(options: &str) -> Vec<Reading> {
        plugin(options).collect().expect("collects")
    }

    fn assert_state(readings: &[Reading], name: &str, code: i64, level: Level) {
        let state = find(readings, &format!("nagios.{name}.state"));
        assert_eq!(state.value, Value::I64(code), "{state:?}");
        assert_eq!(state.state, ROption::RSome(level), "{state:?}");
    }

    fn message<'a>(readings: &'a [Reading], name: &str) -> &'a str {
        find(readings, &format!("nagios.{name}.state"))
            .message
            .as_str()
    }

    #[test]
    fn no_commands_no_readings() {
        assert!(collect("{}").is_empty());
        assert!(collect(r#"{"commands": {}}"#).is_empty());
    }

    #[test]
    fn bad_options_are_errors_at_start() {
        let options = Options::from_json(r#"{"commands": {"no spaces": {"command": "true"}}}"#)
            .expect("valid JSON");
        let err = Nagios::new(&options).expect_err("bad name");
        assert!(err.contains("commands.no spaces"), "{err}");
        let options = Options::from_json(r#"{"timeout": 5, "extra": 1}"#).expect("valid JSON");
        let err = Nagios::new(&options).expect_err("unknown field");
        assert!(err.contains("unknown field `extra`"), "{err}");
    }

    #[test]
    fn exit_codes_of_real_programs() {
        let r = collect(
            r#"{"commands": {
                "sh2": {"command": "exit 2", "shell": true},
                "false": {"command": ["/bin/false"]},
                "true": {"command": "/bin/true"},
                "seven": {"command": "echo odd; exit 7", "shell": true},
                "segv": {"command": "echo dying; kill -SEGV $$", "shell": true}
            }}"#,
        );
        assert_state(&r, "sh2", 2, Level::Critical);
        assert_state(&r, "false", 1, Level::Warning);
        assert_eq!(message(&r, "false"), "check false returned no output");
        assert_state(&r, "true", 0, Level::Ok);
        assert_state(&r, "seven", 7, Level::Unknown);
        assert_eq!(message(&r, "seven"), "check seven exited with code 7: odd");
        assert_state(&r, "segv", 3, Level::Unknown);
        assert_eq!(
            message(&r, "segv"),
            "check segv was killed by signal 11 (SIGSEGV): dying"
        );
        // state + duration_s for each of the five checks, in name order.
        assert_eq!(r.len(), 10);
        assert_eq!(r[0].key.as_str(), "nagios.false.state");
        let duration = find(&r, "nagios.true.duration_s");
        assert!(matches!(duration.value, Value::F64(s) if (0.0..5.0).contains(&s)));
        assert_eq!(duration.unit.as_str(), "s");
    }

    #[test]
    fn echo_with_perfdata() {
        let r = collect(
            r#"{"commands": {"echo": {"command": [
                "/bin/echo", "ECHO OK - fine|time=0.5s;1;2;0;10 'my label'=3 pct=U%"
            ]}}}"#,
        );
        assert_state(&r, "echo", 0, Level::Ok);
        assert_eq!(message(&r, "echo"), "ECHO OK - fine");
        let time = find(&r, "nagios.echo.time");
        assert_eq!(time.value, Value::F64(0.5));
        assert_eq!(time.unit.as_str(), "s");
        assert_eq!(time.message.as_str(), "warn=1 crit=2 min=0 max=10");
        assert_eq!(find(&r, "nagios.echo.my_label").value, Value::F64(3.0));
        let keys: Vec<_> = r.iter().map(|r| r.key.as_str()).collect();
        assert_eq!(
            keys,
            [
                "nagios.echo.state",
                "nagios.echo.time",
                "nagios.echo.my_label",
                "nagios.echo.duration_s"
            ]
        );
    }

    #[test]
    fn string_commands_are_split_into_words() {
        let r =
            collect(r#"{"commands": {"words": {"command": "/bin/echo 'OK - a  b' \"| x=1\""}}}"#);
        assert_eq!(message(&r, "words"), "OK - a  b");
        assert_eq!(find(&r, "nagios.words.x").value, Value::F64(1.0));
    }

    #[test]
    fn commands_that_cannot_start() {
        let r = collect(
            r#"{"commands": {
                "missing": {"command": ["/nonexistent/check_missing", "-w", "1"]},
                "noexec": {"command": ["/etc/passwd"]}
            }}"#,
        );
        assert_state(&r, "missing", 3, Level::Unknown);
        let missing = message(&r, "missing");
        assert!(
            missing.starts_with("check missing: cannot run /nonexistent/check_missing: "),
            "{missing}"
        );
        assert!(missing.contains("No such file or directory"), "{missing}");
        assert_state(&r, "noexec", 3, Level::Unknown);
        let noexec = message(&r, "noexec");
        assert!(noexec.contains("/etc/passwd"), "{noexec}");
        assert!(noexec.contains("Permission denied"), "{noexec}");
    }

    /// Whether any process in `pgid` is still alive (zombies awaiting their reaper do not
    /// count: they have already stopped).
    fn live_members(pgid: i32) -> Vec<String> {
        let Ok(entries) = std::fs::read_dir("/proc") else {
            return Vec::new();
        };
        entries
            .flatten()
            .filter_map(|entry| std::fs::read_to_string(entry.path().join("stat")).ok())
            .filter(|stat| {
                // pid (comm) state ppid pgrp ...; comm may contain spaces and parentheses.
                let fields: Vec<_> = stat
                    .rsplit_once(')')
                    .map(|(_, rest)| rest.split_whitespace().collect())
                    .unwrap_or_default();
                fields.get(2) == Some(&pgid.to_string().as_str()) && fields.first() != Some(&"Z")
            })
            .collect()
    }

    #[test]
    fn timeout_kills_the_whole_process_group() {
        let mut nagios = plugin(
            r#"{"timeout": 30, "commands": {
                "slow": {"command": "sleep 30 & sleep 30", "shell": true, "timeout": 0.5},
                "quick": {"command": "echo OK", "shell": true}
            }}"#,
        );
        let started = Instant::now();
        let r = nagios.collect().expect("collects");
        let elapsed = started.elapsed();
        assert!(elapsed < Duration::from_millis(1200), "took {elapsed:?}");
        assert!(elapsed >= Duration::from_millis(500), "took {elapsed:?}");
        assert_state(&r, "slow", 3, Level::Unknown);
        assert_eq!(
            message(&r, "slow"),
            "check slow timed out after 0.5s (process group killed)"
        );
        assert_state(&r, "quick", 0, Level::Ok);
        let duration = find(&r, "nagios.slow.duration_s");
        assert!(matches!(duration.value, Value::F64(s) if (0.5..1.0).contains(&s)));

        // Find the group through the runner, which reports it.
        let argv = ["/bin/sh", "-c", "sleep 30 & sleep 30"].map(String::from);
        let finished = run::run_all(&[run::Job {
            argv: &argv,
            timeout: Duration::from_millis(300),
        }]);
        assert!(matches!(finished[0].outcome, run::Outcome::TimedOut));
        let pgid = finished[0].pgid.expect("started");
        // SIGKILL takes effect as soon as the sleeps are scheduled: nothing in the group
        // runs any more.
        let deadline = Instant::now() + Duration::from_secs(1);
        while !live_members(pgid).is_empty() {
            assert!(Instant::now() < deadline, "{:?}", live_members(pgid));
            std::thread::sleep(Duration::from_millis(10));
        }
        // The background sleep was orphaned, so its zombie waits for init (which may poll
        // lazily) to reap it; then the group is gone altogether.
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            // SAFETY: signal 0 only checks whether the group exists.
            let result = unsafe { libc::kill(-pgid, 0) };
            let errno = std::io::Error::last_os_error().raw_os_error();
            if result == -1 && errno == Some(libc::ESRCH) {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "process group {pgid} still exists"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The path of a monitoring-plugins program, or `None` (after a note) when they are not
    /// installed here. On CI they must be.
    fn nagios_plugin(name: &str) -> Option<String> {
        let path = format!("{PLUGINS}/{name}");
        if Path::new(&path).exists() {
            return Some(path);
        }
        if std::env::var("CI").as_deref() == Ok("true") {
            panic!(
                "{path} is missing; CI must install the Nagios plugins: \
                 apt-get install monitoring-plugins-basic"
            );
        }
        eprintln!("note: {path} not found, skipping (apt-get install monitoring-plugins-basic)");
        None
    }

    #[test]
    fn real_check_dummy() {
        let Some(check_dummy) = nagios_plugin("check_dummy") else {
            return;
        };
        let commands: Vec<String> = (0..=3)
            .map(|code| {
                format!(
                    r#""d{code}": {{"command": ["{check_dummy}", "{code}", "dummy says {code}"]}}"#
                )
            })
            .collect();
        let r = collect(&format!(r#"{{"commands": {{{}}}}}"#, commands.join(",")));
        for (code, level) in [
            (0, Level::Ok),
            (1, Level::Warning),
            (2, Level::Critical),
            (3, Level::Unknown),
        ] {
            let name = format!("d{code}");
            assert_state(&r, &name, code, level);
            assert_eq!(
                message(&r, &name),
                format!("{}: dummy says {code}", level.as_str())
            );
        }
        assert_eq!(r.len(), 8);
    }

    #[test]
    fn real_check_load() {
        let Some(check_load) = nagios_plugin("check_load") else {
            return;
        };
        let r = collect(&format!(
            r#"{{"commands": {{"load": {{"command": "{check_load} -w 1000,1000,1000 -c 2000,2000,2000"}}}}}}"#
        ));
        assert_state(&r, "load", 0, Level::Ok);
        assert!(message(&r, "load").starts_with("LOAD OK"), "{r:?}");
        for key in ["load1", "load5", "load15"] {
            let reading = find(&r, &format!("nagios.load.{key}"));
            assert!(
                matches!(reading.value, Value::F64(v) if v >= 0.0),
                "{reading:?}"
            );
            assert!(reading.message.starts_with("warn=1000"), "{reading:?}");
            assert!(reading.message.contains("min=0"), "{reading:?}");
        }
    }

    #[test]
    fn real_check_disk() {
        let Some(check_disk) = nagios_plugin("check_disk") else {
            return;
        };
        let r = collect(&format!(
            r#"{{"commands": {{"root": {{"command": ["{check_disk}", "-w", "0%", "-c", "0%", "-p", "/"]}}}}}}"#
        ));
        assert_state(&r, "root", 0, Level::Ok);
        assert!(message(&r, "root").starts_with("DISK OK"), "{r:?}");
        let used = find(&r, "nagios.root./");
        assert!(matches!(used.value, Value::F64(v) if v > 0.0), "{used:?}");
        assert!(!used.unit.is_empty(), "{used:?}");
        assert!(used.message.contains("max="), "{used:?}");
    }
}
