//! Helpers shared by hbc's monitor plugins, and open to other plugin authors: the
//! `include`/`exclude` name filter, rates of cumulative counters, reading `/proc`
//! files into a reused buffer or from a file kept open (`kept`), and the host root of
//! hbc in a container (`host`).
//!
//! It depends on std only, so a plugin using it still depends on nothing but
//! `hbc-plugin-api` and small system crates. The `test-util` feature adds `testing`,
//! helpers for a plugin's unit tests (they need `hbc-plugin-api`).

mod filter;
mod host;
mod kept;
mod rate;
mod read;
#[cfg(feature = "test-util")]
pub mod testing;

pub use filter::NameFilter;
pub use host::{host_path, host_root, HOST_ROOT_ENV};
pub use kept::{KeptFile, MAX_KEPT_FILE_BYTES};
pub use rate::{per_second, wait_until_elapsed};
pub use read::read_into;
