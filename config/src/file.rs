//! Where the config file is looked for (`-c FILE`, else `~/.hb.yaml`, else the system
//! file) and the warning for a file that holds secrets every user may read.

use std::path::{Path, PathBuf};

/// Reads the config file both programs look for: `explicit` (which must exist), else
/// `~/.hb.yaml`, else `system` (`/etc/hbc.yaml` or `/etc/hbd.yaml`). `Ok(None)` when
/// none exists (built-in defaults); the error names the file that could not be read.
pub fn read_config_file(
    explicit: Option<&Path>,
    system: &str,
) -> Result<Option<(PathBuf, String)>, (PathBuf, std::io::Error)> {
    let candidates: Vec<PathBuf> = match explicit {
        Some(p) => vec![p.to_path_buf()],
        // (Windows has no HOME unless a Unix-like shell set it: USERPROFILE is the same.)
        None => std::env::var_os("HOME")
            .or_else(|| std::env::var_os("USERPROFILE").filter(|_| cfg!(windows)))
            .map(|home| PathBuf::from(home).join(".hb.yaml"))
            .into_iter()
            .chain([PathBuf::from(system)])
            .collect(),
    };
    for path in candidates {
        match std::fs::read_to_string(&path) {
            Ok(text) => return Ok(Some((path, text))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && explicit.is_none() => {}
            Err(e) => return Err((path, e)),
        }
    }
    Ok(None)
}

/// A warning when `path` holds secrets (the keys named in `secrets`) and every user of the
/// machine may read it. Group-readable is fine (the packages install hbd's file 0640
/// root:hbd); `None` when nothing is wrong or the mode cannot be read.
pub fn readable_secrets_warning(path: &Path, secrets: &[&str]) -> Option<String> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if secrets.is_empty() {
            return None;
        }
        let mode = std::fs::metadata(path).ok()?.permissions().mode();
        (mode & 0o004 != 0).then(|| {
            format!(
                "{} holds secrets ({}) and every user of this machine can read it (mode {:04o}); \
                 run chmod o-r {} (and chgrp it to the service's group if needed)",
                path.display(),
                secrets.join(", "),
                mode & 0o7777,
                path.display()
            )
        })
    }
    #[cfg(not(unix))]
    {
        let _ = (path, secrets);
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_explicit_file_must_exist_the_defaults_need_not() {
        let dir = std::env::temp_dir().join(format!("hb-config-file-{}", std::process::id()));
        let missing = dir.join("nope.yaml");
        let err = read_config_file(Some(&missing), "/nonexistent/hbx.yaml").expect_err("missing");
        assert_eq!(err.0, missing);
        std::fs::create_dir_all(&dir).expect("dir");
        let file = dir.join("c.yaml");
        std::fs::write(&file, "interval: 5s\n").expect("write");
        let got = read_config_file(Some(&file), "/nonexistent/hbx.yaml").expect("read");
        assert_eq!(got, Some((file.clone(), "interval: 5s\n".to_string())));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
