//! The `os` monitor plugin: what the host runs and since when (`/proc` on Linux, `sysinfo`
//! elsewhere: `other.rs`, docs/platforms.md).
//!
//! Readings:
//! - `os.hostname` (text): the node name from `uname`, read on every collect.
//! - `os.name` (text): `PRETTY_NAME`, else `NAME`, of `/etc/os-release` (or
//!   `/usr/lib/os-release`); `Linux` when neither file exists.
//! - `os.version` (text): `VERSION_ID`; absent for distributions without one.
//! - `os.kernel` (text), `os.arch` (text): `uname` release and machine.
//! - `os.uptime_s` (s): whole seconds since boot, from `/proc/uptime`.
//! - `os.boot_time`: boot time in Unix seconds, from `btime` in `/proc/stat`.
//! - `os.processes`: tasks (processes and their threads) the kernel knows, from
//!   `/proc/loadavg`.
//!
//! Everything but the hostname, the uptime and the task count is read once, in `new`.
//! There are no options; the plugin takes `{}`.

// Off Linux the `/proc` and os-release parsers are compiled but unused.
#![cfg_attr(not(target_os = "linux"), allow(dead_code))]

mod os_release;
#[cfg(not(target_os = "linux"))]
mod other;
mod proc;

use hbc_plugin_api::{Options, Plugin, Reading};
#[cfg(target_os = "linux")]
use hbc_plugin_support::read_into;
use hbc_plugin_support::KeptFile;

const OS_RELEASE: &str = "/etc/os-release";
const OS_RELEASE_FALLBACK: &str = "/usr/lib/os-release";
const PROC_STAT: &str = "/proc/stat";
const PROC_UPTIME: &str = "/proc/uptime";
const PROC_LOADAVG: &str = "/proc/loadavg";

/// `plugins.os.options` in hbc's config: none yet, but unknown ones are refused.
#[derive(serde::Deserialize, Default, Debug)]
#[serde(default, deny_unknown_fields)]
struct OsOptions {}

/// What does not change while the host is up.
#[derive(Debug, Clone, PartialEq, Eq)]
struct StaticInfo {
    name: String,
    version: Option<String>,
    kernel: String,
    arch: String,
    boot_time: i64,
}

pub struct OsPlugin {
    info: Option<StaticInfo>,
    /// Reused for every read, so a collect allocates little.
    buffer: String,
    /// Kept open: a read is two system calls instead of six (`KeptFile`).
    proc_uptime: KeptFile,
    proc_loadavg: KeptFile,
}

impl Plugin for OsPlugin {
    const NAME: &'static str = "os";
    const DESCRIPTION: &'static str =
        "Host name, distribution, kernel, architecture, uptime and task count";

    fn new(options: &Options) -> Result<Self, String> {
        options
            .parse::<OsOptions>()
            .map_err(|e| format!("os plugin: {e}"))?;
        #[allow(unused_mut)] // set per system below
        let mut plugin = OsPlugin {
            info: None,
            buffer: String::new(),
            proc_uptime: KeptFile::new(PROC_UPTIME),
            proc_loadavg: KeptFile::new(PROC_LOADAVG),
        };
        #[cfg(target_os = "linux")]
        {
            plugin.info = Some(plugin.read_static_info()?);
        }
        #[cfg(not(target_os = "linux"))]
        {
            plugin.info = Some(other::static_info());
        }
        Ok(plugin)
    }

    #[cfg(target_os = "linux")]
    fn collect(&mut self) -> Result<Vec<Reading>, String> {
        let hostname = rustix::system::uname()
            .nodename()
            .to_string_lossy()
            .into_owned();
        self.proc_uptime.read_into(Self::NAME, &mut self.buffer)?;
        let uptime = proc::parse_uptime(&self.buffer)
            .map_err(|e| format!("os plugin: cannot parse {PROC_UPTIME}: {e}"))?;
        self.proc_loadavg.read_into(Self::NAME, &mut self.buffer)?;
        let tasks = proc::parse_task_count(&self.buffer)
            .map_err(|e| format!("os plugin: cannot parse {PROC_LOADAVG}: {e}"))?;
        let info = self
            .info
            .as_ref()
            .ok_or("os plugin: static information was not read")?;
        Ok(readings(info, hostname, uptime, Some(tasks)))
    }

    #[cfg(not(target_os = "linux"))]
    fn collect(&mut self) -> Result<Vec<Reading>, String> {
        let info = self
            .info
            .as_ref()
            .ok_or("os plugin: static information was not read")?;
        Ok(readings(
            info,
            other::hostname(),
            other::uptime(),
            other::tasks(),
        ))
    }
}

// Off when bundled into `plugins/system` (one library exporting several plugins).
#[cfg(feature = "export")]
hbc_plugin_api::export_plugin!(OsPlugin);

#[cfg(target_os = "linux")]
impl OsPlugin {
    fn read_static_info(&mut self) -> Result<StaticInfo, String> {
        let release = self.read_os_release()?;
        let uname = rustix::system::uname();
        read_into(Self::NAME, PROC_STAT, &mut self.buffer)?;
        let boot_time = proc::parse_btime(&self.buffer)
            .map_err(|e| format!("os plugin: cannot parse {PROC_STAT}: {e}"))?;
        Ok(StaticInfo {
            name: release.display_name().to_string(),
            version: release.version_id,
            kernel: uname.release().to_string_lossy().into_owned(),
            arch: uname.machine().to_string_lossy().into_owned(),
            boot_time,
        })
    }

