//! A file read again at every collect (a `/proc` file), kept open between reads.
//!
//! Opening it anew each time costs six system calls (open, statx, lseek, read, read,
//! close); reading the open file from its start costs two (a `pread` that gets the
//! text, one that finds its end). On the benchmark VM that is 5-20 us less per file and
//! collect (`/proc/net/dev` 27 -> 6 us), and a `/proc` file's text is made afresh by
//! every read from offset 0 (issue 20).

use std::fs::File;

use crate::host_path;

/// Longest text read from one file; a larger one is an error instead of unbounded
/// memory (the largest `/proc` files a plugin reads, `mountinfo` of a host with
/// thousands of mounts, are a few MB).
pub const MAX_KEPT_FILE_BYTES: usize = 64 << 20;

/// A file kept open and read from its start by each [`KeptFile::read_into`]: for files
/// changed in place (`/proc`, `/sys`). A file replaced by another (renamed over, deleted
/// and written anew) is not seen: the old one stays open; use [`crate::read_into`].
#[derive(Debug)]
pub struct KeptFile {
    /// An absolute path on the monitored host (see [`host_path`]).
    path: String,
    file: Option<File>,
    /// The length of the last read: the size of the first `pread` of the next.
    last_len: usize,
}

impl KeptFile {
    /// `path` is a path on the monitored host, such as `/proc/stat`; it is opened at the
    /// first read (under the host root, as [`crate::read_into`] does).
    pub fn new(path: &str) -> KeptFile {
        KeptFile {
            path: path.to_string(),
            file: None,
            last_len: 0,
        }
    }

    /// The file as it is open now: `None` before the first read and after a failed one.
    pub fn opened(&self) -> Option<&File> {
        self.file.as_ref()
    }

    /// The path as given to [`KeptFile::new`].
    pub fn path(&self) -> &str {
        &self.path
    }

    /// Replaces `buffer` with the whole file as it is now. A failed read closes the file
    /// and tries once more with a new descriptor;
    /// the error names the plugin and the file: `cpu plugin: cannot read /proc/stat: ...`.
    pub fn read_bytes_into(&mut self, plugin: &str, buffer: &mut Vec<u8>) -> Result<(), String> {
        let path = host_path(&self.path);
        let mut last = None;
        for _ in 0..2 {
            let file = match self.file.take() {
                Some(f) => f,
                None => match File::open(&*path) {
                    Ok(f) => f,
                    Err(e) => {
                        last = Some(e);
                        break;
                    }
                },
            };
            match read_from_start(&file, buffer, self.last_len) {
                Ok(()) => {
                    self.last_len = buffer.len();
                    self.file = Some(file);
                    return Ok(());
                }
                Err(e) => last = Some(e),
            }
        }
        buffer.clear();
        let e = last.map_or_else(|| "unknown error".to_string(), |e| e.to_string());
        Err(format!("{plugin} plugin: cannot read {path}: {e}"))
    }

    /// [`KeptFile::read_bytes_into`] for text (reusing the string's memory); text that is
    /// not UTF-8 is an error and leaves `buffer` empty.
    pub fn read_into(&mut self, plugin: &str, buffer: &mut String) -> Result<(), String> {
        let mut bytes = std::mem::take(buffer).into_bytes();
        self.read_bytes_into(plugin, &mut bytes)?;
        *buffer = String::from_utf8(bytes).map_err(|_| {
            format!(
                "{plugin} plugin: cannot read {}: it is not UTF-8 text",
                host_path(&self.path)
            )
        })?;
        Ok(())
    }
}

/// What a read past the expected end asks for: enough to find the end in one more call.
const PROBE: usize = 512;

