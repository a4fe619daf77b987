//! A realistic heartbeat (30 readings, like hbc's bundled plugins send) encoded once with
//! `hb_proto::encode`, then stamped cheaply for every simulated host and sequence number:
//! host name, `seq`, `sent_ms` and the `cpu.usage_percent` value are patched in place and
//! the HMAC trailer is recomputed from a pre-keyed HMAC state (about 1 µs per datagram
//! with SHA-NI), so the generator never re-encodes.

use anyhow::{bail, Context, Result};
use hb_proto::{Heartbeat, Level, Reading, Value, MAC_LEN};
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// Host names all have this length so one template fits every host.
pub const NAME_LEN: usize = 22;
/// Offset of the host name in a datagram (fixed header length).
const NAME_OFF: usize = hb_proto::HEADER_LEN;

/// The name of simulated host `i`: `sim-0000042.bench.test` (22 bytes).
pub fn host_name(i: usize) -> String {
    format!("sim-{i:07}.bench.test")
}

fn r(key: &str, value: Value, unit: &str, threshold: &str) -> Reading {
    Reading {
        key: key.into(),
        value,
        unit: unit.into(),
        level: Level::Ok,
        message: String::new(),
        threshold: threshold.into(),
    }
}

/// 30 readings shaped like hbc's cpu, memory, filesystem, disk, network and os plugins.
pub fn readings(count: usize) -> Vec<Reading> {
    use Value::{Text, F64, I64};
    let mut v = vec![
        r("cpu.usage_percent", F64(12.5), "%", "warn=80 crit=95"),
        r("cpu.iowait_percent", F64(0.4), "%", ""),
        r("cpu.cores", I64(8), "", ""),
        r("cpu.load1", F64(0.82), "", "warn=8 crit=16"),
        r("cpu.load5", F64(0.71), "", ""),
        r("cpu.load15", F64(0.64), "", ""),
        r("memory.total_bytes", I64(33_554_432_000), "B", ""),
        r("memory.used_bytes", I64(9_126_805_504), "B", ""),
        r("memory.available_bytes", I64(24_427_626_496), "B", ""),
        r("memory.used_percent", F64(27.2), "%", "warn=90"),
        r("memory.swap_total_bytes", I64(2_147_483_648), "B", ""),
        r("memory.swap_used_bytes", I64(0), "B", ""),
        r("fs./.used_percent", F64(41.3), "%", "warn=85 crit=95"),
        r("fs./.used_bytes", I64(104_857_600_000), "B", ""),
        r("fs./.free_bytes", I64(149_046_411_264), "B", ""),
        r("fs./.inodes_used_percent", F64(3.1), "%", ""),
        r("fs./var.used_percent", F64(63.0), "%", "warn=85 crit=95"),
        r("fs./var.free_bytes", I64(39_728_447_488), "B", ""),
        r("disk.vda.read_bytes_per_s", F64(183_500.8), "B/s", ""),
        r("disk.vda.write_bytes_per_s", F64(2_516_582.4), "B/s", ""),
        r("disk.vda.busy_percent", F64(4.2), "%", ""),
        r("network.eth0.rx_bytes_per_s", F64(125_829.1), "B/s", ""),
        r("network.eth0.tx_bytes_per_s", F64(98_304.0), "B/s", ""),
        r("network.eth0.rx_packets_per_s", F64(412.0), "1/s", ""),
        r("network.eth0.tx_packets_per_s", F64(388.5), "1/s", ""),
        r("network.eth0.rx_errors", I64(0), "", ""),
        r(
            "os.name",
            Text("Debian GNU/Linux 12 (bookworm)".into()),
            "",
            "",
        ),
        r("os.kernel", Text("6.1.0-27-amd64".into()), "", ""),
        r("os.uptime_s", I64(1_234_567), "s", ""),
        r("os.processes", I64(231), "", ""),
    ];
    // More or fewer readings on request: extra ones are numbered gauges.
    let mut i = 0;
    while v.len() < count {
        v.push(r(&format!("extra.gauge{i}"), F64(i as f64), "", ""));
        i += 1;
    }
    v.truncate(count.max(1));
    v
}

