//! Shared helpers: where the built artifacts are, plugin folders, running hbc, a UDP
//! receiver, and an independent decoder of the datagram layout in `docs/protocol.md`.

use std::io::Read;
use std::net::UdpSocket;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// `target/debug` (or whichever profile built this test).
pub fn target_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    // target/<profile>/deps/<test-binary>
    exe.parent()
        .and_then(Path::parent)
        .expect("target dir")
        .to_path_buf()
}

fn require_built(path: &Path) -> PathBuf {
    assert!(
        path.exists(),
        "{} is missing: run `cargo build --workspace` before the tests (scripts/test does)",
        path.display()
    );
    path.to_path_buf()
}

pub fn hbc_bin() -> PathBuf {
    require_built(&target_dir().join("hbc"))
}

/// The built library of a bundled or fault plugin (`cpu`, `fault_panic`, ...).
pub fn plugin_lib(name: &str) -> PathBuf {
    require_built(&target_dir().join(format!("libhbc_{name}.so")))
}

pub const BUNDLED: [&str; 7] = [
    "cpu",
    "memory",
    "disk",
    "network",
    "filesystem",
    "os",
    "nagios",
];

/// A temporary plugin folder.
pub struct PluginDir {
    pub dir: tempfile::TempDir,
}

impl PluginDir {
    pub fn new() -> PluginDir {
        PluginDir {
            dir: tempfile::tempdir().expect("tempdir"),
        }
    }

    pub fn with(names: &[&str]) -> PluginDir {
        let d = PluginDir::new();
        for n in names {
            d.add(n);
        }
        d
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn add(&self, name: &str) -> PathBuf {
        let dst = self.path().join(format!("libhbc_{name}.so"));
        std::fs::copy(plugin_lib(name), &dst).expect("copy plugin");
        dst
    }

    pub fn add_bytes(&self, file: &str, bytes: &[u8]) -> PathBuf {
        let dst = self.path().join(file);
        std::fs::write(&dst, bytes).expect("write file");
        dst
    }
}

/// `config` with a `state_dir` in `dir` unless it names one: each test's hbc keeps its
/// crash markers and quarantine to itself (as root the default is /var/lib/hbc).
pub fn with_state_dir(config: &str, dir: &Path) -> String {
    if config.contains("state_dir:") {
        return config.to_string();
    }
    format!(
        "{config}\nstate_dir: {}\n",
        dir.join("state").to_str().expect("utf8 path")
    )
}

/// A running hbc, killed when dropped; its stderr goes to a file.
pub struct Hbc {
    pub child: Child,
    pub log: PathBuf,
    pub config: PathBuf,
    _tmp: tempfile::TempDir,
}

impl Hbc {
    pub fn start(config: &str, args: &[&str]) -> Hbc {
        Hbc::start_with(&hbc_bin(), config, args)
    }

