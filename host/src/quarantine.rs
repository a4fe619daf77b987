//! Crash quarantine: a plugin that crashed hbc in-process runs isolated from the next start.
//!
//! While a thread is inside an in-process plugin call (start, collect, stop), a
//! thread-local names that plugin's crash marker, a file in `<state_dir>/crash/` opened
//! when the plugin was launched. A fatal signal on that thread (SIGSEGV, SIGABRT, ...), or
//! `exit()` called from the plugin, writes one line into the marker (only `pwrite`, which
//! is async-signal-safe) before the process dies as it would have. A plain SIGKILL writes
//! nothing, so killing hbc never quarantines anything. Nothing is written per call.
//!
//! At the next start the hbc that owns the state folder (an exclusive `flock` on
//! `<state_dir>/lock`) turns each crash line into a record in `<state_dir>/quarantine/`,
//! and the plugin named there runs in a child process (`isolate.rs`) instead, with a
//! WARNING reading `hbc.quarantine.<name>`. The quarantine ends when the record is removed
//! (then restart or reload hbc) or when the plugin's library file changes (a new build).

use std::cell::Cell;
use std::collections::BTreeMap;
use std::fs::File;
use std::io::Write;
#[cfg(unix)]
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
#[cfg(unix)]
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
#[cfg(unix)]
use std::sync::OnceLock;
use std::time::SystemTime;

use hb_proto::{Level, Reading, Value};

/// Bytes at the start of a marker reserved for the crash line (the rest names the file).
const CRASH_LINE: usize = 48;
/// Largest marker or record read (they are a few hundred bytes).
const MAX_STATE_FILE: u64 = 16 * 1024;

/// The in-process call a thread is making into a plugin.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Call {
    /// Loading the library (its initialisers run).
    Load = 1,
    /// Building the monitor from its options.
    Start = 2,
    Collect = 3,
    /// Dropping the monitor.
    Stop = 4,
}

impl Call {
    pub fn as_str(self) -> &'static str {
        match self {
            Call::Load => "load",
            Call::Start => "start",
            Call::Collect => "collect",
            Call::Stop => "stop",
        }
    }

    fn from_str(s: &str) -> Option<Call> {
        [Call::Load, Call::Start, Call::Collect, Call::Stop]
            .into_iter()
            .find(|c| c.as_str() == s)
    }
}

thread_local! {
    /// The marker file descriptor and call of the plugin this thread is in, or -1.
    /// Const-initialised and without a destructor, so reading it in a signal handler is
    /// a plain load.
    static CURRENT: Cell<(i32, u8)> = const { Cell::new((-1, 0)) };
}

/// The fatal signals a crash handler is installed for.
#[cfg(unix)]
const FATAL: [libc::c_int; 7] = [
    libc::SIGSEGV,
    libc::SIGBUS,
    libc::SIGILL,
    libc::SIGFPE,
    libc::SIGABRT,
    libc::SIGSYS,
    libc::SIGTRAP,
];

/// The handlers that were installed before ours (Rust's stack-overflow handler for
/// SIGSEGV and SIGBUS), called after the marker is written.
#[cfg(unix)]
static PREVIOUS: OnceLock<Vec<(libc::c_int, libc::sigaction)>> = OnceLock::new();

/// Formats `"<kind> <signal> <call>\n"` into `buf` without allocating.
#[cfg(unix)]
fn crash_line(buf: &mut [u8; CRASH_LINE], kind: &[u8], sig: libc::c_int, call: u8) -> usize {
    let mut n = 0;
    let mut put = |bytes: &[u8]| {
        for &b in bytes {
            if n < CRASH_LINE - 1 {
                buf[n] = b;
                n += 1;
            }
        }
    };
    put(kind);
    put(b" ");
    let mut digits = [0u8; 12];
    let mut d = digits.len();
    let mut v = sig.unsigned_abs();
    loop {
        d -= 1;
        digits[d] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 || d == 0 {
            break;
        }
    }
    put(&digits[d..]);
    put(b" ");
    put(match call {
        1 => b"load",
        2 => b"start",
        3 => b"collect",
        _ => b"stop",
    });
    put(b"\n");
    n
}

