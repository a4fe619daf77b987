//! The stable interface between `hbc` and its monitor plugins.
//!
//! A plugin is a `cdylib` that depends on this crate only, implements [`Plugin`] for a plain
//! Rust type and exports it with [`export_plugin!`]. The host loads it through abi_stable's
//! layout-checked root module [`PluginMod_Ref`], calls [`PluginMod::info`] for its metadata,
//! [`PluginMod::new_monitor`] once with the plugin's own config section (as JSON text), and
//! then [`Monitor::collect`] on a schedule.
//!
//! This crate knows nothing about tokio, networking, thresholds or the wire protocol: a
//! plugin reports readings, the host decides what they mean.
//!
//! # A plugin
//!
//! ```
//! use hbc_plugin_api::{export_plugin, Options, Plugin, Reading};
//!
//! pub struct Queue {
//!     spool: String,
//! }
//!
//! impl Plugin for Queue {
//!     // The first part of every reading key.
//!     const NAME: &'static str = "queue";
//!     const DESCRIPTION: &'static str = "files waiting in a spool folder";
//!
//!     fn new(options: &Options) -> Result<Self, String> {
//!         // `parse` takes any serde type (plugins usually derive one); its errors name
//!         // the bad field.
//!         let mut o: std::collections::BTreeMap<String, String> = options.parse()?;
//!         let spool = o.remove("spool").unwrap_or_else(|| "/var/spool/queue".into());
//!         Ok(Queue { spool })
//!     }
//!
//!     fn collect(&mut self) -> Result<Vec<Reading>, String> {
//!         let n = std::fs::read_dir(&self.spool)
//!             .map_err(|e| format!("{}: {e}", self.spool))?
//!             .count();
//!         Ok(vec![Reading::integer("queue.waiting", n as i64, "")])
//!     }
//! }
//!
//! export_plugin!(Queue);
//! # fn main() {
//! #     let options = Options::from_json(r#"{"spool": "/"}"#).expect("json");
//! #     let mut q = Queue::new(&options).expect("new");
//! #     assert_eq!(q.collect().expect("collect")[0].key.as_str(), "queue.waiting");
//! # }
//! ```
//!
//! Build it as a `cdylib` with `panic = "unwind"` (the default) and check it with
//! `hbc check-plugin target/release/lib<crate>.so`.
//!
//! # Compatibility policy
//!
//! Also in README.md; every release is in CHANGELOG.md.
//! - abi_stable compares the version of the root module's layout: [`PluginMod`] is 1.0
//!   (unchanged since), [`PluginList`] 1.1. A plugin built against any 1.x loads into any 1.x
//!   host that knows its root module; a library of several plugins ([`export_plugins!`])
//!   needs a 1.1 host. A major version change is a new, incompatible ABI.
//! - Fields and trait methods are only ever appended (prefix types). A host never requires
//!   a method newer than the plugin's API version; the bundled plugins are always rebuilt.
//! - Panics never cross the boundary: the export macro turns them into error values.

// abi_stable's derive macros generate `*_Ref`/`*_TO` names and impls outside the item.
#![allow(non_camel_case_types, non_local_definitions)]

use std::panic::{catch_unwind, AssertUnwindSafe};

use abi_stable::{
    declare_root_module_statics,
    library::RootModule,
    sabi_trait,
    sabi_types::VersionStrings,
    std_types::{RBox, ROption, RResult, RStr, RString, RVec},
    StableAbi,
};

pub use abi_stable;

/// The API version a plugin was built against (this crate's version).
pub const API_VERSION: &str = env!("CARGO_PKG_VERSION");

/// Alert level of a reading, with the numeric codes of Nagios plugin exit statuses.
#[repr(u8)]
#[derive(StableAbi, Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Level {
    Ok = 0,
    Warning = 1,
    Critical = 2,
    Unknown = 3,
}

impl Level {
    /// Severity for "worst of": OK < WARNING < UNKNOWN < CRITICAL.
    pub fn severity(self) -> u8 {
        match self {
            Level::Ok => 0,
            Level::Warning => 1,
            Level::Unknown => 2,
            Level::Critical => 3,
        }
    }

    /// The worse of two levels by [`Level::severity`].
    pub fn worst(self, other: Level) -> Level {
        if other.severity() > self.severity() {
            other
        } else {
            self
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Level::Ok => "OK",
            Level::Warning => "WARNING",
            Level::Critical => "CRITICAL",
            Level::Unknown => "UNKNOWN",
        }
    }

