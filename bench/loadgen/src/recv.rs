//! The baselines, each run as its own process like hbd:
//!
//! - `raw-recv`: the minimal receiver. `recvmmsg` in batches of 32 (hbd's) on as many
//!   `SO_REUSEPORT` sockets and threads as hbd's `ingest_threads`, each socket with the
//!   same receive buffer as hbd's, counting datagrams (`--decode`: also decode and verify
//!   each with hb-proto, to split hbd's cost into protocol and the rest).
//! - `ws-echo`: the minimal WebSocket push server. Receives a datagram, verifies it,
//!   formats a `beat` message shaped like hbd's, frames it once and writes the frame to
//!   every client in turn (one `write` per client, TCP_NODELAY).
//!
//! Both serve their counters under hbd's metric names on a tiny HTTP port, so the
//! benchmarks read every receiver the same way.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, Result};

/// Counters served on `/metrics`.
#[derive(Default)]
pub struct Stats {
    pub received: AtomicU64,
    pub accepted: AtomicU64,
    pub dropped: AtomicU64,
}

impl Stats {
    fn render(&self) -> String {
        format!(
            "hbd_datagrams_received_total{{transport=\"udp\"}} {}\nhbd_datagrams_accepted_total {}\nhbd_datagrams_dropped_total{{reason=\"any\"}} {}\n",
            self.received.load(Ordering::Relaxed),
            self.accepted.load(Ordering::Relaxed),
            self.dropped.load(Ordering::Relaxed)
        )
    }
}

/// Answers every HTTP request on `addr` with the counters (Connection: close).
pub fn serve_metrics(addr: SocketAddr, stats: Arc<Stats>) -> Result<()> {
    let l = TcpListener::bind(addr).with_context(|| format!("binding {addr}"))?;
    std::thread::Builder::new()
        .name("metrics".into())
        .spawn(move || {
            for s in l.incoming().flatten() {
                let _ = answer(s, &stats);
            }
        })?;
    Ok(())
}

fn answer(mut s: TcpStream, stats: &Stats) -> std::io::Result<()> {
    s.set_read_timeout(Some(Duration::from_secs(2)))?;
    let mut req = Vec::new();
    let mut b = [0u8; 1024];
    while !req.windows(4).any(|w| w == b"\r\n\r\n") && req.len() < 16_384 {
        let n = s.read(&mut b)?;
        if n == 0 {
            break;
        }
        req.extend_from_slice(&b[..n]);
    }
    let body = stats.render();
    write!(
        s,
        "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
}

fn rcvbuf_of(s: &UdpSocket) -> usize {
    let mut v: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: getsockopt into an int we own, with its size.
    unsafe {
        libc::getsockopt(
            s.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVBUF,
            (&mut v as *mut libc::c_int).cast(),
            &mut len,
        );
    }
    v.max(0) as usize
}

fn set_int(s: &UdpSocket, opt: libc::c_int, v: libc::c_int) {
    // SAFETY: setsockopt with a valid fd and an int value.
    unsafe {
        libc::setsockopt(
            s.as_raw_fd(),
            libc::SOL_SOCKET,
            opt,
            (&v as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        );
    }
}

/// Binds a UDP socket with a 200 ms receive timeout and the receive buffer hbd gets for
/// `rcvbuf`, by exactly hbd's steps (server/src/udp.rs `bind_one`): SO_RCVBUF, then
/// SO_RCVBUFFORCE when half the size read back (Linux reports twice what it granted) is
/// below the request. With net.core.rmem_max = 4 MiB and 8 MiB asked, both end up with
/// `rb` 16 MiB (`ss -m`). `reuse_port`: join an `SO_REUSEPORT` group, as hbd's
/// `ingest_threads` sockets do.
pub fn bind_udp(addr: SocketAddr, rcvbuf: usize, reuse_port: bool) -> Result<UdpSocket> {
    use std::os::fd::FromRawFd;
    let SocketAddr::V4(v4) = addr else {
        anyhow::bail!("{addr}: the baselines bind IPv4 only");
    };
    // SAFETY: socket(2) with constant arguments; the fd is owned by the UdpSocket below.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error()).context("creating a UDP socket");
    }
    // SAFETY: fd is a fresh socket nobody else owns.
    let s = unsafe { UdpSocket::from_raw_fd(fd) };
    if reuse_port {
        set_int(&s, libc::SO_REUSEPORT, 1);
    }
    set_int(
        &s,
        libc::SO_RCVBUF,
        rcvbuf.min(i32::MAX as usize) as libc::c_int,
    );
    if rcvbuf_of(&s) / 2 < rcvbuf {
        set_int(
            &s,
            libc::SO_RCVBUFFORCE,
            rcvbuf.min(i32::MAX as usize) as libc::c_int,
        );
    }
    let sin = libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: v4.port().to_be(),
        sin_addr: libc::in_addr {
            s_addr: u32::from(*v4.ip()).to_be(),
        },
        sin_zero: [0; 8],
    };
    // SAFETY: bind with a valid sockaddr_in and its size.
    let r = unsafe {
        libc::bind(
            s.as_raw_fd(),
            (&sin as *const libc::sockaddr_in).cast(),
            std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
        )
    };
    if r != 0 {
        return Err(std::io::Error::last_os_error()).with_context(|| format!("binding {addr}"));
    }
    eprintln!("receive buffer: {} B (as read back)", rcvbuf_of(&s));
    s.set_read_timeout(Some(Duration::from_millis(200)))?;
    Ok(s)
}