/// Writes the crash line for this thread's plugin call, if it is in one.
#[cfg(unix)]
fn mark_current(kind: &[u8], sig: libc::c_int) {
    let (fd, call) = CURRENT.try_with(Cell::get).unwrap_or((-1, 0));
    if fd < 0 {
        return;
    }
    let mut buf = [b' '; CRASH_LINE];
    let n = crash_line(&mut buf, kind, sig, call);
    // SAFETY: pwrite(2) on a descriptor the plugin's marker keeps open for the whole
    // call, from a buffer on this stack; async-signal-safe.
    unsafe {
        libc::pwrite(fd, buf.as_ptr().cast(), n, 0);
    }
}

#[cfg(unix)]
extern "C" fn on_fatal_signal(
    sig: libc::c_int,
    info: *mut libc::siginfo_t,
    ctx: *mut libc::c_void,
) {
    mark_current(b"signal", sig);
    let previous = PREVIOUS
        .get()
        .and_then(|p| p.iter().find(|(s, _)| *s == sig).map(|(_, a)| *a));
    // SAFETY: sigaction/raise are async-signal-safe; the previous handler is called the
    // way the kernel would have called it (SA_SIGINFO decides its signature).
    unsafe {
        match previous {
            Some(old) if old.sa_sigaction != libc::SIG_DFL && old.sa_sigaction != libc::SIG_IGN => {
                if old.sa_flags & libc::SA_SIGINFO != 0 {
                    let f: extern "C" fn(libc::c_int, *mut libc::siginfo_t, *mut libc::c_void) =
                        std::mem::transmute(old.sa_sigaction);
                    f(sig, info, ctx);
                } else {
                    let f: extern "C" fn(libc::c_int) = std::mem::transmute(old.sa_sigaction);
                    f(sig);
                }
            }
            _ => {
                let mut dfl: libc::sigaction = std::mem::zeroed();
                dfl.sa_sigaction = libc::SIG_DFL;
                libc::sigaction(sig, &dfl, std::ptr::null_mut());
            }
        }
        // Die of the same signal once this handler returns (it is blocked until then),
        // also when it was raised rather than caused by the faulting instruction.
        let mut now: libc::sigaction = std::mem::zeroed();
        libc::sigaction(sig, std::ptr::null(), &mut now);
        if now.sa_sigaction == libc::SIG_DFL {
            libc::raise(sig);
        }
    }
}

#[cfg(unix)]
extern "C" fn on_exit() {
    mark_current(b"exit", 0);
}

/// Installs the crash handlers (once per process; only the hbc that owns the state
/// folder, never a plugin worker).
#[cfg(unix)]
fn install_crash_handlers() {
    static DONE: AtomicBool = AtomicBool::new(false);
    if DONE.swap(true, Ordering::SeqCst) {
        return;
    }
    let mut previous = Vec::with_capacity(FATAL.len());
    // SAFETY: sigaction(2) with a zeroed (valid) struct and a handler of the SA_SIGINFO
    // signature; the old actions are kept for chaining before the new ones can run.
    unsafe {
        for sig in FATAL {
            let mut old: libc::sigaction = std::mem::zeroed();
            if libc::sigaction(sig, std::ptr::null(), &mut old) == 0 {
                previous.push((sig, old));
            }
        }
        let _ = PREVIOUS.set(previous);
        for sig in FATAL {
            let mut act: libc::sigaction = std::mem::zeroed();
            act.sa_sigaction = on_fatal_signal as *const () as usize;
            act.sa_flags = libc::SA_SIGINFO | libc::SA_ONSTACK;
            libc::sigemptyset(&mut act.sa_mask);
            libc::sigaction(sig, &act, std::ptr::null_mut());
        }
        libc::atexit(on_exit);
    }
}

/// Off Unix no crash is recorded (Windows has no signal handler to write the marker
/// from; docs/platforms.md): a plugin that crashes there takes hbc down, so run doubtful
/// plugins isolated.
#[cfg(not(unix))]
fn install_crash_handlers() {}

/// A plugin's crash marker, kept open while the plugin may run in-process.
#[derive(Debug)]
pub struct Marker {
    file: File,
}

/// While alive, a crash on this thread is blamed on the marker's plugin.
pub struct InCall {
    previous: (i32, u8),
}

