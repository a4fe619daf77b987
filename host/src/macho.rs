//! Structural check of a macOS library (64-bit Mach-O, or a universal file) before
//! `dlopen` sees it, as `elf.rs` does on Linux: a truncated copy, a file that is not a
//! library, or one for another CPU is refused with a reason.

/// Why a file is not a loadable Mach-O library for this machine.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum MachOError {
    #[error("the file is empty")]
    Empty,
    #[error("the file is not a macOS library (it has no 64-bit Mach-O header)")]
    NotMachO,
    #[error("the file is a Mach-O of type {0}, not a library (dylib or bundle)")]
    NotLibrary(u32),
    #[error("the library is built for another CPU (Mach-O CPU type {found:#x}, this machine needs {want:#x})")]
    WrongCpu { found: u32, want: u32 },
    #[error("the library is truncated: its {what} extends to byte {end}, but the file has only {len} bytes (an interrupted copy?)")]
    Truncated {
        what: &'static str,
        end: u64,
        len: u64,
    },
}

impl MachOError {
    /// An incomplete file (copy it again) rather than a wrong one (remove it).
    pub fn incomplete(&self) -> bool {
        matches!(self, MachOError::Empty | MachOError::Truncated { .. })
    }
}

#[cfg(target_arch = "aarch64")]
const CPU: u32 = 0x0100_000c;
#[cfg(not(target_arch = "aarch64"))]
const CPU: u32 = 0x0100_0007;

/// The most header bytes read.
pub const MAX_HEADERS: u64 = 1 << 20;

fn u32_at(b: &[u8], at: usize, big: bool) -> Option<u32> {
    let a: [u8; 4] = b.get(at..at + 4)?.try_into().ok()?;
    Some(if big {
        u32::from_be_bytes(a)
    } else {
        u32::from_le_bytes(a)
    })
}
fn u64le(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(b.get(at..at + 8)?.try_into().ok()?))
}

/// Checks the file at `path` with [`check_macho`] (a universal file: its slice for this
/// CPU), reading at most [`MAX_HEADERS`] bytes of headers.
pub fn check_macho_file(path: &std::path::Path) -> std::io::Result<Result<(), MachOError>> {
    use std::io::{Read, Seek, SeekFrom};
    let mut f = std::fs::File::open(path)?;
    let len = f.metadata()?.len();
    let mut head = Vec::new();
    (&mut f).take(MAX_HEADERS).read_to_end(&mut head)?;
    if head.get(0..4) == Some(&[0xca, 0xfe, 0xba, 0xbe][..]) {
        let n = u32_at(&head, 4, true).unwrap_or(0).min(64) as usize;
        for i in 0..n {
            let at = 8 + i * 20;
            let (Some(cpu), Some(offset), Some(size)) = (
                u32_at(&head, at, true),
                u32_at(&head, at + 8, true),
                u32_at(&head, at + 12, true),
            ) else {
                return Ok(Err(MachOError::Truncated {
                    what: "universal header",
                    end: (at + 20) as u64,
                    len,
                }));
            };
            if cpu != CPU {
                continue;
            }
            let (offset, size) = (u64::from(offset), u64::from(size));
            if offset + size > len {
                return Ok(Err(MachOError::Truncated {
                    what: "slice for this CPU",
                    end: offset + size,
                    len,
                }));
            }
            f.seek(SeekFrom::Start(offset))?;
            let mut slice = Vec::new();
            (&mut f)
                .take(size.min(MAX_HEADERS))
                .read_to_end(&mut slice)?;
            return Ok(check_macho(&slice, size));
        }
        return Ok(Err(MachOError::WrongCpu {
            found: 0,
            want: CPU,
        }));
    }
    Ok(check_macho(&head, len))
}

/// Checks a thin 64-bit little-endian Mach-O dylib or bundle for this CPU: header, load
/// commands, and every segment's file range inside the file.
pub fn check_macho(bytes: &[u8], file_len: u64) -> Result<(), MachOError> {
    if bytes.is_empty() || file_len == 0 {
        return Err(MachOError::Empty);
    }
    let len = file_len;
    let truncated = |what, end| MachOError::Truncated { what, end, len };
    if u32_at(bytes, 0, false) != Some(0xfeed_facf) {
        return Err(MachOError::NotMachO);
    }
    if len < 32 {
        return Err(truncated("header", 32));
    }
    let cpu = u32_at(bytes, 4, false).ok_or(MachOError::NotMachO)?;
    let file_type = u32_at(bytes, 12, false).ok_or(MachOError::NotMachO)?;
    let ncmds = u64::from(u32_at(bytes, 16, false).ok_or(MachOError::NotMachO)?);
    let sizeofcmds = u64::from(u32_at(bytes, 20, false).ok_or(MachOError::NotMachO)?);
    if cpu != CPU {
        return Err(MachOError::WrongCpu {
            found: cpu,
            want: CPU,
        });
    }
    if file_type != 6 && file_type != 8 {
        return Err(MachOError::NotLibrary(file_type));
    }
    let cmds_end = 32 + sizeofcmds;
    if cmds_end > len {
        return Err(truncated("load commands", cmds_end));
    }
    let mut at = 32usize;
    for _ in 0..ncmds {
        let cmd = u32_at(bytes, at, false).ok_or(truncated("load commands", cmds_end))?;
        let size = u32_at(bytes, at + 4, false).ok_or(truncated("load commands", cmds_end))?;
        if cmd == 0x19 {
            // LC_SEGMENT_64: fileoff and filesize.
            let off = u64le(bytes, at + 40).ok_or(truncated("load commands", cmds_end))?;
            let filesize = u64le(bytes, at + 48).ok_or(truncated("load commands", cmds_end))?;
            if off.saturating_add(filesize) > len {
                return Err(truncated("segment", off.saturating_add(filesize)));
            }
        }
        if size < 8 {
            return Err(MachOError::NotMachO);
        }
        at += size as usize;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A dylib header for this CPU with one segment of 4096 bytes at 4096.
    fn dylib() -> Vec<u8> {
        let mut b = vec![0u8; 8192];
        b[0..4].copy_from_slice(&0xfeed_facfu32.to_le_bytes());
        b[4..8].copy_from_slice(&CPU.to_le_bytes());
        b[12..16].copy_from_slice(&6u32.to_le_bytes());
        b[16..20].copy_from_slice(&1u32.to_le_bytes());
        b[20..24].copy_from_slice(&72u32.to_le_bytes());
        b[32..36].copy_from_slice(&0x19u32.to_le_bytes());
        b[36..40].copy_from_slice(&72u32.to_le_bytes());
        b[72..80].copy_from_slice(&4096u64.to_le_bytes());
        b[80..88].copy_from_slice(&4096u64.to_le_bytes());
        b
    }

    #[test]
    fn a_complete_dylib_passes_and_broken_ones_are_refused() {
        let b = dylib();
        assert_eq!(check_macho(&b, 8192), Ok(()));
        assert_eq!(check_macho(&[], 0), Err(MachOError::Empty));
        assert_eq!(check_macho(b"MZ......", 8), Err(MachOError::NotMachO));
        assert_eq!(
            check_macho(&b[..5000], 5000),
            Err(MachOError::Truncated {
                what: "segment",
                end: 8192,
                len: 5000
            })
        );
        let mut exe = dylib();
        exe[12..16].copy_from_slice(&2u32.to_le_bytes());
        assert_eq!(check_macho(&exe, 8192), Err(MachOError::NotLibrary(2)));
    }
}
