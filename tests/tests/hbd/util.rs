//! Starting hbd in-process on its own thread, HTTP helpers, and running hbc against it.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use hbd::config::Config;

/// A running hbd on loopback with ephemeral ports (the UDP port can be fixed, to restart
/// on the same one).
pub struct Hbd {
    pub udp: SocketAddr,
    pub http: SocketAddr,
    pub ws: SocketAddr,
    pub state: hbd::state::Shared,
    stop: Option<mpsc::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
    /// A new config for `Running::reload` and where to send its result.
    reload: mpsc::Sender<(Config, mpsc::Sender<Vec<String>>)>,
    /// What `start_on` set in the config (bind, UDP port), set again on reload.
    listen: (std::net::IpAddr, u16),
}

pub fn config(yaml: &str) -> Config {
    let (c, _) = Config::parse(yaml, Path::new("test.yaml")).expect("test config parses");
    c
}

impl Hbd {
    pub fn start(config: Config, data_dir: &Path, udp_port: u16) -> Hbd {
        Hbd::start_on("127.0.0.1".parse().expect("ip"), config, data_dir, udp_port)
    }

    /// Like `start`, listening on `bind` (`::` for IPv4 and IPv6).
    pub fn start_on(
        bind: std::net::IpAddr,
        mut config: Config,
        data_dir: &Path,
        udp_port: u16,
    ) -> Hbd {
        config.bind = bind;
        config.hb_port = udp_port;
        config.hbd_port = 0;
        config.ws_port = 0;
        let dir = data_dir.to_path_buf();
        let (ready_tx, ready_rx) = mpsc::channel();
        let (stop_tx, stop_rx) = mpsc::channel::<()>();
        let (reload_tx, reload_rx) = mpsc::channel::<(Config, mpsc::Sender<Vec<String>>)>();
        let thread = std::thread::spawn(move || {
            let sys = actix_web::rt::System::new();
            sys.block_on(async move {
                let running = match hbd::server::start(config, dir).await {
                    Ok(r) => r,
                    Err(e) => {
                        let _ = ready_tx.send(Err(format!("{e:#}")));
                        return;
                    }
                };
                let _ = ready_tx.send(Ok((
                    running.udp_addr,
                    running.http_addr,
                    running.ws_addr,
                    running.state.clone(),
                )));
                // Wait for the stop request without blocking the runtime.
                loop {
                    if stop_rx.try_recv().is_ok() {
                        break;
                    }
                    if let Ok((new, reply)) = reload_rx.try_recv() {
                        let _ = reply.send(running.reload(new));
                    }
                    actix_web::rt::time::sleep(Duration::from_millis(20)).await;
                }
                let _ = running.stop().await;
            });
        });
        let (udp, http, ws, state) = ready_rx
            .recv_timeout(Duration::from_secs(20))
            .expect("hbd starts within 20 s")
            .unwrap_or_else(|e| panic!("hbd failed to start: {e}"));
        Hbd {
            udp,
            http,
            ws,
            state,
            stop: Some(stop_tx),
            thread: Some(thread),
            reload: reload_tx,
            listen: (bind, udp_port),
        }
    }