impl Drop for InCall {
    fn drop(&mut self) {
        let _ = CURRENT.try_with(|c| c.set(self.previous));
    }
}

impl Marker {
    /// Marks this thread as inside `call` of the plugin until the guard is dropped.
    pub fn enter(&self, call: Call) -> InCall {
        #[cfg(unix)]
        let fd = self.file.as_raw_fd();
        #[cfg(not(unix))]
        let fd = {
            let _ = &self.file;
            -1
        };
        let previous = CURRENT
            .try_with(|c| c.replace((fd, call as u8)))
            .unwrap_or((-1, 0));
        InCall { previous }
    }
}

/// Marks nothing (no state folder, or another hbc owns it).
pub fn enter(marker: Option<&Marker>, call: Call) -> Option<InCall> {
    marker.map(|m| m.enter(call))
}

/// Which library a plugin was loaded from: a quarantine ends when this changes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileId {
    pub path: PathBuf,
    pub size: u64,
    pub modified_ms: u64,
}

impl FileId {
    pub fn new(path: &Path, size: u64, modified: SystemTime) -> FileId {
        FileId {
            path: path.to_path_buf(),
            size,
            modified_ms: ms_since_epoch(modified),
        }
    }
}

/// One quarantined plugin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub plugin: String,
    /// The library that crashed hbc (`None`: unknown, never lifted by a file change).
    pub file: Option<FileId>,
    pub since_ms: u64,
    /// What happened, as a sentence.
    pub reason: String,
}

impl Record {
    fn render(&self, record_path: &Path) -> String {
        let mut s = format!(
            "# hbc runs plugin {} in a child process (isolated) because it crashed hbc in-process.\n\
             # To run it in-process again, remove this file ({}) and restart or reload hbc;\n\
             # a changed library file (a new build) ends the quarantine by itself.\n\
             plugin: {}\nsince_ms: {}\nreason: {}\n",
            self.plugin,
            record_path.display(),
            self.plugin,
            self.since_ms,
            self.reason.replace('\n', " ")
        );
        if let Some(f) = &self.file {
            s.push_str(&format!(
                "file: {}\nsize: {}\nmtime_ms: {}\n",
                f.path.display(),
                f.size,
                f.modified_ms
            ));
        }
        s
    }

    fn parse(name: &str, text: &str) -> Record {
        let field = |key: &str| {
            text.lines()
                .filter(|l| !l.starts_with('#'))
                .find_map(|l| l.strip_prefix(key)?.strip_prefix(": ").map(str::to_string))
        };
        let num = |key: &str| field(key).and_then(|v| v.trim().parse::<u64>().ok());
        let file = match (field("file"), num("size"), num("mtime_ms")) {
            (Some(path), Some(size), Some(modified_ms)) => Some(FileId {
                path: PathBuf::from(path),
                size,
                modified_ms,
            }),
            _ => None,
        };
        Record {
            plugin: name.to_string(),
            file,
            since_ms: num("since_ms").unwrap_or(0),
            reason: field("reason").unwrap_or_else(|| "it crashed hbc".to_string()),
        }
    }
}

/// Names usable as file names in the state folder; other plugins are never quarantined.
fn safe_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 128
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
}

/// The default state folder: `$STATE_DIRECTORY` (systemd's `StateDirectory=`), else
/// `/var/lib/hbc` for root, else `$XDG_STATE_HOME/hbc`, else `~/.local/state/hbc`.
pub fn default_state_dir() -> Option<PathBuf> {
    if let Some(d) = std::env::var_os("STATE_DIRECTORY").filter(|d| !d.is_empty()) {
        return std::env::split_paths(&d).next();
    }
    #[cfg(windows)]
    if let Some(d) = std::env::var_os("ProgramData").filter(|d| !d.is_empty()) {
        return Some(PathBuf::from(d).join("hbc").join("state"));
    }
    // SAFETY: geteuid has no preconditions.
    #[cfg(unix)]
    if unsafe { libc::geteuid() } == 0 {
        return Some(PathBuf::from("/var/lib/hbc"));
    }
    if let Some(x) = std::env::var_os("XDG_STATE_HOME").filter(|d| !d.is_empty()) {
        return Some(PathBuf::from(x).join("hbc"));
    }
    std::env::var_os("HOME")
        .filter(|d| !d.is_empty())
        .map(|h| PathBuf::from(h).join(".local/state/hbc"))
}

