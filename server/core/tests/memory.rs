//! Bytes per host of the registry, counted by a global allocator: hosts with 30 readings
//! of hbc's bundled plugins and a full summary history (issue 13's memory goal: under
//! 200 MB for 100,000 such hosts). Prints where the bytes go; fails above the budget
//! ARCHITECTURE.md documents.

use std::alloc::{GlobalAlloc, Layout, System};
use std::net::{IpAddr, Ipv4Addr};
use std::sync::atomic::{AtomicIsize, Ordering};

use hb_proto::{decode, encode, Heartbeat, Level, Reading, Value};
use hbd_core::registry::{Registry, Settings};

/// Live bytes and live allocations of this process.
struct Counting;
static BYTES: AtomicIsize = AtomicIsize::new(0);
static BLOCKS: AtomicIsize = AtomicIsize::new(0);

// SAFETY: forwards to the system allocator, only counting.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        BYTES.fetch_add(l.size() as isize, Ordering::Relaxed);
        BLOCKS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: same layout as asked.
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        BYTES.fetch_sub(l.size() as isize, Ordering::Relaxed);
        BLOCKS.fetch_sub(1, Ordering::Relaxed);
        // SAFETY: p was allocated by System with l.
        unsafe { System.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, n: usize) -> *mut u8 {
        BYTES.fetch_add(n as isize - l.size() as isize, Ordering::Relaxed);
        // SAFETY: p was allocated by System with l.
        unsafe { System.realloc(p, l, n) }
    }
}

#[global_allocator]
static A: Counting = Counting;

/// The counters are the process's: one test at a time.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// glibc malloc's cost of one block beyond its size (header, rounding to 16 bytes).
const BLOCK_OVERHEAD: isize = 16;

/// 30 readings as hbc's bundled plugins send them (names and units of a typical host).
fn readings(i: u64, cycle: u64) -> Vec<Reading> {
    let keys: [(&str, &str); 30] = [
        ("cpu.usage_percent", "%"),
        ("cpu.user_percent", "%"),
        ("cpu.system_percent", "%"),
        ("cpu.iowait_percent", "%"),
        ("cpu.load1", ""),
        ("cpu.load5", ""),
        ("cpu.load15", ""),
        ("memory.used_percent", "%"),
        ("memory.available_bytes", "B"),
        ("memory.total_bytes", "B"),
        ("memory.swap_used_percent", "%"),
        ("disk.sda.read_bytes_per_s", "B/s"),
        ("disk.sda.write_bytes_per_s", "B/s"),
        ("disk.sda.busy_percent", "%"),
        ("network.eth0.rx_bytes_per_s", "B/s"),
        ("network.eth0.tx_bytes_per_s", "B/s"),
        ("network.eth0.rx_errors", ""),
        ("network.eth0.tx_errors", ""),
        ("fs./.used_percent", "%"),
        ("fs./.free_bytes", "B"),
        ("fs./.inodes_used_percent", "%"),
        ("fs./var.used_percent", "%"),
        ("fs./var.free_bytes", "B"),
        ("fs./home.used_percent", "%"),
        ("fs./home.free_bytes", "B"),
        ("os.uptime_seconds", "s"),
        ("os.boot_time", "s"),
        ("os.processes", ""),
        ("os.users", ""),
        ("os.kernel", ""),
    ];
    keys.iter()
        .enumerate()
        .map(|(k, (key, unit))| Reading {
            key: (*key).into(),
            value: if *key == "os.kernel" {
                Value::Text("6.1.0-28-amd64".into())
            } else {
                Value::F64((i * 31 + k as u64 * 7 + cycle) as f64 % 100.0)
            },
            unit: (*unit).into(),
            level: Level::Ok,
            message: String::new(),
            threshold: if *key == "cpu.usage_percent" {
                "warn=80 crit=95".into()
            } else {
                String::new()
            },
        })
        .collect()
}

