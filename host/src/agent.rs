//! The heartbeat loop: every interval, read what each plugin last delivered, apply
//! thresholds, encode and send one heartbeat to every server.
//!
//! The loop never waits for a plugin: a plugin that is still busy past its timeout, or
//! whose last collect failed, contributes its last readings marked UNKNOWN (stale) and a
//! `hbc.plugin.<name>` reading that says why.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use hb_proto::{Heartbeat, Level as WireLevel, Reading, Value};
use hbc_plugin_api::Level;

use crate::config::Config;
use crate::fit::{rank, Draft, Rank};
use crate::plugins::{PluginSet, Running};
use crate::sample::{wire_level, wire_value};
use crate::send::{Refreshes, Sender, Target};
use crate::thresholds::{Observed, Thresholds};

/// Unix milliseconds now.
pub fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Longest reading key the wire format carries (docs/protocol.md).
const MAX_KEY: usize = 255;
/// Most readings one plugin may add to a heartbeat (255 datagrams hold about 9,000).
const MAX_READINGS: usize = 2_000;

fn status_reading(name: &str, status: &str, message: String) -> Reading {
    Reading {
        key: format!("hbc.plugin.{name}"),
        value: Value::Text(status.to_string()),
        unit: String::new(),
        level: WireLevel::Unknown,
        message,
        threshold: String::new(),
    }
}

/// The readings one plugin contributes to this heartbeat, each with its rank for when
/// not everything fits (`fit`).
pub fn plugin_readings(
    name: &str,
    r: &mut Running,
    thresholds: &Thresholds,
    now: Instant,
) -> Vec<(Reading, Rank)> {
    let st = r.handle.state().clone();
    let timeout = r.handle.timeout;
    let interval = r.handle.interval;
    let problem = if let Some(since) = st.busy_since.filter(|s| now.duration_since(*s) > timeout) {
        Some((
            "timeout",
            format!(
                "plugin {name} has not answered for {:.1} s (timeout {:?})",
                now.duration_since(since).as_secs_f64(),
                timeout
            ),
        ))
    } else if let Some((_, e)) = &st.last_error {
        Some(("failed", format!("plugin {name}: {e}")))
    } else {
        match &st.last_ok {
            Some((at, _)) if now.duration_since(*at) > interval * 3 + timeout => Some((
                "stale",
                format!(
                    "plugin {name} delivered nothing for {:.0} s",
                    now.duration_since(*at).as_secs_f64()
                ),
            )),
            _ => None,
        }
    };

    if let Some((status, message)) = problem {
        let mut out: Vec<(Reading, Rank)> = r
            .evaluated
            .iter()
            .map(|(x, _)| {
                let stale = Reading {
                    level: WireLevel::Unknown,
                    message: format!("stale: {message}"),
                    ..x.clone()
                };
                let rank = rank(&stale, false);
                (stale, rank)
            })
            .collect();
        let status = status_reading(name, status, message);
        out.push((status, Rank::Hbc));
        return out;
    }

    // Evaluate thresholds once per new result, so `samples` counts collections.
    if st.runs != r.evaluated_run {
        if let Some((_, samples)) = &st.last_ok {
            // A reading the wire format cannot carry is left out (and said so), rather
            // than making the whole heartbeat unsendable.
            let fits = |s: &&crate::sample::Sample| !s.key.is_empty() && s.key.len() <= MAX_KEY;
            let unfit = samples.iter().filter(|s| !fits(s)).count();
            let over = samples
                .len()
                .saturating_sub(unfit)
                .saturating_sub(MAX_READINGS);
            r.evaluated = samples
                .iter()
                .filter(fits)
                .take(MAX_READINGS)
                .map(|s| {
                    let e = r.tracker.observe(
                        thresholds,
                        Observed {
                            key: &s.key,
                            number: s.value.as_f64(),
                            state: s.state_level(),
                        },
                    );
                    let reading = Reading {
                        key: s.key.clone(),
                        value: wire_value(&s.value),
                        unit: s.unit.clone(),
                        level: wire_level(e.level),
                        message: match e.message {
                            Some(m) if s.message.is_empty() => m,
                            _ => s.message.clone(),
                        },
                        threshold: e.threshold,
                    };
                    let rank = rank(&reading, s.state.is_some());
                    (reading, rank)
                })
                .collect();
            if unfit + over > 0 {
                let message = format!(
                    "plugin {name} sent {unfit} readings with an empty key or one over {MAX_KEY} \
                     bytes and {over} readings over the limit of {MAX_READINGS}; they are left out"
                );
                tracing::debug!("{message}");
                r.evaluated.push((
                    status_reading(name, "readings_left_out", message),
                    Rank::Hbc,
                ));
            }
            r.tracker.end_cycle();
        }
        r.evaluated_run = st.runs;
    }
    r.evaluated.clone()
}

fn to_api_level(l: WireLevel) -> Level {
    match l {
        WireLevel::Ok => Level::Ok,
        WireLevel::Warning => Level::Warning,
        WireLevel::Critical => Level::Critical,
        WireLevel::Unknown => Level::Unknown,
    }
}