    /// From a Nagios exit code; anything outside 0..=3 is UNKNOWN, as Nagios does.
    pub fn from_code(code: i64) -> Level {
        match code {
            0 => Level::Ok,
            1 => Level::Warning,
            2 => Level::Critical,
            _ => Level::Unknown,
        }
    }
}

impl std::fmt::Display for Level {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The value of a reading.
#[repr(u8)]
#[derive(StableAbi, Debug, Clone, PartialEq)]
pub enum Value {
    F64(f64),
    I64(i64),
    Bool(bool),
    Text(RString),
}

impl Value {
    /// The value as a number, for threshold checks; text has none.
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Value::F64(v) => Some(*v),
            Value::I64(v) => Some(*v as f64),
            Value::Bool(b) => Some(if *b { 1.0 } else { 0.0 }),
            Value::Text(_) => None,
        }
    }
}

impl std::fmt::Display for Value {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Value::F64(v) => {
                if v.fract() == 0.0 && v.abs() < 1e15 {
                    write!(f, "{v:.0}")
                } else {
                    write!(f, "{v:.2}")
                }
            }
            Value::I64(v) => write!(f, "{v}"),
            Value::Bool(v) => write!(f, "{v}"),
            Value::Text(v) => f.write_str(v),
        }
    }
}

/// One measurement: `cpu.usage_percent = 12.5 %`.
#[repr(C)]
#[derive(StableAbi, Debug, Clone, PartialEq)]
pub struct Reading {
    /// Dotted key, starting with the plugin's name: `fs./var.used_percent`.
    pub key: RString,
    pub value: Value,
    /// Unit: `%`, `B`, `B/s`, `1/s`, `s`, or empty.
    pub unit: RString,
    /// A level the plugin decided itself (the nagios plugin does); the host combines it
    /// with its own thresholds and keeps the worse.
    pub state: ROption<Level>,
    /// A message for people (the first line of a Nagios check's output), or empty.
    pub message: RString,
}

impl Reading {
    fn new(key: impl Into<String>, value: Value, unit: &str) -> Reading {
        Reading {
            key: RString::from(key.into()),
            value,
            unit: RString::from(unit),
            state: ROption::RNone,
            message: RString::new(),
        }
    }

    /// A floating-point reading.
    pub fn number(key: impl Into<String>, value: f64, unit: &str) -> Reading {
        Reading::new(key, Value::F64(value), unit)
    }

    /// An integer reading (counts, bytes).
    pub fn integer(key: impl Into<String>, value: i64, unit: &str) -> Reading {
        Reading::new(key, Value::I64(value), unit)
    }

    pub fn boolean(key: impl Into<String>, value: bool) -> Reading {
        Reading::new(key, Value::Bool(value), "")
    }

    pub fn text(key: impl Into<String>, value: impl Into<String>) -> Reading {
        Reading::new(key, Value::Text(RString::from(value.into())), "")
    }

    /// Sets the plugin-decided level.
    pub fn with_state(mut self, level: Level) -> Reading {
        self.state = ROption::RSome(level);
        self
    }

    pub fn with_message(mut self, message: impl Into<String>) -> Reading {
        self.message = RString::from(message.into());
        self
    }
}

/// Metadata a plugin reports about itself.
#[repr(C)]
#[derive(StableAbi, Debug, Clone)]
pub struct PluginInfo {
    pub name: RString,
    pub version: RString,
    pub description: RString,
    /// The `hbc-plugin-api` version the plugin was built against.
    pub api_version: RString,
}

/// A constructed monitor, as the host sees it.
#[sabi_trait]
pub trait Monitor: Send {
    /// Collects one set of readings. Errors are values; the export macro also turns
    /// panics into errors.
    #[sabi(last_prefix_field)]
    fn collect(&mut self) -> RResult<RVec<Reading>, RString>;
}

/// The boxed, FFI-safe monitor object.
pub type MonitorBox = Monitor_TO<'static, RBox<()>>;

