//! `RspTarget`: the [`Target`] over a GDB remote protocol connection (QEMU's gdbstub in
//! practice). Owns the connection, the breakpoints it set, and the memory address mode.
//!
//! Address space: with [`MemoryMode::PreferPhysical`] and a server that supports
//! `Qqemu.PhyMemMode`, memory addresses are physical, whatever page table the stopped CPU uses.
//! The Leakscope kernel identity-maps RAM (kernel VA == PA), so kernel addresses work as they are.
//! Otherwise reads go through the current CPU's page table (virtual), which maps the kernel only
//! if the CPU stopped in a context that maps it.
//!
//! Lifetime: dropping an `RspTarget` detaches (breakpoints removed, guest running).

use std::collections::HashMap;
use std::time::Duration;

use super::{BreakpointKind, StopReason, Target, TargetError};
use crate::riscv::{self, Registers, GPRS, PC, REGISTER_BYTES};
use crate::rsp::{hart_of_thread, BreakpointType, RspClient, RspConfig, RspError, StopReply};

/// Which addresses `read_memory`/`write_memory` take.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MemoryMode {
    /// Physical addresses when the server supports `Qqemu.PhyMemMode`, else virtual.
    PreferPhysical,
    /// Always through the current CPU's page table.
    Virtual,
}

/// How to connect.
#[derive(Debug, Clone)]
pub struct RspTargetOptions {
    pub rsp: RspConfig,
    pub memory: MemoryMode,
    /// Resume the guest once connected (stubs halt it on attach). Off for a debugger that wants
    /// the guest stopped where it was found.
    pub resume_on_connect: bool,
}

impl Default for RspTargetOptions {
    fn default() -> Self {
        RspTargetOptions {
            rsp: RspConfig::default(),
            memory: MemoryMode::PreferPhysical,
            resume_on_connect: true,
        }
    }
}

/// See the module doc.
#[derive(Debug)]
pub struct RspTarget {
    client: RspClient,
    breakpoints: HashMap<u64, (BreakpointKind, u32)>,
    detached: bool,
    /// The server's thread ids (one per hart on QEMU), asked once.
    threads: Option<Vec<String>>,
    /// The thread `select_hart` chose since the last stop (None: the one that stopped).
    selected: Option<String>,
}

impl RspTarget {
    /// Connects to the stub at `addr` (`host:port`), selects the memory mode, and resumes the
    /// guest if `options.resume_on_connect`.
    pub fn connect(addr: &str, options: RspTargetOptions) -> Result<RspTarget, TargetError> {
        let client = RspClient::connect(addr, options.rsp)?;
        let mut target = RspTarget {
            client,
            breakpoints: HashMap::new(),
            detached: false,
            threads: None,
            selected: None,
        };
        if options.memory == MemoryMode::PreferPhysical {
            target.client.set_phy_mem_mode(true)?;
        }
        if options.resume_on_connect {
            target.client.cont()?;
        }
        Ok(target)
    }

    /// The underlying connection, for requests the trait does not cover (`monitor`, `p`,
    /// target description, console output).
    pub fn client(&mut self) -> &mut RspClient {
        &mut self.client
    }

    /// The underlying connection, read-only (its last stop reply, say).
    pub fn client_ref(&self) -> &RspClient {
        &self.client
    }

    /// True if memory addresses are physical (`Qqemu.PhyMemMode:1` in force).
    pub fn physical_memory(&self) -> bool {
        self.client.phy_mem_mode()
    }

    /// Switches between physical and virtual addresses. Returns false if the server has no
    /// physical mode (addresses stay virtual). Must be halted.
    pub fn set_physical_memory(&mut self, on: bool) -> Result<bool, TargetError> {
        self.check("switch the memory mode")?;
        Ok(self.client.set_phy_mem_mode(on)?)
    }

    fn check(&self, op: &'static str) -> Result<(), TargetError> {
        if self.detached || self.client.is_closed() {
            Err(TargetError::Detached)
        } else if self.client.is_running() {
            Err(TargetError::NotHalted { op })
        } else {
            Ok(())
        }
    }

