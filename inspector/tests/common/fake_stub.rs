//! A fake RISC-V 64 GDB stub for tests, built with the `gdbstub` crate: serves memory from byte
//! regions (or an ELF's allocated sections), registers, interrupt/continue, single step and
//! software breakpoints, on 127.0.0.1. Unlike QEMU it offers `QStartNoAckMode` and run-length
//! encodes its replies. Optional faults make it go silent or drop the connection.
//!
//! The "guest program" is a loop of 4-byte instructions over `program`: while running, pc walks
//! through it and stops with SIGTRAP (`swbreak`) when it reaches a breakpoint.
#![allow(dead_code)]

use std::net::{TcpListener, TcpStream};
use std::ops::Range;
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;

use gdbstub::common::Signal;
use gdbstub::conn::{Connection, ConnectionExt};
use gdbstub::stub::{run_blocking, DisconnectReason, GdbStubBuilder, SingleThreadStopReason};
use gdbstub::target::ext::base::single_register_access::{
    SingleRegisterAccess, SingleRegisterAccessOps,
};
use gdbstub::target::ext::base::singlethread::{
    SingleThreadBase, SingleThreadResume, SingleThreadResumeOps, SingleThreadSingleStep,
    SingleThreadSingleStepOps,
};
use gdbstub::target::ext::base::BaseOps;
use gdbstub::target::ext::breakpoints::{
    Breakpoints, BreakpointsOps, SwBreakpoint, SwBreakpointOps,
};
use gdbstub::target::{Target, TargetError, TargetResult};
use gdbstub_arch::riscv::reg::id::RiscvRegId;
use gdbstub_arch::riscv::reg::RiscvCoreRegs;
use gdbstub_arch::riscv::Riscv64;

/// Misbehaviour to inject, counted in packets received from the client (`$` bytes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    None,
    /// From the n-th packet on (1-based), read but never answer.
    SilentFrom(u32),
    /// Close the connection when the n-th packet starts.
    DisconnectAt(u32),
}

#[derive(Debug, Clone)]
pub struct FakeStubConfig {
    /// Guest memory: (address, bytes); regions must not overlap.
    pub regions: Vec<(u64, Vec<u8>)>,
    /// The stub's packet buffer, advertised as `PacketSize`.
    pub packet_size: usize,
    /// Where the running guest's pc loops.
    pub program: Range<u64>,
    pub fault: Fault,
}

impl Default for FakeStubConfig {
    fn default() -> Self {
        FakeStubConfig {
            regions: Vec::new(),
            packet_size: 4096,
            program: 0x8020_0000..0x8020_0100,
            fault: Fault::None,
        }
    }
}

/// What the stub saw and holds; shared with the test.
#[derive(Debug, Default)]
pub struct Shared {
    pub regions: Vec<(u64, Vec<u8>)>,
    pub regs: RiscvCoreRegs<u64>,
    pub breakpoints: Vec<u64>,
    pub running: bool,
    pub resumes: u64,
    pub interrupts: u64,
    pub steps: u64,
    /// `read_addrs` calls and bytes.
    pub reads: u64,
    pub bytes_read: u64,
    pub packets: u32,
    /// Set when the session ended, with how.
    pub ended: Option<String>,
}

impl Shared {
    fn region(&mut self, addr: u64, len: usize) -> Option<&mut [u8]> {
        self.regions.iter_mut().find_map(|(start, bytes)| {
            let off = usize::try_from(addr.checked_sub(*start)?).ok()?;
            // A short read is allowed: serve what the region has from `addr` on.
            let end = (off + len).min(bytes.len());
            (off < bytes.len()).then(|| &mut bytes[off..end])
        })
    }
}

/// A running fake stub serving one connection.
pub struct FakeStub {
    pub addr: String,
    shared: Arc<Mutex<Shared>>,
    thread: Option<JoinHandle<()>>,
}

