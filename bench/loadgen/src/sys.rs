//! Processes under test (hbd, the raw receiver, the WebSocket baseline) and what is read
//! about them from /proc: CPU per thread, RSS, the machine's load and UDP counters.

use std::collections::BTreeMap;
use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

/// A free port on 127.0.0.1 for UDP and TCP (bound, then released).
pub fn free_port() -> Result<u16> {
    for _ in 0..50 {
        let u = UdpSocket::bind("127.0.0.1:0")?;
        let p = u.local_addr()?.port();
        if TcpListener::bind(("127.0.0.1", p)).is_ok() {
            return Ok(p);
        }
    }
    bail!("no free port on 127.0.0.1")
}

/// A child process under test; killed (by its pid) when dropped.
pub struct Proc {
    pub child: Child,
    pub name: &'static str,
    pub udp: SocketAddr,
    pub http: SocketAddr,
    pub ws: SocketAddr,
    pub dir: PathBuf,
}

impl Proc {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// `GET path` on the process's HTTP port: (status, body).
    pub fn get(&self, agent: &ureq::Agent, path: &str) -> Result<(u16, String)> {
        let url = format!("http://{}{path}", self.http);
        match agent.get(&url).timeout(Duration::from_secs(60)).call() {
            Ok(r) => {
                // No size limit: hbd's /metrics is large with a large fleet.
                let code = r.status();
                let mut body = String::new();
                std::io::Read::read_to_string(&mut r.into_reader(), &mut body)?;
                Ok((code, body))
            }
            Err(ureq::Error::Status(code, r)) => Ok((code, r.into_string().unwrap_or_default())),
            Err(e) => Err(anyhow::anyhow!("GET {url}: {e}")),
        }
    }

    /// Waits until the HTTP port answers `path` with 200.
    pub fn wait_ready(&mut self, path: &str, limit: Duration) -> Result<()> {
        let agent = agent();
        let start = Instant::now();
        while start.elapsed() < limit {
            if let Some(st) = self.child.try_wait()? {
                bail!(
                    "{} exited during start-up: {st} (logs in {})",
                    self.name,
                    self.dir.display()
                );
            }
            if matches!(self.get(&agent, path), Ok((200, _))) {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        bail!(
            "{} did not answer {path} within {limit:?} (logs in {})",
            self.name,
            self.dir.display()
        )
    }

    /// Datagram counters from the Prometheus text (hbd's names; raw-recv uses them too).
    /// Reads the streamed answer only up to the per-host families (`metrics_per_host`
    /// makes it hundreds of MB at a large fleet) and closes the connection there.
    pub fn counters(&self, agent: &ureq::Agent) -> Result<Counters> {
        let url = format!("http://{}/metrics", self.http);
        let r = match agent.get(&url).call() {
            Ok(r) => r,
            Err(ureq::Error::Status(code, _)) => bail!("{}: /metrics answered {code}", self.name),
            Err(e) => bail!("GET {url}: {e}"),
        };
        let mut head = String::new();
        for line in std::io::BufRead::lines(std::io::BufReader::new(r.into_reader())) {
            let line = line?;
            if line.starts_with("# HELP hbd_host_") {
                break;
            }
            head.push_str(&line);
            head.push('\n');
        }
        Ok(Counters::parse(&head))
    }

    /// SIGTERM, then SIGKILL after `grace`.
    pub fn stop(mut self, grace: Duration) -> Result<()> {
        self.terminate(grace);
        Ok(())
    }

    fn terminate(&mut self, grace: Duration) {
        if matches!(self.child.try_wait(), Ok(Some(_))) {
            return;
        }
        // SAFETY: kill on our own child's pid.
        unsafe { libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM) };
        let start = Instant::now();
        while start.elapsed() < grace {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.terminate(Duration::from_secs(10));
    }
}

pub fn agent() -> ureq::Agent {
    ureq::AgentBuilder::new()
        .timeout(Duration::from_secs(60))
        .build()
}

/// hbd's datagram counters.
#[derive(Debug, Default, Clone, Copy)]
pub struct Counters {
    pub received: u64,
    pub accepted: u64,
    pub dropped: u64,
    pub events: u64,
    pub journal_dropped: u64,
}

impl Counters {
    pub fn parse(text: &str) -> Counters {
        let mut c = Counters::default();
        for line in text.lines() {
            if line.starts_with('#') {
                continue;
            }
            let Some((name, v)) = line.rsplit_once(' ') else {
                continue;
            };
            let v: u64 = v.trim().parse().unwrap_or(0);
            if name == "hbd_datagrams_received_total{transport=\"udp\"}" {
                c.received = v;
            } else if name == "hbd_datagrams_accepted_total" {
                c.accepted = v;
            } else if name.starts_with("hbd_datagrams_dropped_total") {
                c.dropped += v;
            } else if name == "hbd_events_total" {
                c.events = v;
            } else if name == "hbd_journal_dropped_total" {
                c.journal_dropped = v;
            } else if name.starts_with("hbd_host_") {
                // The per-host series follow (`hbd_hosts` is fleet-level); nothing more.
                break;
            }
        }
        c
    }
}

/// The child gets SIGTERM when this process dies (even by a signal), so an interrupted
/// benchmark leaves no hbd behind.
pub fn die_with_parent(cmd: &mut Command) {
    use std::os::unix::process::CommandExt;
    // SAFETY: prctl is async-signal-safe; nothing else runs between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
            Ok(())
        });
    }
}

