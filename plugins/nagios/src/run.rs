//! Running check commands: all of them at once, each in its own process group with its own
//! deadline, capturing a bounded amount of output. A check that overruns its deadline has
//! its whole process group killed, so a shell script's children die with it.
//!
//! Output is read by one thread per pipe, so a chatty check never blocks on a full pipe
//! while we wait for it. Child exit is observed without reaping (`waitid` with `WNOWAIT`),
//! so the group leader stays a zombie, and its process group id reserved, until we are
//! done signalling its group: a group is never killed after its leader was reaped (a
//! recycled pid could name someone else's group). Whatever a check leaves behind in its
//! group is killed before the leader is reaped.
//!
//! Checks die with hbc: every live group is listed in [`LIVE`], and an `atexit` handler
//! kills them all when the process exits (hbc stopping on SIGTERM, an isolated worker
//! stopped by hbc); each check also gets `PR_SET_PDEATHSIG` (SIGKILL) in case its parent
//! dies without exiting cleanly.

use std::io::{self, Read};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex, Once, PoisonError, TryLockError};
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

/// Process groups of running checks whose leaders are not reaped yet (so each id still
/// names that check's group). At most one entry per running check (plus checks stuck in
/// the kernel after a kill); removed, under this lock, right before the leader is reaped.
static LIVE: Mutex<Vec<i32>> = Mutex::new(Vec::new());

fn live() -> std::sync::MutexGuard<'static, Vec<i32>> {
    LIVE.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Kills every live check's process group; runs at process exit.
extern "C" fn kill_live_groups() {
    // Never wait long at exit: the lock is only held for a push, a remove or a
    // non-blocking reap, so a few tries are plenty.
    for _ in 0..200 {
        match LIVE.try_lock() {
            Ok(groups) => return kill_all(&groups),
            Err(TryLockError::Poisoned(p)) => return kill_all(&p.into_inner()),
            Err(TryLockError::WouldBlock) => thread::sleep(Duration::from_millis(1)),
        }
    }
}

fn kill_all(groups: &[i32]) {
    for &pgid in groups {
        if pgid > 1 {
            // SAFETY: kill(2) on a group whose leader is our unreaped child.
            unsafe {
                libc::kill(-pgid, libc::SIGKILL);
            }
        }
    }
}

/// Registers [`kill_live_groups`] to run at exit, once per process.
fn kill_groups_at_exit() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // SAFETY: atexit(3) with a function that lives as long as the process (plugin
        // libraries are never unloaded).
        unsafe {
            libc::atexit(kill_live_groups);
        }
    });
}

