//! The GDB remote protocol client: one TCP connection to a stub (QEMU, gdbserver, OpenOCD, a
//! `gdbstub` crate stub), its negotiated features, and the all-stop request/reply discipline.
//!
//! Invariants:
//! - While the target runs ([`RspClient::is_running`]), nothing is written to the socket except
//!   the interrupt byte `0x03`: QEMU stops the guest on any byte and discards the packet.
//! - Every received packet is acknowledged before anything else is sent (when acks are on), so
//!   no late `+` reaches a running guest.
//! - After [`RspClient::detach`] or a fatal error the client is closed and every call fails.

use std::io::{ErrorKind, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

use super::codec::{self, Decoder, Frame, ReplyKind, StopReply};
use super::error::quote;
use super::features::{self, RegisterMap, XmlItem};
use super::RspError;

/// QEMU answers `E22` to `m` requests longer than this.
pub const QEMU_MAX_MEMORY_READ: usize = 0x800;

/// Packet size assumed when the server does not advertise `PacketSize` (GDB's default).
pub const DEFAULT_PACKET_SIZE: usize = 400;

/// Timeouts and retry limits of a connection.
#[derive(Debug, Clone)]
pub struct RspConfig {
    /// Limit for establishing the TCP connection.
    pub connect_timeout: Duration,
    /// Limit for each reply (and for the stop reply after an interrupt).
    pub reply_timeout: Duration,
    /// How many times a packet is resent after `-` before giving up.
    pub max_retransmits: u32,
}

impl Default for RspConfig {
    fn default() -> Self {
        RspConfig {
            connect_timeout: Duration::from_secs(3),
            reply_timeout: Duration::from_secs(3),
            max_retransmits: 3,
        }
    }
}

/// What the server said in its `qSupported` reply.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Features {
    /// `PacketSize`: the largest packet (payload) the server accepts, if advertised.
    pub packet_size: Option<usize>,
    /// `QStartNoAckMode+`.
    pub no_ack_mode: bool,
    /// `qXfer:features:read+`.
    pub xfer_features: bool,
    /// `vContSupported+`.
    pub vcont: bool,
    /// `swbreak+`/`hwbreak+`.
    pub swbreak: bool,
    pub hwbreak: bool,
    /// The reply as received.
    pub raw: String,
}

impl Features {
    /// Parses a `qSupported` reply (`name=value`, `name+`, `name-`, `name?` separated by `;`).
    pub fn parse(reply: &[u8]) -> Features {
        let raw = String::from_utf8_lossy(reply).into_owned();
        let mut f = Features::default();
        for item in raw.split(';') {
            if let Some(size) = item.strip_prefix("PacketSize=") {
                f.packet_size = usize::from_str_radix(size, 16).ok();
            }
            match item {
                "QStartNoAckMode+" => f.no_ack_mode = true,
                "qXfer:features:read+" => f.xfer_features = true,
                "vContSupported+" => f.vcont = true,
                "swbreak+" => f.swbreak = true,
                "hwbreak+" => f.hwbreak = true,
                _ => {}
            }
        }
        f.raw = raw;
        f
    }
}

/// Breakpoint and watchpoint types of `Z`/`z` packets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BreakpointType {
    /// `Z0`: software breakpoint (the stub patches or emulates an instruction).
    Software = 0,
    /// `Z1`: hardware breakpoint (a trigger register).
    Hardware = 1,
    /// `Z2`: write watchpoint.
    WriteWatch = 2,
    /// `Z3`: read watchpoint.
    ReadWatch = 3,
    /// `Z4`: access watchpoint.
    AccessWatch = 4,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Halted,
    Running,
    Closed,
}

/// A connection to a GDB stub. See the module invariants.
pub struct RspClient {
    stream: TcpStream,
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
    read_buf: Box<[u8]>,
    read_timeout: Option<Duration>,
    acks: bool,
    features: Features,
    state: State,
    console: Vec<u8>,
    initial_stop: Option<StopReply>,
    registers: Option<RegisterMap>,
    /// `Some(true)` while `Qqemu.PhyMemMode:1` is in force.
    phy_mem_mode: Option<bool>,
}

