//! The client's reads and writes of a guest it holds: registers, memory, breakpoints,
//! watchpoints and monitor commands, each refused unless the client holds the guest
//! ([`Arbiter::client_op`]), on the hart the client names (its `thread N`).

use super::arbiter::{Arbiter, State};
use super::guest::{Guest, WatchKind};
use crate::riscv::Registers;
use crate::target::TargetError;

impl<G: Guest> Arbiter<G> {
    /// [`client_op`](Self::client_op) with `hart` selected for `f` (its registers, its MMU
    /// for virtual addresses); None or the hart that stopped: no switch. The hart that stopped
    /// is selected again after, so the arbiter's own decisions (a breakpoint at the pc) stay
    /// about it, and its cached registers with it.
    fn client_op_on<R>(
        &self,
        op: &'static str,
        hart: Option<u32>,
        f: impl FnOnce(&mut State<G>) -> Result<R, TargetError>,
    ) -> Result<R, TargetError> {
        self.client_op(op, |s| {
            let Some(h) = s.other_hart(hart)? else {
                return f(s);
            };
            let stopped = s.guest()?.stopped_hart().unwrap_or(0);
            let cached = s.regs.take();
            s.guest()?.select_hart(h)?;
            let r = f(s);
            s.regs = None;
            let back = s.guest()?.select_hart(stopped);
            s.regs = cached;
            let r = r?;
            back?;
            Ok(r)
        })
    }

    pub fn client_read_registers(&self) -> Result<Registers, TargetError> {
        self.client_read_registers_on(None)
    }

    /// The registers of `hart` (None: the one that stopped).
    pub fn client_read_registers_on(&self, hart: Option<u32>) -> Result<Registers, TargetError> {
        self.client_op_on("read registers", hart, |s| s.registers())
    }

    pub fn client_write_register(&self, regnum: usize, value: u64) -> Result<(), TargetError> {
        self.client_write_register_on(None, regnum, value)
    }

    /// Writes register `regnum` of `hart` (None: the one that stopped).
    pub fn client_write_register_on(
        &self,
        hart: Option<u32>,
        regnum: usize,
        value: u64,
    ) -> Result<(), TargetError> {
        self.client_op_on("write a register", hart, |s| {
            s.trapped_at = None;
            s.moved();
            s.guest()?.write_register(regnum, value)
        })
    }

    /// Register `regnum` of `hart` as the stub numbers it (see [`Guest::read_register_raw`]).
    pub fn client_read_register_raw_on(
        &self,
        hart: Option<u32>,
        regnum: u32,
    ) -> Result<Vec<u8>, TargetError> {
        self.client_op_on("read a register", hart, |s| {
            s.guest()?.read_register_raw(regnum)
        })
    }

    /// Writes register `regnum` of `hart` as the stub numbers it. A CSR may change how memory
    /// translates (`satp`) or where the hart resumes: what is known of the stop is dropped.
    pub fn client_write_register_raw_on(
        &self,
        hart: Option<u32>,
        regnum: u32,
        bytes: &[u8],
    ) -> Result<(), TargetError> {
        self.client_op_on("write a register", hart, |s| {
            s.trapped_at = None;
            s.moved();
            s.client_reads.clear();
            s.guest()?.write_register_raw(regnum, bytes)
        })
    }

    /// The stub's target description document `annex` (see [`Guest::features_xml`]).
    pub fn client_features_xml(&self, annex: &str) -> Result<Vec<u8>, TargetError> {
        self.client_op("read the target description", |s| {
            s.guest()?.features_xml(annex)
        })
    }

    pub fn client_read_memory(&self, addr: u64, buf: &mut [u8]) -> Result<(), TargetError> {
        self.client_read_memory_on(None, addr, buf)
    }

    /// Reads memory at a virtual address as `hart` sees it (None: the one that stopped).
    pub fn client_read_memory_on(
        &self,
        hart: Option<u32>,
        addr: u64,
        buf: &mut [u8],
    ) -> Result<(), TargetError> {
        self.client_op_on("read memory", hart, |s| {
            s.memory_mode(false)?;
            s.guest()?;
            let State {
                guest,
                client_reads,
                ..
            } = s;
            let g = guest.as_mut().expect("connected above");
            client_reads.read(addr, buf, |at, part| g.read_memory(at, part))
        })
    }

    pub fn client_write_memory(&self, addr: u64, data: &[u8]) -> Result<(), TargetError> {
        self.client_write_memory_on(None, addr, data)
    }

    /// Writes memory at a virtual address as `hart` sees it (None: the one that stopped).
    pub fn client_write_memory_on(
        &self,
        hart: Option<u32>,
        addr: u64,
        data: &[u8],
    ) -> Result<(), TargetError> {
        self.client_op_on("write memory", hart, |s| {
            s.memory_mode(false)?;
            s.client_reads.clear();
            s.guest()?.write_memory(addr, data)
        })
    }

    /// Adds a client breakpoint (a no-op if it has one there) on an instruction of `len` bytes
    /// (None: looked up); shared with the sampler's at the same address.
    pub fn client_add_breakpoint(&self, addr: u64, len: Option<u32>) -> Result<(), TargetError> {
        self.client_op("set a breakpoint", |s| {
            if s.client_mut()?.breakpoints.insert(addr, len).is_some() {
                return Ok(());
            }
            s.sync_breakpoint(addr).inspect_err(|_| {
                if let Some(c) = s.client.as_mut() {
                    c.breakpoints.remove(&addr);
                }
            })
        })
    }

    /// Removes a client breakpoint; false if it had none there. The sampler's at the same
    /// address stays.
    pub fn client_remove_breakpoint(&self, addr: u64) -> Result<bool, TargetError> {
        self.client_op("remove a breakpoint", |s| {
            if s.client_mut()?.breakpoints.remove(&addr).is_none() {
                return Ok(false);
            }
            s.sync_breakpoint(addr)?;
            Ok(true)
        })
    }

    pub fn client_add_watchpoint(
        &self,
        kind: WatchKind,
        addr: u64,
        len: u64,
    ) -> Result<(), TargetError> {
        self.client_op("set a watchpoint", |s| {
            s.memory_mode(false)?;
            s.guest()?.insert_watchpoint(kind, addr, len)?;
            s.client_mut()?.watchpoints.insert((kind, addr, len));
            Ok(())
        })
    }

    pub fn client_remove_watchpoint(
        &self,
        kind: WatchKind,
        addr: u64,
        len: u64,
    ) -> Result<bool, TargetError> {
        self.client_op("remove a watchpoint", |s| {
            if !s.client_mut()?.watchpoints.remove(&(kind, addr, len)) {
                return Ok(false);
            }
            s.guest()?.remove_watchpoint(kind, addr, len)?;
            Ok(true)
        })
    }

    /// Passes a `monitor` command to the stub (QEMU's human monitor).
    pub fn client_monitor(&self, command: &str) -> Result<String, TargetError> {
        self.client_op("run a monitor command", |s| {
            s.memory_mode(false)?;
            s.client_reads.clear();
            s.guest()?.monitor(command)
        })
    }
}