fn read_small(path: &Path) -> std::io::Result<String> {
    use std::io::Read;
    let mut s = String::new();
    File::open(path)?
        .take(MAX_STATE_FILE)
        .read_to_string(&mut s)?;
    Ok(s)
}

fn ms_since_epoch(t: SystemTime) -> u64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

fn unix_ms() -> u64 {
    ms_since_epoch(SystemTime::now())
}

#[cfg(not(unix))]
fn signal_name(_sig: i32) -> &'static str {
    "a signal"
}

#[cfg(unix)]
fn signal_name(sig: i32) -> &'static str {
    match sig {
        libc::SIGSEGV => "SIGSEGV",
        libc::SIGBUS => "SIGBUS",
        libc::SIGILL => "SIGILL",
        libc::SIGFPE => "SIGFPE",
        libc::SIGABRT => "SIGABRT",
        libc::SIGSYS => "SIGSYS",
        libc::SIGTRAP => "SIGTRAP",
        _ => "a signal",
    }
}

/// What a marker's crash line says, as a sentence; `None` for a marker without one.
fn crash_reason(plugin: &str, line: &str) -> Option<String> {
    let mut words = line.split_whitespace();
    let kind = words.next()?;
    let sig: i32 = words.next()?.parse().ok()?;
    let call = words
        .next()
        .and_then(Call::from_str)
        .unwrap_or(Call::Collect);
    Some(match kind {
        "signal" => format!(
            "hbc was killed by signal {sig} ({}) during plugin {plugin}'s {} in-process",
            signal_name(sig),
            call.as_str()
        ),
        _ => format!(
            "plugin {plugin} ended hbc (called exit) during its {} in-process",
            call.as_str()
        ),
    })
}

/// The state folder, the crash markers and the quarantine records of this hbc.
#[derive(Debug, Default)]
pub struct Quarantine {
    dir: Option<PathBuf>,
    /// The `flock`ed lock file: this hbc records crashes and writes records.
    lock: Option<File>,
    records: BTreeMap<String, Record>,
    markers: BTreeMap<String, Arc<Marker>>,
}

impl Quarantine {
    /// No state folder: nothing is recorded or quarantined.
    pub fn off() -> Quarantine {
        Quarantine::default()
    }

    /// Opens `dir` (created if missing, mode 0700). `own`: take the folder's lock, turn
    /// markers left by a crash into records and record crashes from now on; otherwise
    /// (or when another hbc holds the lock) only read. Problems are logged once and
    /// leave quarantine off or read-only; they never stop hbc.
    pub fn open(dir: Option<PathBuf>, own: bool) -> Quarantine {
        let Some(dir) = dir else {
            tracing::warn!("no state folder (set `state_dir`); crash quarantine is off");
            return Quarantine::off();
        };
        let mut q = Quarantine {
            dir: Some(dir.clone()),
            ..Quarantine::default()
        };
        if own {
            match Self::take_lock(&dir) {
                Ok(Some(lock)) => q.lock = Some(lock),
                Ok(None) => tracing::info!(
                    state_dir = %dir.display(),
                    "another hbc holds the state folder; this one reads its quarantine but records no crashes"
                ),
                Err(e) => {
                    tracing::warn!(
                        state_dir = %dir.display(),
                        "cannot use the state folder: {e}; crash quarantine is off"
                    );
                    q.dir = None;
                    return q;
                }
            }
        }
        q.load();
        if q.lock.is_some() {
            install_crash_handlers();
        }
        q
    }