    /// The server's thread ids, asked once (a server that does not answer has one thread).
    fn thread_ids(&mut self) -> Result<&[String], TargetError> {
        if self.threads.is_none() {
            self.threads = Some(self.client.thread_ids()?);
        }
        Ok(self.threads.as_deref().unwrap_or_default())
    }

    /// Continues `harts` alone, the others staying stopped (gdb's scheduler locking); every
    /// hart when the stub names no threads. Must be halted.
    pub fn resume_harts(&mut self, harts: &[u32]) -> Result<(), TargetError> {
        self.check("continue some harts")?;
        let threads: Vec<String> = self
            .thread_ids()?
            .iter()
            .filter(|t| hart_of_thread(t).is_some_and(|h| harts.contains(&h)))
            .cloned()
            .collect();
        if threads.is_empty() {
            return Target::resume(self);
        }
        self.selected = None;
        Ok(self.client.cont_threads(&threads)?)
    }

    /// The thread id of the last stop, as the server spelled it.
    fn stop_thread(&self) -> Option<String> {
        match self.client.last_stop()? {
            StopReply::Stopped { thread, .. } => thread.clone(),
            _ => None,
        }
    }

    /// [`Target::set_breakpoint`] with the instruction's length given (2 or 4, as gdb sends it
    /// in `Z0`): no memory read to find it, whatever the memory address mode.
    pub fn set_breakpoint_len(
        &mut self,
        addr: u64,
        len: u32,
    ) -> Result<BreakpointKind, TargetError> {
        self.check("set a breakpoint")?;
        if let Some(&(kind, _)) = self.breakpoints.get(&addr) {
            return Ok(kind);
        }
        self.insert_breakpoint(addr, len)
    }

    /// `Z0`, or `Z1` if the server refuses it; recorded for removal.
    fn insert_breakpoint(&mut self, addr: u64, len: u32) -> Result<BreakpointKind, TargetError> {
        let kind = match self
            .client
            .insert_breakpoint(BreakpointType::Software, addr, len)
        {
            Ok(()) => BreakpointKind::Software,
            Err(RspError::Unsupported { .. } | RspError::ErrorReply { .. }) => {
                self.client
                    .insert_breakpoint(BreakpointType::Hardware, addr, len)?;
                BreakpointKind::Hardware
            }
            Err(e) => return Err(e.into()),
        };
        self.breakpoints.insert(addr, (kind, len));
        Ok(kind)
    }

    /// Breakpoint length for `Z0`/`Z1` at `addr`: 2 for a compressed instruction, else 4.
    fn instruction_len(&mut self, addr: u64) -> u32 {
        let mut half = [0u8; 2];
        match self.client.read_memory(addr, &mut half) {
            Ok(()) => riscv::instruction_len(half[0]),
            Err(_) => 4,
        }
    }
}

fn stop_reason(reply: &StopReply) -> StopReason {
    match reply {
        StopReply::Stopped { signal: 2, .. } => StopReason::Interrupted,
        StopReply::Stopped { signal: 5, .. } => StopReason::Trap,
        StopReply::Stopped { signal, .. } => StopReason::Signal(*signal),
        // The client turns these into RspError::TargetGone before they reach us.
        StopReply::Exited(code) | StopReply::Terminated(code) => StopReason::Signal(*code),
    }
}

impl Target for RspTarget {
    fn halt(&mut self) -> Result<StopReason, TargetError> {
        if self.detached {
            return Err(TargetError::Detached);
        }
        if self.client.is_running() {
            self.selected = None;
        }
        Ok(match self.client.interrupt()? {
            Some(reply) => stop_reason(&reply),
            None => StopReason::AlreadyHalted,
        })
    }

    fn resume(&mut self) -> Result<(), TargetError> {
        if self.detached {
            return Err(TargetError::Detached);
        }
        if !self.client.is_running() {
            self.selected = None;
            self.client.cont()?;
        }
        Ok(())
    }

