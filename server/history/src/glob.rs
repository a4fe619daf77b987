//! Reading-key globs for `include`/`exclude`: `*` (any run of characters, dots
//! included) and `?` (one character); everything else matches itself. A pure matcher
//! without backtracking blow-up (the classic two-pointer algorithm: linear in the key
//! for each `*`).

/// One compiled pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Glob(Vec<char>);

impl Glob {
    pub fn new(pattern: &str) -> Glob {
        Glob(pattern.chars().collect())
    }

    pub fn matches(&self, key: &str) -> bool {
        let p = &self.0;
        let k: Vec<char> = key.chars().collect();
        let (mut pi, mut ki) = (0usize, 0usize);
        // Where the last `*` was, and the key position it is matched up to.
        let mut star: Option<(usize, usize)> = None;
        while ki < k.len() {
            if pi < p.len() && (p[pi] == '?' || p[pi] == k[ki]) {
                pi += 1;
                ki += 1;
            } else if pi < p.len() && p[pi] == '*' {
                star = Some((pi, ki));
                pi += 1;
            } else if let Some((sp, sk)) = star {
                pi = sp + 1;
                ki = sk + 1;
                star = Some((sp, sk + 1));
            } else {
                return false;
            }
        }
        p[pi..].iter().all(|&c| c == '*')
    }
}

#[cfg(test)]
mod tests {
    use super::Glob;

    #[test]
    fn matches_like_a_shell_glob_without_classes() {
        for (p, k, want) in [
            ("cpu.*", "cpu.usage", true),
            ("cpu.*", "cpu.", true),
            ("cpu.*", "cpux", false),
            ("*", "", true),
            ("", "", true),
            ("", "a", false),
            ("a?c", "abc", true),
            ("a?c", "ac", false),
            ("*.used*", "fs./var.used_pct", true),
            ("*a*b", "xaxxb", true),
            ("*a*b", "xaxxbc", false),
            ("fs.*.free", "fs./.free", true),
            ("ü*", "über", true),
        ] {
            assert_eq!(Glob::new(p).matches(k), want, "{p} ~ {k}");
        }
    }

    #[test]
    fn many_stars_stay_fast() {
        let g = Glob::new("*a*a*a*a*a*a*a*a*b");
        let key = "a".repeat(10_000);
        assert!(!g.matches(&key));
    }
}
