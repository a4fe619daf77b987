//! The tidy test (as rust-analyzer's `xtask/src/tidy.rs`): conventions the compiler does
//! not check, checked on the tracked files so they stay true. Run with the rest of the
//! suite (`cargo nextest run --workspace`).
//!
//! - every `.rs` file opens with a `//!` module doc;
//! - every API route hbd registers is in `docs/openapi.yaml`, with its method, and every
//!   documented path and method is registered;
//! - no tracked file names a folder outside the repository or of one machine.

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;
    use std::path::{Path, PathBuf};
    use std::process::Command;

    fn root() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .parent()
            .expect("xtask lives in the repository")
            .to_path_buf()
    }

    /// The tracked files (`git ls-files`), or every file under the root when this is not
    /// a git checkout.
    fn tracked() -> Vec<PathBuf> {
        let out = Command::new("git")
            .args(["ls-files", "-z"])
            .current_dir(root())
            .output()
            .expect("git ls-files runs");
        assert!(out.status.success(), "git ls-files failed");
        out.stdout
            .split(|b| *b == 0)
            .filter(|p| !p.is_empty())
            .map(|p| PathBuf::from(String::from_utf8_lossy(p).into_owned()))
            .filter(|p| root().join(p).is_file())
            .collect()
    }

    #[test]
    fn every_rust_file_opens_with_a_module_doc() {
        let mut missing = Vec::new();
        for p in tracked() {
            if p.extension().is_some_and(|e| e == "rs") {
                let text = std::fs::read_to_string(root().join(&p)).unwrap_or_default();
                let first = text
                    .lines()
                    .find(|l| !l.trim().is_empty() && !l.starts_with("#!["))
                    .unwrap_or("");
                if !first.starts_with("//!") {
                    missing.push(p.display().to_string());
                }
            }
        }
        assert!(
            missing.is_empty(),
            "these files do not open with a `//!` module doc:\n{}",
            missing.join("\n")
        );
    }

    /// `(METHOD, path)` of every route registered in hbd's sources: `.route("p",
    /// web::get()...)`, inside the last `web::scope("prefix")` of the same statement.
    fn registered_routes() -> BTreeSet<(String, String)> {
        let mut routes = BTreeSet::new();
        let dir = root().join("server/src");
        let mut files = vec![dir.clone()];
        let mut sources = Vec::new();
        while let Some(d) = files.pop() {
            for e in std::fs::read_dir(&d).expect("server/src reads").flatten() {
                let p = e.path();
                if p.is_dir() {
                    files.push(p);
                } else if p.extension().is_some_and(|e| e == "rs") {
                    sources.push(p);
                }
            }
        }
        for p in sources {
            // ws.rs serves the WebSocket port (its `/` is that port's, not the API's).
            if p.file_name().is_some_and(|n| n == "ws.rs") {
                continue;
            }
            let text: String = std::fs::read_to_string(&p)
                .expect("source reads")
                .split_whitespace()
                .collect();
            let mut prefix = String::new();
            let mut rest = text.as_str();
            loop {
                let next = ["web::scope(\"", ".route(\"", "cfg."]
                    .iter()
                    .filter_map(|m| rest.find(m).map(|i| (i, *m)))
                    .min();
                let Some((i, m)) = next else { break };
                // `cfg.route(...)`: keep the `.` for the route that follows.
                let skip = if m == "cfg." { 3 } else { m.len() };
                rest = &rest[i + skip..];
                match m {
                    "cfg." => prefix.clear(),
                    "web::scope(\"" => {
                        let end = rest.find('"').expect("closing quote");
                        prefix = rest[..end].to_string();
                    }
                    _ => {
                        let end = rest.find('"').expect("closing quote");
                        let path = format!("{prefix}{}", &rest[..end]);
                        let after = &rest[end..];
                        if let Some(m) = after.strip_prefix("\",web::") {
                            let method = m.split('(').next().unwrap_or("").to_uppercase();
                            routes.insert((method, path));
                        }
                    }
                }
            }
        }
        routes
    }

    /// `(METHOD, path)` of every operation in docs/openapi.yaml.
    fn documented_routes() -> BTreeSet<(String, String)> {
        let text =
            std::fs::read_to_string(root().join("docs/openapi.yaml")).expect("openapi reads");
        let mut routes = BTreeSet::new();
        let mut path = None;
        for line in text.lines() {
            if let Some(p) = line.strip_prefix("  /") {
                path = Some(format!("/{}", p.trim_end().trim_end_matches(':')));
            } else if !line.starts_with("   ") && !line.trim().is_empty() {
                if !line.starts_with("  ") {
                    path = None;
                }
            } else if let (Some(p), Some(m)) = (&path, line.strip_prefix("    ")) {
                let m = m.trim_end().trim_end_matches(':');
                if ["get", "post", "put", "delete", "patch", "head"].contains(&m) {
                    routes.insert((m.to_uppercase(), p.clone()));
                }
            }
        }
        routes
    }

    #[test]
    fn every_api_route_is_documented_and_every_documented_one_exists() {
        let api = |p: &str| p.starts_with("/api/") || ["/healthz", "/metrics", "/ws"].contains(&p);
        let registered: BTreeSet<_> = registered_routes()
            .into_iter()
            .filter(|(_, p)| api(p))
            .collect();
        let documented = documented_routes();
        assert!(registered.len() > 10, "the route scan found {registered:?}");
        let undocumented: Vec<_> = registered.difference(&documented).collect();
        let missing: Vec<_> = documented.difference(&registered).collect();
        assert!(
            undocumented.is_empty(),
            "routes missing from docs/openapi.yaml: {undocumented:?}"
        );
        assert!(
            missing.is_empty(),
            "docs/openapi.yaml documents routes hbd does not have: {missing:?}"
        );
    }

    #[test]
    fn no_tracked_file_names_a_folder_outside_the_repository() {
        // Built from pieces so that this file does not name them itself.
        let needles = [
            ["..", "/shared/"].concat(),
            ["/wo", "rk/"].concat(),
            ["/ro", "ot/"].concat(),
            ["/ho", "me/"].concat(),
        ];
        let mut found = Vec::new();
        for p in tracked() {
            let Ok(text) = std::fs::read_to_string(root().join(&p)) else {
                continue; // binary
            };
            for (n, line) in text.lines().enumerate() {
                if let Some(needle) = needles.iter().find(|s| line.contains(s.as_str())) {
                    found.push(format!("{}:{}: {needle}", p.display(), n + 1));
                }
            }
        }
        assert!(
            found.is_empty(),
            "tracked files name folders outside the repository:\n{}",
            found.join("\n")
        );
    }
}