impl FakeStub {
    /// Listens on an ephemeral port and serves the first connection in a thread.
    pub fn spawn(config: FakeStubConfig) -> FakeStub {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().unwrap().to_string();
        let mut regs = RiscvCoreRegs {
            pc: config.program.start,
            ..RiscvCoreRegs::default()
        };
        for (i, x) in regs.x.iter_mut().enumerate().skip(1) {
            *x = 0x1000 + i as u64;
        }
        let shared = Arc::new(Mutex::new(Shared {
            regions: config.regions.clone(),
            regs,
            ..Shared::default()
        }));
        let for_thread = shared.clone();
        let thread = std::thread::spawn(move || {
            let ended = match listener.accept() {
                Ok((stream, _)) => serve(stream, config, for_thread.clone()),
                Err(e) => format!("accept failed: {e}"),
            };
            lock(&for_thread).ended = Some(ended);
        });
        FakeStub {
            addr,
            shared,
            thread: Some(thread),
        }
    }

    /// The stub's state (memory, counters) for assertions or guest-side changes.
    pub fn shared(&self) -> MutexGuard<'_, Shared> {
        lock(&self.shared)
    }

    /// Guest-side write, as if the running program stored `data` at `addr`.
    pub fn poke(&self, addr: u64, data: &[u8]) {
        let mut s = self.shared();
        let dst = s.region(addr, data.len()).expect("poke inside a region");
        assert_eq!(dst.len(), data.len(), "poke inside one region");
        dst.copy_from_slice(data);
    }

    /// Waits (up to 5 s) for the session to end and returns how it ended.
    pub fn wait_end(&mut self) -> String {
        for _ in 0..500 {
            let ended = self.shared().ended.clone();
            if let Some(e) = ended {
                if let Some(t) = self.thread.take() {
                    t.join().expect("fake stub thread panicked");
                }
                return e;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        panic!("fake stub session did not end within 5 s");
    }
}

/// Loadable segments of an ELF file as (address, bytes) regions, zero-filled up to their memory
/// size (as a loader would place them).
pub fn regions_from_elf(elf: &[u8]) -> Vec<(u64, Vec<u8>)> {
    use object::{Object, ObjectSegment};
    let file = object::File::parse(elf).expect("parse ELF");
    file.segments()
        .filter(|s| s.size() > 0)
        .map(|s| {
            let mut bytes = s.data().expect("segment data").to_vec();
            bytes.resize(s.size() as usize, 0);
            (s.address(), bytes)
        })
        .collect()
}

fn lock(m: &Mutex<Shared>) -> MutexGuard<'_, Shared> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn serve(stream: TcpStream, config: FakeStubConfig, shared: Arc<Mutex<Shared>>) -> String {
    let conn = FaultyConn {
        stream,
        fault: config.fault,
        shared: shared.clone(),
    };
    let mut emu = Emu {
        shared,
        program: config.program,
        exec: Exec::Halted,
    };
    let gdb = match GdbStubBuilder::new(conn)
        .packet_buffer_size(config.packet_size)
        .build()
    {
        Ok(gdb) => gdb,
        Err(e) => return format!("build failed: {e}"),
    };
    match gdb.run_blocking::<EventLoop>(&mut emu) {
        Ok(DisconnectReason::Disconnect) => {
            // Like QEMU: the guest runs on after the debugger detaches.
            lock(&emu.shared).running = true;
            "detached".into()
        }
        Ok(other) => format!("{other:?}"),
        Err(e) => format!("error: {e}"),
    }
}

/// A TcpStream that can misbehave.
struct FaultyConn {
    stream: TcpStream,
    fault: Fault,
    shared: Arc<Mutex<Shared>>,
}

impl FaultyConn {
    fn silent(&self) -> bool {
        matches!(self.fault, Fault::SilentFrom(n) if lock(&self.shared).packets >= n)
    }
}

impl Connection for FaultyConn {
    type Error = std::io::Error;

    fn write(&mut self, byte: u8) -> Result<(), Self::Error> {
        if self.silent() {
            return Ok(());
        }
        Connection::write(&mut self.stream, byte)
    }

