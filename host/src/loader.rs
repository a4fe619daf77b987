//! Finding plugin libraries and loading them safely.
//!
//! Only this module opens shared libraries. Every candidate is first copied into a
//! private folder of this hbc process (so an ops team overwriting the original in place
//! cannot crash hbc, and a changed file can be loaded again as new code), structurally
//! checked (a truncated library would kill the process inside `dlopen`), optionally
//! test-loaded in a child process, and only then opened with abi_stable's layout check.
//! Libraries are never unloaded (abi_stable leaks them by design).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use abi_stable::library::{lib_header_from_path, LibraryError};
use hbc_plugin_api::{PluginInfo, PluginList_Ref, PluginMod_Ref};
use serde::{Deserialize, Serialize};

/// Metadata of a loaded plugin.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Info {
    pub name: String,
    pub version: String,
    pub description: String,
    pub api_version: String,
}

impl From<PluginInfo> for Info {
    fn from(i: PluginInfo) -> Info {
        Info {
            name: i.name.into(),
            version: i.version.into(),
            description: i.description.into(),
            api_version: i.api_version.into(),
        }
    }
}

/// A plugin file found in a plugin folder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    pub path: PathBuf,
    pub size: u64,
    pub modified: SystemTime,
}

/// Why a plugin file was not loaded: a sentence, and what to do about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    pub reason: String,
    pub remedy: &'static str,
    /// The file may well be good: this process could not check it now (no process or
    /// thread could be started). It is tried again at the next rescan, not remembered
    /// as rejected until it changes.
    pub retry: bool,
}

impl std::fmt::Display for Rejection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}; {}", self.reason, self.remedy)
    }
}

fn reject(reason: impl Into<String>, remedy: &'static str) -> Rejection {
    Rejection {
        reason: reason.into(),
        remedy,
        retry: false,
    }
}

/// A rejection for now only ([`Rejection::retry`]).
pub(crate) fn retry_later(reason: impl Into<String>, remedy: &'static str) -> Rejection {
    Rejection {
        retry: true,
        ..reject(reason, remedy)
    }
}

const REBUILD: &str = "rebuild the plugin against this hbc's hbc-plugin-api and redeploy it";
const REPLACE: &str = "copy the complete library again (use `install`, not a partial copy)";
const REMOVE: &str = "remove the file from the plugin folder if it is not an hbc plugin";

/// True for file names a plugin may have.
pub fn is_library_name(path: &Path) -> bool {
    matches!(
        path.extension().and_then(|e| e.to_str()),
        Some("so" | "dll" | "dylib")
    )
}

/// The folders to search, in order, without duplicates.
pub fn plugin_dirs(config_dirs: &[PathBuf], env: Option<&str>, cli: &[PathBuf]) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = Vec::new();
    let mut push = |p: PathBuf| {
        if !p.as_os_str().is_empty() && !out.contains(&p) {
            out.push(p);
        }
    };
    for d in crate::config::system_plugin_dirs() {
        push(d);
    }
    for d in config_dirs {
        push(d.clone());
    }
    if let Some(env) = env {
        for d in std::env::split_paths(env) {
            push(d);
        }
    }
    for d in cli {
        push(d.clone());
    }
    out
}

/// A library named on the command line that is nowhere to be found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotFound {
    pub file: PathBuf,
    /// Every folder that was looked in, in order.
    pub looked_in: Vec<PathBuf>,
}

impl std::fmt::Display for NotFound {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let dirs: Vec<String> = self
            .looked_in
            .iter()
            .map(|d| d.display().to_string())
            .collect();
        write!(
            f,
            "no such file: {} (looked in {})",
            self.file.display(),
            dirs.join(", ")
        )
    }
}

impl std::error::Error for NotFound {}

/// Finds a library named on the command line (`hbc check-plugin FILE`): relative to
/// `cwd` as given, and for a bare file name (no `/`) then in each plugin folder. The path
/// returned is absolute: the dynamic loader searches a bare name in the system's library
/// folders, never in the current one.
pub fn locate(file: &Path, cwd: &Path, dirs: &[PathBuf]) -> Result<PathBuf, NotFound> {
    let here = cwd.join(file);
    if here.exists() {
        return Ok(here);
    }
    let mut looked_in = vec![here
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| cwd.to_path_buf())];
    let bare = file.components().count() == 1 && file.file_name().is_some();
    if bare {
        for dir in dirs {
            let candidate = dir.join(file);
            if candidate.exists() {
                return Ok(candidate);
            }
            looked_in.push(dir.clone());
        }
    }
    Err(NotFound {
        file: file.to_path_buf(),
        looked_in,
    })
}