/// hbd's `BATCH`: datagrams per `recvmmsg` (server/src/udp.rs).
const BATCH: usize = 32;
const SLOT: usize = 2048;

/// `raw-recv`: `sockets` threads, each counting datagrams on its own socket of one
/// `SO_REUSEPORT` port (as hbd's `ingest_threads`), forever (until killed).
pub fn raw_recv(
    udp: SocketAddr,
    http: SocketAddr,
    rcvbuf: usize,
    sockets: usize,
    decode: Option<String>,
) -> Result<()> {
    let stats = Arc::new(Stats::default());
    let n = sockets.max(1);
    let mut socks = Vec::with_capacity(n);
    for _ in 0..n {
        socks.push(bind_udp(udp, rcvbuf, n > 1)?);
    }
    serve_metrics(http, stats.clone())?;
    let secret = decode.map(String::into_bytes);
    let mut threads = Vec::new();
    for (i, sock) in socks.into_iter().enumerate() {
        let stats = stats.clone();
        let secret = secret.clone();
        threads.push(
            std::thread::Builder::new()
                .name(format!("raw-recv-{i}"))
                .spawn(move || receive(&sock, &stats, secret.as_deref()))?,
        );
    }
    for t in threads {
        let _ = t.join();
    }
    Ok(())
}