#[test]
fn bytes_per_host_with_30_readings_and_a_full_history() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    const HOSTS: u64 = 2_000;
    let settings = Settings::default();
    let cycles = settings.history_len as u64;
    let src = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2));
    let mut r = Registry::new(settings);
    let mut events = Vec::new();
    // Warm the interned keys and units with one host, then count the rest.
    let beat = |r: &mut Registry, i: u64, cycle: u64, events: &mut Vec<_>| {
        let h = Heartbeat {
            host: format!("host-{i:06}.example.org"),
            instance: 1_000,
            seq: cycle + 1,
            sent_ms: 1_000 + cycle * 10_000,
            interval_ms: 10_000,
            level: Level::Ok,
            readings: readings(i, cycle),
        };
        for d in encode(&h, None, 1_400).expect("encode") {
            let p = decode(&d, None).expect("decode");
            let _ = r.apply(&p, src, 1_000 + cycle * 10_000, events);
        }
        events.clear();
    };
    for cycle in 0..cycles {
        beat(&mut r, 0, cycle, &mut events);
    }
    let (b0, n0) = (
        BYTES.load(Ordering::Relaxed),
        BLOCKS.load(Ordering::Relaxed),
    );
    for cycle in 0..cycles {
        for i in 1..=HOSTS {
            beat(&mut r, i, cycle, &mut events);
        }
    }
    let bytes = BYTES.load(Ordering::Relaxed) - b0;
    let blocks = BLOCKS.load(Ordering::Relaxed) - n0;
    let per_host = bytes / HOSTS as isize;
    let blocks_per_host = blocks as f64 / HOSTS as f64;
    let with_overhead = (bytes + blocks * BLOCK_OVERHEAD) / HOSTS as isize;
    let h = r.get("host-000001.example.org").expect("host");
    println!(
        "{HOSTS} hosts, 30 readings, {} history samples, {} recent events each: \
         {per_host} B per host in {blocks_per_host:.1} blocks ({with_overhead} B with malloc's \
         block overhead); 100,000 hosts: {:.0} MB",
        h.history.len(),
        h.recent.len(),
        with_overhead as f64 * 100_000.0 / 1e6
    );
    println!("{}", r.memory_report());
    assert_eq!(h.readings.len(), 30);
    assert_eq!(h.history.len(), cycles as usize);
    assert!(
        with_overhead <= hbd_core::registry::BYTES_PER_HOST_BUDGET as isize,
        "{with_overhead} B per host is over the documented budget of {} B",
        hbd_core::registry::BYTES_PER_HOST_BUDGET
    );
}

/// A host sending only keys nobody else has pays for their interning too: what its
/// readings really cost stays within what `max_host_bytes` counts for them
/// ([`hbd_core::registry::READING_OVERHEAD`] plus the texts), so the per-host budget
/// bounds memory whatever a host sends.
#[test]
fn a_host_of_unique_keys_costs_no_more_than_its_budget_counts() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    const KEYS: usize = 2_000;
    let src = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2));
    let mut r = Registry::new(Settings {
        max_host_bytes: usize::MAX / 2,
        max_readings_per_host: usize::MAX / 2,
        host_reading_rate: f64::MAX,
        host_reading_burst: f64::MAX,
        ..Settings::default()
    });
    let mut events = Vec::new();
    let key = |i: usize| format!("hostile.{i:010}");
    let beat = |r: &mut Registry, seq: u64, keys: std::ops::Range<usize>, events: &mut Vec<_>| {
        let h = Heartbeat {
            host: "hostile".into(),
            instance: 1_000,
            seq,
            sent_ms: 1_000,
            interval_ms: 10_000,
            level: Level::Ok,
            readings: keys
                .map(|i| Reading {
                    key: key(i),
                    value: Value::F64(i as f64),
                    unit: "u".into(),
                    level: Level::Ok,
                    message: String::new(),
                    threshold: String::new(),
                })
                .collect(),
        };
        for d in encode(&h, None, 60_000).expect("encode") {
            let p = decode(&d, None).expect("decode");
            let _ = r.apply(&p, src, 1_000, events);
        }
        events.clear();
    };
    // The host exists and its one shared unit is interned before counting.
    beat(&mut r, 1, 0..1, &mut events);
    let (b0, n0) = (
        BYTES.load(Ordering::Relaxed),
        BLOCKS.load(Ordering::Relaxed),
    );
    beat(&mut r, 2, 0..KEYS, &mut events);
    let real = (BYTES.load(Ordering::Relaxed) - b0)
        + (BLOCKS.load(Ordering::Relaxed) - n0) * BLOCK_OVERHEAD;
    let counted = (KEYS - 1) * (hbd_core::registry::READING_OVERHEAD + key(0).len() + 1);
    println!(
        "{KEYS} unique keys: {} B per reading in memory, {} B counted by the budget",
        real / KEYS as isize,
        counted / KEYS
    );
    assert_eq!(r.get("hostile").map(|h| h.readings.len()), Some(KEYS));
    assert!(
        real as usize <= counted,
        "readings of unique keys cost {real} B, the budget counts {counted} B"
    );
}
