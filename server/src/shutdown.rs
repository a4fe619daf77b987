//! The shutdown signal every thread of hbd waits on: passed in, never polled. Threads
//! that sleep wait on it ([`Shutdown::wait_timeout`] returns at once when it fires);
//! threads that block in a system call poll its file descriptor beside their own
//! ([`Shutdown::fd`] becomes readable when it fires). Firing it more than once is fine.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// A cloneable handle on one shutdown signal.
#[derive(Clone)]
pub struct Shutdown(Arc<Inner>);

struct Inner {
    fired: Mutex<bool>,
    cv: Condvar,
    /// A pipe: its write end is closed when the signal fires, so the read end polls
    /// readable (end of file) for every waiter, forever.
    read: OwnedFd,
    write: Mutex<Option<OwnedFd>>,
}

impl Shutdown {
    pub fn new() -> std::io::Result<Shutdown> {
        let mut fds = [0 as libc::c_int; 2];
        // SAFETY: pipe(2) fills two descriptors we then own.
        if unsafe { libc::pipe(fds.as_mut_ptr()) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
        // SAFETY: both descriptors were just created and are owned by nobody else.
        let (read, write) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
        for fd in [&read, &write] {
            // SAFETY: fcntl on a descriptor we own.
            unsafe {
                libc::fcntl(fd.as_raw_fd(), libc::F_SETFD, libc::FD_CLOEXEC);
            }
        }
        Ok(Shutdown(Arc::new(Inner {
            fired: Mutex::new(false),
            cv: Condvar::new(),
            read,
            write: Mutex::new(Some(write)),
        })))
    }

    /// Fires the signal: every waiter returns.
    pub fn fire(&self) {
        *self.0.fired.lock().unwrap_or_else(|p| p.into_inner()) = true;
        self.0.cv.notify_all();
        self.0
            .write
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
    }

    pub fn fired(&self) -> bool {
        *self.0.fired.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Sleeps for `d` or until the signal fires; true if it fired.
    pub fn wait_timeout(&self, d: Duration) -> bool {
        let deadline = Instant::now() + d;
        let mut fired = self.0.fired.lock().unwrap_or_else(|p| p.into_inner());
        while !*fired {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            fired = match self.0.cv.wait_timeout(fired, left) {
                Ok((g, _)) => g,
                Err(p) => p.into_inner().0,
            };
        }
        true
    }

    /// Readable (end of file) once the signal fired: for `poll` beside a socket.
    pub fn fd(&self) -> RawFd {
        self.0.read.as_raw_fd()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waiters_return_when_it_fires_and_not_before() {
        let s = Shutdown::new().expect("pipe");
        assert!(!s.wait_timeout(Duration::from_millis(20)));
        let t = {
            let s = s.clone();
            std::thread::spawn(move || {
                let start = Instant::now();
                assert!(s.wait_timeout(Duration::from_secs(30)));
                start.elapsed()
            })
        };
        std::thread::sleep(Duration::from_millis(50));
        s.fire();
        let waited = t.join().expect("waiter");
        assert!(waited < Duration::from_secs(5), "{waited:?}");
        let mut p = libc::pollfd {
            fd: s.fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd.
        let n = unsafe { libc::poll(&mut p, 1, 1000) };
        assert_eq!(n, 1, "the descriptor is readable after firing");
        assert!(s.fired());
        s.fire();
    }
}
