//! `plugin_strict_modes` on a system that is neither Unix (`trust.rs`) nor Windows
//! (`trust_windows.rs`): NOT IMPLEMENTED, as hbc knows no such system's permissions.
//! Every file passes and hbc logs once that the check is off (docs/platforms.md).

use std::path::Path;
use std::sync::Once;

use crate::loader::Rejection;

/// Accepts every file (see the module documentation), saying so once.
pub fn check(path: &Path) -> Result<(), Rejection> {
    static SAID: Once = Once::new();
    SAID.call_once(|| {
        tracing::warn!(
            file = %path.display(),
            "plugin_strict_modes is not implemented on this system: plugin files are loaded \
             whoever may write them (docs/platforms.md)"
        );
    });
    Ok(())
}
