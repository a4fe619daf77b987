//! One owner per data folder: hbd takes an exclusive `flock` on `<data_dir>/hbd.lock`
//! for as long as it runs, so a second hbd on the same folder refuses to start (naming
//! the pid that holds it) instead of interleaving its journal records with the first's.
//! The kernel drops the lock when the process ends, however it ends, so a crash never
//! leaves a stale lock. Also: the folder's mode (0750) and whether the last run ended
//! cleanly (a marker written after the final snapshot), which replay protection needs.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// The lock file inside the data folder; it holds the owner's pid (for messages only).
pub const LOCK_FILE: &str = "hbd.lock";
/// Written at the end of a clean stop, removed at start: its absence means the last run
/// was killed (or this is the first one).
pub const CLEAN_FILE: &str = "clean-shutdown";
/// Mode of the data folder: the service's user and group only.
pub const DIR_MODE: u32 = 0o750;

/// Why the data folder cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error("the data folder {dir} is in use by another hbd (pid {pid}); stop it first or use another data_dir")]
    Held { dir: PathBuf, pid: String },
    #[error("cannot lock the data folder {dir} ({file}): {source}")]
    Io {
        dir: PathBuf,
        file: PathBuf,
        source: std::io::Error,
    },
}

/// The held lock; released when dropped (or when the process ends).
#[derive(Debug)]
pub struct DataLock {
    _file: File,
    dir: PathBuf,
}

impl DataLock {
    /// Creates the folder (mode [`DIR_MODE`]) if needed and locks it, or says who holds it.
    pub fn acquire(dir: &Path) -> Result<DataLock, LockError> {
        let path = dir.join(LOCK_FILE);
        let io = |source| LockError::Io {
            dir: dir.to_path_buf(),
            file: path.clone(),
            source,
        };
        prepare_dir(dir).map_err(io)?;
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o640)
            .open(&path)
            .map_err(io)?;
        // SAFETY: flock on a file descriptor we own.
        if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
            let e = std::io::Error::last_os_error();
            if e.raw_os_error() == Some(libc::EWOULDBLOCK) {
                let mut pid = String::new();
                let _ = file.read_to_string(&mut pid);
                let pid = pid.trim().chars().take(20).collect::<String>();
                return Err(LockError::Held {
                    dir: dir.to_path_buf(),
                    pid: if pid.is_empty() {
                        "unknown".into()
                    } else {
                        pid
                    },
                });
            }
            return Err(io(e));
        }
        file.set_len(0).map_err(io)?;
        file.rewind().map_err(io)?;
        writeln!(file, "{}", std::process::id()).map_err(io)?;
        Ok(DataLock {
            _file: file,
            dir: dir.to_path_buf(),
        })
    }

    /// Whether the previous run stopped cleanly; forgets it, so that a crash of this run
    /// is seen by the next.
    pub fn take_clean_marker(&self) -> bool {
        let p = self.dir.join(CLEAN_FILE);
        let clean = p.exists();
        if clean {
            if let Err(e) = std::fs::remove_file(&p) {
                tracing::warn!("cannot remove {}: {e}", p.display());
            }
        }
        clean
    }

    /// Records a clean stop (after the final snapshot and journal flush).
    pub fn mark_clean(&self) {
        let p = self.dir.join(CLEAN_FILE);
        if let Err(e) = std::fs::write(&p, b"") {
            tracing::warn!("cannot write {}: {e}", p.display());
        }
    }
}

/// Creates the data folder and sets its mode to [`DIR_MODE`] whatever the umask (files
/// get 0640 from the umask the `hbd` binary sets, see `main.rs`).
pub fn prepare_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let mode = std::fs::metadata(dir)?.permissions().mode() & 0o7777;
    if mode != DIR_MODE {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(DIR_MODE))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_lock_names_the_owner() {
        let dir = tempfile::tempdir().expect("tmp");
        let d = dir.path().join("data");
        let first = DataLock::acquire(&d).expect("first");
        let e = DataLock::acquire(&d).expect_err("second");
        let msg = e.to_string();
        assert!(
            msg.contains(&format!("pid {}", std::process::id())),
            "{msg}"
        );
        let mode = std::fs::metadata(&d).expect("meta").permissions().mode() & 0o777;
        assert_eq!(mode, 0o750);
        drop(first);
        DataLock::acquire(&d).expect("free again");
    }

    #[test]
    fn clean_marker_is_taken_once() {
        let dir = tempfile::tempdir().expect("tmp");
        let lock = DataLock::acquire(dir.path()).expect("lock");
        assert!(!lock.take_clean_marker());
        lock.mark_clean();
        assert!(lock.take_clean_marker());
        assert!(!lock.take_clean_marker());
    }
}
