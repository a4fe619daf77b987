//! The set of plugins this hbc runs: discovery, loading, hot pick-up and removal.
//!
//! A scan compares the plugin folders with what is running. A new file is loaded once it
//! has settled: unchanged for [`SETTLE`] by its modification time, or looking the same on
//! two scans in a row (so a file still being copied is never opened, and a settled one is
//! loaded by the first scan that sees it); a changed file is loaded again from a fresh
//! private copy and replaces the running version (the old code stays mapped, as libraries
//! are never unloaded); a removed file stops its plugin. Each rejected file is logged
//! once, until it changes.
//!
//! Scans keep to a fixed schedule of one every `plugin_rescan` (see [`PluginSet::scan`]),
//! so a file is picked up at the first scan after it settled: within one `plugin_rescan`.
//!
//! An isolated plugin (configured `isolate: true`, or quarantined after it crashed hbc,
//! `quarantine.rs`) is never opened in this process: its name and version come from the
//! probe child, and it runs in a worker child.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use hbc_plugin_api::abi_stable::std_types::RResult;
use hbc_plugin_api::PluginMod_Ref;
use serde::Serialize;

use crate::config::{Config, PluginConfig};
use crate::fit::Rank;
use crate::isolate::Isolated;
use crate::loader::{self, Candidate, Info, PrivateDir, Rejection};
use crate::quarantine::{self, Call, FileId, Marker, Quarantine};
use crate::runner::{self, Collect, Group, Handle, InProcess};
use crate::sample::Sample;
use crate::thresholds::LevelTracker;

/// A plugin file copied, checked and probed: its private copy and what the probe said
/// of its plugins (`None` without a probe), or why it was refused.
type Prepared = Result<(PathBuf, Option<Vec<Info>>), Rejection>;

/// How long a plugin file must have been left unchanged (by its modification time) before
/// a scan loads it. Every write moves the time, so a file still being copied is younger;
/// a copy that keeps its old time (`cp -p`, `install -p`) sets it only once it is
/// complete. A file whose time is in the future (clock steps) settles the older way: the
/// same size and time on two scans in a row.
pub const SETTLE: Duration = Duration::from_secs(1);

/// True when a file with this modification time has settled at `now` ([`SETTLE`]).
fn settled(modified: SystemTime, now: SystemTime) -> bool {
    now.duration_since(modified).is_ok_and(|age| age >= SETTLE)
}

/// When the scan that just started was due, for the next one to be due one `rescan`
/// after it: the latest point of the schedule (the previous due time plus whole
/// `rescan`s) not after `now`, so the time between heartbeats and scans cannot add up to
/// skipping a scan. A scan before its time (the first one, a reload) starts the schedule
/// anew from `now`.
fn scheduled(previous: Instant, now: Instant, rescan: Duration) -> Instant {
    let Some(due) = previous.checked_add(rescan) else {
        return now;
    };
    if rescan.is_zero() || now < due {
        return now;
    }
    let past_a_due_time = (now - due).as_nanos() % rescan.as_nanos();
    now - Duration::from_nanos(u64::try_from(past_a_due_time).unwrap_or(0))
}

/// A plugin that is loaded and scheduled.
pub struct Running {
    pub info: Info,
    pub file: PathBuf,
    pub isolate: bool,
    /// Runs isolated because it once crashed hbc in-process.
    pub quarantined: bool,
    pub handle: Arc<Handle>,
    thread: std::thread::Thread,
    size: u64,
    modified: SystemTime,
    /// The library opened in this process; `None` while it has only run isolated.
    module: Option<PluginMod_Ref>,
    copy: PathBuf,
    /// The settings it was started with (a reload restarts it when they change).
    settings: PluginConfig,
    /// Threshold state of this plugin's readings, and the run it last evaluated.
    pub tracker: LevelTracker,
    pub evaluated_run: u64,
    pub evaluated: Vec<(hb_proto::Reading, Rank)>,
}

impl Running {
    fn stop(&self) {
        self.handle.stop();
        self.thread.unpark();
    }

    fn file_id(&self) -> FileId {
        FileId::new(&self.file, self.size, self.modified)
    }
}

