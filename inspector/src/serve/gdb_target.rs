//! The gdb client's side of the [`Arbiter`]: a `gdbstub` [`Target`] (RISC-V 64 core registers
//! and target description from `gdbstub_arch`) whose every request goes through the arbiter,
//! with one gdb thread per hart (thread id = hart id + 1, as QEMU numbers them: `info threads`,
//! `thread N`, and stop replies name the hart that stopped; a step steps the thread's hart
//! alone),
//! the blocking event loop that waits for the client's stops and its Ctrl-C, and [`BufConn`],
//! a buffered TCP connection (gdbstub reads and writes a byte at a time).

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::fd::{AsFd, BorrowedFd};
use std::sync::{Arc, Mutex};

use gdbstub::common::{Signal, Tid};
use gdbstub::conn::{Connection, ConnectionExt};
use gdbstub::stub::{run_blocking, MultiThreadStopReason};
use gdbstub::target::ext::base::multithread::{
    MultiThreadBase, MultiThreadResume, MultiThreadResumeOps, MultiThreadSchedulerLocking,
    MultiThreadSchedulerLockingOps, MultiThreadSingleStep, MultiThreadSingleStepOps,
};
use gdbstub::target::ext::base::single_register_access::{
    SingleRegisterAccess, SingleRegisterAccessOps,
};
use gdbstub::target::ext::base::BaseOps;
use gdbstub::target::ext::breakpoints::{
    Breakpoints, BreakpointsOps, HwBreakpoint, HwBreakpointOps, HwWatchpoint, HwWatchpointOps,
    SwBreakpoint, SwBreakpointOps, WatchKind as GdbWatchKind,
};
use gdbstub::target::ext::monitor_cmd::{ConsoleOutput, MonitorCmd, MonitorCmdOps};
use gdbstub::target::ext::target_description_xml_override::{
    TargetDescriptionXmlOverride, TargetDescriptionXmlOverrideOps,
};
use gdbstub::target::ext::thread_extra_info::{ThreadExtraInfo, ThreadExtraInfoOps};
use gdbstub::target::{Target, TargetError as GdbError, TargetResult};
use gdbstub_arch::riscv::reg::id::RiscvRegId;
use gdbstub_arch::riscv::reg::RiscvCoreRegs;
use gdbstub_arch::riscv::Riscv64;

use super::arbiter::{Arbiter, ClientNext, ClientStop};
use super::guest::{Guest, WatchKind};
use super::wake;
use crate::riscv::{GPRS, PC};
use crate::rsp::spin;
use crate::target::TargetError;

/// The client's view of the guest. Errors that mean the connection to QEMU is gone end the
/// session (fatal); others are `E` replies.
pub struct ClientTarget<G: Guest> {
    pub arbiter: Arc<Arbiter<G>>,
    /// The hart the next resume steps (gdb's resume actions), None: continue.
    step: Option<u32>,
    /// The harts gdb's resume actions continue by name, and whether the others stay stopped
    /// (no wildcard continue: gdb's scheduler locking).
    continues: Vec<u32>,
    locked: bool,
    /// The stub's target description documents by annex, fetched once per client (gdb reads
    /// each in chunks).
    described: Mutex<HashMap<Vec<u8>, Arc<[u8]>>>,
}

impl<G: Guest> ClientTarget<G> {
    pub fn new(arbiter: Arc<Arbiter<G>>) -> ClientTarget<G> {
        ClientTarget {
            arbiter,
            step: None,
            continues: Vec::new(),
            locked: false,
            described: Mutex::new(HashMap::new()),
        }
    }

    /// The document `annex` of the stub's description; for `target.xml`, when the stub has
    /// none, `gdbstub_arch`'s (the integer registers alone).
    fn description(&self, annex: &[u8]) -> Result<Arc<[u8]>, TargetError> {
        let mut known = self.described.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(doc) = known.get(annex) {
            return Ok(doc.clone());
        }
        let name = String::from_utf8_lossy(annex);
        let doc: Arc<[u8]> = match self.arbiter.client_features_xml(&name) {
            Ok(doc) => doc.into(),
            Err(TargetError::Rsp(crate::rsp::RspError::Unsupported { .. }))
                if annex == b"target.xml" =>
            {
                <Riscv64 as gdbstub::arch::Arch>::target_description_xml()
                    .unwrap_or("")
                    .as_bytes()
                    .into()
            }
            Err(e) => return Err(e),
        };
        known.insert(annex.to_vec(), doc.clone());
        Ok(doc)
    }
}

