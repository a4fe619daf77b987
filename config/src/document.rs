//! One config file read as several sections. The YAML stays flat (every key at the top
//! level, as operators know it), and each subsystem owns a struct of the keys it reads;
//! each struct is deserialized from the same text, so an error names the key and the line
//! and `serde_ignored` still reports the keys nobody reads (`#[serde(flatten)]` would lose
//! them: dtolnay/serde-ignored#10). A key is unknown when no section of the program and no
//! key of the other program (`crate::keys`) names it.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;

/// A config error, shown to a person.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config file {path}: {message}")]
    Invalid { path: PathBuf, message: String },
}

/// The text of one config file, read section by section.
pub struct Document<'a> {
    text: &'a str,
    path: &'a Path,
    /// Top-level keys some section reads.
    known: BTreeSet<&'static str>,
    /// Top-level keys a section did not read, in the order met (with repeats).
    top_ignored: Vec<String>,
    /// Keys below a known key that its section did not read (`plugins.cpu.x`).
    nested_ignored: Vec<String>,
}

impl<'a> Document<'a> {
    pub fn new(text: &'a str, path: &'a Path) -> Self {
        Document {
            text,
            path,
            known: BTreeSet::new(),
            top_ignored: Vec::new(),
            nested_ignored: Vec::new(),
        }
    }

    /// The file's path, for messages.
    pub fn path(&self) -> &Path {
        self.path
    }

    /// Reads the keys of `T` from the top level (defaults for missing keys, given by
    /// `T::default()` through `#[serde(default)]`). The error names key and line.
    pub fn section<T: DeserializeOwned + Default>(&mut self) -> Result<T, ConfigError> {
        self.known.extend(fields_of::<T>());
        if self.text.trim().is_empty() {
            return Ok(T::default());
        }
        let de = serde_norway::Deserializer::from_str(self.text);
        let (mut top, mut nested) = (Vec::new(), Vec::new());
        let value = serde_ignored::deserialize(de, |p| match &p {
            serde_ignored::Path::Map {
                parent: serde_ignored::Path::Root,
                key,
            } => top.push(key.clone()),
            _ => nested.push(p.to_string()),
        })
        .map_err(|e| self.invalid(complete_key_path(&e, self.text)))?;
        self.top_ignored.extend(top);
        self.nested_ignored.extend(nested);
        Ok(value)
    }

    /// An error about this file.
    pub fn invalid(&self, message: String) -> ConfigError {
        ConfigError::Invalid {
            path: self.path.to_path_buf(),
            message,
        }
    }

    /// The keys no section read, except those `foreign` says belong to the other
    /// program, once each: unknown top-level keys in file order, then unknown keys below
    /// known ones.
    pub fn unknown_keys(&self, foreign: impl Fn(&str) -> bool) -> Vec<String> {
        let mut seen = BTreeSet::new();
        self.top_ignored
            .iter()
            .filter(|k| !self.known.contains(k.as_str()) && !foreign(k))
            .chain(self.nested_ignored.iter())
            .filter(|k| seen.insert(k.as_str()))
            .cloned()
            .collect()
    }

    /// [`Document::unknown_keys`] as the warnings both programs print.
    pub fn warnings(&self, foreign: impl Fn(&str) -> bool) -> Vec<String> {
        self.unknown_keys(foreign)
            .into_iter()
            .map(|k| {
                format!(
                    "config file {}: unknown key `{k}` is ignored (check its spelling)",
                    self.path.display()
                )
            })
            .collect()
    }
}

/// The field names a `#[derive(Deserialize)]` struct reads (serde hands them to
/// `deserialize_struct`); empty for other types.
pub fn fields_of<T: DeserializeOwned>() -> &'static [&'static str] {
    let mut probe = FieldsProbe(&[]);
    let _ = T::deserialize(&mut probe);
    probe.0
}

struct FieldsProbe(&'static [&'static str]);

#[derive(Debug)]
struct ProbeDone;

impl std::fmt::Display for ProbeDone {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("field probe")
    }
}

impl std::error::Error for ProbeDone {}

impl serde::de::Error for ProbeDone {
    fn custom<M: std::fmt::Display>(_: M) -> Self {
        ProbeDone
    }
}

impl<'de> serde::Deserializer<'de> for &mut FieldsProbe {
    type Error = ProbeDone;