/// The root module every plugin exports. New fields are only ever appended after the
/// last one, with `#[sabi(last_prefix_field)]` moved down.
#[repr(C)]
#[derive(StableAbi)]
#[sabi(kind(Prefix(prefix_ref = PluginMod_Ref)))]
#[sabi(missing_field(panic))]
pub struct PluginMod {
    /// Name, version, description and API version.
    pub info: extern "C" fn() -> PluginInfo,
    /// Builds the monitor from the plugin's `options` config section, as JSON text
    /// (`{}` when there is none).
    #[sabi(last_prefix_field)]
    pub new_monitor: extern "C" fn(options: RStr<'_>) -> RResult<MonitorBox, RString>,
}

impl RootModule for PluginMod_Ref {
    declare_root_module_statics! {PluginMod_Ref}
    const BASE_NAME: &'static str = "hbc_plugin";
    const NAME: &'static str = "hbc_plugin";
    /// The API version that gave `PluginMod` its layout, not this crate's version: abi_stable
    /// refuses a library whose version is older than the host's (1.0 plugins in a 1.1 host),
    /// and this layout has not changed since 1.0.
    const VERSION_STRINGS: VersionStrings = VersionStrings::new("1.0.0");
}

/// The root module of a library that exports several plugins (since 1.1): each entry is
/// the root module a single-plugin library exports. Libraries export it with
/// [`export_plugins!`]; a host older than 1.1 refuses them (its error names the layout).
/// New fields are only ever appended after the last one.
#[repr(C)]
#[derive(StableAbi)]
#[sabi(kind(Prefix(prefix_ref = PluginList_Ref)))]
#[sabi(missing_field(panic))]
pub struct PluginList {
    /// Every plugin of the library, in the order the library lists them.
    #[sabi(last_prefix_field)]
    pub plugins: extern "C" fn() -> RVec<PluginMod_Ref>,
}

impl RootModule for PluginList_Ref {
    declare_root_module_statics! {PluginList_Ref}
    const BASE_NAME: &'static str = "hbc_plugins";
    const NAME: &'static str = "hbc_plugins";
    /// The API version that introduced this layout (see [`PluginMod_Ref`]'s).
    const VERSION_STRINGS: VersionStrings = VersionStrings::new("1.1.0");
}

/// What a plugin author implements: a plain Rust type.
pub trait Plugin: Send + Sized + 'static {
    /// Short name; also the first part of every reading key (`cpu`).
    const NAME: &'static str;
    const DESCRIPTION: &'static str;

    /// Builds the plugin from its options (`plugins.<name>.options` in hbc's config).
    fn new(options: &Options) -> Result<Self, String>;

    /// Collects one set of readings.
    fn collect(&mut self) -> Result<Vec<Reading>, String>;
}

/// The plugin's config section, as the host passed it.
#[derive(Debug, Clone)]
pub struct Options {
    json: serde_json::Value,
}

impl Options {
    /// Parses the JSON text the host passes (an empty text is an empty map).
    pub fn from_json(text: &str) -> Result<Options, String> {
        let json = if text.trim().is_empty() {
            serde_json::Value::Object(Default::default())
        } else {
            serde_json::from_str(text).map_err(|e| format!("options are not valid JSON: {e}"))?
        };
        Ok(Options { json })
    }

    /// Deserializes the options into the plugin's own type; errors name the field.
    pub fn parse<T: serde::de::DeserializeOwned>(&self) -> Result<T, String> {
        let json = match &self.json {
            serde_json::Value::Null => serde_json::Value::Object(Default::default()),
            other => other.clone(),
        };
        serde_path_to_error::deserialize(json).map_err(|e| {
            let path = e.path().to_string();
            if path == "." {
                format!("invalid options: {}", e.inner())
            } else {
                format!("invalid options: {path}: {}", e.inner())
            }
        })
    }

    pub fn raw(&self) -> &serde_json::Value {
        &self.json
    }
}

/// Adapts a [`Plugin`] to the FFI-safe [`Monitor`] trait, containing panics.
pub struct Guarded<P: Plugin>(pub P);

impl<P: Plugin> Monitor for Guarded<P> {
    fn collect(&mut self) -> RResult<RVec<Reading>, RString> {
        match catch_unwind(AssertUnwindSafe(|| self.0.collect())) {
            Ok(Ok(readings)) => RResult::ROk(RVec::from(readings)),
            Ok(Err(e)) => RResult::RErr(RString::from(e)),
            Err(payload) => RResult::RErr(RString::from(format!(
                "plugin {} panicked: {}",
                P::NAME,
                panic_message(&payload)
            ))),
        }
    }
}

