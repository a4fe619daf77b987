//! One dispatcher thread per channel: takes the oldest notification from the channel's
//! outbox, renders and sends it, and removes it only once the channel accepted it. On
//! failure it waits (exponential backoff with jitter) and tries the same one again, so a
//! channel's notifications go out in order, each once. A channel failing for longer than
//! `notify_channel_alarm` raises one `system` event (key `notify.<channel>`), which the
//! policy turns into a notification on the other channels; its recovery raises another.
//!
//! Blocking I/O on plain threads keeps this independent of the HTTP server's runtime.
//! A reload reaches a dispatcher through its [`Control`]: new settings and a new sender
//! are picked up before the next attempt (a send in flight finishes with the old ones),
//! and a channel removed from the config is paused with its outbox kept.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock};
use std::time::Duration;

use serde::Serialize;

use hbd_core::event::{Event, EventKind};
use hbd_core::now_ms;
use hbd_core::sink::Emitter;

use super::channel::{redact, Channel};
use super::outbox::{Entry, Outbox};
use super::retry::{backoff, Jitter};
use super::templates::{summary, utc, Rendered, Templates};

/// What the API and the dashboard show about a channel.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ChannelStatus {
    pub name: String,
    /// Where it sends (no secrets).
    pub target: String,
    /// Notifications waiting in the outbox.
    pub queued: usize,
    pub delivered: u64,
    pub failed_attempts: u64,
    pub last_success_ms: Option<u64>,
    pub last_error: Option<String>,
    pub last_error_ms: Option<u64>,
    /// Start of the current run of failures.
    pub failing_since_ms: Option<u64>,
    /// Failed attempts at the notification now at the head of the queue.
    pub attempts: u32,
    pub next_retry_ms: Option<u64>,
    /// Whether the "channel failing" alarm went out for this run of failures.
    pub alarmed: bool,
    /// Notifications dropped because the outbox was full.
    pub overflowed: u64,
    /// The outbox file cannot be written (notifications are kept in memory).
    pub outbox_error: Option<String>,
}

/// Cluster mode: where a dispatcher reports that its channel accepted a notification
/// the cluster queue gave (by its token), so the leader acknowledges it there. Set once
/// for every channel, present and future.
pub type QueueAck = Arc<OnceLock<Box<dyn Fn(u64) + Send + Sync>>>;

/// A channel's outbox, status and wake-up signal, shared by the engine (which queues)
/// and the dispatcher (which sends).
pub struct Queue {
    pub name: String,
    outbox: Mutex<Outbox>,
    status: Mutex<ChannelStatus>,
    wake: Condvar,
    queue_ack: QueueAck,
}

impl std::fmt::Debug for Queue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Queue").field("name", &self.name).finish()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Plain data: a panic elsewhere cannot leave it inconsistent in a way that matters
    // more than stopping notifications would.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Queue {
    pub fn new(name: &str, target: String, outbox: Outbox, queue_ack: QueueAck) -> Queue {
        let queued = outbox.len();
        Queue {
            name: name.to_string(),
            outbox: Mutex::new(outbox),
            status: Mutex::new(ChannelStatus {
                name: name.to_string(),
                target,
                queued,
                ..ChannelStatus::default()
            }),
            wake: Condvar::new(),
            queue_ack,
        }
    }

    /// Queues durably and wakes the dispatcher.
    pub fn push(&self, ns: Vec<super::notification::Notification>, now_ms: u64) {
        self.push_tagged(ns.into_iter().map(|n| (n, None)).collect(), now_ms);
    }

    /// Queues a notification the cluster queue gave (with its token); false if the
    /// outbox is full (the cluster queue keeps it).
    pub fn push_queued(
        &self,
        n: super::notification::Notification,
        token: u64,
        now_ms: u64,
    ) -> bool {
        self.push_tagged(vec![(n, Some(token))], now_ms) == 1
    }

    /// Leadership lost: drops what the cluster queue gave and was not sent (the next
    /// leader gets it again). Returns how many.
    pub fn drop_queued(&self) -> usize {
        let mut o = lock(&self.outbox);
        let n = o.drop_tagged().len();
        let queued = o.len();
        drop(o);
        lock(&self.status).queued = queued;
        n
    }

    fn push_tagged(
        &self,
        ns: Vec<(super::notification::Notification, Option<u64>)>,
        now_ms: u64,
    ) -> usize {
        let count = ns.len();
        let mut o = lock(&self.outbox);
        let result = o.push_tagged(ns, now_ms);
        let (queued, overflowed, err) = (o.len(), o.overflowed, o.write_error.clone());
        drop(o);
        let added = match result {
            Ok(n) if n < count => {
                tracing::error!(
                    channel = %self.name,
                    "outbox full: {} notifications dropped (raise notify_outbox_max or fix the channel)",
                    count - n
                );
                n
            }
            Ok(n) => n,
            Err(e) => {
                tracing::error!(
                    channel = %self.name,
                    "cannot write the notification outbox: {e}; kept in memory until it can be written"
                );
                count
            }
        };
        {
            let mut s = lock(&self.status);
            s.queued = queued;
            s.overflowed = overflowed;
            s.outbox_error = err;
        }
        self.wake.notify_all();
        added
    }

    pub fn status(&self) -> ChannelStatus {
        lock(&self.status).clone()
    }

    pub fn sync(&self) {
        if let Err(e) = lock(&self.outbox).sync() {
            tracing::error!(channel = %self.name, "cannot flush the notification outbox: {e}");
        }
    }

    fn head(&self) -> Option<Entry> {
        lock(&self.outbox).head().cloned()
    }

    pub fn wake(&self) {
        self.wake.notify_all();
    }

    /// A reload changed where the channel sends or its outbox bound.
    pub fn reconfigure(&self, target: String, outbox_max: usize) {
        lock(&self.outbox).set_max(outbox_max);
        lock(&self.status).target = target;
    }

    /// Retries the head at once (new credentials or server: the old backoff is moot).
    fn retry_now(&self) {
        lock(&self.status).next_retry_ms = None;
    }

    /// Sleeps up to `d`, or until woken.
    fn wait(&self, d: Duration) {
        let guard = lock(&self.status);
        let _ = self.wake.wait_timeout(guard, d);
    }
}