/// Lists the library files in `dirs`, sorted within each folder. A folder that does not
/// exist is skipped; other folder errors come back for logging.
pub fn discover(dirs: &[PathBuf]) -> (Vec<Candidate>, Vec<String>) {
    let mut found = Vec::new();
    let mut errors = Vec::new();
    for dir in dirs {
        let entries = match std::fs::read_dir(dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => {
                errors.push(format!("cannot read plugin folder {}: {e}", dir.display()));
                continue;
            }
        };
        let mut here: Vec<Candidate> = entries
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| is_library_name(p))
            .filter_map(|path| {
                let md = std::fs::metadata(&path).ok()?;
                md.is_file().then(|| Candidate {
                    size: md.len(),
                    modified: md.modified().unwrap_or(SystemTime::UNIX_EPOCH),
                    path,
                })
            })
            .collect();
        here.sort_by(|a, b| a.path.cmp(&b.path));
        found.extend(here);
    }
    (found, errors)
}

/// A folder only this process uses, holding the copies of the libraries it loaded.
/// Removed when dropped (the mappings stay valid after the files are unlinked).
#[derive(Debug)]
pub struct PrivateDir {
    path: PathBuf,
    counter: AtomicU64,
}

impl PrivateDir {
    pub fn create() -> std::io::Result<PrivateDir> {
        let base = std::env::var_os("XDG_RUNTIME_DIR")
            .map(PathBuf::from)
            .filter(|p| p.is_dir())
            .unwrap_or_else(std::env::temp_dir);
        remove_stale(&base);
        let nanos = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let path = base.join(format!("hbc-{}-{nanos:x}", std::process::id()));
        let mut b = std::fs::DirBuilder::new();
        #[cfg(unix)]
        std::os::unix::fs::DirBuilderExt::mode(&mut b, 0o700);
        // (Windows: %TEMP% is the user's own; the folder inherits its ACL.)
        #[cfg(not(unix))]
        let b = &mut b;
        b.create(&path)?;
        Ok(PrivateDir {
            path,
            counter: AtomicU64::new(0),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Copies `src` in under a name never used before in this process.
    fn copy_in(&self, src: &Path) -> std::io::Result<PathBuf> {
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        let name = src.file_name().map(|s| s.to_string_lossy().into_owned());
        let dst = self.path.join(format!(
            "{n}-{}",
            name.unwrap_or_else(|| "plugin.so".into())
        ));
        std::fs::copy(src, &dst)?;
        Ok(dst)
    }
}

/// Removes `hbc-<pid>-*` folders left by hbc processes that no longer exist (killed with
/// SIGKILL, or a crash), so copies do not pile up.
fn remove_stale(base: &Path) {
    let Ok(entries) = std::fs::read_dir(base) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name();
        let Some(rest) = name.to_str().and_then(|n| n.strip_prefix("hbc-")) else {
            continue;
        };
        let Some(pid) = rest.split('-').next().and_then(|p| p.parse::<u32>().ok()) else {
            continue;
        };
        #[cfg(unix)]
        {
            let own = e.metadata().map(|m| {
                use std::os::unix::fs::MetadataExt;
                // SAFETY: geteuid has no preconditions.
                m.uid() == unsafe { libc::geteuid() }
            });
            if pid != std::process::id()
                && own.unwrap_or(false)
                && !Path::new(&format!("/proc/{pid}")).exists()
            {
                let _ = std::fs::remove_dir_all(e.path());
            }
        }
        // Windows: a folder whose copies are still loaded by a live hbc cannot be
        // removed (loaded DLLs are locked), so trying is safe; the user's own %TEMP%.
        #[cfg(windows)]
        if pid != std::process::id() {
            let _ = std::fs::remove_dir_all(e.path());
        }
    }
}

impl Drop for PrivateDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// A library that passed every check and is open in this process: the plugins it
/// exports (one, or several for a library built with `export_plugins!`, API 1.1).
#[derive(Clone)]
pub struct Library {
    pub plugins: Vec<PluginMod_Ref>,
}

impl Library {
    /// The metadata of every plugin, in the library's order.
    pub fn infos(&self) -> Vec<Info> {
        self.plugins.iter().map(|m| info_of(*m)).collect()
    }

    /// The plugin named `name`.
    pub fn plugin(&self, name: &str) -> Option<PluginMod_Ref> {
        self.plugins
            .iter()
            .copied()
            .find(|m| info_of(*m).name == name)
    }
}

fn info_of(module: PluginMod_Ref) -> Info {
    Info::from((module.info())())
}

/// The structural check of this system's library format: ELF (`elf.rs`), PE on Windows
/// (`pe.rs`), Mach-O on macOS (`macho.rs`). `Ok(Err((reason, incomplete)))` for a file
/// that is not a complete library for this machine.
#[allow(clippy::type_complexity)] // one use, right below
fn structural_check(path: &Path) -> std::io::Result<Result<(), (String, bool)>> {
    #[cfg(windows)]
    let verdict = crate::pe::check_pe_file(path)?.map_err(|e| (e.to_string(), e.incomplete()));
    #[cfg(target_os = "macos")]
    let verdict =
        crate::macho::check_macho_file(path)?.map_err(|e| (e.to_string(), e.incomplete()));
    #[cfg(not(any(windows, target_os = "macos")))]
    let verdict = crate::elf::check_elf_file(path)?.map_err(|e| {
        let incomplete = matches!(
            e,
            crate::elf::ElfError::Truncated { .. } | crate::elf::ElfError::Empty
        );
        (e.to_string(), incomplete)
    });
    Ok(verdict)
}

/// Checks `path` without opening it: readable, a complete shared library for this machine.
pub fn preflight(path: &Path) -> Result<(), Rejection> {
    let verdict = structural_check(path).map_err(|e| {
        reject(
            format!("cannot read the file: {e}"),
            "check its permissions",
        )
    })?;
    verdict
        .map_err(|(reason, incomplete)| reject(reason, if incomplete { REPLACE } else { REMOVE }))
}

/// Opens a library that passed [`preflight`] and checks its root module: a single
/// plugin's `PluginMod` (API 1.0 and later), or else a `PluginList` (API 1.1). Either way
/// abi_stable checks the version and the layout; a library that is neither is explained
/// by the single-plugin error, the common case.
pub fn open(copy: &Path) -> Result<Library, Rejection> {
    let header = lib_header_from_path(copy).map_err(explain)?;
    let single = match header.init_root_module::<PluginMod_Ref>() {
        Ok(module) => {
            return Ok(Library {
                plugins: vec![module],
            })
        }
        Err(e) => e,
    };
    let list = header
        .init_root_module::<PluginList_Ref>()
        .map_err(|_| explain(single))?;
    let plugins: Vec<PluginMod_Ref> = (list.plugins())().into_iter().collect();
    if plugins.is_empty() {
        return Err(reject("it exports an empty list of plugins", REMOVE));
    }
    Ok(Library { plugins })
}

/// Everything before opening: copy in, structural check, and the probe in a child
/// process, which also gives the plugins' metadata (so an isolated plugin is never opened
/// in this process). Independent per file, so several run in parallel at start-up.
pub fn prepare(
    path: &Path,
    private: &PrivateDir,
    probe: bool,
) -> Result<(PathBuf, Option<Vec<Info>>), Rejection> {
    let copy = private.copy_in(path).map_err(|e| {
        reject(
            format!("cannot read the file: {e}"),
            "check its permissions",
        )
    })?;
    let outcome = preflight(&copy).and_then(|()| {
        if probe {
            probe_in_child(&copy).map(Some)
        } else {
            Ok(None)
        }
    });
    match outcome {
        Ok(info) => Ok((copy, info)),
        Err(e) => {
            let _ = std::fs::remove_file(&copy);
            Err(e)
        }
    }
}

/// Test-loads a library in a child `hbc plugin-worker --probe` process and returns the
/// metadata of its plugins; a crash there is reported instead of taking this process down.
pub fn probe_in_child(path: &Path) -> Result<Vec<Info>, Rejection> {
    let exe = std::env::current_exe().map_err(|e| {
        reject(
            format!("cannot find hbc's own executable to probe with: {e}"),
            "set plugin_probe: false",
        )
    })?;
    let mut child = Command::new(exe)
        .arg("plugin-worker")
        .arg("--probe")
        .arg(path)
        .env(crate::isolate::PARENT_ENV, std::process::id().to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        // A library's load-time chatter is not hbc's to log.
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| {
            retry_later(
                format!("cannot start a probe process: {e}"),
                "check that hbc can fork",
            )
        })?;
    let Some(stdout) = child.stdout.take() else {
        let _ = child.kill();
        let _ = child.wait();
        return Err(retry_later(
            "the probe process has no output pipe",
            "check hbc's open-file limit",
        ));
    };
    // Output is read while the child runs (a chatty library cannot fill the pipe and
    // stall), at most PROBE_OUTPUT bytes kept, on a thread, so the wait below is a plain
    // timeout, not polling. The child is reaped only through the shared `Child`, under
    // its lock, so a kill after the timeout can never reach a recycled pid.
    let child = std::sync::Arc::new(std::sync::Mutex::new(child));
    let (tx, rx) = std::sync::mpsc::channel();
    let waiter = child.clone();
    std::thread::Builder::new()
        .name("probe".into())
        .stack_size(128 * 1024)
        .spawn(move || {
            let _ = tx.send(read_probe(stdout, &waiter));
        })
        .map_err(|e| {
            retry_later(
                format!("cannot start a probe thread: {e}"),
                "check the process limits of hbc's user",
            )
        })?;
    let (stdout, status) = match rx.recv_timeout(Duration::from_secs(10)) {
        Ok(Ok(o)) => o,
        Ok(Err(e)) => {
            return Err(reject(
                format!("cannot read the probe's answer: {e}"),
                "retry",
            ))
        }
        Err(_) => {
            // std's `Child::kill` does nothing once the child was reaped.
            let _ = child.lock().map(|mut c| c.kill());
            return Err(reject(
                "the library did not finish loading within 10 s in a probe process",
                "check what its initialisation code waits for",
            ));
        }
    };
    let stdout = String::from_utf8_lossy(&stdout);
    match serde_json::from_str::<ProbeAnswer>(stdout.trim()) {
        Ok(ProbeAnswer::Ok(infos)) => Ok(infos),
        Ok(ProbeAnswer::Rejected { reason, remedy }) => Err(Rejection {
            reason,
            remedy: static_remedy(&remedy),
            retry: false,
        }),
        Err(_) => Err(reject(
            format!(
                "loading the library crashed a probe process ({})",
                describe_status(&status)
            ),
            "the library is broken or not built for this system; rebuild it",
        )),
    }
}

/// Most of a probe's output kept: its answer is one short JSON line.
const PROBE_OUTPUT: u64 = 64 * 1024;

/// Reads a probe's output (the first [`PROBE_OUTPUT`] bytes kept, the rest drained), then
/// reaps it.
fn read_probe(
    stdout: std::process::ChildStdout,
    child: &std::sync::Mutex<std::process::Child>,
) -> std::io::Result<(Vec<u8>, std::process::ExitStatus)> {
    use std::io::Read;
    let mut kept = Vec::new();
    let mut stdout = stdout;
    (&mut stdout).take(PROBE_OUTPUT).read_to_end(&mut kept)?;
    std::io::copy(&mut stdout, &mut std::io::sink())?;
    for round in 0u32.. {
        let status = child
            .lock()
            .map_err(|_| std::io::Error::other("probe bookkeeping failed"))?
            .try_wait()?;
        if let Some(status) = status {
            return Ok((kept, status));
        }
        // Output closed: the exit follows at once, unless the child is stuck in the
        // kernel, which is then looked at less often.
        std::thread::sleep(Duration::from_millis(if round < 100 { 2 } else { 100 }));
    }
    Err(std::io::Error::other("probe never ended"))
}

/// What `hbc plugin-worker --probe` prints.
#[derive(Debug, Serialize, Deserialize)]
pub enum ProbeAnswer {
    /// Every plugin the library exports.
    Ok(Vec<Info>),
    Rejected {
        reason: String,
        remedy: String,
    },
}

fn static_remedy(s: &str) -> &'static str {
    [REBUILD, REPLACE, REMOVE]
        .into_iter()
        .find(|r| *r == s)
        .unwrap_or(REBUILD)
}

/// "exit code 3" or "killed by signal 11 (SIGSEGV)".
pub fn describe_status(status: &std::process::ExitStatus) -> String {
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt;
        if let Some(sig) = status.signal() {
            let name = match sig {
                6 => " (SIGABRT)",
                7 => " (SIGBUS)",
                9 => " (SIGKILL)",
                11 => " (SIGSEGV)",
                15 => " (SIGTERM)",
                _ => "",
            };
            return format!("killed by signal {sig}{name}");
        }
    }
    match status.code() {
        Some(c) => format!("exit code {c}"),
        None => "ended".to_string(),
    }
}