/// One encoded datagram and the offsets to patch.
#[derive(Clone)]
pub struct Template {
    bytes: Vec<u8>,
    /// Offset of the `cpu.usage_percent` f64 value, if that reading is present.
    cpu_off: Option<usize>,
    mac: Hmac<Sha256>,
}

impl Template {
    /// Encodes the template heartbeat for `readings` readings, signed with `secret`.
    pub fn new(readings_n: usize, secret: &str, interval_ms: u32) -> Result<Template> {
        let hb = Heartbeat {
            host: host_name(0),
            instance: 1,
            seq: 1,
            sent_ms: 1,
            interval_ms,
            level: Level::Ok,
            readings: readings(readings_n),
        };
        let parts = hb_proto::encode(&hb, Some(secret.as_bytes()), 65_000)
            .context("encoding the template heartbeat")?;
        if parts.len() != 1 {
            bail!("template heartbeat needs {} datagrams", parts.len());
        }
        let bytes = parts.into_iter().next().context("no datagram")?;
        let key = b"\x11cpu.usage_percent\x00";
        let cpu_off = bytes
            .windows(key.len())
            .position(|w| w == key)
            .map(|p| p + key.len());
        let mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes())
            .map_err(|_| anyhow::anyhow!("bad HMAC key"))?;
        Ok(Template {
            bytes,
            cpu_off,
            mac,
        })
    }

    pub fn len(&self) -> usize {
        self.bytes.len()
    }

    /// Writes the datagram of host `host` with `seq`, `instance`, `sent_ms` and, if given,
    /// `cpu.usage_percent = cpu` into `out` (at least `len()` bytes), signed.
    pub fn stamp(
        &self,
        out: &mut [u8],
        host: usize,
        instance: u64,
        seq: u64,
        sent_ms: u64,
        cpu: Option<f64>,
    ) -> usize {
        let n = self.bytes.len();
        let out = &mut out[..n];
        out.copy_from_slice(&self.bytes);
        out[4..12].copy_from_slice(&instance.to_be_bytes());
        out[12..20].copy_from_slice(&seq.to_be_bytes());
        out[20..28].copy_from_slice(&sent_ms.to_be_bytes());
        write_name(&mut out[NAME_OFF..NAME_OFF + NAME_LEN], host);
        if let (Some(off), Some(v)) = (self.cpu_off, cpu) {
            out[off..off + 8].copy_from_slice(&v.to_be_bytes());
        }
        let (body, trailer) = out.split_at_mut(n - MAC_LEN);
        let mut m = self.mac.clone();
        m.update(body);
        trailer.copy_from_slice(&m.finalize().into_bytes());
        n
    }
}

/// Writes `sim-NNNNNNN.bench.test` without allocating.
fn write_name(out: &mut [u8], host: usize) {
    out[..4].copy_from_slice(b"sim-");
    let mut v = host;
    for i in (4..11).rev() {
        out[i] = b'0' + (v % 10) as u8;
        v /= 10;
    }
    out[11..].copy_from_slice(b".bench.test");
}

/// Unix milliseconds now.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamped_datagrams_decode_and_verify() {
        let t = Template::new(30, "s3cret", 10_000).expect("template");
        let mut buf = vec![0u8; 2048];
        let n = t.stamp(&mut buf, 4242, 77, 9, 1_700_000_000_000, Some(123.0));
        let p = hb_proto::decode(&buf[..n], Some(b"s3cret")).expect("valid");
        assert_eq!(p.host, "sim-0004242.bench.test");
        assert_eq!(host_name(4242), p.host);
        assert_eq!((p.instance, p.seq, p.sent_ms), (77, 9, 1_700_000_000_000));
        assert_eq!(p.readings.len(), 30);
        assert_eq!(p.readings[0].value, hb_proto::ValueRef::F64(123.0));
        assert!(hb_proto::decode(&buf[..n], Some(b"other")).is_err());
        assert!(n > 700 && n < 1400, "realistic size: {n}");
    }
}
