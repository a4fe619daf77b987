//! Structural checks of a shared library before it is handed to the dynamic loader.
//!
//! `dlopen` maps a file and trusts its headers: a library cut short by an interrupted copy
//! makes the process die of SIGBUS inside the loader. These pure checks catch that (and
//! files that are not libraries at all, or are for another architecture) and say so.

/// Why a file is not a loadable shared library for this machine.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ElfError {
    #[error("the file is empty")]
    Empty,
    #[error("the file is not a shared library (it has no ELF header)")]
    NotElf,
    #[error("the file is an ELF {0}, not a shared library")]
    NotShared(&'static str),
    #[error("the library is built for another machine type (ELF machine {found}, this machine needs {want})")]
    WrongMachine { found: u16, want: u16 },
    #[error("the library is {0}-bit but this hbc is {1}-bit")]
    WrongClass(u8, u8),
    #[error("the library is truncated: its {what} extends to byte {end}, but the file has only {len} bytes (an interrupted copy?)")]
    Truncated {
        what: &'static str,
        end: u64,
        len: u64,
    },
}

#[cfg(target_arch = "x86_64")]
const MACHINE: u16 = 62;
#[cfg(target_arch = "aarch64")]
const MACHINE: u16 = 183;
#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
const MACHINE: u16 = 0;

fn u16le(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(b.get(at..at + 2)?.try_into().ok()?))
}
fn u32le(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?))
}
fn u64le(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(b.get(at..at + 8)?.try_into().ok()?))
}

/// Checks the file at `path` with [`check_elf`], reading only its headers (a plugin is
/// hundreds of kilobytes; reading it whole would only grow hbc's heap).
pub fn check_elf_file(path: &std::path::Path) -> std::io::Result<Result<(), ElfError>> {
    use std::io::Read;
    let mut f = std::fs::File::open(path)?;
    let len = f.metadata()?.len();
    let mut head = vec![0u8; 64];
    let n = read_up_to(&mut f, &mut head)?;
    head.truncate(n);
    if n == 64 && head[0..4] == *b"\x7fELF" {
        // Read on through the program header table (usually right after the header).
        let phoff = u64le(&head, 32).unwrap_or(0);
        let ph_end = phoff
            .saturating_add(
                u64::from(u16le(&head, 54).unwrap_or(0)) * u64::from(u16le(&head, 56).unwrap_or(0)),
            )
            .min(len)
            .min(1 << 20);
        if ph_end > 64 {
            let mut rest = Vec::with_capacity((ph_end - 64) as usize);
            f.by_ref().take(ph_end - 64).read_to_end(&mut rest)?;
            head.extend_from_slice(&rest);
        }
    }
    Ok(check_elf(&head, len))
}

fn read_up_to(f: &mut std::fs::File, buf: &mut [u8]) -> std::io::Result<usize> {
    use std::io::Read;
    let mut n = 0;
    while n < buf.len() {
        match f.read(&mut buf[n..])? {
            0 => break,
            k => n += k,
        }
    }
    Ok(n)
}

