//! The transport of [`RspClient`]: one TCP connection to a stub (QEMU, gdbserver, OpenOCD, a
//! `gdbstub` crate stub), the connect handshake, framing, acknowledgements and retransmits,
//! timeouts, the all-stop running/halted state (`c`, `s`, interrupt, waiting for a stop) and
//! closing or abandoning the connection. The packet operations (memory, registers, breakpoints,
//! monitor, detach, …) are in `packets`; they build a request and go through the request
//! methods here.
//!
//! Invariants:
//! - While the target runs ([`RspClient::is_running`]), nothing is written to the socket except
//!   the interrupt byte `0x03`: QEMU stops the guest on any byte and discards the packet.
//!   (Abandoning a connection sends `0x03` and then `D`, in any state: see `abandon`.)
//! - Every received packet is acknowledged before anything else is sent (when acks are on), so
//!   no late `+` reaches a running guest.
//! - After [`RspClient::detach`] or a fatal error the client is closed and every call fails.
//! - A packet that is not a valid stop reply where one is due (after `c`, `s` or an interrupt)
//!   means the stream cannot be trusted: the connection is abandoned (`0x03` and `D` sent, which
//!   leave the guest running whatever its state, then closed) rather than kept open in a
//!   "halted" state that no one would resume from. So is a connection where no stop reply came
//!   after an interrupt or a step.
//! - Memory taken from the stub is bounded: frames and decoded payloads (`codec`), console
//!   output (`console`), target descriptions (`target_xml`). Writes time out as reads do.

use std::io::{ErrorKind, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

use super::codec::{self, Decoder, Frame, ReplyKind, StopReply};
use super::config::{RspConfig, DRAIN_AT_MOST};
use super::console::Console;
use super::error::quote;
use super::packets::Supported;
use super::socket::Socket;
use super::target_xml::RegisterMap;
use super::RspError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Halted,
    Running,
    Closed,
}

/// A connection to a GDB stub. See the module invariants.
pub struct RspClient {
    socket: Socket,
    config: RspConfig,
    decoder: Decoder,
    /// Decoded payload of the last packet received.
    rx: Vec<u8>,
    /// True if `rx` holds a reply that arrived before the ack of our request.
    rx_pending: bool,
    /// Framed bytes of the last packet sent (kept for retransmission).
    tx: Vec<u8>,
    /// Payload being built for the next request.
    req: Vec<u8>,
    acks: bool,
    state: State,
    /// Console output (`O` packets) collected aside from replies.
    console: Console,
    initial_stop: Option<StopReply>,
    /// The last stop reply received (after `c`, `s` or an interrupt), for what the `Target`
    /// trait's stop reason leaves out (a watchpoint's data address).
    last_stop: Option<StopReply>,
    /// The server's `qSupported` reply (defaults if it sent none).
    pub(super) supported: Supported,
    /// The target description's register numbering, once fetched.
    pub(super) registers: Option<RegisterMap>,
    /// `Some(true)` while `Qqemu.PhyMemMode:1` is in force.
    pub(super) phy_mem_mode: Option<bool>,
}

impl std::fmt::Debug for RspClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RspClient")
            .field("peer", &self.socket.stream.peer_addr().ok())
            .field("state", &self.state)
            .field("acks", &self.acks)
            .field("supported", &self.supported.raw)
            .finish()
    }
}