/// What a dispatcher sends with; replaced as a whole by a reload.
pub struct DispatchSettings {
    pub templates: Arc<Templates>,
    /// Every secret of the channel, scrubbed from error texts.
    pub secrets: Vec<String>,
    pub retry_min: Duration,
    pub retry_max: Duration,
    pub alarm_after: Duration,
}

struct Next {
    settings: Arc<DispatchSettings>,
    /// A new sender, taken by the dispatcher before its next attempt.
    sender: Option<Box<dyn Channel>>,
}

/// How the rest of the subsystem steers a running dispatcher: settings, sender, pause
/// and stop.
pub struct Control {
    next: Mutex<Next>,
    /// The channel is not in the config (any more): send nothing, keep the outbox.
    paused: AtomicBool,
    stop: AtomicBool,
}

impl Control {
    pub fn new(settings: DispatchSettings) -> Control {
        Control {
            next: Mutex::new(Next {
                settings: Arc::new(settings),
                sender: None,
            }),
            paused: AtomicBool::new(false),
            stop: AtomicBool::new(false),
        }
    }

    /// New settings, and a new sender when the channel's own settings changed; both
    /// apply together from the next attempt on.
    pub fn update(&self, settings: DispatchSettings, sender: Option<Box<dyn Channel>>) {
        let mut n = lock(&self.next);
        n.settings = Arc::new(settings);
        if sender.is_some() {
            n.sender = sender;
        }
    }

    pub fn set_paused(&self, paused: bool) {
        self.paused.store(paused, Ordering::Relaxed);
    }

    pub fn is_paused(&self) -> bool {
        self.paused.load(Ordering::Relaxed)
    }

    /// Asks the dispatcher to end after the send in flight (wake its queue too).
    pub fn stop(&self) {
        self.stop.store(true, Ordering::Relaxed);
    }

    fn stopped(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }

    fn take(&self) -> (Arc<DispatchSettings>, Option<Box<dyn Channel>>) {
        let mut n = lock(&self.next);
        (n.settings.clone(), n.sender.take())
    }
}

/// One channel's sending thread.
pub struct Dispatcher {
    pub queue: Arc<Queue>,
    pub channel: Box<dyn Channel>,
    pub control: Arc<Control>,
    pub emitter: Emitter,
}

/// A fallback rendering when a (user) template fails: never block the queue on it.
fn plain(n: &super::notification::Notification, url: &str) -> Rendered {
    let s = summary(n);
    Rendered {
        title: format!("[hbd] {s}"),
        text: format!("{s}\n\n{}\n\n{url}\n", n.message),
        html: String::new(),
        markdown: format!("**{s}**\n{}\n{url}", n.message),
        url: url.to_string(),
        level: n.level,
        kind: n.kind,
        id: n.id.clone(),
        ts_ms: n.ts_ms,
    }
}

impl Dispatcher {
    pub fn spawn(self) -> std::io::Result<std::thread::JoinHandle<()>> {
        std::thread::Builder::new()
            .name(format!("notify-{}", self.queue.name))
            .spawn(move || self.run())
    }

