//! Putting [`Settings`] in force, at start-up and on every SIGHUP, without losing state:
//! queued notifications stay in their outboxes, the policy keeps its announced states,
//! silences and flapping, and a dispatcher keeps its queue and its retry state.
//!
//! Two steps, so that a reload either applies whole or not at all: [`Inner::apply`]
//! first does everything that can fail (templates, senders, new outboxes, new threads),
//! then swaps the settings in. A channel removed from the config is paused, not
//! stopped: its outbox file stays for a later config (or the next start), and its
//! dispatcher resumes if the channel comes back.

use std::path::PathBuf;
use std::sync::Arc;
use std::thread::JoinHandle;

use super::channel::{self, Channel};
use super::config::{ChannelConfig, Settings};
use super::dispatch::{Control, DispatchSettings, Dispatcher, Queue};
use super::engine::lock;
use super::outbox::Outbox;
use super::rules::Router;
use super::templates::Templates;
use super::Inner;

/// One channel started since hbd started: configured now, or removed by a reload
/// (paused, its outbox kept).
struct Run {
    config: ChannelConfig,
    queue: Arc<Queue>,
    control: Arc<Control>,
    thread: Option<JoinHandle<()>>,
}

/// The settings in force and the channels.
#[derive(Default)]
pub struct Current {
    /// None until the first `apply`.
    settings: Option<Settings>,
    templates: Option<Arc<Templates>>,
    runs: Vec<Run>,
    /// The configured channels' queues, in the router's order.
    active: Vec<Arc<Queue>>,
}

impl Current {
    pub fn active(&self) -> &[Arc<Queue>] {
        &self.active
    }

    /// Tells every dispatcher to stop; returns their threads and every queue (configured
    /// or paused), to wait for and flush.
    pub fn stop_all(&mut self) -> (Vec<JoinHandle<()>>, Vec<Arc<Queue>>) {
        let mut threads = Vec::new();
        for r in &mut self.runs {
            r.control.stop();
            r.queue.wake();
            threads.extend(r.thread.take());
        }
        (threads, self.runs.iter().map(|r| r.queue.clone()).collect())
    }
}

/// What one configured channel needs before the swap.
enum Prepared {
    /// A channel already running (or paused); a new sender when its settings changed.
    Existing {
        run: usize,
        sender: Option<Box<dyn Channel>>,
    },
    /// A channel new since start-up, its dispatcher already running but paused.
    New(Run),
}

/// What [`Inner::prepare`] built: one entry per configured channel (in the config's
/// order), and the new channels that found notifications queued in their outbox.
struct Preparation<'a> {
    channels: Vec<Prepared>,
    resumed: Vec<(&'a str, usize)>,
}

fn dispatch_settings(s: &Settings, c: &ChannelConfig, t: &Arc<Templates>) -> DispatchSettings {
    DispatchSettings {
        templates: t.clone(),
        secrets: c.secrets(),
        retry_min: s.retry_min,
        retry_max: s.retry_max,
        alarm_after: s.channel_alarm,
    }
}

fn outbox_path(dir: &std::path::Path, name: &str) -> PathBuf {
    dir.join(format!("{name}.outbox"))
}

/// Stops dispatchers started for a reload that is given up (paused, so not sending).
fn abandon(prepared: Vec<Prepared>) {
    for p in prepared {
        if let Prepared::New(mut r) = p {
            r.control.stop();
            r.queue.wake();
            if let Some(t) = r.thread.take() {
                let _ = t.join();
            }
        }
    }
}

/// The templates `new` asks for, and whether they differ from those in force; `None`
/// when neither the settings nor the template files changed (nothing to do). Template
/// files are read again even when the config is the same: their change is a reason to
/// send SIGHUP.
fn templates_for(cur: &Current, new: &Settings) -> Result<Option<(Arc<Templates>, bool)>, String> {
    let same = cur.settings.as_ref() == Some(new);
    if same && new.templates_dir.is_none() {
        return Ok(None);
    }
    let loaded = Templates::load(new.templates_dir.as_deref(), &new.dashboard_url)
        .map_err(|e| format!("notify_templates_dir: {e}"))?;
    let changed = cur.templates.as_ref().is_none_or(|t| !t.same_as(&loaded));
    if same && !changed {
        return Ok(None);
    }
    let templates = match &cur.templates {
        Some(t) if !changed => t.clone(),
        _ => Arc::new(loaded),
    };
    Ok(Some((templates, changed)))
}