/// hbd's UDP ingest settings, written into the bench config explicitly (hbd's defaults,
/// `ingest_threads` and `udp_rcvbuf` in docs/configuration.md) and given to the raw
/// baseline too, so both receivers get the same sockets and buffers.
pub const INGEST_THREADS: usize = 2;
/// See [`INGEST_THREADS`]: bytes asked for per socket.
pub const UDP_RCVBUF: usize = 8 << 20;

/// The hbd config every benchmark uses; `extra_yaml` adds keys (none of these).
pub fn hbd_config(max_hosts: usize, extra_yaml: &str) -> String {
    format!(
        "bind: 127.0.0.1\nsecret: \"{}\"\nmax_hosts: {max_hosts}\ningest_threads: {INGEST_THREADS}\nudp_rcvbuf: {UDP_RCVBUF}\n{extra_yaml}",
        crate::SECRET
    )
}

/// Starts the real hbd binary with a config file in a fresh data folder under `work`.
pub fn spawn_hbd(hbd: &Path, work: &Path, tag: &str, extra_yaml: &str) -> Result<Proc> {
    spawn_hbd_with(hbd, work, tag, &hbd_config(200_000, extra_yaml))
}

/// As [`spawn_hbd`], with the whole config given.
pub fn spawn_hbd_with(hbd: &Path, work: &Path, tag: &str, config: &str) -> Result<Proc> {
    let dir = work.join(tag);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    let (udp, http, ws) = (free_port()?, free_port()?, free_port()?);
    let cfg = dir.join("hbd.yaml");
    std::fs::write(&cfg, config)?;
    let log = std::fs::File::create(dir.join("hbd.log"))?;
    let mut cmd = Command::new(hbd);
    die_with_parent(&mut cmd);
    let child = cmd
        .args(["-f", "-c"])
        .arg(&cfg)
        .args(["--hb-port", &udp.to_string()])
        .args(["--hbd-port", &http.to_string()])
        .args(["--ws-port", &ws.to_string()])
        .arg("--data-dir")
        .arg(dir.join("data"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .with_context(|| format!("starting {}", hbd.display()))?;
    let mut p = Proc {
        child,
        name: "hbd",
        udp: SocketAddr::from(([127, 0, 0, 1], udp)),
        http: SocketAddr::from(([127, 0, 0, 1], http)),
        ws: SocketAddr::from(([127, 0, 0, 1], ws)),
        dir,
    };
    p.wait_ready("/healthz", Duration::from_secs(30))?;
    Ok(p)
}

/// Starts this binary as a baseline receiver (`raw-recv` or `ws-echo`).
pub fn spawn_self(sub: &'static str, work: &Path, extra: &[&str]) -> Result<Proc> {
    let dir = work.join(sub);
    std::fs::create_dir_all(&dir)?;
    let (udp, http, ws) = (free_port()?, free_port()?, free_port()?);
    let me = std::env::current_exe()?;
    let log = std::fs::File::create(dir.join(format!("{sub}.log")))?;
    let mut cmd = Command::new(me);
    die_with_parent(&mut cmd);
    cmd.arg(sub)
        .args(["--udp", &format!("127.0.0.1:{udp}")])
        .args(["--http", &format!("127.0.0.1:{http}")]);
    if sub == "ws-echo" {
        cmd.args(["--ws", &format!("127.0.0.1:{ws}")]);
    }
    let child = cmd
        .args(extra)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()?;
    let mut p = Proc {
        child,
        name: sub,
        udp: SocketAddr::from(([127, 0, 0, 1], udp)),
        http: SocketAddr::from(([127, 0, 0, 1], http)),
        ws: SocketAddr::from(([127, 0, 0, 1], ws)),
        dir,
    };
    p.wait_ready("/metrics", Duration::from_secs(10))?;
    Ok(p)
}

/// On-CPU time of every thread of `pid`, summed by thread group (ns, from schedstat;
/// [`thread_group`]).
pub fn threads_cpu(pid: u32) -> BTreeMap<String, u64> {
    threads_cpu_by(pid, thread_group)
}

/// On-CPU time of every thread of `pid` by its own name (`udp-ingest-0`, ...).
pub fn threads_cpu_each(pid: u32) -> BTreeMap<String, u64> {
    threads_cpu_by(pid, str::to_string)
}

fn threads_cpu_by(pid: u32, key: impl Fn(&str) -> String) -> BTreeMap<String, u64> {
    let mut m = BTreeMap::new();
    let Ok(rd) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return m;
    };
    for e in rd.flatten() {
        let p = e.path();
        let ns = std::fs::read_to_string(p.join("schedstat"))
            .ok()
            .and_then(|s| s.split_whitespace().next()?.parse::<u64>().ok())
            .unwrap_or(0);
        let comm = std::fs::read_to_string(p.join("comm")).unwrap_or_default();
        *m.entry(key(comm.trim())).or_insert(0) += ns;
    }
    m
}

/// The group a thread's CPU is counted under: numbered siblings together (hbd's
/// `udp-ingest-0`, `udp-ingest-1` are `udp-ingest`; raw-recv's `raw-recv-0` ...), actix's
/// workers (`actix-server worker N`, `actix-rt|system:0|arbiter:N`) as one, tokio's
/// (`tokio-runtime-w`) as one.
pub fn thread_group(comm: &str) -> String {
    if comm.starts_with("actix") {
        return "actix (HTTP+WS)".into();
    }
    if comm.starts_with("tokio-") {
        return "tokio".into();
    }
    match comm.rsplit_once(['-', ' ']) {
        Some((head, n)) if !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()) => head.into(),
        _ => comm.into(),
    }
}