/// The text of a panic payload.
pub fn panic_message(payload: &Box<dyn std::any::Any + Send>) -> String {
    panic_message_of(payload.as_ref())
}

/// Used by [`export_plugin!`]: builds the monitor, containing panics.
#[doc(hidden)]
pub fn new_monitor_guarded<P: Plugin>(options: RStr<'_>) -> RResult<MonitorBox, RString> {
    quiet_panics::<P>();
    let result = catch_unwind(AssertUnwindSafe(|| {
        let options = Options::from_json(options.as_str())?;
        P::new(&options)
    }));
    match result {
        Ok(Ok(plugin)) => RResult::ROk(Monitor_TO::from_value(
            Guarded(plugin),
            abi_stable::sabi_trait::TD_Opaque,
        )),
        Ok(Err(e)) => RResult::RErr(RString::from(e)),
        Err(payload) => RResult::RErr(RString::from(format!(
            "plugin {} panicked while starting: {}",
            P::NAME,
            panic_message(&payload)
        ))),
    }
}

/// Replaces this library's panic hook (each plugin carries its own std) with one that
/// prints a single line: the host reports the panic as an error value anyway.
fn quiet_panics<P: Plugin>() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        std::panic::set_hook(Box::new(|info| {
            let msg = panic_message_of(info.payload());
            let at = info
                .location()
                .map(|l| format!(" at {}:{}", l.file(), l.line()))
                .unwrap_or_default();
            eprintln!("hbc plugin {}: panicked{at}: {msg}", P::NAME);
        }));
    });
}

fn panic_message_of(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "(panic payload is not text)".to_string()
    }
}

/// Used by [`export_plugin!`]: the plugin's metadata.
#[doc(hidden)]
pub fn info_of<P: Plugin>(version: &str) -> PluginInfo {
    PluginInfo {
        name: RString::from(P::NAME),
        version: RString::from(version),
        description: RString::from(P::DESCRIPTION),
        api_version: RString::from(API_VERSION),
    }
}

/// The symbol abi_stable looks up in a plugin library; checked against abi_stable's own
/// constant by a test, because `export_plugin!` needs it as a literal.
#[doc(hidden)]
pub const ROOT_SYMBOL: &str = "_1as_0lib_1header_0root_bmodule_bloader";

/// Exports a [`Plugin`] type as this library's root module:
/// `hbc_plugin_api::export_plugin!(MyPlugin);`
///
/// This is what abi_stable's `#[export_root_module]` expands to, written with `$crate`
/// paths so that a plugin needs no dependency but this crate.
#[macro_export]
macro_rules! export_plugin {
    ($plugin:ty) => {
        #[doc(hidden)]
        #[export_name = "_1as_0lib_1header_0root_bmodule_bloader"]
        pub static HBC_PLUGIN_ROOT_MODULE: $crate::abi_stable::library::LibHeader = {
            fn root_module() -> $crate::PluginMod_Ref {
                use $crate::abi_stable::prefix_type::PrefixTypeTrait;
                extern "C" fn info() -> $crate::PluginInfo {
                    $crate::info_of::<$plugin>(env!("CARGO_PKG_VERSION"))
                }
                extern "C" fn new_monitor(
                    options: $crate::abi_stable::std_types::RStr<'_>,
                ) -> $crate::abi_stable::std_types::RResult<
                    $crate::MonitorBox,
                    $crate::abi_stable::std_types::RString,
                > {
                    $crate::new_monitor_guarded::<$plugin>(options)
                }
                $crate::PluginMod { info, new_monitor }.leak_into_prefix()
            }
            extern "C" fn erased() -> $crate::abi_stable::library::RootModuleResult {
                $crate::abi_stable::library::__call_root_module_loader(root_module)
            }
            // SAFETY: this is the expansion of abi_stable's `#[export_root_module]` for a
            // function returning `PluginMod_Ref`, with the layout check enabled.
            unsafe {
                $crate::abi_stable::library::LibHeader::from_constructor::<$crate::PluginMod_Ref>(
                    erased,
                    $crate::abi_stable::library::CheckTypeLayout::Yes,
                )
            }
        };
    };
}

