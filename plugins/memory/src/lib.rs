//! The `memory` monitor plugin: RAM and swap from `/proc/meminfo` on Linux, from the
//! system's own figures elsewhere (`other.rs`, docs/platforms.md).
//!
//! Readings (bytes are integers, percentages floating point):
//! - `memory.total_bytes` (B): `MemTotal`.
//! - `memory.available_bytes` (B): `MemAvailable`, what can be had without swapping.
//! - `memory.used_bytes` (B): total minus available.
//! - `memory.used_percent` (%): used in percent of total.
//! - `memory.swap_total_bytes` (B), `memory.swap_used_bytes` (B): `SwapTotal` and
//!   `SwapTotal - SwapFree`.
//!
//! There are no options; the plugin takes `{}`.

// Off Linux the `/proc/meminfo` parser is compiled but unused.
#![cfg_attr(not(target_os = "linux"), allow(dead_code))]

mod meminfo;
#[cfg(not(target_os = "linux"))]
mod other;

use hbc_plugin_api::{Options, Plugin, Reading};

#[cfg(target_os = "linux")]
use crate::meminfo::parse_meminfo;
use crate::meminfo::MemInfo;

const PROC_MEMINFO: &str = "/proc/meminfo";

/// `plugins.memory.options` in hbc's config: none yet, but unknown ones are refused.
#[derive(serde::Deserialize, Default, Debug)]
#[serde(default, deny_unknown_fields)]
struct MemoryOptions {}

pub struct MemoryPlugin {
    /// Reused for every read, so a collect allocates little.
    buffer: String,
    /// Kept open: a read is two system calls instead of six (`KeptFile`).
    proc_meminfo: hbc_plugin_support::KeptFile,
    #[cfg(not(target_os = "linux"))]
    system: sysinfo::System,
}

impl Plugin for MemoryPlugin {
    const NAME: &'static str = "memory";
    const DESCRIPTION: &'static str = "Memory and swap: total, used, available";

    fn new(options: &Options) -> Result<Self, String> {
        options
            .parse::<MemoryOptions>()
            .map_err(|e| format!("memory plugin: {e}"))?;
        Ok(MemoryPlugin {
            buffer: String::new(),
            proc_meminfo: hbc_plugin_support::KeptFile::new(PROC_MEMINFO),
            #[cfg(not(target_os = "linux"))]
            system: sysinfo::System::new(),
        })
    }

    #[cfg(target_os = "linux")]
    fn collect(&mut self) -> Result<Vec<Reading>, String> {
        self.proc_meminfo.read_into(Self::NAME, &mut self.buffer)?;
        let info = parse_meminfo(&self.buffer)
            .map_err(|e| format!("memory plugin: cannot parse {PROC_MEMINFO}: {e}"))?;
        Ok(readings(&info))
    }

    #[cfg(not(target_os = "linux"))]
    fn collect(&mut self) -> Result<Vec<Reading>, String> {
        Ok(readings(&other::read(&mut self.system)))
    }
}

// Off when bundled into `plugins/system` (one library exporting several plugins).
#[cfg(feature = "export")]
hbc_plugin_api::export_plugin!(MemoryPlugin);

fn readings(info: &MemInfo) -> Vec<Reading> {
    let bytes = |key: &str, value: u64| {
        Reading::integer(key, i64::try_from(value).unwrap_or(i64::MAX), "B")
    };
    vec![
        bytes("memory.total_bytes", info.total),
        bytes("memory.used_bytes", info.used()),
        bytes("memory.available_bytes", info.available),
        Reading::number("memory.used_percent", info.used_percent(), "%"),
        bytes("memory.swap_total_bytes", info.swap_total),
        bytes("memory.swap_used_bytes", info.swap_used()),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use hbc_plugin_api::Value;
    use hbc_plugin_support::testing::value;

    #[test]
    fn readings_from_meminfo() {
        let info = MemInfo {
            total: 4096,
            available: 1024,
            swap_total: 2048,
            swap_free: 512,
        };
        let r = readings(&info);
        assert_eq!(value(&r, "memory.total_bytes"), &Value::I64(4096));
        assert_eq!(value(&r, "memory.used_bytes"), &Value::I64(3072));
        assert_eq!(value(&r, "memory.available_bytes"), &Value::I64(1024));
        assert_eq!(value(&r, "memory.used_percent"), &Value::F64(75.0));
        assert_eq!(value(&r, "memory.swap_total_bytes"), &Value::I64(2048));
        assert_eq!(value(&r, "memory.swap_used_bytes"), &Value::I64(1536));
        assert!(r
            .iter()
            .all(|r| r.unit.as_str() == if r.key.ends_with("percent") { "%" } else { "B" }));
    }

    #[test]
    fn unknown_options_are_refused() {
        let options = Options::from_json(r#"{"swap": true}"#).expect("json");
        let err = match MemoryPlugin::new(&options) {
            Ok(_) => panic!("unknown field accepted"),
            Err(e) => e,
        };
        assert!(
            err.starts_with("memory plugin:") && err.contains("swap"),
            "{err}"
        );
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn collects_on_this_machine() {
        let options = Options::from_json("{}").expect("options");
        let mut plugin = MemoryPlugin::new(&options).expect("new");
        let r = plugin.collect().expect("collect");

        let meminfo = std::fs::read_to_string("/proc/meminfo").expect("read /proc/meminfo");
        let total_kb: i64 = meminfo
            .lines()
            .find_map(|l| l.strip_prefix("MemTotal:"))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|n| n.parse().ok())
            .expect("MemTotal in /proc/meminfo");
        assert_eq!(
            value(&r, "memory.total_bytes"),
            &Value::I64(total_kb * 1024)
        );

        let (Value::I64(used), Value::I64(available)) = (
            value(&r, "memory.used_bytes"),
            value(&r, "memory.available_bytes"),
        ) else {
            panic!("bytes are not integers: {r:?}");
        };
        assert_eq!(used + available, total_kb * 1024);
        assert!(*available > 0);
        let percent = value(&r, "memory.used_percent")
            .as_f64()
            .unwrap_or(f64::NAN);
        assert!(percent > 0.0 && percent < 100.0, "{percent}");
        let (Value::I64(swap_total), Value::I64(swap_used)) = (
            value(&r, "memory.swap_total_bytes"),
            value(&r, "memory.swap_used_bytes"),
        ) else {
            panic!("swap bytes are not integers: {r:?}");
        };
        assert!(0 <= *swap_used && swap_used <= swap_total);
    }
}
