//! CPU figures off Linux. Windows: total usage from `GetSystemTimes` deltas and the core
//! count from `GetSystemInfo` (plain Win32 calls, which wine implements too; sysinfo reads
//! usage through PDH, which wine 8 lacks). macOS: usage in total and per core, load
//! averages and the core count from `sysinfo` (`host_processor_info`, `getloadavg`).
//! Neither system has an I/O-wait figure, and Windows has no load average: those
//! readings are left out (docs/platforms.md).

use std::time::{Duration, Instant};

use hbc_plugin_api::Reading;

/// The shortest time between two samples (as on Linux; sysinfo asks for 200 ms).
const MIN_INTERVAL: Duration = Duration::from_millis(200);

/// Busy percent between two (busy, total) tick pairs.
fn busy_percent(before: (u64, u64), now: (u64, u64)) -> f64 {
    let busy = now.0.saturating_sub(before.0) as f64;
    let total = now.1.saturating_sub(before.1) as f64;
    if total <= 0.0 {
        0.0
    } else {
        (busy / total * 100.0).clamp(0.0, 100.0)
    }
}

#[cfg(windows)]
mod system {
    use super::*;
    use windows_sys::Win32::Foundation::FILETIME;
    use windows_sys::Win32::System::SystemInformation::{GetSystemInfo, SYSTEM_INFO};
    use windows_sys::Win32::System::Threading::GetSystemTimes;

    /// The previous (busy, total) ticks of all cores together.
    pub struct State {
        previous: (u64, u64),
        at: Instant,
    }

    fn ticks(t: &FILETIME) -> u64 {
        (u64::from(t.dwHighDateTime) << 32) | u64::from(t.dwLowDateTime)
    }

    /// (busy, total) 100-ns ticks since boot; kernel time includes idle time.
    fn sample() -> Result<(u64, u64), String> {
        let zero = FILETIME {
            dwLowDateTime: 0,
            dwHighDateTime: 0,
        };
        let (mut idle, mut kernel, mut user) = (zero, zero, zero);
        // SAFETY: three valid FILETIME out-pointers.
        if unsafe { GetSystemTimes(&mut idle, &mut kernel, &mut user) } == 0 {
            return Err(format!(
                "cpu plugin: GetSystemTimes failed: {}",
                std::io::Error::last_os_error()
            ));
        }
        let total = ticks(&kernel) + ticks(&user);
        Ok((total.saturating_sub(ticks(&idle)), total))
    }

    fn cores() -> i64 {
        // SAFETY: GetSystemInfo fills the zeroed struct it is given.
        let info: SYSTEM_INFO = unsafe {
            let mut info = std::mem::zeroed();
            GetSystemInfo(&mut info);
            info
        };
        i64::from(info.dwNumberOfProcessors)
    }

    impl State {
        pub fn new() -> Result<State, String> {
            Ok(State {
                previous: sample()?,
                at: Instant::now(),
            })
        }

        /// `per_core` is not honoured: Windows readings are for all cores together.
        pub fn collect(&mut self, _per_core: bool) -> Result<Vec<Reading>, String> {
            hbc_plugin_support::wait_until_elapsed(self.at, MIN_INTERVAL);
            let now = sample()?;
            self.at = Instant::now();
            let usage = busy_percent(self.previous, now);
            self.previous = now;
            Ok(vec![
                Reading::number("cpu.usage_percent", usage, "%"),
                Reading::integer("cpu.cores", cores(), ""),
            ])
        }
    }
}

#[cfg(not(windows))]
mod system {
    use super::*;

    pub struct State {
        system: sysinfo::System,
        at: Instant,
    }

    impl State {
        pub fn new() -> Result<State, String> {
            let mut system = sysinfo::System::new();
            system.refresh_cpu_usage();
            Ok(State {
                system,
                at: Instant::now(),
            })
        }

        pub fn collect(&mut self, per_core: bool) -> Result<Vec<Reading>, String> {
            hbc_plugin_support::wait_until_elapsed(self.at, MIN_INTERVAL);
            self.system.refresh_cpu_usage();
            self.at = Instant::now();
            let cpus = self.system.cpus();
            let load = sysinfo::System::load_average();
            let mut readings = vec![
                Reading::number(
                    "cpu.usage_percent",
                    f64::from(self.system.global_cpu_usage()),
                    "%",
                ),
                Reading::integer("cpu.cores", cpus.len() as i64, ""),
                Reading::number("cpu.load1", load.one, ""),
                Reading::number("cpu.load5", load.five, ""),
                Reading::number("cpu.load15", load.fifteen, ""),
            ];
            if per_core {
                for (n, cpu) in cpus.iter().enumerate() {
                    readings.push(Reading::number(
                        format!("cpu.{n}.usage_percent"),
                        f64::from(cpu.cpu_usage()),
                        "%",
                    ));
                }
            }
            Ok(readings)
        }
    }
}

pub use system::State;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn busy_percent_of_deltas() {
        assert_eq!(busy_percent((10, 100), (60, 200)), 50.0);
        assert_eq!(busy_percent((10, 100), (10, 100)), 0.0);
    }
}
