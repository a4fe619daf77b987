//! Running check commands on Windows, as NSClient++ does: an `.exe` directly, a `.bat` or
//! `.cmd` through `cmd.exe` (std does that, quoting arguments for it), a `.ps1` through
//! `powershell.exe -NoProfile -NonInteractive -ExecutionPolicy Bypass -File`. All checks
//! run at once, each with its own deadline and bounded output, as on Unix (`run.rs`).
//!
//! Each check runs in its own job object with `JOB_OBJECT_LIMIT_KILL_ON_JOB_CLOSE`: on a
//! timeout the whole job (the check and every process it started: `cmd.exe` and its
//! children, PowerShell's) is terminated, and whatever a finished check left behind dies
//! when its job handle is closed; if the process holding the handles dies (hbc, or an
//! isolated worker), Windows closes them and the checks die too. A check is assigned to
//! its job right after it starts: a process it starts in that first instant escapes.

use std::io::{self, Read};
use std::os::windows::io::AsRawHandle;
use std::os::windows::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use windows_sys::Win32::Foundation::{CloseHandle, HANDLE};
use windows_sys::Win32::System::JobObjects::{
    AssignProcessToJobObject, CreateJobObjectW, JobObjectExtendedLimitInformation,
    SetInformationJobObject, TerminateJobObject, JOBOBJECT_EXTENDED_LIMIT_INFORMATION,
    JOB_OBJECT_LIMIT_KILL_ON_JOB_CLOSE,
};

/// Most bytes of standard output kept per check.
pub const STDOUT_CAP: usize = 64 * 1024;
/// Most bytes of standard error kept per check.
pub const STDERR_CAP: usize = 4 * 1024;

/// How often a running check is looked at.
const POLL: Duration = Duration::from_millis(10);
/// `CREATE_NO_WINDOW`: a check run from a service opens no console window.
const CREATE_NO_WINDOW: u32 = 0x0800_0000;

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
    /// Never on Windows (there are no signals); kept so the readings code is shared.
    #[allow(dead_code)]
    Signaled(i32),
    /// Overran its timeout; its job (the whole process tree) was terminated.
    TimedOut,
    /// Could not be started (not found, not executable, out of resources).
    NotStarted(io::Error),
    /// Started, but waiting for it failed.
    Lost(io::Error),
}

/// A finished command with what it wrote.
#[derive(Debug)]
pub struct Finished {
    pub outcome: Outcome,
    /// Standard output, at most [`STDOUT_CAP`] bytes, decoded lossily; empty on a timeout.
    pub stdout: String,
    /// Standard error, at most [`STDERR_CAP`] bytes; empty on a timeout.
    pub stderr: String,
    /// From start until it ended (or until it was killed).
    pub duration: Duration,
    /// The process id the command ran as, if it started.
    pub pgid: Option<i32>,
}

/// A kill-on-close job object.
struct JobObject(HANDLE);

impl JobObject {
    fn new() -> io::Result<JobObject> {
        // SAFETY: plain Win32 calls; the limit struct is zeroed (valid) and sized.
        unsafe {
            let handle = CreateJobObjectW(std::ptr::null(), std::ptr::null());
            if handle.is_null() {
                return Err(io::Error::last_os_error());
            }
            let job = JobObject(handle);
            let mut limits: JOBOBJECT_EXTENDED_LIMIT_INFORMATION = std::mem::zeroed();
            limits.BasicLimitInformation.LimitFlags = JOB_OBJECT_LIMIT_KILL_ON_JOB_CLOSE;
            if SetInformationJobObject(
                job.0,
                JobObjectExtendedLimitInformation,
                (&raw const limits).cast(),
                std::mem::size_of::<JOBOBJECT_EXTENDED_LIMIT_INFORMATION>() as u32,
            ) == 0
            {
                return Err(io::Error::last_os_error());
            }
            Ok(job)
        }
    }

    fn assign(&self, child: &Child) -> io::Result<()> {
        // SAFETY: both handles are valid for the call.
        if unsafe { AssignProcessToJobObject(self.0, child.as_raw_handle() as HANDLE) } == 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    fn terminate(&self) {
        // SAFETY: our own job handle.
        unsafe {
            TerminateJobObject(self.0, 1);
        }
    }
}

impl Drop for JobObject {
    fn drop(&mut self) {
        // SAFETY: closed once; closing kills what is left in the job.
        unsafe {
            CloseHandle(self.0);
        }
    }
}

/// The command line to start for `argv`: a PowerShell script through PowerShell, the rest
/// as given (std runs `.bat`/`.cmd` through `cmd.exe /c`).
fn command_for(argv: &[String]) -> io::Result<Command> {
    let Some((program, args)) = argv.split_first() else {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, "empty command"));
    };
    let lower = program.to_ascii_lowercase();
    let mut command = if lower.ends_with(".ps1") {
        let mut c = Command::new("powershell.exe");
        c.args([
            "-NoLogo",
            "-NoProfile",
            "-NonInteractive",
            "-ExecutionPolicy",
            "Bypass",
            "-File",
        ])
        .arg(program);
        c
    } else {
        Command::new(program)
    };
    command.args(args);
    Ok(command)
}

