//! The `filesystem` monitor plugin: space and inode usage of mounted file systems, from
//! `/proc/self/mountinfo` and `statvfs` on Linux; elsewhere from the system's own calls
//! (`other.rs`: drive letters on Windows; docs/platforms.md).
//!
//! Keys start with `fs.` and then the mount point as it is (`fs./.size_bytes`,
//! `fs./var.used_percent`). For each mount point `<M>`:
//! - `fs.<M>.size_bytes` (B): total size.
//! - `fs.<M>.used_bytes` (B): `(blocks - free) × fragment size`.
//! - `fs.<M>.free_bytes` (B): what a non-root user can still write (`df`'s "Avail").
//! - `fs.<M>.used_percent` (%): `used / (used + avail)`, as `df` computes "Use%" (without
//!   its rounding up).
//! - `fs.<M>.inodes_used_percent` (%): absent for file systems without an inode count.
//! - `fs.<M>.type` (text): `ext4`, `xfs`, ...
//! - `fs.<M>.error` (text), instead of the above, when `statvfs` fails on that mount.
//!
//! Each file system is reported once, at its shortest mount point; file systems of size
//! zero are left out, and so are virtual ones by default (see [`select`]). Options:
//! `include_types` (types reported even if excluded), `exclude_types` (replaces the default
//! list), `include_mounts` and `exclude_mounts` (exact mount points, which win over types).

// Off Linux the mountinfo parser is compiled but unused.
#![cfg_attr(not(target_os = "linux"), allow(dead_code))]

mod mountinfo;
#[cfg(not(target_os = "linux"))]
mod other;
mod select;
mod usage;

use hbc_plugin_api::{Options, Plugin, Reading};

use crate::select::{MountFilter, DEFAULT_EXCLUDE_TYPES};
use crate::usage::Usage;

const PROC_MOUNTINFO: &str = "/proc/self/mountinfo";
/// With a host root (hbc in a container): the mounts of the host's init, which the
/// container sees with `--pid=host`; its own would be the container's.
const HOST_MOUNTINFO: &str = "/proc/1/mountinfo";

/// `plugins.filesystem.options` in hbc's config.
#[derive(serde::Deserialize, Default, Debug)]
#[serde(default, deny_unknown_fields)]
struct FilesystemOptions {
    /// Types reported even though `exclude_types` lists them.
    include_types: Vec<String>,
    /// Types left out; replaces the default list of virtual file systems.
    exclude_types: Option<Vec<String>>,
    /// Mount points reported whatever their type.
    include_mounts: Vec<String>,
    /// Mount points never reported.
    exclude_mounts: Vec<String>,
}

pub struct FilesystemPlugin {
    filter: MountFilter,
    /// Reused for every read. Bytes, since a mount point need not be UTF-8.
    buffer: Vec<u8>,
    /// The mount table, kept open: a read is two system calls instead of six.
    #[cfg(target_os = "linux")]
    mountinfo: hbc_plugin_support::KeptFile,
}

impl Plugin for FilesystemPlugin {
    const NAME: &'static str = "filesystem";
    const DESCRIPTION: &'static str = "Mounted file systems: size, used and free space, inodes";

    fn new(options: &Options) -> Result<Self, String> {
        let options = options
            .parse::<FilesystemOptions>()
            .map_err(|e| format!("filesystem plugin: {e}"))?;
        let filter = MountFilter {
            include_types: options.include_types,
            exclude_types: options.exclude_types.unwrap_or_else(|| {
                DEFAULT_EXCLUDE_TYPES
                    .iter()
                    .map(|t| t.to_string())
                    .collect()
            }),
            include_mounts: options.include_mounts,
            exclude_mounts: options.exclude_mounts,
        };
        // In a container the host's mount table is that of its init process.
        #[cfg(target_os = "linux")]
        let mountinfo = hbc_plugin_support::KeptFile::new(match hbc_plugin_support::host_root() {
            Some(_) => HOST_MOUNTINFO,
            None => PROC_MOUNTINFO,
        });
        Ok(FilesystemPlugin {
            filter,
            buffer: Vec::new(),
            #[cfg(target_os = "linux")]
            mountinfo,
        })
    }