/// Puts each configured channel's prepared state in force and unpauses it; returns the
/// indexes of the configured runs and their queues, in the config's order.
fn swap_channels(
    cur: &mut Current,
    new: &Settings,
    old: Option<&Settings>,
    prepared: Vec<Prepared>,
    templates: &Arc<Templates>,
    changes: &mut Vec<String>,
) -> (Vec<usize>, Vec<Arc<Queue>>) {
    let mut active = Vec::new();
    let mut configured = Vec::new();
    for (c, p) in new.channels.iter().zip(prepared) {
        let ds = dispatch_settings(new, c, templates);
        let run = match p {
            Prepared::Existing { run, sender } => {
                let r = &mut cur.runs[run];
                let was_active =
                    old.is_some_and(|o| o.channels.iter().any(|x| x.name() == c.name()));
                if !was_active {
                    changes.push(format!("channel {} configured again", c.name()));
                } else if sender.is_some() {
                    changes.push(format!("channel {} changed", c.name()));
                }
                r.control.update(ds, sender);
                r.config = c.clone();
                run
            }
            Prepared::New(r) => {
                if old.is_some() {
                    changes.push(format!("channel {} added", c.name()));
                }
                r.control.update(ds, None);
                cur.runs.push(r);
                cur.runs.len() - 1
            }
        };
        configured.push(run);
        let r = &cur.runs[run];
        r.queue.reconfigure(c.target(), new.outbox_max);
        r.control.set_paused(false);
        r.queue.wake();
        active.push(r.queue.clone());
    }
    (configured, active)
}

fn warn_unknown_route_channels(new: &Settings, names: &[String]) {
    for r in &new.routes {
        for c in &r.channels {
            if !names.contains(c) {
                tracing::warn!("notify_routes names channel {c}, which is not configured; that part of the route is ignored");
            }
        }
    }
}

/// One log line: ready at start-up, or what a reload changed.
fn log_outcome(
    old: Option<&Settings>,
    new: &Settings,
    names: &[String],
    templates_changed: bool,
    mut changes: Vec<String>,
) {
    let channels = if names.is_empty() {
        "none".to_string()
    } else {
        names.join(", ")
    };
    let Some(o) = old else {
        tracing::info!(channels = %channels, "notifications ready");
        return;
    };
    if o.routes != new.routes {
        changes.push("routes".into());
    }
    if o.policy != new.policy {
        changes.push("policy timings".into());
    }
    if (o.retry_min, o.retry_max, o.channel_alarm)
        != (new.retry_min, new.retry_max, new.channel_alarm)
    {
        changes.push("retry timings".into());
    }
    if o.outbox_max != new.outbox_max {
        changes.push("notify_outbox_max".into());
    }
    if templates_changed {
        changes.push("templates".into());
    }
    tracing::info!(
        channels = %channels,
        "notification settings reloaded: {}",
        if changes.is_empty() {
            "nothing changed".to_string()
        } else {
            changes.join(", ")
        }
    );
}

