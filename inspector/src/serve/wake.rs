//! Blocking waits without polling loops: [`Waker`], an eventfd one thread sets to wake another
//! out of [`wait`], and [`wait`] itself, poll(2) on up to three descriptors (gdb's socket, the
//! connection to the guest, a waker) at once.
//!
//! Contract: a [`Waker::wake`] made before or during a [`wait`] on it ends that wait (the
//! eventfd's count stays set until [`wait`] drains it); a wake nobody waits for makes the next
//! wait return at once (a spurious wake-up: waiters re-check their state and wait again).

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::time::Duration;

use rustix::event::{eventfd, poll, EventfdFlags, PollFd, PollFlags, Timespec};

/// See the module doc. Without an eventfd (the system refused one) wakes are lost and waits
/// end only by their descriptors or timeout.
#[derive(Debug)]
pub struct Waker(Option<OwnedFd>);

impl Default for Waker {
    fn default() -> Waker {
        Waker::new()
    }
}

impl Waker {
    pub fn new() -> Waker {
        Waker(eventfd(0, EventfdFlags::CLOEXEC | EventfdFlags::NONBLOCK).ok())
    }

    /// Wakes the thread waiting on this waker (now, or at its next wait).
    pub fn wake(&self) {
        if let Some(fd) = &self.0 {
            // A full counter (2^64 - 2 wakes unread) fails with EAGAIN: still set, still a wake.
            let _ = rustix::io::write(fd, &1u64.to_ne_bytes());
        }
    }

    /// Clears a pending wake.
    fn drain(&self) {
        if let Some(fd) = &self.0 {
            let mut buf = [0u8; 8];
            let _ = rustix::io::read(fd, &mut buf);
        }
    }
}

/// What ended a [`wait`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Ready {
    /// gdb's socket has bytes (or hung up: the next read says which).
    pub gdb: bool,
    /// The connection to the guest has bytes (a stop reply, say) or hung up.
    pub guest: bool,
    /// The waker was set (and is now cleared).
    pub woken: bool,
}

/// Waits until one of `gdb`, `guest` is readable or `waker` is set, at most `timeout`. An
/// interrupted or failed poll returns with nothing ready: callers re-check and wait again.
pub fn wait(
    gdb: Option<BorrowedFd<'_>>,
    guest: Option<BorrowedFd<'_>>,
    waker: &Waker,
    timeout: Duration,
) -> Ready {
    let flags = PollFlags::IN;
    let mut fds = Vec::with_capacity(3);
    let waker_at = waker.0.as_ref().map(|fd| {
        fds.push(PollFd::new(fd, flags));
        fds.len() - 1
    });
    let gdb_at = gdb.map(|fd| {
        fds.push(PollFd::from_borrowed_fd(fd, flags));
        fds.len() - 1
    });
    let guest_at = guest.map(|fd| {
        fds.push(PollFd::from_borrowed_fd(fd, flags));
        fds.len() - 1
    });
    let ts = Timespec {
        tv_sec: timeout.as_secs() as _,
        tv_nsec: timeout.subsec_nanos() as _,
    };
    if fds.is_empty() {
        std::thread::sleep(timeout);
        return Ready::default();
    }
    if !matches!(poll(&mut fds, Some(&ts)), Ok(n) if n > 0) {
        return Ready::default();
    }
    let set = |at: Option<usize>| at.is_some_and(|i| !fds[i].revents().is_empty());
    let ready = Ready {
        gdb: set(gdb_at),
        guest: set(guest_at),
        woken: set(waker_at),
    };
    if ready.woken {
        waker.drain();
    }
    ready
}

/// True if `fd` has bytes to read (or hung up) right now; does not wait.
pub fn readable(fd: impl AsFd) -> bool {
    let mut fds = [PollFd::new(&fd, PollFlags::IN)];
    let zero = Timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    matches!(poll(&mut fds, Some(&zero)), Ok(n) if n > 0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn a_wake_before_the_wait_ends_it_once() {
        let w = Waker::new();
        w.wake();
        w.wake();
        let r = wait(None, None, &w, Duration::from_secs(10));
        assert!(r.woken && !r.gdb && !r.guest);
        let r = wait(None, None, &w, Duration::ZERO);
        assert_eq!(r, Ready::default(), "drained: no second wake");
    }

    #[test]
    fn a_readable_socket_ends_the_wait() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let mut a = std::net::TcpStream::connect(l.local_addr().unwrap()).unwrap();
        let (b, _) = l.accept().unwrap();
        let w = Waker::new();
        assert!(!readable(&b));
        a.write_all(b"+").unwrap();
        let r = wait(None, Some(b.as_fd()), &w, Duration::from_secs(10));
        assert!(r.guest && !r.woken);
        assert!(readable(&b));
    }
}
