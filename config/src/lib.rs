//! The config-file plumbing hbc and hbd share (`~/.hb.yaml` holds both programs' keys side
//! by side): where the file is looked for, the duration syntax, reading the flat YAML as
//! sections with errors that name key and line, unknown-key warnings that know the other
//! program's keys, and `Secret`, the string that never prints.
//!
//! **Invariant:** no I/O beyond reading the file and its mode; nothing of either program's
//! own settings (those are the sections, owned by the crates that use them).

pub mod check;
mod document;
mod duration;
mod file;
pub mod keys;
mod secret;

pub use document::{complete_key_path, fields_of, top_level_key, ConfigError, Document};
pub use duration::{duration, opt_duration, parse_duration};
pub use file::{read_config_file, readable_secrets_warning};
pub use secret::Secret;
