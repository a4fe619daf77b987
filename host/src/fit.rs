//! Fitting a heartbeat into hbc's own size limit: at most [`MAX_PARTS`] datagrams and
//! [`MAX_HEARTBEAT_BYTES`] bytes.
//!
//! A heartbeat that does not fit is never dropped whole (a healthy host would look dead):
//! its readings are ranked (hbc's own, then the worst levels, then summaries, then the
//! rest), the most that fit are sent in their usual order, and one more reading,
//! `hbc.heartbeat.left_out`, says how many were left out and from which plugins. The rank
//! is a pure function of a reading, so the choice is the same every cycle.

use hb_proto::{EncodeError, Heartbeat, Level, Reading, Value};

/// Most datagrams hbc sends for one heartbeat (docs/protocol.md, "hbc's limits"). The wire
/// format allows 255; 64 parts of the default 1400 bytes hold about 2,000 typical
/// readings, and a receiver that limits parts per heartbeat must accept at least this.
pub const MAX_PARTS: usize = 64;
/// Most bytes hbc sends for one heartbeat, all parts together. Binds only with a large
/// `max_datagram` (4 parts of 65,507 bytes), so one heartbeat never needs close to
/// 255 × 64 KB of a receiver's buffers.
pub const MAX_HEARTBEAT_BYTES: usize = 256 * 1024;
/// Key of the reading that says what was left out.
pub const LEFT_OUT_KEY: &str = "hbc.heartbeat.left_out";
/// Most plugins named in the left-out reading's message (the rest are counted).
const NAMED_PLUGINS: usize = 12;

/// Where a reading stands when not everything fits; lower is kept first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Rank {
    /// hbc's own readings (`hbc.*`): plugin status, quarantine.
    Hbc,
    Critical,
    Unknown,
    Warning,
    /// A status reading (its plugin set its level, e.g. a Nagios check's state) or a
    /// top-level figure (`cpu.usage_percent`: at most two key segments).
    Summary,
    Detail,
}

/// Ranks one reading. `status`: its plugin decided its level itself.
pub fn rank(r: &Reading, status: bool) -> Rank {
    if r.key.starts_with("hbc.") {
        return Rank::Hbc;
    }
    match r.level {
        Level::Critical => Rank::Critical,
        Level::Unknown => Rank::Unknown,
        Level::Warning => Rank::Warning,
        // At most one dot: `cpu.usage_percent`, not `cpu.0.usage_percent`.
        Level::Ok if status || r.key.bytes().filter(|&b| b == b'.').count() <= 1 => Rank::Summary,
        Level::Ok => Rank::Detail,
    }
}

/// A heartbeat before it is fitted, with where each reading came from.
#[derive(Debug, Clone)]
pub struct Draft {
    pub hb: Heartbeat,
    /// For each reading of `hb`: its rank and the index of its plugin in `plugins`.
    pub meta: Vec<(Rank, usize)>,
    pub plugins: Vec<String>,
}

impl Draft {
    /// A draft of `hb` whose readings are ranked by [`rank`] (without status flags) and
    /// attributed to the plugin named by their key's first segment.
    pub fn from_heartbeat(hb: Heartbeat) -> Draft {
        let mut plugins: Vec<String> = Vec::new();
        let meta = hb
            .readings
            .iter()
            .map(|r| {
                let name = r.key.split('.').next().unwrap_or_default().to_string();
                let i = match plugins.iter().position(|p| *p == name) {
                    Some(i) => i,
                    None => {
                        plugins.push(name);
                        plugins.len() - 1
                    }
                };
                (rank(r, false), i)
            })
            .collect();
        Draft { hb, meta, plugins }
    }
}

/// What was left out of a heartbeat.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeftOut {
    /// Readings left out.
    pub readings: usize,
    /// Readings the heartbeat had before.
    pub of: usize,
    /// Datagrams the whole heartbeat would have needed (`None`: more than 255).
    pub needed_parts: Option<usize>,
    /// Plugins that lost readings, with how many, in plugin order.
    pub plugins: Vec<(String, usize)>,
}

