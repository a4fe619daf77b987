//! The log file, reopened on SIGHUP so logrotate can move it away.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

/// An append-mode log file shared by the logger and the reopen handler.
#[derive(Clone)]
pub struct LogFile {
    file: Arc<Mutex<File>>,
    path: PathBuf,
}

fn open(path: &Path) -> std::io::Result<File> {
    OpenOptions::new().create(true).append(true).open(path)
}

impl LogFile {
    pub fn open(path: &Path) -> std::io::Result<LogFile> {
        Ok(LogFile {
            file: Arc::new(Mutex::new(open(path)?)),
            path: path.to_path_buf(),
        })
    }

    /// Opens the path again (after logrotate moved the old file); on failure the old
    /// file stays in use.
    pub fn reopen(&self) -> std::io::Result<()> {
        let new = open(&self.path)?;
        *self.lock() = new;
        Ok(())
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn lock(&self) -> MutexGuard<'_, File> {
        self.file.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// One log record's access to the file.
pub struct Guard<'a>(MutexGuard<'a, File>);

impl Write for Guard<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.write(buf)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.0.flush()
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for LogFile {
    type Writer = Guard<'a>;
    fn make_writer(&'a self) -> Guard<'a> {
        Guard(self.lock())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reopen_follows_a_rotated_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("hbd.log");
        let log = LogFile::open(&path).expect("open");
        log.lock().write_all(b"one\n").expect("write");
        std::fs::rename(&path, dir.path().join("hbd.log.1")).expect("rotate");
        log.reopen().expect("reopen");
        log.lock().write_all(b"two\n").expect("write");
        assert_eq!(std::fs::read_to_string(&path).expect("new"), "two\n");
        assert_eq!(
            std::fs::read_to_string(dir.path().join("hbd.log.1")).expect("old"),
            "one\n"
        );
    }
}