/// Gathers every plugin's readings (and hbc's own about quarantined plugins) into one
/// heartbeat, not yet fitted to hbc's size limit (`fit::fit`).
pub fn build(
    plugins: &mut PluginSet,
    thresholds: &Thresholds,
    host: &str,
    instance: u64,
    seq: u64,
    interval: Duration,
) -> Draft {
    let now = Instant::now();
    let mut readings = Vec::new();
    let mut meta = Vec::new();
    let mut names = Vec::new();
    for (reading, plugin) in plugins.quarantine_readings() {
        readings.push(reading);
        meta.push((Rank::Hbc, names.len()));
        names.push(plugin);
    }
    for (name, r) in plugins.running.iter_mut() {
        let index = match names.iter().position(|n| n == name) {
            Some(i) => i,
            None => {
                names.push(name.clone());
                names.len() - 1
            }
        };
        for (reading, rank) in plugin_readings(name, r, thresholds, now) {
            readings.push(reading);
            meta.push((rank, index));
        }
    }
    let level = crate::thresholds::overall(readings.iter().map(|r| to_api_level(r.level)));
    Draft {
        hb: Heartbeat {
            host: host.to_string(),
            instance,
            seq,
            sent_ms: unix_ms(),
            interval_ms: interval.as_millis().min(u128::from(u32::MAX)) as u32,
            level: wire_level(level),
            readings,
        },
        meta,
        plugins: names,
    }
}

/// Why the loop ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Exit {
    Signal,
    Disconnected,
}

/// What the signal thread asks of the loop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Control {
    Stop,
    /// SIGHUP: read the config again.
    Reload,
    /// The in-process plugins of the heartbeat's interval made the collects due at one
    /// instant (`PluginSet::notify_collected`): the heartbeat may go now.
    Collected,
}

/// How long after the plugins' collects are due the heartbeat waits for them at most:
/// it goes as soon as they are made (`Control::Collected`, one wake-up for both) or at
/// this deadline without them. A tenth of the interval, and never more than the plugin
/// timeout.
pub fn grace(config: &Config) -> Duration {
    (config.interval / 10).min(config.plugin_timeout)
}

/// The heartbeat's next deadline after `after`: on the plugins' grid (`grid` plus whole
/// intervals) plus `grace`, or one interval after `previous` (skipping missed ones)
/// without in-process plugins.
fn next_deadline(
    previous: Instant,
    after: Instant,
    grid: Option<Instant>,
    interval: Duration,
    grace: Duration,
) -> Instant {
    let interval = interval.max(Duration::from_millis(1));
    let Some(grid) = grid else {
        let mut next = previous + interval;
        while next <= after {
            next += interval;
        }
        return next;
    };
    let start = grid + grace;
    let from = after.max(previous);
    let steps = from.saturating_duration_since(start).as_nanos() / interval.as_nanos() + 1;
    start + interval * u32::try_from(steps).unwrap_or(u32::MAX)
}

/// Builds the list of servers to send to.
pub fn targets(specs: &[String], config: &Config) -> Result<Vec<Target>, String> {
    specs
        .iter()
        .map(|s| Target::new(s, config.hb_port, config.interval))
        .collect()
}