    #[cfg(target_os = "linux")]
    fn collect(&mut self) -> Result<Vec<Reading>, String> {
        use hbc_plugin_support::host_path;
        if self.buffer.is_empty() || mounts_changed(&self.mountinfo) {
            self.mountinfo
                .read_bytes_into(Self::NAME, &mut self.buffer)?;
        }
        let mountinfo = host_path(self.mountinfo.path());
        // A mount point that is not UTF-8 comes out mangled, and `statvfs` then reports it
        // as an error reading instead of failing the whole collect.
        let text = String::from_utf8_lossy(&self.buffer);
        let mounts = mountinfo::parse_mountinfo(&text)
            .map_err(|e| format!("filesystem plugin: cannot parse {mountinfo}: {e}"))?;

        let mut readings = Vec::new();
        for mount in select::select(&mounts, &self.filter) {
            let point = mount.mount_point.as_ref();
            // Named as on the host; reached through the host's `/` mounted at the root.
            let stats = statvfs(&host_path(point));
            readings.extend(mount_readings(point, mount.fs_type, stats));
        }
        Ok(readings)
    }

    #[cfg(not(target_os = "linux"))]
    fn collect(&mut self) -> Result<Vec<Reading>, String> {
        let mut readings = Vec::new();
        for (index, (point, fs_type, stats)) in other::mounts().into_iter().enumerate() {
            // Each entry is its own file system: distinct devices, so none is deduplicated.
            let mount = mountinfo::Mount {
                device: (0, index as u32),
                mount_point: std::borrow::Cow::Borrowed(point.as_str()),
                fs_type: fs_type.as_str(),
            };
            if self.filter.accepts(&mount) {
                readings.extend(mount_readings(&point, &fs_type, stats));
            }
        }
        Ok(readings)
    }
}

// Off when bundled into `plugins/system` (one library exporting several plugins).
#[cfg(feature = "export")]
hbc_plugin_api::export_plugin!(FilesystemPlugin);

/// Whether the mount table changed since `mountinfo` was opened or last asked: the
/// kernel gives an open mount table a priority event at every mount and unmount (proc(5),
/// `/proc/pid/mounts`), and asking clears it. One system call where reading the table
/// again cost about 30 us (issue 20); without an open table, or if asking fails: true.
#[cfg(target_os = "linux")]
fn mounts_changed(mountinfo: &hbc_plugin_support::KeptFile) -> bool {
    use rustix::event::{poll, PollFd, PollFlags, Timespec};
    let Some(file) = mountinfo.opened() else {
        return true;
    };
    let mut fds = [PollFd::new(file, PollFlags::PRI)];
    let now = Timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    match poll(&mut fds, Some(&now)) {
        Ok(_) => fds[0].revents().intersects(PollFlags::PRI | PollFlags::ERR),
        Err(_) => true,
    }
}

#[cfg(target_os = "linux")]
fn statvfs(path: &str) -> Result<usage::FsStats, std::io::Error> {
    let s = rustix::fs::statvfs(path)?;
    Ok(usage::FsStats {
        fragment_size: s.f_frsize,
        block_size: s.f_bsize,
        blocks: s.f_blocks,
        blocks_free: s.f_bfree,
        blocks_available: s.f_bavail,
        files: s.f_files,
        files_free: s.f_ffree,
    })
}

/// The readings of one mount: its usage, nothing for a size of zero, or an error reading
/// when `statvfs` failed.
fn mount_readings(
    point: &str,
    fs_type: &str,
    stats: Result<usage::FsStats, std::io::Error>,
) -> Vec<Reading> {
    match stats {
        Ok(stats) => match usage::usage(&stats) {
            Some(usage) => usage_readings(point, fs_type, &usage),
            None => Vec::new(),
        },
        Err(e) => vec![Reading::text(
            format!("fs.{point}.error"),
            format!("statvfs {point}: {e}"),
        )],
    }
}

