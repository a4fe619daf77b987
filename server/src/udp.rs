//! The UDP heartbeat listener: one thread that receives, verifies and applies datagrams.
//!
//! A dedicated thread (not an async task) keeps the per-datagram cost to a syscall, a
//! decode, an HMAC check and a short registry lock. The receive buffer is raised (the
//! kernel default of 208 KiB loses datagrams at tens of thousands per second) and the
//! size the kernel granted is logged when it is below what was asked for.

use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use socket2::{Domain, Protocol, Socket, Type};

use crate::ratelimit::{Limiter, Rate, MAX_SOURCES};
use crate::state::Shared;

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
    let s: UdpSocket = sock.into();
    s.set_read_timeout(Some(Duration::from_millis(200)))?;
    Ok(s)
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

/// Runs the receive loop on its own thread until `stop` is set.
pub fn spawn(
    sock: UdpSocket,
    index: usize,
    state: Shared,
    stop: Arc<AtomicBool>,
) -> std::io::Result<JoinHandle<()>> {
    std::thread::Builder::new().name(format!("udp-ingest-{index}")).spawn(move || {
        let mut buf = vec![0u8; 65_536];
        let mut events = Vec::new();
        let mut logged = 0u64;
        // Without a secret every source is unauthenticated and limited; with one, a
        // datagram is either verified or dropped at the cost of its HMAC, and limiting by
        // (spoofable) source address would only let a forger silence a real host.
        let rate = match state.config.secret {
            Some(_) => Rate { per_second: 0.0, burst: 0.0 },
            None => state.config.udp_rate(),
        };
        let mut limiter = Limiter::new(rate, MAX_SOURCES, Instant::now());
        while !stop.load(Ordering::Relaxed) {
            let (n, from) = match sock.recv_from(&mut buf) {
                Ok(x) => x,
                Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut | std::io::ErrorKind::Interrupted) => continue,
                Err(e) => {
                    tracing::warn!("UDP receive failed: {e}");
                    std::thread::sleep(Duration::from_millis(10));
                    continue;
                }
            };
            state.counters.udp_received.fetch_add(1, Ordering::Relaxed);
            // A source over its limit is not even decoded.
            if limiter.take(from.ip(), Instant::now()).is_err() {
                state.counters.dropped.add(hbd_core::drop::DropReason::RateLimited);
                logged += 1;
                if logged.is_power_of_two() {
                    tracing::warn!(%from, reason = "rate_limited", dropped = logged, "dropped heartbeat datagram (udp_rate_limit)");
                }
                continue;
            }
            if let Err(reason) = state.ingest(&buf[..n], from.ip(), &mut events) {
                // Log drops sparsely (a flood must not flood the log); all are counted.
                logged += 1;
                if logged.is_power_of_two() {
                    tracing::warn!(%from, reason = reason.as_str(), dropped = logged, "dropped heartbeat datagram");
                }
                events.clear();
            }
        }
    })
}