/// gdb gets the stub's own description (QEMU's: the integer, FP and CSR registers, and the
/// architecture's name), so it knows the machine without the ELF and can ask for every
/// register QEMU has; the integer registers and pc are the `g` packet's in both.
impl<G: Guest> TargetDescriptionXmlOverride for ClientTarget<G> {
    fn target_description_xml(
        &self,
        annex: &[u8],
        offset: u64,
        length: usize,
        buf: &mut [u8],
    ) -> TargetResult<usize, Self> {
        let doc = self.description(annex).map_err(gdb_err)?;
        let start = usize::try_from(offset).unwrap_or(usize::MAX).min(doc.len());
        let n = length.min(buf.len()).min(doc.len() - start);
        buf[..n].copy_from_slice(&doc[start..start + n]);
        Ok(n)
    }
}

/// The gdb thread of `hart`.
pub fn tid_of(hart: u32) -> Tid {
    Tid::new(hart as usize + 1).expect("hart + 1 is not zero")
}

/// The hart of gdb thread `tid`.
pub fn hart_of(tid: Tid) -> Option<u32> {
    u32::try_from(tid.get() - 1).ok()
}

fn gdb_err(e: TargetError) -> GdbError<String> {
    match e {
        TargetError::Unreadable { .. } => GdbError::Errno(14),
        TargetError::NotHalted { .. } | TargetError::HeldElsewhere { .. } => GdbError::NonFatal,
        TargetError::NoBreakpoint { .. } => GdbError::NonFatal,
        TargetError::Rsp(crate::rsp::RspError::ErrorReply { code, .. }) => GdbError::Errno(code),
        TargetError::Rsp(crate::rsp::RspError::Unsupported { .. }) => GdbError::NonFatal,
        e => GdbError::Fatal(format!("the connection to the guest failed: {e}")),
    }
}

fn watch_kind(kind: GdbWatchKind) -> WatchKind {
    match kind {
        GdbWatchKind::Write => WatchKind::Write,
        GdbWatchKind::Read => WatchKind::Read,
        GdbWatchKind::ReadWrite => WatchKind::Access,
    }
}

fn gdb_watch_kind(kind: WatchKind) -> GdbWatchKind {
    match kind {
        WatchKind::Write => GdbWatchKind::Write,
        WatchKind::Read => GdbWatchKind::Read,
        WatchKind::Access => GdbWatchKind::ReadWrite,
    }
}

/// What gdb is told for a stop of the client's on `hart` (None: the stub does not say;
/// thread 1 then). Every reply names the thread, so gdb switches to the hart that stopped.
pub fn stop_reason(stop: ClientStop, hart: Option<u32>) -> MultiThreadStopReason<u64> {
    let tid = tid_of(hart.unwrap_or(0));
    let signal = |signal| MultiThreadStopReason::SignalWithThread { tid, signal };
    match stop {
        ClientStop::Breakpoint => MultiThreadStopReason::SwBreak(tid),
        ClientStop::Step => signal(Signal::SIGTRAP),
        ClientStop::Interrupted => signal(Signal::SIGINT),
        ClientStop::Watch { kind, addr } => MultiThreadStopReason::Watch {
            tid,
            kind: gdb_watch_kind(kind),
            addr,
        },
        ClientStop::Signal(n) => signal(Signal(n)),
    }
}

impl<G: Guest> Target for ClientTarget<G> {
    type Arch = Riscv64;
    type Error = String;

    fn base_ops(&mut self) -> BaseOps<'_, Self::Arch, Self::Error> {
        BaseOps::MultiThread(self)
    }

    fn support_breakpoints(&mut self) -> Option<BreakpointsOps<'_, Self>> {
        Some(self)
    }

    fn support_monitor_cmd(&mut self) -> Option<MonitorCmdOps<'_, Self>> {
        Some(self)
    }

    fn support_target_description_xml_override(
        &mut self,
    ) -> Option<TargetDescriptionXmlOverrideOps<'_, Self>> {
        Some(self)
    }

    // The guest's own breakpoints (ebreak) are not ours to emulate: QEMU reports them.
    fn guard_rail_implicit_sw_breakpoints(&self) -> bool {
        true
    }
}