/// Whether the child `pid` has exited, without reaping it.
fn has_exited(pid: i32, block: bool) -> io::Result<bool> {
    let flags = libc::WEXITED | libc::WNOWAIT | if block { 0 } else { libc::WNOHANG };
    loop {
        // SAFETY: waitid(2) writes into the zeroed siginfo we pass; WNOWAIT leaves the
        // child waitable.
        let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
        let r = unsafe { libc::waitid(libc::P_PID, pid as libc::id_t, &mut info, flags) };
        if r == 0 {
            // SAFETY: si_pid is set by waitid; 0 means no child changed state (WNOHANG).
            return Ok(unsafe { info.si_pid() } != 0);
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

/// Reaps an exited leader after its group is killed (leftovers of the check) and
/// forgotten, all under [`LIVE`]'s lock so no group is signalled after its leader is gone.
fn reap(pgid: i32, child: &mut Child) -> io::Result<Option<ExitStatus>> {
    let mut groups = live();
    if pgid > 1 {
        // SAFETY: the leader is an exited but unreaped child, so the id is still its group's.
        unsafe {
            libc::kill(-pgid, libc::SIGKILL);
        }
    }
    groups.retain(|g| *g != pgid);
    child.try_wait()
}

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
    /// Set once the child has exited (it is reaped only in `finish`).
    exited: bool,
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
        kill_groups_at_exit();
        // SAFETY: getpid has no preconditions.
        let parent = unsafe { libc::getpid() };
        let mut command = Command::new(program);
        command
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0);
        // SAFETY: runs in the forked child before exec, calling only async-signal-safe
        // functions (prctl, getppid).
        unsafe {
            command.pre_exec(move || {
                // (macOS has no parent-death signal: there the `atexit` kill is all.)
                #[cfg(target_os = "linux")]
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                if libc::getppid() != parent {
                    return Err(io::Error::other("hbc ended before the check started"));
                }
                Ok(())
            });
        }
        // Registered under the lock, so an exit in between cannot miss this group.
        let mut groups = live();
        let mut child = command.spawn()?;
        let pgid = match i32::try_from(child.id()) {
            Ok(pgid) => pgid,
            Err(_) => {
                drop(groups);
                let _ = child.kill();
                let _ = child.wait();
                return Err(io::Error::other("process id out of range"));
            }
        };
        groups.push(pgid);
        drop(groups);
        let captures = Capture::start(child.stdout.take(), STDOUT_CAP)
            .and_then(|stdout| Ok((stdout, Capture::start(child.stderr.take(), STDERR_CAP)?)));
        let (stdout, stderr) = match captures {
            Ok(captures) => captures,
            Err(e) => {
                kill_group(pgid, &mut child);
                let _ = has_exited(pgid, true);
                let _ = reap(pgid, &mut child);
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
            exited: false,
            ended: None,
            killed: None,
            timed_out: false,
            lost: None,
        })
    }

    /// Moves this command along; returns when it next needs looking at, or `None` once it
    /// is finished.
    fn step(&mut self, now: Instant) -> Option<Instant> {
        if !self.exited {
            match has_exited(self.pgid, false) {
                Ok(true) => {
                    self.exited = true;
                    self.ended = Some(now);
                }
                Ok(false) => {}
                Err(e) => {
                    self.lost = Some(e);
                    self.ended = Some(now);
                    return None;
                }
            }
        }
        // A timed-out check's output is not used, so there is no reason to wait for it.
        if self.exited && (self.timed_out || (self.stdout.is_done() && self.stderr.is_done())) {
            return None;
        }
        match self.killed {
            None if now >= self.deadline => {
                // Either the check itself overran, or it exited but something it started
                // still holds its output open; both are in its process group, whose
                // leader is not reaped yet.
                self.timed_out = !self.exited;
                kill_group(self.pgid, &mut self.child);
                self.killed = Some(now);
                Some(now + KILL_GRACE)
            }
            None => Some(self.deadline),
            Some(killed) if now >= killed + KILL_GRACE => None,
            Some(killed) => Some(killed + KILL_GRACE),
        }
    }

    fn finish(mut self, now: Instant) -> Finished {
        let duration = self
            .ended
            .unwrap_or(now)
            .saturating_duration_since(self.started);
        let status = match (&self.lost, self.exited) {
            (None, true) => match reap(self.pgid, &mut self.child) {
                Ok(status) => status,
                Err(e) => {
                    self.lost = Some(e);
                    None
                }
            },
            // Waiting failed: the leader's state is unknown, so its group is not
            // signalled again; only forgotten.
            (Some(_), _) => {
                live().retain(|g| *g != self.pgid);
                None
            }
            (None, false) => None,
        };
        let outcome = match (self.lost, status) {
            (Some(e), _) => Outcome::Lost(e),
            _ if self.timed_out => Outcome::TimedOut,
            (None, Some(status)) => Outcome::of_status(status),
            // Only a killed child is given up on unreaped, and it counts as timed out.
            (None, None) => Outcome::TimedOut,
        };
        if !self.exited && matches!(outcome, Outcome::TimedOut) {
            reap_in_background(self.pgid, self.child);
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
/// for it so it does not stay a zombie, and collection goes on without it. Its group stays
/// in [`LIVE`] until then.
fn reap_in_background(pgid: i32, mut child: Child) {
    let spawned = thread::Builder::new()
        .name("nagios-reaper".into())
        .spawn(move || {
            let _ = has_exited(pgid, true);
            let _ = reap(pgid, &mut child);
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
