//! Gives back resident pages of code that was mapped but never run (Linux).
//!
//! A fault on a file mapping maps up to 64 KiB around it ("fault-around") from whatever of
//! the file is in the page cache, or the whole large folio the page is part of; and since
//! Linux 6.16 a fault in an executable mapping reads ahead up to the end of the mapping
//! (the device's `read_ahead_kb`, 8 MiB on the benchmark VM), whatever `MADV_RANDOM` says.
//! Hot code is spread over the whole text, so hbc's 1.9 MB of text stayed 1.1 MB
//! resident and each plugin copy almost wholly resident (issue 20).
//!
//! After loading, [`trim`] takes the read-only mappings of hbc and its plugin copies that
//! were never written (`Anonymous: 0` in smaps: RELRO data that the loader relocated is
//! left alone, dropping it would lose the relocations), splits them into one mapping per
//! page (every other page gets `MADV_NOHUGEPAGE`, so neighbours differ and the kernel
//! cannot merge them), drops their pages and evicts the files from the page cache. Both
//! fault-around and read-ahead stop at the end of a mapping, so what runs afterwards
//! faults back in page by page: only the pages that run stay resident. The price is one
//! kernel mapping (about 200 bytes) per page split, at most [`MAX_SPLIT_PAGES`].

use std::path::Path;

/// Most pages in mappings of their own, over all files and trims: 16 MiB of code, as many
/// kernel mappings (under 1 MB of kernel memory; the default `vm.max_map_count` is
/// 65,530). Pages past it are dropped without being split (they may come back 64 KiB at a
/// time). hbc and the bundled plugins have about 1,000.
pub const MAX_SPLIT_PAGES: usize = 4096;

/// Mappings of this process whose file is `hbc` itself or lies under `dir`: read-only,
/// never written, then split and dropped as the module says. Errors only cost memory:
/// ignored.
pub fn trim(dir: &Path) {
    #[cfg(target_os = "linux")]
    linux::trim(dir);
    #[cfg(not(target_os = "linux"))]
    let _ = dir;
}

#[cfg(target_os = "linux")]
mod linux {
    use std::collections::BTreeMap;
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

    /// The pages of `ranges` (start, length) to advise `MADV_NOHUGEPAGE`, as (start,
    /// length): every page whose number is odd, so that no two neighbouring pages have the
    /// same flags, while the budget of `max_pages` pages lasts (pure, tested). Every page
    /// of `ranges` counts, split before or not, so the mappings never exceed the budget;
    /// the parity comes from the address, so splitting again what is split changes
    /// nothing.
    fn split_plan(
        ranges: &[(usize, usize)],
        page: usize,
        max_pages: &mut usize,
    ) -> Vec<(usize, usize)> {
        let mut out = Vec::new();
        for &(start, len) in ranges {
            let pages = len / page;
            if pages > *max_pages {
                continue;
            }
            *max_pages -= pages;
            if pages < 2 {
                continue; // a mapping of its own already
            }
            let first = start / page;
            out.extend(
                (first..first + pages)
                    .filter(|p| p % 2 == 1)
                    .map(|p| (p * page, page)),
            );
        }
        out
    }

    pub fn trim(dir: &Path) {
        let Ok(text) = std::fs::read_to_string("/proc/self/smaps") else {
            return;
        };
        let exe = std::fs::read_link("/proc/self/exe").ok();
        let mut files: BTreeMap<PathBuf, Vec<(usize, usize)>> = BTreeMap::new();
        for m in parse_smaps(&text) {
            let ours = m.file.starts_with(dir) || exe.as_deref() == Some(m.file.as_path());
            if !ours || m.perms.contains('w') || m.anonymous_kb != 0 {
                continue;
            }
            files
                .entry(m.file)
                .or_default()
                .push((m.start, m.end - m.start));
        }
        // SAFETY: sysconf reads a constant of the system.
        let page = usize::try_from(unsafe { libc::sysconf(libc::_SC_PAGESIZE) }).unwrap_or(0);
        if page == 0 {
            return;
        }
        let mut budget = super::MAX_SPLIT_PAGES;
        for (f, ranges) in files {
            // Written pages of a fresh copy are dirty: write them first, or the kernel
            // keeps them cached.
            if f.starts_with(dir) {
                let _ = std::fs::OpenOptions::new()
                    .write(true)
                    .open(&f)
                    .and_then(|w| w.sync_data());
            }
            let Ok(file) = std::fs::File::open(&f) else {
                continue;
            };
            // Unmapping and evicting follow each other with nothing in between: a page
            // cache folio that is mapped again before the eviction stays, whole. The
            // executable's folios are large (128 KiB, from the read-ahead at exec), and
            // each one the code between the two touches stays resident (issue 20: six
            // of them, 0.8 MB of hbc's 1.1 MB, when files were opened in between).
            // SAFETY: each range is a whole file mapping of this process that was never
            // written (no anonymous pages): advice changes no byte of it, and dropping its
            // pages loses nothing, they fault back in from the file.
            unsafe {
                for &(start, len) in &ranges {
                    libc::madvise(start as *mut libc::c_void, len, libc::MADV_RANDOM);
                }
                for (start, len) in split_plan(&ranges, page, &mut budget) {
                    libc::madvise(start as *mut libc::c_void, len, libc::MADV_NOHUGEPAGE);
                }
                for &(start, len) in &ranges {
                    libc::madvise(start as *mut libc::c_void, len, libc::MADV_DONTNEED);
                }
            }
            // SAFETY: advice on an open descriptor; no memory is touched.
            unsafe {
                libc::posix_fadvise(file.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED);
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

        #[test]
        fn every_other_page_is_split_off_within_the_budget() {
            let page = 0x1000;
            let ranges = [(0x10000, 4 * page), (0x20000, page), (0x31000, 3 * page)];
            let mut budget = 100;
            assert_eq!(
                split_plan(&ranges, page, &mut budget),
                [
                    (0x11000, page),
                    (0x13000, page),
                    (0x31000, page),
                    (0x33000, page)
                ],
                "odd pages; a one-page mapping needs nothing"
            );
            assert_eq!(budget, 92);
            // Split again (each page its own mapping now): no page changes its advice,
            // and each still counts.
            let split: Vec<(usize, usize)> = (0x10..0x14).map(|p| (p * page, page)).collect();
            assert_eq!(split_plan(&split, page, &mut budget), []);
            assert_eq!(budget, 88);
            let mut small = 6;
            assert_eq!(
                split_plan(&ranges, page, &mut small),
                [(0x11000, page), (0x13000, page)],
                "a mapping past the budget is left whole"
            );
            assert_eq!(small, 1);
        }
    }
}