/// One line of `hbc plugins`.
#[derive(Debug, Clone, Serialize)]
pub struct Entry {
    pub file: PathBuf,
    pub name: Option<String>,
    pub version: Option<String>,
    pub status: String,
}

/// Builds the monitor on the plugin's thread at its first collect, so a plugin whose
/// constructor hangs blocks only itself (`runner::Group` leaves it behind). Every call
/// into the plugin is marked, so a crash in it quarantines it (`quarantine.rs`).
struct Lazy {
    module: PluginMod_Ref,
    options: String,
    monitor: Option<InProcess>,
    marker: Option<Arc<Marker>>,
}

impl Collect for Lazy {
    fn collect(&mut self) -> Result<Vec<Sample>, String> {
        if self.monitor.is_none() {
            let _in = quarantine::enter(self.marker.as_deref(), Call::Start);
            match (self.module.new_monitor())(self.options.as_str().into()) {
                RResult::ROk(m) => self.monitor = Some(InProcess(m)),
                RResult::RErr(e) => return Err(format!("plugin could not start: {e}")),
            }
        }
        let _in = quarantine::enter(self.marker.as_deref(), Call::Collect);
        match self.monitor.as_mut() {
            Some(m) => m.collect(),
            None => Err("plugin is not started".into()),
        }
    }
}

impl Drop for Lazy {
    fn drop(&mut self) {
        if let Some(m) = self.monitor.take() {
            let _in = quarantine::enter(self.marker.as_deref(), Call::Stop);
            drop(m);
        }
    }
}

/// Whether plugins can run in a child process here (hbc must find its own executable).
fn can_isolate() -> Result<(), String> {
    let exe = std::env::current_exe().map_err(|e| format!("cannot find hbc's executable: {e}"))?;
    if exe.is_file() {
        Ok(())
    } else {
        Err(format!("hbc's executable {} is gone", exe.display()))
    }
}

/// Where a plugin runs: in a worker child, or in this process with its crash marker.
enum Place {
    Isolated,
    InProcess(Option<Arc<Marker>>),
}

impl Place {
    fn of(isolate: bool, marker: Option<Arc<Marker>>) -> Place {
        if isolate {
            Place::Isolated
        } else {
            Place::InProcess(marker)
        }
    }
}

/// Starts a plugin's thread (in-process or isolated) with its settings. An in-process
/// plugin needs its opened `module`.
fn launch(
    name: &str,
    module: Option<PluginMod_Ref>,
    copy: &Path,
    pc: &PluginConfig,
    config: &Config,
    place: Place,
    groups: &mut BTreeMap<Duration, Group>,
) -> Result<(Arc<Handle>, std::thread::Thread), Rejection> {
    let interval = pc.interval.unwrap_or(config.interval);
    let timeout = pc.timeout.unwrap_or(config.plugin_timeout);
    let started = match (place, module) {
        (Place::Isolated, _) => {
            let collector = Box::new(Isolated::new(name, copy, &pc.options, timeout));
            runner::spawn(name, collector, interval, timeout).map(|(h, t)| (h, t.thread().clone()))
        }
        (Place::InProcess(marker), Some(module)) => {
            let collector = Box::new(Lazy {
                module,
                options: pc.options.to_string(),
                monitor: None,
                marker,
            });
            groups
                .entry(interval)
                .or_insert_with(|| Group::new(interval))
                .join(name, collector, timeout)
        }
        (Place::InProcess(_), None) => {
            return Err(Rejection {
                reason: "it was never opened in this process".into(),
                remedy: "restart hbc",
                retry: false,
            })
        }
    };
    started.map_err(|e| Rejection {
        reason: format!("cannot start a thread for it: {e}"),
        remedy: "check the process limits of hbc's user",
        retry: false,
    })
}