struct Running {
    index: usize,
    child: Child,
    job: Option<JobObject>,
    started: Instant,
    deadline: Instant,
    stdout: Capture,
    stderr: Capture,
}

/// Runs all jobs concurrently and returns their results in the same order. Takes about as
/// long as the slowest job, at most its timeout (plus the time to terminate it).
pub fn run_all(jobs: &[Job<'_>]) -> Vec<Finished> {
    let mut finished: Vec<(usize, Finished)> = Vec::with_capacity(jobs.len());
    let mut running = Vec::with_capacity(jobs.len());
    for (index, job) in jobs.iter().enumerate() {
        match start(index, job) {
            Ok(r) => running.push(r),
            Err(e) => finished.push((
                index,
                Finished {
                    outcome: Outcome::NotStarted(e),
                    stdout: String::new(),
                    stderr: String::new(),
                    duration: Duration::ZERO,
                    pgid: None,
                },
            )),
        }
    }
    while !running.is_empty() {
        let now = Instant::now();
        let mut i = 0;
        while i < running.len() {
            let r = &mut running[i];
            let outcome = match r.child.try_wait() {
                Ok(Some(status)) => Some(Outcome::Exited(status.code().unwrap_or(-1))),
                Ok(None) if now >= r.deadline => {
                    match &r.job {
                        Some(job) => job.terminate(),
                        None => {
                            let _ = r.child.kill();
                        }
                    }
                    let _ = r.child.wait();
                    Some(Outcome::TimedOut)
                }
                Ok(None) => None,
                Err(e) => {
                    let _ = r.child.kill();
                    let _ = r.child.wait();
                    Some(Outcome::Lost(e))
                }
            };
            match outcome {
                None => i += 1,
                Some(outcome) => {
                    let r = running.swap_remove(i);
                    finished.push((r.index, r.finish(outcome)));
                }
            }
        }
        if !running.is_empty() {
            thread::sleep(POLL);
        }
    }
    finished.sort_by_key(|(index, _)| *index);
    finished.into_iter().map(|(_, result)| result).collect()
}

fn start(index: usize, job: &Job<'_>) -> io::Result<Running> {
    let mut command = command_for(job.argv)?;
    command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .creation_flags(CREATE_NO_WINDOW);
    let started = Instant::now();
    let job_object = JobObject::new().ok();
    let mut child = command.spawn()?;
    let job_object = job_object.filter(|j| j.assign(&child).is_ok());
    let stdout = Capture::start(child.stdout.take(), STDOUT_CAP);
    let stderr = Capture::start(child.stderr.take(), STDERR_CAP);
    Ok(Running {
        index,
        child,
        job: job_object,
        started,
        deadline: started + job.timeout,
        stdout,
        stderr,
    })
}

impl Running {
    fn finish(mut self, outcome: Outcome) -> Finished {
        let duration = self.started.elapsed();
        let pid = i32::try_from(self.child.id()).ok();
        // Whatever the check left running dies with its job, before its pipes are read
        // to the end (a leftover child holding them open would block the readers).
        drop(self.job.take());
        let timed_out = matches!(outcome, Outcome::TimedOut);
        let stdout = self.stdout.take(timed_out);
        let stderr = self.stderr.take(timed_out);
        Finished {
            outcome,
            stdout,
            stderr,
            duration,
            pgid: pid,
        }
    }
}

/// One pipe read to its end on a thread, at most `cap` bytes kept.
struct Capture {
    buffer: Arc<Mutex<Vec<u8>>>,
    reader: Option<JoinHandle<()>>,
}

impl Capture {
    fn start(pipe: Option<impl Read + Send + 'static>, cap: usize) -> Capture {
        let buffer = Arc::new(Mutex::new(Vec::new()));
        let reader = pipe.and_then(|pipe| {
            let buffer = buffer.clone();
            thread::Builder::new()
                .name("nagios-pipe".into())
                .stack_size(64 * 1024)
                .spawn(move || read_capped(pipe, &buffer, cap))
                .ok()
        });
        Capture { buffer, reader }
    }

    /// What was read; nothing after a timeout (as on Unix).
    fn take(&mut self, discard: bool) -> String {
        if let Some(reader) = self.reader.take() {
            let _ = reader.join();
        }
        if discard {
            return String::new();
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