    fn write_all(&mut self, buf: &[u8]) -> Result<(), Self::Error> {
        if self.silent() {
            return Ok(());
        }
        Connection::write_all(&mut self.stream, buf)
    }

    fn flush(&mut self) -> Result<(), Self::Error> {
        Connection::flush(&mut self.stream)
    }

    fn on_session_start(&mut self) -> Result<(), Self::Error> {
        self.stream.set_nodelay(true)
    }
}

impl ConnectionExt for FaultyConn {
    fn read(&mut self) -> Result<u8, Self::Error> {
        let byte = ConnectionExt::read(&mut self.stream)?;
        if byte == b'$' {
            let n = {
                let mut s = lock(&self.shared);
                s.packets += 1;
                s.packets
            };
            if self.fault == Fault::DisconnectAt(n) {
                let _ = self.stream.shutdown(std::net::Shutdown::Both);
                return Err(std::io::Error::other("fault: disconnect"));
            }
        }
        Ok(byte)
    }

    fn peek(&mut self) -> Result<Option<u8>, Self::Error> {
        ConnectionExt::peek(&mut self.stream)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Exec {
    Halted,
    Continue,
    Step,
}

struct Emu {
    shared: Arc<Mutex<Shared>>,
    program: Range<u64>,
    exec: Exec,
}

impl Emu {
    fn s(&self) -> MutexGuard<'_, Shared> {
        lock(&self.shared)
    }
}

impl Target for Emu {
    type Arch = Riscv64;
    type Error = String;

    fn base_ops(&mut self) -> BaseOps<'_, Self::Arch, Self::Error> {
        BaseOps::SingleThread(self)
    }

    fn support_breakpoints(&mut self) -> Option<BreakpointsOps<'_, Self>> {
        Some(self)
    }
}

impl SingleThreadBase for Emu {
    fn read_registers(&mut self, regs: &mut RiscvCoreRegs<u64>) -> TargetResult<(), Self> {
        *regs = self.s().regs.clone();
        Ok(())
    }

    fn write_registers(&mut self, regs: &RiscvCoreRegs<u64>) -> TargetResult<(), Self> {
        self.s().regs = regs.clone();
        Ok(())
    }

    fn read_addrs(&mut self, start: u64, data: &mut [u8]) -> TargetResult<usize, Self> {
        let mut s = self.s();
        let n = match s.region(start, data.len()) {
            Some(src) => {
                data[..src.len()].copy_from_slice(src);
                src.len()
            }
            None => return Err(TargetError::Errno(14)),
        };
        s.reads += 1;
        s.bytes_read += n as u64;
        Ok(n)
    }

    fn write_addrs(&mut self, start: u64, data: &[u8]) -> TargetResult<(), Self> {
        let mut s = self.s();
        match s.region(start, data.len()) {
            Some(dst) if dst.len() == data.len() => {
                dst.copy_from_slice(data);
                Ok(())
            }
            _ => Err(TargetError::Errno(14)),
        }
    }

    fn support_resume(&mut self) -> Option<SingleThreadResumeOps<'_, Self>> {
        Some(self)
    }

    fn support_single_register_access(&mut self) -> Option<SingleRegisterAccessOps<'_, (), Self>> {
        Some(self)
    }
}

impl SingleRegisterAccess<()> for Emu {
    fn read_register(
        &mut self,
        _tid: (),
        reg_id: RiscvRegId<u64>,
        buf: &mut [u8],
    ) -> TargetResult<usize, Self> {
        let s = self.s();
        let v = match reg_id {
            RiscvRegId::Gpr(i) => s.regs.x[usize::from(i)],
            RiscvRegId::Pc => s.regs.pc,
            _ => return Err(TargetError::NonFatal),
        };
        buf[..8].copy_from_slice(&v.to_le_bytes());
        Ok(8)
    }