/// Gives memory freed after loading back to the system (glibc keeps freed heap).
fn release_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only walks the allocator's own free lists.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// All plugins of this process.
pub struct PluginSet {
    private: PrivateDir,
    dirs: Vec<PathBuf>,
    pub running: BTreeMap<String, Running>,
    /// Files rejected, with the stamp they had then: not tried again until it changes.
    /// No stamp: rejected for now only ([`Rejection::retry`]), tried at the next scan.
    rejected: HashMap<PathBuf, (Option<(u64, SystemTime)>, Entry)>,
    /// Files refused by `plugin_strict_modes`, with the reason last logged. Checked on
    /// every scan (a chmod or chown does not change the file's stamp).
    untrusted: HashMap<PathBuf, String>,
    disabled: HashMap<PathBuf, Entry>,
    pending: HashMap<PathBuf, (u64, SystemTime)>,
    /// Libraries loaded that can never be unloaded (replaced versions included).
    pub libraries_loaded: usize,
    /// When the last scan was due (on the schedule of one every `plugin_rescan`); the
    /// next is due `plugin_rescan` after it.
    pub last_scan: Instant,
    /// Check and list plugins without running them (`hbc plugins`).
    pub dry_run: bool,
    /// Plugins that crashed hbc in-process, and the crash markers of the others.
    pub quarantine: Quarantine,
    /// Quarantined plugins that cannot run isolated here, so do not run at all.
    quarantine_disabled: std::collections::BTreeSet<String>,
    /// Libraries were loaded since the last scan: give back their unused pages
    /// (`resident.rs`).
    trim_due: bool,
    /// The threads of in-process plugins, one per interval.
    groups: BTreeMap<Duration, Group>,
    /// Told when the group of this interval has made the collects of one instant.
    on_collected: Option<(Duration, runner::Notify)>,
}

impl PluginSet {
    pub fn new(dirs: Vec<PathBuf>, quarantine: Quarantine) -> std::io::Result<PluginSet> {
        Ok(PluginSet {
            quarantine,
            quarantine_disabled: Default::default(),
            trim_due: false,
            groups: BTreeMap::new(),
            on_collected: None,
            private: PrivateDir::create()?,
            dirs,
            running: BTreeMap::new(),
            rejected: HashMap::new(),
            untrusted: HashMap::new(),
            disabled: HashMap::new(),
            pending: HashMap::new(),
            libraries_loaded: 0,
            last_scan: Instant::now(),
            dry_run: false,
        })
    }

    pub fn dirs(&self) -> &[PathBuf] {
        &self.dirs
    }

    /// Compares the folders with what runs. `settle`: load new and changed files only
    /// once they have settled ([`SETTLE`]; false for the first scan at start-up and after a
    /// reload, which load what they find).
    pub fn scan(&mut self, config: &Config, settle: bool) {
        self.last_scan = scheduled(self.last_scan, Instant::now(), config.plugin_rescan);
        if std::mem::take(&mut self.trim_due) {
            crate::resident::trim(self.private.path());
        }
        let wall = SystemTime::now();
        let (found, errors) = loader::discover(&self.dirs);
        for e in errors {
            tracing::warn!("{e}");
        }
        // Removed files stop their plugins.
        let present: Vec<&Path> = found.iter().map(|c| c.path.as_path()).collect();
        let gone: Vec<String> = self
            .running
            .iter()
            .filter(|(_, r)| !present.contains(&r.file.as_path()))
            .map(|(n, _)| n.clone())
            .collect();
        for name in gone {
            if let Some(r) = self.running.remove(&name) {
                tracing::info!(plugin = %name, file = %r.file.display(), "plugin file removed; plugin stopped");
                r.stop();
            }
        }
        self.rejected.retain(|p, _| present.contains(&p.as_path()));
        self.disabled.retain(|p, _| present.contains(&p.as_path()));
        self.untrusted.retain(|p, _| present.contains(&p.as_path()));

        let mut todo: Vec<Candidate> = Vec::new();
        for cand in found {
            // A running plugin keeps running if its file becomes untrusted (its code is
            // already loaded from a private copy); the file is not loaded again until fixed.
            if config.plugin_strict_modes {
                if let Err(why) = crate::trust::check(&cand.path) {
                    if self.untrusted.get(&cand.path) != Some(&why.reason) {
                        self.untrusted.insert(cand.path.clone(), why.reason.clone());
                        self.reject(&cand, None, why);
                    }
                    continue;
                }
            }
            if self.untrusted.remove(&cand.path).is_some() {
                self.rejected.remove(&cand.path);
            }
            let stamp = (cand.size, cand.modified);
            let current = self.running.values().find(|r| r.file == cand.path);
            if let Some(r) = current {
                if (r.size, r.modified) == stamp {
                    continue;
                }
            }
            if let Some((Some(s), _)) = self.rejected.get(&cand.path) {
                if *s == stamp {
                    continue;
                }
            }
            if current.is_none() && self.disabled.contains_key(&cand.path) {
                continue;
            }
            if settle
                && !settled(cand.modified, wall)
                && self.pending.get(&cand.path) != Some(&stamp)
            {
                self.pending.insert(cand.path.clone(), stamp);
                continue;
            }
            self.pending.remove(&cand.path);
            todo.push(cand);
        }
        // Copy, check and probe every file at once (each probe is a child process),
        // then open and start them in folder order. The probe also names each plugin, so
        // isolated ones are never opened here: it runs whenever any plugin may be isolated.
        let private = &self.private;
        let probe = config.plugin_probe
            || config.plugins.values().any(|p| p.isolate)
            || self.quarantine.records().next().is_some();
        let prepared: Vec<Prepared> = std::thread::scope(|s| {
            let handles: Vec<_> = todo
                .iter()
                .map(|c| s.spawn(move || loader::prepare(&c.path, private, probe)))
                .collect();
            handles
                .into_iter()
                .map(|h| {
                    h.join().unwrap_or_else(|_| {
                        Err(Rejection {
                            reason: "checking the file failed unexpectedly".into(),
                            remedy: "run `hbc check-plugin` on it",
                            retry: false,
                        })
                    })
                })
                .collect()
        });
        let loaded_before = self.libraries_loaded;
        for (cand, prepared) in todo.iter().zip(prepared) {
            match prepared {
                Ok((copy, infos)) => self.load_file(config, cand, copy, infos),
                Err(why) => self.reject(cand, None, why),
            }
        }
        // Trimmed at the next scan, once the new plugins ran: pages they fault back in
        // while it runs come back with fault-around.
        self.trim_due |= self.libraries_loaded != loaded_before && !self.dry_run;
        release_freed_memory();
    }

