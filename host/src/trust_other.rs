//! `plugin_strict_modes` off Unix: NOT IMPLEMENTED. On Windows the check would read each
//! file's and folder's ACL (`GetNamedSecurityInfoW`) and refuse any write, append,
//! delete or ownership right granted to a SID other than Administrators, SYSTEM and hbc's
//! own account; that is not written yet, so every file passes and hbc logs once that the
//! check is off (docs/platforms.md). Protect `%ProgramData%\hbc\plugins` with its ACL.

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