    fn is_halted(&self) -> bool {
        !self.detached && !self.client.is_closed() && !self.client.is_running()
    }

    fn read_memory(&mut self, addr: u64, buf: &mut [u8]) -> Result<(), TargetError> {
        self.check("read memory")?;
        let len = buf.len();
        self.client.read_memory(addr, buf).map_err(|e| match e {
            RspError::ErrorReply { code, .. } => TargetError::Unreadable {
                addr,
                len,
                code: Some(code),
            },
            e => e.into(),
        })
    }

    fn write_memory(&mut self, addr: u64, data: &[u8]) -> Result<(), TargetError> {
        self.check("write memory")?;
        let len = data.len();
        self.client.write_memory(addr, data).map_err(|e| match e {
            RspError::ErrorReply { code, .. } => TargetError::Unreadable {
                addr,
                len,
                code: Some(code),
            },
            e => e.into(),
        })
    }

    /// Uses `g`; if the reply is shorter than [`riscv::REGISTERS`] registers, reads each with `p`
    /// (through the target description, for QEMU).
    fn read_registers(&mut self) -> Result<Registers, TargetError> {
        self.check("read registers")?;
        let raw = self.client.read_registers_raw()?;
        if let Some(regs) = Registers::from_le_bytes(&raw) {
            return Ok(regs);
        }
        let pc_regnum = match self.client.target_description() {
            Ok(map) => map.by_name("pc").map_or(PC as u32, |r| r.regnum),
            Err(RspError::Unsupported { .. }) => PC as u32,
            Err(e) => return Err(e.into()),
        };
        let mut regs = Registers::default();
        for (n, regnum) in (0..GPRS as u32).chain([pc_regnum]).enumerate() {
            let bytes = self.client.read_register(regnum)?;
            let mut le = [0u8; REGISTER_BYTES];
            let k = bytes.len().min(REGISTER_BYTES);
            le[..k].copy_from_slice(&bytes[..k]);
            regs.set(n, u64::from_le_bytes(le));
        }
        Ok(regs)
    }

    /// Tries a software breakpoint (`Z0`), then a hardware one (`Z1`) if the server refuses.
    fn set_breakpoint(&mut self, addr: u64) -> Result<BreakpointKind, TargetError> {
        self.check("set a breakpoint")?;
        if let Some(&(kind, _)) = self.breakpoints.get(&addr) {
            return Ok(kind);
        }
        let len = self.instruction_len(addr);
        self.insert_breakpoint(addr, len)
    }

    fn remove_breakpoint(&mut self, addr: u64) -> Result<(), TargetError> {
        self.check("remove a breakpoint")?;
        let (kind, len) = *self
            .breakpoints
            .get(&addr)
            .ok_or(TargetError::NoBreakpoint { addr })?;
        let ty = match kind {
            BreakpointKind::Software => BreakpointType::Software,
            BreakpointKind::Hardware => BreakpointType::Hardware,
        };
        self.client.remove_breakpoint(ty, addr, len)?;
        self.breakpoints.remove(&addr);
        Ok(())
    }

    /// With several threads (harts), steps the selected one (else the one that stopped) alone
    /// (`vCont;s:THREAD`): the other harts stay where they are. With one, a plain `s`.
    fn step(&mut self) -> Result<StopReason, TargetError> {
        self.check("single-step")?;
        let thread = self.selected.take().or_else(|| self.stop_thread());
        let reply = match thread {
            Some(t) if self.thread_ids()?.len() > 1 => self.client.step_thread(&t)?,
            _ => self.client.step()?,
        };
        Ok(stop_reason(&reply))
    }

    fn stopped_hart(&self) -> Option<u32> {
        hart_of_thread(&self.stop_thread()?)
    }

    fn harts(&mut self) -> Result<Vec<u32>, TargetError> {
        self.check("list the harts")?;
        let harts: Vec<u32> = self
            .thread_ids()?
            .iter()
            .filter_map(|t| hart_of_thread(t))
            .collect();
        Ok(if harts.is_empty() { vec![0] } else { harts })
    }