    /// Starts the plugins of one prepared file. `infos` (from the probe) name them, so
    /// the library is opened in this process only if one of them runs in-process; a library
    /// of several plugins (API 1.1) starts each as if it had its own file.
    fn load_file(
        &mut self,
        config: &Config,
        cand: &Candidate,
        copy: PathBuf,
        infos: Option<Vec<Info>>,
    ) {
        let id = FileId::new(&cand.path, cand.size, cand.modified);
        let isolated: Vec<bool> = infos
            .iter()
            .flatten()
            .map(|i| self.isolated(config, &i.name, &id))
            .collect();
        let mut lib = None;
        if infos.is_none() || isolated.contains(&false) {
            // A crash while opening is blamed on the first plugin that runs in-process.
            let marker = infos
                .iter()
                .flatten()
                .zip(&isolated)
                .find(|(_, iso)| !**iso)
                .filter(|_| !self.dry_run)
                .and_then(|(i, _)| self.quarantine.marker(&i.name, &id));
            let opened = {
                let _in = quarantine::enter(marker.as_deref(), Call::Load);
                loader::open(&copy)
            };
            match opened {
                Ok(l) => {
                    self.libraries_loaded += 1;
                    lib = Some(l);
                }
                Err(why) => {
                    let name = infos.and_then(|v| v.into_iter().next()).map(|i| i.name);
                    return self.reject(cand, name, why);
                }
            }
        }
        let infos = match (infos, &lib) {
            (Some(infos), _) => infos,
            (None, Some(l)) => l.infos(),
            (None, None) => return,
        };
        for info in infos {
            let module = lib.as_ref().and_then(|l| l.plugin(&info.name));
            let module = module.filter(|_| !self.isolated(config, &info.name, &id));
            self.start_one(config, cand, info, module, copy.clone());
        }
        // A new version of a library that no longer exports a plugin stops it.
        let stale: Vec<String> = self
            .running
            .iter()
            .filter(|(_, r)| {
                r.file == cand.path && (r.size, r.modified) != (cand.size, cand.modified)
            })
            .map(|(n, _)| n.clone())
            .collect();
        for name in stale {
            if let Some(r) = self.running.remove(&name) {
                tracing::info!(plugin = %name, file = %r.file.display(), "plugin no longer in its library file; plugin stopped");
                r.stop();
            }
        }
    }

