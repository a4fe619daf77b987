//! The bundled plugins, loaded by the real hbc from a temporary folder, report what the
//! operating system reports: `/proc`, `df`, `uname`, `hostname`.

use std::process::Command;

use crate::util::*;

fn num(json: &serde_json::Value, key: &str) -> f64 {
    reading(json, key)
        .and_then(|r| r["value"].as_f64())
        .unwrap_or_else(|| panic!("no numeric reading {key}"))
}

fn text<'a>(json: &'a serde_json::Value, key: &str) -> &'a str {
    reading(json, key)
        .and_then(|r| r["value"].as_str())
        .unwrap_or_else(|| panic!("no text reading {key}"))
}

fn sh(cmd: &str, args: &[&str]) -> String {
    let out = Command::new(cmd)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{cmd}: {e}"));
    assert!(out.status.success(), "{cmd} {args:?} failed");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[test]
fn readings_match_the_operating_system() {
    let dir = PluginDir::with(&BUNDLED);
    let json = once_json("", dir.path());

    // memory: MemTotal exactly; used % consistent with its own bytes.
    let meminfo = std::fs::read_to_string("/proc/meminfo").expect("meminfo");
    let kb = |field: &str| -> f64 {
        meminfo
            .lines()
            .find(|l| l.starts_with(field))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or_else(|| panic!("{field} in /proc/meminfo"))
            * 1024.0
    };
    assert_eq!(num(&json, "memory.total_bytes"), kb("MemTotal:"));
    assert_eq!(num(&json, "memory.swap_total_bytes"), kb("SwapTotal:"));
    let avail = num(&json, "memory.available_bytes");
    assert!(
        (avail - kb("MemAvailable:")).abs() / kb("MemTotal:") < 0.05,
        "available {avail}"
    );
    let pct = num(&json, "memory.used_percent");
    let want = 100.0 * num(&json, "memory.used_bytes") / num(&json, "memory.total_bytes");
    assert!((pct - want).abs() < 0.01);

    // cpu: core count as /proc/stat and nproc see it; usage in range; load as /proc/loadavg.
    let stat = std::fs::read_to_string("/proc/stat").expect("stat");
    let cores = stat
        .lines()
        .filter(|l| l.starts_with("cpu") && l.as_bytes().get(3).is_some_and(u8::is_ascii_digit))
        .count();
    assert_eq!(num(&json, "cpu.cores") as usize, cores);
    assert_eq!(
        sh("nproc", &["--all"]).parse::<usize>().expect("nproc"),
        cores
    );
    let usage = num(&json, "cpu.usage_percent");
    assert!((0.0..=100.0).contains(&usage), "cpu usage {usage}");
    for i in 0..cores {
        assert!(
            reading(&json, &format!("cpu.{i}.usage_percent")).is_some(),
            "per-core reading {i}"
        );
    }
    let load1: f64 = std::fs::read_to_string("/proc/loadavg")
        .expect("loadavg")
        .split_whitespace()
        .next()
        .and_then(|v| v.parse().ok())
        .expect("load1");
    assert!((num(&json, "cpu.load1") - load1).abs() < 1.0);

    // os: as uname and hostname say.
    assert_eq!(text(&json, "os.kernel"), sh("uname", &["-r"]));
    assert_eq!(text(&json, "os.arch"), sh("uname", &["-m"]));
    assert_eq!(text(&json, "os.hostname"), sh("hostname", &[]));
    let uptime: f64 = std::fs::read_to_string("/proc/uptime")
        .expect("uptime")
        .split_whitespace()
        .next()
        .and_then(|v| v.parse().ok())
        .expect("uptime");
    assert!((num(&json, "os.uptime_s") - uptime).abs() < 5.0);
    assert!(num(&json, "os.processes") >= 1.0);

    // filesystem: the root mount as df reports it (df -B1: size, used, avail, use%).
    let df = sh("df", &["-B1", "--output=size,used,avail,pcent", "/"]);
    let row: Vec<&str> = df
        .lines()
        .nth(1)
        .expect("df row")
        .split_whitespace()
        .collect();
    let size: f64 = row[0].parse().expect("size");
    let avail: f64 = row[2].parse().expect("avail");
    let pcent: f64 = row[3].trim_end_matches('%').parse().expect("pcent");
    assert_eq!(num(&json, "fs./.size_bytes"), size);
    assert!(
        (num(&json, "fs./.free_bytes") - avail).abs() / size < 0.01,
        "free vs df avail"
    );
    assert!(
        (num(&json, "fs./.used_percent") - pcent).abs() <= 1.0,
        "used % vs df's {pcent}"
    );
    assert!(
        reading(&json, "fs./proc.size_bytes").is_none(),
        "pseudo filesystems are skipped"
    );

    // network: every interface but lo, as /sys/class/net lists them.
    let ifaces: Vec<String> = std::fs::read_dir("/sys/class/net")
        .expect("/sys/class/net")
        .filter_map(|e| e.ok().map(|e| e.file_name().to_string_lossy().into_owned()))
        .filter(|n| n != "lo")
        .collect();
    for i in &ifaces {
        assert!(
            reading(&json, &format!("network.{i}.rx_bytes_per_s")).is_some(),
            "interface {i}"
        );
    }
    assert!(reading(&json, "network.lo.rx_bytes_per_s").is_none());

    // disk: only real block devices from /sys/block.
    for r in json["readings"].as_array().expect("readings") {
        let key = r["key"].as_str().expect("key");
        if let Some(rest) = key.strip_prefix("disk.") {
            let dev = rest.split('.').next().expect("device");
            assert!(
                std::path::Path::new("/sys/block").join(dev).exists(),
                "disk {dev} not in /sys/block"
            );
        }
    }
    assert_eq!(
        json["level"], "OK",
        "no thresholds configured, all plugins healthy"
    );
}

#[test]
fn thresholds_and_consecutive_samples_apply_end_to_end() {
    let dir = PluginDir::with(&["memory"]);
    let config = "thresholds:\n  memory.total_bytes: {warn: 1, crit: \"@0:10\"}\n  memory.*_percent: {crit: 0.001}\n";
    let json = once_json(config, dir.path());
    let total = reading(&json, "memory.total_bytes").expect("total");
    assert_eq!(total["level"], "WARNING");
    assert_eq!(total["threshold"], "warn=1 crit=@10");
    assert_eq!(
        reading(&json, "memory.used_percent").expect("pct")["level"],
        "CRITICAL"
    );
    assert_eq!(json["level"], "CRITICAL");
}