    /// `Hg` to the hart's thread; `step` then steps that hart (kept until the next stop).
    fn select_hart(&mut self, hart: u32) -> Result<(), TargetError> {
        self.check("select a hart")?;
        let thread = self
            .thread_ids()?
            .iter()
            .find(|t| hart_of_thread(t) == Some(hart))
            .cloned();
        match thread {
            Some(t) => {
                self.client.select_thread(&t)?;
                self.selected = Some(t);
                Ok(())
            }
            None if hart == 0 => Ok(()),
            None => Err(TargetError::NoHart { hart }),
        }
    }

    fn selected_hart(&self) -> Option<u32> {
        match &self.selected {
            Some(t) => hart_of_thread(t),
            None => self.stopped_hart(),
        }
    }

    fn wait_for_stop(&mut self, timeout: Duration) -> Result<Option<StopReason>, TargetError> {
        if self.detached {
            return Err(TargetError::Detached);
        }
        if !self.client.is_running() {
            return Ok(Some(StopReason::AlreadyHalted));
        }
        Ok(self
            .client
            .wait_for_stop(timeout)?
            .as_ref()
            .map(stop_reason))
    }

    /// Runs a monitor command (`qRcmd`) and returns its output. Must be halted.
    fn monitor(&mut self, command: &str) -> Result<String, TargetError> {
        self.check("run a monitor command")?;
        Ok(self.client.monitor(command)?)
    }

    /// Removes our breakpoints (QEMU would on `D`, other stubs may not), then detaches.
    fn detach(&mut self) -> Result<(), TargetError> {
        if self.detached {
            return Ok(());
        }
        self.detached = true;
        let mut first_err = None;
        if !self.breakpoints.is_empty() && !self.client.is_closed() {
            if let Err(e) = self.client.interrupt() {
                first_err.get_or_insert(e);
            }
            for (addr, (kind, len)) in std::mem::take(&mut self.breakpoints) {
                let ty = match kind {
                    BreakpointKind::Software => BreakpointType::Software,
                    BreakpointKind::Hardware => BreakpointType::Hardware,
                };
                if let Err(e) = self.client.remove_breakpoint(ty, addr, len) {
                    first_err.get_or_insert(e);
                }
            }
        }
        if let Err(e) = self.client.detach() {
            first_err.get_or_insert(e);
        }
        match first_err {
            Some(e) => Err(e.into()),
            None => Ok(()),
        }
    }
}

