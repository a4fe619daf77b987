//! The UDP heartbeat listener: `ingest_threads` threads that receive, verify and apply
//! datagrams.
//!
//! A dedicated thread (not an async task) keeps the per-datagram cost to a decode, an
//! HMAC check and a short registry lock; datagrams are taken in batches of up to [`BATCH`]
//! per system call (`recvmmsg`). A thread blocks in `poll` on its socket and on the
//! shutdown signal, so it stops at once and never wakes up for nothing. The receive
//! buffer is raised (the kernel default of 208 KiB loses datagrams at tens of thousands
//! per second) and the size the kernel granted is logged when it is below what was asked
//! for.

use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::sync::atomic::Ordering;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use socket2::{Domain, Protocol, Socket, Type};

use crate::ratelimit::{Limiter, Rate, MAX_SOURCES};

pub mod owner;
use crate::shutdown::Shutdown;
use crate::state::Shared;

/// Datagrams taken per `recvmmsg` call.
pub const BATCH: usize = 32;
/// Room for one datagram: the largest UDP payload. Only the pages a datagram fills are
/// ever touched, so the 2 MiB of a thread's slots cost little resident memory.
const SLOT: usize = 65_536;

/// Binds `n` heartbeat sockets to one port with `SO_REUSEPORT` (one per ingest thread):
/// the kernel spreads datagrams over them by source address and port, so each sender's
/// datagrams stay in order on one thread. With `n == 1` a single plain socket.
pub fn bind_group(addr: SocketAddr, rcvbuf: usize, n: usize) -> std::io::Result<Vec<UdpSocket>> {
    let first = bind_one(addr, rcvbuf, n > 1)?;
    let addr = first.local_addr()?;
    let mut all = vec![first];
    for _ in 1..n {
        all.push(bind_one(addr, rcvbuf, true)?);
    }
    Ok(all)
}

fn bind_one(addr: SocketAddr, rcvbuf: usize, reuse_port: bool) -> std::io::Result<UdpSocket> {
    let domain = if addr.is_ipv4() {
        Domain::IPV4
    } else {
        Domain::IPV6
    };
    let sock = Socket::new(domain, Type::DGRAM, Some(Protocol::UDP))?;
    if addr.is_ipv6() {
        // Accept IPv4-mapped traffic too when bound to [::].
        let _ = sock.set_only_v6(false);
    }
    if reuse_port {
        // Only sockets of the same user can join the group (Linux checks the UID).
        sock.set_reuse_port(true)?;
    }
    // Linux reports twice the size it grants (bookkeeping overhead), hence the halving.
    if sock.set_recv_buffer_size(rcvbuf).is_err()
        || sock.recv_buffer_size().unwrap_or(0) / 2 < rcvbuf
    {
        // Root may exceed net.core.rmem_max.
        force_rcvbuf(&sock, rcvbuf);
    }
    let got = sock.recv_buffer_size().unwrap_or(0) / 2;
    if got < rcvbuf {
        tracing::warn!(
            requested = rcvbuf,
            granted = got,
            "UDP receive buffer is smaller than requested; raise net.core.rmem_max to avoid losing heartbeats in bursts"
        );
    }
    sock.bind(&addr.into())?;
    Ok(sock.into())
}

