//! Command-line arguments of `hbc` (also the source of its man page and completions).

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// hbc: collect readings with monitor plugins and send heartbeats to hbd servers.
#[derive(Debug, Parser)]
#[command(
    name = "hbc",
    version,
    after_help = "Examples:\n  hbc monitor.example.org            send every 10 s to monitor.example.org:50003\n  hbc -i 5s hbd1 hbd2:6000           two servers, 5 s interval\n  hbc --once                         collect once and print a table\n  hbc plugins                        list plugins found and why any was rejected\n  hbc check-plugin ./libmy_plugin.so validate a library before deploying it"
)]
pub struct Cli {
    #[command(flatten)]
    pub common: Common,

    /// Servers to send heartbeats to: `host`, `host:port`, `[v6addr]:port`.
    #[arg(value_name = "SERVER")]
    pub servers: Vec<String>,

    /// Heartbeat interval (e.g. 10s, 500ms); overrides `interval` in the config.
    #[arg(short, long, value_name = "DURATION")]
    pub interval: Option<String>,

    /// Collect once, print the readings and exit; sends nothing.
    #[arg(long)]
    pub once: bool,

    /// With --once: print JSON instead of a table.
    #[arg(long, requires = "once")]
    pub json: bool,

    #[command(subcommand)]
    pub command: Option<Command>,
}

/// Options every subcommand takes.
#[derive(Debug, Args)]
pub struct Common {
    /// Config file (default: ~/.hb.yaml, then /etc/hbc.yaml, then built-in defaults).
    #[arg(short, long, value_name = "FILE", global = true)]
    pub config: Option<PathBuf>,

    /// Extra plugin folder (repeatable); searched after /usr/lib/hbc/plugins,
    /// `plugin_dirs` and $HBC_PLUGIN_PATH.
    #[arg(long = "plugin-dir", value_name = "DIR", global = true)]
    pub plugin_dirs: Vec<PathBuf>,

    /// Where the monitored host's /proc, /sys and / are mounted when hbc runs in a
    /// container (e.g. /host); overrides $HBC_HOST_ROOT and `host_root` in the config.
    #[arg(long, value_name = "DIR", global = true)]
    pub host_root: Option<PathBuf>,

    /// More logging (-v: debug, -vv: trace).
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// List the plugins found: name, version, file, status or why one was rejected.
    Plugins {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Validate one plugin library in a separate process, before deploying it.
    CheckPlugin {
        /// The library to check: a path, or a bare file name, looked for in the current
        /// folder and then in the plugin folders.
        file: PathBuf,
    },
    /// Validate a config file and exit non-zero on errors.
    CheckConfig,
    /// (internal) Run one plugin for a supervising hbc.
    #[command(hide = true)]
    PluginWorker {
        #[arg(long)]
        probe: bool,
        file: PathBuf,
    },
}