impl Drop for RspTarget {
    /// Never leave the guest halted or with our breakpoints in it.
    fn drop(&mut self) {
        let _ = self.detach();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rsp::client_tests::{config, serve};

    fn options() -> RspTargetOptions {
        RspTargetOptions {
            rsp: config(),
            memory: MemoryMode::Virtual,
            resume_on_connect: false,
        }
    }

    #[test]
    fn breakpoint_falls_back_to_hardware_and_is_removed_as_such() {
        let (addr, server) = serve(|p| {
            p.qemu_handshake("1000");
            assert_eq!(p.packet(), b"m80200000,2");
            p.reply(b"1300"); // addi: a 4-byte instruction
            assert_eq!(p.packet(), b"Z0,80200000,4");
            p.reply(b"");
            assert_eq!(p.packet(), b"Z1,80200000,4");
            p.reply(b"OK");
            assert_eq!(p.packet(), b"z1,80200000,4");
            p.reply(b"OK");
            assert_eq!(p.packet(), b"D");
            p.reply(b"OK");
        });
        let mut t = RspTarget::connect(&addr, options()).unwrap();
        assert_eq!(
            t.set_breakpoint(0x8020_0000).unwrap(),
            BreakpointKind::Hardware
        );
        assert_eq!(
            t.set_breakpoint(0x8020_0000).unwrap(),
            BreakpointKind::Hardware,
            "setting twice sends nothing"
        );
        t.remove_breakpoint(0x8020_0000).unwrap();
        t.detach().unwrap();
        server.join().unwrap();
    }

    #[test]
    fn compressed_instruction_gets_a_two_byte_breakpoint_removed_at_detach() {
        let (addr, server) = serve(|p| {
            p.qemu_handshake("1000");
            assert_eq!(p.packet(), b"m80200002,2");
            p.reply(b"0100"); // c.nop
            assert_eq!(p.packet(), b"Z0,80200002,2");
            p.reply(b"OK");
            assert_eq!(p.packet(), b"z0,80200002,2");
            p.reply(b"OK");
            assert_eq!(p.packet(), b"D");
            p.reply(b"OK");
        });
        let mut t = RspTarget::connect(&addr, options()).unwrap();
        assert_eq!(
            t.set_breakpoint(0x8020_0002).unwrap(),
            BreakpointKind::Software
        );
        drop(t);
        server.join().unwrap();
    }

    #[test]
    fn prefers_physical_memory_and_resumes_on_connect() {
        let (addr, server) = serve(|p| {
            p.qemu_handshake("1000");
            assert_eq!(p.packet(), b"Qqemu.PhyMemMode:1");
            p.reply(b"OK");
            assert_eq!(p.packet(), b"c");
            assert_eq!(p.event(), crate::rsp::client_tests::Ev::Interrupt);
            p.reply(b"T02thread:p01.01;");
            assert_eq!(p.packet(), b"m80001000,8");
            p.reply(b"0102030405060708");
            assert_eq!(p.packet(), b"c");
            // Detach: interrupt, mode back to virtual for the next debugger, then D.
            assert_eq!(p.event(), crate::rsp::client_tests::Ev::Interrupt);
            p.reply(b"T02thread:p01.01;");
            assert_eq!(p.packet(), b"Qqemu.PhyMemMode:0");
            p.reply(b"OK");
            assert_eq!(p.packet(), b"D");
            p.reply(b"OK");
        });
        let mut opts = options();
        opts.memory = MemoryMode::PreferPhysical;
        opts.resume_on_connect = true;
        let mut t = RspTarget::connect(&addr, opts).unwrap();
        assert!(t.physical_memory());
        assert!(!t.is_halted());
        let mut g = crate::target::HaltGuard::new(&mut t).unwrap();
        let mut word = [0u8; 8];
        g.read_memory(0x8000_1000, &mut word).unwrap();
        assert_eq!(word, [1, 2, 3, 4, 5, 6, 7, 8]);
        drop(g);
        assert!(!t.is_halted());
        drop(t);
        server.join().unwrap();
    }

    #[test]
    fn a_malformed_stop_reply_never_leaves_the_guest_halted() {
        use crate::rsp::client_tests::Ev;
        let (addr, server) = serve(|p| {
            p.qemu_handshake("1000");
            assert_eq!(p.packet(), b"c");
            assert_eq!(p.event(), Ev::Interrupt);
            p.reply(b"T05thread");
            // The inspector must leave the guest running: `0x03` (ignored by a stopped QEMU),
            // then `D` (no `OK` awaited).
            assert_eq!(p.event(), Ev::Interrupt);
            assert_eq!(p.event(), Ev::Packet(b"D".to_vec()));
            assert_eq!(p.event(), Ev::Eof);
        });
        let mut opts = options();
        opts.resume_on_connect = true;
        let mut t = RspTarget::connect(&addr, opts).unwrap();
        assert!(crate::target::HaltGuard::new(&mut t).is_err());
        assert!(!t.is_halted());
        // A later guard must not take the guest for halted by someone else and skip the resume.
        match crate::target::HaltGuard::new(&mut t) {
            Ok(g) => panic!(
                "halted over a dead connection; will resume: {}",
                g.will_resume()
            ),
            Err(e) => assert!(matches!(e, TargetError::Rsp(RspError::Closed)), "{e}"),
        }
        drop(t);
        server.join().unwrap();
    }
}