fn usage_readings(point: &str, fs_type: &str, usage: &Usage) -> Vec<Reading> {
    let bytes = |suffix: &str, value: u64| {
        Reading::integer(
            format!("fs.{point}.{suffix}"),
            i64::try_from(value).unwrap_or(i64::MAX),
            "B",
        )
    };
    let mut readings = Vec::with_capacity(6);
    readings.push(bytes("size_bytes", usage.size_bytes));
    readings.push(bytes("used_bytes", usage.used_bytes));
    readings.push(bytes("free_bytes", usage.free_bytes));
    if let Some(percent) = usage.used_percent {
        readings.push(Reading::number(
            format!("fs.{point}.used_percent"),
            percent,
            "%",
        ));
    }
    if let Some(percent) = usage.inodes_used_percent {
        readings.push(Reading::number(
            format!("fs.{point}.inodes_used_percent"),
            percent,
            "%",
        ));
    }
    readings.push(Reading::text(format!("fs.{point}.type"), fs_type));
    readings
}

#[cfg(test)]
mod tests {
    use super::*;
    use hbc_plugin_api::Value;
    use hbc_plugin_support::testing::value;

    #[test]
    fn readings_of_a_mount() {
        let usage = Usage {
            size_bytes: 1000,
            used_bytes: 600,
            free_bytes: 300,
            used_percent: Some(66.5),
            inodes_used_percent: None,
        };
        let r = usage_readings("/var", "xfs", &usage);
        let keys: Vec<&str> = r.iter().map(|r| r.key.as_str()).collect();
        assert_eq!(
            keys,
            [
                "fs./var.size_bytes",
                "fs./var.used_bytes",
                "fs./var.free_bytes",
                "fs./var.used_percent",
                "fs./var.type",
            ]
        );
        assert_eq!(value(&r, "fs./var.used_bytes"), &Value::I64(600));
        assert_eq!(value(&r, "fs./var.used_percent"), &Value::F64(66.5));
        assert_eq!(value(&r, "fs./var.type"), &Value::Text("xfs".into()));
        assert_eq!(r[0].unit.as_str(), "B");
        assert_eq!(r[3].unit.as_str(), "%");
    }