impl<G: Guest> MultiThreadBase for ClientTarget<G> {
    fn read_registers(
        &mut self,
        regs: &mut RiscvCoreRegs<u64>,
        tid: Tid,
    ) -> TargetResult<(), Self> {
        let r = self
            .arbiter
            .client_read_registers_on(hart_of(tid))
            .map_err(gdb_err)?;
        regs.x.copy_from_slice(r.gprs());
        regs.pc = r.pc();
        Ok(())
    }

    /// `G`: writes the registers that differ from the guest's.
    fn write_registers(&mut self, regs: &RiscvCoreRegs<u64>, tid: Tid) -> TargetResult<(), Self> {
        let hart = hart_of(tid);
        let now = self
            .arbiter
            .client_read_registers_on(hart)
            .map_err(gdb_err)?;
        let wanted = regs.x.iter().copied().chain([regs.pc]);
        for (n, value) in wanted.enumerate() {
            if n != 0 && now.get(n) != Some(value) {
                self.arbiter
                    .client_write_register_on(hart, n, value)
                    .map_err(gdb_err)?;
            }
        }
        Ok(())
    }

    fn read_addrs(&mut self, start: u64, data: &mut [u8], tid: Tid) -> TargetResult<usize, Self> {
        self.arbiter
            .client_read_memory_on(hart_of(tid), start, data)
            .map_err(gdb_err)?;
        Ok(data.len())
    }

    fn write_addrs(&mut self, start: u64, data: &[u8], tid: Tid) -> TargetResult<(), Self> {
        self.arbiter
            .client_write_memory_on(hart_of(tid), start, data)
            .map_err(gdb_err)
    }

    /// One thread per hart; hart 0 alone when the guest cannot say.
    fn list_active_threads(&mut self, active: &mut dyn FnMut(Tid)) -> Result<(), Self::Error> {
        let harts = self.arbiter.client_harts().unwrap_or_else(|_| vec![0]);
        for h in harts {
            active(tid_of(h));
        }
        Ok(())
    }

    fn support_resume(&mut self) -> Option<MultiThreadResumeOps<'_, Self>> {
        Some(self)
    }

    fn support_single_register_access(&mut self) -> Option<SingleRegisterAccessOps<'_, Tid, Self>> {
        Some(self)
    }

    fn support_thread_extra_info(&mut self) -> Option<ThreadExtraInfoOps<'_, Self>> {
        Some(self)
    }
}

impl<G: Guest> ThreadExtraInfo for ClientTarget<G> {
    /// `hart N` (`info threads` shows it beside the thread).
    fn thread_extra_info(&self, tid: Tid, buf: &mut [u8]) -> Result<usize, Self::Error> {
        let text = format!("hart {}", tid.get() - 1);
        let n = text.len().min(buf.len());
        buf[..n].copy_from_slice(&text.as_bytes()[..n]);
        Ok(n)
    }
}

fn regnum(id: RiscvRegId<u64>) -> Option<usize> {
    match id {
        RiscvRegId::Gpr(i) if usize::from(i) < GPRS => Some(usize::from(i)),
        RiscvRegId::Pc => Some(PC),
        _ => None,
    }
}

/// The number gdb (and so the stub, whose description gdb has) gives a register beyond the
/// integer ones: the inverse of `gdbstub_arch`'s `RiscvRegId::from_raw_id` (f0.. at 33, CSR
/// `c` at 65 + c, the privilege level at 4161), so `p N` reaches the stub as `p N`.
fn stub_regnum(id: RiscvRegId<u64>) -> Option<u32> {
    match id {
        RiscvRegId::Fpr(i) => Some(33 + u32::from(i)),
        RiscvRegId::Csr(c) => Some(65 + u32::from(c)),
        RiscvRegId::Priv => Some(4161),
        _ => None,
    }
}

