//! Who may have written a plugin file. Loading a library runs its code as hbc's user, so,
//! as OpenSSH does with `StrictModes`, the file and every folder above it must be owned by
//! root or by hbc's own user and must not be writable by group or others: anyone who can
//! replace the file, or rename the folder it sits in, could otherwise run code as hbc.
//!
//! One exception, for folders *above* the plugin folder only: a world-writable folder with
//! the sticky bit (`/tmp`) lets others add entries but not rename or remove ours, so it is
//! accepted there. The plugin folder itself may never be writable by others.
//! `plugin_strict_modes: false` turns the check off (development only).

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use crate::loader::Rejection;

const REMEDY: &str = "make the file and its folders owned by root (or hbc's user) and not \
writable by group or others (chown root:root, chmod go-w), or set plugin_strict_modes: false \
for development";

const GROUP_OR_OTHER_WRITE: u32 = 0o022;
const STICKY: u32 = 0o1000;

/// Checks `path` and the folders above it (both as named and with symbolic links
/// resolved) for the running user.
pub fn check(path: &Path) -> Result<(), Rejection> {
    check_as(path, euid())
}

fn euid() -> u32 {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() }
}

/// [`check`] for a given effective user id.
pub fn check_as(path: &Path, uid: u32) -> Result<(), Rejection> {
    let untrusted = |reason: String| Rejection {
        reason: format!("refused (plugin_strict_modes): {reason}"),
        remedy: REMEDY,
        retry: false,
    };
    let named = absolute(path).map_err(|e| untrusted(format!("cannot resolve the path: {e}")))?;
    let real = std::fs::canonicalize(path)
        .map_err(|e| untrusted(format!("cannot resolve {}: {e}", path.display())))?;

    let md = std::fs::metadata(&real)
        .map_err(|e| untrusted(format!("cannot read {}: {e}", real.display())))?;
    if let Some(why) = fault(&md, uid, false) {
        return Err(untrusted(format!("the file {} {why}", real.display())));
    }
    // The folders above the file as named and, when links lead elsewhere, as resolved.
    let paths = if named == real {
        vec![&real]
    } else {
        vec![&named, &real]
    };
    for file in paths {
        for (depth, dir) in file.ancestors().skip(1).enumerate() {
            if dir.as_os_str().is_empty() {
                continue;
            }
            let md = std::fs::metadata(dir)
                .map_err(|e| untrusted(format!("cannot read folder {}: {e}", dir.display())))?;
            if let Some(why) = fault(&md, uid, depth > 0) {
                return Err(untrusted(format!("the folder {} {why}", dir.display())));
            }
        }
    }
    Ok(())
}

/// What is wrong with one file or folder, if anything.
fn fault(md: &std::fs::Metadata, uid: u32, sticky_ok: bool) -> Option<String> {
    let owner = md.uid();
    if owner != 0 && owner != uid {
        return Some(format!(
            "is owned by user id {owner}, not by root or hbc's user (id {uid})"
        ));
    }
    let mode = md.mode();
    if mode & GROUP_OR_OTHER_WRITE != 0 && !(sticky_ok && md.is_dir() && mode & STICKY != 0) {
        let who = match (mode & 0o020 != 0, mode & 0o002 != 0) {
            (true, true) => "group and others",
            (true, false) => "its group",
            _ => "others",
        };
        return Some(format!("is writable by {who} (mode {:04o})", mode & 0o7777));
    }
    None
}

fn absolute(path: &Path) -> std::io::Result<PathBuf> {
    if path.is_absolute() {
        Ok(path.to_path_buf())
    } else {
        Ok(std::env::current_dir()?.join(path))
    }
}

#[cfg(test)]
mod tests {
    use std::fs::{self, Permissions};
    use std::os::unix::fs::{symlink, PermissionsExt};

    use super::*;

    fn me() -> u32 {
        euid()
    }

    /// A plugin folder (0755) with one file (0644) inside a private temporary folder.
    fn setup() -> (tempfile::TempDir, PathBuf, PathBuf) {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path().join("plugins");
        fs::create_dir(&dir).expect("mkdir");
        fs::set_permissions(&dir, Permissions::from_mode(0o755)).expect("chmod");
        let file = dir.join("libx.so");
        fs::write(&file, b"\x7fELF").expect("write");
        fs::set_permissions(&file, Permissions::from_mode(0o644)).expect("chmod");
        (tmp, dir, file)
    }