impl RspClient {
    /// Connects to `addr` (`host:port`), sets TCP_NODELAY, negotiates features (`qSupported`,
    /// `QStartNoAckMode` only if offered), drains an unsolicited stop reply and asks `?` for the
    /// stop reason. On return the target is halted (stubs stop the target when a client attaches).
    pub fn connect(addr: &str, config: RspConfig) -> Result<RspClient, RspError> {
        let connect_err = |source| RspError::Connect {
            addr: addr.to_owned(),
            source,
        };
        let addrs: Vec<_> = addr.to_socket_addrs().map_err(connect_err)?.collect();
        let mut last = std::io::Error::new(ErrorKind::NotFound, "no address resolved");
        let mut stream = None;
        for a in addrs {
            match TcpStream::connect_timeout(&a, config.connect_timeout) {
                Ok(s) => {
                    stream = Some(s);
                    break;
                }
                Err(e) => last = e,
            }
        }
        let stream = stream.ok_or_else(|| connect_err(last))?;
        stream.set_nodelay(true).map_err(connect_err)?;
        stream
            .set_write_timeout(Some(config.reply_timeout.max(Duration::from_millis(1))))
            .map_err(connect_err)?;
        let mut client = RspClient {
            socket: Socket::new(stream),
            config,
            decoder: Decoder::new(),
            rx: Vec::with_capacity(8192),
            rx_pending: false,
            tx: Vec::with_capacity(512),
            req: Vec::with_capacity(512),
            acks: true,
            supported: Supported::default(),
            state: State::Halted,
            console: Console::default(),
            initial_stop: None,
            last_stop: None,
            registers: None,
            phy_mem_mode: None,
        };
        client.handshake()?;
        Ok(client)
    }

    fn handshake(&mut self) -> Result<(), RspError> {
        // A `+` first, as GDB does: it acknowledges whatever the stub may have sent already.
        self.write_raw(b"+")?;
        self.set_request(b"qSupported:multiprocess-;swbreak+;hwbreak+;vContSupported+");
        self.send_request("qSupported")?;
        let mut kind = self.recv_reply("qSupported")?;
        if codec::is_stop_reply(&self.rx) {
            // The unsolicited stop reply came after our `+`: drain it, the reply follows.
            self.initial_stop = Some(self.parse_stop()?);
            kind = self.recv_reply("qSupported")?;
        }
        match kind {
            ReplyKind::Data | ReplyKind::Ok => self.supported = Supported::parse(&self.rx),
            // Very old stubs: no features, defaults apply.
            ReplyKind::Empty | ReplyKind::Error(_) => {}
        }
        if self.supported.no_ack_mode {
            self.set_request(b"QStartNoAckMode");
            if self.request("QStartNoAckMode")? == ReplyKind::Ok {
                self.acks = false;
            }
        }
        // `?` also clears breakpoints a previous client left installed in QEMU.
        self.set_request(b"?");
        self.request("?")?;
        if codec::is_stop_reply(&self.rx) {
            let stop = self.parse_stop()?;
            self.check_alive(&stop)?;
            self.initial_stop = Some(stop);
        }
        Ok(())
    }

    /// What the server offered in its `qSupported` reply.
    pub fn supported(&self) -> &Supported {
        &self.supported
    }

    /// True if acknowledgements are on (the server did not offer `QStartNoAckMode`).
    pub fn acks_enabled(&self) -> bool {
        self.acks
    }

    /// True between [`RspClient::cont`] and the stop reply that ends it.
    pub fn is_running(&self) -> bool {
        self.state == State::Running
    }

    /// True after detach or a fatal error.
    pub fn is_closed(&self) -> bool {
        self.state == State::Closed
    }

    /// The stop reply received at connect (`?`), if any.
    pub fn initial_stop(&self) -> Option<&StopReply> {
        self.initial_stop.as_ref()
    }

    /// The last stop reply received after `c`, `s` or an interrupt, if any.
    pub fn last_stop(&self) -> Option<&StopReply> {
        self.last_stop.as_ref()
    }

    /// Takes the console output (`O` packets) collected so far: at most the last
    /// [`super::MAX_CONSOLE_BYTES`] bytes.
    pub fn take_console_output(&mut self) -> Vec<u8> {
        self.console.take()
    }

    /// Bytes of console output dropped so far because more than
    /// [`super::MAX_CONSOLE_BYTES`] arrived between two takes.
    pub fn console_dropped(&self) -> u64 {
        self.console.dropped()
    }

    /// True if bytes from the stub wait here, undecoded or a reply not yet taken: a stop reply
    /// may have arrived although the socket has nothing more to read.
    pub fn input_buffered(&self) -> bool {
        self.rx_pending || !self.decoder.is_empty()
    }

    /// Bytes skipped as garbage between packets so far.
    pub fn garbage_bytes(&self) -> u64 {
        self.decoder.garbage()
    }

    // ---- requests -------------------------------------------------------------------------

