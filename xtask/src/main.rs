//! `cargo xtask <task>`: tasks that are code rather than shell.
//!
//! - `man OUT`: man pages of hbc and hbd from their clap definitions.
//! - `completions OUT`: bash, zsh and fish completions.
//! - `dist [OUT]`: a release build laid out for copying or packaging:
//!   `bin/`, `lib/hbc/plugins/`, `etc/` (commented sample configs), `systemd/`,
//!   `share/man/man1/`, `share/completions/` (default OUT: target/dist).
//!
//! `tidy.rs` holds the tidy test: conventions checked on the tracked files.

mod tidy;

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};
use clap::CommandFactory;

/// The plugin libraries shipped: the six system monitors as one library (plugins/system,
/// its own workspace) and nagios.
const PLUGINS: [&str; 2] = ["system", "nagios"];

fn commands() -> Vec<clap::Command> {
    vec![hbc::cli::Cli::command(), hbd::cli::Cli::command()]
}

fn man(out: &Path) -> Result<()> {
    std::fs::create_dir_all(out)?;
    for cmd in commands() {
        let name = cmd.get_name().to_string();
        let mut buf = Vec::new();
        clap_mangen::Man::new(cmd.clone()).render(&mut buf)?;
        std::fs::write(out.join(format!("{name}.1")), buf)?;
        for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
            let sub_name = format!("{name}-{}", sub.get_name());
            let mut buf = Vec::new();
            clap_mangen::Man::new(
                sub.clone()
                    .name(&*Box::leak(sub_name.clone().into_boxed_str())),
            )
            .render(&mut buf)?;
            std::fs::write(out.join(format!("{sub_name}.1")), buf)?;
        }
    }
    Ok(())
}

fn completions(out: &Path) -> Result<()> {
    use clap_complete::Shell;
    for (shell, dir) in [
        (Shell::Bash, "bash"),
        (Shell::Zsh, "zsh"),
        (Shell::Fish, "fish"),
    ] {
        let d = out.join(dir);
        std::fs::create_dir_all(&d)?;
        for mut cmd in commands() {
            let name = cmd.get_name().to_string();
            clap_complete::generate_to(shell, &mut cmd, name, &d)?;
        }
    }
    Ok(())
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default()
}

fn copy(from: &Path, to: &Path) -> Result<()> {
    if let Some(p) = to.parent() {
        std::fs::create_dir_all(p)?;
    }
    std::fs::copy(from, to)
        .with_context(|| format!("copy {} to {}", from.display(), to.display()))?;
    Ok(())
}

fn dist(out: &Path) -> Result<()> {
    let root = root();
    let status = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .current_dir(&root)
        .args(["build", "--release", "--workspace", "--exclude", "xtask"])
        .status()
        .context("run cargo build")?;
    if !status.success() {
        bail!("cargo build --release failed");
    }
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"));
    // plugins/system is built in its own folder of this checkout: a target folder shared
    // with another checkout would mix their path crates.
    let system = root.join("plugins/system/target");
    let status = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .current_dir(&root)
        .env("CARGO_TARGET_DIR", &system)
        .args([
            "build",
            "--release",
            "--manifest-path",
            "plugins/system/Cargo.toml",
        ])
        .status()
        .context("run cargo build of plugins/system")?;
    if !status.success() {
        bail!("cargo build --release of plugins/system failed");
    }
    let rel = target.join("release");
    let _ = std::fs::remove_dir_all(out);
    for bin in ["hbc", "hbd"] {
        copy(&rel.join(bin), &out.join("bin").join(bin))?;
    }
    for p in PLUGINS {
        let f = format!("libhbc_{p}.so");
        let from = if p == "system" {
            system.join("release").join(&f)
        } else {
            rel.join(&f)
        };
        copy(&from, &out.join("lib/hbc/plugins").join(&f))?;
    }
    for f in ["hbc.yaml", "hbd.yaml"] {
        copy(&root.join("packaging").join(f), &out.join("etc").join(f))?;
    }
    for f in ["hbc.service", "hbd.service"] {
        copy(
            &root.join("packaging").join(f),
            &out.join("systemd").join(f),
        )?;
    }
    man(&out.join("share/man/man1"))?;
    completions(&out.join("share/completions"))?;
    println!("dist laid out in {}", out.display());
    Ok(())
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let arg =
        |i: usize, default: &str| PathBuf::from(args.get(i).map(String::as_str).unwrap_or(default));
    match args.first().map(String::as_str) {
        Some("man") => man(&arg(1, "target/man")),
        Some("completions") => completions(&arg(1, "target/completions")),
        Some("dist") => dist(&arg(1, "target/dist")),
        _ => bail!("usage: cargo xtask dist [OUT] | man [OUT] | completions [OUT]"),
    }
}
