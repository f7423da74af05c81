//! The connection to the guest as the gdb server needs it: [`Guest`] is the [`Target`] trait plus
//! what only a debugger client asks for (register writes, watchpoints, the memory address
//! mode), implemented for [`RspTarget`] (QEMU) and [`MemTarget`] (tests).

use std::os::fd::{AsFd, BorrowedFd};

use crate::riscv::{GPRS, PC, REGISTER_BYTES};
use crate::rsp::{BreakpointType, RspError, StopKind, StopReply};
use crate::target::{MemTarget, RspTarget, Target, TargetError};

/// What a watchpoint fires on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum WatchKind {
    Write,
    Read,
    Access,
}

impl WatchKind {
    fn packet_type(self) -> BreakpointType {
        match self {
            WatchKind::Write => BreakpointType::WriteWatch,
            WatchKind::Read => BreakpointType::ReadWatch,
            WatchKind::Access => BreakpointType::AccessWatch,
        }
    }
}

/// See the module doc. All methods except [`Guest::last_watch`] and [`Guest::is_gone`] need the
/// guest halted.
pub trait Guest: Target + Send + 'static {
    /// Writes GDB register `regnum` (`x0..x31`, [`PC`]).
    fn write_register(&mut self, regnum: usize, value: u64) -> Result<(), TargetError>;

    /// Sets a watchpoint over `addr..addr+len`; an error if the stub has none.
    fn insert_watchpoint(
        &mut self,
        kind: WatchKind,
        addr: u64,
        len: u64,
    ) -> Result<(), TargetError>;

    /// Removes a watchpoint set with the same arguments.
    fn remove_watchpoint(
        &mut self,
        kind: WatchKind,
        addr: u64,
        len: u64,
    ) -> Result<(), TargetError>;

    /// The data address of the watchpoint that caused the last stop, if it was one.
    fn last_watch(&self) -> Option<u64>;

    /// Switches memory addresses to physical (`true`) or virtual; Ok(false) if the stub has no
    /// physical mode (addresses stay virtual).
    fn set_physical(&mut self, on: bool) -> Result<bool, TargetError>;

    /// True while memory addresses are physical.
    fn physical(&self) -> bool;

    /// True once the connection is gone: a new one is needed.
    fn is_gone(&mut self) -> bool;

    /// [`Target::set_breakpoint`] for an instruction of `len` bytes (2 or 4, as gdb says in
    /// `Z0`), which spares looking the length up in memory.
    fn set_breakpoint_len(&mut self, addr: u64, len: u32) -> Result<(), TargetError> {
        let _ = len;
        self.set_breakpoint(addr).map(|_| ())
    }

    /// Continues `harts` alone, the others staying stopped (gdb's scheduler locking).
    fn resume_harts(&mut self, harts: &[u32]) -> Result<(), TargetError> {
        let _ = harts;
        self.resume()
    }

    /// The stub's target description document `annex` (`target.xml` and the files it
    /// includes), whole. An error when the stub describes none.
    fn features_xml(&mut self, annex: &str) -> Result<Vec<u8>, TargetError> {
        Err(TargetError::Rsp(RspError::Unsupported {
            request: format!("the target description {annex}"),
        }))
    }

    /// Register `regnum` as the stub numbers it in its description (FP registers, CSRs, the
    /// privilege level: what gdb asks for with `p`), as the stub's raw bytes.
    fn read_register_raw(&mut self, regnum: u32) -> Result<Vec<u8>, TargetError> {
        Err(TargetError::Rsp(RspError::Unsupported {
            request: format!("reading register {regnum}"),
        }))
    }

    /// Writes register `regnum` (numbered as in [`read_register_raw`](Self::read_register_raw)).
    fn write_register_raw(&mut self, regnum: u32, bytes: &[u8]) -> Result<(), TargetError> {
        let _ = bytes;
        Err(TargetError::Rsp(RspError::Unsupported {
            request: format!("writing register {regnum}"),
        }))
    }

    /// What to poll(2) for the running guest's stop, if the connection is a descriptor. None:
    /// the guest is looked at with [`Guest::stop_ready`] on a timer instead.
    fn wait_fd(&self) -> Option<BorrowedFd<'_>> {
        None
    }

    /// True if a stop of the running guest may be ready to take: [`Target::wait_for_stop`]
    /// would not wait for it. Does not block. Without a descriptor, always true.
    fn stop_ready(&mut self) -> bool {
        true
    }
}

fn unreadable(e: RspError) -> TargetError {
    TargetError::Rsp(e)
}

