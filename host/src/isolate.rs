//! Running a plugin in a supervised child process (`isolate: true`).
//!
//! The child is `hbc plugin-worker FILE`: it loads the one library, builds the monitor
//! from the options sent as the first line of its stdin, then answers each `collect`
//! line with one JSON line. An abort, a segfault or a hang in third-party code kills only
//! the child; the parent reports UNKNOWN, kills what is left and starts a new child with
//! backoff. The same program, with `--probe`, test-loads a library for the loader and for
//! `hbc check-plugin`.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{sync_channel, Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::loader::{self, Info, ProbeAnswer};
use crate::runner::{backoff, Collect, InProcess};
use crate::sample::Sample;

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
    lines: Receiver<String>,
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
        let (tx, lines) = sync_channel::<String>(1);
        std::thread::Builder::new()
            .name(format!("isolate-{}", self.name))
            .stack_size(256 * 1024)
            .spawn(move || {
                let mut reader = BufReader::new(stdout);
                loop {
                    let mut line = String::new();
                    match reader.read_line(&mut line) {
                        Ok(0) | Err(_) => break,
                        Ok(_) => {
                            if tx.send(line).is_err() {
                                break;
                            }
                        }
                    }
                }
            })
            .map_err(|e| format!("cannot start a reader thread: {e}"))?;
        writeln!(stdin, "{}", self.options)
            .map_err(|e| format!("worker did not take its options: {e}"))?;
        let mut running = Running {
            child,
            stdin,
            lines,
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
            Ok(line) => serde_json::from_str(&line)
                .map_err(|e| format!("worker sent an unreadable answer: {e}")),
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

    fn kill(mut running: Running) {
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

/// Makes the child die with its parent, so no orphan keeps running a plugin.
fn die_with_parent() {
    #[cfg(target_os = "linux")]
    // SAFETY: prctl(PR_SET_PDEATHSIG) takes plain integers and changes only this process.
    unsafe {
        libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
    }
}

/// `hbc plugin-worker [--probe] FILE`: the child side. Returns the exit code.
pub fn worker_main(file: &Path, probe: bool) -> i32 {
    die_with_parent();
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    if probe {
        let answer = match loader::preflight(file).and_then(|()| loader::open(file)) {
            Ok(lib) => ProbeAnswer::Ok(lib.info()),
            Err(r) => ProbeAnswer::Rejected {
                reason: r.reason,
                remedy: r.remedy.to_string(),
            },
        };
        let line = serde_json::to_string(&answer).unwrap_or_default();
        let _ = writeln!(out, "{line}");
        return 0;
    }
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
    let info = lib.info();
    let mut monitor = match (lib.module.new_monitor())(options.trim().into()) {
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