#[cfg(target_os = "linux")]
fn force_rcvbuf(sock: &Socket, size: usize) {
    use std::os::fd::AsRawFd;
    let v = size.min(i32::MAX as usize) as libc::c_int;
    // SAFETY: setsockopt with a valid fd, an int option value and its size.
    unsafe {
        libc::setsockopt(
            sock.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVBUFFORCE,
            (&v as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        );
    }
}

#[cfg(not(target_os = "linux"))]
fn force_rcvbuf(_: &Socket, _: usize) {}

/// Runs the receive loop on its own thread until `shutdown` fires.
pub fn spawn(
    sock: UdpSocket,
    index: usize,
    state: Shared,
    shutdown: Shutdown,
) -> std::io::Result<JoinHandle<()>> {
    std::thread::Builder::new()
        .name(format!("udp-ingest-{index}"))
        .spawn(move || receive_loop(&sock, &state, &shutdown))
}

/// The slots `recvmmsg` fills: buffers, their iovecs, and the source addresses.
struct Batch {
    buf: Vec<u8>,
    iov: Vec<libc::iovec>,
    names: Vec<libc::sockaddr_storage>,
    msgs: Vec<libc::mmsghdr>,
}

impl Batch {
    fn new() -> Box<Batch> {
        // SAFETY: zeroed sockaddr_storage and mmsghdr are valid (empty) values.
        let mut b = Box::new(Batch {
            buf: vec![0u8; BATCH * SLOT],
            iov: Vec::with_capacity(BATCH),
            names: (0..BATCH).map(|_| unsafe { std::mem::zeroed() }).collect(),
            msgs: (0..BATCH).map(|_| unsafe { std::mem::zeroed() }).collect(),
        });
        let base = b.buf.as_mut_ptr();
        for i in 0..BATCH {
            b.iov.push(libc::iovec {
                // SAFETY: i * SLOT is within buf.
                iov_base: unsafe { base.add(i * SLOT) }.cast(),
                iov_len: SLOT,
            });
        }
        let iov = b.iov.as_mut_ptr();
        let names = b.names.as_mut_ptr();
        for (i, m) in b.msgs.iter_mut().enumerate() {
            // SAFETY: i < BATCH, the length of iov and names, which never reallocate.
            m.msg_hdr.msg_iov = unsafe { iov.add(i) };
            m.msg_hdr.msg_iovlen = 1;
            m.msg_hdr.msg_name = unsafe { names.add(i) }.cast();
        }
        b
    }

    /// Takes what is queued (up to [`BATCH`]) without waiting; 0 when nothing is.
    fn receive(&mut self, fd: libc::c_int) -> std::io::Result<usize> {
        for m in &mut self.msgs {
            m.msg_hdr.msg_namelen =
                std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
            m.msg_hdr.msg_flags = 0;
        }
        // SAFETY: msgs point into iov, names and buf, owned by self and alive for the call.
        let n = unsafe {
            libc::recvmmsg(
                fd,
                self.msgs.as_mut_ptr(),
                BATCH as libc::c_uint,
                libc::MSG_DONTWAIT,
                std::ptr::null_mut(),
            )
        };
        if n < 0 {
            let e = std::io::Error::last_os_error();
            return match e.kind() {
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::Interrupted => Ok(0),
                _ => Err(e),
            };
        }
        Ok(n as usize)
    }

    /// Datagram `i` of the last batch and its source.
    fn datagram(&self, i: usize) -> (&[u8], Option<IpAddr>) {
        let len = (self.msgs[i].msg_len as usize).min(SLOT);
        (&self.buf[i * SLOT..i * SLOT + len], source(&self.names[i]))
    }
}

fn source(s: &libc::sockaddr_storage) -> Option<IpAddr> {
    match libc::c_int::from(s.ss_family) {
        libc::AF_INET => {
            // SAFETY: the family says this storage holds a sockaddr_in.
            let a = unsafe { &*(s as *const libc::sockaddr_storage).cast::<libc::sockaddr_in>() };
            Some(IpAddr::from(u32::from_be(a.sin_addr.s_addr).to_be_bytes()))
        }
        libc::AF_INET6 => {
            // SAFETY: the family says this storage holds a sockaddr_in6.
            let a = unsafe { &*(s as *const libc::sockaddr_storage).cast::<libc::sockaddr_in6>() };
            let ip = std::net::Ipv6Addr::from(a.sin6_addr.s6_addr);
            // hbd bound to [::] sees IPv4 senders as ::ffff:a.b.c.d.
            Some(ip.to_ipv4_mapped().map_or(IpAddr::V6(ip), IpAddr::V4))
        }
        _ => None,
    }
}

/// Blocks until the socket has datagrams or shutdown fires.
fn wait_readable(fd: libc::c_int, shutdown: &Shutdown) -> bool {
    let mut fds = [
        libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        },
        libc::pollfd {
            fd: shutdown.fd(),
            events: libc::POLLIN,
            revents: 0,
        },
    ];
    // SAFETY: two valid pollfds.
    let n = unsafe { libc::poll(fds.as_mut_ptr(), 2, -1) };
    n > 0 && fds[1].revents == 0
}

fn receive_loop(sock: &UdpSocket, state: &Shared, shutdown: &Shutdown) {
    let fd = sock.as_raw_fd();
    let mut batch = Batch::new();
    let mut events = Vec::new();
    let mut logged = 0u64;
    // Without a secret every source is unauthenticated and limited; with one, a datagram
    // is either verified or dropped at the cost of its HMAC, and limiting by (spoofable)
    // source address would only let a forger silence a real host.
    let rate = match state.config.secret {
        Some(_) => Rate {
            per_second: 0.0,
            burst: 0.0,
        },
        None => state.config.udp_rate(),
    };
    let mut limiter = Limiter::new(rate, MAX_SOURCES, Instant::now());
    while !shutdown.fired() {
        let n = match batch.receive(fd) {
            Ok(0) => {
                if !wait_readable(fd, shutdown) && shutdown.fired() {
                    break;
                }
                continue;
            }
            Ok(n) => n,
            Err(e) => {
                tracing::warn!("UDP receive failed: {e}");
                if shutdown.wait_timeout(Duration::from_millis(10)) {
                    break;
                }
                continue;
            }
        };
        state
            .counters
            .udp_received
            .fetch_add(n as u64, Ordering::Relaxed);
        let now = Instant::now();
        for i in 0..n {
            let (data, from) = batch.datagram(i);
            let Some(from) = from else { continue };
            // A source over its limit is not even decoded.
            if limiter.take(from, now).is_err() {
                state
                    .counters
                    .dropped
                    .add(hbd_core::drop::DropReason::RateLimited);
                logged += 1;
                if logged.is_power_of_two() {
                    tracing::warn!(%from, reason = "rate_limited", dropped = logged, "dropped heartbeat datagram (udp_rate_limit)");
                }
                continue;
            }
            if let Err(reason) = state.ingest(data, from, &mut events) {
                // Log drops sparsely (a flood must not flood the log); all are counted.
                logged += 1;
                if logged.is_power_of_two() {
                    tracing::warn!(%from, reason = reason.as_str(), dropped = logged, "dropped heartbeat datagram");
                }
                events.clear();
            }
        }
    }
}