    /// Whether plugin `name` from `file` runs isolated: configured so, or quarantined.
    fn isolated(&mut self, config: &Config, name: &str, file: &FileId) -> bool {
        config.plugin(name).isolate || self.quarantine.check(name, file).is_some()
    }

    fn reject(&mut self, cand: &Candidate, name: Option<String>, why: Rejection) {
        tracing::warn!(
            file = %cand.path.display(),
            "plugin file skipped: {}; {}{}",
            why.reason,
            why.remedy,
            if why.retry { " (tried again at the next rescan)" } else { "" }
        );
        let entry = Entry {
            file: cand.path.clone(),
            name,
            version: None,
            status: format!("rejected: {}", why.reason),
        };
        let stamp = (!why.retry).then_some((cand.size, cand.modified));
        self.rejected.insert(cand.path.clone(), (stamp, entry));
    }

    fn start_one(
        &mut self,
        config: &Config,
        cand: &Candidate,
        info: Info,
        module: Option<PluginMod_Ref>,
        copy: PathBuf,
    ) {
        let replacing = self
            .running
            .get(&info.name)
            .map(|r| r.file == cand.path)
            .unwrap_or(false);
        // A name is taken by a running plugin, or (when only listing) by a file listed ok.
        let taken_by = self
            .running
            .get(&info.name)
            .map(|r| r.file.clone())
            .or_else(|| {
                self.disabled
                    .values()
                    .find(|e| e.name.as_deref() == Some(info.name.as_str()) && e.file != cand.path)
                    .map(|e| e.file.clone())
            });
        if let Some(other) = taken_by {
            if !replacing {
                let why = Rejection {
                    reason: format!(
                        "it is another plugin named {:?}, already loaded from {}",
                        info.name,
                        other.display()
                    ),
                    remedy: "remove one of the two files (plugin names must be unique)",
                    retry: false,
                };
                return self.reject(cand, Some(info.name), why);
            }
        }
        let pc = config.plugin(&info.name);
        if !pc.enabled {
            tracing::info!(plugin = %info.name, file = %cand.path.display(), "plugin is disabled in the config");
            self.disabled.insert(
                cand.path.clone(),
                Entry {
                    file: cand.path.clone(),
                    name: Some(info.name),
                    version: Some(info.version),
                    status: "disabled".into(),
                },
            );
            return;
        }
        let id = FileId::new(&cand.path, cand.size, cand.modified);
        let quarantined = self
            .quarantine
            .check(&info.name, &id)
            .map(|r| r.reason.clone());
        self.quarantine_disabled.remove(&info.name);
        if let (Some(reason), false) = (&quarantined, pc.isolate) {
            if let Err(why) = can_isolate() {
                tracing::warn!(plugin = %info.name, "plugin is quarantined ({reason}) and cannot run isolated ({why}); it stays disabled");
                self.quarantine_disabled.insert(info.name.clone());
                self.disabled.insert(
                    cand.path.clone(),
                    Entry {
                        file: cand.path.clone(),
                        name: Some(info.name),
                        version: Some(info.version),
                        status: format!(
                            "disabled: quarantined ({reason}) and cannot run isolated ({why})"
                        ),
                    },
                );
                return;
            }
        }
        let isolate = pc.isolate || quarantined.is_some();
        if self.dry_run {
            // Keyed by file and name: a library may hold several plugins (one scan only).
            self.disabled.insert(
                PathBuf::from(format!("{}#{}", cand.path.display(), info.name)),
                Entry {
                    file: cand.path.clone(),
                    name: Some(info.name),
                    version: Some(info.version),
                    status: match &quarantined {
                        Some(reason) => format!("ok; quarantined, runs isolated: {reason}"),
                        None => "ok".into(),
                    },
                },
            );
            return;
        }
        let marker = if isolate {
            None
        } else {
            self.quarantine.marker(&info.name, &id)
        };
        let (handle, thread) = match launch(
            &info.name,
            module,
            &copy,
            &pc,
            config,
            Place::of(isolate, marker),
            &mut self.groups,
        ) {
            Ok(x) => x,
            Err(why) => return self.reject(cand, Some(info.name), why),
        };
        self.apply_notify();
        tracing::info!(
            plugin = %info.name,
            version = %info.version,
            api = %info.api_version,
            file = %cand.path.display(),
            isolate,
            "{} plugin",
            if replacing { "reloaded changed" } else { "loaded" }
        );
        if let Some(reason) = &quarantined {
            tracing::warn!(plugin = %info.name, "plugin is quarantined ({reason}); it runs isolated in a child process");
        }
        let running = Running {
            info: info.clone(),
            file: cand.path.clone(),
            isolate,
            quarantined: quarantined.is_some(),
            handle,
            thread,
            size: cand.size,
            modified: cand.modified,
            module,
            copy,
            settings: pc,
            tracker: LevelTracker::new(),
            evaluated_run: 0,
            evaluated: Vec::new(),
        };
        if let Some(old) = self.running.insert(info.name, running) {
            old.stop();
        }
    }