impl std::fmt::Debug for RspClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RspClient")
            .field("peer", &self.stream.peer_addr().ok())
            .field("state", &self.state)
            .field("acks", &self.acks)
            .field("features", &self.features.raw)
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
        let mut client = RspClient {
            stream,
            config,
            decoder: Decoder::new(),
            rx: Vec::with_capacity(8192),
            rx_pending: false,
            tx: Vec::with_capacity(512),
            req: Vec::with_capacity(512),
            read_buf: vec![0; 16 * 1024].into_boxed_slice(),
            read_timeout: None,
            acks: true,
            features: Features::default(),
            state: State::Halted,
            console: Vec::new(),
            initial_stop: None,
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
            self.initial_stop = Some(codec::parse_stop_reply(&self.rx)?);
            kind = self.recv_reply("qSupported")?;
        }
        match kind {
            ReplyKind::Data | ReplyKind::Ok => self.features = Features::parse(&self.rx),
            // Very old stubs: no features, defaults apply.
            ReplyKind::Empty | ReplyKind::Error(_) => {}
        }
        if self.features.no_ack_mode {
            self.set_request(b"QStartNoAckMode");
            if self.request("QStartNoAckMode")? == ReplyKind::Ok {
                self.acks = false;
            }
        }
        // `?` also clears breakpoints a previous client left installed in QEMU.
        self.set_request(b"?");
        self.request("?")?;
        if codec::is_stop_reply(&self.rx) {
            let stop = codec::parse_stop_reply(&self.rx)?;
            self.check_alive(&stop)?;
            self.initial_stop = Some(stop);
        }
        Ok(())
    }

    /// The server's features from `qSupported`.
    pub fn features(&self) -> &Features {
        &self.features
    }

    /// True if acknowledgements are on (the server did not offer `QStartNoAckMode`).
    pub fn acks_enabled(&self) -> bool {
        self.acks
    }

    /// The largest packet the server accepts (advertised `PacketSize`, or GDB's default).
    pub fn packet_size(&self) -> usize {
        self.features
            .packet_size
            .unwrap_or(DEFAULT_PACKET_SIZE)
            .max(32)
    }

    /// Most bytes one `m` request asks for: half the packet size (the hex reply payload must fit
    /// in it, as GDB computes it), and never more than QEMU's 0x800.
    pub fn max_read_chunk(&self) -> usize {
        (self.packet_size() / 2).clamp(1, QEMU_MAX_MEMORY_READ)
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

    /// Takes the console output (`O` packets) collected so far.
    pub fn take_console_output(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.console)
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
        let stop = self.recv_stop(deadline, "the stop reply after an interrupt")?;
        Ok(Some(stop))
    }

    /// Reads what the socket holds without blocking and returns a stop reply if a complete one
    /// arrived. Console output is collected; a partial packet stays buffered.
    fn buffered_stop(&mut self) -> Result<Option<StopReply>, RspError> {
        self.stream.set_nonblocking(true)?;
        let read = self.stream.read(&mut self.read_buf);
        self.stream.set_nonblocking(false)?;
        match read {
            Ok(0) => {
                self.close();
                return Err(RspError::Closed);
            }
            Ok(n) => self.decoder.feed(&self.read_buf[..n]),
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
            if let Some(text) = codec::console_output(&self.rx) {
                self.console.extend_from_slice(&text);
                continue;
            }
            self.state = State::Halted;
            let stop = codec::parse_stop_reply(&self.rx)?;
            self.check_alive(&stop)?;
            return Ok(Some(stop));
        }
    }

    /// Continues the target (`c`) and returns once the server has taken the packet, without
    /// waiting for a stop. Target must be halted.
    pub fn cont(&mut self) -> Result<(), RspError> {
        self.set_request(b"c");
        self.send_request("c")?;
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
        self.set_request(b"s");
        self.send_request("s")?;
        self.state = State::Running;
        let deadline = Instant::now() + self.config.reply_timeout;
        self.recv_stop(deadline, "the stop reply after a single step")
    }

    /// Reads `buf.len()` bytes at `addr` with `m`, in chunks of [`RspClient::max_read_chunk`];
    /// a short reply is continued from where it ended. Target must be halted.
    pub fn read_memory(&mut self, addr: u64, buf: &mut [u8]) -> Result<(), RspError> {
        let chunk = self.max_read_chunk();
        let mut done = 0;
        while done < buf.len() {
            let want = (buf.len() - done).min(chunk);
            let at = addr.wrapping_add(done as u64);
            self.req.clear();
            self.req.push(b'm');
            codec::push_hex_u64(&mut self.req, at);
            self.req.push(b',');
            codec::push_hex_u64(&mut self.req, want as u64);
            self.expect_data_for("the reply to m", || format!("m{at:x},{want:x}"))?;
            let hex = &self.rx;
            let got = hex.len() / 2;
            if !hex.len().is_multiple_of(2) || got > want || got == 0 {
                return Err(RspError::malformed(
                    "memory read reply",
                    hex,
                    &format!("{} hex digits for a {want}-byte read", hex.len()),
                ));
            }
            if !codec::decode_hex_into(hex, &mut buf[done..done + got]) {
                return Err(RspError::malformed("memory read reply", hex, "not hex"));
            }
            done += got;
        }
        Ok(())
    }

    /// Writes `data` at `addr` with `M`, split to fit the packet size. Target must be halted.
    pub fn write_memory(&mut self, addr: u64, data: &[u8]) -> Result<(), RspError> {
        // "M" + 16 + "," + 16 + ":" = 35 bytes of header at most.
        let chunk = ((self.packet_size().saturating_sub(40)) / 2).max(1);
        for (i, part) in data.chunks(chunk).enumerate() {
            let at = addr.wrapping_add((i * chunk) as u64);
            self.req.clear();
            self.req.push(b'M');
            codec::push_hex_u64(&mut self.req, at);
            self.req.push(b',');
            codec::push_hex_u64(&mut self.req, part.len() as u64);
            self.req.push(b':');
            codec::push_hex(&mut self.req, part);
            let name = format!("M{at:x},{:x}", part.len());
            self.expect_ok(&name)?;
        }
        Ok(())
    }

    /// All registers as the `g` packet returns them (target byte order; unavailable `xx` bytes
    /// read as 0). Target must be halted.
    pub fn read_registers_raw(&mut self) -> Result<Vec<u8>, RspError> {
        self.set_request(b"g");
        self.expect_data("g")?;
        decode_register_hex(&self.rx)
            .ok_or_else(|| RspError::malformed("g reply", &self.rx, "not hex"))
    }

    /// Register `regnum` with `p` (target byte order). On QEMU, `p` answers only after the target
    /// description was fetched: this fetches it first if the server offers it. Target must be
    /// halted.
    pub fn read_register(&mut self, regnum: u32) -> Result<Vec<u8>, RspError> {
        if self.features.xfer_features && self.registers.is_none() {
            self.target_description()?;
        }
        self.req.clear();
        self.req.push(b'p');
        codec::push_hex_u64(&mut self.req, u64::from(regnum));
        self.expect_data_for("the reply to p", || format!("p{regnum:x}"))?;
        decode_register_hex(&self.rx)
            .ok_or_else(|| RspError::malformed("p reply", &self.rx, "not hex"))
    }

    /// Writes register `regnum` with `P` (`value` in target byte order). Target must be halted.
    pub fn write_register(&mut self, regnum: u32, value: &[u8]) -> Result<(), RspError> {
        if self.features.xfer_features && self.registers.is_none() {
            self.target_description()?;
        }
        self.req.clear();
        self.req.push(b'P');
        codec::push_hex_u64(&mut self.req, u64::from(regnum));
        self.req.push(b'=');
        codec::push_hex(&mut self.req, value);
        self.expect_ok(&format!("P{regnum:x}"))
    }

    /// Reads a whole `qXfer:features:read` annex (e.g. `target.xml`), in chunks that fit the
    /// packet size. Target must be halted.
    pub fn read_features_xml(&mut self, annex: &str) -> Result<Vec<u8>, RspError> {
        let chunk = self.packet_size().saturating_sub(8).max(16);
        let mut out = Vec::new();
        loop {
            let request = format!("qXfer:features:read:{annex}:{:x},{chunk:x}", out.len());
            self.set_request(request.as_bytes());
            self.expect_data(&request)?;
            let (more, data) = match self.rx.split_first() {
                Some((b'm', data)) => (true, data),
                Some((b'l', data)) => (false, data),
                _ => {
                    return Err(RspError::malformed(
                        "qXfer reply",
                        &self.rx,
                        "expected m or l",
                    ))
                }
            };
            out.extend_from_slice(data);
            if !more || (data.is_empty()) {
                return Ok(out);
            }
            if out.len() > (4 << 20) {
                return Err(RspError::malformed(
                    "qXfer reply",
                    b"",
                    "description over 4 MiB",
                ));
            }
        }
    }

    /// Fetches `target.xml` and its includes once, and returns the register numbering. Fails
    /// with [`RspError::Unsupported`] if the server offers no target description.
    pub fn target_description(&mut self) -> Result<&RegisterMap, RspError> {
        if self.registers.is_none() {
            if !self.features.xfer_features {
                return Err(RspError::Unsupported {
                    request: "qXfer:features:read (target description)".into(),
                });
            }
            let mut map = RegisterMap::default();
            let mut next = 0;
            self.walk_description("target.xml", 0, &mut next, &mut map)?;
            self.registers = Some(map);
        }
        Ok(self.registers.as_ref().expect("set above"))
    }

    fn walk_description(
        &mut self,
        annex: &str,
        depth: u32,
        next: &mut u32,
        map: &mut RegisterMap,
    ) -> Result<(), RspError> {
        if depth > 4 {
            return Err(RspError::malformed(
                "target description",
                annex.as_bytes(),
                "includes nest too deep",
            ));
        }
        let xml = self.read_features_xml(annex)?;
        for item in features::parse_items(&String::from_utf8_lossy(&xml)) {
            match &item {
                XmlItem::Include(href) => self.walk_description(href, depth + 1, next, map)?,
                XmlItem::Reg { .. } => features::number_registers(&item, next, map),
            }
        }
        Ok(())
    }

    /// Inserts a breakpoint or watchpoint (`Z`). `kind` is the breakpoint length in bytes for
    /// `Z0`/`Z1` (RISC-V: 4, or 2 for a compressed instruction) and the watched length for
    /// watchpoints. Target must be halted.
    pub fn insert_breakpoint(
        &mut self,
        ty: BreakpointType,
        addr: u64,
        kind: u32,
    ) -> Result<(), RspError> {
        self.breakpoint_packet(b'Z', ty, addr, kind)
    }

    /// Removes a breakpoint or watchpoint (`z`) inserted with the same arguments.
    pub fn remove_breakpoint(
        &mut self,
        ty: BreakpointType,
        addr: u64,
        kind: u32,
    ) -> Result<(), RspError> {
        self.breakpoint_packet(b'z', ty, addr, kind)
    }

    fn breakpoint_packet(
        &mut self,
        op: u8,
        ty: BreakpointType,
        addr: u64,
        kind: u32,
    ) -> Result<(), RspError> {
        self.req.clear();
        self.req.push(op);
        self.req.push(b'0' + ty as u8);
        self.req.push(b',');
        codec::push_hex_u64(&mut self.req, addr);
        self.req.push(b',');
        codec::push_hex_u64(&mut self.req, u64::from(kind));
        self.expect_ok(&format!("{}{},{addr:x},{kind:x}", op as char, ty as u8))
    }

    /// Runs a monitor command (`qRcmd`, hex-encoded) and returns its output: the `O` packets it
    /// produced, or a hex-encoded reply. Target must be halted.
    pub fn monitor(&mut self, command: &str) -> Result<String, RspError> {
        self.req.clear();
        self.req.extend_from_slice(b"qRcmd,");
        codec::push_hex(&mut self.req, command.as_bytes());
        let console_before = self.console.len();
        let name = format!("qRcmd ({command})");
        let kind = self.request(&name)?;
        let mut out = self.console.split_off(console_before);
        match kind {
            ReplyKind::Ok => {}
            ReplyKind::Data => match codec::decode_hex(&self.rx) {
                Some(text) => out.extend_from_slice(&text),
                None => return Err(RspError::malformed("qRcmd reply", &self.rx, "not hex")),
            },
            ReplyKind::Empty => return Err(RspError::Unsupported { request: name }),
            ReplyKind::Error(code) => {
                return Err(RspError::ErrorReply {
                    code,
                    request: name,
                })
            }
        }
        Ok(String::from_utf8_lossy(&out).into_owned())
    }

    /// Switches QEMU's physical memory mode (`Qqemu.PhyMemMode:1`/`0`): in it, `m`/`M` take
    /// physical addresses. Returns Ok(false) if the server does not support it (empty or error
    /// reply); the mode is then unchanged. Target must be halted.
    pub fn set_phy_mem_mode(&mut self, on: bool) -> Result<bool, RspError> {
        let packet: &[u8] = if on {
            b"Qqemu.PhyMemMode:1"
        } else {
            b"Qqemu.PhyMemMode:0"
        };
        self.set_request(packet);
        match self.request("Qqemu.PhyMemMode")? {
            ReplyKind::Ok => {
                self.phy_mem_mode = Some(on);
                Ok(true)
            }
            ReplyKind::Empty | ReplyKind::Error(_) => Ok(false),
            ReplyKind::Data => Err(RspError::malformed(
                "Qqemu.PhyMemMode reply",
                &self.rx,
                "expected OK",
            )),
        }
    }

    /// True while physical memory mode is on.
    pub fn phy_mem_mode(&self) -> bool {
        self.phy_mem_mode == Some(true)
    }

    /// Leaves the target running and closes the session: interrupts it if running (QEMU drops
    /// packets sent while it runs), turns physical memory mode off if this client turned it on,
    /// then sends `D` (QEMU removes breakpoints and resumes). A server that closes the socket
    /// instead of answering `OK` counts as detached. Idempotent.
    pub fn detach(&mut self) -> Result<(), RspError> {
        if self.state == State::Closed {
            return Ok(());
        }
        let result = self.detach_inner();
        self.close();
        result
    }

    fn detach_inner(&mut self) -> Result<(), RspError> {
        if self.state == State::Running {
            self.interrupt()?;
        }
        if self.phy_mem_mode == Some(true) {
            self.set_phy_mem_mode(false)?;
        }
        match self.detach_request("D") {
            // QEMU keeps multiprocess mode from an earlier client (gdb) and then refuses a
            // plain `D` with E22: name the process, as such a client would.
            Err(RspError::ErrorReply { code: 0x22, .. }) => self.detach_request("D;1"),
            other => other,
        }
    }

    fn detach_request(&mut self, packet: &'static str) -> Result<(), RspError> {
        self.set_request(packet.as_bytes());
        match self.request(packet) {
            Ok(ReplyKind::Ok | ReplyKind::Empty) | Err(RspError::Closed) => Ok(()),
            Ok(ReplyKind::Error(code)) => Err(RspError::ErrorReply {
                code,
                request: packet.into(),
            }),
            Ok(ReplyKind::Data) => Err(RspError::malformed("D reply", &self.rx, "expected OK")),
            Err(e) => Err(e),
        }
    }

    /// Gives up on a connection that can no longer be trusted (timeout, corruption) without
    /// leaving the guest paused: if halted, sends `Qqemu.PhyMemMode:0` (if we set it) and `D`
    /// without waiting for replies, then closes. While the guest runs, only closes (any byte
    /// would stop it).
    fn abandon(&mut self) {
        if self.state == State::Halted {
            let mut out = Vec::new();
            if self.phy_mem_mode == Some(true) {
                codec::encode_packet(b"Qqemu.PhyMemMode:0", &mut out);
            }
            codec::encode_packet(b"D", &mut out);
            let _ = self.stream.write_all(&out);
        }
        self.close();
    }

    fn close(&mut self) {
        self.state = State::Closed;
        let _ = self.stream.shutdown(std::net::Shutdown::Both);
    }

    // ---- packet layer ---------------------------------------------------------------------

    fn set_request(&mut self, payload: &[u8]) {
        self.req.clear();
        self.req.extend_from_slice(payload);
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
    fn request(&mut self, what: &str) -> Result<ReplyKind, RspError> {
        self.send_request(what)?;
        self.recv_reply(what)
    }

    /// Receives the reply to the request just sent, collecting console output aside.
    fn recv_reply(&mut self, what: &str) -> Result<ReplyKind, RspError> {
        let deadline = Instant::now() + self.config.reply_timeout;
        loop {
            self.recv_packet(deadline, what)?;
            if let Some(text) = codec::console_output(&self.rx) {
                self.console.extend_from_slice(&text);
                continue;
            }
            return Ok(codec::classify(&self.rx));
        }
    }

    fn expect_data(&mut self, what: &str) -> Result<(), RspError> {
        match self.request(what)? {
            ReplyKind::Data => Ok(()),
            ReplyKind::Ok => Ok(()),
            ReplyKind::Empty => Err(RspError::Unsupported {
                request: what.to_owned(),
            }),
            ReplyKind::Error(code) => Err(RspError::ErrorReply {
                code,
                request: what.to_owned(),
            }),
        }
    }

    /// [`Self::expect_data`] with the request's name built only on failure.
    fn expect_data_for(&mut self, short: &str, what: impl Fn() -> String) -> Result<(), RspError> {
        match self.request(short)? {
            ReplyKind::Data | ReplyKind::Ok => Ok(()),
            ReplyKind::Empty => Err(RspError::Unsupported { request: what() }),
            ReplyKind::Error(code) => Err(RspError::ErrorReply {
                code,
                request: what(),
            }),
        }
    }

    fn expect_ok(&mut self, what: &str) -> Result<(), RspError> {
        match self.request(what)? {
            ReplyKind::Ok => Ok(()),
            ReplyKind::Empty => Err(RspError::Unsupported {
                request: what.to_owned(),
            }),
            ReplyKind::Error(code) => Err(RspError::ErrorReply {
                code,
                request: what.to_owned(),
            }),
            ReplyKind::Data => Err(RspError::malformed(
                "reply",
                &self.rx,
                &format!("expected OK to {what}"),
            )),
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
                        self.initial_stop = Some(codec::parse_stop_reply(&self.rx)?);
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
            if let Some(text) = codec::console_output(&self.rx) {
                self.console.extend_from_slice(&text);
                continue;
            }
            // Stopped now (even if the reply is malformed): acks may be sent again.
            self.state = State::Halted;
            let stop = codec::parse_stop_reply(&self.rx)?;
            self.check_alive(&stop)?;
            return Ok(stop);
        }
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
            // Re-arm the socket timeout (a syscall) only when it would overshoot the deadline by
            // more than SLACK, or is so short that it would wake us for nothing.
            const SLACK: Duration = Duration::from_millis(20);
            let rearm = match self.read_timeout {
                Some(t) => t > left + SLACK || (t < left && t < SLACK),
                None => true,
            };
            if rearm {
                self.stream.set_read_timeout(Some(left))?;
                self.read_timeout = Some(left);
            }
            match self.stream.read(&mut self.read_buf) {
                Ok(0) => {
                    self.close();
                    return Err(RspError::Closed);
                }
                Ok(n) => {
                    self.decoder.feed(&self.read_buf[..n]);
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

    fn write_raw(&mut self, bytes: &[u8]) -> Result<(), RspError> {
        match self.stream.write_all(bytes) {
            Ok(()) => Ok(()),
            Err(e) => Err(self.io_error(e)),
        }
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

/// Decodes register hex, reading unavailable bytes (`xx`) as 0.
fn decode_register_hex(hex: &[u8]) -> Option<Vec<u8>> {
    if !hex.len().is_multiple_of(2) {
        return None;
    }
    hex.chunks_exact(2)
        .map(|p| match p {
            [b'x', b'x'] => Some(0),
            [hi, lo] => Some(codec::hex_value(*hi)? << 4 | codec::hex_value(*lo)?),
            _ => None,
        })
        .collect()
}
