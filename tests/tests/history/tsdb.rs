//! The time-series databases the tests write to: Prometheus 2.42 with
//! `--web.enable-remote-write-receiver` and VictoriaMetrics 1.79, each a child process on
//! a free loopback port with its data in a temporary folder; stopped and restarted on
//! the same port and data for the outage test. Queries through their HTTP APIs.
//! Prometheus can also be started behind its own TLS and HTTP Basic authentication
//! (`--web.config.file`, [`Db::start_secured`]).

use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Kind {
    Prometheus,
    Victoria,
}

pub struct Db {
    pub kind: Kind,
    pub port: u16,
    dir: tempfile::TempDir,
    child: Option<Child>,
    /// Prometheus' `--web.config.file` (TLS and Basic authentication), if secured.
    web_config: Option<std::path::PathBuf>,
    /// The client the helpers query with (trusting the test CA when secured).
    agent: ureq::Agent,
    /// The helpers' `Authorization` header when secured.
    auth: Option<String>,
}

/// What [`Db::start_secured`] puts in front of Prometheus.
pub struct Secured {
    /// PEM of the CA that signed the server certificate (for the helpers' client).
    pub ca_pem: String,
    pub cert_file: std::path::PathBuf,
    pub key_file: std::path::PathBuf,
    pub user: String,
    /// The password in clear (the helpers' Basic header).
    pub password: String,
    /// Its bcrypt hash, as Prometheus' web config wants it.
    pub bcrypt: String,
}

fn free_tcp_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free TCP port")
}

impl Db {
    pub fn start(kind: Kind) -> Db {
        let (bin, pkg) = match kind {
            Kind::Prometheus => ("/usr/bin/prometheus", "prometheus"),
            Kind::Victoria => ("/usr/bin/victoria-metrics", "victoria-metrics"),
        };
        assert!(
            Path::new(bin).exists(),
            "{bin} is missing: the history tests need the Debian package {pkg} \
             (`sudo apt-get install -y {pkg}`, or run `scripts/deps`)"
        );
        let mut db = Db {
            kind,
            port: free_tcp_port(),
            dir: tempfile::tempdir().expect("tmp"),
            child: None,
            web_config: None,
            agent: ureq::AgentBuilder::new()
                .timeout(Duration::from_secs(10))
                .build(),
            auth: None,
        };
        db.run();
        db
    }

    /// Prometheus serving HTTPS only with `s`'s certificate and refusing requests
    /// without `s`'s user and password (its `--web.config.file`, Prometheus ≥ 2.24).
    pub fn start_secured(s: &Secured) -> Db {
        let dir = tempfile::tempdir().expect("tmp");
        let web = dir.path().join("web.yml");
        std::fs::write(
            &web,
            format!(
                "tls_server_config:\n  cert_file: {}\n  key_file: {}\nbasic_auth_users:\n  {}: {:?}\n",
                s.cert_file.display(),
                s.key_file.display(),
                s.user,
                s.bcrypt
            ),
        )
        .expect("web config");
        let tls = crate::security::client_tls(&s.ca_pem);
        let mut db = Db {
            kind: Kind::Prometheus,
            port: free_tcp_port(),
            dir,
            child: None,
            web_config: Some(web),
            agent: ureq::AgentBuilder::new()
                .timeout(Duration::from_secs(10))
                .tls_config(tls)
                .build(),
            auth: Some(crate::security::basic(&s.user, &s.password)),
        };
        db.run();
        db
    }

    fn get(&self, url: &str) -> ureq::Request {
        let r = self.agent.get(url);
        match &self.auth {
            Some(a) => r.set("Authorization", a),
            None => r,
        }
    }

