//! The paced sender: datagrams stamped from a template into a batch buffer and sent with
//! one `sendmmsg` per batch on a connected UDP socket. Several sender threads split the
//! simulated hosts between them (a host always belongs to one thread, so its `seq` only
//! grows on the wire too).

use std::net::{SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

use crate::payload::{now_ms, Template};

/// The hosts one sender thread owns and their next sequence numbers.
pub struct Hosts {
    /// Host indexes (global numbering, for names).
    pub ids: Vec<usize>,
    /// Next `seq` per owned host.
    pub seq: Vec<u64>,
    /// Hosts that stopped sending (their slot is skipped: the fleet keeps its pacing).
    pub stopped: Vec<bool>,
    /// Wall-clock ms (`now_ms`) each host's last datagram was stamped and sent; 0 before
    /// its first (DOWN lateness is measured from it).
    pub last_ms: Vec<u64>,
    /// Round-robin position.
    pub next: usize,
}

impl Hosts {
    /// Splits `n` hosts over `threads` owners.
    pub fn split(n: usize, threads: usize) -> Vec<Hosts> {
        (0..threads)
            .map(|t| {
                let ids: Vec<usize> = (t..n).step_by(threads).collect();
                Hosts {
                    seq: vec![1; ids.len()],
                    stopped: vec![false; ids.len()],
                    last_ms: vec![0; ids.len()],
                    ids,
                    next: 0,
                }
            })
            .collect()
    }
}

/// What a paced run did.
#[derive(Debug, Default, Clone, Copy)]
pub struct Sent {
    pub datagrams: u64,
    pub errors: u64,
    pub elapsed: Duration,
    /// CPU time of the sending thread(s).
    pub cpu: Duration,
}

impl Sent {
    pub fn rate(&self) -> f64 {
        self.datagrams as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
    pub fn add(&mut self, o: Sent) {
        self.datagrams += o.datagrams;
        self.errors += o.errors;
        self.elapsed = self.elapsed.max(o.elapsed);
        self.cpu += o.cpu;
    }
}

/// CPU time of the calling thread.
pub fn thread_cpu() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes into the timespec we own.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

/// One sender: a connected socket, a batch buffer and the message headers for it.
pub struct Sender {
    sock: UdpSocket,
    buf: Vec<u8>,
    slot: usize,
    lens: Vec<usize>,
    batch: usize,
}

impl Sender {
    pub fn new(target: SocketAddr, batch: usize, max_len: usize) -> Result<Sender> {
        let sock = UdpSocket::bind("127.0.0.1:0").context("binding the sender socket")?;
        sock.connect(target)
            .context("connecting the sender socket")?;
        let batch = batch.clamp(1, 1024);
        Ok(Sender {
            sock,
            buf: vec![0u8; batch * max_len],
            slot: max_len,
            lens: vec![0; batch],
            batch,
        })
    }

    /// Sends the first `n` slots of the batch buffer; returns (sent, errors).
    fn flush(&mut self, n: usize) -> (u64, u64) {
        let mut iov: Vec<libc::iovec> = (0..n)
            .map(|i| libc::iovec {
                iov_base: self.buf[i * self.slot..].as_mut_ptr().cast(),
                iov_len: self.lens[i],
            })
            .collect();
        // SAFETY: zeroed mmsghdr is a valid "no name, no control" header.
        let mut msgs: Vec<libc::mmsghdr> = (0..n).map(|_| unsafe { std::mem::zeroed() }).collect();
        for (m, v) in msgs.iter_mut().zip(iov.iter_mut()) {
            m.msg_hdr.msg_iov = v;
            m.msg_hdr.msg_iovlen = 1;
        }
        let (mut done, mut errors) = (0usize, 0u64);
        while done < n {
            // SAFETY: msgs[done..] point into live iovecs and buffers owned by self.
            let r = unsafe {
                libc::sendmmsg(
                    self.sock.as_raw_fd(),
                    msgs[done..].as_mut_ptr(),
                    (n - done) as libc::c_uint,
                    0,
                )
            };
            if r <= 0 {
                let e = std::io::Error::last_os_error();
                if e.kind() == std::io::ErrorKind::Interrupted {
                    continue;
                }
                // ECONNREFUSED (nobody listening yet) or ENOBUFS: count and skip one.
                errors += 1;
                done += 1;
            } else {
                done += r as usize;
            }
        }
        (n as u64 - errors, errors)
    }

    /// Sends `rate` datagrams/s for `duration` (or until `count` datagrams), round-robin
    /// over `hosts`, each with its next `seq`. `cpu` makes the `cpu.usage_percent` value
    /// of datagram k (counted over the run) `cpu(k)`; `on_send` is called with k just
    /// before a datagram's batch is sent (latency measurements use batch 1).
    #[allow(clippy::too_many_arguments)]
    pub fn paced(
        &mut self,
        t: &Template,
        hosts: &mut Hosts,
        instance: u64,
        rate: f64,
        duration: Duration,
        count: Option<u64>,
        mut cpu: impl FnMut(u64) -> Option<f64>,
        mut on_send: impl FnMut(u64),
    ) -> Sent {
        let cpu0 = thread_cpu();
        let start = Instant::now();
        let limit = count.unwrap_or(u64::MAX);
        let (mut slots, mut sent, mut errors) = (0u64, 0u64, 0u64);
        while slots < limit && !hosts.ids.is_empty() {
            let el = start.elapsed();
            if el >= duration {
                break;
            }
            let due = ((el.as_secs_f64() * rate) as u64).min(limit);
            let want = due.saturating_sub(slots);
            let full = (self.batch as u64).min(limit - slots);
            if want < full {
                // Sleep until a whole batch is due (or the end).
                let next = Duration::from_secs_f64((slots + full) as f64 / rate);
                let wait = next.saturating_sub(el).min(duration.saturating_sub(el));
                if wait > Duration::from_micros(50) {
                    std::thread::sleep(wait);
                    continue;
                }
                if want == 0 {
                    std::hint::spin_loop();
                    continue;
                }
            }
            let n = want.min(self.batch as u64) as usize;
            // Every batch: a partial batch shifts `slots` off any fixed multiple, and a
            // `slots % 64 == 0` test then never fired again, freezing `sent_ms` until hbd
            // dropped every datagram as outside its time window (found by bench/soak.sh).
            let ms = now_ms();
            let mut filled = 0;
            for k in 0..n {
                let i = hosts.next;
                hosts.next = (hosts.next + 1) % hosts.ids.len();
                let slot_k = slots + k as u64;
                if hosts.stopped[i] {
                    continue;
                }
                let seq = hosts.seq[i];
                hosts.seq[i] += 1;
                hosts.last_ms[i] = ms;
                let off = filled * self.slot;
                self.lens[filled] = t.stamp(
                    &mut self.buf[off..off + self.slot],
                    hosts.ids[i],
                    instance,
                    seq,
                    ms,
                    cpu(slot_k),
                );
                on_send(slot_k);
                filled += 1;
            }
            slots += n as u64;
            if filled > 0 {
                let (s, e) = self.flush(filled);
                sent += s;
                errors += e;
            }
        }
        Sent {
            datagrams: sent,
            errors,
            elapsed: start.elapsed(),
            cpu: thread_cpu().saturating_sub(cpu0),
        }
    }
}

/// Sends with one thread per sender in parallel (`senders[k]` sends for `hosts[k]`), each
/// at `rate / senders`. The senders (and so their source ports) persist across calls: a
/// receiver with `SO_REUSEPORT` sockets keeps each flow on one socket, chosen by a hash of
/// the source port, so a new socket per call would move the flows at random.
pub fn blast_with(
    t: &Template,
    senders: &mut [Sender],
    hosts: &mut [Hosts],
    instance: u64,
    rate: f64,
    duration: Duration,
) -> Result<Sent> {
    let per = rate / hosts.len() as f64;
    let results: Vec<Sent> = std::thread::scope(|s| {
        let handles: Vec<_> = senders
            .iter_mut()
            .zip(hosts.iter_mut())
            .map(|(sender, h)| {
                s.spawn(move || sender.paced(t, h, instance, per, duration, None, |_| None, |_| {}))
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_default())
            .collect()
    });
    let mut total = Sent::default();
    for r in results {
        total.add(r);
    }
    Ok(total)
}

/// [`blast_with`] with fresh senders, one per `hosts` entry.
pub fn blast(
    t: &Template,
    target: SocketAddr,
    hosts: &mut [Hosts],
    instance: u64,
    rate: f64,
    duration: Duration,
    batch: usize,
) -> Result<Sent> {
    let mut senders = hosts
        .iter()
        .map(|_| Sender::new(target, batch, t.len()))
        .collect::<Result<Vec<_>>>()?;
    blast_with(t, &mut senders, hosts, instance, rate, duration)
}