impl Inner {
    /// Puts `new` in force; on error nothing changed (the old settings stay).
    pub(super) fn apply(&self, new: Settings) -> Result<(), String> {
        if self.stopped.load(std::sync::atomic::Ordering::Relaxed) {
            return Err("notifications are stopping".into());
        }
        let mut cur = lock(&self.current);
        let Some((templates, templates_changed)) = templates_for(&cur, &new)? else {
            return Ok(());
        };
        // Everything that can fail, before anything changes.
        let Preparation {
            channels: prepared,
            resumed,
        } = self.prepare(&cur, &new, &templates)?;

        // The swap: nothing below fails.
        let old = cur.settings.take();
        let names: Vec<String> = new.channels.iter().map(|c| c.name().to_string()).collect();
        let mut changes = Vec::new();
        let (configured, active) = swap_channels(
            &mut cur,
            &new,
            old.as_ref(),
            prepared,
            &templates,
            &mut changes,
        );
        self.pause_removed(&cur, &configured, &mut changes);
        warn_unknown_route_channels(&new, &names);
        lock(&self.engine).reconfigure(
            Router::new(new.routes.clone(), names.clone()),
            active.clone(),
            new.policy.clone(),
        );
        self.up_after
            .store(new.policy.up_after, std::sync::atomic::Ordering::Relaxed);
        for (name, pending) in resumed {
            tracing::info!(channel = name, pending, "resuming queued notifications");
        }
        log_outcome(old.as_ref(), &new, &names, templates_changed, changes);
        cur.settings = Some(new);
        cur.templates = Some(templates);
        cur.active = active;
        Ok(())
    }

    /// Builds what each configured channel needs (new senders, outboxes and paused
    /// dispatchers for new channels); on error, stops what it started. Also returns the
    /// new channels that found notifications queued in their outbox.
    fn prepare<'a>(
        &self,
        cur: &Current,
        new: &'a Settings,
        templates: &Arc<Templates>,
    ) -> Result<Preparation<'a>, String> {
        let mut prepared: Vec<Prepared> = Vec::new();
        let mut resumed = Vec::new();
        for c in &new.channels {
            let name = c.name();
            let step = match cur.runs.iter().position(|r| r.config.name() == name) {
                Some(run) if cur.runs[run].config == *c => {
                    Ok(Prepared::Existing { run, sender: None })
                }
                Some(run) => channel::build(c)
                    .map(|s| Prepared::Existing {
                        run,
                        sender: Some(s),
                    })
                    .map_err(|e| format!("{name}: {e}")),
                None => self.start_channel(c, new, templates).map(|(run, report)| {
                    if report.pending > 0 {
                        resumed.push((name, report.pending));
                    }
                    for p in &report.problems {
                        tracing::warn!("{p}");
                    }
                    if report.left_to_cluster > 0 {
                        tracing::info!(
                            channel = name,
                            count = report.left_to_cluster,
                            "notifications this node took from the cluster queue and had not sent: left to the queue, which gives them to the leader"
                        );
                    }
                    Prepared::New(run)
                }),
            };
            match step {
                Ok(p) => prepared.push(p),
                Err(e) => {
                    abandon(prepared);
                    return Err(e);
                }
            }
        }
        Ok(Preparation {
            channels: prepared,
            resumed,
        })
    }

    /// Pauses the channels no longer configured (their outboxes are kept).
    fn pause_removed(&self, cur: &Current, configured: &[usize], changes: &mut Vec<String>) {
        for (i, r) in cur.runs.iter().enumerate() {
            if configured.contains(&i) || r.control.is_paused() {
                continue;
            }
            r.control.set_paused(true);
            r.queue.wake();
            r.queue.sync();
            let queued = r.queue.status().queued;
            tracing::warn!(
                channel = %r.queue.name,
                queued,
                "notification channel removed from the config: its outbox {} is kept and its \
                 queued notifications are sent once the channel is configured again",
                outbox_path(&self.dir, &r.queue.name).display()
            );
            changes.push(format!("channel {} removed", r.queue.name));
        }
    }

    /// Opens a channel's outbox and starts its dispatcher, paused until the swap.
    fn start_channel(
        &self,
        c: &ChannelConfig,
        s: &Settings,
        templates: &Arc<Templates>,
    ) -> Result<(Run, super::outbox::OpenReport), String> {
        let name = c.name();
        let sender = channel::build(c).map_err(|e| format!("{name}: {e}"))?;
        let path = outbox_path(&self.dir, name);
        let (outbox, report) = Outbox::open(&path, s.outbox_max).map_err(|e| {
            format!(
                "cannot open the notification outbox {}: {e}",
                path.display()
            )
        })?;
        let queue = Arc::new(Queue::new(name, c.target(), outbox, self.queue_ack.clone()));
        let control = Arc::new(Control::new(dispatch_settings(s, c, templates)));
        control.set_paused(true);
        let thread = Dispatcher {
            queue: queue.clone(),
            channel: sender,
            control: control.clone(),
            emitter: self.emitter.clone(),
        }
        .spawn()
        .map_err(|e| format!("cannot start the notification dispatcher for {name}: {e}"))?;
        Ok((
            Run {
                config: c.clone(),
                queue,
                control,
                thread: Some(thread),
            },
            report,
        ))
    }
}

