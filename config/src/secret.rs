//! `Secret`: a password, token or key from the config file, never printed.

use serde::Deserialize;

/// A password, token or key from the config: read like a string, never shown by `Debug`
/// (so a config dumped into a log or an error shows `"***"`).
#[derive(Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct Secret(pub String);

impl Secret {
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("\"***\"")
    }
}