    fn deserialize_any<V: serde::de::Visitor<'de>>(self, _: V) -> Result<V::Value, ProbeDone> {
        Err(ProbeDone)
    }

    fn deserialize_struct<V: serde::de::Visitor<'de>>(
        self,
        _name: &'static str,
        fields: &'static [&'static str],
        _visitor: V,
    ) -> Result<V::Value, ProbeDone> {
        self.0 = fields;
        Err(ProbeDone)
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes
        byte_buf option unit unit_struct newtype_struct seq tuple tuple_struct map enum
        identifier ignored_any
    }
}

/// serde's path stops at the map holding a field whose own deserializer failed
/// (`plugins.cpu: "soon" is not a duration`); add the key from the line the error points
/// at, so the message names `plugins.cpu.timeout`.
pub fn complete_key_path(e: &serde_norway::Error, text: &str) -> String {
    let msg = e.to_string();
    let Some(loc) = e.location() else { return msg };
    let Some(line) = text.lines().nth(loc.line().saturating_sub(1)) else {
        return msg;
    };
    let Some((key, _)) = line.trim_start().trim_start_matches("- ").split_once(':') else {
        return msg;
    };
    let key = key.trim();
    match msg.split_once(": ") {
        Some((path, rest))
            if !path.contains(' ')
                && !path.ends_with(key)
                && !key.is_empty()
                && !key.contains(' ') =>
        {
            format!("{path}.{key}: {rest}")
        }
        _ => msg,
    }
}

/// The top-level key of a path that `serde_ignored` reports as unknown, which decides
/// whose key it is. Not the text before the first `.` of the path as displayed: a YAML key
/// may itself hold dots (`hostname..: x`), and hbd then took it for a key of hbc's with
/// something below it and stayed silent (found by the `config` fuzz target).
pub fn top_level_key(path: &serde_ignored::Path<'_>) -> String {
    use serde_ignored::Path;
    match path {
        Path::Root => String::new(),
        Path::Map {
            parent: Path::Root,
            key,
        } => key.clone(),
        Path::Map { parent, .. }
        | Path::Seq { parent, .. }
        | Path::Some { parent }
        | Path::NewtypeStruct { parent }
        | Path::NewtypeVariant { parent } => top_level_key(parent),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Default, Deserialize)]
    #[serde(default)]
    struct A {
        port: u16,
        #[serde(deserialize_with = "crate::duration")]
        every: std::time::Duration,
    }

    #[derive(Debug, Default, Deserialize)]
    #[serde(default)]
    struct B {
        name: String,
        routes: Vec<Route>,
    }

    #[derive(Debug, Default, Deserialize)]
    #[serde(default)]
    struct Route {
        to: String,
    }

    fn read(text: &str) -> Result<(A, B, Vec<String>), String> {
        let mut doc = Document::new(text, Path::new("t.yaml"));
        let a: A = doc.section().map_err(|e| e.to_string())?;
        let b: B = doc.section().map_err(|e| e.to_string())?;
        let w = doc.unknown_keys(|k| k == "theirs");
        Ok((a, b, w))
    }

    #[test]
    fn fields_are_probed() {
        assert_eq!(fields_of::<A>(), &["port", "every"]);
        assert!(fields_of::<u32>().is_empty());
    }

    #[test]
    fn sections_share_one_flat_file() {
        let (a, b, w) = read("port: 7\nname: x\nevery: 2s\ntheirs: 1\n").expect("ok");
        assert_eq!(a.port, 7);
        assert_eq!(a.every, std::time::Duration::from_secs(2));
        assert_eq!(b.name, "x");
        assert!(w.is_empty(), "{w:?}");
    }

    #[test]
    fn unknown_keys_top_and_nested_once_each() {
        let (_, _, w) = read("prot: 7\nroutes: [{to: a, t0: b}]\nname..: y\n").expect("ok");
        assert_eq!(w, ["prot", "name..", "routes.0.t0"], "{w:?}");
    }

    #[test]
    fn errors_name_key_and_line() {
        let e = read("name: x\nevery: soon\n").expect_err("bad");
        assert!(e.contains("every") && e.contains("line 2"), "{e}");
        assert!(e.contains("t.yaml"), "{e}");
    }

    #[test]
    fn empty_text_is_defaults() {
        let (a, _, w) = read("\n").expect("ok");
        assert_eq!(a.port, 0);
        assert!(w.is_empty());
    }
}
