//! The packet operations of [`RspClient`], one method per kind of request: the `qSupported`
//! reply ([`Supported`]), memory reads and writes split to fit the packet size (`m`/`M`),
//! registers (`g`, `p`, `P`), the target description walk (`qXfer:features:read`), breakpoints
//! and watchpoints (`Z`/`z`), monitor commands (`qRcmd`), QEMU's physical memory mode and
//! detach (`D`). Each one builds its request and goes through the transport's request methods;
//! all need the target halted.

use super::codec::{self, ReplyKind};
use super::target_xml::{
    self, RegisterMap, XmlItem, MAX_XML_ANNEXES, MAX_XML_BYTES, MAX_XML_DEPTH,
};
use super::{RspClient, RspError};

/// QEMU answers `E22` to `m` requests longer than this.
pub const QEMU_MAX_MEMORY_READ: usize = 0x800;

/// Packet size assumed when the server does not advertise `PacketSize` (GDB's default).
pub const DEFAULT_PACKET_SIZE: usize = 400;

/// What the server said in its `qSupported` reply.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Supported {
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

impl Supported {
    /// Parses a `qSupported` reply (`name=value`, `name+`, `name-`, `name?` separated by `;`).
    pub fn parse(reply: &[u8]) -> Supported {
        let raw = String::from_utf8_lossy(reply).into_owned();
        let mut f = Supported::default();
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

impl RspClient {
    /// The largest packet the server accepts (advertised `PacketSize`, or GDB's default).
    pub fn packet_size(&self) -> usize {
        self.supported
            .packet_size
            .unwrap_or(DEFAULT_PACKET_SIZE)
            .max(32)
    }

    /// Most bytes one `m` request asks for: half the packet size (the hex reply payload must fit
    /// in it, as GDB computes it), and never more than QEMU's 0x800.
    pub fn max_read_chunk(&self) -> usize {
        (self.packet_size() / 2).clamp(1, QEMU_MAX_MEMORY_READ)
    }

    /// Reads `buf.len()` bytes at `addr` with `m`, in chunks of [`RspClient::max_read_chunk`];
    /// a short reply is continued from where it ended. Target must be halted.
    pub fn read_memory(&mut self, addr: u64, buf: &mut [u8]) -> Result<(), RspError> {
        let chunk = self.max_read_chunk();
        let mut done = 0;
        while done < buf.len() {
            let want = (buf.len() - done).min(chunk);
            let at = addr.wrapping_add(done as u64);
            let req = self.new_request();
            req.push(b'm');
            codec::push_hex_u64(req, at);
            req.push(b',');
            codec::push_hex_u64(req, want as u64);
            self.expect_data_for("the reply to m", || format!("m{at:x},{want:x}"))?;
            let hex = self.reply();
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
            let req = self.new_request();
            req.push(b'M');
            codec::push_hex_u64(req, at);
            req.push(b',');
            codec::push_hex_u64(req, part.len() as u64);
            req.push(b':');
            codec::push_hex(req, part);
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
        decode_register_hex(self.reply())
            .ok_or_else(|| RspError::malformed("g reply", self.reply(), "not hex"))
    }

    /// Register `regnum` with `p` (target byte order). On QEMU, `p` answers only after the target
    /// description was fetched: this fetches it first if the server offers it. Target must be
    /// halted.
    pub fn read_register(&mut self, regnum: u32) -> Result<Vec<u8>, RspError> {
        if self.supported.xfer_features && self.registers.is_none() {
            self.target_description()?;
        }
        let req = self.new_request();
        req.push(b'p');
        codec::push_hex_u64(req, u64::from(regnum));
        self.expect_data_for("the reply to p", || format!("p{regnum:x}"))?;
        decode_register_hex(self.reply())
            .ok_or_else(|| RspError::malformed("p reply", self.reply(), "not hex"))
    }

    /// Writes register `regnum` with `P` (`value` in target byte order). Target must be halted.
    pub fn write_register(&mut self, regnum: u32, value: &[u8]) -> Result<(), RspError> {
        if self.supported.xfer_features && self.registers.is_none() {
            self.target_description()?;
        }
        let req = self.new_request();
        req.push(b'P');
        codec::push_hex_u64(req, u64::from(regnum));
        req.push(b'=');
        codec::push_hex(req, value);
        self.expect_ok(&format!("P{regnum:x}"))
    }

    /// Continues threads `threads` (as stop replies name them: harts on QEMU) alone, the others
    /// staying stopped (`vCont;c:T1;c:T2…`, no default action), without waiting for a stop.
    /// Target must be halted.
    pub fn cont_threads(&mut self, threads: &[String]) -> Result<(), RspError> {
        let packet = threads
            .iter()
            .fold(String::from("vCont"), |p, t| p + ";c:" + t);
        self.resume_with(packet.as_bytes(), "vCont;c")
    }

    /// Reads a whole `qXfer:features:read` annex (e.g. `target.xml`), in chunks that fit the
    /// packet size; one over [`MAX_XML_BYTES`] is malformed. Target must be halted.
    pub fn read_features_xml(&mut self, annex: &str) -> Result<Vec<u8>, RspError> {
        self.read_annex(annex, MAX_XML_BYTES)
    }

    /// [`Self::read_features_xml`] of at most `limit` bytes: refused before more is buffered.
    fn read_annex(&mut self, annex: &str, limit: usize) -> Result<Vec<u8>, RspError> {
        let chunk = self.packet_size().saturating_sub(8).max(16);
        let mut out = Vec::new();
        loop {
            let request = format!("qXfer:features:read:{annex}:{:x},{chunk:x}", out.len());
            self.set_request(request.as_bytes());
            self.expect_data(&request)?;
            let (more, data) = match self.reply().split_first() {
                Some((b'm', data)) => (true, data),
                Some((b'l', data)) => (false, data),
                _ => {
                    return Err(RspError::malformed(
                        "qXfer reply",
                        self.reply(),
                        "expected m or l",
                    ))
                }
            };
            if out.len() + data.len() > limit {
                return Err(RspError::malformed(
                    "target description",
                    annex.as_bytes(),
                    &format!("over {limit} bytes (all documents together: {MAX_XML_BYTES})"),
                ));
            }
            out.extend_from_slice(data);
            if !more || (data.is_empty()) {
                return Ok(out);
            }
        }
    }

    /// Fetches `target.xml` and its includes once, and returns the register numbering. Fails
    /// with [`RspError::Unsupported`] if the server offers no target description.
    pub fn target_description(&mut self) -> Result<&RegisterMap, RspError> {
        if self.registers.is_none() {
            if !self.supported.xfer_features {
                return Err(RspError::Unsupported {
                    request: "qXfer:features:read (target description)".into(),
                });
            }
            let mut walk = DescriptionWalk {
                annexes_left: MAX_XML_ANNEXES,
                bytes_left: MAX_XML_BYTES,
                next: 0,
                map: RegisterMap::default(),
            };
            self.walk_description("target.xml", 0, &mut walk)?;
            self.registers = Some(walk.map);
        }
        Ok(self.registers.as_ref().expect("set above"))
    }

    /// Fetches `annex` and, depth first, what it includes, within the walk's budget.
    fn walk_description(
        &mut self,
        annex: &str,
        depth: usize,
        walk: &mut DescriptionWalk,
    ) -> Result<(), RspError> {
        let bad =
            |detail: String| RspError::malformed("target description", annex.as_bytes(), &detail);
        if depth > MAX_XML_DEPTH {
            return Err(bad(format!("includes nest more than {MAX_XML_DEPTH} deep")));
        }
        if walk.annexes_left == 0 {
            return Err(bad(format!("more than {MAX_XML_ANNEXES} documents")));
        }
        walk.annexes_left -= 1;
        let xml = self.read_annex(annex, walk.bytes_left)?;
        walk.bytes_left -= xml.len();
        for item in target_xml::parse_items(&String::from_utf8_lossy(&xml))? {
            match &item {
                XmlItem::Include(href) => self.walk_description(href, depth + 1, walk)?,
                XmlItem::Reg { .. } => {
                    target_xml::number_registers(&item, &mut walk.next, &mut walk.map)?
                }
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
        let req = self.new_request();
        req.push(op);
        req.push(b'0' + ty as u8);
        req.push(b',');
        codec::push_hex_u64(req, addr);
        req.push(b',');
        codec::push_hex_u64(req, u64::from(kind));
        self.expect_ok(&format!("{}{},{addr:x},{kind:x}", op as char, ty as u8))
    }

    /// The server's thread ids (`qfThreadInfo`, `qsThreadInfo`…), as it spells them (QEMU:
    /// one per hart, `p01.01`, `p01.02`, …). Empty if the server does not answer. Must be halted.
    pub fn thread_ids(&mut self) -> Result<Vec<String>, RspError> {
        let mut ids = Vec::new();
        let mut query: &[u8] = b"qfThreadInfo";
        loop {
            let reply = match self.request_data(query) {
                Ok(r) => r,
                Err(RspError::Unsupported { .. } | RspError::ErrorReply { .. }) => break,
                Err(e) => return Err(e),
            };
            let Some(list) = reply.strip_prefix(b"m") else {
                break;
            };
            ids.extend(
                String::from_utf8_lossy(list)
                    .split(',')
                    .filter(|t| !t.is_empty())
                    .map(str::to_string),
            );
            if ids.len() > 4096 {
                break;
            }
            query = b"qsThreadInfo";
        }
        Ok(ids)
    }

    /// Makes thread `thread` the one register reads and writes refer to (`Hg`). Must be halted.
    pub fn select_thread(&mut self, thread: &str) -> Result<(), RspError> {
        self.request_ok(format!("Hg{thread}").as_bytes())
    }

    /// Runs a monitor command (`qRcmd`, hex-encoded) and returns its output: the `O` packets it
    /// produced (the last [`super::MAX_CONSOLE_BYTES`] of them, after a line saying how many
    /// bytes were dropped before), or a hex-encoded reply. Target must be halted.
    pub fn monitor(&mut self, command: &str) -> Result<String, RspError> {
        let req = self.new_request();
        req.extend_from_slice(b"qRcmd,");
        codec::push_hex(req, command.as_bytes());
        let console_before = self.console_mark();
        let name = format!("qRcmd ({command})");
        let kind = self.request(&name)?;
        let (output, lost) = self.console_since(console_before);
        let mut out = Vec::new();
        if lost > 0 {
            out.extend(format!("[{lost} bytes of earlier output dropped]\n").bytes());
        }
        out.extend_from_slice(&output);
        match kind {
            ReplyKind::Ok => {}
            ReplyKind::Data => match codec::decode_hex(self.reply()) {
                Some(text) => out.extend_from_slice(&text),
                None => return Err(RspError::malformed("qRcmd reply", self.reply(), "not hex")),
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
                self.reply(),
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
    /// instead of answering `OK` counts as detached. If a step fails, the next ones are still
    /// tried; if `D` is not confirmed, the connection is abandoned (which sends `D` without
    /// waiting); the first error is returned. Idempotent.
    pub fn detach(&mut self) -> Result<(), RspError> {
        if self.is_closed() {
            return Ok(());
        }
        let mut first_err = None;
        if self.is_running() {
            first_err = self.interrupt().err();
        }
        let halted = |c: &Self| !c.is_closed() && !c.is_running();
        if halted(self) && self.phy_mem_mode == Some(true) {
            // Left on, it only inconveniences the next debugger: detach regardless.
            if let Err(e) = self.set_phy_mem_mode(false) {
                first_err.get_or_insert(e);
            }
        }
        if halted(self) {
            let detached = match self.detach_request("D") {
                // QEMU keeps multiprocess mode from an earlier client (gdb) and then refuses a
                // plain `D` with E22: name the process, as such a client would.
                Err(RspError::ErrorReply { code: 0x22, .. }) => self.detach_request("D;1"),
                other => other,
            };
            match detached {
                Ok(()) => {
                    self.close();
                    return first_err.map_or(Ok(()), Err);
                }
                Err(e) => {
                    first_err.get_or_insert(e);
                }
            }
        }
        // `D` not confirmed: 0x03 (if the guest may run) and `D`, unanswered; a no-op if closed.
        self.abandon();
        Err(first_err.unwrap_or(RspError::Closed))
    }

    fn detach_request(&mut self, packet: &'static str) -> Result<(), RspError> {
        self.set_request(packet.as_bytes());
        match self.request(packet) {
            Ok(ReplyKind::Ok | ReplyKind::Empty) | Err(RspError::Closed) => Ok(()),
            Ok(ReplyKind::Error(code)) => Err(RspError::ErrorReply {
                code,
                request: packet.into(),
            }),
            Ok(ReplyKind::Data) => Err(RspError::malformed("D reply", self.reply(), "expected OK")),
            Err(e) => Err(e),
        }
    }
}

/// Reply expectations of the packet operations, on top of the transport's request.
impl RspClient {
    /// Sends `self.req`; Ok for a data or `OK` reply (in `self.rx`), else the typed error.
    pub(super) fn expect_data(&mut self, what: &str) -> Result<(), RspError> {
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
    pub(super) fn expect_data_for(
        &mut self,
        short: &str,
        what: impl Fn() -> String,
    ) -> Result<(), RspError> {
        match self.request(short)? {
            ReplyKind::Data | ReplyKind::Ok => Ok(()),
            ReplyKind::Empty => Err(RspError::Unsupported { request: what() }),
            ReplyKind::Error(code) => Err(RspError::ErrorReply {
                code,
                request: what(),
            }),
        }
    }

    /// Sends `self.req` and expects `OK`.
    pub(super) fn expect_ok(&mut self, what: &str) -> Result<(), RspError> {
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
                self.reply(),
                &format!("expected OK to {what}"),
            )),
        }
    }
}

/// The state of one target description walk: what it may still fetch, and the registers so far.
struct DescriptionWalk {
    annexes_left: usize,
    bytes_left: usize,
    /// The number the next unnumbered register gets.
    next: u64,
    map: RegisterMap,
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

/// The hart a gdbstub thread id names: QEMU numbers its CPUs' threads from 1 (`p01.02` or `2`
/// is hart 1). None for ids it cannot read (`-1`, `0`: all or any thread).
pub fn hart_of_thread(thread: &str) -> Option<u32> {
    let tid = thread.rsplit('.').next()?;
    let n = u32::from_str_radix(tid, 16).ok()?;
    n.checked_sub(1)
}