    #[test]
    fn options_build_the_filter() {
        let options = Options::from_json(
            r#"{"include_types": ["tmpfs"], "exclude_types": ["ext4"], "exclude_mounts": ["/boot"]}"#,
        )
        .expect("json");
        let plugin = FilesystemPlugin::new(&options).expect("new");
        assert_eq!(plugin.filter.include_types, ["tmpfs"]);
        assert_eq!(plugin.filter.exclude_types, ["ext4"]);
        assert_eq!(plugin.filter.exclude_mounts, ["/boot"]);

        let defaults =
            FilesystemPlugin::new(&Options::from_json("{}").expect("json")).expect("new");
        assert_eq!(
            defaults.filter.exclude_types.len(),
            DEFAULT_EXCLUDE_TYPES.len()
        );

        let err =
            match FilesystemPlugin::new(&Options::from_json(r#"{"types": []}"#).expect("json")) {
                Ok(_) => panic!("unknown field accepted"),
                Err(e) => e,
            };
        assert!(
            err.starts_with("filesystem plugin:") && err.contains("types"),
            "{err}"
        );
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn the_mount_table_is_read_again_only_after_a_change() {
        let mut kept = hbc_plugin_support::KeptFile::new(PROC_MOUNTINFO);
        assert!(mounts_changed(&kept), "not open yet: read it");
        let mut buffer = Vec::new();
        kept.read_bytes_into("filesystem", &mut buffer)
            .expect("read mountinfo");
        assert!(!buffer.is_empty());
        // Nothing was mounted since it was opened (a test process mounts nothing).
        assert!(!mounts_changed(&kept));
        assert!(!mounts_changed(&kept));
    }

    /// `df -B1` figures of one mount point: size, used, avail.
    #[cfg(target_os = "linux")]
    fn df(point: &str) -> (i64, i64, i64) {
        let out = std::process::Command::new("df")
            .args(["-B1", "--output=size,used,avail", point])
            .output()
            .expect("run df");
        assert!(out.status.success(), "df failed: {out:?}");
        let text = String::from_utf8(out.stdout).expect("utf-8");
        let numbers: Vec<i64> = text
            .lines()
            .nth(1)
            .expect("df data line")
            .split_whitespace()
            .map(|n| n.parse().expect("number"))
            .collect();
        (numbers[0], numbers[1], numbers[2])
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn collects_on_this_machine_as_df_sees_it() {
        let mut plugin =
            FilesystemPlugin::new(&Options::from_json("{}").expect("json")).expect("new");
        let readings = plugin.collect().expect("collect");
        assert!(readings.iter().all(|r| r.key.starts_with("fs.")));

        let text = std::fs::read_to_string(PROC_MOUNTINFO).expect("read mountinfo");
        let mounts = mountinfo::parse_mountinfo(&text).expect("parse mountinfo");
        let root = mounts
            .iter()
            .rev()
            .find(|m| m.mount_point == "/")
            .expect("a mount on /");
        // Where / is a real file system (not a container's overlay), it must be reported.
        if !DEFAULT_EXCLUDE_TYPES.contains(&root.fs_type) {
            assert_eq!(
                value(&readings, "fs./.type"),
                &Value::Text(root.fs_type.into())
            );
        }

        let sizes: Vec<(&str, i64)> = readings
            .iter()
            .filter_map(|r| {
                let point = r.key.strip_prefix("fs.")?.strip_suffix(".size_bytes")?;
                match r.value {
                    Value::I64(size) => Some((point, size)),
                    _ => None,
                }
            })
            .collect();
        assert!(
            !sizes.is_empty()
                || mounts
                    .iter()
                    .all(|m| DEFAULT_EXCLUDE_TYPES.contains(&m.fs_type))
        );
        for (point, size) in sizes {
            let (df_size, df_used, df_avail) = df(point);
            assert_eq!(size, df_size, "size of {point}");
            // Other processes write meanwhile; allow 64 MiB of drift.
            let drift = 64 << 20;
            let key = |suffix: &str| format!("fs.{point}.{suffix}");
            let Value::I64(used) = *value(&readings, &key("used_bytes")) else {
                panic!("used_bytes of {point} is not an integer");
            };
            let Value::I64(free) = *value(&readings, &key("free_bytes")) else {
                panic!("free_bytes of {point} is not an integer");
            };
            assert!(
                (used - df_used).abs() < drift,
                "{point}: used {used}, df {df_used}"
            );
            assert!(
                (free - df_avail).abs() < drift,
                "{point}: free {free}, df {df_avail}"
            );
            let percent = value(&readings, &key("used_percent"))
                .as_f64()
                .unwrap_or(f64::NAN);
            assert!((0.0..=100.0).contains(&percent), "{point}: {percent}");
        }
    }

    #[test]
    fn a_failing_statvfs_is_an_error_reading() {
        let denied = std::io::Error::from(std::io::ErrorKind::PermissionDenied);
        let r = mount_readings("/mnt/secret", "ext4", Err(denied));
        assert_eq!(r.len(), 1, "{r:?}");
        assert_eq!(r[0].key.as_str(), "fs./mnt/secret.error");
        let Value::Text(message) = &r[0].value else {
            panic!("not text: {r:?}");
        };
        assert!(message.starts_with("statvfs /mnt/secret: "), "{message}");
        assert!(message.contains("permission denied"), "{message}");
    }

    #[test]
    fn a_zero_size_mount_has_no_readings() {
        let r = mount_readings("/proc", "proc", Ok(usage::FsStats::default()));
        assert!(r.is_empty(), "{r:?}");
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn statvfs_of_a_missing_path_fails() {
        let missing = std::env::temp_dir().join(format!("hbc-fs-missing-{}", std::process::id()));
        let err = statvfs(missing.to_str().expect("utf-8 temp dir")).expect_err("missing path");
        assert_eq!(err.kind(), std::io::ErrorKind::NotFound);
    }
}
