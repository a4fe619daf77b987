//! Memory off Linux (Windows, macOS): the same figures from `sysinfo`, which asks the
//! system (`GlobalMemoryStatusEx` and the page files on Windows, `host_statistics64` and
//! `vm.swapusage` on macOS) instead of parsing `/proc/meminfo`.

use crate::meminfo::MemInfo;

/// Reads the memory figures now; `system` is kept between collects (its buffers reused).
pub fn read(system: &mut sysinfo::System) -> MemInfo {
    system.refresh_memory();
    let swap_total = system.total_swap();
    MemInfo {
        total: system.total_memory(),
        available: system.available_memory(),
        swap_total,
        swap_free: swap_total.saturating_sub(system.used_swap()),
    }
}
