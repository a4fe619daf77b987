//! The real SMTP server of these tests (aiosmtpd, driven by `tests/support/smtp_sink.py`)
//! on a loopback port, a test CA and server certificate for its TLS, and a small reader
//! for the messages it stored (headers, multipart/alternative parts, quoted-printable
//! and base64 bodies).

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// A CA, and a server certificate for 127.0.0.1 and localhost signed by it.
pub struct TestCert {
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
}

pub fn test_cert(dir: &Path) -> TestCert {
    use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "hbd notification tests CA");
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().expect("CA key"))
        .expect("CA certificate");
    let key = KeyPair::generate().expect("server key");
    let mut params = CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()])
        .expect("server params");
    params
        .distinguished_name
        .push(DnType::CommonName, "127.0.0.1");
    let cert = params.signed_by(&key, &ca).expect("server certificate");
    let out = TestCert {
        ca: dir.join("ca.pem"),
        cert: dir.join("server.pem"),
        key: dir.join("server.key"),
    };
    std::fs::write(&out.ca, ca.pem()).expect("write CA");
    std::fs::write(&out.cert, cert.pem()).expect("write certificate");
    std::fs::write(&out.key, key.serialize_pem()).expect("write key");
    out
}

pub fn free_tcp_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free TCP port")
}

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("support/smtp_sink.py")
}

/// Fails the test, with the fix, when Python or aiosmtpd is missing.
fn require_aiosmtpd() {
    let ok = Command::new("python3")
        .args(["-c", "import aiosmtpd"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        ok,
        "these tests need python3 with the aiosmtpd package (a real SMTP server): \
         python3 -m pip install aiosmtpd   (or run: scripts/deps)"
    );
}

/// TLS mode of the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Plain,
    Starttls,
    Tls,
}

/// A running SMTP server storing every message in `dir`.
pub struct Smtp {
    child: Option<Child>,
    pub dir: PathBuf,
}

impl Smtp {
    pub fn start(
        port: u16,
        dir: &Path,
        mode: Mode,
        cert: Option<&TestCert>,
        auth: Option<&str>,
    ) -> Smtp {
        require_aiosmtpd();
        let mut cmd = Command::new("python3");
        cmd.arg(script())
            .args(["--port", &port.to_string()])
            .arg("--dir")
            .arg(dir)
            .args([
                "--mode",
                match mode {
                    Mode::Plain => "plain",
                    Mode::Starttls => "starttls",
                    Mode::Tls => "tls",
                },
            ]);
        if let Some(c) = cert {
            cmd.arg("--cert").arg(&c.cert).arg("--key").arg(&c.key);
        }
        if let Some(a) = auth {
            cmd.args(["--auth", a]);
        }
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start python3 tests/support/smtp_sink.py");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(line);
        });
        let line = rx.recv_timeout(Duration::from_secs(20)).unwrap_or_default();
        if !line.starts_with("ready") {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the SMTP server did not start on port {port} (said {line:?})");
        }
        Smtp {
            child: Some(child),
            dir: dir.to_path_buf(),
        }
    }

    /// Stops it (SIGTERM, like a service manager).
    pub fn stop(mut self) {
        self.terminate();
    }

    fn terminate(&mut self) {
        if let Some(mut c) = self.child.take() {
            // SAFETY: kill(2) on our own child.
            unsafe {
                libc::kill(c.id() as i32, libc::SIGTERM);
            }
            let _ = c.wait();
        }
    }
}

impl Drop for Smtp {
    fn drop(&mut self) {
        self.terminate();
    }
}

/// One stored message.
#[derive(Debug, Clone)]
pub struct Mail {
    headers: Vec<(String, String)>,
    body: String,
}

fn split_headers(text: &str) -> (Vec<(String, String)>, String) {
    let (head, body) = text
        .split_once("\r\n\r\n")
        .or_else(|| text.split_once("\n\n"))
        .unwrap_or((text, ""));
    let mut headers: Vec<(String, String)> = Vec::new();
    for line in head.lines() {
        if line.starts_with(' ') || line.starts_with('\t') {
            if let Some(last) = headers.last_mut() {
                last.1.push(' ');
                last.1.push_str(line.trim());
            }
        } else if let Some((k, v)) = line.split_once(':') {
            headers.push((k.trim().to_string(), v.trim().to_string()));
        }
    }
    (headers, body.to_string())
}

fn decode_qp(s: &str) -> String {
    let mut out = Vec::new();
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'=' {
            if b.get(i + 1) == Some(&b'\r') && b.get(i + 2) == Some(&b'\n') {
                i += 3;
                continue;
            }
            if b.get(i + 1) == Some(&b'\n') {
                i += 2;
                continue;
            }
            if let Some(v) = s
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
            {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn decode_base64(s: &str) -> String {
    const ALPHA: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = Vec::new();
    let (mut acc, mut bits) = (0u32, 0);
    for c in s.bytes() {
        let Some(v) = ALPHA.iter().position(|&a| a == c) else {
            continue;
        };
        acc = (acc << 6) | v as u32;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

impl Mail {
    fn parse(text: &str) -> Mail {
        let (headers, body) = split_headers(text);
        Mail { headers, body }
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The decoded body of the part with this content type (`text/plain`, `text/html`).
    pub fn part(&self, ctype: &str) -> Option<String> {
        let top = self.header("content-type")?;
        let boundary = top
            .split(';')
            .find_map(|p| p.trim().strip_prefix("boundary="))?
            .trim_matches('"')
            .to_string();
        self.body
            .split(&format!("--{boundary}"))
            .skip(1)
            .map(split_headers)
            .find(|(h, _)| {
                h.iter()
                    .any(|(k, v)| k.eq_ignore_ascii_case("content-type") && v.starts_with(ctype))
            })
            .map(|(h, body)| {
                let enc = h
                    .iter()
                    .find(|(k, _)| k.eq_ignore_ascii_case("content-transfer-encoding"))
                    .map(|(_, v)| v.to_ascii_lowercase())
                    .unwrap_or_default();
                let body = body.trim_end_matches(['\r', '\n']).to_string();
                match enc.as_str() {
                    "quoted-printable" => decode_qp(&body),
                    "base64" => decode_base64(&body),
                    _ => body,
                }
                .replace("\r\n", "\n")
            })
    }
}

/// Every message stored so far, in arrival order.
pub fn mails(dir: &Path) -> Vec<Mail> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|d| {
            d.filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "eml"))
                .collect()
        })
        .unwrap_or_default();
    files.sort();
    files
        .iter()
        .map(|p| Mail::parse(&std::fs::read_to_string(p).expect("read stored mail")))
        .collect()
}
