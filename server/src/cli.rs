//! Command-line arguments of `hbd` (also the source of its man page and completions).

use std::net::IpAddr;
use std::path::PathBuf;

use clap::{Parser, Subcommand};

/// hbd: receive heartbeats from hbc, watch hosts, serve the dashboard and the API.
#[derive(Debug, Parser)]
#[command(name = "hbd", version)]
pub struct Cli {
    /// Config file (default: ~/.hb.yaml, then /etc/hbd.yaml, then built-in defaults).
    #[arg(short, long, value_name = "FILE", global = true)]
    pub config: Option<PathBuf>,

    /// Stay in the foreground (without it hbd daemonizes and writes a pid file).
    #[arg(short, long)]
    pub foreground: bool,

    /// Address to listen on (overrides `bind`).
    #[arg(long, value_name = "ADDR")]
    pub bind: Option<IpAddr>,

    /// UDP heartbeat port (overrides `hb_port`; 0 picks a free port).
    #[arg(long, value_name = "PORT")]
    pub hb_port: Option<u16>,

    /// HTTP API and dashboard port (overrides `hbd_port`).
    #[arg(long, value_name = "PORT")]
    pub hbd_port: Option<u16>,

    /// WebSocket port (overrides `ws_port`).
    #[arg(long, value_name = "PORT")]
    pub ws_port: Option<u16>,

    /// Data folder: journal and snapshot (overrides `data_dir`).
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,

    /// More logging (-v: debug, -vv: trace).
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,

    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Validate a config file and exit non-zero on errors.
    CheckConfig,
}