pub fn total_cpu(pid: u32) -> u64 {
    threads_cpu(pid).values().sum()
}

/// CPU per thread name between two readings.
pub fn cpu_delta(a: &BTreeMap<String, u64>, b: &BTreeMap<String, u64>) -> Vec<(String, u64)> {
    let mut v: Vec<(String, u64)> = b
        .iter()
        .map(|(k, nb)| (k.clone(), nb.saturating_sub(*a.get(k).unwrap_or(&0))))
        .filter(|(_, d)| *d > 0)
        .collect();
    v.sort_by_key(|(_, d)| std::cmp::Reverse(*d));
    v
}

/// (VmRSS, VmHWM) in kB.
pub fn rss_kb(pid: u32) -> (u64, u64) {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let get = |k: &str| {
        s.lines()
            .find(|l| l.starts_with(k))
            .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
            .unwrap_or(0)
    };
    (get("VmRSS:"), get("VmHWM:"))
}

/// `model name` of the first CPU in /proc/cpuinfo.
pub fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_string())
        })
        .unwrap_or_else(|| "unknown".into())
}

/// The 1-minute load average.
pub fn load1() -> f64 {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(f64::NAN)
}

/// The kernel's UDP counters (`/proc/net/snmp`), e.g. `RcvbufErrors`.
pub fn udp_snmp() -> BTreeMap<String, u64> {
    let s = std::fs::read_to_string("/proc/net/snmp").unwrap_or_default();
    let lines: Vec<&str> = s.lines().filter(|l| l.starts_with("Udp:")).collect();
    let mut m = BTreeMap::new();
    if lines.len() >= 2 {
        for (k, v) in lines[0]
            .split_whitespace()
            .skip(1)
            .zip(lines[1].split_whitespace().skip(1))
        {
            m.insert(k.to_string(), v.parse().unwrap_or(0));
        }
    }
    m
}

pub fn rcvbuf_errors() -> u64 {
    udp_snmp().get("RcvbufErrors").copied().unwrap_or(0)
}

/// (busy, total) jiffies of all CPUs from /proc/stat.
fn cpu_jiffies() -> (u64, u64) {
    let s = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let v: Vec<u64> = s
        .lines()
        .next()
        .unwrap_or("")
        .split_whitespace()
        .skip(1)
        .filter_map(|x| x.parse().ok())
        .collect();
    let total: u64 = v.iter().take(8).sum();
    // idle + iowait
    let idle = v.get(3).copied().unwrap_or(0) + v.get(4).copied().unwrap_or(0);
    (total - idle, total)
}