impl LeftOut {
    fn message(&self) -> String {
        let needed = match self.needed_parts {
            Some(n) => format!("{n} datagrams"),
            None => "more than 255 datagrams".to_string(),
        };
        let mut names: Vec<String> = self
            .plugins
            .iter()
            .take(NAMED_PLUGINS)
            .map(|(p, n)| format!("{p} {n}"))
            .collect();
        if self.plugins.len() > NAMED_PLUGINS {
            names.push(format!(
                "and {} more plugins",
                self.plugins.len() - NAMED_PLUGINS
            ));
        }
        format!(
            "{} of {} readings left out (from {}): the heartbeat would need {needed}; hbc sends \
             at most {MAX_PARTS} datagrams and {} KiB, keeping hbc's own readings, the worst \
             levels and summaries first",
            self.readings,
            self.of,
            names.join(", "),
            MAX_HEARTBEAT_BYTES / 1024
        )
    }

    /// The reading that reports this in the heartbeat itself.
    pub fn reading(&self) -> Reading {
        Reading {
            key: LEFT_OUT_KEY.to_string(),
            value: Value::I64(i64::try_from(self.readings).unwrap_or(i64::MAX)),
            unit: String::new(),
            level: Level::Warning,
            message: self.message(),
            threshold: String::new(),
        }
    }
}

/// A heartbeat ready to send.
#[derive(Debug, Clone)]
pub struct Fitted {
    /// The heartbeat as sent (left-out readings removed, the left-out reading added).
    pub hb: Heartbeat,
    pub datagrams: Vec<Vec<u8>>,
    pub left_out: Option<LeftOut>,
}

impl Fitted {
    pub fn bytes(&self) -> usize {
        self.datagrams.iter().map(Vec::len).sum()
    }
}

fn within_limits(datagrams: &[Vec<u8>]) -> bool {
    datagrams.len() <= MAX_PARTS
        && datagrams.iter().map(Vec::len).sum::<usize>() <= MAX_HEARTBEAT_BYTES
}

/// Protocol order of levels: OK < WARNING < UNKNOWN < CRITICAL.
fn severity(l: Level) -> u8 {
    match l {
        Level::Ok => 0,
        Level::Warning => 1,
        Level::Unknown => 2,
        Level::Critical => 3,
    }
}

