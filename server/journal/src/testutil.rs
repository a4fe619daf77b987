//! Helpers shared by the journal tests.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use super::{format, FsyncPolicy, Journal, JournalConfig, ReplayReport};
use hbd_core::event::{Event, EventKind};

/// A `host_up` event with a timestamp derived from the id.
pub fn ev(id: u64, host: &str) -> Event {
    ev_at(id, host, EventKind::HostUp, 1_700_000_000_000 + id * 1000)
}

pub fn ev_at(id: u64, host: &str, kind: EventKind, ts_ms: u64) -> Event {
    Event {
        id,
        ts_ms,
        host: host.to_string(),
        kind,
        key: None,
        from: Some("DOWN".to_string()),
        to: Some("UP".to_string()),
        message: format!("event number {id}"),
    }
}

pub fn config(dir: &Path) -> JournalConfig {
    JournalConfig {
        fsync: FsyncPolicy::Never,
        ..JournalConfig::new(dir)
    }
}

/// Opens the journal and collects what it replays.
pub fn open(cfg: JournalConfig) -> (Journal, ReplayReport, Vec<Event>) {
    let mut seen = Vec::new();
    let (journal, report) = Journal::open(cfg, |e| seen.push(e)).expect("open journal");
    (journal, report, seen)
}

/// Opens the journal read-only-ish (replay, then drop) and returns what it replays.
pub fn replay(dir: &Path) -> (ReplayReport, Vec<Event>) {
    let (_journal, report, seen) = open(config(dir));
    (report, seen)
}

/// The segment files in `dir`, oldest first.
pub fn segments(dir: &Path) -> Vec<PathBuf> {
    format::list_segments(dir)
        .expect("list segments")
        .into_iter()
        .map(|(_, p)| p)
        .collect()
}

/// How long tests wait for the writer thread before failing.
pub const WAIT: Duration = Duration::from_secs(5);

/// A tmpfs mounted on a temporary directory, unmounted on drop (also when a test fails).
pub struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    /// None (after printing why) when not root, except under CI, where it fails.
    pub fn mount(size: &str) -> Option<Tmpfs> {
        // SAFETY: geteuid has no preconditions and cannot fail.
        if unsafe { libc::geteuid() } != 0 {
            let why = "this test needs root to mount a tmpfs (a real full/read-only disk)";
            assert!(std::env::var("CI").as_deref() != Ok("true"), "{why}");
            eprintln!("note: skipped: {why}");
            return None;
        }
        let dir = tempfile::tempdir().expect("tempdir");
        let opts = format!("size={size},mode=0755");
        run(
            "mount",
            &["-t", "tmpfs", "-o", &opts, "tmpfs", path_str(dir.path())],
        );
        Some(Tmpfs { dir })
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// `mount -o remount,<opts>`, retried while the kernel says busy (a retry of the
    /// writer may hold the file open for a moment).
    pub fn remount(&self, opts: &str) {
        let opts = format!("remount,{opts}");
        let deadline = Instant::now() + WAIT;
        loop {
            let out = Command::new("mount")
                .args(["-o", &opts, path_str(self.path())])
                .output()
                .expect("run mount");
            if out.status.success() {
                return;
            }
            let err = String::from_utf8_lossy(&out.stderr);
            assert!(
                err.contains("busy") && Instant::now() < deadline,
                "mount -o {opts} failed: {err}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Fills the file system with `filler` until it is full.
    pub fn fill(&self) -> PathBuf {
        use std::io::Write;
        let path = self.path().join("filler");
        let mut f = std::fs::File::create(&path).expect("create filler");
        let chunk = [0xaa_u8; 4096];
        loop {
            match f.write(&chunk) {
                Ok(n) if n > 0 => {}
                Ok(_) => break,
                Err(e) => {
                    assert_eq!(e.raw_os_error(), Some(libc::ENOSPC), "{e}");
                    break;
                }
            }
        }
        path
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let path = path_str(self.path());
        let ok = Command::new("umount")
            .arg(path)
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            let _ = Command::new("umount").args(["-l", path]).status();
        }
    }
}

fn path_str(p: &Path) -> &str {
    p.to_str().expect("temp paths are UTF-8")
}

fn run(cmd: &str, args: &[&str]) {
    let out = Command::new(cmd).args(args).output().expect("run command");
    assert!(
        out.status.success(),
        "{cmd} {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}
