//! Parsing `/proc/self/mountinfo`: which file system is mounted where.
//!
//! Pure functions only; the plugin shell reads the file.

use std::borrow::Cow;

/// One line of `/proc/self/mountinfo`, borrowing from the text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount<'a> {
    /// `major:minor` of the mounted device; bind mounts of one file system share it.
    pub device: (u32, u32),
    /// The mount point with the kernel's octal escapes (`\040` for a space) decoded.
    pub mount_point: Cow<'a, str>,
    /// `ext4`, `tmpfs`, `fuse.sshfs`, ...
    pub fs_type: &'a str,
}

/// Parses every line, in file order (the order the mounts were made).
pub fn parse_mountinfo(text: &str) -> Result<Vec<Mount<'_>>, String> {
    let mut mounts = Vec::new();
    for (index, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        mounts.push(parse_line(line).map_err(|e| format!("line {}: {e}", index + 1))?);
    }
    Ok(mounts)
}

/// `36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw,errors=continue`:
/// id, parent id, major:minor, root, mount point, options, optional fields ending with
/// `-`, then type, source and super block options.
fn parse_line(line: &str) -> Result<Mount<'_>, String> {
    let mut fields = line.split_ascii_whitespace();
    let mut next = |what: &str| fields.next().ok_or_else(|| format!("no {what} field"));
    next("mount id")?;
    next("parent id")?;
    let device = parse_device(next("major:minor")?)?;
    next("root")?;
    let mount_point = unescape(next("mount point")?)?;
    next("mount options")?;
    while next("`-` separator")? != "-" {}
    let fs_type = next("file system type")?;
    Ok(Mount {
        device,
        mount_point,
        fs_type,
    })
}

fn parse_device(field: &str) -> Result<(u32, u32), String> {
    let parsed = field
        .split_once(':')
        .and_then(|(major, minor)| Some((major.parse().ok()?, minor.parse().ok()?)));
    parsed.ok_or_else(|| format!("device {field:?} is not major:minor"))
}

/// Decodes `\ooo` octal escapes: the kernel writes space, tab, newline and backslash in
/// paths that way.
pub fn unescape(field: &str) -> Result<Cow<'_, str>, String> {
    if !field.contains('\\') {
        return Ok(Cow::Borrowed(field));
    }
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] != b'\\' {
            out.push(bytes[i]);
            i += 1;
            continue;
        }
        let code = bytes
            .get(i + 1..i + 4)
            .filter(|digits| digits.iter().all(|d| (b'0'..=b'7').contains(d)))
            .map(|digits| {
                digits
                    .iter()
                    .fold(0u32, |value, d| value * 8 + u32::from(d - b'0'))
            })
            .and_then(|value| u8::try_from(value).ok())
            .ok_or_else(|| format!("bad escape in {field:?}: `\\` needs three octal digits"))?;
        out.push(code);
        i += 4;
    }
    Ok(Cow::Owned(String::from_utf8_lossy(&out).into_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Captured from a Linux 6.18 VM (a sandbox: few mounts, no propagation tags).
    const SAMPLE: &str = "\
22 27 0:21 / /proc rw,relatime - proc proc rw
23 27 0:22 / /sys rw,relatime - sysfs sysfs rw
24 27 0:6 / /dev rw,relatime - devtmpfs devtmpfs rw,size=12334460k,nr_inodes=3083615,mode=755
25 24 0:23 / /dev/shm rw,relatime - tmpfs tmpfs rw,size=24684084k
26 24 0:24 / /dev/pts rw,relatime - devpts devpts rw,mode=600,ptmxmode=000
27 1 254:0 / / rw,relatime - ext4 /dev/vda rw,discard,resv_strict,resuid=65534,resgid=65534
28 27 0:25 / /mnt/sandboxing/model_tools_env/v1/python ro,nosuid,nodev,relatime - tmpfs model_tools_unavailable ro,size=4k,mode=755
29 26 0:26 / /dev/pts rw,relatime - devpts devpts rw,mode=600,ptmxmode=000
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
";

    /// The shape of a systemd host's lines: optional `shared:N` / `master:N` tags before
    /// the `-`, and a mount point with a space and a tab in it.
    const SYSTEMD_SHAPE: &str = "\
29 1 259:2 / / rw,relatime shared:1 - ext4 /dev/nvme0n1p2 rw,errors=remount-ro
30 29 259:1 / /boot/efi rw,relatime shared:2 master:7 - vfat /dev/nvme0n1p1 rw,fmask=0077
31 29 259:3 / /media/My\\040Disk\\011x rw,nosuid shared:3 - fuse.sshfs me@host:/ rw
";

    #[test]
    fn parses_the_sample() {
        let mounts = parse_mountinfo(SAMPLE).expect("parse");
        assert_eq!(mounts.len(), 9);
        assert_eq!(
            mounts[5],
            Mount {
                device: (254, 0),
                mount_point: Cow::Borrowed("/"),
                fs_type: "ext4",
            }
        );
        assert_eq!(
            mounts[6].mount_point,
            "/mnt/sandboxing/model_tools_env/v1/python"
        );
        assert_eq!(mounts[6].fs_type, "tmpfs");
        assert_eq!(mounts[8].fs_type, "cgroup2");
    }

    #[test]
    fn optional_fields_and_escapes() {
        let mounts = parse_mountinfo(SYSTEMD_SHAPE).expect("parse");
        assert_eq!(mounts[0].fs_type, "ext4");
        assert_eq!(mounts[1].mount_point, "/boot/efi");
        assert_eq!(mounts[1].fs_type, "vfat");
        assert_eq!(mounts[1].device, (259, 1));
        assert_eq!(mounts[2].mount_point, "/media/My Disk\tx");
        assert_eq!(mounts[2].fs_type, "fuse.sshfs");
    }

    #[test]
    fn unescapes_octal() {
        assert_eq!(unescape("/a\\134b").expect("backslash"), "/a\\b");
        assert_eq!(unescape("/a\\012b").expect("newline"), "/a\nb");
        assert!(matches!(
            unescape("/plain").expect("plain"),
            Cow::Borrowed(_)
        ));
        assert!(unescape("/a\\04").is_err());
        assert!(unescape("/a\\9xx").is_err());
        assert!(unescape("/a\\777").is_err());
        assert!(unescape("/a\\").is_err());
    }

    #[test]
    fn malformed_input_is_an_error() {
        let err = parse_mountinfo("22 27 0:21 / /proc rw,relatime proc proc rw\n")
            .expect_err("no separator");
        assert!(err.contains("line 1") && err.contains("separator"), "{err}");
        let err = parse_mountinfo("22 27 021 / /proc rw - proc proc rw\n").expect_err("device");
        assert!(err.contains("\"021\""), "{err}");
        let err = parse_mountinfo("22 27 0:21 / /proc rw -\n").expect_err("no type");
        assert!(err.contains("type"), "{err}");
        assert!(parse_mountinfo("22 27\n").is_err());
        assert_eq!(parse_mountinfo("").expect("empty"), Vec::new());
    }
}
