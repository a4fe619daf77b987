//! Gives back resident pages of code that was mapped but never run (Linux).
//!
//! A fault on a file mapping maps up to 64 KiB around it ("fault-around") from whatever of
//! the file is in the page cache, and the private copy of a plugin is entirely in the cache
//! right after it was written, so each library ended up almost wholly resident (issue 20:
//! 0.5-0.6 MB per plugin, 2.1 MB of hbc's own 2.2 MB file). After loading, [`trim`] drops
//! the pages of the read-only mappings of hbc and its plugin copies that were never written
//! (`Anonymous: 0` in smaps: RELRO data that the loader relocated is left alone, dropping
//! it would lose the relocations), marks them `MADV_RANDOM` (no read-ahead), and evicts the
//! files from the page cache; what runs afterwards faults back in page by page.

use std::path::Path;

/// Mappings of this process whose file is `hbc` itself or lies under `dir`: read-only,
/// never written, then dropped as the module says. Errors only cost memory: ignored.
pub fn trim(dir: &Path) {
    #[cfg(target_os = "linux")]
    linux::trim(dir);
    #[cfg(not(target_os = "linux"))]
    let _ = dir;
}

#[cfg(target_os = "linux")]
mod linux {
    use std::collections::BTreeSet;
    use std::os::unix::io::AsRawFd;
    use std::path::{Path, PathBuf};

    /// One mapping from /proc/self/smaps: range, permissions, file, anonymous KB.
    struct Mapping {
        start: usize,
        end: usize,
        perms: String,
        file: PathBuf,
        anonymous_kb: u64,
    }

    /// Parses /proc/self/smaps text (pure, tested on captured text).
    fn parse_smaps(text: &str) -> Vec<Mapping> {
        let mut out: Vec<Mapping> = Vec::new();
        for line in text.lines() {
            let mut f = line.split_whitespace();
            let first = f.next().unwrap_or("");
            if let Some((a, b)) = first.split_once('-') {
                if let (Ok(start), Ok(end)) =
                    (usize::from_str_radix(a, 16), usize::from_str_radix(b, 16))
                {
                    let perms = f.next().unwrap_or("").to_string();
                    let file = f.nth(3).map(PathBuf::from).unwrap_or_default();
                    out.push(Mapping {
                        start,
                        end,
                        perms,
                        file,
                        anonymous_kb: 0,
                    });
                    continue;
                }
            }
            if first == "Anonymous:" {
                if let (Some(m), Some(kb)) = (out.last_mut(), f.next()) {
                    m.anonymous_kb = kb.parse().unwrap_or(1);
                }
            }
        }
        out
    }

    pub fn trim(dir: &Path) {
        let Ok(text) = std::fs::read_to_string("/proc/self/smaps") else {
            return;
        };
        let exe = std::fs::read_link("/proc/self/exe").ok();
        let mut files = BTreeSet::new();
        for m in parse_smaps(&text) {
            let ours = m.file.starts_with(dir) || exe.as_deref() == Some(m.file.as_path());
            if !ours || m.perms.contains('w') || m.anonymous_kb != 0 {
                continue;
            }
            // SAFETY: the range is a whole file mapping of this process that was never
            // written (no anonymous pages): dropping its pages loses nothing, they fault
            // back in from the file.
            unsafe {
                let p = m.start as *mut libc::c_void;
                libc::madvise(p, m.end - m.start, libc::MADV_RANDOM);
                libc::madvise(p, m.end - m.start, libc::MADV_DONTNEED);
            }
            files.insert(m.file);
        }
        for f in files {
            if let Ok(file) = std::fs::File::open(&f) {
                // Written pages of a fresh copy are dirty: write them first, or the kernel
                // keeps them cached.
                if f.starts_with(dir) {
                    let _ = std::fs::OpenOptions::new()
                        .write(true)
                        .open(&f)
                        .and_then(|w| w.sync_data());
                }
                // SAFETY: advice on an open descriptor; no memory is touched.
                unsafe {
                    libc::posix_fadvise(file.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED);
                }
            }
        }
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn smaps_mappings_with_their_anonymous_pages() {
            let text = "\
55d0c0a00000-55d0c0a5c000 r--p 00000000 fd:00 123 /usr/bin/hbc
Rss:                 368 kB
Anonymous:             0 kB
55d0c0a5c000-55d0c0c00000 r-xp 0005c000 fd:00 123 /usr/bin/hbc
Anonymous:             0 kB
55d0c0d00000-55d0c0d10000 r--p 00200000 fd:00 123 /usr/bin/hbc
Anonymous:            64 kB
7f0000000000-7f0000021000 rw-p 00000000 00:00 0
Anonymous:           132 kB
";
            let m = parse_smaps(text);
            assert_eq!(m.len(), 4);
            assert_eq!(m[1].perms, "r-xp");
            assert_eq!(m[1].file, PathBuf::from("/usr/bin/hbc"));
            assert_eq!(m[1].end - m[1].start, 0x1a4000);
            assert_eq!(m[2].anonymous_kb, 64);
            assert_eq!(m[3].file, PathBuf::new());
        }
    }
}