/// Turns abi_stable's errors into one sentence (its layout errors run to 1000 lines).
fn explain(e: LibraryError) -> Rejection {
    match e {
        LibraryError::OpenError { err, .. } => reject(
            format!("the dynamic loader refused it: {}", clean(&err.to_string())),
            "check that its dependencies are installed (ldd) and it is built for this system",
        ),
        LibraryError::GetSymbolError { .. } => reject(
            "it is a shared library but not an hbc plugin (no hbc root module; plugins export one with hbc_plugin_api::export_plugin!)",
            REMOVE,
        ),
        LibraryError::IncompatibleVersionNumber {
            expected_version,
            actual_version,
            ..
        } => reject(
            format!(
                "it was built against plugin API {actual_version}, which this hbc (API {expected_version}) cannot load"
            ),
            REBUILD,
        ),
        LibraryError::ParseVersionError(v) => {
            reject(format!("its plugin API version is unreadable: {v}"), REBUILD)
        }
        LibraryError::AbiInstability(err) => {
            let text = err.to_string();
            let tail: Vec<&str> = text
                .lines()
                .map(str::trim)
                .filter(|l| l.starts_with("Error:") || l.contains("too many fields"))
                .take(2)
                .collect();
            reject(
                format!(
                    "its plugin interface layout does not match this hbc's ({})",
                    if tail.is_empty() { "layout differs".to_string() } else { clean(&tail.join(" ")) }
                ),
                REBUILD,
            )
        }
        LibraryError::InvalidAbiHeader(_) | LibraryError::InvalidCAbi { .. } => reject(
            "it was built with an incompatible abi_stable or Rust ABI",
            REBUILD,
        ),
        LibraryError::RootModule { err, .. } => reject(
            format!("its root module failed to initialise: {}", clean(&err.to_string())),
            REBUILD,
        ),
        LibraryError::Many(list) => match list.into_iter().next() {
            Some(first) => explain(first),
            None => reject("abi_stable reported an empty error list", REBUILD),
        },
    }
}

