//! Running check commands: all of them at once, each in its own process group with its own
//! deadline, capturing a bounded amount of output. A check that overruns its deadline has
//! its whole process group killed, so a shell script's children die with it.
//!
//! Output is read by one thread per pipe, so a chatty check never blocks on a full pipe
//! while we wait for it. Child exit is polled (`try_wait`) rather than waited on, so the
//! group leader stays unreaped, and its process group id reserved, until we have killed it.

use std::io::{self, Read};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

/// Most of a check's standard output we keep; the rest is read and dropped.
pub const STDOUT_CAP: usize = 64 * 1024;
/// Most of a check's standard error we keep; only its first line is ever used.
pub const STDERR_CAP: usize = 4 * 1024;
/// How long a killed process may take to die before we stop waiting for it. Only a
/// process stuck in the kernel (a hung NFS mount) takes this long; it is then reaped by
/// a background thread.
const KILL_GRACE: Duration = Duration::from_secs(1);
/// Exit polling starts fast, for the many checks that take a few milliseconds, and backs
/// off to this.
const POLL_MIN: Duration = Duration::from_millis(1);
const POLL_MAX: Duration = Duration::from_millis(10);

/// A command to run.
#[derive(Debug, Clone, Copy)]
pub struct Job<'a> {
    /// Program and arguments.
    pub argv: &'a [String],
    pub timeout: Duration,
}

/// How a command ended.
#[derive(Debug)]
pub enum Outcome {
    Exited(i32),
    Signaled(i32),
    /// Overran its timeout; its process group was killed.
    TimedOut,
    /// Could not be started (not found, not executable, out of resources).
    NotStarted(io::Error),
    /// Started, but waiting for it failed.
    Lost(io::Error),
}

impl Outcome {
    fn of_status(status: ExitStatus) -> Outcome {
        match (status.code(), status.signal()) {
            (Some(code), _) => Outcome::Exited(code),
            (None, Some(signal)) => Outcome::Signaled(signal),
            // Neither happens for a terminated child on Unix.
            (None, None) => Outcome::Lost(io::Error::other(format!("unexpected status {status}"))),
        }
    }
}

/// A finished command with what it wrote.
#[derive(Debug)]
pub struct Finished {
    pub outcome: Outcome,
    /// Standard output, at most [`STDOUT_CAP`] bytes, decoded lossily; empty on a timeout.
    pub stdout: String,
    /// Standard error, at most [`STDERR_CAP`] bytes; empty on a timeout.
    pub stderr: String,
    /// From start until it ended (or until it was killed and reaped).
    pub duration: Duration,
    /// The process group the command ran in (its pid), if it started.
    pub pgid: Option<i32>,
}

impl Finished {
    fn not_started(error: io::Error) -> Finished {
        Finished {
            outcome: Outcome::NotStarted(error),
            stdout: String::new(),
            stderr: String::new(),
            duration: Duration::ZERO,
            pgid: None,
        }
    }
}