    fn write_register(
        &mut self,
        _tid: (),
        reg_id: RiscvRegId<u64>,
        val: &[u8],
    ) -> TargetResult<(), Self> {
        let v = u64::from_le_bytes(val.try_into().map_err(|_| TargetError::NonFatal)?);
        let mut s = self.s();
        match reg_id {
            RiscvRegId::Gpr(i) => s.regs.x[usize::from(i)] = v,
            RiscvRegId::Pc => s.regs.pc = v,
            _ => return Err(TargetError::NonFatal),
        }
        Ok(())
    }
}

impl SingleThreadResume for Emu {
    fn resume(&mut self, signal: Option<Signal>) -> Result<(), Self::Error> {
        if signal.is_some() {
            return Err("no signals".into());
        }
        self.exec = Exec::Continue;
        let mut s = self.s();
        s.running = true;
        s.resumes += 1;
        Ok(())
    }

    fn support_single_step(&mut self) -> Option<SingleThreadSingleStepOps<'_, Self>> {
        Some(self)
    }
}

impl SingleThreadSingleStep for Emu {
    fn step(&mut self, signal: Option<Signal>) -> Result<(), Self::Error> {
        if signal.is_some() {
            return Err("no signals".into());
        }
        self.exec = Exec::Step;
        Ok(())
    }
}

impl Breakpoints for Emu {
    fn support_sw_breakpoint(&mut self) -> Option<SwBreakpointOps<'_, Self>> {
        Some(self)
    }
}

impl SwBreakpoint for Emu {
    fn add_sw_breakpoint(&mut self, addr: u64, _kind: usize) -> TargetResult<bool, Self> {
        self.s().breakpoints.push(addr);
        Ok(true)
    }

    fn remove_sw_breakpoint(&mut self, addr: u64, _kind: usize) -> TargetResult<bool, Self> {
        let mut s = self.s();
        match s.breakpoints.iter().position(|&a| a == addr) {
            Some(i) => {
                s.breakpoints.remove(i);
                Ok(true)
            }
            None => Ok(false),
        }
    }
}

enum EventLoop {}

impl run_blocking::BlockingEventLoop for EventLoop {
    type Target = Emu;
    type Connection = FaultyConn;
    type StopReason = SingleThreadStopReason<u64>;

    fn wait_for_stop_reason(
        emu: &mut Emu,
        conn: &mut FaultyConn,
    ) -> Result<
        run_blocking::Event<SingleThreadStopReason<u64>>,
        run_blocking::WaitForStopReasonError<String, std::io::Error>,
    > {
        loop {
            if emu.exec == Exec::Step {
                emu.exec = Exec::Halted;
                let mut s = emu.s();
                s.regs.pc += 4;
                s.steps += 1;
                return Ok(run_blocking::Event::TargetStopped(
                    SingleThreadStopReason::DoneStep,
                ));
            }
            // Run a slice of the guest program.
            {
                let mut s = emu.s();
                for _ in 0..64 {
                    let mut pc = s.regs.pc + 4;
                    if pc >= emu.program.end || pc < emu.program.start {
                        pc = emu.program.start;
                    }
                    s.regs.pc = pc;
                    if s.breakpoints.contains(&pc) {
                        s.running = false;
                        drop(s);
                        emu.exec = Exec::Halted;
                        return Ok(run_blocking::Event::TargetStopped(
                            SingleThreadStopReason::SwBreak(()),
                        ));
                    }
                }
            }
            let incoming = conn
                .peek()
                .map_err(run_blocking::WaitForStopReasonError::Connection)?;
            if incoming.is_some() {
                let byte = ConnectionExt::read(conn)
                    .map_err(run_blocking::WaitForStopReasonError::Connection)?;
                return Ok(run_blocking::Event::IncomingData(byte));
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    fn on_interrupt(emu: &mut Emu) -> Result<Option<SingleThreadStopReason<u64>>, String> {
        emu.exec = Exec::Halted;
        let mut s = emu.s();
        s.running = false;
        s.interrupts += 1;
        Ok(Some(SingleThreadStopReason::Signal(Signal::SIGINT)))
    }
}