    /// Applies `config` like SIGHUP does (with the listeners `start_on` chose); returns
    /// what could not be applied.
    #[allow(
        dead_code,
        reason = "used by the reload tests; other test binaries share this file"
    )]
    pub fn reload(&self, mut config: Config) -> Vec<String> {
        config.bind = self.listen.0;
        config.hb_port = self.listen.1;
        config.hbd_port = 0;
        config.ws_port = 0;
        let (tx, rx) = mpsc::channel();
        self.reload.send((config, tx)).expect("hbd is running");
        rx.recv_timeout(Duration::from_secs(30))
            .expect("hbd applies the reload within 30 s")
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.http)
    }

    /// GET returning (status, JSON body).
    pub fn get(&self, path: &str) -> (u16, serde_json::Value) {
        match ureq::get(&self.url(path))
            .timeout(Duration::from_secs(10))
            .call()
        {
            Ok(r) => (r.status(), r.into_json().unwrap_or(serde_json::Value::Null)),
            Err(ureq::Error::Status(code, r)) => {
                (code, r.into_json().unwrap_or(serde_json::Value::Null))
            }
            Err(e) => panic!("GET {path}: {e}"),
        }
    }

    pub fn get_text(&self, path: &str) -> String {
        ureq::get(&self.url(path))
            .call()
            .expect("GET")
            .into_string()
            .expect("text")
    }

    /// Waits until `f` holds, polling; panics after `limit` with `what`.
    pub fn wait_for(
        &self,
        limit: Duration,
        what: &str,
        mut f: impl FnMut(&Hbd) -> bool,
    ) -> Duration {
        let start = Instant::now();
        while start.elapsed() < limit {
            if f(self) {
                return start.elapsed();
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        panic!("timed out after {limit:?} waiting for: {what}");
    }

    pub fn host(&self, name: &str) -> Option<serde_json::Value> {
        let (code, body) = self.get(&format!("/api/v1/hosts/{name}"));
        (code == 200).then_some(body)
    }

    pub fn status(&self, name: &str) -> Option<String> {
        self.host(name)
            .and_then(|h| h["status"].as_str().map(str::to_string))
    }

    /// Stops cleanly (snapshot saved, journal flushed).
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Hbd {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// A free UDP port on loopback (bound and released; good enough for tests).
pub fn free_udp_port() -> u16 {
    std::net::UdpSocket::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

fn target_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("exe");
    exe.parent()
        .and_then(Path::parent)
        .expect("target dir")
        .to_path_buf()
}

/// The real hbc with some bundled plugins, sending to `server`.
pub struct Hbc {
    child: Child,
    _dir: tempfile::TempDir,
}

impl Hbc {
    pub fn start(
        server: &str,
        interval: &str,
        extra_config: &str,
        plugins: &[&str],
        hostname: &str,
    ) -> Hbc {
        let dir = tempfile::tempdir().expect("tempdir");
        let plugdir = dir.path().join("plugins");
        std::fs::create_dir(&plugdir).expect("mkdir");
        for p in plugins {
            let src = target_dir().join(format!("libhbc_{p}.so"));
            assert!(
                src.exists(),
                "{} missing: run cargo build --workspace first",
                src.display()
            );
            std::fs::copy(&src, plugdir.join(format!("libhbc_{p}.so"))).expect("copy plugin");
        }
        let cfg = dir.path().join("hbc.yaml");
        std::fs::write(
            &cfg,
            format!("interval: {interval}\nhostname: {hostname}\n{extra_config}"),
        )
        .expect("config");
        let hbc = target_dir().join("hbc");
        assert!(
            hbc.exists(),
            "{} missing: run cargo build --workspace first",
            hbc.display()
        );
        let child = Command::new(hbc)
            .arg("-c")
            .arg(&cfg)
            .arg("--plugin-dir")
            .arg(&plugdir)
            .arg(server)
            .env("HBC_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start hbc");
        Hbc { child, _dir: dir }
    }

    pub fn stop(mut self) {
        // SAFETY: kill(2) on our own child.
        unsafe {
            libc::kill(self.child.id() as i32, libc::SIGTERM);
        }
        let _ = self.child.wait();
    }
}

impl Drop for Hbc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// How many datagrams were dropped for `reason`.
#[allow(
    dead_code,
    reason = "used by the ingest tests; other test binaries share this file"
)]
pub fn dropped(hbd: &Hbd, reason: &str) -> u64 {
    hbd.state
        .counters
        .dropped
        .iter()
        .find(|(r, _)| r.as_str() == reason)
        .map(|(_, n)| n)
        .unwrap_or(0)
}

/// Encodes a heartbeat like hbc does.
pub fn datagram(
    host: &str,
    instance: u64,
    seq: u64,
    secret: Option<&[u8]>,
    readings: usize,
) -> Vec<u8> {
    let hb = hb_proto::Heartbeat {
        host: host.into(),
        instance,
        seq,
        sent_ms: hbd::state::now_ms(),
        interval_ms: 10_000,
        level: hb_proto::Level::Ok,
        readings: (0..readings)
            .map(|i| hb_proto::Reading {
                key: format!("test.{i}.value"),
                value: hb_proto::Value::F64(i as f64),
                unit: "%".into(),
                level: hb_proto::Level::Ok,
                message: String::new(),
                threshold: String::new(),
            })
            .collect(),
    };
    hb_proto::encode(&hb, secret, 65_000)
        .expect("encode")
        .remove(0)
}

/// Events from the API for `host`, oldest first.
pub fn events(hbd: &Hbd, query: &str) -> Vec<serde_json::Value> {
    let (code, body) = hbd.get(&format!("/api/v1/events?{query}"));
    assert_eq!(code, 200, "{body}");
    let mut v = body["events"].as_array().cloned().unwrap_or_default();
    v.reverse();
    v
}
