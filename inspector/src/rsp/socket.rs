//! The stub's TCP socket as [`RspClient`](super::RspClient) reads it: a read that waits at most
//! until a deadline (the socket's read timeout is re-armed only when it would overshoot), after
//! spinning briefly when a reply is due at once (see `spin`), and a read that does not wait.

use std::io::{self, Read};
use std::net::TcpStream;
use std::time::Duration;

use super::spin;

pub(super) struct Socket {
    /// Written to directly (writes are bounded by the write timeout set at connect).
    pub(super) stream: TcpStream,
    buf: Box<[u8]>,
    /// The read timeout in force on `stream` (None: not set yet).
    timeout: Option<Duration>,
}

impl Socket {
    pub(super) fn new(stream: TcpStream) -> Socket {
        Socket {
            stream,
            buf: vec![0; 16 * 1024].into_boxed_slice(),
            timeout: None,
        }
    }

    /// Waits up to about `left` for bytes, spinning for `spin` first: `Ok(n)` with the bytes in
    /// [`bytes`](Self::bytes) (0: the stub hung up); `WouldBlock` or `TimedOut` when nothing
    /// came in time.
    pub(super) fn read(&mut self, left: Duration, spin: Duration) -> io::Result<usize> {
        if let Some(read) = spin::read_soon(&self.stream, &mut self.buf, spin) {
            return read;
        }
        // Re-arm the timeout (a syscall) only when it would overshoot `left` by more than
        // SLACK, or is so short that it would wake us for nothing.
        const SLACK: Duration = Duration::from_millis(20);
        let rearm = match self.timeout {
            Some(t) => t > left + SLACK || (t < left && t < SLACK),
            None => true,
        };
        if rearm {
            self.stream.set_read_timeout(Some(left))?;
            self.timeout = Some(left);
        }
        self.stream.read(&mut self.buf)
    }

    /// What the socket holds now, without waiting: `WouldBlock` when nothing. One recv(2)
    /// with MSG_DONTWAIT (an interrupt, inside the snapshot pause, calls this), not three
    /// calls switching the socket's mode.
    pub(super) fn read_now(&mut self) -> io::Result<usize> {
        match rustix::net::recv(
            &self.stream,
            &mut *self.buf,
            rustix::net::RecvFlags::DONTWAIT,
        ) {
            Ok((n, _)) => Ok(n),
            Err(e) => Err(e.into()),
        }
    }

    /// The `n` bytes the last read returned.
    pub(super) fn bytes(&self, n: usize) -> &[u8] {
        &self.buf[..n]
    }
}