    fn take_lock(dir: &Path) -> std::io::Result<Option<File>> {
        let mut b = std::fs::DirBuilder::new();
        b.recursive(true);
        #[cfg(unix)]
        std::os::unix::fs::DirBuilderExt::mode(&mut b, 0o700);
        for sub in ["", "crash", "quarantine"] {
            b.create(dir.join(sub))?;
        }
        let mut lock = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(dir.join("lock"))?;
        #[cfg(not(unix))]
        match lock.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => return Ok(None),
            Err(std::fs::TryLockError::Error(e)) => return Err(e),
        }
        // SAFETY: flock(2) on a descriptor we own.
        #[cfg(unix)]
        if unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
            let e = std::io::Error::last_os_error();
            return match e.raw_os_error() {
                Some(libc::EWOULDBLOCK) => Ok(None),
                _ => Err(e),
            };
        }
        lock.set_len(0)?;
        writeln!(lock, "{}", std::process::id())?;
        Ok(Some(lock))
    }

    /// Reads the records, and turns crash markers into records (written to disk only
    /// by the owner, which also removes the markers).
    fn load(&mut self) {
        let Some(dir) = self.dir.clone() else { return };
        if let Ok(entries) = std::fs::read_dir(dir.join("quarantine")) {
            for e in entries.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                if !safe_name(&name) {
                    continue;
                }
                match read_small(&e.path()) {
                    Ok(text) => {
                        self.records
                            .insert(name.clone(), Record::parse(&name, &text));
                    }
                    Err(err) => {
                        tracing::warn!(file = %e.path().display(), "cannot read quarantine record: {err}")
                    }
                }
            }
        }
        let Ok(entries) = std::fs::read_dir(dir.join("crash")) else {
            return;
        };
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let text = read_small(&e.path()).unwrap_or_default();
            let head: String = text.chars().take(CRASH_LINE).collect();
            let crashed = safe_name(&name)
                .then(|| crash_reason(&name, head.trim()))
                .flatten();
            if let Some(reason) = crashed {
                let rest = &text[text.len().min(CRASH_LINE)..];
                let record = Record {
                    plugin: name.clone(),
                    file: Record::parse(&name, rest).file,
                    // The marker was last written when hbc crashed.
                    since_ms: e
                        .metadata()
                        .and_then(|m| m.modified())
                        .map(ms_since_epoch)
                        .unwrap_or_else(|_| unix_ms()),
                    reason,
                };
                if self.lock.is_some() {
                    tracing::warn!(
                        plugin = %name,
                        "{}; plugin quarantined: it runs isolated in a child process from now on",
                        record.reason
                    );
                    self.write_record(&record);
                }
                self.records.insert(name.clone(), record);
            }
            if self.lock.is_some() {
                let _ = std::fs::remove_file(e.path());
            }
        }
    }

    fn write_record(&self, record: &Record) {
        let Some(dir) = &self.dir else { return };
        let path = dir.join("quarantine").join(&record.plugin);
        let tmp = dir
            .join("quarantine")
            .join(format!(".{}.tmp", record.plugin));
        let written =
            std::fs::write(&tmp, record.render(&path)).and_then(|()| std::fs::rename(&tmp, &path));
        if let Err(e) = written {
            tracing::warn!(file = %path.display(), "cannot write quarantine record: {e}; the plugin is quarantined until hbc stops");
        }
    }

    /// The state folder in use, if any.
    pub fn dir(&self) -> Option<&Path> {
        self.dir.as_deref()
    }

    /// Whether this hbc records crashes.
    pub fn owner(&self) -> bool {
        self.lock.is_some()
    }

    /// The record of `plugin` if it is quarantined for the library `file`. A record made
    /// for another version of the file is removed (the quarantine ends with a new build).
    pub fn check(&mut self, plugin: &str, file: &FileId) -> Option<&Record> {
        let stale = match self.records.get(plugin) {
            None => return None,
            Some(r) => r.file.as_ref().is_some_and(|f| f != file),
        };
        if stale {
            if self.lock.is_some() {
                tracing::info!(plugin, file = %file.path.display(), "plugin library changed since its quarantine; it runs in-process again");
                if let Some(dir) = &self.dir {
                    let _ = std::fs::remove_file(dir.join("quarantine").join(plugin));
                }
                self.records.remove(plugin);
                return None;
            }
            return None;
        }
        self.records.get(plugin)
    }

    /// Reads the records again (SIGHUP): removed records end their quarantine.
    pub fn reload(&mut self) {
        let Some(dir) = &self.dir else { return };
        let present: Vec<String> = std::fs::read_dir(dir.join("quarantine"))
            .map(|it| {
                it.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        self.records.retain(|name, _| {
            let keep = present.contains(name);
            if !keep {
                tracing::info!(plugin = %name, "quarantine record removed; the plugin runs in-process again");
            }
            keep
        });
    }

    /// The record of `plugin`, whatever file it was made for.
    pub fn get(&self, plugin: &str) -> Option<&Record> {
        self.records.get(plugin)
    }

    pub fn records(&self) -> impl Iterator<Item = &Record> {
        self.records.values()
    }

    /// Opens (or reuses) the crash marker of an in-process plugin loaded from `file`.
    /// `None` when this hbc records no crashes.
    pub fn marker(&mut self, plugin: &str, file: &FileId) -> Option<Arc<Marker>> {
        self.lock.as_ref()?;
        if !safe_name(plugin) {
            return None;
        }
        let dir = self.dir.as_ref()?;
        let identity = format!(
            "file: {}\nsize: {}\nmtime_ms: {}\n",
            file.path.display(),
            file.size,
            file.modified_ms
        );
        if let Some(m) = self.markers.get(plugin) {
            let _ = write_identity(&m.file, &identity);
            return Some(m.clone());
        }
        let path = dir.join("crash").join(plugin);
        let opened = std::fs::OpenOptions::new()
            .create(true)
            .truncate(true)
            .write(true)
            .open(&path)
            .and_then(|f| write_identity(&f, &identity).map(|()| f));
        match opened {
            Ok(file) => {
                let m = Arc::new(Marker { file });
                self.markers.insert(plugin.to_string(), m.clone());
                Some(m)
            }
            Err(e) => {
                tracing::warn!(file = %path.display(), "cannot create crash marker: {e}; a crash of this plugin would not be quarantined");
                None
            }
        }
    }

    /// Records a quarantine now (tests and tools); the owner writes it to disk.
    pub fn insert(&mut self, record: Record) {
        if self.lock.is_some() {
            self.write_record(&record);
        }
        self.records.insert(record.plugin.clone(), record);
    }

    /// The `hbc.quarantine.<name>` reading of a quarantined plugin; `how` is `isolated`
    /// or `disabled`.
    pub fn reading(&self, record: &Record, how: &str) -> Reading {
        let clear = match &self.dir {
            Some(d) => format!(
                "remove {} and restart or reload hbc, or deploy a changed library",
                d.join("quarantine").join(&record.plugin).display()
            ),
            None => "restart hbc".to_string(),
        };
        let runs = if how == "disabled" {
            "it is disabled (it cannot run in a child process here)"
        } else {
            "it runs isolated in a child process"
        };
        Reading {
            key: format!("hbc.quarantine.{}", record.plugin),
            value: Value::Text(how.to_string()),
            unit: String::new(),
            level: Level::Warning,
            message: format!(
                "quarantined: {}; {runs}; to end the quarantine {clear}",
                record.reason
            ),
            threshold: String::new(),
        }
    }
}

/// Writes the marker's identity after the reserved crash line (left blank).
fn write_identity(file: &File, identity: &str) -> std::io::Result<()> {
    let mut buf = vec![b' '; CRASH_LINE];
    buf[CRASH_LINE - 1] = b'\n';
    buf.extend_from_slice(identity.as_bytes());
    #[cfg(unix)]
    std::os::unix::fs::FileExt::write_all_at(file, &buf, 0)?;
    #[cfg(windows)]
    {
        let mut done = 0;
        while done < buf.len() {
            done += std::os::windows::fs::FileExt::seek_write(file, &buf[done..], done as u64)?;
        }
    }
    file.set_len(buf.len() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crash_lines_are_formatted_without_allocating_and_read_back() {
        let mut buf = [b' '; CRASH_LINE];
        let n = crash_line(&mut buf, b"signal", 6, Call::Collect as u8);
        let line = std::str::from_utf8(&buf[..n]).expect("ascii");
        assert_eq!(line, "signal 6 collect\n");
        assert_eq!(
            crash_reason("abort", line).as_deref(),
            Some("hbc was killed by signal 6 (SIGABRT) during plugin abort's collect in-process")
        );
        let n = crash_line(&mut buf, b"exit", 0, Call::Start as u8);
        let line = std::str::from_utf8(&buf[..n]).expect("ascii");
        assert_eq!(
            crash_reason("x", line).as_deref(),
            Some("plugin x ended hbc (called exit) during its start in-process")
        );
        assert_eq!(crash_reason("x", ""), None, "a blank marker is no crash");
    }

    #[test]
    fn a_record_survives_writing_and_reading() {
        let r = Record {
            plugin: "nagios".into(),
            file: Some(FileId {
                path: PathBuf::from("/usr/lib/hbc/plugins/libhbc_nagios.so"),
                size: 123,
                modified_ms: 456,
            }),
            since_ms: 789,
            reason: "it crashed".into(),
        };
        let text = r.render(Path::new("/var/lib/hbc/quarantine/nagios"));
        assert!(
            text.contains("remove this file (/var/lib/hbc/quarantine/nagios)"),
            "{text}"
        );
        assert_eq!(Record::parse("nagios", &text), r);
        let bare = Record::parse("x", "garbage");
        assert_eq!(bare.file, None);
        assert_eq!(bare.reason, "it crashed hbc");
    }

    #[test]
    fn only_plain_names_become_files() {
        assert!(safe_name("fault_abort"));
        assert!(safe_name("my-plugin.v2"));
        assert!(!safe_name("../etc"));
        assert!(!safe_name(".hidden"));
        assert!(!safe_name("a/b"));
        assert!(!safe_name(""));
    }

    #[test]
    fn markers_become_records_for_the_owner_only() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path().join("state");
        let file = FileId {
            path: PathBuf::from("/p/libhbc_x.so"),
            size: 10,
            modified_ms: 20,
        };
        {
            let mut q = Quarantine::open(Some(dir.clone()), true);
            assert!(q.owner());
            let m = q.marker("x", &file).expect("marker");
            // What the signal handler does on this thread during a call.
            let _in = m.enter(Call::Collect);
            mark_current(b"signal", libc::SIGSEGV);
            let _other = q
                .marker("y", &file)
                .expect("marker of a plugin that did not crash");
        }
        // A reader sees the pending crash but leaves the marker for the owner.
        let r = Quarantine::open(Some(dir.clone()), false);
        assert_eq!(r.records().count(), 1);
        assert!(dir.join("crash/x").exists());

        let mut q = Quarantine::open(Some(dir.clone()), true);
        let rec = q.check("x", &file).expect("quarantined").clone();
        assert!(
            rec.reason
                .contains("signal 11 (SIGSEGV) during plugin x's collect"),
            "{}",
            rec.reason
        );
        assert_eq!(rec.file.as_ref(), Some(&file));
        assert!(q.check("y", &file).is_none());
        assert!(dir.join("quarantine/x").exists());
        assert!(!dir.join("crash/x").exists(), "markers are consumed");

        // A second hbc does not own the folder while the first runs.
        let second = Quarantine::open(Some(dir.clone()), true);
        assert!(!second.owner());
        assert_eq!(second.records().count(), 1);

        // A new build of the library ends the quarantine.
        let newer = FileId {
            size: 11,
            ..file.clone()
        };
        assert!(q.check("x", &newer).is_none());
        assert!(!dir.join("quarantine/x").exists());
    }

    #[test]
    fn removing_the_record_ends_the_quarantine_on_reload() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let mut q = Quarantine::open(Some(tmp.path().to_path_buf()), true);
        q.insert(Record {
            plugin: "x".into(),
            file: None,
            since_ms: 1,
            reason: "test".into(),
        });
        let any = FileId {
            path: PathBuf::from("/a"),
            size: 1,
            modified_ms: 1,
        };
        assert!(q.check("x", &any).is_some(), "no file: lifted only by hand");
        std::fs::remove_file(tmp.path().join("quarantine/x")).expect("rm");
        q.reload();
        assert!(q.check("x", &any).is_none());
    }

    #[test]
    fn an_unusable_folder_turns_quarantine_off() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let file = tmp.path().join("not-a-dir");
        std::fs::write(&file, "x").expect("write");
        let mut q = Quarantine::open(Some(file.join("state")), true);
        assert!(!q.owner());
        assert!(q.dir().is_none());
        let id = FileId {
            path: PathBuf::from("/a"),
            size: 1,
            modified_ms: 1,
        };
        assert!(q.marker("x", &id).is_none());
    }
}