/// Exports several [`Plugin`] types from one library (since API 1.1):
/// `hbc_plugin_api::export_plugins!(Cpu, Memory, Disk);`
///
/// One library carries one copy of std and of this crate however many plugins it holds,
/// so a bundle of small plugins costs a fraction of the memory of as many libraries. The
/// host runs each plugin on its own as if it came from its own file; they share the
/// library's file (replacing it reloads all of them) and its panic hook. Each plugin
/// reports this crate's version (`CARGO_PKG_VERSION` of the library). A host older than
/// API 1.1 refuses such a library: export single plugins with [`export_plugin!`] for them.
#[macro_export]
macro_rules! export_plugins {
    ($($plugin:ty),+ $(,)?) => {
        #[doc(hidden)]
        #[export_name = "_1as_0lib_1header_0root_bmodule_bloader"]
        pub static HBC_PLUGIN_ROOT_MODULE: $crate::abi_stable::library::LibHeader = {
            fn root_module() -> $crate::PluginList_Ref {
                use $crate::abi_stable::prefix_type::PrefixTypeTrait;
                extern "C" fn plugins() -> $crate::abi_stable::std_types::RVec<$crate::PluginMod_Ref> {
                    let mut list = $crate::abi_stable::std_types::RVec::new();
                    $(
                        list.push({
                            extern "C" fn info() -> $crate::PluginInfo {
                                $crate::info_of::<$plugin>(env!("CARGO_PKG_VERSION"))
                            }
                            extern "C" fn new_monitor(
                                options: $crate::abi_stable::std_types::RStr<'_>,
                            ) -> $crate::abi_stable::std_types::RResult<
                                $crate::MonitorBox,
                                $crate::abi_stable::std_types::RString,
                            > {
                                $crate::new_monitor_guarded::<$plugin>(options)
                            }
                            $crate::PluginMod { info, new_monitor }.leak_into_prefix()
                        });
                    )+
                    list
                }
                $crate::PluginList { plugins }.leak_into_prefix()
            }
            extern "C" fn erased() -> $crate::abi_stable::library::RootModuleResult {
                $crate::abi_stable::library::__call_root_module_loader(root_module)
            }
            // SAFETY: this is the expansion of abi_stable's `#[export_root_module]` for a
            // function returning `PluginList_Ref`, with the layout check enabled.
            unsafe {
                $crate::abi_stable::library::LibHeader::from_constructor::<$crate::PluginList_Ref>(
                    erased,
                    $crate::abi_stable::library::CheckTypeLayout::Yes,
                )
            }
        };
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Boom;
    impl Plugin for Boom {
        const NAME: &'static str = "boom";
        const DESCRIPTION: &'static str = "panics";
        fn new(_: &Options) -> Result<Self, String> {
            Ok(Boom)
        }
        fn collect(&mut self) -> Result<Vec<Reading>, String> {
            panic!("kaboom")
        }
    }

    #[test]
    fn panics_become_errors() {
        let mut m = match new_monitor_guarded::<Boom>(RStr::from("{}")) {
            RResult::ROk(m) => m,
            RResult::RErr(e) => panic!("construction failed: {e}"),
        };
        match m.collect() {
            RResult::RErr(e) => assert_eq!(e.as_str(), "plugin boom panicked: kaboom"),
            RResult::ROk(_) => panic!("expected an error"),
        }
    }

    #[test]
    fn root_symbol_matches_abi_stable() {
        assert_eq!(ROOT_SYMBOL, abi_stable::library::ROOT_MODULE_LOADER_NAME);
    }

    #[test]
    fn worst_level_orders_unknown_between_warning_and_critical() {
        assert_eq!(Level::Ok.worst(Level::Warning), Level::Warning);
        assert_eq!(Level::Warning.worst(Level::Unknown), Level::Unknown);
        assert_eq!(Level::Critical.worst(Level::Unknown), Level::Critical);
    }

    #[test]
    fn options_parse_reports_bad_fields() {
        #[derive(serde::Deserialize, Debug)]
        #[serde(deny_unknown_fields)]
        #[allow(dead_code)]
        struct O {
            n: u32,
        }
        let o = Options::from_json(r#"{"n": "x"}"#).expect("json");
        let err = o.parse::<O>().expect_err("should fail");
        assert!(err.contains("invalid type"), "{err}");
        assert!(err.contains("n: "), "the field is named: {err}");
        assert!(Options::from_json("").expect("empty").parse::<O>().is_err());
    }
}
