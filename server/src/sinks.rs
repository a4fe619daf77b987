//! Which subsystems run: each is started here from the config and returned as a sink.
//! (Notifications and dynamic DNS add themselves here.)

use std::path::Path;
use std::sync::Arc;

use anyhow::Result;

use crate::config::Config;
use crate::sink::{Emitter, Sink};

/// Starts every configured subsystem.
pub fn start(config: &Config, data_dir: &Path, emitter: Emitter) -> Result<Vec<Arc<dyn Sink>>> {
    let mut sinks: Vec<Arc<dyn Sink>> = Vec::new();
    // Always (idle without dyndnshosts), so that a reload can add names.
    sinks.push(crate::dyndns::start(config, data_dir, emitter.clone())?);
    // Always: silences and the status work without channels too.
    let notify = crate::notify::start(config, data_dir, emitter.clone())?;
    sinks.push(Arc::new(notify));
    Ok(sinks)
}
