//! Structural check of a Windows DLL (PE32+) before `LoadLibrary` sees it, as `elf.rs`
//! does for Linux: a file cut short by an interrupted copy, a file that is not a DLL, or
//! one for another machine is refused with a reason instead of an obscure loader error
//! (or worse: the loader maps sections it trusts to be there).

/// Why a file is not a loadable DLL for this machine.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PeError {
    #[error("the file is empty")]
    Empty,
    #[error("the file is not a Windows library (it has no MZ/PE header)")]
    NotPe,
    #[error("the file is a Windows executable, not a DLL")]
    NotDll,
    #[error("the library is not a 64-bit (PE32+) image")]
    WrongClass,
    #[error("the library is built for another machine type (PE machine {found:#06x}, this machine needs {want:#06x})")]
    WrongMachine { found: u16, want: u16 },
    #[error("the library is truncated: its {what} extends to byte {end}, but the file has only {len} bytes (an interrupted copy?)")]
    Truncated {
        what: &'static str,
        end: u64,
        len: u64,
    },
}

impl PeError {
    /// An incomplete file (copy it again) rather than a wrong one (remove it).
    pub fn incomplete(&self) -> bool {
        matches!(self, PeError::Empty | PeError::Truncated { .. })
    }
}

#[cfg(target_arch = "aarch64")]
const MACHINE: u16 = 0xaa64;
#[cfg(not(target_arch = "aarch64"))]
const MACHINE: u16 = 0x8664;

/// The most header bytes read (DOS stub, PE header and section table fit well within).
pub const MAX_HEADERS: u64 = 1 << 20;

fn u16le(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(b.get(at..at + 2)?.try_into().ok()?))
}
fn u32le(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

/// Checks the file at `path` with [`check_pe`], reading at most [`MAX_HEADERS`] bytes.
pub fn check_pe_file(path: &std::path::Path) -> std::io::Result<Result<(), PeError>> {
    use std::io::Read;
    let f = std::fs::File::open(path)?;
    let len = f.metadata()?.len();
    let mut head = Vec::new();
    f.take(MAX_HEADERS).read_to_end(&mut head)?;
    Ok(check_pe(&head, len))
}

/// Checks a PE32+ DLL: DOS and PE headers, machine, DLL flag, and every section's raw
/// data inside the file. `bytes` is the start of the file (through the section table)
/// and `file_len` its full length.
pub fn check_pe(bytes: &[u8], file_len: u64) -> Result<(), PeError> {
    if bytes.is_empty() || file_len == 0 {
        return Err(PeError::Empty);
    }
    let len = file_len;
    let truncated = |what, end| PeError::Truncated { what, end, len };
    if bytes.len() < 2 || bytes[0..2] != *b"MZ" {
        return Err(PeError::NotPe);
    }
    let pe = u64::from(u32le(bytes, 0x3c).ok_or(truncated("DOS header", 0x40))?);
    if pe + 24 > len {
        return Err(truncated("PE header", pe + 24));
    }
    let at = usize::try_from(pe).map_err(|_| PeError::NotPe)?;
    if bytes.get(at..at + 4) != Some(b"PE\0\0".as_slice()) {
        return Err(PeError::NotPe);
    }
    let machine = u16le(bytes, at + 4).ok_or(PeError::NotPe)?;
    let sections = u64::from(u16le(bytes, at + 6).ok_or(PeError::NotPe)?);
    let optional_size = u64::from(u16le(bytes, at + 20).ok_or(PeError::NotPe)?);
    let characteristics = u16le(bytes, at + 22).ok_or(PeError::NotPe)?;
    let optional_end = pe + 24 + optional_size;
    if optional_end > len {
        return Err(truncated("optional header", optional_end));
    }
    if u16le(bytes, at + 24) != Some(0x20b) {
        return Err(PeError::WrongClass);
    }
    if machine != MACHINE {
        return Err(PeError::WrongMachine {
            found: machine,
            want: MACHINE,
        });
    }
    if characteristics & 0x2000 == 0 {
        return Err(PeError::NotDll);
    }
    let table_end = optional_end + sections * 40;
    if table_end > len {
        return Err(truncated("section table", table_end));
    }
    for i in 0..sections {
        let s = usize::try_from(optional_end + i * 40).map_err(|_| PeError::NotPe)?;
        let size = u64::from(u32le(bytes, s + 16).ok_or(truncated("section table", table_end))?);
        let offset = u64::from(u32le(bytes, s + 20).ok_or(truncated("section table", table_end))?);
        if size > 0 && offset + size > len {
            return Err(truncated("section", offset + size));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A minimal PE32+ DLL header for this machine with one section of 512 bytes at 512.
    fn dll() -> Vec<u8> {
        let mut b = vec![0u8; 1024];
        b[0..2].copy_from_slice(b"MZ");
        b[0x3c..0x40].copy_from_slice(&0x80u32.to_le_bytes());
        b[0x80..0x84].copy_from_slice(b"PE\0\0");
        b[0x84..0x86].copy_from_slice(&MACHINE.to_le_bytes());
        b[0x86..0x88].copy_from_slice(&1u16.to_le_bytes());
        b[0x94..0x96].copy_from_slice(&240u16.to_le_bytes());
        b[0x96..0x98].copy_from_slice(&0x2022u16.to_le_bytes());
        b[0x98..0x9a].copy_from_slice(&0x20bu16.to_le_bytes());
        let s = 0x98 + 240;
        b[s + 16..s + 20].copy_from_slice(&512u32.to_le_bytes());
        b[s + 20..s + 24].copy_from_slice(&512u32.to_le_bytes());
        b
    }

    #[test]
    fn a_complete_dll_passes() {
        let b = dll();
        assert_eq!(check_pe(&b, b.len() as u64), Ok(()));
    }

    #[test]
    fn broken_files_are_refused_with_a_reason() {
        assert_eq!(check_pe(&[], 0), Err(PeError::Empty));
        assert_eq!(check_pe(b"\x7fELF....", 8), Err(PeError::NotPe));
        let b = dll();
        let cut = &b[..700];
        assert_eq!(
            check_pe(cut, 700),
            Err(PeError::Truncated {
                what: "section",
                end: 1024,
                len: 700
            })
        );
        assert!(matches!(
            check_pe(&b[..0x90], 0x90),
            Err(PeError::Truncated { .. })
        ));
        let mut exe = dll();
        exe[0x96..0x98].copy_from_slice(&0x0022u16.to_le_bytes());
        assert_eq!(check_pe(&exe, 1024), Err(PeError::NotDll));
        let mut arm = dll();
        arm[0x84..0x86].copy_from_slice(&0x1c0u16.to_le_bytes());
        assert!(matches!(
            check_pe(&arm, 1024),
            Err(PeError::WrongMachine { .. })
        ));
    }
}