/// Reads all of `file` from offset 0 into `bytes`, up to [`MAX_KEPT_FILE_BYTES`]. The
/// first read asks for `expected` bytes and a little more, the next ones (the file grew)
/// for as much again as was read: each read's room is zero-filled first, so it stays
/// about the size of the file.
fn read_from_start(file: &File, bytes: &mut Vec<u8>, expected: usize) -> std::io::Result<()> {
    bytes.clear();
    #[cfg(not(unix))]
    {
        use std::io::Seek;
        let mut f = file;
        f.seek(std::io::SeekFrom::Start(0))?;
    }
    let mut room = expected.saturating_add(PROBE);
    loop {
        let len = bytes.len();
        if len >= MAX_KEPT_FILE_BYTES {
            return Err(std::io::Error::other(format!(
                "larger than {MAX_KEPT_FILE_BYTES} bytes"
            )));
        }
        let asked = room.min(MAX_KEPT_FILE_BYTES - len);
        bytes.resize(len + asked, 0);
        match read_at(file, &mut bytes[len..], len as u64) {
            Ok(0) => {
                bytes.truncate(len);
                return Ok(());
            }
            Ok(n) => {
                bytes.truncate(len + n);
                // A short read is usually the whole file: probe for the end. A full one
                // means more to come.
                room = if n < asked { PROBE } else { bytes.len() };
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => bytes.truncate(len),
            Err(e) => {
                bytes.truncate(len);
                return Err(e);
            }
        }
    }
}

#[cfg(unix)]
fn read_at(file: &File, buf: &mut [u8], offset: u64) -> std::io::Result<usize> {
    std::os::unix::fs::FileExt::read_at(file, buf, offset)
}

/// Elsewhere the file was rewound once and is read in order.
#[cfg(not(unix))]
fn read_at(file: &File, buf: &mut [u8], _offset: u64) -> std::io::Result<usize> {
    use std::io::Read;
    let mut f = file;
    f.read(buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(kept: &mut KeptFile) -> Result<String, String> {
        let mut buffer = String::from("old text");
        kept.read_into("test", &mut buffer).map(|()| buffer)
    }

    #[test]
    fn each_read_sees_the_file_as_it_is_now() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("file");
        std::fs::write(&path, "first text\n").expect("write");
        let path = path.to_str().expect("UTF-8 path");

        let mut kept = KeptFile::new(path);
        assert_eq!(kept.path(), path);
        assert_eq!(text(&mut kept).as_deref(), Ok("first text\n"));
        assert_eq!(text(&mut kept).as_deref(), Ok("first text\n"), "read again");
        // Rewritten in place (the same file, as /proc's are): the new text, shorter.
        std::fs::write(path, "second\n").expect("rewrite");
        assert_eq!(text(&mut kept).as_deref(), Ok("second\n"));
        // Longer than any buffer so far: grows.
        let long = "x".repeat(20_000);
        std::fs::write(path, &long).expect("rewrite");
        assert_eq!(text(&mut kept), Ok(long));
    }

    #[test]
    fn a_proc_file_is_made_afresh_by_each_read() {
        let mut kept = KeptFile::new("/proc/self/stat");
        let Ok(first) = text(&mut kept) else {
            return; // no /proc here (not Linux)
        };
        let second = text(&mut kept).expect("read again");
        // The same process, read twice: its pid agrees, and the text is whole.
        assert_eq!(first.split(' ').next(), second.split(' ').next());
        assert!(second.ends_with('\n'), "{second}");
    }

    #[test]
    fn errors_name_the_plugin_and_the_file() {
        let mut kept = KeptFile::new("/nonexistent/diskstats");
        let mut buffer = String::from("stale");
        let err = kept.read_into("disk", &mut buffer).expect_err("missing");
        assert!(
            err.starts_with("disk plugin: cannot read /nonexistent/diskstats: "),
            "{err}"
        );
        assert!(buffer.is_empty());
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("bytes");
        std::fs::write(&path, b"\xff\xfe").expect("write");
        let mut kept = KeptFile::new(path.to_str().expect("UTF-8 path"));
        let mut bytes = Vec::new();
        assert_eq!(kept.read_bytes_into("fs", &mut bytes), Ok(()));
        assert_eq!(bytes, b"\xff\xfe");
        let err = text(&mut kept).expect_err("not UTF-8");
        assert!(err.ends_with("it is not UTF-8 text"), "{err}");
    }
}
