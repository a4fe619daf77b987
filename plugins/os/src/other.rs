//! The host's description off Linux (Windows, macOS), from `sysinfo`: the same readings
//! as `/etc/os-release`, `uname` and `/proc` give on Linux. `os.processes` (the task
//! count) comes from `GetPerformanceInfo` (threads) on Windows and is left out on macOS,
//! where only a full process scan would give it.

use crate::StaticInfo;

/// What does not change while the host is up.
pub fn static_info() -> StaticInfo {
    let name = sysinfo::System::long_os_version()
        .or_else(sysinfo::System::name)
        .unwrap_or_else(|| std::env::consts::OS.to_string());
    StaticInfo {
        name,
        version: sysinfo::System::os_version(),
        kernel: sysinfo::System::kernel_version().unwrap_or_default(),
        arch: sysinfo::System::cpu_arch(),
        boot_time: i64::try_from(sysinfo::System::boot_time()).unwrap_or(i64::MAX),
    }
}

/// The host name, read on every collect (it may change).
pub fn hostname() -> String {
    sysinfo::System::host_name().unwrap_or_default()
}

/// Whole seconds since boot.
pub fn uptime() -> u64 {
    sysinfo::System::uptime()
}

/// Threads the system runs (Linux counts tasks, which are threads too).
#[cfg(windows)]
pub fn tasks() -> Option<u64> {
    use windows_sys::Win32::System::ProcessStatus::{GetPerformanceInfo, PERFORMANCE_INFORMATION};
    // SAFETY: a zeroed PERFORMANCE_INFORMATION of the size passed is what the call fills.
    unsafe {
        let mut info: PERFORMANCE_INFORMATION = std::mem::zeroed();
        let size = std::mem::size_of::<PERFORMANCE_INFORMATION>() as u32;
        (GetPerformanceInfo(&mut info, size) != 0).then_some(u64::from(info.ThreadCount))
    }
}

#[cfg(not(windows))]
pub fn tasks() -> Option<u64> {
    None
}