    /// The first of the two os-release files that exists; neither is the default of
    /// os-release(5) (`NAME=Linux`).
    fn read_os_release(&mut self) -> Result<os_release::OsRelease, String> {
        for path in [OS_RELEASE, OS_RELEASE_FALLBACK] {
            let path = &*hbc_plugin_support::host_path(path);
            match std::fs::read_to_string(path) {
                Ok(text) => {
                    return os_release::parse_os_release(&text)
                        .map_err(|e| format!("os plugin: cannot parse {path}: {e}"));
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(format!("os plugin: cannot read {path}: {e}")),
            }
        }
        Ok(os_release::OsRelease::default())
    }
}

/// `tasks` is `None` where the system gives no cheap count (macOS): the reading is left out.
fn readings(info: &StaticInfo, hostname: String, uptime: u64, tasks: Option<u64>) -> Vec<Reading> {
    let integer = |value: u64| i64::try_from(value).unwrap_or(i64::MAX);
    let mut readings = Vec::with_capacity(8);
    readings.push(Reading::text("os.hostname", hostname));
    readings.push(Reading::text("os.name", info.name.as_str()));
    if let Some(version) = &info.version {
        readings.push(Reading::text("os.version", version.as_str()));
    }
    readings.push(Reading::text("os.kernel", info.kernel.as_str()));
    readings.push(Reading::text("os.arch", info.arch.as_str()));
    readings.push(Reading::integer("os.uptime_s", integer(uptime), "s"));
    // A point in time, not a duration: no unit.
    readings.push(Reading::integer("os.boot_time", info.boot_time, ""));
    if let Some(tasks) = tasks {
        readings.push(Reading::integer("os.processes", integer(tasks), ""));
    }
    readings
}

#[cfg(test)]
mod tests {
    use super::*;
    use hbc_plugin_api::Value;
    use hbc_plugin_support::testing::value;

    fn text(s: &str) -> Value {
        Value::Text(s.into())
    }

    #[test]
    fn readings_of_a_host() {
        let info = StaticInfo {
            name: "Debian GNU/Linux 12 (bookworm)".to_string(),
            version: Some("12".to_string()),
            kernel: "6.1.0-18-amd64".to_string(),
            arch: "x86_64".to_string(),
            boot_time: 1_795_490_865,
        };
        let r = readings(&info, "web1".to_string(), 231, Some(95));
        assert_eq!(value(&r, "os.hostname"), &text("web1"));
        assert_eq!(
            value(&r, "os.name"),
            &text("Debian GNU/Linux 12 (bookworm)")
        );
        assert_eq!(value(&r, "os.version"), &text("12"));
        assert_eq!(value(&r, "os.kernel"), &text("6.1.0-18-amd64"));
        assert_eq!(value(&r, "os.arch"), &text("x86_64"));
        assert_eq!(value(&r, "os.uptime_s"), &Value::I64(231));
        assert_eq!(value(&r, "os.boot_time"), &Value::I64(1_795_490_865));
        assert_eq!(value(&r, "os.processes"), &Value::I64(95));
        let uptime = r
            .iter()
            .find(|r| r.key == "os.uptime_s")
            .map(|r| r.unit.as_str());
        assert_eq!(uptime, Some("s"));

        let rolling = StaticInfo {
            version: None,
            ..info
        };
        let r = readings(&rolling, "web1".to_string(), 1, Some(1));
        assert!(r.iter().all(|r| r.key != "os.version"));
    }

    #[test]
    fn unknown_options_are_refused() {
        let options = Options::from_json(r#"{"hostname": "x"}"#).expect("json");
        let err = match OsPlugin::new(&options) {
            Ok(_) => panic!("unknown field accepted"),
            Err(e) => e,
        };
        assert!(
            err.starts_with("os plugin:") && err.contains("hostname"),
            "{err}"
        );
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn collects_on_this_machine() {
        let mut plugin = OsPlugin::new(&Options::from_json("{}").expect("json")).expect("new");
        let r = plugin.collect().expect("collect");

        let uname = rustix::system::uname();
        let nodename = uname.nodename().to_string_lossy();
        assert_eq!(value(&r, "os.hostname"), &text(&nodename));
        assert_eq!(
            value(&r, "os.kernel"),
            &text(&uname.release().to_string_lossy())
        );
        assert_eq!(value(&r, "os.arch"), &text(std::env::consts::ARCH));
        let Value::Text(name) = value(&r, "os.name") else {
            panic!("os.name is not text");
        };
        assert!(!name.is_empty());

        let Value::I64(uptime) = *value(&r, "os.uptime_s") else {
            panic!("os.uptime_s is not an integer");
        };
        let Value::I64(boot) = *value(&r, "os.boot_time") else {
            panic!("os.boot_time is not an integer");
        };
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("clock after 1970")
            .as_secs() as i64;
        assert!(uptime > 0);
        // Boot time plus uptime is now, give or take clock adjustments since boot.
        assert!(
            (boot + uptime - now).abs() < 120,
            "boot {boot} + uptime {uptime} vs {now}"
        );

        let Value::I64(tasks) = *value(&r, "os.processes") else {
            panic!("os.processes is not an integer");
        };
        let pids = std::fs::read_dir("/proc")
            .expect("list /proc")
            .filter_map(Result::ok)
            .filter(|e| {
                e.file_name()
                    .to_string_lossy()
                    .bytes()
                    .all(|b| b.is_ascii_digit())
            })
            .count() as i64;
        // Threads count as tasks too, so there are at least as many tasks as processes,
        // but for those that exited between the two reads (other builds run meanwhile).
        assert!(
            tasks + 64 >= pids && tasks > 0,
            "tasks {tasks}, processes {pids}"
        );
    }
}