    /// Applies a reloaded config: plugins whose settings (or the defaults they use)
    /// changed are restarted from the library already loaded, disabled ones stop, and
    /// newly enabled ones are loaded by the next scan.
    pub fn reconfigure(&mut self, old: &Config, config: &Config) {
        self.quarantine.reload();
        let names: Vec<String> = self.running.keys().cloned().collect();
        for name in names {
            let pc = config.plugin(&name);
            let Some(id) = self.running.get(&name).map(Running::file_id) else {
                continue;
            };
            let quarantined = self.quarantine.check(&name, &id).is_some();
            let isolate = pc.isolate || quarantined;
            let Some(r) = self.running.get(&name) else {
                continue;
            };
            let same = r.settings == pc
                && r.isolate == isolate
                && old.interval == config.interval
                && old.plugin_timeout == config.plugin_timeout;
            if same {
                continue;
            }
            if !pc.enabled {
                if let Some(r) = self.running.remove(&name) {
                    r.stop();
                    tracing::info!(plugin = %name, "plugin disabled by the new config; stopped");
                    self.disabled.insert(
                        r.file.clone(),
                        Entry {
                            file: r.file.clone(),
                            name: Some(name.clone()),
                            version: Some(r.info.version.clone()),
                            status: "disabled".into(),
                        },
                    );
                }
                continue;
            }
            let (copy, mut module) = (r.copy.clone(), r.module);
            let marker = if isolate {
                None
            } else {
                self.quarantine.marker(&name, &id)
            };
            if module.is_none() && !isolate {
                // Isolated until now: opened in this process for the first time.
                let _in = quarantine::enter(marker.as_deref(), Call::Load);
                match loader::open(&copy).and_then(|lib| {
                    lib.plugin(&name).ok_or(Rejection {
                        reason: "its library no longer exports it".into(),
                        remedy: "restart hbc",
                        retry: false,
                    })
                }) {
                    Ok(m) => {
                        self.libraries_loaded += 1;
                        module = Some(m);
                    }
                    Err(why) => {
                        tracing::error!(plugin = %name, "cannot open the plugin in-process: {why}; it keeps running isolated");
                        continue;
                    }
                }
            }
            match launch(
                &name,
                module,
                &copy,
                &pc,
                config,
                Place::of(isolate, marker),
                &mut self.groups,
            ) {
                Ok((handle, thread)) => {
                    self.apply_notify();
                    if let Some(r) = self.running.get_mut(&name) {
                        r.stop();
                        r.handle = handle;
                        r.thread = thread;
                        r.isolate = isolate;
                        r.quarantined = quarantined;
                        r.module = module;
                        r.settings = pc;
                        r.evaluated_run = 0;
                        tracing::info!(plugin = %name, "plugin restarted with its new settings");
                    }
                }
                Err(why) => {
                    tracing::error!(plugin = %name, "cannot restart the plugin with its new settings: {why}; it keeps running with the old ones")
                }
            }
        }
        // Files disabled before may be enabled now: let the next scan look at them again.
        self.disabled
            .retain(|_, e| e.name.as_deref().is_some_and(|n| !config.plugin(n).enabled));
    }

