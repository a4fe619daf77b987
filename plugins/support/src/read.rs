//! Reading a whole (small) file into a buffer the plugin keeps, so that a collect
//! allocates little.

use std::io::Read;

use crate::host_path;

/// Reads the file at `path` into `buffer`, replacing what was there. An absolute `path`
/// is a path on the monitored host: with a host root (hbc in a container, [`host_path`])
/// `/proc/stat` is read as `<root>/proc/stat`. The error names the plugin and the file
/// read: `cpu plugin: cannot read /proc/stat: ...`.
pub fn read_into(plugin: &str, path: &str, buffer: &mut String) -> Result<(), String> {
    buffer.clear();
    let path = &*host_path(path);
    std::fs::File::open(path)
        .and_then(|mut file| file.read_to_string(buffer))
        .map(drop)
        .map_err(|e| format!("{plugin} plugin: cannot read {path}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_the_buffer() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("file");
        std::fs::write(&path, "new text\n").expect("write");
        let path = path.to_str().expect("UTF-8 path");

        let mut buffer = String::from("old text that is longer");
        read_into("test", path, &mut buffer).expect("read");
        assert_eq!(buffer, "new text\n");
    }

    #[test]
    fn errors_name_the_plugin_and_the_file() {
        let mut buffer = String::from("stale");
        let err = read_into("disk", "/nonexistent/diskstats", &mut buffer).expect_err("missing");
        assert!(
            err.starts_with("disk plugin: cannot read /nonexistent/diskstats: "),
            "{err}"
        );
        assert!(buffer.is_empty());
    }
}