    fn run(&mut self) {
        let addr = format!("127.0.0.1:{}", self.port);
        let data = self.dir.path().join("data");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("log"))
            .expect("log");
        let mut cmd = match self.kind {
            Kind::Prometheus => {
                let cfg = self.dir.path().join("prometheus.yml");
                std::fs::write(&cfg, "global: {}\n").expect("config");
                let mut c = Command::new("/usr/bin/prometheus");
                c.arg("--web.enable-remote-write-receiver")
                    .arg(format!("--web.listen-address={addr}"))
                    .arg(format!("--storage.tsdb.path={}", data.display()))
                    .arg(format!("--config.file={}", cfg.display()));
                if let Some(w) = &self.web_config {
                    c.arg(format!("--web.config.file={}", w.display()));
                }
                c
            }
            Kind::Victoria => {
                let mut c = Command::new("/usr/bin/victoria-metrics");
                c.arg(format!("-httpListenAddr={addr}"))
                    .arg(format!("-storageDataPath={}", data.display()))
                    // Recent samples are answered at once (default: 30 s behind).
                    .arg("-search.latencyOffset=0s")
                    .arg("-search.disableCache");
                c
            }
        };
        let child = cmd
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("start the database");
        self.child = Some(child);
        let ready = match self.kind {
            Kind::Prometheus => "/-/ready",
            Kind::Victoria => "/health",
        };
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(30) {
            if self.get(&self.url(ready)).call().is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let log = std::fs::read_to_string(self.dir.path().join("log")).unwrap_or_default();
        panic!("{:?} not ready within 30 s; its log:\n{log}", self.kind);
    }

    pub fn url(&self, path: &str) -> String {
        let scheme = if self.web_config.is_some() {
            "https"
        } else {
            "http"
        };
        format!("{scheme}://127.0.0.1:{}{path}", self.port)
    }

    /// The remote_write URL.
    pub fn write_url(&self) -> String {
        self.url("/api/v1/write")
    }

    /// Stops the database (SIGTERM, then waits).
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            // SAFETY: kill(2) on our own, unreaped child.
            unsafe {
                libc::kill(c.id() as i32, libc::SIGTERM);
            }
            let _ = c.wait();
        }
    }

    /// Starts it again on the same port and data.
    pub fn restart(&mut self) {
        self.stop();
        self.run();
    }

    /// An instant PromQL query's `data.result`.
    pub fn query(&self, promql: &str) -> Vec<Value> {
        let r: Value = self
            .get(&self.url("/api/v1/query"))
            .query("query", promql)
            .call()
            .expect("query")
            .into_json()
            .expect("json");
        assert_eq!(r["status"], "success", "{promql}: {r}");
        r["data"]["result"].as_array().cloned().unwrap_or_default()
    }

    /// Every raw sample of the series `selector` matches over the last 10 minutes:
    /// `(labels, [(ms, value)])`, through PromQL's range selector (both databases
    /// answer it with the stored samples).
    pub fn raw(&self, selector: &str) -> Vec<(Value, Vec<(i64, f64)>)> {
        if self.kind == Kind::Victoria {
            return self.export(selector);
        }
        self.query(&format!("{selector}[10m]"))
            .into_iter()
            .map(|s| {
                let values = s["values"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default()
                    .iter()
                    .map(|p| {
                        let t = p[0].as_f64().unwrap_or(0.0);
                        let v = p[1]
                            .as_str()
                            .and_then(|v| v.parse().ok())
                            .unwrap_or(f64::NAN);
                        ((t * 1000.0).round() as i64, v)
                    })
                    .collect();
                (s["metric"].clone(), values)
            })
            .collect()
    }

    /// VictoriaMetrics' own raw export (JSON lines of `metric`, `values`, `timestamps`).
    fn export(&self, selector: &str) -> Vec<(Value, Vec<(i64, f64)>)> {
        let text = self
            .get(&self.url("/api/v1/export"))
            .query("match[]", selector)
            .call()
            .expect("export")
            .into_string()
            .expect("text");
        text.lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| {
                let v: Value = serde_json::from_str(l).expect("export line");
                let ts = v["timestamps"].as_array().cloned().unwrap_or_default();
                let vs = v["values"].as_array().cloned().unwrap_or_default();
                let points = ts
                    .iter()
                    .zip(vs.iter())
                    .map(|(t, x)| (t.as_i64().unwrap_or(0), x.as_f64().unwrap_or(f64::NAN)))
                    .collect();
                (v["metric"].clone(), points)
            })
            .collect()
    }

    /// Samples `selector` matches over the last 10 minutes, all series together.
    pub fn count(&self, selector: &str) -> usize {
        self.raw(selector).iter().map(|(_, v)| v.len()).sum()
    }
}

impl Drop for Db {
    fn drop(&mut self) {
        self.stop();
    }
}
