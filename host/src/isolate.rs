//! Running a plugin in a supervised child process (`isolate: true`).
//!
//! The child is `hbc plugin-worker FILE`: it loads the one library, builds the monitor
//! from the options sent as the first line of its stdin, then answers each `collect`
//! line with one JSON line. An abort, a segfault or a hang in third-party code kills only
//! the child; the parent reports UNKNOWN, kills what is left and starts a new child with
//! backoff. The same program, with `--probe`, test-loads a library for the loader and for
//! `hbc check-plugin`.
//!
//! Answers are read with a length limit ([`MAX_ANSWER`]). The worker dies with hbc: its
//! parent-death signal is SIGTERM, on which it exits through `exit()`, so what its plugin
//! registered to run at exit (the nagios plugin kills its checks' process groups) runs.
//! hbc stops a worker the same way (SIGTERM, then SIGKILL after [`STOP_GRACE`]).

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{sync_channel, Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::loader::{self, Info, ProbeAnswer};
use crate::runner::{backoff, Collect, InProcess};
use crate::sample::Sample;

/// Names the hbc that started a worker, so a worker whose parent is already gone exits.
pub const PARENT_ENV: &str = "HBC_WORKER_PARENT";
/// Names the plugin a worker runs, for a library that exports several.
pub const PLUGIN_ENV: &str = "HBC_WORKER_PLUGIN";

/// Longest answer line read from a worker: 2,000 readings (the most hbc takes from one
/// plugin) of 2 KiB each. A longer line kills the worker; it is never buffered whole.
pub const MAX_ANSWER: usize = 4 * 1024 * 1024;
/// How long a worker asked to stop (SIGTERM) may take before it is killed.
pub const STOP_GRACE: Duration = Duration::from_millis(500);

/// One line from the worker, or why there is none.
enum Line {
    Text(String),
    TooLong,
}

/// Reads one line of at most `limit` bytes (newline excluded). `Ok(None)` at end of
/// input; a longer line is `Line::TooLong` and the reader is left mid-line.
fn read_line_limited(reader: &mut impl BufRead, limit: usize) -> std::io::Result<Option<Line>> {
    let mut line = Vec::new();
    loop {
        let available = match reader.fill_buf() {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if available.is_empty() {
            return Ok(if line.is_empty() {
                None
            } else {
                Some(Line::Text(String::from_utf8_lossy(&line).into_owned()))
            });
        }
        let (chunk, done) = match available.iter().position(|&b| b == b'\n') {
            Some(i) => (&available[..i], Some(i + 1)),
            None => (available, None),
        };
        if line.len() + chunk.len() > limit {
            return Ok(Some(Line::TooLong));
        }
        line.extend_from_slice(chunk);
        let used = done.unwrap_or(available.len());
        reader.consume(used);
        if done.is_some() {
            return Ok(Some(Line::Text(
                String::from_utf8_lossy(&line).into_owned(),
            )));
        }
    }
}

/// One answer line from the child.
#[derive(Debug, Serialize, Deserialize)]
enum Answer {
    Ready(Info),
    Failed(String),
    Ok(Vec<Sample>),
    Err(String),
}

struct Running {
    child: Child,
    stdin: ChildStdin,
    lines: Receiver<Line>,
    /// Windows: the kill-on-close job the worker runs in (`job.rs`); dropped after the
    /// worker is killed and reaped, or with hbc.
    #[cfg(windows)]
    _job: Option<crate::job::Job>,
}

/// The parent's side of an isolated plugin.
pub struct Isolated {
    name: String,
    file: PathBuf,
    options: String,
    timeout: Duration,
    running: Option<Running>,
    restarts: u32,
    not_before: Instant,
}

impl Isolated {
    pub fn new(
        name: &str,
        file: &Path,
        options: &serde_json::Value,
        timeout: Duration,
    ) -> Isolated {
        Isolated {
            name: name.to_string(),
            file: file.to_path_buf(),
            options: options.to_string(),
            timeout,
            running: None,
            restarts: 0,
            not_before: Instant::now(),
        }
    }

    fn start(&mut self) -> Result<(), String> {
        let exe =
            std::env::current_exe().map_err(|e| format!("cannot find hbc's executable: {e}"))?;
        let mut child = Command::new(exe)
            .arg("plugin-worker")
            .arg(&self.file)
            .env(PARENT_ENV, std::process::id().to_string())
            .env(PLUGIN_ENV, &self.name)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| format!("cannot start the worker process: {e}"))?;
        let (Some(mut stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
            let _ = child.kill();
            return Err("worker process has no pipes".into());
        };
        // One pending answer at most: the protocol is strictly request/response.
        let (tx, lines) = sync_channel::<Line>(1);
        std::thread::Builder::new()
            .name(format!("isolate-{}", self.name))
            .stack_size(256 * 1024)
            .spawn(move || {
                let mut reader = BufReader::new(stdout);
                while let Ok(Some(line)) = read_line_limited(&mut reader, MAX_ANSWER) {
                    let last = matches!(line, Line::TooLong);
                    if tx.send(line).is_err() || last {
                        break;
                    }
                }
            })
            .map_err(|e| format!("cannot start a reader thread: {e}"))?;
        writeln!(stdin, "{}", self.options)
            .map_err(|e| format!("worker did not take its options: {e}"))?;
        #[cfg(windows)]
        let _job = match crate::job::Job::for_child(&child) {
            Ok(job) => Some(job),
            Err(e) => {
                tracing::warn!(plugin = %self.name, "cannot put the worker in a job object ({e}): it may outlive hbc");
                None
            }
        };
        let mut running = Running {
            child,
            stdin,
            lines,
            #[cfg(windows)]
            _job,
        };
        match Self::answer(&mut running, self.timeout.max(Duration::from_secs(10)))? {
            Answer::Ready(info) => {
                tracing::debug!(plugin = %self.name, pid = running.child.id(), "isolated worker ready ({} {})", info.name, info.version);
                self.running = Some(running);
                Ok(())
            }
            Answer::Failed(e) => {
                Self::kill(running);
                Err(e)
            }
            other => {
                Self::kill(running);
                Err(format!("worker answered {other:?} instead of Ready"))
            }
        }
    }

    fn answer(running: &mut Running, timeout: Duration) -> Result<Answer, String> {
        match running.lines.recv_timeout(timeout) {
            Ok(Line::Text(line)) => serde_json::from_str(&line)
                .map_err(|e| format!("worker sent an unreadable answer: {e}")),
            Ok(Line::TooLong) => Err(format!(
                "worker sent an answer over {} MiB; worker killed",
                MAX_ANSWER / (1024 * 1024)
            )),
            Err(RecvTimeoutError::Timeout) => {
                Err(format!("did not answer within {timeout:?}; worker killed"))
            }
            Err(RecvTimeoutError::Disconnected) => {
                // Give the exit status a moment to be reapable.
                let deadline = Instant::now() + Duration::from_millis(500);
                let status = loop {
                    match running.child.try_wait() {
                        Ok(Some(s)) => break loader::describe_status(&s),
                        Ok(None) if Instant::now() < deadline => {
                            std::thread::sleep(Duration::from_millis(5))
                        }
                        _ => break "closed its output".to_string(),
                    }
                };
                Err(format!("worker process died ({status})"))
            }
        }
    }

    /// Asks the worker to stop (SIGTERM: it exits through `exit()`, so its plugin can
    /// clean up), kills it after [`STOP_GRACE`], and reaps it. The pid is signalled only
    /// while `try_wait` says it is not reaped, so never after it could be reused.
    fn kill(mut running: Running) {
        drop(running.stdin);
        // Windows has no SIGTERM: `Child::kill` below is TerminateProcess at once (no
        // clean-up in the worker; docs/platforms.md).
        #[cfg(unix)]
        if let (Ok(None), Ok(pid)) = (running.child.try_wait(), i32::try_from(running.child.id())) {
            // SAFETY: kill(2) on our own child, which is not reaped yet.
            unsafe {
                libc::kill(pid, libc::SIGTERM);
            }
            let deadline = Instant::now() + STOP_GRACE;
            while Instant::now() < deadline {
                if !matches!(running.child.try_wait(), Ok(None)) {
                    break;
                }
                std::thread::sleep(Duration::from_millis(5));
            }
        }
        let _ = running.child.kill();
        let _ = running.child.wait();
    }
}

impl Collect for Isolated {
    fn collect(&mut self) -> Result<Vec<Sample>, String> {
        if self.running.is_none() {
            let now = Instant::now();
            if now < self.not_before {
                return Err(format!(
                    "worker restarts in {:.1} s (restart #{})",
                    (self.not_before - now).as_secs_f64(),
                    self.restarts
                ));
            }
            if let Err(e) = self.start() {
                self.restarts += 1;
                self.not_before =
                    Instant::now() + backoff(Duration::from_secs(1), self.restarts + 2);
                return Err(e);
            }
        }
        let Some(running) = self.running.as_mut() else {
            return Err("worker is not running".into());
        };
        let sent = writeln!(running.stdin, "collect").and_then(|()| running.stdin.flush());
        let result = match sent {
            Err(e) => Err(format!("worker process is gone: {e}")),
            Ok(()) => Self::answer(running, self.timeout),
        };
        match result {
            Ok(Answer::Ok(samples)) => {
                self.restarts = 0;
                Ok(samples)
            }
            Ok(Answer::Err(e)) => Err(e),
            Ok(other) => Err(format!("worker answered {other:?} to collect")),
            Err(e) => {
                if let Some(r) = self.running.take() {
                    Self::kill(r);
                }
                self.restarts += 1;
                self.not_before =
                    Instant::now() + backoff(Duration::from_secs(1), self.restarts + 2);
                tracing::warn!(plugin = %self.name, restarts = self.restarts, "isolated plugin: {e}; restarting it");
                Err(e)
            }
        }
    }
}

impl Drop for Isolated {
    fn drop(&mut self) {
        if let Some(r) = self.running.take() {
            Self::kill(r);
        }
    }
}

fn emit(out: &mut impl Write, a: &Answer) -> std::io::Result<()> {
    let line = serde_json::to_string(a).map_err(std::io::Error::other)?;
    writeln!(out, "{line}")?;
    out.flush()
}

/// Makes the child die with its parent, so no orphan keeps running a plugin: SIGTERM,
/// which the worker turns into `exit()` (see [`exit_on_sigterm`]).
#[cfg(not(unix))]
fn die_with_parent() {}

#[cfg(unix)]
fn die_with_parent() {
    #[cfg(target_os = "linux")]
    // SAFETY: prctl(PR_SET_PDEATHSIG) and getppid take plain integers and change only
    // this process.
    unsafe {
        libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
    }
    // The parent may have died before the prctl: then nobody waits for us.
    let parent = std::env::var(PARENT_ENV)
        .ok()
        .and_then(|p| p.parse::<libc::pid_t>().ok());
    // SAFETY: getppid and _exit have no preconditions.
    if parent.is_some_and(|p| p != unsafe { libc::getppid() }) {
        unsafe { libc::_exit(1) }
    }
}

/// SIGTERM ends the worker through `exit()`, which runs what its plugin registered with
/// `atexit` (the nagios plugin kills its checks' process groups), even mid-collect.
#[cfg(not(unix))]
fn exit_on_sigterm() {}

#[cfg(unix)]
fn exit_on_sigterm() {
    let Ok(mut signals) = signal_hook::iterator::Signals::new([signal_hook::consts::SIGTERM])
    else {
        return;
    };
    let _ = std::thread::Builder::new()
        .name("worker-signals".into())
        .stack_size(64 * 1024)
        .spawn(move || {
            if signals.forever().next().is_some() {
                std::process::exit(143);
            }
        });
}

/// `hbc plugin-worker [--probe] FILE`: the child side. Returns the exit code.
pub fn worker_main(file: &Path, probe: bool) -> i32 {
    die_with_parent();
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    if probe {
        let answer = match loader::preflight(file).and_then(|()| loader::open(file)) {
            Ok(lib) => ProbeAnswer::Ok(lib.infos()),
            Err(r) => ProbeAnswer::Rejected {
                reason: r.reason,
                remedy: r.remedy.to_string(),
            },
        };
        let line = serde_json::to_string(&answer).unwrap_or_default();
        let _ = writeln!(out, "{line}");
        return 0;
    }
    exit_on_sigterm();
    let mut options = String::new();
    if std::io::stdin().read_line(&mut options).is_err() {
        return 2;
    }
    let lib = match loader::preflight(file).and_then(|()| loader::open(file)) {
        Ok(lib) => lib,
        Err(r) => {
            let _ = emit(&mut out, &Answer::Failed(r.to_string()));
            return 1;
        }
    };
    // A library may export several plugins: the parent names the one this worker runs.
    let wanted = std::env::var(PLUGIN_ENV).unwrap_or_default();
    let module = match lib.plugin(&wanted).or_else(|| {
        // (One plugin: it, whatever the name asked for, as before lists existed.)
        (lib.plugins.len() == 1).then(|| lib.plugins[0])
    }) {
        Some(m) => m,
        None => {
            let _ = emit(
                &mut out,
                &Answer::Failed(format!("the library exports no plugin named {wanted:?}")),
            );
            return 1;
        }
    };
    let info = Info::from((module.info())());
    let mut monitor = match (module.new_monitor())(options.trim().into()) {
        hbc_plugin_api::abi_stable::std_types::RResult::ROk(m) => InProcess(m),
        hbc_plugin_api::abi_stable::std_types::RResult::RErr(e) => {
            let _ = emit(
                &mut out,
                &Answer::Failed(format!("plugin could not start: {e}")),
            );
            return 1;
        }
    };
    if emit(&mut out, &Answer::Ready(info)).is_err() {
        return 1;
    }
    let stdin = std::io::stdin();
    for line in stdin.lock().lines() {
        let Ok(line) = line else { break };
        if line.trim() != "collect" {
            continue;
        }
        let answer = match monitor.collect() {
            Ok(s) => Answer::Ok(s),
            Err(e) => Answer::Err(e),
        };
        if emit(&mut out, &answer).is_err() {
            break;
        }
    }
    0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(input: &[u8], limit: usize) -> Vec<Option<String>> {
        // A small buffer, so lines span several reads.
        let mut reader = BufReader::with_capacity(4, input);
        let mut out = Vec::new();
        loop {
            match read_line_limited(&mut reader, limit).expect("in-memory read") {
                None => return out,
                Some(Line::Text(t)) => out.push(Some(t)),
                Some(Line::TooLong) => {
                    out.push(None);
                    return out;
                }
            }
        }
    }

    #[test]
    fn answer_lines_are_read_up_to_the_limit() {
        assert_eq!(
            lines(b"{\"Ok\":[]}\nsecond\nlast", 16),
            [
                Some("{\"Ok\":[]}".to_string()),
                Some("second".into()),
                Some("last".into())
            ]
        );
        // Exactly at the limit is fine; one byte more is not, and nothing after it is read.
        assert_eq!(lines(b"12345678\n", 8), [Some("12345678".to_string())]);
        assert_eq!(
            lines(b"ok\n123456789\nmore\n", 8),
            [Some("ok".to_string()), None]
        );
        assert_eq!(lines(b"", 8), Vec::<Option<String>>::new());
    }

    #[test]
    fn an_endless_line_is_cut_off_without_buffering_it() {
        // An endless source: the reader must give up at the limit.
        let mut endless = BufReader::new(std::io::repeat(b'x'));
        assert!(matches!(
            read_line_limited(&mut endless, 1024 * 1024),
            Ok(Some(Line::TooLong))
        ));
    }
}