#[cfg(test)]
mod tests {
    //! Reloads of a running subsystem sending to a Pushover stand-in on loopback.

    use std::io::{BufRead, BufReader, Read, Write};
    use std::net::TcpListener;
    use std::path::Path;
    use std::sync::atomic::{AtomicBool, AtomicU16, Ordering};
    use std::sync::Mutex;
    use std::time::{Duration, Instant};

    use super::*;
    use hbd_core::event::{Event, EventKind};
    use hbd_core::sink::{Emitter, Sink};

    /// One request's form fields.
    type Form = Vec<(String, String)>;

    /// Answers `POST /1/messages.json` with the status set by `answer` (200: accepted),
    /// recording each request's form fields.
    struct Pushover {
        url: String,
        answer: Arc<AtomicU16>,
        got: Arc<Mutex<Vec<Form>>>,
        stop: Arc<AtomicBool>,
        thread: Option<JoinHandle<()>>,
    }

    fn decode(s: &str) -> String {
        let b = s.as_bytes();
        let mut out = Vec::new();
        let mut i = 0;
        while i < b.len() {
            match b[i] {
                b'+' => out.push(b' '),
                b'%' if i + 2 < b.len() => {
                    let v = u8::from_str_radix(&s[i + 1..i + 3], 16).expect("hex");
                    out.push(v);
                    i += 2;
                }
                c => out.push(c),
            }
            i += 1;
        }
        String::from_utf8(out).expect("utf-8")
    }

    impl Pushover {
        fn start(status: u16) -> Pushover {
            let l = TcpListener::bind("127.0.0.1:0").expect("bind");
            l.set_nonblocking(true).expect("nonblocking");
            let url = format!("http://{}", l.local_addr().expect("addr"));
            let answer = Arc::new(AtomicU16::new(status));
            let got = Arc::new(Mutex::new(Vec::new()));
            let stop = Arc::new(AtomicBool::new(false));
            let (a, g, st) = (answer.clone(), got.clone(), stop.clone());
            let thread = std::thread::spawn(move || {
                while !st.load(Ordering::Relaxed) {
                    let Ok((s, _)) = l.accept() else {
                        std::thread::sleep(Duration::from_millis(5));
                        continue;
                    };
                    s.set_nonblocking(false).expect("blocking");
                    let mut r = BufReader::new(s.try_clone().expect("clone"));
                    let mut len = 0usize;
                    loop {
                        let mut line = String::new();
                        if r.read_line(&mut line).unwrap_or(0) == 0 || line.trim().is_empty() {
                            break;
                        }
                        let lower = line.to_ascii_lowercase();
                        if let Some(v) = lower.strip_prefix("content-length:") {
                            len = v.trim().parse().unwrap_or(0);
                        }
                    }
                    let mut body = vec![0; len];
                    let _ = r.read_exact(&mut body);
                    let form = String::from_utf8_lossy(&body)
                        .split('&')
                        .filter_map(|kv| kv.split_once('='))
                        .map(|(k, v)| (decode(k), decode(v)))
                        .collect();
                    let status = a.load(Ordering::Relaxed);
                    let text = if status == 200 {
                        r#"{"status":1,"request":"x"}"#
                    } else {
                        r#"{"status":0,"errors":["down for maintenance"]}"#
                    };
                    let mut s = s;
                    let _ = write!(
                        s,
                        "HTTP/1.1 {status} X\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{text}",
                        text.len()
                    );
                    lock(&g).push(form);
                }
            });
            Pushover {
                url,
                answer,
                got,
                stop,
                thread: Some(thread),
            }
        }

