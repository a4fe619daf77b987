//! A real BIND (`named` from Debian's bind9) on a loopback port, with a temporary folder
//! holding its configuration: zone `dyn.test` accepting updates signed with TSIG key
//! `hbd-key`, and zone `static.test` accepting none. Queried with `dig`, changed behind
//! hbd's back with `nsupdate` (bind9-dnsutils).

use std::net::{TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The key named accepts for zone dyn.test (base64 of 32 bytes).
pub const KEY_NAME: &str = "hbd-key";
pub const KEY_SECRET: &str = "aGJkLWR5bmRucy10ZXN0LWtleS0zMi1ieXRlcy1sb25n";
/// Another valid secret, which named does not accept for `hbd-key`.
pub const WRONG_SECRET: &str = "d3Jvbmctc2VjcmV0LXdyb25nLXNlY3JldC13cm9uZyE=";

fn find(candidates: &[&str], package: &str) -> PathBuf {
    for c in candidates {
        let p = Path::new(c);
        if p.is_file() {
            return p.to_path_buf();
        }
    }
    panic!(
        "{} not found: these tests run a real BIND; install it with \
         `sudo apt-get install -y bind9 bind9-dnsutils` (package {package}; `scripts/deps` \
         installs it)",
        candidates.join(" or ")
    );
}

fn named_bin() -> PathBuf {
    find(&["/usr/sbin/named", "/usr/bin/named"], "bind9")
}

fn dig_bin() -> PathBuf {
    find(&["/usr/bin/dig"], "bind9-dnsutils")
}

fn nsupdate_bin() -> PathBuf {
    find(&["/usr/bin/nsupdate"], "bind9-dnsutils")
}

/// A loopback port free for both UDP and TCP right now.
fn free_port() -> u16 {
    for _ in 0..100 {
        let Ok(u) = UdpSocket::bind("127.0.0.1:0") else {
            continue;
        };
        let Ok(port) = u.local_addr().map(|a| a.port()) else {
            continue;
        };
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free loopback port for named");
}

pub struct Named {
    pub port: u16,
    dir: tempfile::TempDir,
    child: Option<Child>,
}

const ZONE: &str = "$TTL 300
@   IN SOA ns.ZONE. admin.ZONE. 1 3600 600 86400 60
@   IN NS  ns.ZONE.
ns  IN A   127.0.0.1
";

impl Named {
    /// Starts named and waits until it answers.
    pub fn start() -> Named {
        let dir = tempfile::tempdir().expect("tempdir");
        let port = free_port();
        let d = dir.path().display().to_string();
        for zone in ["dyn.test", "static.test"] {
            std::fs::write(
                dir.path().join(format!("{zone}.zone")),
                ZONE.replace("ZONE", zone),
            )
            .expect("zone file");
        }
        let conf = format!(
            r#"controls {{ }};
options {{
    directory "{d}";
    pid-file "{d}/named.pid";
    session-keyfile "{d}/session.key";
    managed-keys-directory "{d}";
    listen-on port {port} {{ 127.0.0.1; }};
    listen-on-v6 {{ none; }};
    recursion no;
    dnssec-validation no;
    notify no;
    allow-transfer {{ none; }};
}};
key "{KEY_NAME}" {{ algorithm hmac-sha256; secret "{KEY_SECRET}"; }};
zone "dyn.test" {{ type primary; file "{d}/dyn.test.zone"; allow-update {{ key "{KEY_NAME}"; }}; }};
zone "static.test" {{ type primary; file "{d}/static.test.zone"; }};
"#
        );
        std::fs::write(dir.path().join("named.conf"), conf).expect("named.conf");
        let mut n = Named {
            port,
            dir,
            child: None,
        };
        n.resume();
        n
    }

    /// The folder named works in (config, zones, log).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Starts (again) on the same port, keeping the zones and their journals.
    pub fn resume(&mut self) {
        assert!(self.child.is_none(), "named is already running");
        let log = std::fs::File::create(self.dir().join("named.log")).expect("log");
        let child = Command::new(named_bin())
            // -g: foreground, log to stderr; -n 1: one worker thread is plenty.
            .args(["-g", "-n", "1", "-c"])
            .arg(self.dir().join("named.conf"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start named");
        self.child = Some(child);
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(20) {
            if let Some(c) = self.child.as_mut() {
                if let Ok(Some(status)) = c.try_wait() {
                    panic!("named exited ({status}) at start-up:\n{}", self.log());
                }
            }
            if self.try_lookup("ns.dyn.test", "A") == Some(vec!["127.0.0.1".to_string()]) {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("named does not answer after 20 s:\n{}", self.log());
    }

    /// Stops named (SIGTERM, then waits).
    pub fn pause(&mut self) {
        if let Some(mut c) = self.child.take() {
            // SAFETY: kill(2) on our own child.
            unsafe {
                libc::kill(c.id() as i32, libc::SIGTERM);
            }
            let start = Instant::now();
            while start.elapsed() < Duration::from_secs(10) {
                if let Ok(Some(_)) = c.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir().join("named.log")).unwrap_or_default()
    }

    fn try_lookup(&self, name: &str, rtype: &str) -> Option<Vec<String>> {
        let out = Command::new(dig_bin())
            .args([
                "@127.0.0.1",
                "-p",
                &self.port.to_string(),
                "+short",
                "+norec",
                "+time=1",
                "+tries=1",
                name,
                rtype,
            ])
            .output()
            .ok()?;
        out.status.success().then(|| {
            String::from_utf8_lossy(&out.stdout)
                .lines()
                .map(str::to_string)
                .collect()
        })
    }

    /// What a real DNS query (dig) returns for `name` and `rtype`.
    pub fn lookup(&self, name: &str, rtype: &str) -> Vec<String> {
        self.try_lookup(name, rtype)
            .unwrap_or_else(|| panic!("dig {name} {rtype} failed:\n{}", self.log()))
    }

    /// The TTL of `name`'s `rtype` record.
    pub fn ttl(&self, name: &str, rtype: &str) -> Option<u32> {
        let out = Command::new(dig_bin())
            .args([
                "@127.0.0.1",
                "-p",
                &self.port.to_string(),
                "+noall",
                "+answer",
                "+norec",
                name,
                rtype,
            ])
            .output()
            .expect("dig");
        String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .nth(1)
            .and_then(|t| t.parse().ok())
    }

    /// Changes a record behind hbd's back, with the real nsupdate.
    pub fn nsupdate(&self, commands: &str) {
        let script = format!(
            "server 127.0.0.1 {}\nzone dyn.test\n{commands}\nsend\n",
            self.port
        );
        let mut child = Command::new(nsupdate_bin())
            .arg("-y")
            .arg(format!("hmac-sha256:{KEY_NAME}:{KEY_SECRET}"))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("nsupdate");
        {
            use std::io::Write;
            let mut stdin = child.stdin.take().expect("stdin");
            stdin.write_all(script.as_bytes()).expect("write");
        }
        let out = child.wait_with_output().expect("nsupdate");
        assert!(
            out.status.success(),
            "nsupdate failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

impl Drop for Named {
    fn drop(&mut self) {
        self.pause();
    }
}