    /// Calls `notify` each time the in-process plugins collected every `interval` have
    /// made the collects due at one instant (the heartbeat goes right after them).
    pub fn notify_collected(&mut self, interval: Duration, notify: runner::Notify) {
        self.on_collected = Some((interval, notify));
        self.apply_notify();
    }

    fn apply_notify(&self) {
        for (interval, g) in &self.groups {
            g.set_notify(
                self.on_collected
                    .as_ref()
                    .filter(|(i, _)| i == interval)
                    .map(|(_, n)| n.clone()),
            );
        }
    }

    /// When the collects of the in-process plugins collected every `interval` are due:
    /// this instant plus whole intervals (`None`: there are none).
    pub fn collect_grid(&self, interval: Duration) -> Option<Instant> {
        self.groups.get(&interval).map(Group::anchor)
    }

    /// Leaves behind any in-process plugin that is past its timeout, so the plugins
    /// that share its thread go on (`runner::Group::watch`).
    pub fn watch(&self) {
        let now = Instant::now();
        for g in self.groups.values() {
            g.watch(now);
        }
    }

    /// Waits until every plugin has finished its first collect or its timeout passed.
    pub fn wait_first_results(&self, limit: Duration) {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            self.watch();
            let all = self.running.values().all(|r| r.handle.state().runs > 0);
            if all {
                return;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Everything found, for `hbc plugins`.
    pub fn entries(&self) -> Vec<Entry> {
        let mut v: Vec<Entry> = self
            .running
            .values()
            .map(|r| Entry {
                file: r.file.clone(),
                name: Some(r.info.name.clone()),
                version: Some(r.info.version.clone()),
                status: match (r.quarantined, r.isolate) {
                    (true, _) => format!(
                        "loaded (isolated: quarantined: {})",
                        self.quarantine
                            .get(&r.info.name)
                            .map_or("it crashed hbc", |q| q.reason.as_str())
                    ),
                    (false, true) => "loaded (isolated)".into(),
                    (false, false) => "loaded".into(),
                },
            })
            .collect();
        v.extend(self.disabled.values().cloned());
        v.extend(self.rejected.values().map(|(_, e)| e.clone()));
        v.sort_by(|a, b| a.file.cmp(&b.file));
        v
    }

    /// `hbc.quarantine.<name>` readings of quarantined plugins (running isolated or
    /// disabled), with the plugin each is about.
    pub fn quarantine_readings(&self) -> Vec<(hb_proto::Reading, String)> {
        let running = self
            .running
            .values()
            .filter(|r| r.quarantined)
            .map(|r| (r.info.name.as_str(), "isolated"));
        let disabled = self
            .quarantine_disabled
            .iter()
            .map(|n| (n.as_str(), "disabled"));
        running
            .chain(disabled)
            .filter_map(|(name, how)| {
                let record = self.quarantine.get(name)?;
                Some((self.quarantine.reading(record, how), name.to_string()))
            })
            .collect()
    }

    pub fn stop_all(&mut self) {
        for r in self.running.values() {
            r.stop();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_settles_after_its_last_write() {
        let now = SystemTime::now();
        assert!(!settled(now, now));
        assert!(!settled(now - SETTLE / 2, now));
        assert!(settled(now - SETTLE, now));
        // A time in the future (a clock step) does not count as settled.
        assert!(!settled(now + SETTLE * 10, now));
    }

    #[test]
    fn scans_keep_to_their_schedule() {
        let rescan = Duration::from_secs(10);
        let t0 = Instant::now();
        // Due at t0 + 10 s: a scan a little late keeps the schedule, so the next is due at
        // t0 + 20 s even if the heartbeat before it comes a little early.
        assert_eq!(
            scheduled(t0, t0 + Duration::from_millis(10_003), rescan),
            t0 + rescan
        );
        // A scan before it is due (start-up, reload) starts the schedule anew.
        let early = t0 + Duration::from_secs(3);
        assert_eq!(scheduled(t0, early, rescan), early);
        // Behind by more than a rescan (a long interval, hbc stopped): the latest due time.
        let late = t0 + Duration::from_secs(25);
        assert_eq!(scheduled(t0, late, rescan), t0 + Duration::from_secs(20));
        assert_eq!(scheduled(t0, late, Duration::ZERO), late);
    }
}
