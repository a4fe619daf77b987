//! Which subsystems run: each is started here from the config and returned as a sink.
//! (Notifications and dynamic DNS add themselves here.)

use std::path::Path;
use std::sync::Arc;

use anyhow::Result;

use crate::config::Config;
use crate::sink::{Emitter, Sink};

/// Starts every configured subsystem.
pub fn start(_config: &Config, _data_dir: &Path, _emitter: Emitter) -> Result<Vec<Arc<dyn Sink>>> {
    let sinks: Vec<Arc<dyn Sink>> = Vec::new();
    Ok(sinks)
}
