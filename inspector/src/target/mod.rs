//! The debuggee as the rest of the inspector sees it: halt, read, resume, breakpoints and steps
//! behind the [`Target`] trait, with an RSP implementation ([`RspTarget`]), an in-memory one for
//! tests ([`MemTarget`]), the [`HaltGuard`] that never leaves the guest halted, and the
//! shutdown flag raised by SIGINT/SIGTERM/SIGHUP. Registers travel as [`Registers`] (`crate::riscv`).

mod core;
mod guard;
mod mem;
mod ram;
mod rsp_target;
mod shutdown;

use std::time::Duration;

pub use self::core::{is_elf_core, CoreFile, CoreSegment};
pub use guard::HaltGuard;
pub use mem::{MemStats, MemTarget};
pub use ram::{GuestMemory, RamFile, Segment};
pub use rsp_target::{MemoryMode, RspTarget, RspTargetOptions};
pub use shutdown::{install_ctrlc_handler, Cancelled, ShutdownFlag, SHUTDOWN_POLL};

use crate::riscv::Registers;
use crate::rsp::RspError;

/// Why the target is halted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopReason {
    /// It was halted already; nothing was sent.
    AlreadyHalted,
    /// Stopped by our interrupt (SIGINT).
    Interrupted,
    /// SIGTRAP: a breakpoint was hit or a single step completed; the pc tells which.
    Trap,
    /// Another signal.
    Signal(u8),
}

/// How a breakpoint was installed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BreakpointKind {
    Software,
    Hardware,
}

#[derive(Debug, thiserror::Error)]
pub enum TargetError {
    #[error(transparent)]
    Rsp(#[from] RspError),

    #[error("cannot {op} while the guest runs: halt it first (use a HaltGuard)")]
    NotHalted { op: &'static str },

    #[error(
        "guest memory {addr:#x}..{:#x} is not readable{}; is the ELF the one QEMU runs, and \
         is the address a kernel address?",
        addr.wrapping_add(*len as u64),
        code.map(|c| format!(" (E{c:02x})")).unwrap_or_default()
    )]
    Unreadable {
        addr: u64,
        len: usize,
        code: Option<u8>,
    },

    #[error(
        "cannot read guest RAM from {}: {source}; is QEMU still running with that memory \
         file (make qemu)?",
        path.display()
    )]
    RamFile {
        path: std::path::PathBuf,
        source: std::io::Error,
    },

    #[error("no breakpoint at {addr:#x}")]
    NoBreakpoint { addr: u64 },

    #[error("cannot {op}: the guest is held by {by}; continue or detach there first")]
    HeldElsewhere { op: &'static str, by: &'static str },

    #[error("the guest has no hart {hart}")]
    NoHart { hart: u32 },

    #[error("the target is detached; reconnect to inspect it again")]
    Detached,

    #[error("the guest did not stop within {} ms", timeout.as_millis())]
    StopTimeout { timeout: Duration },
}

/// A debuggee. Reads and register access need it halted; [`HaltGuard`] halts, lends the target
/// and resumes it, also on error paths and panics.
pub trait Target {
    /// Halts the guest and returns why it stopped; a no-op returning
    /// [`StopReason::AlreadyHalted`] if it is halted already.
    fn halt(&mut self) -> Result<StopReason, TargetError>;

    /// Continues the guest and returns without waiting; a no-op if it runs already.
    fn resume(&mut self) -> Result<(), TargetError>;

    fn is_halted(&self) -> bool;

    /// Fills `buf` from guest memory at `addr` (a kernel address; see the implementation for the
    /// address space). Must be halted.
    fn read_memory(&mut self, addr: u64, buf: &mut [u8]) -> Result<(), TargetError>;

    /// Writes `data` to guest memory at `addr`. Must be halted.
    fn write_memory(&mut self, addr: u64, data: &[u8]) -> Result<(), TargetError>;

    /// `x0..x31` and `pc`. Must be halted.
    fn read_registers(&mut self) -> Result<Registers, TargetError>;

    /// Sets a breakpoint at `addr`: software if the target can, hardware otherwise. Returns how
    /// it was set. Setting one twice is a no-op. Must be halted.
    fn set_breakpoint(&mut self, addr: u64) -> Result<BreakpointKind, TargetError>;

    /// Removes the breakpoint at `addr`; [`TargetError::NoBreakpoint`] if there is none.
    /// Must be halted.
    fn remove_breakpoint(&mut self, addr: u64) -> Result<(), TargetError>;

    /// Executes one instruction and returns the stop reason (normally [`StopReason::Trap`]).
    /// Must be halted.
    fn step(&mut self) -> Result<StopReason, TargetError>;

    /// Waits up to `timeout` for the running guest to stop by itself (a breakpoint). Returns
    /// None if it still runs; the stop reason at once if it is halted already.
    fn wait_for_stop(&mut self, timeout: Duration) -> Result<Option<StopReason>, TargetError>;

    /// Removes our breakpoints, leaves the guest running and ends the session. Idempotent.
    fn detach(&mut self) -> Result<(), TargetError>;

    /// The hart (0-based) whose event the last stop reports (a breakpoint hit, a step), when
    /// the target says; stepping steps that hart alone and registers are read from it.
    fn stopped_hart(&self) -> Option<u32> {
        None
    }

    /// The harts the guest has (by id). A target that knows of no harts reports hart 0 alone.
    fn harts(&mut self) -> Result<Vec<u32>, TargetError> {
        Ok(vec![0])
    }

    /// Makes `hart` the one whose registers are read and which `step` steps, until the next
    /// stop (which selects the hart that stopped). Must be halted.
    fn select_hart(&mut self, hart: u32) -> Result<(), TargetError> {
        match hart {
            0 => Ok(()),
            _ => Err(TargetError::NoHart { hart }),
        }
    }

    /// The hart selected now (`select_hart`, else the one that stopped).
    fn selected_hart(&self) -> Option<u32> {
        self.stopped_hart()
    }

    /// The caller is done with a guest it found halted by someone else ([`Target::halt`]
    /// returned [`StopReason::AlreadyHalted`]): a [`HaltGuard`] that did not halt the guest
    /// calls it when it ends. A target shared with another debugger keeps that one from
    /// resuming the guest until then. Default: nothing.
    fn release(&mut self) {}

    /// Runs a monitor command (QEMU's human monitor, `qRcmd`) and returns its output. Must be
    /// halted. Targets without a monitor refuse.
    fn monitor(&mut self, command: &str) -> Result<String, TargetError> {
        Err(TargetError::Rsp(RspError::Unsupported {
            request: format!("monitor {command}"),
        }))
    }
}
