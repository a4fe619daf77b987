//! Mounted file systems off Linux. Windows: every drive letter of a fixed, removable,
//! network or RAM drive (`GetLogicalDrives`, `GetDriveTypeW`), its space from
//! `GetDiskFreeSpaceExW` and its type from `GetVolumeInformationW`; the mount point is
//! the letter and colon (`fs.C:.size_bytes`). macOS: `sysinfo`'s disk list (`getfsstat`).
//! Neither gives an inode count here, so `inodes_used_percent` is left out.

use crate::usage::FsStats;

/// A mounted file system: mount point, type, and its figures or why they are missing.
pub type MountStats = (String, String, Result<FsStats, std::io::Error>);

/// Figures as `statvfs` would give them for a file system of `total` bytes of which
/// `free` are free and `available` free to hbc's user (one "block" per byte, no inodes).
fn stats(total: u64, free: u64, available: u64) -> FsStats {
    FsStats {
        fragment_size: 1,
        block_size: 1,
        blocks: total,
        blocks_free: free,
        blocks_available: available,
        files: 0,
        files_free: 0,
    }
}

#[cfg(windows)]
pub fn mounts() -> Vec<MountStats> {
    use windows_sys::Win32::Storage::FileSystem::{
        GetDiskFreeSpaceExW, GetDriveTypeW, GetLogicalDrives, GetVolumeInformationW,
    };
    use windows_sys::Win32::System::WindowsProgramming::{
        DRIVE_FIXED, DRIVE_RAMDISK, DRIVE_REMOTE, DRIVE_REMOVABLE,
    };
    // SAFETY: no arguments.
    let letters = unsafe { GetLogicalDrives() };
    let mut out = Vec::new();
    for i in 0..26u8 {
        if letters & (1 << i) == 0 {
            continue;
        }
        let point = format!("{}:", char::from(b'A' + i));
        let root: Vec<u16> = format!("{point}\\").encode_utf16().chain([0]).collect();
        // SAFETY: `root` is NUL-terminated UTF-16.
        let kind = unsafe { GetDriveTypeW(root.as_ptr()) };
        if ![DRIVE_FIXED, DRIVE_REMOVABLE, DRIVE_REMOTE, DRIVE_RAMDISK].contains(&kind) {
            continue; // CD drives and unknown roots: nothing to fill
        }
        let mut fs_name = [0u16; 64];
        // SAFETY: the name buffer and its length in UTF-16 units; other outputs unused.
        let named = unsafe {
            GetVolumeInformationW(
                root.as_ptr(),
                std::ptr::null_mut(),
                0,
                std::ptr::null_mut(),
                std::ptr::null_mut(),
                std::ptr::null_mut(),
                fs_name.as_mut_ptr(),
                fs_name.len() as u32,
            )
        };
        let fs_type = if named != 0 {
            let len = fs_name
                .iter()
                .position(|&c| c == 0)
                .unwrap_or(fs_name.len());
            String::from_utf16_lossy(&fs_name[..len])
        } else {
            String::new()
        };
        let (mut available, mut total, mut free) = (0u64, 0u64, 0u64);
        // SAFETY: three valid u64 out-pointers and a NUL-terminated path.
        let ok =
            unsafe { GetDiskFreeSpaceExW(root.as_ptr(), &mut available, &mut total, &mut free) };
        let figures = if ok != 0 {
            Ok(stats(total, free, available))
        } else {
            Err(std::io::Error::last_os_error())
        };
        out.push((point, fs_type, figures));
    }
    out
}

#[cfg(not(windows))]
pub fn mounts() -> Vec<MountStats> {
    let disks = sysinfo::Disks::new_with_refreshed_list();
    disks
        .list()
        .iter()
        .map(|d| {
            let total = d.total_space();
            let available = d.available_space();
            (
                d.mount_point().to_string_lossy().into_owned(),
                d.file_system().to_string_lossy().into_owned(),
                // sysinfo has no "free to root" figure: available stands for both.
                Ok(stats(total, available, available)),
            )
        })
        .collect()
}
