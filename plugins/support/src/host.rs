//! The monitored host's files when hbc runs in a container: hbc sets `HBC_HOST_ROOT`
//! (from its `host_root` key, `--host-root` or the same variable) to where the host's
//! `/proc`, `/sys` and `/` are mounted, like node_exporter's `--path.rootfs`; plugins
//! read `/proc/meminfo` as `<root>/proc/meminfo`. Unset, empty or `/`: no prefix.

use std::borrow::Cow;
use std::sync::OnceLock;

/// The environment variable hbc sets for its plugins (in-process and isolated workers).
pub const HOST_ROOT_ENV: &str = "HBC_HOST_ROOT";

/// The host root of this process, read once: `None` when plugins see the host directly.
pub fn host_root() -> Option<&'static str> {
    static ROOT: OnceLock<Option<String>> = OnceLock::new();
    ROOT.get_or_init(|| normalize(std::env::var(HOST_ROOT_ENV).ok()))
        .as_deref()
}

/// `path` (an absolute path on the monitored host, such as `/proc/stat`) as this process
/// reaches it: under [`host_root`] when there is one, unchanged otherwise.
pub fn host_path(path: &str) -> Cow<'_, str> {
    join(host_root(), path)
}

fn normalize(root: Option<String>) -> Option<String> {
    let root = root?;
    let root = root.trim_end_matches('/');
    (!root.is_empty()).then(|| root.to_string())
}

fn join<'a>(root: Option<&str>, path: &'a str) -> Cow<'a, str> {
    match root {
        Some(root) if path.starts_with('/') => Cow::Owned(format!("{root}{path}")),
        _ => Cow::Borrowed(path),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn absolute_paths_go_under_the_root() {
        assert_eq!(join(Some("/host"), "/proc/stat"), "/host/proc/stat");
        assert_eq!(join(None, "/proc/stat"), "/proc/stat");
        assert_eq!(join(Some("/host"), "relative"), "relative");
    }

    #[test]
    fn no_root_when_unset_empty_or_slash() {
        assert_eq!(normalize(None), None);
        assert_eq!(normalize(Some(String::new())), None);
        assert_eq!(normalize(Some("/".into())), None);
        assert_eq!(normalize(Some("/host/".into())), Some("/host".into()));
    }
}