    fn run(mut self) {
        let name = self.queue.name.clone();
        let mut jitter = Jitter::from_time(&name);
        while !self.control.stopped() {
            let (settings, sender) = self.control.take();
            if let Some(sender) = sender {
                self.channel = sender;
                self.queue.retry_now();
            }
            if self.control.is_paused() {
                self.queue.wait(Duration::from_millis(500));
                continue;
            }
            let Some(entry) = self.queue.head() else {
                self.queue.wait(Duration::from_millis(500));
                continue;
            };
            let now = now_ms();
            let next = self.queue.status().next_retry_ms.unwrap_or(0);
            if now < next {
                self.queue
                    .wait(Duration::from_millis((next - now).min(500)));
                continue;
            }
            let msg = match settings
                .templates
                .render(&entry.n, &name, entry.queued_ms, now)
            {
                Ok(m) => m,
                Err(e) => {
                    tracing::error!(channel = %name, "{e}; sending a plain text instead");
                    plain(&entry.n, "")
                }
            };
            match self.channel.send(&msg) {
                Ok(()) => self.delivered(&entry),
                Err(e) => {
                    let text = redact(&e.message, &settings.secrets);
                    self.failed(&entry, text, e.retry_after, jitter.sample(), &settings);
                }
            }
        }
    }

    fn delivered(&mut self, entry: &Entry) {
        let name = &self.queue.name;
        let now = now_ms();
        let (queued, overflowed, max_note) = {
            let mut o = lock(&self.queue.outbox);
            if let Err(e) = o.ack(entry.seq) {
                tracing::error!(channel = %name, "cannot record a delivered notification in the outbox: {e}; it may be sent again after a restart");
            }
            let over = std::mem::take(&mut o.overflowed);
            (o.len(), over, o.write_error.clone())
        };
        tracing::debug!(channel = %name, id = %entry.n.id, kind = entry.n.kind.as_str(), host = %entry.n.host, "notification delivered");
        if let (Some(token), Some(ack)) = (entry.token, self.queue.queue_ack.get()) {
            ack(token);
        }
        let was_alarmed = {
            let mut s = lock(&self.queue.status);
            let alarmed = s.alarmed;
            s.queued = queued;
            s.delivered += 1;
            s.last_success_ms = Some(now);
            s.failing_since_ms = None;
            s.attempts = 0;
            s.next_retry_ms = None;
            s.alarmed = false;
            s.outbox_error = max_note;
            alarmed
        };
        if was_alarmed {
            self.emitter.emit(Event {
                id: 0,
                ts_ms: now,
                host: "hbd".into(),
                kind: EventKind::System,
                key: Some(format!("notify.{name}")),
                from: Some("FAILING".into()),
                to: Some("OK".into()),
                message: format!(
                    "notification channel {name} works again; {queued} notifications still queued"
                ),
            });
        }
        if overflowed > 0 {
            // Tell this channel's readers what they missed.
            let n = super::notification::Notification {
                id: format!("{now}-overflow"),
                kind: super::notification::Kind::System,
                host: "hbd".into(),
                key: Some(format!("notify.{name}.overflow")),
                state: "DROPPED".into(),
                from: None,
                level: hbd_core::registry::LevelName::Critical,
                since_ms: now,
                ts_ms: now,
                message: format!(
                    "{overflowed} notifications for {name} were dropped because its outbox was full (notify_outbox_max)"
                ),
                checks: Vec::new(),
                flap_percent: None,
                items: Vec::new(),
            };
            self.queue.push(vec![n], now);
        }
    }

    fn failed(
        &mut self,
        entry: &Entry,
        error: String,
        retry_after: Option<Duration>,
        r: f64,
        settings: &DispatchSettings,
    ) {
        let name = self.queue.name.clone();
        let now = now_ms();
        let alarm = {
            let mut s = lock(&self.queue.status);
            s.failed_attempts += 1;
            s.attempts = s.attempts.saturating_add(1);
            let first = s.failing_since_ms.is_none();
            let since = *s.failing_since_ms.get_or_insert(now);
            let wait = retry_after
                .unwrap_or_else(|| backoff(s.attempts, settings.retry_min, settings.retry_max, r))
                .min(settings.retry_max.max(Duration::from_secs(1)) * 4);
            s.next_retry_ms = Some(now + wait.as_millis() as u64);
            if first || s.last_error.as_deref() != Some(error.as_str()) {
                tracing::warn!(channel = %name, id = %entry.n.id, attempt = s.attempts, retry_in_ms = wait.as_millis() as u64, "notification not delivered: {error}");
            }
            s.last_error = Some(error.clone());
            s.last_error_ms = Some(now);
            let due =
                !s.alarmed && now.saturating_sub(since) >= settings.alarm_after.as_millis() as u64;
            if due {
                s.alarmed = true;
            }
            due.then(|| (since, s.queued, s.attempts))
        };
        if let Some((since, queued, attempts)) = alarm {
            tracing::error!(channel = %name, "notification channel failing since {}: {error}", utc(since));
            self.emitter.emit(Event {
                id: 0,
                ts_ms: now,
                host: "hbd".into(),
                kind: EventKind::System,
                key: Some(format!("notify.{name}")),
                from: Some("OK".into()),
                to: Some("FAILING".into()),
                message: format!(
                    "notification channel {name} failing since {} ({attempts} attempts, {queued} notifications queued): {error}",
                    utc(since)
                ),
            });
        }
    }
}
