//! Running one plugin on its own schedule, on its own thread.
//!
//! Each plugin gets a dedicated thread, so a plugin that hangs blocks only itself: the
//! heartbeat reads whatever the plugin last delivered and marks it stale. Failures are
//! counted and back off exponentially; a plugin that recovers goes back to its interval.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use hbc_plugin_api::abi_stable::std_types::RResult;
use hbc_plugin_api::MonitorBox;

use crate::sample::Sample;

/// Something that can be asked for readings: an in-process monitor or an isolated child.
pub trait Collect: Send {
    fn collect(&mut self) -> Result<Vec<Sample>, String>;
}

/// A monitor from a library loaded into this process.
pub struct InProcess(pub MonitorBox);

impl Collect for InProcess {
    fn collect(&mut self) -> Result<Vec<Sample>, String> {
        match self.0.collect() {
            RResult::ROk(readings) => Ok(readings.iter().map(Sample::from).collect()),
            RResult::RErr(e) => Err(e.into()),
        }
    }
}

/// What a plugin's thread last did; read by the heartbeat.
#[derive(Debug, Default, Clone)]
pub struct State {
    /// The last successful collect: when it finished, and its readings.
    pub last_ok: Option<(Instant, Arc<Vec<Sample>>)>,
    /// The last failure, if it is newer than `last_ok`.
    pub last_error: Option<(Instant, String)>,
    /// Failures in a row.
    pub failures: u32,
    /// Set while a collect is running.
    pub busy_since: Option<Instant>,
    /// Completed collects (successful or not), so readers can tell new results.
    pub runs: u64,
}

/// The shared half of a running plugin.
#[derive(Debug)]
pub struct Handle {
    state: Mutex<State>,
    stop: AtomicBool,
    pub interval: Duration,
    pub timeout: Duration,
}

impl Handle {
    pub fn state(&self) -> MutexGuard<'_, State> {
        // A poisoned lock only means a panic in our own bookkeeping; the data is plain.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Asks the thread to end after its current collect (a hung one is abandoned).
    pub fn stop(&self) {
        self.stop.store(true, Ordering::Relaxed);
    }

    pub fn stopped(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }
}

/// Delay before the next collect after `failures` failures in a row: the interval for
/// the first two, then doubling, capped at 32 intervals or 5 minutes, whichever is more.
pub fn backoff(interval: Duration, failures: u32) -> Duration {
    if failures <= 2 {
        return interval;
    }
    let factor = 1u32 << (failures - 2).min(5);
    let cap = interval.max(Duration::from_secs(300));
    (interval * factor).min(cap)
}

/// Starts `collector` on its own thread; the first collect runs at once.
pub fn spawn(
    name: &str,
    mut collector: Box<dyn Collect>,
    interval: Duration,
    timeout: Duration,
) -> std::io::Result<(Arc<Handle>, JoinHandle<()>)> {
    let handle = Arc::new(Handle {
        state: Mutex::new(State::default()),
        stop: AtomicBool::new(false),
        interval,
        timeout,
    });
    let h = handle.clone();
    let plugin = name.to_string();
    let thread = std::thread::Builder::new()
        .name(format!("plugin-{name}"))
        .stack_size(512 * 1024)
        .spawn(move || {
            let mut next = Instant::now();
            while !h.stopped() {
                let now = Instant::now();
                if next > now {
                    std::thread::park_timeout(next - now);
                    continue;
                }
                h.state().busy_since = Some(now);
                let result = collector.collect();
                let done = Instant::now();
                let mut st = h.state();
                st.busy_since = None;
                st.runs += 1;
                match result {
                    Ok(samples) => {
                        if st.failures > 0 {
                            tracing::info!(plugin = %plugin, "plugin collects again after {} failures", st.failures);
                        }
                        st.failures = 0;
                        st.last_error = None;
                        st.last_ok = Some((done, Arc::new(samples)));
                        next += interval;
                    }
                    Err(e) => {
                        st.failures += 1;
                        let delay = backoff(interval, st.failures);
                        if st.failures == 1 || st.failures.is_power_of_two() {
                            tracing::warn!(plugin = %plugin, failures = st.failures, "plugin failed: {e}; next try in {delay:?}");
                        }
                        st.last_error = Some((done, e));
                        next = done + delay;
                    }
                }
                drop(st);
                // Skip missed slots instead of running back to back after a slow
                // collect, keeping the phase of the schedule.
                while next < done {
                    next += interval;
                }
            }
        })?;
    Ok((handle, thread))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_back_off_exponentially_up_to_a_cap() {
        let i = Duration::from_secs(10);
        assert_eq!(backoff(i, 1), i);
        assert_eq!(backoff(i, 2), i);
        assert_eq!(backoff(i, 3), i * 2);
        assert_eq!(backoff(i, 4), i * 4);
        assert_eq!(backoff(i, 7), i * 30);
        assert_eq!(
            backoff(i, 50),
            Duration::from_secs(300),
            "capped at 5 minutes"
        );
        let long = Duration::from_secs(600);
        assert_eq!(backoff(long, 50), long, "never shorter than the interval");
    }
}