        fn count(&self) -> usize {
            lock(&self.got).len()
        }

        /// The field `k` of request `i`.
        fn field(&self, i: usize, k: &str) -> String {
            lock(&self.got)[i]
                .iter()
                .find(|(key, _)| key == k)
                .map(|(_, v)| v.clone())
                .unwrap_or_default()
        }
    }

    impl Drop for Pushover {
        fn drop(&mut self) {
            self.stop.store(true, Ordering::Relaxed);
            if let Some(t) = self.thread.take() {
                let _ = t.join();
            }
        }
    }

    const TOKEN_A: &str = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaa1";
    const TOKEN_B: &str = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbb2";
    const USER: &str = "uuuuuuuuuuuuuuuuuuuuuuuuuuuuu3";

    fn config(extra: &str) -> crate::NotifyConfig {
        let yaml = format!(
            "notify_retry_min: 50ms\nnotify_retry_max: 100ms\nnotify_storm_window: 0s\n{extra}"
        );
        crate::NotifyConfig::from_yaml(&yaml, Path::new("t.yaml")).expect("config")
    }

    fn pushover(p: &Pushover, token: &str, dashboard: &str) -> String {
        format!(
            "pushsrv: {}\npushover_token: {token}\npushover_user: {USER}\ndashboard_url: {dashboard}\n",
            p.url
        )
    }

    fn down(host: &str) -> Event {
        Event {
            id: 0,
            ts_ms: hbd_core::now_ms(),
            host: host.into(),
            kind: EventKind::HostDown,
            key: None,
            from: Some("UP".into()),
            to: Some("DOWN".into()),
            message: format!("{host} stopped sending heartbeats"),
        }
    }