impl<G: Guest> SingleRegisterAccess<Tid> for ClientTarget<G> {
    fn read_register(
        &mut self,
        tid: Tid,
        reg_id: RiscvRegId<u64>,
        buf: &mut [u8],
    ) -> TargetResult<usize, Self> {
        let Some(n) = regnum(reg_id) else {
            // FP registers, CSRs, the privilege level: the stub's own, by its number.
            let raw = stub_regnum(reg_id).ok_or(GdbError::NonFatal)?;
            let bytes = self
                .arbiter
                .client_read_register_raw_on(hart_of(tid), raw)
                .map_err(gdb_err)?;
            let k = bytes.len().min(buf.len());
            buf[..k].copy_from_slice(&bytes[..k]);
            return Ok(k);
        };
        let regs = self
            .arbiter
            .client_read_registers_on(hart_of(tid))
            .map_err(gdb_err)?;
        let v = regs.get(n).ok_or(GdbError::NonFatal)?;
        let bytes = v.to_le_bytes();
        let k = bytes.len().min(buf.len());
        buf[..k].copy_from_slice(&bytes[..k]);
        Ok(k)
    }

    fn write_register(
        &mut self,
        tid: Tid,
        reg_id: RiscvRegId<u64>,
        val: &[u8],
    ) -> TargetResult<(), Self> {
        let Some(n) = regnum(reg_id) else {
            let raw = stub_regnum(reg_id).ok_or(GdbError::NonFatal)?;
            return self
                .arbiter
                .client_write_register_raw_on(hart_of(tid), raw, val)
                .map_err(gdb_err);
        };
        let mut le = [0u8; 8];
        let k = val.len().min(8);
        le[..k].copy_from_slice(&val[..k]);
        self.arbiter
            .client_write_register_on(hart_of(tid), n, u64::from_le_bytes(le))
            .map_err(gdb_err)
    }
}

/// Signals are not delivered (a bare-metal guest has none): continuing with one continues.
/// A resume with a step action steps that hart alone (the others stay stopped, as QEMU does);
/// else, with scheduler locking (no wildcard continue), the harts named continue alone; else
/// every hart continues.
impl<G: Guest> MultiThreadResume for ClientTarget<G> {
    fn resume(&mut self) -> Result<(), Self::Error> {
        let continues = std::mem::take(&mut self.continues);
        let locked = std::mem::replace(&mut self.locked, false);
        let r = match self.step.take() {
            Some(h) => self.arbiter.client_step_hart(Some(h)),
            None if locked && !continues.is_empty() => {
                self.arbiter.client_resume_harts(Some(continues))
            }
            None => self.arbiter.client_resume(),
        };
        r.map_err(|e| e.to_string())
    }

    fn clear_resume_actions(&mut self) -> Result<(), Self::Error> {
        self.step = None;
        self.continues.clear();
        self.locked = false;
        Ok(())
    }

    fn set_resume_action_continue(
        &mut self,
        tid: Tid,
        _signal: Option<Signal>,
    ) -> Result<(), Self::Error> {
        if let Some(h) = hart_of(tid) {
            self.continues.push(h);
        }
        Ok(())
    }

    fn support_single_step(&mut self) -> Option<MultiThreadSingleStepOps<'_, Self>> {
        Some(self)
    }

    fn support_scheduler_locking(&mut self) -> Option<MultiThreadSchedulerLockingOps<'_, Self>> {
        Some(self)
    }
}

/// gdb's resume without a wildcard continue (`vCont;s:2`, `vCont;c:1`): only the threads
/// named run, as QEMU's stub does.
impl<G: Guest> MultiThreadSchedulerLocking for ClientTarget<G> {
    fn set_resume_action_scheduler_lock(&mut self) -> Result<(), Self::Error> {
        self.locked = true;
        Ok(())
    }
}

impl<G: Guest> MultiThreadSingleStep for ClientTarget<G> {
    fn set_resume_action_step(
        &mut self,
        tid: Tid,
        _signal: Option<Signal>,
    ) -> Result<(), Self::Error> {
        self.step = hart_of(tid);
        Ok(())
    }
}

impl<G: Guest> Breakpoints for ClientTarget<G> {
    fn support_sw_breakpoint(&mut self) -> Option<SwBreakpointOps<'_, Self>> {
        Some(self)
    }
    fn support_hw_breakpoint(&mut self) -> Option<HwBreakpointOps<'_, Self>> {
        Some(self)
    }
    fn support_hw_watchpoint(&mut self) -> Option<HwWatchpointOps<'_, Self>> {
        Some(self)
    }
}

