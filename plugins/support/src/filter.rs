//! Which names to report (devices, interfaces, ...): a plugin's `include` and `exclude`
//! options.
//!
//! A pattern is a name (`sda`), or a prefix followed by `*` (`loop*`, or `*` for all).
//! `include`, when given, is an allowlist and turns the default exclusions off; `exclude`,
//! when given, replaces the default exclusions. A name matching both is excluded.

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NameFilter {
    include: Vec<String>,
    exclude: Vec<String>,
}

impl NameFilter {
    /// Builds the filter from the options, refusing patterns it would not understand.
    /// `default_exclude` (patterns too) applies when neither option is given.
    pub fn new(
        include: Vec<String>,
        exclude: Option<Vec<String>>,
        default_exclude: &[&str],
    ) -> Result<NameFilter, String> {
        for (option, patterns) in [("include", Some(&include)), ("exclude", exclude.as_ref())] {
            for pattern in patterns.into_iter().flatten() {
                check_pattern(pattern).map_err(|e| format!("invalid options: {option}: {e}"))?;
            }
        }
        let exclude = match exclude {
            Some(exclude) => exclude,
            None if !include.is_empty() => Vec::new(),
            None => default_exclude.iter().map(|p| p.to_string()).collect(),
        };
        Ok(NameFilter { include, exclude })
    }

    pub fn accepts(&self, name: &str) -> bool {
        let any = |patterns: &[String]| patterns.iter().any(|p| matches(p, name));
        (self.include.is_empty() || any(&self.include)) && !any(&self.exclude)
    }
}

fn check_pattern(pattern: &str) -> Result<(), String> {
    if pattern.is_empty() {
        return Err("empty pattern".to_string());
    }
    if pattern.trim_end_matches('*').contains('*') || pattern.ends_with("**") {
        return Err(format!(
            "pattern {pattern:?}: `*` is only allowed once, at the end"
        ));
    }
    Ok(())
}

fn matches(pattern: &str, name: &str) -> bool {
    match pattern.strip_suffix('*') {
        Some(prefix) => name.starts_with(prefix),
        None => pattern == name,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEFAULTS: &[&str] = &["loop*", "lo"];

    fn names(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn defaults_apply_without_options() {
        let f = NameFilter::new(Vec::new(), None, DEFAULTS).expect("filter");
        assert!(f.accepts("sda"));
        assert!(f.accepts("lo0"));
        assert!(!f.accepts("lo"));
        assert!(!f.accepts("loop0"));
        assert!(!f.accepts("loop"));
        let f = NameFilter::new(Vec::new(), None, &[]).expect("no defaults");
        assert!(f.accepts("loop0"));
    }

    #[test]
    fn exclude_replaces_the_defaults() {
        let f =
            NameFilter::new(Vec::new(), Some(names(&["sd*", "vdb"])), DEFAULTS).expect("filter");
        assert!(f.accepts("loop0"));
        assert!(f.accepts("lo"));
        assert!(!f.accepts("sda"));
        assert!(!f.accepts("vdb"));
        assert!(f.accepts("vdbx"));
        let f = NameFilter::new(Vec::new(), Some(Vec::new()), DEFAULTS).expect("empty exclude");
        assert!(f.accepts("loop0"));
    }

    #[test]
    fn include_is_an_allowlist_without_default_exclusions() {
        let f = NameFilter::new(names(&["loop0", "nvme*"]), None, DEFAULTS).expect("filter");
        assert!(f.accepts("loop0"));
        assert!(f.accepts("nvme1n1"));
        assert!(!f.accepts("vda"));
        let f = NameFilter::new(names(&["*"]), Some(names(&["sdb"])), DEFAULTS).expect("filter");
        assert!(f.accepts("sda"));
        assert!(f.accepts("loop0"));
        assert!(!f.accepts("sdb"));
    }

    #[test]
    fn bad_patterns_are_errors() {
        let err = NameFilter::new(names(&["s*a"]), None, DEFAULTS).expect_err("inner star");
        assert!(err.contains("include") && err.contains("s*a"), "{err}");
        let err = NameFilter::new(Vec::new(), Some(names(&["*e"])), DEFAULTS).expect_err("star");
        assert!(err.contains("exclude") && err.contains("*e"), "{err}");
        assert!(NameFilter::new(Vec::new(), Some(names(&[""])), DEFAULTS).is_err());
        assert!(NameFilter::new(Vec::new(), Some(names(&["a**"])), DEFAULTS).is_err());
    }
}