    fn reason(r: Result<(), Rejection>) -> String {
        match r {
            Ok(()) => panic!("expected a refusal"),
            Err(e) => e.reason,
        }
    }

    #[test]
    fn a_private_file_is_trusted() {
        let (_tmp, _dir, file) = setup();
        assert_eq!(check(&file), Ok(()));
    }

    #[test]
    fn a_file_writable_by_others_or_group_is_refused() {
        let (_tmp, _dir, file) = setup();
        fs::set_permissions(&file, Permissions::from_mode(0o646)).expect("chmod");
        let r = reason(check(&file));
        assert!(r.contains("writable by others (mode 0646)"), "{r}");
        assert!(r.contains("libx.so"), "{r}");
        fs::set_permissions(&file, Permissions::from_mode(0o664)).expect("chmod");
        assert!(reason(check(&file)).contains("writable by its group"));
    }

    #[test]
    fn a_writable_plugin_folder_is_refused_even_with_the_sticky_bit() {
        let (_tmp, dir, file) = setup();
        fs::set_permissions(&dir, Permissions::from_mode(0o1777)).expect("chmod");
        let r = reason(check(&file));
        assert!(
            r.contains("the folder") && r.contains("group and others"),
            "{r}"
        );
    }

    #[test]
    fn a_writable_folder_higher_up_is_refused_unless_sticky() {
        let (tmp, _dir, file) = setup();
        fs::set_permissions(tmp.path(), Permissions::from_mode(0o777)).expect("chmod");
        let r = reason(check(&file));
        assert!(r.contains(&tmp.path().display().to_string()), "{r}");
        fs::set_permissions(tmp.path(), Permissions::from_mode(0o1777)).expect("chmod");
        assert_eq!(check(&file), Ok(()));
    }

    #[test]
    fn a_symlink_is_checked_where_it_points_and_where_it_is() {
        let (tmp, dir, file) = setup();
        // A trusted link in a trusted folder, to a file that others may write.
        let open = tmp.path().join("open");
        fs::create_dir(&open).expect("mkdir");
        fs::set_permissions(&open, Permissions::from_mode(0o777)).expect("chmod");
        let target = open.join("liby.so");
        fs::write(&target, b"\x7fELF").expect("write");
        fs::set_permissions(&target, Permissions::from_mode(0o644)).expect("chmod");
        let link = dir.join("liby.so");
        symlink(&target, &link).expect("symlink");
        let r = reason(check(&link));
        assert!(r.contains(&open.display().to_string()), "{r}");
        // And a link to the trusted file is fine.
        let good = dir.join("libz.so");
        symlink(&file, &good).expect("symlink");
        assert_eq!(check(&good), Ok(()));
    }

    #[test]
    fn a_file_of_another_user_is_refused() {
        let (_tmp, _dir, file) = setup();
        // Seen as a user who is neither root nor the owner.
        let stranger = me().wrapping_add(4242).max(1);
        if me() == 0 {
            // Root owns the file, and root is always trusted.
            assert_eq!(check_as(&file, stranger), Ok(()));
        } else {
            let r = reason(check_as(&file, stranger));
            assert!(r.contains("is owned by user id"), "{r}");
        }
    }

    #[test]
    fn a_file_chowned_to_nobody_is_refused() {
        if me() != 0 {
            assert!(
                std::env::var_os("CI").is_none(),
                "this test needs root (to chown) and CI runs as root"
            );
            eprintln!("skipped: needs root to chown");
            return;
        }
        let (_tmp, _dir, file) = setup();
        std::os::unix::fs::chown(&file, Some(65534), Some(65534)).expect("chown");
        let r = reason(check(&file));
        assert!(r.contains("owned by user id 65534"), "{r}");
    }

    #[test]
    fn a_missing_file_is_refused_with_its_name() {
        let r = reason(check(Path::new("/nonexistent/libq.so")));
        assert!(r.contains("/nonexistent/libq.so"), "{r}");
    }
}
