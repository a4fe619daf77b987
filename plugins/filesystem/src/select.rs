//! Which mounts to report: leaving out virtual file systems, honouring the options, and
//! reporting each file system once.

use crate::mountinfo::Mount;

/// Types left out unless the options say otherwise: kernel interfaces, memory-backed and
/// read-only image file systems, and container layers that would repeat the host's disks.
pub const DEFAULT_EXCLUDE_TYPES: &[&str] = &[
    "proc",
    "sysfs",
    "devtmpfs",
    "devpts",
    "tmpfs",
    "cgroup",
    "cgroup2",
    "mqueue",
    "debugfs",
    "tracefs",
    "securityfs",
    "pstore",
    "bpf",
    "configfs",
    "fusectl",
    "hugetlbfs",
    "autofs",
    "binfmt_misc",
    "nsfs",
    "rpc_pipefs",
    "efivarfs",
    "selinuxfs",
    "ramfs",
    "overlay",
    "squashfs",
    "iso9660",
    "nfsd",
    "fuse.lxcfs",
    "fuse.portal",
    "fuse.gvfsd-fuse",
];

/// The options that choose mounts, in the order they are applied: an excluded mount point
/// is always out, an included one always in, then an included type is in and an excluded
/// type out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountFilter {
    pub include_types: Vec<String>,
    /// The options' `exclude_types`, or [`DEFAULT_EXCLUDE_TYPES`].
    pub exclude_types: Vec<String>,
    pub include_mounts: Vec<String>,
    pub exclude_mounts: Vec<String>,
}

impl MountFilter {
    pub fn accepts(&self, mount: &Mount<'_>) -> bool {
        let point = mount.mount_point.as_ref();
        let listed = |list: &[String], value: &str| list.iter().any(|item| item == value);
        if listed(&self.exclude_mounts, point) {
            false
        } else if listed(&self.include_mounts, point) || listed(&self.include_types, mount.fs_type)
        {
            true
        } else {
            !listed(&self.exclude_types, mount.fs_type)
        }
    }
}

/// The mounts to report, in file order: those the filter accepts, minus mounts hidden by
/// a later mount on the same point, and of several mounts of one device (bind mounts) only
/// the one with the shortest mount point (the first of equals).
pub fn select<'m, 'a>(mounts: &'m [Mount<'a>], filter: &MountFilter) -> Vec<&'m Mount<'a>> {
    let accepted: Vec<&Mount<'a>> = mounts.iter().filter(|m| filter.accepts(m)).collect();
    let visible: Vec<&Mount<'a>> = accepted
        .iter()
        .enumerate()
        .filter(|(i, m)| {
            !accepted[i + 1..]
                .iter()
                .any(|later| later.mount_point == m.mount_point)
        })
        .map(|(_, m)| *m)
        .collect();
    visible
        .iter()
        .enumerate()
        .filter(|(i, m)| {
            !visible.iter().enumerate().any(|(j, other)| {
                other.device == m.device
                    && (other.mount_point.len() < m.mount_point.len()
                        || (other.mount_point.len() == m.mount_point.len() && j < *i))
            })
        })
        .map(|(_, m)| *m)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mountinfo::parse_mountinfo;

    /// A host with a bind mount, a tmpfs, an over-mounted directory and a docker overlay.
    const MOUNTS: &str = "\
22 27 0:21 / /proc rw,relatime - proc proc rw
27 1 254:0 / / rw,relatime - ext4 /dev/vda rw
28 27 254:1 / /var rw,relatime - xfs /dev/vdb rw
29 27 254:1 /lib/docker /srv/docker rw,relatime - xfs /dev/vdb rw
30 27 0:25 / /run rw,nosuid - tmpfs tmpfs rw,size=4k
31 27 254:2 / /mnt rw - ext4 /dev/vdc1 rw
32 27 254:3 / /mnt rw - ext4 /dev/vdd1 rw
33 28 0:50 / /var/lib/docker/overlay2/abc/merged rw - overlay overlay rw
";

    fn filter() -> MountFilter {
        MountFilter {
            include_types: Vec::new(),
            exclude_types: DEFAULT_EXCLUDE_TYPES
                .iter()
                .map(|t| t.to_string())
                .collect(),
            include_mounts: Vec::new(),
            exclude_mounts: Vec::new(),
        }
    }

    fn points(mounts: &[Mount<'_>], filter: &MountFilter) -> Vec<(String, (u32, u32))> {
        select(mounts, filter)
            .iter()
            .map(|m| (m.mount_point.to_string(), m.device))
            .collect()
    }

    fn strings(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn defaults_skip_virtual_dedupe_binds_and_hidden_mounts() {
        let mounts = parse_mountinfo(MOUNTS).expect("parse");
        assert_eq!(
            points(&mounts, &filter()),
            [
                ("/".to_string(), (254, 0)),
                ("/var".to_string(), (254, 1)),
                ("/mnt".to_string(), (254, 3)),
            ]
        );
    }

    #[test]
    fn include_types_forces_a_type_in() {
        let mounts = parse_mountinfo(MOUNTS).expect("parse");
        let f = MountFilter {
            include_types: strings(&["tmpfs"]),
            ..filter()
        };
        let got = points(&mounts, &f);
        assert!(got.contains(&("/run".to_string(), (0, 25))), "{got:?}");
        assert!(!got.iter().any(|(p, _)| p == "/proc"), "{got:?}");
    }

    #[test]
    fn exclude_types_replaces_the_defaults() {
        let mounts = parse_mountinfo(MOUNTS).expect("parse");
        let f = MountFilter {
            exclude_types: strings(&["xfs"]),
            ..filter()
        };
        let got = points(&mounts, &f);
        assert!(got.iter().any(|(p, _)| p == "/proc"), "{got:?}");
        assert!(
            !got.iter().any(|(p, _)| p == "/var" || p == "/srv/docker"),
            "{got:?}"
        );
    }

    #[test]
    fn mount_lists_win_over_types() {
        let mounts = parse_mountinfo(MOUNTS).expect("parse");
        let f = MountFilter {
            include_mounts: strings(&["/var/lib/docker/overlay2/abc/merged"]),
            exclude_mounts: strings(&["/var"]),
            include_types: strings(&["xfs"]),
            ..filter()
        };
        let got = points(&mounts, &f);
        // With /var out, the bind mount of the same device is the one reported.
        assert_eq!(
            got,
            [
                ("/".to_string(), (254, 0)),
                ("/srv/docker".to_string(), (254, 1)),
                ("/mnt".to_string(), (254, 3)),
                ("/var/lib/docker/overlay2/abc/merged".to_string(), (0, 50)),
            ]
        );
    }
}
