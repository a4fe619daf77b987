//! Running plugins on their schedules: the in-process plugins of one interval share a
//! thread ([`Group`]); an isolated plugin, and one whose collects are slow ([`SLOW`]),
//! has its own ([`spawn`]).
//!
//! A plugin that hangs blocks only itself: a group leaves it behind on its thread and
//! goes on with a new one, and the heartbeat reads whatever the plugin last delivered
//! and marks it stale. Failures are counted and back off exponentially; a plugin that
//! recovers goes back to its interval.

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

/// What a finished collect leaves in `h`'s state; `None` if it succeeded, or the delay
/// before the next try after a failure ([`backoff`]).
fn record(
    h: &Handle,
    plugin: &str,
    result: Result<Vec<Sample>, String>,
    done: Instant,
) -> Option<Duration> {
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
            None
        }
        Err(e) => {
            st.failures += 1;
            let delay = backoff(h.interval, st.failures);
            if st.failures == 1 || st.failures.is_power_of_two() {
                tracing::warn!(plugin = %plugin, failures = st.failures, "plugin failed: {e}; next try in {delay:?}");
            }
            st.last_error = Some((done, e));
            Some(delay)
        }
    }
}

/// Collects for one plugin on the calling thread from `next` on, until it is stopped.
fn run_alone(h: &Handle, plugin: &str, collector: &mut dyn Collect, mut next: Instant) {
    let interval = h.interval;
    while !h.stopped() {
        let now = Instant::now();
        if next > now {
            std::thread::park_timeout(next - now);
            continue;
        }
        h.state().busy_since = Some(now);
        let result = collector.collect();
        let done = Instant::now();
        match record(h, plugin, result, done) {
            None => next += interval,
            Some(delay) => next = done + delay,
        }
        // Skip missed slots instead of running back to back after a slow
        // collect, keeping the phase of the schedule.
        while next < done {
            next += interval;
        }
    }
}

fn new_handle(interval: Duration, timeout: Duration) -> Arc<Handle> {
    Arc::new(Handle {
        state: Mutex::new(State::default()),
        stop: AtomicBool::new(false),
        interval,
        timeout,
    })
}

/// Starts `collector` on its own thread; the first collect runs at once.
pub fn spawn(
    name: &str,
    mut collector: Box<dyn Collect>,
    interval: Duration,
    timeout: Duration,
) -> std::io::Result<(Arc<Handle>, JoinHandle<()>)> {
    let handle = new_handle(interval, timeout);
    let h = handle.clone();
    let plugin = name.to_string();
    let thread = std::thread::Builder::new()
        .name(format!("plugin-{name}"))
        .stack_size(STACK)
        .spawn(move || run_alone(&h, &plugin, collector.as_mut(), Instant::now()))?;
    Ok((handle, thread))
}

/// Stack of a thread that calls into plugins.
const STACK: usize = 512 * 1024;

/// A member of a [`Group`] whose collect (after the first) takes longer gets a thread
/// of its own: the others would wait for it at every tick. The bundled monitors take
/// 10-100 µs; a plugin that starts processes (nagios with commands) takes milliseconds.
pub const SLOW: Duration = Duration::from_millis(10);

/// In-process plugins with the same interval, collected one after the other on one
/// thread at the same instants (a grid of one interval from the group's start): a
/// thread per plugin woke each of them every interval, and a wake-up costs more than
/// most collects (~30 µs for an idle CPU, bench/README.md).
///
/// Hangs stay contained: [`Group::watch`] (called by the heartbeat loop at each of its
/// wake-ups) finds a member busy past its timeout, leaves it with the thread it hangs
/// on, which from then on collects for that plugin alone, and starts a new thread for
/// the others. A plugin that is stopped leaves at the next pass; its monitor is dropped
/// on a thread of its own (a plugin's stop may hang too).
#[derive(Clone)]
pub struct Group {
    shared: Arc<GroupShared>,
}

struct GroupShared {
    interval: Duration,
    /// Every member's collects are due at `anchor` plus whole intervals.
    anchor: Instant,
    members: Mutex<Members>,
}

/// Called by a group's thread when it has made the collects due at one instant.
pub type Notify = Arc<dyn Fn() + Send + Sync>;