impl<G: Guest> SwBreakpoint for ClientTarget<G> {
    /// `kind` is the instruction's length (2 or 4) on RISC-V.
    fn add_sw_breakpoint(&mut self, addr: u64, kind: usize) -> TargetResult<bool, Self> {
        let len = u32::try_from(kind).ok().filter(|&k| k == 2 || k == 4);
        self.arbiter
            .client_add_breakpoint(addr, len)
            .map_err(gdb_err)?;
        Ok(true)
    }

    fn remove_sw_breakpoint(&mut self, addr: u64, _kind: usize) -> TargetResult<bool, Self> {
        self.arbiter.client_remove_breakpoint(addr).map_err(gdb_err)
    }
}

/// On QEMU (TCG) software and hardware breakpoints are the same thing; both go through the
/// arbiter's one set, installed software first, hardware if the stub refuses.
impl<G: Guest> HwBreakpoint for ClientTarget<G> {
    fn add_hw_breakpoint(&mut self, addr: u64, kind: usize) -> TargetResult<bool, Self> {
        self.add_sw_breakpoint(addr, kind)
    }

    fn remove_hw_breakpoint(&mut self, addr: u64, kind: usize) -> TargetResult<bool, Self> {
        self.remove_sw_breakpoint(addr, kind)
    }
}

impl<G: Guest> HwWatchpoint for ClientTarget<G> {
    fn add_hw_watchpoint(
        &mut self,
        addr: u64,
        len: u64,
        kind: GdbWatchKind,
    ) -> TargetResult<bool, Self> {
        match self
            .arbiter
            .client_add_watchpoint(watch_kind(kind), addr, len)
        {
            Ok(()) => Ok(true),
            // The stub has none: gdb falls back to software watchpoints.
            Err(TargetError::Rsp(
                crate::rsp::RspError::Unsupported { .. } | crate::rsp::RspError::ErrorReply { .. },
            )) => Ok(false),
            Err(e) => Err(gdb_err(e)),
        }
    }

    fn remove_hw_watchpoint(
        &mut self,
        addr: u64,
        len: u64,
        kind: GdbWatchKind,
    ) -> TargetResult<bool, Self> {
        self.arbiter
            .client_remove_watchpoint(watch_kind(kind), addr, len)
            .map_err(gdb_err)
    }
}

impl<G: Guest> MonitorCmd for ClientTarget<G> {
    fn handle_monitor_cmd(
        &mut self,
        cmd: &[u8],
        mut out: ConsoleOutput<'_>,
    ) -> Result<(), Self::Error> {
        let command = String::from_utf8_lossy(cmd);
        match self.arbiter.client_monitor(&command) {
            Ok(text) => out.write_raw(text.as_bytes()),
            Err(e) => out.write_raw(format!("inspector: monitor {command}: {e}\n").as_bytes()),
        }
        Ok(())
    }
}

/// The blocking event loop: waits in poll(2) for the client's stop (the connection to the guest
/// readable, or the sampler's side waking it with one) and for bytes from gdb (Ctrl-C) at once,
/// without holding the arbiter's lock meanwhile.
pub enum EventLoop<G: Guest> {
    #[allow(dead_code)]
    Never(std::convert::Infallible, std::marker::PhantomData<G>),
}

impl<G: Guest> run_blocking::BlockingEventLoop for EventLoop<G> {
    type Target = ClientTarget<G>;
    type Connection = BufConn;
    type StopReason = MultiThreadStopReason<u64>;

    fn wait_for_stop_reason(
        target: &mut ClientTarget<G>,
        conn: &mut BufConn,
    ) -> Result<
        run_blocking::Event<MultiThreadStopReason<u64>>,
        run_blocking::WaitForStopReasonError<String, std::io::Error>,
    > {
        use run_blocking::{Event, WaitForStopReasonError as E};
        conn.flush().map_err(E::Connection)?;
        loop {
            let (guest, timeout) = match target.arbiter.client_next() {
                Ok(ClientNext::Stop(stop)) => {
                    let hart = target.arbiter.stopped_hart();
                    return Ok(Event::TargetStopped(stop_reason(stop, hart)));
                }
                Ok(ClientNext::Wait { guest, timeout }) => (guest, timeout),
                Err(e) => return Err(E::Target(e.to_string())),
            };
            if !conn.has_buffered() {
                let guest = guest.as_ref().map(|fd| fd.as_fd());
                let waker = target.arbiter.client_waker();
                if !wake::wait(Some(conn.as_fd()), guest, waker, timeout).gdb {
                    continue;
                }
            }
            let byte = ConnectionExt::read(conn).map_err(E::Connection)?;
            return Ok(Event::IncomingData(byte));
        }
    }