/// Checks a little-endian ELF64 shared object for this machine: header, program headers,
/// every segment's file range, and the section header table all lie inside the file.
/// `bytes` is the start of the file (at least through the program header table) and
/// `file_len` its full length.
pub fn check_elf(bytes: &[u8], file_len: u64) -> Result<(), ElfError> {
    if bytes.is_empty() || file_len == 0 {
        return Err(ElfError::Empty);
    }
    if bytes.len() < 64 || bytes[0..4] != *b"\x7fELF" {
        return Err(ElfError::NotElf);
    }
    let len = file_len;
    let truncated = |what, end| ElfError::Truncated { what, end, len };
    let class = bytes[4];
    let want_class = if cfg!(target_pointer_width = "64") {
        2
    } else {
        1
    };
    if class != want_class || bytes[5] != 1 {
        return Err(ElfError::WrongClass(class * 32, want_class * 32));
    }
    let e_type = u16le(bytes, 16).ok_or(ElfError::NotElf)?;
    match e_type {
        3 => {}
        1 => return Err(ElfError::NotShared("object file (.o)")),
        2 => return Err(ElfError::NotShared("executable")),
        4 => return Err(ElfError::NotShared("core dump")),
        _ => return Err(ElfError::NotShared("file of unknown type")),
    }
    let machine = u16le(bytes, 18).ok_or(ElfError::NotElf)?;
    if MACHINE != 0 && machine != MACHINE {
        return Err(ElfError::WrongMachine {
            found: machine,
            want: MACHINE,
        });
    }
    let phoff = u64le(bytes, 32).ok_or(ElfError::NotElf)?;
    let shoff = u64le(bytes, 40).ok_or(ElfError::NotElf)?;
    let phentsize = u64::from(u16le(bytes, 54).ok_or(ElfError::NotElf)?);
    let phnum = u64::from(u16le(bytes, 56).ok_or(ElfError::NotElf)?);
    let shentsize = u64::from(u16le(bytes, 58).ok_or(ElfError::NotElf)?);
    let shnum = u64::from(u16le(bytes, 60).ok_or(ElfError::NotElf)?);
    let ph_end = phoff.saturating_add(phentsize.saturating_mul(phnum));
    if ph_end > len {
        return Err(truncated("program header table", ph_end));
    }
    for i in 0..phnum {
        let at = (phoff + i * phentsize) as usize;
        let p_type = u32le(bytes, at).ok_or(truncated("program header", ph_end))?;
        // (`bytes` holds the whole table when ph_end <= len, checked above.)
        let p_offset = u64le(bytes, at + 8).ok_or(truncated("program header", ph_end))?;
        let p_filesz = u64le(bytes, at + 32).ok_or(truncated("program header", ph_end))?;
        // PT_LOAD and PT_DYNAMIC are mapped and read by the loader.
        if p_type == 1 || p_type == 2 {
            let end = p_offset.saturating_add(p_filesz);
            if end > len {
                return Err(truncated("loadable segment", end));
            }
        }
    }
    if shoff != 0 {
        let sh_end = shoff.saturating_add(shentsize.saturating_mul(shnum));
        if sh_end > len {
            return Err(truncated("section header table", sh_end));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn own_libc() -> Option<Vec<u8>> {
        for p in [
            "/lib/x86_64-linux-gnu/libc.so.6",
            "/usr/lib/x86_64-linux-gnu/libc.so.6",
            "/lib/aarch64-linux-gnu/libc.so.6",
        ] {
            if let Ok(b) = std::fs::read(p) {
                return Some(b);
            }
        }
        None
    }

    #[test]
    fn real_library_passes_and_every_truncation_fails() {
        let Some(lib) = own_libc() else {
            panic!("no libc.so.6 found to test with")
        };
        assert_eq!(check_elf(&lib, lib.len() as u64), Ok(()));
        for cut in [lib.len() / 2, lib.len() - 1, 100, 63] {
            assert!(
                check_elf(&lib[..cut], cut as u64).is_err(),
                "cut at {cut} accepted"
            );
        }
    }

    #[test]
    fn reading_only_the_headers_gives_the_same_verdicts() {
        let Some(lib) = own_libc() else {
            panic!("no libc.so.6 found to test with")
        };
        let dir = tempfile::tempdir().expect("tempdir");
        let whole = dir.path().join("whole.so");
        std::fs::write(&whole, &lib).expect("write");
        assert_eq!(check_elf_file(&whole).expect("read"), Ok(()));
        let cut = dir.path().join("cut.so");
        std::fs::write(&cut, &lib[..lib.len() / 3]).expect("write");
        assert!(matches!(
            check_elf_file(&cut).expect("read"),
            Err(ElfError::Truncated { .. })
        ));
        let empty = dir.path().join("empty.so");
        std::fs::write(&empty, b"").expect("write");
        assert_eq!(check_elf_file(&empty).expect("read"), Err(ElfError::Empty));
    }

    #[test]
    fn junk_is_not_elf() {
        assert_eq!(check_elf(b"", 0), Err(ElfError::Empty));
        assert_eq!(check_elf(&[7u8; 500], 500), Err(ElfError::NotElf));
        let mut exe = std::fs::read("/proc/self/exe").expect("own exe");
        // Test binaries are PIE (ET_DYN) on Debian; force ET_EXEC to check the message.
        exe[16] = 2;
        assert_eq!(
            check_elf(&exe, exe.len() as u64),
            Err(ElfError::NotShared("executable"))
        );
    }
}