    /// Sends `payload` and returns the reply payload, with console output collected aside. Maps
    /// an empty reply to [`RspError::Unsupported`] and `Enn` to [`RspError::ErrorReply`].
    /// Target must be halted.
    pub fn request_data(&mut self, payload: &[u8]) -> Result<&[u8], RspError> {
        self.set_request(payload);
        let name = quote(payload);
        self.expect_data(&name)?;
        Ok(&self.rx)
    }

    /// Sends `payload` and expects `OK`. Target must be halted.
    pub fn request_ok(&mut self, payload: &[u8]) -> Result<(), RspError> {
        self.set_request(payload);
        let name = quote(payload);
        self.expect_ok(&name)
    }

    /// Sends the interrupt byte and waits for the stop reply. If the target is already halted,
    /// sends nothing and returns None.
    pub fn interrupt(&mut self) -> Result<Option<StopReply>, RspError> {
        self.check_open()?;
        if self.state == State::Halted {
            return Ok(None);
        }
        // The guest may have stopped by itself (a breakpoint) since `c`: take that stop reply
        // rather than sending a 0x03 the stub would see while stopped.
        if let Some(stop) = self.buffered_stop()? {
            return Ok(Some(stop));
        }
        self.write_raw(&[0x03])?;
        let deadline = Instant::now() + self.config.reply_timeout;
        let stop = self
            .recv_stop(deadline, "the stop reply after an interrupt")
            .inspect_err(|e| self.abandon_after_timeout(e))?;
        Ok(Some(stop))
    }

    /// Reads what the socket holds without blocking and returns a stop reply if a complete one
    /// arrived. Console output is collected; a partial packet stays buffered.
    fn buffered_stop(&mut self) -> Result<Option<StopReply>, RspError> {
        match self.socket.read_now() {
            Ok(0) => {
                self.close();
                return Err(RspError::Closed);
            }
            Ok(n) => self.decoder.feed(self.socket.bytes(n)),
            Err(e) if e.kind() == ErrorKind::WouldBlock => {}
            Err(e) => return Err(self.io_error(e)),
        }
        loop {
            let frame = match self.decoder.next_frame(&mut self.rx) {
                Ok(Some(frame)) => frame,
                Ok(None) => return Ok(None),
                Err(e) => {
                    self.abandon();
                    return Err(e);
                }
            };
            if frame != Frame::Packet {
                continue;
            }
            if self.acks {
                self.write_raw(b"+")?;
            }
            if let Some(stop) = self.stop_from_packet()? {
                return Ok(Some(stop));
            }
        }
    }

    /// Continues the target (`c`) and returns once the server has taken the packet, without
    /// waiting for a stop. Target must be halted.
    pub fn cont(&mut self) -> Result<(), RspError> {
        self.resume_with(b"c", "c")
    }

    /// Sends a packet that resumes the target (`c`, `vCont;c…`) and returns once the server
    /// has taken it; the target is running after.
    pub(super) fn resume_with(&mut self, packet: &[u8], what: &str) -> Result<(), RspError> {
        self.set_request(packet);
        self.send_request(what)?;
        self.state = State::Running;
        Ok(())
    }