/// Runs until [`Control::Stop`] arrives. On [`Control::Reload`], `reload` gives the new
/// config and server list; if it fails, the error is logged and the old config stays.
/// `wake` is the sending side of `control`: the plugins' thread says through it when
/// their collects are made ([`Control::Collected`]).
pub fn run(
    config: &mut Config,
    plugins: &mut PluginSet,
    specs: &mut Vec<String>,
    host: &str,
    control: &Receiver<Control>,
    wake: &SyncSender<Control>,
    reload: &dyn Fn() -> Result<(Config, Vec<String>), String>,
) -> Result<Exit, String> {
    let mut thresholds = Thresholds::compile(&config.thresholds, config.samples)
        .map_err(|e| format!("thresholds: {e}"))?;
    let mut secret = config
        .secret
        .as_ref()
        .map(|s| s.expose().as_bytes().to_vec());
    let mut targets = targets(specs, config)?;
    let instance = unix_ms();
    let mut sender = Sender::default();
    let mut seq = 0u64;
    // Whether the last heartbeat left readings out (logged when it starts and ends).
    let mut trimming = false;
    // At most one `Collected` waits in the channel, so it never fills up with them and
    // a signal always finds room.
    let collected_sent = Arc::new(AtomicBool::new(false));
    let notify: crate::runner::Notify = {
        let (flag, tx) = (collected_sent.clone(), wake.clone());
        Arc::new(move || {
            if !flag.swap(true, Ordering::AcqRel) && tx.try_send(Control::Collected).is_err() {
                flag.store(false, Ordering::Release);
            }
        })
    };
    plugins.notify_collected(config.interval, notify.clone());
    // First heartbeat as soon as every plugin has answered once (bounded), then on a
    // fixed schedule that does not drift with the time spent building heartbeats: right
    // after the collects due at each point of the plugins' grid, or `grace` after that
    // point at the latest.
    plugins.wait_first_results(config.plugin_timeout.min(config.interval));
    let mut next = Instant::now();
    let mut refreshes = Refreshes::default();
    loop {
        let now = Instant::now();
        let wake = refreshes.next_due().map_or(next, |r| r.min(next));
        let mut collected = false;
        if now < wake {
            match control.recv_timeout(wake - now) {
                Ok(Control::Collected) => {
                    collected_sent.store(false, Ordering::Release);
                    collected = true;
                }
                Ok(Control::Stop) => return Ok(Exit::Signal),
                Ok(Control::Reload) => {
                    match reload().and_then(|(new, new_specs)| {
                        let t = Thresholds::compile(&new.thresholds, new.samples)
                            .map_err(|e| format!("thresholds: {e}"))?;
                        let tg = if new_specs != *specs || new.hb_port != config.hb_port {
                            Some(self::targets(&new_specs, &new)?)
                        } else {
                            None
                        };
                        Ok((new, new_specs, t, tg))
                    }) {
                        Ok((new, new_specs, t, tg)) => {
                            thresholds = t;
                            secret = new.secret.as_ref().map(|s| s.expose().as_bytes().to_vec());
                            refreshes.clear();
                            if let Some(tg) = tg {
                                targets = tg;
                            }
                            plugins.reconfigure(config, &new);
                            if new.interval != config.interval {
                                next = Instant::now();
                            }
                            *config = new;
                            *specs = new_specs;
                            plugins.scan(config, false);
                            plugins.notify_collected(config.interval, notify.clone());
                            tracing::info!("config reloaded");
                        }
                        Err(e) => {
                            tracing::error!("config not reloaded, keeping the running one: {e}")
                        }
                    }
                    continue;
                }
                Err(RecvTimeoutError::Disconnected) => return Ok(Exit::Disconnected),
                Err(RecvTimeoutError::Timeout) => {}
            }
        }
        plugins.watch();
        let now = Instant::now();
        // The collects of this heartbeat's grid point are made: it goes now.
        let early = collected && next.saturating_duration_since(now) <= grace(config);
        if now < next && !early {
            if let Some(d) = refreshes.take_due(now) {
                let again = hb_proto::resend(d, unix_ms(), secret.as_deref());
                for t in targets.iter_mut() {
                    sender.refresh(t, &again);
                }
            }
            continue;
        }
        seq += 1;
        let draft = build(plugins, &thresholds, host, instance, seq, config.interval);
        match crate::fit::fit(draft, secret.as_deref(), config.max_datagram) {
            Ok(fitted) => {
                for t in targets.iter_mut() {
                    sender.send(t, &fitted.datagrams);
                }
                refreshes.plan(
                    &fitted.datagrams,
                    Instant::now(),
                    config.interval,
                    config.refreshes,
                );
                match (&fitted.left_out, trimming) {
                    (Some(l), false) => tracing::warn!(
                        seq,
                        left_out = l.readings,
                        of = l.of,
                        "heartbeat too large: {}",
                        l.reading().message
                    ),
                    (None, true) => tracing::info!(seq, "heartbeats fit again; nothing left out"),
                    _ => {}
                }
                trimming = fitted.left_out.is_some();
                tracing::debug!(
                    seq,
                    readings = fitted.hb.readings.len(),
                    datagrams = fitted.datagrams.len(),
                    bytes = fitted.bytes(),
                    level = fitted.hb.level.as_str(),
                    "heartbeat sent"
                );
            }
            Err(e) => tracing::error!("cannot encode heartbeat {seq}: {e}"),
        }
        let after = Instant::now();
        next = next_deadline(
            next,
            after,
            plugins.collect_grid(config.interval),
            config.interval,
            grace(config),
        );
        if after.duration_since(plugins.last_scan) >= config.plugin_rescan {
            plugins.scan(config, true);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heartbeat_deadlines_follow_the_plugins_grid_plus_grace() {
        let ms = Duration::from_millis;
        let (grid, interval, grace) = (Instant::now(), ms(1000), ms(100));
        let d = |previous, after| next_deadline(previous, after, Some(grid), interval, grace);
        // The first heartbeat went at once (after the first collects): the next deadline
        // is the next grid point plus grace.
        assert_eq!(d(grid + ms(300), grid + ms(301)), grid + ms(1100));
        // Sent early, when the collects were made: the next deadline is one interval on.
        assert_eq!(d(grid + ms(1100), grid + ms(1001)), grid + ms(2100));
        // Sent at the deadline without them.
        assert_eq!(d(grid + ms(2100), grid + ms(2100)), grid + ms(3100));
        // Missed deadlines (hbc was stopped) are skipped.
        assert_eq!(d(grid + ms(3100), grid + ms(5500)), grid + ms(6100));
        // Without in-process plugins: one interval after the previous one.
        let start = grid + ms(7);
        let n = next_deadline(start, start + ms(1), None, interval, grace);
        assert_eq!(n, start + interval);
        let n = next_deadline(start, start + ms(2500), None, interval, grace);
        assert_eq!(n, start + ms(3000));
    }
}