impl Guest for RspTarget {
    fn write_register(&mut self, regnum: usize, value: u64) -> Result<(), TargetError> {
        if regnum > PC {
            return Err(TargetError::Rsp(RspError::Unsupported {
                request: format!("writing register {regnum}"),
            }));
        }
        let client = self.client();
        // x0..x31 are 0..31 on every RISC-V stub; pc's number comes from the description.
        let number = if regnum < GPRS {
            regnum as u32
        } else {
            match client.target_description() {
                Ok(map) => map.by_name("pc").map_or(PC as u32, |r| r.regnum),
                Err(RspError::Unsupported { .. }) => PC as u32,
                Err(e) => return Err(e.into()),
            }
        };
        let bytes: [u8; REGISTER_BYTES] = value.to_le_bytes();
        client.write_register(number, &bytes).map_err(unreadable)
    }

    fn insert_watchpoint(
        &mut self,
        kind: WatchKind,
        addr: u64,
        len: u64,
    ) -> Result<(), TargetError> {
        let len = u32::try_from(len).unwrap_or(u32::MAX);
        Ok(self
            .client()
            .insert_breakpoint(kind.packet_type(), addr, len)?)
    }

    fn remove_watchpoint(
        &mut self,
        kind: WatchKind,
        addr: u64,
        len: u64,
    ) -> Result<(), TargetError> {
        let len = u32::try_from(len).unwrap_or(u32::MAX);
        Ok(self
            .client()
            .remove_breakpoint(kind.packet_type(), addr, len)?)
    }

    fn last_watch(&self) -> Option<u64> {
        match self.client_ref().last_stop() {
            Some(StopReply::Stopped {
                kind: Some(StopKind::Watch(addr)),
                ..
            }) => Some(*addr),
            _ => None,
        }
    }

    fn set_physical(&mut self, on: bool) -> Result<bool, TargetError> {
        self.set_physical_memory(on)
    }

    fn physical(&self) -> bool {
        self.physical_memory()
    }

    fn is_gone(&mut self) -> bool {
        self.client().is_closed()
    }

    fn set_breakpoint_len(&mut self, addr: u64, len: u32) -> Result<(), TargetError> {
        RspTarget::set_breakpoint_len(self, addr, len).map(|_| ())
    }

    fn resume_harts(&mut self, harts: &[u32]) -> Result<(), TargetError> {
        RspTarget::resume_harts(self, harts)
    }

    fn features_xml(&mut self, annex: &str) -> Result<Vec<u8>, TargetError> {
        Ok(self.client().read_features_xml(annex)?)
    }

    fn read_register_raw(&mut self, regnum: u32) -> Result<Vec<u8>, TargetError> {
        Ok(self.client().read_register(regnum)?)
    }

    fn write_register_raw(&mut self, regnum: u32, bytes: &[u8]) -> Result<(), TargetError> {
        Ok(self.client().write_register(regnum, bytes)?)
    }

    fn wait_fd(&self) -> Option<BorrowedFd<'_>> {
        Some(self.client_ref().as_fd())
    }

    fn stop_ready(&mut self) -> bool {
        let client = self.client_ref();
        client.input_buffered() || super::wake::readable(client)
    }
}

/// For tests: watchpoints are accepted and ignored, addresses are always "virtual".
impl Guest for MemTarget {
    fn write_register(&mut self, regnum: usize, value: u64) -> Result<(), TargetError> {
        if !self.is_halted() {
            return Err(TargetError::NotHalted {
                op: "write a register",
            });
        }
        // The selected hart's, as a stub writes them.
        let hart = self.selected_hart().unwrap_or(0);
        self.set_hart_register(hart, regnum, value);
        Ok(())
    }

    fn insert_watchpoint(&mut self, _: WatchKind, _: u64, _: u64) -> Result<(), TargetError> {
        Ok(())
    }

    fn remove_watchpoint(&mut self, _: WatchKind, _: u64, _: u64) -> Result<(), TargetError> {
        Ok(())
    }

    fn last_watch(&self) -> Option<u64> {
        None
    }

    fn set_physical(&mut self, _on: bool) -> Result<bool, TargetError> {
        Ok(false)
    }

    fn physical(&self) -> bool {
        false
    }

    fn is_gone(&mut self) -> bool {
        self.is_detached()
    }

    fn resume_harts(&mut self, harts: &[u32]) -> Result<(), TargetError> {
        self.note_resumed_harts(harts);
        self.resume()
    }
}