    fn on_interrupt(
        target: &mut ClientTarget<G>,
    ) -> Result<Option<MultiThreadStopReason<u64>>, String> {
        let stop = target
            .arbiter
            .client_interrupt()
            .map_err(|e| e.to_string())?;
        Ok(Some(stop_reason(stop, target.arbiter.stopped_hart())))
    }
}

/// A TCP connection with buffers both ways: gdbstub reads and writes a byte at a time, which on
/// a bare socket is a system call (and, with TCP_NODELAY, a segment) per byte. Replies go out
/// whole on [`Connection::flush`] (gdbstub flushes each one) and before any read; the socket
/// stays blocking: [`ConnectionExt::peek`] asks poll(2) whether a read would wait.
pub struct BufConn {
    stream: TcpStream,
    out: Vec<u8>,
    inbuf: Box<[u8]>,
    start: usize,
    end: usize,
}

impl BufConn {
    pub fn new(stream: TcpStream) -> BufConn {
        BufConn {
            stream,
            out: Vec::with_capacity(8192),
            inbuf: vec![0; 8192].into_boxed_slice(),
            start: 0,
            end: 0,
        }
    }

    /// True if received bytes wait in the buffer.
    pub fn has_buffered(&self) -> bool {
        self.start < self.end
    }

    /// Reads what the socket has (waiting for at least one byte) into the empty buffer.
    /// While gdb holds the guest its next packet follows the reply at once: spin for it first
    /// (see `rsp::spin`). Only [`ConnectionExt::read`] waits here (gdb's next request, the
    /// guest halted): a wait while the guest runs is a poll in the event loop.
    fn fill(&mut self) -> std::io::Result<()> {
        loop {
            let read = match spin::read_soon(&self.stream, &mut self.inbuf, spin::SPIN) {
                Some(read) => read,
                None => Read::read(&mut self.stream, &mut self.inbuf),
            };
            match read {
                Ok(0) => return Err(std::io::ErrorKind::UnexpectedEof.into()),
                Ok(n) => {
                    self.start = 0;
                    self.end = n;
                    return Ok(());
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }
}

/// gdb's socket, for poll(2) ([`BufConn::has_buffered`] first).
impl AsFd for BufConn {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.stream.as_fd()
    }
}

impl Connection for BufConn {
    type Error = std::io::Error;

    fn write(&mut self, byte: u8) -> Result<(), Self::Error> {
        self.out.push(byte);
        Ok(())
    }

    fn write_all(&mut self, buf: &[u8]) -> Result<(), Self::Error> {
        self.out.extend_from_slice(buf);
        Ok(())
    }

    fn flush(&mut self) -> Result<(), Self::Error> {
        if !self.out.is_empty() {
            Write::write_all(&mut self.stream, &self.out)?;
            self.out.clear();
        }
        Ok(())
    }

    fn on_session_start(&mut self) -> Result<(), Self::Error> {
        self.stream.set_nonblocking(false)?;
        self.stream.set_nodelay(true)
    }
}

impl ConnectionExt for BufConn {
    fn read(&mut self) -> Result<u8, Self::Error> {
        // gdbstub does not flush its acks (`+`): send what is pending before waiting for gdb.
        if !self.has_buffered() {
            self.flush()?;
            self.fill()?;
        }
        let b = self.inbuf[self.start];
        self.start += 1;
        Ok(b)
    }

    fn peek(&mut self) -> Result<Option<u8>, Self::Error> {
        if !self.has_buffered() {
            self.flush()?;
            if !wake::readable(&self.stream) {
                return Ok(None);
            }
            self.fill()?;
        }
        Ok(Some(self.inbuf[self.start]))
    }
}