    /// Waits up to `timeout` for the running target to stop on its own (breakpoint, exit).
    /// Sends nothing. Returns None on timeout (the target keeps running), and None at once if the
    /// target is not running.
    pub fn wait_for_stop(&mut self, timeout: Duration) -> Result<Option<StopReply>, RspError> {
        self.check_open()?;
        if self.state != State::Running {
            return Ok(None);
        }
        match self.recv_stop(Instant::now() + timeout, "a stop") {
            Ok(stop) => Ok(Some(stop)),
            Err(RspError::Timeout { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Single-steps one instruction (`s`) and waits for the stop reply. Target must be halted.
    pub fn step(&mut self) -> Result<StopReply, RspError> {
        self.step_with(b"s")
    }

    /// Single-steps thread `thread` (as stop replies name it: a hart on QEMU) alone, the others
    /// staying stopped (`vCont;s:THREAD`), and waits for the stop reply. Target must be halted.
    pub fn step_thread(&mut self, thread: &str) -> Result<StopReply, RspError> {
        self.step_with(format!("vCont;s:{thread}").as_bytes())
    }

    fn step_with(&mut self, packet: &[u8]) -> Result<StopReply, RspError> {
        self.set_request(packet);
        self.send_request("s")?;
        self.state = State::Running;
        let deadline = Instant::now() + self.config.reply_timeout;
        self.recv_stop(deadline, "the stop reply after a single step")
            .inspect_err(|e| self.abandon_after_timeout(e))
    }

    /// Gives up on a connection that can no longer be trusted (timeout, corruption) without
    /// leaving the guest paused: sends `0x03`, `Qqemu.PhyMemMode:0` (if we set it) and `D`
    /// without waiting for replies, then closes. Whether the guest runs is not known for sure
    /// here (a `c` may have been taken but not acknowledged; a stale reply may stand where a
    /// stop reply was due): QEMU stops a running guest on `0x03` and ignores it while stopped
    /// (the `gdbstub` crate defers it), so `D` finds the guest stopped either way and resumes
    /// it. Writes are bounded by the write timeout; a no-op once closed.
    pub(super) fn abandon(&mut self) {
        if self.state == State::Closed {
            return;
        }
        let mut out = vec![0x03];
        if self.phy_mem_mode == Some(true) {
            codec::encode_packet(b"Qqemu.PhyMemMode:0", &mut out);
        }
        codec::encode_packet(b"D", &mut out);
        if self.socket.stream.write_all(&out).is_ok() {
            let _ = self.socket.stream.shutdown(std::net::Shutdown::Write);
            self.drain();
        }
        self.close();
    }

    /// Reads and discards what the stub still sends until it is quiet for a moment, hangs up, or
    /// a reply timeout (at least [`DRAIN_AT_MOST`]) has passed. Closing with unread bytes makes
    /// the kernel reset the connection, which discards a `D` still queued for a stub that was
    /// busy writing. "Quiet" is long enough that a stub (or a loaded host) pausing between
    /// writes is not taken for one that is done.
    fn drain(&mut self) {
        const QUIET: Duration = Duration::from_millis(100);
        let deadline = Instant::now() + self.config.reply_timeout.max(DRAIN_AT_MOST);
        while Instant::now() < deadline {
            match self.socket.read(QUIET, Duration::ZERO) {
                Ok(0) => return,
                Ok(_) => {}
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(_) => return, // quiet (timed out), or the connection is gone
            }
        }
    }

    /// After `e` from waiting for the stop an interrupt or a step must bring: on a timeout,
    /// whether the guest stopped is unknown, so the connection is abandoned.
    fn abandon_after_timeout(&mut self, e: &RspError) {
        if matches!(e, RspError::Timeout { .. }) {
            self.abandon();
        }
    }

    /// Marks the client closed and shuts the socket down; sends nothing.
    pub(super) fn close(&mut self) {
        self.state = State::Closed;
        let _ = self.socket.stream.shutdown(std::net::Shutdown::Both);
    }

    // ---- request plumbing (used by the packet operations) ----------------------------------

    /// Sets the payload of the next request.
    pub(super) fn set_request(&mut self, payload: &[u8]) {
        self.req.clear();
        self.req.extend_from_slice(payload);
    }

    /// Clears the payload of the next request and lends it for building.
    pub(super) fn new_request(&mut self) -> &mut Vec<u8> {
        self.req.clear();
        &mut self.req
    }

    /// The payload of the last packet received (the reply to the last request).
    pub(super) fn reply(&self) -> &[u8] {
        &self.rx
    }

    /// The position in the console output now (a mark for [`Self::console_since`]).
    pub(super) fn console_mark(&self) -> u64 {
        self.console.mark()
    }

    /// Takes the console output collected since `mark` (from [`Self::console_mark`]) and the
    /// number of those bytes that were dropped (the buffer is bounded).
    pub(super) fn console_since(&mut self, mark: u64) -> (Vec<u8>, u64) {
        self.console.take_since(mark)
    }

    fn check_open(&self) -> Result<(), RspError> {
        match self.state {
            State::Closed => Err(RspError::Closed),
            _ => Ok(()),
        }
    }

    fn check_alive(&mut self, stop: &StopReply) -> Result<(), RspError> {
        let what = match stop {
            StopReply::Exited(code) => format!("exited with status {code}"),
            StopReply::Terminated(sig) => format!("was terminated by signal {sig}"),
            StopReply::Stopped { .. } => return Ok(()),
        };
        self.close();
        Err(RspError::TargetGone { what })
    }

    /// Sends `self.req` (halted target only) and returns the classified reply in `self.rx`.
    pub(super) fn request(&mut self, what: &str) -> Result<ReplyKind, RspError> {
        self.send_request(what)?;
        self.recv_reply(what)
    }

    /// Receives the reply to the request just sent, collecting console output aside.
    fn recv_reply(&mut self, what: &str) -> Result<ReplyKind, RspError> {
        let deadline = Instant::now() + self.config.reply_timeout;
        loop {
            self.recv_packet(deadline, what)?;
            if let Some(text) = codec::console_output(&self.rx) {
                self.console.push(&text);
                continue;
            }
            return Ok(codec::classify(&self.rx));
        }
    }

    /// Frames and sends `self.req`; with acks on, waits for `+` and resends on `-`.
    fn send_request(&mut self, what: &str) -> Result<(), RspError> {
        self.check_open()?;
        if self.state == State::Running {
            return Err(RspError::Running {
                request: what.to_owned(),
            });
        }
        self.tx.clear();
        codec::encode_packet(&self.req, &mut self.tx);
        let tx = std::mem::take(&mut self.tx);
        let result = self.send_framed(&tx, what);
        self.tx = tx;
        result
    }

    fn send_framed(&mut self, framed: &[u8], what: &str) -> Result<(), RspError> {
        self.rx_pending = false;
        self.write_raw(framed)?;
        if !self.acks {
            return Ok(());
        }
        let deadline = Instant::now() + self.config.reply_timeout;
        let mut attempts = 0;
        loop {
            match self.next_frame(deadline, what)? {
                Frame::Ack => return Ok(()),
                Frame::Nack => {
                    attempts += 1;
                    if attempts > self.config.max_retransmits {
                        self.abandon();
                        return Err(RspError::BadChecksum {
                            packet: what.to_owned(),
                            attempts,
                        });
                    }
                    self.write_raw(framed)?;
                }
                Frame::Packet => {
                    self.write_raw(b"+")?;
                    if codec::is_stop_reply(&self.rx) && self.initial_stop.is_none() {
                        // An unsolicited stop reply (QEMU sends one on connect): drain it.
                        self.initial_stop = Some(self.parse_stop()?);
                    } else {
                        // The reply overtook the ack: take it as the ack and keep the reply.
                        self.rx_pending = true;
                        return Ok(());
                    }
                }
                Frame::BadChecksum => self.write_raw(b"-")?,
                Frame::Notification => {}
            }
        }
    }

    /// Receives the next packet into `self.rx`, acknowledging it (acks on) or asking for a resend
    /// on a bad checksum. Stray acks and notifications are skipped.
    fn recv_packet(&mut self, deadline: Instant, what: &str) -> Result<(), RspError> {
        if std::mem::take(&mut self.rx_pending) {
            return Ok(());
        }
        let mut bad = 0;
        loop {
            match self.next_frame(deadline, what)? {
                Frame::Packet => {
                    if self.acks {
                        self.write_raw(b"+")?;
                    }
                    return Ok(());
                }
                Frame::BadChecksum => {
                    bad += 1;
                    if !self.acks || bad > self.config.max_retransmits {
                        self.abandon();
                        return Err(RspError::BadChecksum {
                            packet: format!("reply to {what}"),
                            attempts: bad,
                        });
                    }
                    self.write_raw(b"-")?;
                }
                Frame::Ack | Frame::Nack | Frame::Notification => {}
            }
        }
    }

    /// Receives packets until a stop reply (console output is collected; other packets are
    /// malformed here). Marks the target halted, or closes on exit.
    fn recv_stop(&mut self, deadline: Instant, what: &str) -> Result<StopReply, RspError> {
        loop {
            self.recv_packet(deadline, what)?;
            if let Some(stop) = self.stop_from_packet()? {
                return Ok(stop);
            }
        }
    }

    /// The packet just received, where a stop reply is due: `None` for console output
    /// (collected); otherwise the reply is parsed and the target is halted. A malformed one
    /// abandons the connection (see the module invariants); an exit closes it.
    fn stop_from_packet(&mut self) -> Result<Option<StopReply>, RspError> {
        if let Some(text) = codec::console_output(&self.rx) {
            self.console.push(&text);
            return Ok(None);
        }
        let stop = self.parse_stop()?;
        self.state = State::Halted;
        self.check_alive(&stop)?;
        self.last_stop = Some(stop.clone());
        Ok(Some(stop))
    }

    /// Parses the stop reply in `self.rx`. If it is malformed, abandons the connection (leaving
    /// the guest running) and returns the error.
    fn parse_stop(&mut self) -> Result<StopReply, RspError> {
        codec::parse_stop_reply(&self.rx).inspect_err(|_| self.abandon())
    }

    fn next_frame(&mut self, deadline: Instant, what: &str) -> Result<Frame, RspError> {
        loop {
            match self.decoder.next_frame(&mut self.rx) {
                Ok(Some(frame)) => return Ok(frame),
                Ok(None) => {}
                Err(e) => {
                    self.abandon();
                    return Err(e);
                }
            }
            self.fill(deadline, what)?;
        }
    }

    /// Reads what the socket has (at least one byte) into the decoder, until `deadline`.
    fn fill(&mut self, deadline: Instant, what: &str) -> Result<(), RspError> {
        loop {
            let now = Instant::now();
            if now >= deadline {
                return Err(self.timeout(what));
            }
            let left = (deadline - now).max(Duration::from_millis(1));
            // A reply is due at once while halted: spin for it first if configured (see
            // `spin`); never while waiting for a running target.
            let spin = match self.state {
                State::Running => Duration::ZERO,
                _ => self.config.spin,
            };
            match self.socket.read(left, spin) {
                Ok(0) => {
                    self.close();
                    return Err(RspError::Closed);
                }
                Ok(n) => {
                    self.decoder.feed(self.socket.bytes(n));
                    return Ok(());
                }
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                    if Instant::now() >= deadline {
                        return Err(self.timeout(what));
                    }
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return Err(self.io_error(e)),
            }
        }
    }

    fn timeout(&mut self, what: &str) -> RspError {
        // A reply may still arrive later and be taken for the reply to the next request: the
        // connection cannot be trusted any more, except while waiting for a running target.
        if self.state != State::Running {
            self.abandon();
        }
        RspError::Timeout {
            what: what.to_owned(),
            after: self.config.reply_timeout,
        }
    }

    fn io_error(&mut self, e: std::io::Error) -> RspError {
        self.close();
        match e.kind() {
            ErrorKind::ConnectionReset
            | ErrorKind::ConnectionAborted
            | ErrorKind::BrokenPipe
            | ErrorKind::UnexpectedEof => RspError::Closed,
            _ => RspError::Io(e),
        }
    }

    /// Writes `bytes`; a stub that takes nothing for a reply timeout closes the connection.
    fn write_raw(&mut self, bytes: &[u8]) -> Result<(), RspError> {
        match self.socket.stream.write_all(bytes) {
            Ok(()) => Ok(()),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                // Nothing more can be sent (not even `D`): close.
                self.close();
                Err(RspError::Timeout {
                    what: "the stub to read what was sent (it stopped reading)".into(),
                    after: self.config.reply_timeout,
                })
            }
            Err(e) => Err(self.io_error(e)),
        }
    }
}

/// The socket, to wait for it with poll(2) ([`RspClient::input_buffered`] first); reading from
/// it directly would take bytes from under the client.
impl std::os::fd::AsFd for RspClient {
    fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        self.socket.stream.as_fd()
    }
}

impl Drop for RspClient {
    /// Never leave the guest paused: detach (best effort) if still connected.
    fn drop(&mut self) {
        if self.state != State::Closed {
            let _ = self.detach();
        }
    }
}