    fn eventually(what: &str, mut f: impl FnMut() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !f() {
            assert!(Instant::now() < deadline, "timed out waiting for: {what}");
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    fn queued(n: &crate::Notify) -> u64 {
        n.status()["channels"][0]["queued"].as_u64().unwrap_or(0)
    }

    #[test]
    fn a_reload_sends_what_is_queued_with_the_new_settings_and_keeps_silences() {
        let dir = tempfile::tempdir().expect("tempdir");
        let old = Pushover::start(503);
        let new = Pushover::start(200);
        let (emitter, _rx) = Emitter::channel(64);
        let n = crate::start(
            &config(&pushover(&old, TOKEN_A, "http://a.test")),
            dir.path(),
            emitter,
        )
        .expect("start");
        n.event(&down("web1"));
        eventually("a failed attempt", || old.count() >= 1);
        assert_eq!(queued(&n), 1);
        let until = hbd_core::now_ms() + 3_600_000;
        lock(&n.inner.engine)
            .policy
            .add_silence("db*", None, until, "maintenance", None, 0)
            .expect("silence");

        n.reload(&config(&pushover(&new, TOKEN_B, "http://b.test")))
            .expect("reload");
        eventually("the queued notification sent to the new server", || {
            new.count() >= 1
        });
        assert_eq!(new.field(0, "token"), TOKEN_B);
        assert_eq!(new.field(0, "title"), "[hbd] web1 is DOWN");
        assert_eq!(new.field(0, "url"), "http://b.test/hosts/web1");
        eventually("the outbox empty", || queued(&n) == 0);
        let st = n.status();
        assert_eq!(st["silences"][0]["hosts"], "db*", "{st}");
        assert_eq!(st["channels"][0]["target"], new.url.as_str(), "{st}");
        let sent_to_old = old.count();

        // The same config again: nothing changes, not even the templates' identity.
        let templates = lock(&n.inner.current).templates.clone().expect("templates");
        n.reload(&config(&pushover(&new, TOKEN_B, "http://b.test")))
            .expect("same");
        let after = lock(&n.inner.current).templates.clone().expect("templates");
        assert!(Arc::ptr_eq(&templates, &after), "unchanged config reloaded");

        // A template that does not compile: an error naming it; the old settings stay.
        let tdir = tempfile::tempdir().expect("tempdir");
        std::fs::write(tdir.path().join("title.hbs"), "{{#if host}}unclosed").expect("write");
        let e = n
            .reload(&config(&format!(
                "{}notify_templates_dir: {}\nnotify_up_after: 3\n",
                pushover(&old, TOKEN_A, "http://c.test"),
                tdir.path().display()
            )))
            .expect_err("broken template");
        assert!(
            e.contains("notify_templates_dir") && e.contains("title.hbs"),
            "{e}"
        );
        assert!(!e.contains(TOKEN_A), "{e}");
        assert_eq!(n.inner.up_after.load(Ordering::Relaxed), 2);
        n.event(&down("web2"));
        eventually("web2 sent with the settings in force", || new.count() >= 2);
        assert_eq!(new.field(1, "url"), "http://b.test/hosts/web2");
        assert_eq!(old.count(), sent_to_old);

        // Fixed: the templates folder applies.
        std::fs::write(tdir.path().join("title.hbs"), "ALERT {{host}}").expect("write");
        n.reload(&config(&format!(
            "{}notify_templates_dir: {}\n",
            pushover(&new, TOKEN_B, "http://b.test"),
            tdir.path().display()
        )))
        .expect("templates");
        n.event(&down("web3"));
        eventually("web3 sent", || new.count() >= 3);
        assert_eq!(new.field(2, "title"), "ALERT web3");
        // Edited in place: a reload of the same config reads them again.
        std::fs::write(tdir.path().join("title.hbs"), "ALARM {{host}}").expect("write");
        n.reload(&config(&format!(
            "{}notify_templates_dir: {}\n",
            pushover(&new, TOKEN_B, "http://b.test"),
            tdir.path().display()
        )))
        .expect("templates edited");
        n.event(&down("web4"));
        eventually("web4 sent", || new.count() >= 4);
        assert_eq!(new.field(3, "title"), "ALARM web4");
        n.shutdown();
    }

    #[test]
    fn a_removed_channel_keeps_its_outbox_until_it_comes_back() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = Pushover::start(503);
        let (emitter, _rx) = Emitter::channel(64);
        let with = config(&pushover(&p, TOKEN_A, "http://a.test"));
        let n = crate::start(&with, dir.path(), emitter).expect("start");
        n.event(&down("web1"));
        eventually("a failed attempt", || p.count() >= 1);

        n.reload(&config("")).expect("removed");
        assert_eq!(n.status()["channels"], serde_json::json!([]));
        let outbox = dir.path().join("notify/pushover.outbox");
        let text = std::fs::read_to_string(&outbox).expect("outbox kept");
        assert!(text.contains("web1"), "{text}");
        // Paused: no more attempts, and new notifications go nowhere.
        std::thread::sleep(Duration::from_millis(300));
        let tried = p.count();
        n.event(&down("web2"));
        std::thread::sleep(Duration::from_millis(400));
        assert_eq!(p.count(), tried, "a removed channel sends nothing");

        p.answer.store(200, Ordering::Relaxed);
        n.reload(&with).expect("back");
        eventually("the kept notification sent", || {
            (tried..p.count()).any(|i| p.field(i, "title") == "[hbd] web1 is DOWN")
        });
        eventually("the outbox empty", || queued(&n) == 0);
        assert!(
            (0..p.count()).all(|i| !p.field(i, "title").contains("web2")),
            "web2 was not routed to any channel"
        );
        n.shutdown();
    }

    #[test]
    fn policy_settings_apply_to_the_running_engine() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (emitter, _rx) = Emitter::channel(64);
        let n = crate::start(&config(""), dir.path(), emitter).expect("start");
        n.reload(&config("notify_up_after: 4\nnotify_reminder: 2h\n"))
            .expect("reload");
        assert_eq!(n.inner.up_after.load(Ordering::Relaxed), 4);
        let s = lock(&n.inner.engine).policy.settings().clone();
        assert_eq!((s.up_after, s.reminder_ms), (4, Some(7_200_000)));
        n.shutdown();
        assert!(n.reload(&config("")).is_err(), "stopped");
    }
}