fn receive(sock: &UdpSocket, stats: &Stats, secret: Option<&[u8]>) {
    let mut buf = vec![0u8; BATCH * SLOT];
    let mut iov: Vec<libc::iovec> = (0..BATCH)
        .map(|i| libc::iovec {
            iov_base: buf[i * SLOT..].as_mut_ptr().cast(),
            iov_len: SLOT,
        })
        .collect();
    // SAFETY: a zeroed mmsghdr is valid (no name, no control).
    let mut msgs: Vec<libc::mmsghdr> = (0..BATCH).map(|_| unsafe { std::mem::zeroed() }).collect();
    for (m, v) in msgs.iter_mut().zip(iov.iter_mut()) {
        m.msg_hdr.msg_iov = v;
        m.msg_hdr.msg_iovlen = 1;
    }
    loop {
        // Blocks for the first datagram (up to the socket timeout), then takes what is queued.
        // SAFETY: msgs point into iov and buf, which outlive the call.
        let n = unsafe {
            libc::recvmmsg(
                sock.as_raw_fd(),
                msgs.as_mut_ptr(),
                BATCH as libc::c_uint,
                libc::MSG_WAITFORONE,
                std::ptr::null_mut(),
            )
        };
        if n <= 0 {
            continue;
        }
        let n = n as usize;
        stats.received.fetch_add(n as u64, Ordering::Relaxed);
        match secret {
            None => {
                stats.accepted.fetch_add(n as u64, Ordering::Relaxed);
            }
            Some(key) => {
                for (i, m) in msgs.iter().take(n).enumerate() {
                    let len = (m.msg_len as usize).min(SLOT);
                    let d = &buf[i * SLOT..i * SLOT + len];
                    if hb_proto::decode(d, Some(key)).is_ok() {
                        stats.accepted.fetch_add(1, Ordering::Relaxed);
                    } else {
                        stats.dropped.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        }
    }
}

type Client = tungstenite::WebSocket<TcpStream>;

/// The fields of hbd's `beat` message, in its order.
#[derive(serde::Serialize)]
struct Beat<'a> {
    name: &'a str,
    status: &'static str,
    level: &'static str,
    watched: bool,
    last_seen_ms: u64,
    since_ms: u64,
    interval_ms: u32,
    address: std::net::IpAddr,
    lost: u64,
    cpu: Option<f32>,
    mem: Option<f32>,
    fs: Option<f32>,
    load: Option<f32>,
    worst: Option<()>,
}

#[derive(serde::Serialize)]
struct Msg<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    data: Beat<'a>,
}

/// `ws-echo`: for every verified datagram, one `beat` message to every client.
pub fn ws_echo(udp: SocketAddr, http: SocketAddr, ws: SocketAddr, secret: String) -> Result<()> {
    let stats = Arc::new(Stats::default());
    let sock = bind_udp(udp, crate::sys::UDP_RCVBUF, false)?;
    serve_metrics(http, stats.clone())?;
    let clients: Arc<Mutex<Vec<Client>>> = Arc::default();
    let l = TcpListener::bind(ws).with_context(|| format!("binding {ws}"))?;
    {
        let clients = clients.clone();
        std::thread::Builder::new()
            .name("accept".into())
            .spawn(move || {
                for s in l.incoming().flatten() {
                    let _ = s.set_nodelay(true);
                    if let Ok(mut c) = tungstenite::accept(s) {
                        let snap = r#"{"type":"snapshot","data":{"hosts":[],"last_event_id":0}}"#;
                        if c.send(tungstenite::Message::Text(snap.into())).is_ok() {
                            clients.lock().unwrap_or_else(|p| p.into_inner()).push(c);
                        }
                    }
                }
            })?;
    }
    let mut buf = vec![0u8; 65_536];
    loop {
        let Ok((n, from)) = sock.recv_from(&mut buf) else {
            continue;
        };
        stats.received.fetch_add(1, Ordering::Relaxed);
        let Ok(p) = hb_proto::decode(&buf[..n], Some(secret.as_bytes())) else {
            stats.dropped.fetch_add(1, Ordering::Relaxed);
            continue;
        };
        stats.accepted.fetch_add(1, Ordering::Relaxed);
        let f = |key: &str| {
            p.readings
                .iter()
                .find(|r| r.key == key)
                .and_then(|r| match r.value {
                    hb_proto::ValueRef::F64(v) => Some(v as f32),
                    hb_proto::ValueRef::I64(v) => Some(v as f32),
                    _ => None,
                })
        };
        let now = crate::payload::now_ms();
        let msg = serde_json::to_string(&Msg {
            kind: "beat",
            data: Beat {
                name: p.host,
                status: "UP",
                level: p.level.as_str(),
                watched: false,
                last_seen_ms: now,
                since_ms: now,
                interval_ms: p.interval_ms,
                address: from.ip(),
                lost: 0,
                cpu: f("cpu.usage_percent"),
                mem: f("memory.used_percent"),
                fs: f("fs./.used_percent"),
                load: f("cpu.load1"),
                worst: None,
            },
        })?;
        // One unmasked text frame, the same bytes for every client: one write each.
        let mut frame = Vec::with_capacity(msg.len() + 10);
        frame.push(0x81);
        match msg.len() {
            n if n < 126 => frame.push(n as u8),
            n if n < 65_536 => {
                frame.push(126);
                frame.extend_from_slice(&(n as u16).to_be_bytes());
            }
            n => {
                frame.push(127);
                frame.extend_from_slice(&(n as u64).to_be_bytes());
            }
        }
        frame.extend_from_slice(msg.as_bytes());
        let mut cs = clients.lock().unwrap_or_else(|p| p.into_inner());
        cs.retain_mut(|c| c.get_mut().write_all(&frame).is_ok());
    }
}