/// Encodes `draft` within hbc's limits, leaving out the lowest-ranked readings if needed.
/// Errors only for what no trimming can fix (a bad host name or datagram limit).
pub fn fit(
    draft: Draft,
    secret: Option<&[u8]>,
    max_datagram: usize,
) -> Result<Fitted, EncodeError> {
    let needed_parts = match hb_proto::encode(&draft.hb, secret, max_datagram) {
        Ok(datagrams) if within_limits(&datagrams) => {
            return Ok(Fitted {
                hb: draft.hb,
                datagrams,
                left_out: None,
            })
        }
        Ok(datagrams) => Some(datagrams.len()),
        Err(EncodeError::TooManyParts(_)) => None,
        Err(e) => return Err(e),
    };

    let Draft { hb, meta, plugins } = draft;
    let total = hb.readings.len();
    // Indices by rank; ties keep heartbeat order (a stable sort).
    let mut order: Vec<usize> = (0..total).collect();
    order.sort_by_key(|&i| meta.get(i).map_or(Rank::Detail, |m| m.0));

    let attempt = |keep: usize| -> Result<Fitted, EncodeError> {
        let mut kept = vec![false; total];
        for &i in &order[..keep] {
            kept[i] = true;
        }
        let mut lost = vec![0usize; plugins.len()];
        for (i, k) in kept.iter().enumerate() {
            if !k {
                if let Some(n) = meta.get(i).and_then(|m| lost.get_mut(m.1)) {
                    *n += 1;
                }
            }
        }
        let left_out = LeftOut {
            readings: total - keep,
            of: total,
            needed_parts,
            plugins: plugins
                .iter()
                .zip(&lost)
                .filter(|(_, n)| **n > 0)
                .map(|(p, n)| (p.clone(), *n))
                .collect(),
        };
        let mut readings: Vec<Reading> = hb
            .readings
            .iter()
            .zip(&kept)
            .filter(|(_, k)| **k)
            .map(|(r, _)| r.clone())
            .collect();
        readings.push(left_out.reading());
        let out = Heartbeat {
            readings,
            level: if severity(hb.level) < severity(Level::Warning) {
                Level::Warning
            } else {
                hb.level
            },
            ..hb.clone()
        };
        let datagrams = hb_proto::encode(&out, secret, max_datagram)?;
        Ok(Fitted {
            hb: out,
            datagrams,
            left_out: Some(left_out),
        })
    };
    let fits = |keep: usize| -> Result<Option<Fitted>, EncodeError> {
        match attempt(keep) {
            Ok(x) if within_limits(&x.datagrams) => Ok(Some(x)),
            Ok(_) | Err(EncodeError::TooManyParts(_)) => Ok(None),
            Err(e) => Err(e),
        }
    };
    // The largest number of top-ranked readings that fits: binary search (more readings
    // never need fewer parts), so at most about 15 encodings for 20,000 readings.
    let (mut lo, mut hi) = (0usize, total.saturating_sub(1));
    let mut best = match fits(0)? {
        Some(x) => x,
        // Not even the left-out reading alone fits: only a broken limit does that.
        None => return Err(EncodeError::TooManyParts(MAX_PARTS + 1)),
    };
    while lo < hi {
        let mid = lo + (hi - lo).div_ceil(2);
        match fits(mid)? {
            Some(x) => {
                best = x;
                lo = mid;
            }
            None => hi = mid - 1,
        }
    }
    Ok(best)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reading(key: &str, level: Level, message_len: usize) -> Reading {
        Reading {
            key: key.to_string(),
            value: Value::F64(1.0),
            unit: String::new(),
            level,
            message: "m".repeat(message_len),
            threshold: String::new(),
        }
    }

    fn heartbeat(readings: Vec<Reading>) -> Heartbeat {
        Heartbeat {
            host: "web1".into(),
            instance: 1,
            seq: 1,
            sent_ms: 1,
            interval_ms: 10_000,
            level: Level::Ok,
            readings,
        }
    }

    #[test]
    fn ranks_hbc_then_worst_levels_then_summaries() {
        let r = |k: &str, l| reading(k, l, 0);
        assert_eq!(rank(&r("hbc.plugin.cpu", Level::Ok), false), Rank::Hbc);
        assert_eq!(
            rank(&r("nagios.x.y", Level::Critical), false),
            Rank::Critical
        );
        assert_eq!(rank(&r("nagios.x.y", Level::Unknown), false), Rank::Unknown);
        assert_eq!(rank(&r("nagios.x.y", Level::Warning), false), Rank::Warning);
        assert_eq!(rank(&r("nagios.x.state", Level::Ok), true), Rank::Summary);
        assert_eq!(
            rank(&r("cpu.usage_percent", Level::Ok), false),
            Rank::Summary
        );
        assert_eq!(
            rank(&r("cpu.core0.usage_percent", Level::Ok), false),
            Rank::Detail
        );
        assert!(Rank::Hbc < Rank::Critical && Rank::Critical < Rank::Unknown);
        assert!(Rank::Unknown < Rank::Warning && Rank::Warning < Rank::Summary);
        assert!(Rank::Summary < Rank::Detail);
    }

    #[test]
    fn a_heartbeat_that_fits_is_sent_whole() {
        let hb = heartbeat(vec![reading("cpu.usage_percent", Level::Ok, 10)]);
        let f = fit(Draft::from_heartbeat(hb.clone()), None, 1400).expect("fits");
        assert_eq!(f.hb, hb);
        assert_eq!(f.datagrams.len(), 1);
        assert!(f.left_out.is_none());
    }

    /// Over 255 datagrams' worth of readings (the case that made hbc send nothing): the
    /// most important readings are kept, in their order, and the rest are counted.
    #[test]
    fn an_oversized_heartbeat_keeps_the_most_important_readings() {
        let mut readings = Vec::new();
        // 3,000 readings of about 700 bytes: roughly 1,500 datagrams of 1400 bytes.
        for i in 0..3_000 {
            readings.push(reading(
                &format!("nagios.check{}.perf{i}", i % 10),
                Level::Ok,
                680,
            ));
        }
        readings.insert(1_500, reading("nagios.check3.state", Level::Critical, 680));
        readings.insert(2_000, reading("hbc.plugin.fault", Level::Unknown, 100));
        readings.insert(2_500, reading("memory.used_bytes", Level::Ok, 0));
        readings.insert(2_600, reading("nagios.check4.warm", Level::Warning, 680));
        let mut draft = Draft::from_heartbeat(heartbeat(readings));
        // A status reading ranks as a summary although its key is deep.
        draft
            .hb
            .readings
            .push(reading("nagios.check5.state", Level::Ok, 680));
        draft.meta.push((Rank::Summary, draft.meta[0].1));
        let total = draft.hb.readings.len();

        let f = fit(draft, Some(b"secret"), 1400).expect("fitted");
        assert!(
            f.datagrams.len() <= MAX_PARTS,
            "{} parts",
            f.datagrams.len()
        );
        assert!(f.bytes() <= MAX_HEARTBEAT_BYTES);
        let keys: Vec<&str> = f.hb.readings.iter().map(|r| r.key.as_str()).collect();
        for k in [
            "hbc.plugin.fault",
            "nagios.check3.state",
            "nagios.check4.warm",
            "memory.used_bytes",
            "nagios.check5.state",
        ] {
            assert!(keys.contains(&k), "{k} kept");
        }
        // In heartbeat order, the left-out reading last.
        let pos = |k: &str| keys.iter().position(|x| *x == k).expect("kept");
        assert!(pos("nagios.check3.state") < pos("hbc.plugin.fault"));
        assert!(pos("hbc.plugin.fault") < pos("memory.used_bytes"));
        assert_eq!(keys.last(), Some(&LEFT_OUT_KEY));
        // As many details as fit, the first ones first.
        assert!(keys.contains(&"nagios.check0.perf0"));
        assert!(!keys.contains(&"nagios.check9.perf2999"));

        let left = f.left_out.expect("something left out");
        assert_eq!(left.of, total);
        assert_eq!(left.readings, left.of - (f.hb.readings.len() - 1));
        assert_eq!(left.needed_parts, None, "over 255 parts");
        assert_eq!(left.plugins.len(), 1);
        assert_eq!(left.plugins[0], ("nagios".to_string(), left.readings));
        let r = f.hb.readings.last().expect("left-out reading");
        assert_eq!(r.value, Value::I64(left.readings as i64));
        assert_eq!(r.level, Level::Warning);
        assert!(r.message.contains("from nagios"), "{}", r.message);
        assert_eq!(f.hb.level, Level::Warning, "at least WARNING");

        // Fills the limit: one more reading would not fit.
        assert!(
            f.datagrams.len() >= MAX_PARTS - 1,
            "{} parts",
            f.datagrams.len()
        );
        // Every part decodes.
        for d in &f.datagrams {
            hb_proto::decode(d, Some(b"secret")).expect("decodes");
        }
    }

    /// Between the limit and 255 parts the heartbeat could be encoded, but hbc still
    /// keeps to its own limit and says how many parts it would have needed.
    #[test]
    fn a_heartbeat_over_the_parts_limit_but_encodable_is_trimmed_too() {
        let readings = (0..200)
            .map(|i| reading(&format!("disk.sd{i}.busy_percent"), Level::Ok, 600))
            .collect();
        let f = fit(Draft::from_heartbeat(heartbeat(readings)), None, 1400).expect("fitted");
        let left = f.left_out.expect("trimmed");
        let needed = left.needed_parts.expect("encodable");
        assert!(needed > MAX_PARTS && needed <= 255, "{needed}");
        assert!(f.datagrams.len() <= MAX_PARTS);
        assert!(left
            .message()
            .contains(&format!("would need {needed} datagrams")));
    }

    #[test]
    fn large_datagrams_are_held_to_the_byte_limit() {
        let readings = (0..2_000)
            .map(|i| reading(&format!("os.x.k{i}"), Level::Ok, 1000))
            .collect();
        let f = fit(Draft::from_heartbeat(heartbeat(readings)), None, 65_507).expect("fitted");
        assert!(f.bytes() <= MAX_HEARTBEAT_BYTES, "{}", f.bytes());
        assert!(f.bytes() > MAX_HEARTBEAT_BYTES - 70_000, "{}", f.bytes());
        assert!(f.left_out.is_some());
    }

    #[test]
    fn plugins_are_named_in_order_with_their_counts() {
        let left = LeftOut {
            readings: 30,
            of: 100,
            needed_parts: Some(70),
            plugins: (0..14).map(|i| (format!("p{i}"), 2)).collect(),
        };
        let m = left.message();
        assert!(
            m.starts_with("30 of 100 readings left out (from p0 2, p1 2,"),
            "{m}"
        );
        assert!(m.contains("p11 2, and 2 more plugins"), "{m}");
        assert!(!m.contains("p12 2"), "{m}");
    }
}
