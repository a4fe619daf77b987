//! An hbc monitor plugin: how many files wait in a spool folder (`queue.waiting`).
//!
//! The template of docs/writing-plugins.md: a plain Rust type implementing
//! [`Plugin`], exported with [`export_plugin!`]. Copy this crate, rename it, and replace
//! the counting with what you measure.

use hbc_plugin_api::{export_plugin, Level, Options, Plugin, Reading};

/// The plugin's options: `plugins.queue.options` in hbc's config.
#[derive(Debug, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
struct Config {
    /// The folder whose entries are counted.
    spool: String,
    /// Above this many files the plugin reports WARNING itself (hbc's thresholds apply
    /// as well, and the worse level wins).
    warn_at: u64,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            spool: "/var/spool/queue".into(),
            warn_at: 1000,
        }
    }
}

pub struct Queue {
    config: Config,
}

/// The reading for `waiting` files: a pure function, tested without a folder.
fn reading(waiting: u64, warn_at: u64) -> Reading {
    let value = i64::try_from(waiting).unwrap_or(i64::MAX);
    let r = Reading::integer("queue.waiting", value, "");
    if waiting > warn_at {
        r.with_state(Level::Warning)
            .with_message(format!("{waiting} files waiting (more than {warn_at})"))
    } else {
        r
    }
}

impl Plugin for Queue {
    const NAME: &'static str = "queue";
    const DESCRIPTION: &'static str = "files waiting in a spool folder";

    fn new(options: &Options) -> Result<Self, String> {
        // Errors name the bad field: "invalid options: warn_at: invalid type ...".
        Ok(Queue {
            config: options.parse()?,
        })
    }

    fn collect(&mut self) -> Result<Vec<Reading>, String> {
        let entries = std::fs::read_dir(&self.config.spool)
            .map_err(|e| format!("cannot read {}: {e}", self.config.spool))?;
        let waiting = entries.count() as u64;
        Ok(vec![reading(waiting, self.config.warn_at)])
    }
}

export_plugin!(Queue);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn more_than_warn_at_is_a_warning() {
        assert_eq!(reading(3, 10).state.into_option(), None);
        let r = reading(11, 10);
        assert_eq!(r.state.into_option(), Some(Level::Warning));
        assert_eq!(r.message.as_str(), "11 files waiting (more than 10)");
    }

    #[test]
    fn options_name_the_bad_field() {
        let options = Options::from_json(r#"{"warn_at": "many"}"#).expect("json");
        let err = Queue::new(&options).err().expect("refused");
        assert!(err.contains("warn_at"), "{err}");
    }
}