    /// [`Hbc::start`] with another executable (a copy of hbc).
    pub fn start_with(bin: &Path, config: &str, args: &[&str]) -> Hbc {
        let tmp = tempfile::tempdir().expect("tempdir");
        let cfg = tmp.path().join("hbc.yaml");
        std::fs::write(&cfg, with_state_dir(config, tmp.path())).expect("write config");
        let log = tmp.path().join("stderr.log");
        let child = Command::new(bin)
            .arg("-c")
            .arg(&cfg)
            .args(args)
            .env_remove("HBC_PLUGIN_PATH")
            .env("HBC_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("log file"))
            .spawn()
            .expect("start hbc");
        Hbc {
            child,
            log,
            config: cfg,
            _tmp: tmp,
        }
    }

    pub fn log_text(&self) -> String {
        let mut s = String::new();
        if let Ok(mut f) = std::fs::File::open(&self.log) {
            let _ = f.read_to_string(&mut s);
        }
        s
    }

    pub fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Sends a signal to hbc.
    pub fn signal(&self, sig: i32) {
        // SAFETY: kill(2) with a pid we own and a valid signal number.
        unsafe {
            libc::kill(self.child.id() as i32, sig);
        }
    }

    /// SIGTERM, then the exit status within `limit`.
    pub fn terminate(&mut self, limit: Duration) -> Option<std::process::ExitStatus> {
        // SAFETY: kill(2) with a pid we own and a valid signal number.
        unsafe {
            libc::kill(self.child.id() as i32, libc::SIGTERM);
        }
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if let Ok(Some(s)) = self.child.try_wait() {
                return Some(s);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }
}

impl Drop for Hbc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs hbc to completion with a config and arguments; returns (status, stdout, stderr).
pub fn run_hbc(config: &str, args: &[&str]) -> (std::process::ExitStatus, String, String) {
    let tmp = tempfile::tempdir().expect("tempdir");
    let cfg = tmp.path().join("hbc.yaml");
    std::fs::write(&cfg, with_state_dir(config, tmp.path())).expect("write config");
    let out = Command::new(hbc_bin())
        .arg("-c")
        .arg(&cfg)
        .args(args)
        .env_remove("HBC_PLUGIN_PATH")
        .output()
        .expect("run hbc");
    (
        out.status,
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A UDP socket on 127.0.0.1 standing in for hbd.
pub struct Receiver {
    pub sock: UdpSocket,
}

impl Receiver {
    pub fn new() -> Receiver {
        let sock = UdpSocket::bind("127.0.0.1:0").expect("bind");
        Receiver { sock }
    }

    pub fn addr(&self) -> String {
        self.sock.local_addr().expect("addr").to_string()
    }

    pub fn recv(&self, timeout: Duration) -> Option<(Instant, Vec<u8>)> {
        self.sock.set_read_timeout(Some(timeout)).expect("timeout");
        let mut buf = vec![0u8; 65536];
        match self.sock.recv(&mut buf) {
            Ok(n) => {
                buf.truncate(n);
                Some((Instant::now(), buf))
            }
            Err(_) => None,
        }
    }
}

/// A reading as `docs/protocol.md` describes it, decoded without `hb-proto`.
#[derive(Debug, Clone, PartialEq)]
pub enum DocValue {
    F64(f64),
    I64(i64),
    Bool(bool),
    Text(String),
}

#[derive(Debug, Clone)]
pub struct DocReading {
    pub key: String,
    pub value: DocValue,
    pub unit: String,
    pub level: u8,
    pub message: String,
    pub threshold: String,
}

#[derive(Debug, Clone)]
pub struct DocDatagram {
    pub signed: bool,
    pub instance: u64,
    pub seq: u64,
    pub sent_ms: u64,
    pub interval_ms: u32,
    pub level: u8,
    pub part: u8,
    pub parts: u8,
    pub host: String,
    pub readings: Vec<DocReading>,
}

impl DocDatagram {
    pub fn get(&self, key: &str) -> Option<&DocReading> {
        self.readings.iter().find(|r| r.key == key)
    }
}

/// Decodes a datagram following `docs/protocol.md` byte by byte, checking the HMAC
/// trailer with `secret` when the signed flag is set.
pub fn doc_decode(d: &[u8], secret: Option<&[u8]>) -> Result<DocDatagram, String> {
    use hmac::Mac;
    if d.len() < 36 || &d[0..2] != b"HB" || d[2] != 1 {
        return Err("bad header".into());
    }
    let signed = d[3] & 1 == 1;
    if d[3] & !1 != 0 {
        return Err("unknown flags".into());
    }
    let body = if signed {
        let (body, mac) = d.split_at(d.len() - 32);
        if let Some(key) = secret {
            let mut m =
                hmac::Hmac::<sha2::Sha256>::new_from_slice(key).map_err(|e| e.to_string())?;
            m.update(body);
            m.verify_slice(mac)
                .map_err(|_| "HMAC mismatch".to_string())?;
        }
        body
    } else {
        d
    };
    let be64 = |at: usize| u64::from_be_bytes(body[at..at + 8].try_into().expect("8 bytes"));
    let mut pos = 36usize;
    let mut take = |n: usize| -> Result<&[u8], String> {
        let s = body.get(pos..pos + n).ok_or("truncated")?;
        pos += n;
        Ok(s)
    };
    let text = |b: &[u8]| String::from_utf8(b.to_vec()).map_err(|_| "utf8".to_string());
    let host_len = body[35] as usize;
    let host = text(take(host_len)?)?;
    let count = u16::from_be_bytes(take(2)?.try_into().expect("2"));
    let mut readings = Vec::new();
    for _ in 0..count {
        let k = take(1)?[0] as usize;
        let key = text(take(k)?)?;
        let value = match take(1)?[0] {
            0 => DocValue::F64(f64::from_be_bytes(take(8)?.try_into().expect("8"))),
            1 => DocValue::I64(i64::from_be_bytes(take(8)?.try_into().expect("8"))),
            2 => DocValue::Bool(take(1)?[0] == 1),
            3 => {
                let n = u16::from_be_bytes(take(2)?.try_into().expect("2")) as usize;
                DocValue::Text(text(take(n)?)?)
            }
            t => return Err(format!("value type {t}")),
        };
        let u = take(1)?[0] as usize;
        let unit = text(take(u)?)?;
        let level = take(1)?[0];
        let m = u16::from_be_bytes(take(2)?.try_into().expect("2")) as usize;
        let message = text(take(m)?)?;
        let t = take(1)?[0] as usize;
        let threshold = text(take(t)?)?;
        readings.push(DocReading {
            key,
            value,
            unit,
            level,
            message,
            threshold,
        });
    }
    if pos != body.len() {
        return Err(format!("{} trailing bytes", body.len() - pos));
    }
    Ok(DocDatagram {
        signed,
        instance: be64(4),
        seq: be64(12),
        sent_ms: be64(20),
        interval_ms: u32::from_be_bytes(body[28..32].try_into().expect("4")),
        level: body[32],
        part: body[33],
        parts: body[34],
        host,
        readings,
    })
}

/// Collects whole heartbeats (all parts of one seq merged) for `duration`.
pub fn collect_heartbeats(
    rx: &Receiver,
    duration: Duration,
    secret: Option<&[u8]>,
) -> Vec<(Instant, DocDatagram)> {
    let end = Instant::now() + duration;
    let mut out: Vec<(Instant, DocDatagram)> = Vec::new();
    while Instant::now() < end {
        let Some((at, bytes)) = rx.recv(
            end.saturating_duration_since(Instant::now())
                .max(Duration::from_millis(1)),
        ) else {
            continue;
        };
        let d = doc_decode(&bytes, secret)
            .unwrap_or_else(|e| panic!("datagram does not follow docs/protocol.md: {e}"));
        match out.last_mut() {
            Some((_, last)) if last.seq == d.seq && last.instance == d.instance => {
                last.readings.extend(d.readings)
            }
            _ => out.push((at, d)),
        }
    }
    out
}

/// The readings of `hbc --once --json`.
pub fn once_json(config: &str, plugin_dir: &Path) -> serde_json::Value {
    let (status, stdout, stderr) = run_hbc(
        config,
        &[
            "--plugin-dir",
            plugin_dir.to_str().expect("utf8 path"),
            "--once",
            "--json",
        ],
    );
    assert!(status.success(), "hbc --once failed: {stderr}");
    serde_json::from_str(&stdout)
        .unwrap_or_else(|e| panic!("--json output is not JSON ({e}): {stdout}"))
}

/// One reading of `--once --json` output by key.
pub fn reading<'a>(json: &'a serde_json::Value, key: &str) -> Option<&'a serde_json::Value> {
    json["readings"]
        .as_array()?
        .iter()
        .find(|r| r["key"] == key)
}

/// Fails with what to install when a real component the test needs is missing.
pub fn require_file(path: &str, package: &str) {
    assert!(
        Path::new(path).exists(),
        "{path} is missing: install the Debian package {package} (scripts/deps does, and scripts/test runs it)"
    );
}