/// Runs all jobs concurrently and returns their results in the same order. Takes about as
/// long as the slowest job, at most its timeout plus [`KILL_GRACE`].
pub fn run_all(jobs: &[Job<'_>]) -> Vec<Finished> {
    let mut finished: Vec<(usize, Finished)> = Vec::with_capacity(jobs.len());
    let mut running = Vec::with_capacity(jobs.len());
    for (index, job) in jobs.iter().enumerate() {
        match Running::start(index, job) {
            Ok(child) => running.push(child),
            Err(e) => finished.push((index, Finished::not_started(e))),
        }
    }

    let mut poll = POLL_MIN;
    while !running.is_empty() {
        let now = Instant::now();
        let mut wake = now + poll;
        let mut i = 0;
        while i < running.len() {
            match running[i].step(now) {
                Some(next) => {
                    wake = wake.min(next);
                    i += 1;
                }
                None => {
                    let done = running.swap_remove(i);
                    finished.push((done.index, done.finish(now)));
                }
            }
        }
        if !running.is_empty() {
            thread::sleep(wake.saturating_duration_since(Instant::now()));
            poll = (poll * 2).min(POLL_MAX);
        }
    }

    finished.sort_by_key(|(index, _)| *index);
    finished.into_iter().map(|(_, result)| result).collect()
}

/// A started command being watched.
struct Running {
    index: usize,
    child: Child,
    pgid: i32,
    started: Instant,
    deadline: Instant,
    stdout: Capture,
    stderr: Capture,
    /// Set once the child is reaped.
    status: Option<ExitStatus>,
    ended: Option<Instant>,
    /// When we sent SIGKILL to the group.
    killed: Option<Instant>,
    /// The child itself was still running at its deadline.
    timed_out: bool,
    lost: Option<io::Error>,
}

impl Running {
    fn start(index: usize, job: &Job<'_>) -> io::Result<Running> {
        let Some((program, args)) = job.argv.split_first() else {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "empty command"));
        };
        let started = Instant::now();
        let mut child = Command::new(program)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .spawn()?;
        let pgid = match i32::try_from(child.id()) {
            Ok(pgid) => pgid,
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(io::Error::other("process id out of range"));
            }
        };
        let captures = Capture::start(child.stdout.take(), STDOUT_CAP)
            .and_then(|stdout| Ok((stdout, Capture::start(child.stderr.take(), STDERR_CAP)?)));
        let (stdout, stderr) = match captures {
            Ok(captures) => captures,
            Err(e) => {
                kill_group(pgid, &mut child);
                let _ = child.wait();
                return Err(e);
            }
        };
        Ok(Running {
            index,
            child,
            pgid,
            started,
            deadline: started + job.timeout,
            stdout,
            stderr,
            status: None,
            ended: None,
            killed: None,
            timed_out: false,
            lost: None,
        })
    }

    /// Moves this command along; returns when it next needs looking at, or `None` once it
    /// is finished.
    fn step(&mut self, now: Instant) -> Option<Instant> {
        if self.status.is_none() {
            match self.child.try_wait() {
                Ok(Some(status)) => {
                    self.status = Some(status);
                    self.ended = Some(now);
                }
                Ok(None) => {}
                Err(e) => {
                    self.lost = Some(e);
                    self.ended = Some(now);
                    return None;
                }
            }
        }
        // A timed-out check's output is not used, so there is no reason to wait for it.
        if self.status.is_some()
            && (self.timed_out || (self.stdout.is_done() && self.stderr.is_done()))
        {
            return None;
        }
        match self.killed {
            None if now >= self.deadline => {
                // Either the check itself overran, or it exited but something it started
                // still holds its output open; both are in its process group.
                self.timed_out = self.status.is_none();
                kill_group(self.pgid, &mut self.child);
                self.killed = Some(now);
                Some(now + KILL_GRACE)
            }
            None => Some(self.deadline),
            Some(killed) if now >= killed + KILL_GRACE => None,
            Some(killed) => Some(killed + KILL_GRACE),
        }
    }

    fn finish(self, now: Instant) -> Finished {
        let duration = self
            .ended
            .unwrap_or(now)
            .saturating_duration_since(self.started);
        let outcome = match (self.lost, self.status) {
            (Some(e), _) => Outcome::Lost(e),
            _ if self.timed_out => Outcome::TimedOut,
            (None, Some(status)) => Outcome::of_status(status),
            // Only a killed child is given up on unreaped, and it counts as timed out.
            (None, None) => Outcome::TimedOut,
        };
        if self.status.is_none() && matches!(outcome, Outcome::TimedOut) {
            reap_in_background(self.child);
        }
        let (stdout, stderr) = if matches!(outcome, Outcome::TimedOut) {
            (String::new(), String::new())
        } else {
            (self.stdout.take(), self.stderr.take())
        };
        Finished {
            outcome,
            stdout,
            stderr,
            duration,
            pgid: Some(self.pgid),
        }
    }
}

/// Kills every process in the group. The leader is not reaped yet, so the group id cannot
/// have been reused.
fn kill_group(pgid: i32, child: &mut Child) {
    // SAFETY: kill(2) has no memory-safety preconditions; a negative pid names a process
    // group, and `pgid` is positive (a pid), so this never means "every process" (-1).
    let sent = pgid > 1 && unsafe { libc::kill(-pgid, libc::SIGKILL) } == 0;
    if !sent {
        let _ = child.kill();
    }
}

/// A child that ignored SIGKILL for [`KILL_GRACE`] is stuck in the kernel; a thread waits
/// for it so it does not stay a zombie, and collection goes on without it.
fn reap_in_background(mut child: Child) {
    let spawned = thread::Builder::new()
        .name("nagios-reaper".into())
        .spawn(move || {
            let _ = child.wait();
        });
    // Without a thread it stays a zombie until hbc exits; there is nothing better to do.
    drop(spawned);
}

/// One pipe being read to the end by its own thread, keeping the first `cap` bytes.
struct Capture {
    buffer: Arc<Mutex<Vec<u8>>>,
    reader: Option<JoinHandle<()>>,
}

impl Capture {
    fn start<R: Read + Send + 'static>(pipe: Option<R>, cap: usize) -> io::Result<Capture> {
        let buffer = Arc::new(Mutex::new(Vec::new()));
        let reader = match pipe {
            Some(pipe) => {
                let buffer = Arc::clone(&buffer);
                Some(
                    thread::Builder::new()
                        .name("nagios-output".into())
                        .spawn(move || read_capped(pipe, &buffer, cap))?,
                )
            }
            None => None,
        };
        Ok(Capture { buffer, reader })
    }

    /// Whether the pipe reached end of file.
    fn is_done(&self) -> bool {
        self.reader.as_ref().is_none_or(JoinHandle::is_finished)
    }

    /// What was read so far. A reader still running (something outside the group holds
    /// the pipe open) is left to finish on its own.
    fn take(self) -> String {
        if let Some(reader) = self.reader.filter(JoinHandle::is_finished) {
            let _ = reader.join();
        }
        let bytes =
            std::mem::take(&mut *self.buffer.lock().unwrap_or_else(PoisonError::into_inner));
        String::from_utf8_lossy(&bytes).into_owned()
    }
}