/// Removes NUL bytes and collapses whitespace in loader messages.
fn clean(s: &str) -> String {
    s.replace('\0', "")
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn candidate_names() {
        assert!(is_library_name(Path::new("/x/libhbc_cpu.so")));
        assert!(is_library_name(Path::new("a.dylib")));
        assert!(is_library_name(Path::new("a.dll")));
        assert!(!is_library_name(Path::new("a.so.1")));
        assert!(!is_library_name(Path::new("readme.txt")));
    }

    #[test]
    fn dirs_are_ordered_and_unique() {
        let d = plugin_dirs(
            &[PathBuf::from("/a"), PathBuf::from("/b")],
            Some("/b:/c"),
            &[PathBuf::from("/d"), PathBuf::from("/a")],
        );
        let want: Vec<PathBuf> = ["/usr/lib/hbc/plugins", "/a", "/b", "/c", "/d"]
            .iter()
            .map(PathBuf::from)
            .collect();
        assert_eq!(d, want);
    }

    #[test]
    fn locate_finds_a_bare_name_here_then_in_the_plugin_folders() {
        let here = tempfile::tempdir().expect("tempdir");
        let plugins = tempfile::tempdir().expect("tempdir");
        std::fs::write(plugins.path().join("libb.so"), b"x").expect("write");
        std::fs::write(here.path().join("liba.so"), b"x").expect("write");
        let dirs = [
            PathBuf::from("/nonexistent/hbc"),
            plugins.path().to_path_buf(),
        ];
        let found = locate(Path::new("liba.so"), here.path(), &dirs);
        assert_eq!(found, Ok(here.path().join("liba.so")));
        let found = locate(Path::new("libb.so"), here.path(), &dirs);
        assert_eq!(found, Ok(plugins.path().join("libb.so")));
        // An absolute path is taken as it is, whatever `cwd` is.
        let abs = plugins.path().join("libb.so");
        assert_eq!(locate(&abs, Path::new("/"), &[]), Ok(abs.clone()));
    }

    #[test]
    fn locate_names_every_folder_it_looked_in() {
        let here = tempfile::tempdir().expect("tempdir");
        let dirs = [
            PathBuf::from("/nonexistent/a"),
            PathBuf::from("/nonexistent/b"),
        ];
        let err = locate(Path::new("libx.so"), here.path(), &dirs).expect_err("missing");
        assert_eq!(
            err.to_string(),
            format!(
                "no such file: libx.so (looked in {}, /nonexistent/a, /nonexistent/b)",
                here.path().display()
            )
        );
        // A path with a folder is not searched for elsewhere.
        let err = locate(Path::new("sub/libx.so"), here.path(), &dirs).expect_err("missing");
        assert_eq!(err.looked_in, vec![here.path().join("sub")]);
    }

    #[test]
    fn private_dir_is_removed() {
        let p = PrivateDir::create().expect("create");
        let path = p.path().to_path_buf();
        assert!(path.is_dir());
        drop(p);
        assert!(!path.exists());
    }
}