/// CPU time of this whole process, finished threads included (getrusage).
pub fn self_cpu() -> Duration {
    // SAFETY: getrusage fills the struct we own.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: as above.
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

/// What other programs use while we measure: the machine's user+system time (from
/// /proc/stat; interrupt time is left out, loopback delivery runs there) minus this
/// process and the process under test.
pub struct Others {
    jiffies: u64,
    ours: Duration,
    theirs: u64,
    pids: Vec<u32>,
    start: Instant,
}

fn user_sys_jiffies() -> u64 {
    let s = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    s.lines()
        .next()
        .unwrap_or("")
        .split_whitespace()
        .skip(1)
        .take(3)
        .filter_map(|x| x.parse::<u64>().ok())
        .sum()
}

impl Others {
    /// Starts watching; `pid` is the process under test.
    pub fn start(pid: u32) -> Others {
        Others::start_all(vec![pid])
    }

    /// As [`Others::start`] with several processes under test (a cluster's nodes and
    /// engine): their CPU is not counted as other programs'.
    pub fn start_all(pids: Vec<u32>) -> Others {
        Others {
            jiffies: user_sys_jiffies(),
            ours: self_cpu(),
            theirs: pids.iter().map(|p| total_cpu(*p)).sum(),
            pids,
            start: Instant::now(),
        }
    }

    /// Cores used by other programs since `start`.
    pub fn cores(&self) -> f64 {
        // SAFETY: sysconf has no preconditions.
        let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
        let el = self.start.elapsed().as_secs_f64().max(1e-3);
        let all = (user_sys_jiffies() - self.jiffies) as f64 / hz;
        let ours = (self_cpu() - self.ours).as_secs_f64()
            + self
                .pids
                .iter()
                .map(|p| total_cpu(*p))
                .sum::<u64>()
                .saturating_sub(self.theirs) as f64
                / 1e9;
        ((all - ours) / el).max(0.0)
    }
}

/// Cores kept busy by the whole machine over `window` (call it while nothing of ours
/// runs: it is what other programs use).
pub fn busy_cores(window: Duration) -> f64 {
    let (b0, t0) = cpu_jiffies();
    std::thread::sleep(window);
    let (b1, t1) = cpu_jiffies();
    let n = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
    if t1 <= t0 {
        return 0.0;
    }
    (b1 - b0) as f64 / (t1 - t0) as f64 * n
}

/// The machine's state before a measurement.
#[derive(Debug, Clone, Copy)]
pub struct Quiet {
    pub load1: f64,
    /// Cores busy with other programs just before the measurement (2 s sample).
    pub others: f64,
    pub waited: Duration,
}

impl std::fmt::Display for Quiet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "load1 {:.2}, other programs {:.2} cores, waited {:.0} s",
            self.load1,
            self.others,
            self.waited.as_secs_f64()
        )
    }
}

/// Waits (up to `limit`) until other programs use at most `max_cores` (sampled over 2 s
/// while nothing of ours runs). The load average is not used for waiting: it still
/// counts our own previous measurement for a minute.
pub fn wait_quiet(max_cores: f64, limit: Duration) -> Quiet {
    let start = Instant::now();
    loop {
        let others = busy_cores(Duration::from_secs(2));
        if others <= max_cores || start.elapsed() >= limit {
            return Quiet {
                load1: load1(),
                others,
                waited: start.elapsed(),
            };
        }
        std::thread::sleep(Duration::from_secs(3));
    }
}

/// Kernel drops (receive buffer full) of every UDP socket bound to `port` on
/// 127.0.0.1, summed: the `drops` column of /proc/net/udp (hbd's and raw-recv's
/// `SO_REUSEPORT` sockets share the port).
pub fn udp_port_drops(port: u16) -> u64 {
    udp_port_sockets(port).iter().map(|s| s.1).sum()
}

/// (inode, drops) of every UDP socket bound to `port` (from /proc/net/udp).
fn udp_port_sockets(port: u16) -> Vec<(u64, u64)> {
    let s = std::fs::read_to_string("/proc/net/udp").unwrap_or_default();
    let want = format!(":{port:04X}");
    s.lines()
        .skip(1)
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            if f.len() < 13 || !f[1].ends_with(&want) {
                return None;
            }
            Some((f[9].parse().ok()?, f[12].parse().ok()?))
        })
        .collect()
}

/// The receive buffers of the UDP sockets on `port` as `ss -m` shows them (`rb`, bytes:
/// the kernel's limit, twice what was granted), e.g. "2 sockets, rb 16777216 16777216".
pub fn udp_port_buffers(port: u16) -> String {
    let out = Command::new("ss")
        .args(["-u", "-a", "-m", "-n", "-H"])
        .arg(format!("sport = :{port}"))
        .output();
    let text = match out {
        Ok(o) if o.status.success() => String::from_utf8_lossy(&o.stdout).into_owned(),
        _ => {
            return format!(
                "{} sockets (ss not available for rb)",
                udp_port_sockets(port).len()
            )
        }
    };
    let rb: Vec<&str> = text
        .split(|c: char| c == ',' || c == '(' || c.is_whitespace())
        .filter_map(|w| w.strip_prefix("rb"))
        .collect();
    format!("{} sockets, rb {}", rb.len(), rb.join(" "))
}