fn read_capped(mut pipe: impl Read, buffer: &Mutex<Vec<u8>>, cap: usize) {
    let mut chunk = [0u8; 8192];
    loop {
        match pipe.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => {
                let mut buffer = buffer.lock().unwrap_or_else(PoisonError::into_inner);
                let room = cap.saturating_sub(buffer.len());
                buffer.extend_from_slice(&chunk[..n.min(room)]);
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => break,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(argv: &[&str], timeout: Duration) -> Finished {
        let argv: Vec<String> = argv.iter().map(|a| a.to_string()).collect();
        let mut results = run_all(&[Job {
            argv: &argv,
            timeout,
        }]);
        assert_eq!(results.len(), 1);
        results.remove(0)
    }

    fn sh(script: &str, timeout: Duration) -> Finished {
        run(&["/bin/sh", "-c", script], timeout)
    }

    #[test]
    fn captures_exit_code_and_output() {
        let f = sh("echo out; echo err >&2; exit 3", Duration::from_secs(5));
        assert!(matches!(f.outcome, Outcome::Exited(3)), "{f:?}");
        assert_eq!(f.stdout, "out\n");
        assert_eq!(f.stderr, "err\n");
        assert!(f.pgid.is_some());
    }

    #[test]
    fn reports_signals() {
        let f = sh("kill -TERM $$", Duration::from_secs(5));
        assert!(
            matches!(f.outcome, Outcome::Signaled(s) if s == libc::SIGTERM),
            "{f:?}"
        );
    }

    #[test]
    fn reports_commands_that_cannot_start() {
        let f = run(&["/nonexistent/check_nothing"], Duration::from_secs(5));
        match f.outcome {
            Outcome::NotStarted(e) => assert_eq!(e.kind(), io::ErrorKind::NotFound),
            other => panic!("expected NotStarted, got {other:?}"),
        }
        let f = run(&[], Duration::from_secs(5));
        assert!(matches!(f.outcome, Outcome::NotStarted(_)), "{f:?}");
    }

    #[test]
    fn caps_large_output_without_blocking() {
        // 1 MiB on stdout and stderr: far more than a pipe buffer holds.
        let f = sh(
            "head -c 1048576 /dev/zero | tr '\\0' a; head -c 1048576 /dev/zero | tr '\\0' b >&2; exit 1",
            Duration::from_secs(20),
        );
        assert!(matches!(f.outcome, Outcome::Exited(1)), "{f:?}");
        assert_eq!(f.stdout.len(), STDOUT_CAP);
        assert!(f.stdout.bytes().all(|b| b == b'a'));
        assert_eq!(f.stderr.len(), STDERR_CAP);
    }

    #[test]
    fn runs_jobs_concurrently_in_order() {
        let slow: Vec<String> = ["/bin/sh", "-c", "sleep 0.4; echo slow"]
            .map(String::from)
            .to_vec();
        let fast: Vec<String> = ["/bin/sh", "-c", "echo fast"].map(String::from).to_vec();
        let timeout = Duration::from_secs(5);
        let jobs = [
            Job {
                argv: &slow,
                timeout,
            },
            Job {
                argv: &fast,
                timeout,
            },
            Job {
                argv: &slow,
                timeout,
            },
            Job {
                argv: &slow,
                timeout,
            },
        ];
        let started = Instant::now();
        let results = run_all(&jobs);
        let elapsed = started.elapsed();
        assert!(elapsed < Duration::from_millis(1200), "took {elapsed:?}");
        let outputs: Vec<_> = results.iter().map(|r| r.stdout.as_str()).collect();
        assert_eq!(outputs, ["slow\n", "fast\n", "slow\n", "slow\n"]);
        assert!(
            results[1].duration < Duration::from_millis(300),
            "{:?}",
            results[1]
        );
        assert!(
            results[0].duration >= Duration::from_millis(400),
            "{:?}",
            results[0]
        );
    }

    #[test]
    fn kills_leftovers_that_hold_the_output_open() {
        // The check exits at once, but a background child keeps stdout open: we wait for
        // it until the deadline, then kill the group and keep the check's own result.
        let started = Instant::now();
        let f = sh("sleep 30 & echo done; exit 1", Duration::from_millis(300));
        let elapsed = started.elapsed();
        assert!(matches!(f.outcome, Outcome::Exited(1)), "{f:?}");
        assert_eq!(f.stdout, "done\n");
        assert!(elapsed < Duration::from_millis(900), "took {elapsed:?}");
        assert!(f.duration < Duration::from_millis(250), "{f:?}");
    }
}
