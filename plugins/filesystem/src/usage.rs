//! Space and inode usage of one file system from its `statvfs` figures, computed as `df`
//! computes them.

/// The `statvfs` fields the plugin uses.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FsStats {
    /// `f_frsize`: the unit of the block counts.
    pub fragment_size: u64,
    /// `f_bsize`, used when a file system leaves `f_frsize` zero.
    pub block_size: u64,
    pub blocks: u64,
    pub blocks_free: u64,
    /// Free blocks an unprivileged user may use (free minus the root reserve).
    pub blocks_available: u64,
    pub files: u64,
    pub files_free: u64,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Usage {
    pub size_bytes: u64,
    pub used_bytes: u64,
    /// What a non-root user can still write: `df`'s "Avail".
    pub free_bytes: u64,
    /// `used / (used + avail)`, as `df`'s "Use%" (which rounds it up); `None` when both
    /// are zero.
    pub used_percent: Option<f64>,
    /// `None` for file systems without an inode count (`f_files` zero: btrfs, vfat).
    pub inodes_used_percent: Option<f64>,
}

/// Usage from `statvfs`; `None` for a file system of size zero.
pub fn usage(stats: &FsStats) -> Option<Usage> {
    let unit = if stats.fragment_size > 0 {
        stats.fragment_size
    } else {
        stats.block_size
    };
    let size_bytes = stats.blocks.saturating_mul(unit);
    if size_bytes == 0 {
        return None;
    }
    let used = stats.blocks.saturating_sub(stats.blocks_free);
    let available = stats.blocks_available;
    let used_percent = match used.saturating_add(available) {
        0 => None,
        all => Some(used as f64 / all as f64 * 100.0),
    };
    let inodes_used_percent = match stats.files {
        0 => None,
        files => {
            Some(files.saturating_sub(stats.files_free.min(files)) as f64 / files as f64 * 100.0)
        }
    };
    Some(Usage {
        size_bytes,
        used_bytes: used.saturating_mul(unit),
        free_bytes: available.saturating_mul(unit),
        used_percent,
        inodes_used_percent,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `stat -f /` and `df -B1 --output=size,used,avail,pcent,ipcent /` on a Linux 6.18
    /// VM, ext4 with a large reserve: `270553174016 13402648576 84170100736 14% 3%`.
    const ROOT: FsStats = FsStats {
        fragment_size: 4096,
        block_size: 4096,
        blocks: 66_053_021,
        blocks_free: 62_780_890,
        blocks_available: 20_549_341,
        files: 16_777_216,
        files_free: 16_376_148,
    };

    #[test]
    fn matches_df() {
        let u = usage(&ROOT).expect("non-zero size");
        assert_eq!(u.size_bytes, 270_553_174_016);
        assert_eq!(u.used_bytes, 13_402_648_576);
        assert_eq!(u.free_bytes, 84_170_100_736);
        // Of size, 4.9 % is used, but df says 14 %: it divides by used + available.
        let percent = u.used_percent.expect("percent");
        let expected = 3_272_131.0 / (3_272_131.0 + 20_549_341.0) * 100.0;
        assert!((percent - expected).abs() < 1e-9, "{percent}");
        assert_eq!(percent.ceil(), 14.0);
        let inodes = u.inodes_used_percent.expect("inodes");
        assert!(
            (inodes - 401_068.0 / 16_777_216.0 * 100.0).abs() < 1e-9,
            "{inodes}"
        );
        assert_eq!(inodes.ceil(), 3.0);
    }

    #[test]
    fn zero_size_is_none() {
        assert_eq!(usage(&FsStats::default()), None);
        let no_blocks = FsStats {
            fragment_size: 4096,
            files: 10,
            ..FsStats::default()
        };
        assert_eq!(usage(&no_blocks), None);
    }

    #[test]
    fn no_inode_count_and_fragment_size_fallback() {
        let stats = FsStats {
            fragment_size: 0,
            block_size: 512,
            blocks: 100,
            blocks_free: 100,
            blocks_available: 0,
            files: 0,
            files_free: 0,
        };
        let u = usage(&stats).expect("non-zero size");
        assert_eq!(u.size_bytes, 51_200);
        assert_eq!(u.used_bytes, 0);
        assert_eq!(u.used_percent, None);
        assert_eq!(u.inodes_used_percent, None);
    }

    #[test]
    fn inconsistent_figures_stay_in_range() {
        let stats = FsStats {
            fragment_size: 1,
            block_size: 1,
            blocks: 10,
            blocks_free: 20,
            blocks_available: 5,
            files: 10,
            files_free: 30,
        };
        let u = usage(&stats).expect("non-zero size");
        assert_eq!(u.used_bytes, 0);
        assert_eq!(u.used_percent, Some(0.0));
        assert_eq!(u.inodes_used_percent, Some(0.0));
    }
}