#[derive(Default)]
struct Members {
    slots: Vec<Slot>,
    notify: Option<Notify>,
    /// The thread collecting for the group, and its generation.
    worker: Option<(u64, std::thread::Thread)>,
    /// Raised when a worker is left behind with a hung plugin: it finds a newer
    /// generation when (if ever) the collect returns, and keeps only that plugin.
    generation: u64,
    /// The member being collected now.
    current: Option<Arc<Handle>>,
}

struct Slot {
    name: String,
    handle: Arc<Handle>,
    /// `None` while the worker holds it for a collect.
    collector: Option<Box<dyn Collect>>,
    next: Instant,
    /// Its first collect ran (it also builds the monitor, so its time is not judged).
    started: bool,
}

impl Group {
    pub fn new(interval: Duration) -> Group {
        Group {
            shared: Arc::new(GroupShared {
                interval,
                anchor: Instant::now(),
                members: Mutex::new(Members::default()),
            }),
        }
    }

    fn members(&self) -> MutexGuard<'_, Members> {
        // A poisoned lock only means a panic in our own bookkeeping; the data is plain.
        self.shared
            .members
            .lock()
            .unwrap_or_else(|p| p.into_inner())
    }

    /// Adds `collector` to the group; its first collect runs at once, the next ones on
    /// the group's grid. Returns its handle and the thread to unpark when it stops.
    pub fn join(
        &self,
        name: &str,
        collector: Box<dyn Collect>,
        timeout: Duration,
    ) -> std::io::Result<(Arc<Handle>, std::thread::Thread)> {
        let handle = new_handle(self.shared.interval, timeout);
        let mut m = self.members();
        m.slots.push(Slot {
            name: name.to_string(),
            handle: handle.clone(),
            collector: Some(collector),
            next: Instant::now(),
            started: false,
        });
        let thread = match &m.worker {
            Some((_, t)) => t.clone(),
            None => match self.start_worker(&mut m) {
                Ok(t) => t,
                Err(e) => {
                    m.slots.pop();
                    return Err(e);
                }
            },
        };
        thread.unpark();
        Ok((handle, thread))
    }

    /// The instant the group's grid starts from: collects are due at it plus whole
    /// intervals.
    pub fn anchor(&self) -> Instant {
        self.shared.anchor
    }

    /// Sets what the group's thread calls after the collects due at one instant.
    pub fn set_notify(&self, notify: Option<Notify>) {
        self.members().notify = notify;
    }

    fn start_worker(&self, m: &mut Members) -> std::io::Result<std::thread::Thread> {
        let generation = m.generation;
        let group = self.clone();
        let t = std::thread::Builder::new()
            .name("plugins".into())
            .stack_size(STACK)
            .spawn(move || group.work(generation))?;
        let thread = t.thread().clone();
        m.worker = Some((generation, thread.clone()));
        Ok(thread)
    }

    /// The first point of the grid after `t`.
    fn grid_after(&self, t: Instant) -> Instant {
        let interval = self.shared.interval.as_nanos().max(1);
        let since = t.saturating_duration_since(self.shared.anchor).as_nanos();
        let steps = u32::try_from(since / interval + 1).unwrap_or(u32::MAX);
        self.shared.anchor + self.shared.interval * steps
    }

    /// The worker's loop: collect every due member, sleep until the next is due.
    fn work(&self, generation: u64) {
        // Whether a collect ran since the thread last slept.
        let mut collected = false;
        loop {
            let mut m = self.members();
            if m.generation != generation {
                return;
            }
            let mut stopped = Vec::new();
            let mut i = 0;
            while i < m.slots.len() {
                if m.slots[i].handle.stopped() {
                    stopped.push(m.slots.remove(i));
                } else {
                    i += 1;
                }
            }
            if !stopped.is_empty() {
                let collectors: Vec<_> = stopped.into_iter().map(|s| s.collector).collect();
                if let Err(e) = std::thread::Builder::new()
                    .name("plugin-stop".into())
                    .stack_size(STACK)
                    .spawn(move || drop(collectors))
                {
                    tracing::warn!(
                        "cannot start a thread to stop plugins: {e}; they are not told to stop"
                    );
                }
            }
            if m.slots.is_empty() {
                m.worker = None;
                return;
            }
            let now = Instant::now();
            let Some(i) = m
                .slots
                .iter()
                .position(|s| s.next <= now && s.collector.is_some())
            else {
                let wake = m.slots.iter().map(|s| s.next).min().unwrap_or(now);
                let notify = m.notify.clone().filter(|_| std::mem::take(&mut collected));
                drop(m);
                if let Some(notify) = notify {
                    notify();
                }
                std::thread::park_timeout(wake.saturating_duration_since(now));
                continue;
            };
            let slot = &mut m.slots[i];
            let (name, handle) = (slot.name.clone(), slot.handle.clone());
            let first = !std::mem::replace(&mut slot.started, true);
            let Some(mut collector) = slot.collector.take() else {
                continue;
            };
            handle.state().busy_since = Some(now);
            m.current = Some(handle.clone());
            drop(m);
            let result = collector.collect();
            let done = Instant::now();
            let next = self.grid_after(match record(&handle, &name, result, done) {
                None => done,
                Some(delay) => (done + delay)
                    .checked_sub(self.shared.interval)
                    .unwrap_or(done),
            });
            let mut m = self.members();
            if m.generation != generation {
                // Left behind by `watch` while this collect ran past its timeout: the
                // group has a new worker, this thread keeps only this plugin.
                drop(m);
                run_alone(&handle, &name, collector.as_mut(), next);
                return;
            }
            m.current = None;
            collected = true;
            let took = done.saturating_duration_since(now);
            let collector = if !first && took > SLOW {
                drop(m);
                let Err(collector) = self.move_out(&name, &handle, collector, next, took) else {
                    continue;
                };
                m = self.members();
                collector
            } else {
                collector
            };
            if let Some(s) = m.slots.iter_mut().find(|s| Arc::ptr_eq(&s.handle, &handle)) {
                s.collector = Some(collector);
                s.next = next;
            }
        }
    }

    /// Gives a member whose collects are slow a thread of its own, so it does not delay
    /// the others; gives its collector back if no thread can be started.
    fn move_out(
        &self,
        name: &str,
        handle: &Arc<Handle>,
        collector: Box<dyn Collect>,
        next: Instant,
        took: Duration,
    ) -> Result<(), Box<dyn Collect>> {
        // The collector goes through a cell: a thread that cannot start gives it back.
        let cell = Arc::new(Mutex::new(Some(collector)));
        let (h, plugin, c) = (handle.clone(), name.to_string(), cell.clone());
        let started = std::thread::Builder::new()
            .name(format!("plugin-{name}"))
            .stack_size(STACK)
            .spawn(move || {
                let taken = c.lock().ok().and_then(|mut g| g.take());
                if let Some(mut collector) = taken {
                    run_alone(&h, &plugin, collector.as_mut(), next);
                }
            });
        let mut m = self.members();
        match started {
            Ok(t) => {
                m.slots.retain(|s| !Arc::ptr_eq(&s.handle, handle));
                tracing::info!(plugin = %name, "plugin took {:.1} ms to collect (over {SLOW:?}); it gets a thread of its own", took.as_secs_f64() * 1000.0);
                drop(m);
                t.thread().unpark();
                Ok(())
            }
            Err(e) => {
                tracing::warn!(plugin = %name, "plugin collects slowly but no thread can be started for it: {e}; it stays with the others");
                let back = cell.lock().ok().and_then(|mut g| g.take());
                back.ok_or(()).map_or(Ok(()), Err)
            }
        }
    }

    /// Leaves a member busy past its timeout with its thread and gives the others a
    /// new one. Cheap when nothing hangs: one lock, no system call.
    pub fn watch(&self, now: Instant) {
        let mut m = self.members();
        let Some(h) = m.current.clone() else {
            return;
        };
        let since = h.state().busy_since;
        if since.is_none_or(|s| now.saturating_duration_since(s) <= h.timeout) {
            return;
        }
        let name = m
            .slots
            .iter()
            .find(|s| Arc::ptr_eq(&s.handle, &h))
            .map(|s| s.name.clone())
            .unwrap_or_default();
        m.slots.retain(|s| !Arc::ptr_eq(&s.handle, &h));
        m.current = None;
        m.generation += 1;
        m.worker = None;
        tracing::warn!(plugin = %name, "plugin is past its timeout; it keeps the thread it runs on, the plugins it shared it with get a new one");
        if !m.slots.is_empty() {
            if let Err(e) = self.start_worker(&mut m) {
                tracing::error!("cannot start a thread for the plugins of interval {:?}: {e}; they wait for the hung one", self.shared.interval);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;

    /// Counts its collects; from its second collect on, blocks on `gate` if it has one
    /// and takes `slow`.
    struct Probe {
        calls: u32,
        gate: Option<mpsc::Receiver<()>>,
        slow: Duration,
    }

    impl Probe {
        fn new(gate: Option<mpsc::Receiver<()>>, slow: Duration) -> Box<Probe> {
            Box::new(Probe {
                calls: 0,
                gate,
                slow,
            })
        }
    }

    impl Collect for Probe {
        fn collect(&mut self) -> Result<Vec<Sample>, String> {
            self.calls += 1;
            if self.calls > 1 {
                if let Some(g) = &self.gate {
                    let _ = g.recv();
                }
                std::thread::sleep(self.slow);
            }
            Ok(Vec::new())
        }
    }

    fn runs(h: &Handle) -> u64 {
        h.state().runs
    }

    fn wait_until(what: &str, mut ok: impl FnMut() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(5);
        while !ok() {
            assert!(Instant::now() < deadline, "timed out waiting until {what}");
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    #[test]
    fn a_group_collects_on_one_grid_and_leaves_a_hung_member_behind() {
        let interval = Duration::from_millis(50);
        let timeout = Duration::from_millis(30);
        let group = Group::new(interval);
        let (release, gate) = mpsc::channel();
        let (hung, hung_thread) = group
            .join("hangs", Probe::new(Some(gate), Duration::ZERO), timeout)
            .expect("join");
        let (fine, fine_thread) = group
            .join("fine", Probe::new(None, Duration::ZERO), timeout)
            .expect("join");
        assert_eq!(hung_thread.id(), fine_thread.id(), "one thread for both");
        // Both first collects run at once.
        wait_until("both ran once", || runs(&hung) == 1 && runs(&fine) == 1);
        // The next tick blocks the first member, and with it the second.
        wait_until("the first hangs", || hung.state().busy_since.is_some());
        let before = runs(&fine);
        std::thread::sleep(timeout + Duration::from_millis(20));
        assert_eq!(runs(&fine), before, "stuck behind the hung member");
        group.watch(Instant::now());
        wait_until("the other goes on", || runs(&fine) >= before + 2);
        // Released, the hung member goes on alone on its old thread, on the same grid.
        release.send(()).expect("release");
        wait_until("the hung one is back", || runs(&hung) >= 2);
        for _ in 0..5 {
            let _ = release.send(());
        }
        wait_until("it collects again", || runs(&hung) >= 3);
        {
            let m = group.members();
            assert_eq!(m.slots.len(), 1, "only the healthy member is left");
            assert_eq!(m.generation, 1);
        }
        hung.stop();
        fine.stop();
        hung_thread.unpark();
        wait_until("the group's thread ends", || {
            group.members().worker.is_none()
        });
    }

    #[test]
    fn a_slow_member_gets_a_thread_of_its_own() {
        let group = Group::new(Duration::from_millis(30));
        let timeout = Duration::from_secs(5);
        let (slow, _) = group
            .join("slow", Probe::new(None, SLOW * 2), timeout)
            .expect("join");
        let (fast, _) = group
            .join("fast", Probe::new(None, Duration::ZERO), timeout)
            .expect("join");
        wait_until("the slow one moved out", || {
            group.members().slots.len() == 1
        });
        let (s, f) = (runs(&slow), runs(&fast));
        wait_until("both go on", || runs(&slow) > s + 1 && runs(&fast) > f + 1);
        assert_eq!(group.members().generation, 0, "nothing hung");
        slow.stop();
        fast.stop();
    }

    #[test]
    fn a_group_schedule_is_a_grid_that_skips_missed_points() {
        let group = Group::new(Duration::from_millis(100));
        let a = group.shared.anchor;
        let ms = Duration::from_millis;
        assert_eq!(group.grid_after(a), a + ms(100));
        assert_eq!(group.grid_after(a + ms(1)), a + ms(100));
        assert_eq!(group.grid_after(a + ms(100)), a + ms(200));
        assert_eq!(group.grid_after(a + ms(350)), a + ms(400));
    }

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
