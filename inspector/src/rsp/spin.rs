//! Reading a reply that is about to arrive without going to sleep for it.
//!
//! A request to a stub on this host is answered within tens of microseconds, but a thread that
//! blocks in read(2) for it is put to sleep and must be woken by the peer's write: on a VM that
//! wake-up crosses CPUs and can cost as much again as the answer (the ratios in the README's
//! `proxy_cost` figures show what it saved). [`read_soon`] first polls the socket (poll(2),
//! then one non-blocking read) for a short budget.
//!
//! Contract: spin only where the answer is due at once (a stub's reply to a request, gdb's
//! next packet while it holds the guest), never while waiting for a running guest to stop:
//! the spinning thread would take a host CPU from the guest. (The gdb server once looked for
//! the stop after gdb's continue this way, as gdb's software single step stops after one
//! instruction: `stepi 1000` through it then hung in 5 of 92 runs, against none in 80 without,
//! cause not found.) With one CPU, spinning would keep the peer from running at all, so
//! [`read_soon`] does not spin then.

use std::io;
use std::os::fd::AsFd;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use rustix::event::{poll, PollFd, PollFlags, Timespec};
use rustix::net::{recv, RecvFlags};

/// How long a reader spins before it blocks: a little more than a local stub's answer to a
/// small request, so gdb's next packet or a stub's reply is caught, and little enough that an
/// idle peer costs nothing that matters.
pub const SPIN: Duration = Duration::from_micros(200);

/// Whether this host has a CPU for the peer while we spin.
pub fn may_spin() -> bool {
    static MAY: OnceLock<bool> = OnceLock::new();
    *MAY.get_or_init(|| std::thread::available_parallelism().is_ok_and(|n| n.get() >= 2))
}

/// Reads what `socket` has into `buf` if anything arrives within `budget`, by non-blocking
/// reads: `Some(Ok(n))` for `n` bytes (0: the peer closed), `Some(Err(_))` for an error,
/// None when nothing came (the caller then blocks as usual). Never sleeps.
pub fn read_soon(socket: impl AsFd, buf: &mut [u8], budget: Duration) -> Option<io::Result<usize>> {
    if budget.is_zero() || !may_spin() {
        return None;
    }
    let start = Instant::now();
    // Looks with poll(2), which leaves the socket unlocked for the kernel to deliver into,
    // then takes what came with one non-blocking read.
    let mut fds = [PollFd::new(&socket, PollFlags::IN)];
    let zero = Timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    loop {
        if matches!(poll(&mut fds, Some(&zero)), Ok(n) if n > 0) {
            match recv(&socket, &mut *buf, RecvFlags::DONTWAIT) {
                Ok((n, _)) => return Some(Ok(n)),
                Err(rustix::io::Errno::AGAIN) | Err(rustix::io::Errno::INTR) => {}
                Err(e) => return Some(Err(e.into())),
            }
        }
        if start.elapsed() >= budget {
            return None;
        }
        std::hint::spin_loop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::net::{TcpListener, TcpStream};

    fn pair() -> (TcpStream, TcpStream) {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let a = TcpStream::connect(l.local_addr().unwrap()).unwrap();
        let (b, _) = l.accept().unwrap();
        (a, b)
    }

    #[test]
    fn bytes_that_arrive_are_read_and_none_is_none() {
        let (mut a, b) = pair();
        let mut buf = [0u8; 16];
        assert!(read_soon(&b, &mut buf, SPIN).is_none(), "nothing sent yet");
        a.write_all(b"$OK#9a").unwrap();
        let got = read_soon(&b, &mut buf, Duration::from_secs(5));
        if !may_spin() {
            assert!(got.is_none(), "one CPU: no spinning");
            return;
        }
        let n = got.expect("loopback delivers within the budget").unwrap();
        assert_eq!(&buf[..n], b"$OK#9a");
    }

    #[test]
    fn a_closed_peer_reads_as_zero_bytes_and_a_zero_budget_never_reads() {
        let (a, b) = pair();
        drop(a);
        let mut buf = [0u8; 4];
        assert!(read_soon(&b, &mut buf, Duration::ZERO).is_none());
        if may_spin() {
            let r = read_soon(&b, &mut buf, Duration::from_secs(5)).unwrap();
            assert_eq!(r.unwrap(), 0);
        }
    }
}
