//! `MemTarget`: an in-memory [`Target`] for tests. Guest memory is a set of byte regions at
//! addresses; it counts halts, resumes and reads so tests can assert how much a caller read and
//! that it resumed the guest, and it refuses reads while "running", as a real target must.
//! It has one hart unless made with [`MemTarget::with_harts`]: then each hart has its own
//! registers, a stop names the hart that stopped and selects it, and `step` moves the selected
//! hart alone (as QEMU's stub does).

use std::collections::BTreeMap;
use std::time::Duration;

use super::{BreakpointKind, StopReason, Target, TargetError};
use crate::riscv::Registers;

/// Counters of what was done to a [`MemTarget`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MemStats {
    /// `halt` calls that actually halted a running guest.
    pub halts: u64,
    /// `resume` calls that actually resumed a halted guest.
    pub resumes: u64,
    /// `read_memory` calls that succeeded.
    pub reads: u64,
    /// Bytes returned by those reads.
    pub bytes_read: u64,
    pub writes: u64,
    pub steps: u64,
    pub detaches: u64,
}

/// See the module doc. Starts running, with all registers zero.
#[derive(Debug, Clone)]
pub struct MemTarget {
    /// Regions by start address; they do not overlap.
    regions: BTreeMap<u64, Vec<u8>>,
    halted: bool,
    detached: bool,
    /// Registers per hart (index = hart id); at least one.
    registers: Vec<Registers>,
    /// The hart whose registers are read and which `step` moves.
    selected: u32,
    /// The hart the last stop names (set only with several harts).
    stopped: Option<u32>,
    breakpoints: BTreeMap<u64, BreakpointKind>,
    /// When set, the next `wait_for_stop` (or `halt`) reports this stop at this pc, on this
    /// hart.
    pending_stop: Option<(StopReason, u64, u32)>,
    stats: MemStats,
    /// The harts the next resume continues alone (`note_resumed_harts`), and those the last
    /// one did (None: all).
    next_only: Option<Vec<u32>>,
    resumed_only: Option<Vec<u32>>,
}

impl Default for MemTarget {
    fn default() -> Self {
        Self::new()
    }
}

impl MemTarget {
    pub fn new() -> Self {
        MemTarget {
            regions: BTreeMap::new(),
            halted: false,
            detached: false,
            registers: vec![Registers::default()],
            selected: 0,
            stopped: None,
            breakpoints: BTreeMap::new(),
            pending_stop: None,
            stats: MemStats::default(),
            next_only: None,
            resumed_only: None,
        }
    }

    /// The same target with `n` harts (at least 1), all registers zero.
    pub fn with_harts(mut self, n: u32) -> Self {
        self.registers = vec![Registers::default(); n.max(1) as usize];
        self
    }

    /// Adds `bytes` at `addr`. Panics if the region overlaps an existing one (a test bug).
    pub fn with_region(mut self, addr: u64, bytes: Vec<u8>) -> Self {
        self.add_region(addr, bytes);
        self
    }

    /// Adds `bytes` at `addr`. Panics if the region overlaps an existing one (a test bug).
    pub fn add_region(&mut self, addr: u64, bytes: Vec<u8>) {
        let end = addr + bytes.len() as u64;
        for (&a, r) in &self.regions {
            let e = a + r.len() as u64;
            assert!(
                end <= a || addr >= e,
                "region {addr:#x}..{end:#x} overlaps {a:#x}..{e:#x}"
            );
        }
        self.regions.insert(addr, bytes);
    }

    /// The guest side: changes memory whether halted or not (as the running kernel would).
    /// Panics if the range is not inside one region.
    pub fn poke(&mut self, addr: u64, data: &[u8]) {
        let slice = self
            .slice_mut(addr, data.len())
            .unwrap_or_else(|| panic!("poke {addr:#x}+{} outside the regions", data.len()));
        slice.copy_from_slice(data);
    }

    /// Sets GDB register `regnum` (`x0..x31`, [`PC`](crate::riscv::PC)) of hart 0; panics on
    /// any other number.
    pub fn set_register(&mut self, regnum: usize, value: u64) {
        self.set_hart_register(0, regnum, value);
    }

    /// Sets register `regnum` of `hart`; panics on a hart the target does not have.
    pub fn set_hart_register(&mut self, hart: u32, regnum: usize, value: u64) {
        self.registers[hart as usize].set(regnum, value);
    }

    /// Makes the running guest stop at `pc` as if it hit a breakpoint there: the next
    /// `wait_for_stop` or `halt` reports [`StopReason::Trap`].
    pub fn hit(&mut self, pc: u64) {
        self.hit_on(0, pc);
    }

    /// Like [`hit`](Self::hit), on `hart` (which the stop then names and selects).
    pub fn hit_on(&mut self, hart: u32, pc: u64) {
        self.pending_stop = Some((StopReason::Trap, pc, hart));
    }

    /// The harts the last resume continued: None for all of them (a plain resume).
    pub fn resumed_harts(&self) -> Option<&[u32]> {
        self.resumed_only.as_deref()
    }

    /// Records that the next resume continues `harts` alone (the gdb server's scheduler
    /// locking; this target still models one run state for all harts).
    pub fn note_resumed_harts(&mut self, harts: &[u32]) {
        self.next_only = Some(harts.to_vec());
    }

    fn multi(&self) -> bool {
        self.registers.len() > 1
    }

    pub fn stats(&self) -> &MemStats {
        &self.stats
    }

    /// Breakpoints currently set.
    pub fn breakpoints(&self) -> impl Iterator<Item = (u64, BreakpointKind)> + '_ {
        self.breakpoints.iter().map(|(&a, &k)| (a, k))
    }

    pub fn is_detached(&self) -> bool {
        self.detached
    }

    fn slice_mut(&mut self, addr: u64, len: usize) -> Option<&mut [u8]> {
        let (&start, region) = self.regions.range_mut(..=addr).next_back()?;
        let off = usize::try_from(addr - start).ok()?;
        region.get_mut(off..off.checked_add(len)?)
    }

    fn check(&self, op: &'static str) -> Result<(), TargetError> {
        if self.detached {
            Err(TargetError::Detached)
        } else if !self.halted {
            Err(TargetError::NotHalted { op })
        } else {
            Ok(())
        }
    }

    fn take_stop(&mut self) -> Option<StopReason> {
        let (reason, pc, hart) = self.pending_stop.take()?;
        self.registers[hart as usize].set_pc(pc);
        self.selected = hart;
        self.stopped = self.multi().then_some(hart);
        self.halted = true;
        Some(reason)
    }
}

impl Target for MemTarget {
    fn halt(&mut self) -> Result<StopReason, TargetError> {
        if self.detached {
            return Err(TargetError::Detached);
        }
        if self.halted {
            return Ok(StopReason::AlreadyHalted);
        }
        self.stats.halts += 1;
        self.halted = true;
        Ok(self.take_stop().unwrap_or(StopReason::Interrupted))
    }

    fn resume(&mut self) -> Result<(), TargetError> {
        if self.detached {
            return Err(TargetError::Detached);
        }
        if self.halted {
            self.stats.resumes += 1;
            self.halted = false;
            self.resumed_only = self.next_only.take();
        }
        Ok(())
    }

    fn is_halted(&self) -> bool {
        self.halted
    }

    fn read_memory(&mut self, addr: u64, buf: &mut [u8]) -> Result<(), TargetError> {
        self.check("read memory")?;
        let len = buf.len();
        let src = self.slice_mut(addr, len).ok_or(TargetError::Unreadable {
            addr,
            len,
            code: None,
        })?;
        buf.copy_from_slice(src);
        self.stats.reads += 1;
        self.stats.bytes_read += len as u64;
        Ok(())
    }

    fn write_memory(&mut self, addr: u64, data: &[u8]) -> Result<(), TargetError> {
        self.check("write memory")?;
        let len = data.len();
        let dst = self.slice_mut(addr, len).ok_or(TargetError::Unreadable {
            addr,
            len,
            code: None,
        })?;
        dst.copy_from_slice(data);
        self.stats.writes += 1;
        Ok(())
    }

    fn read_registers(&mut self) -> Result<Registers, TargetError> {
        self.check("read registers")?;
        Ok(self.registers[self.selected as usize].clone())
    }

    fn set_breakpoint(&mut self, addr: u64) -> Result<BreakpointKind, TargetError> {
        self.check("set a breakpoint")?;
        Ok(*self
            .breakpoints
            .entry(addr)
            .or_insert(BreakpointKind::Software))
    }

    fn remove_breakpoint(&mut self, addr: u64) -> Result<(), TargetError> {
        self.check("remove a breakpoint")?;
        self.breakpoints
            .remove(&addr)
            .map(|_| ())
            .ok_or(TargetError::NoBreakpoint { addr })
    }

    /// Advances the selected hart's pc by 4 and reports [`StopReason::Trap`] (on that hart).
    fn step(&mut self) -> Result<StopReason, TargetError> {
        self.check("single-step")?;
        let r = &mut self.registers[self.selected as usize];
        r.set_pc(r.pc().wrapping_add(4));
        self.stopped = self.multi().then_some(self.selected);
        self.stats.steps += 1;
        Ok(StopReason::Trap)
    }

    fn stopped_hart(&self) -> Option<u32> {
        self.stopped
    }

    fn harts(&mut self) -> Result<Vec<u32>, TargetError> {
        Ok((0..self.registers.len() as u32).collect())
    }

    fn select_hart(&mut self, hart: u32) -> Result<(), TargetError> {
        self.check("select a hart")?;
        if hart as usize >= self.registers.len() {
            return Err(TargetError::NoHart { hart });
        }
        self.selected = hart;
        Ok(())
    }

    fn selected_hart(&self) -> Option<u32> {
        self.multi().then_some(self.selected)
    }

    /// Reports a stop scheduled with [`MemTarget::hit`]; otherwise None (never sleeps).
    fn wait_for_stop(&mut self, _timeout: Duration) -> Result<Option<StopReason>, TargetError> {
        if self.detached {
            return Err(TargetError::Detached);
        }
        if self.halted {
            return Ok(Some(StopReason::AlreadyHalted));
        }
        Ok(self.take_stop())
    }

    /// Echoes the command (for tests).
    fn monitor(&mut self, command: &str) -> Result<String, TargetError> {
        self.check("run a monitor command")?;
        Ok(format!("monitor: {command}\n"))
    }

    fn detach(&mut self) -> Result<(), TargetError> {
        if !self.detached {
            self.breakpoints.clear();
            self.halted = false;
            self.detached = true;
            self.stats.detaches += 1;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::target::HaltGuard;

    fn target() -> MemTarget {
        MemTarget::new()
            .with_region(0x8000_0000, (0..=255).collect())
            .with_region(0x8010_0000, vec![0xaa; 16])
    }

    #[test]
    fn reads_need_a_halt_and_count() {
        let mut t = target();
        let mut buf = [0u8; 4];
        assert!(matches!(
            t.read_memory(0x8000_0000, &mut buf),
            Err(TargetError::NotHalted { .. })
        ));
        assert_eq!(t.halt().unwrap(), StopReason::Interrupted);
        assert_eq!(t.halt().unwrap(), StopReason::AlreadyHalted);
        t.read_memory(0x8000_0010, &mut buf).unwrap();
        assert_eq!(buf, [0x10, 0x11, 0x12, 0x13]);
        assert_eq!(t.stats().reads, 1);
        assert_eq!(t.stats().bytes_read, 4);
        assert_eq!(t.stats().halts, 1);
    }

    #[test]
    fn reads_outside_or_across_regions_fail() {
        let mut t = target();
        t.halt().unwrap();
        let mut buf = [0u8; 8];
        for addr in [0x7fff_fffc, 0x8000_00fc, 0x8010_000c, 0x9000_0000] {
            let err = t.read_memory(addr, &mut buf).unwrap_err();
            assert!(
                matches!(err, TargetError::Unreadable { addr: a, len: 8, .. } if a == addr),
                "{err}"
            );
        }
        assert_eq!(t.stats().reads, 0);
    }

    #[test]
    fn poke_changes_memory_while_running() {
        let mut t = target();
        t.poke(0x8010_0000, &[1, 2]);
        t.halt().unwrap();
        let mut buf = [0u8; 3];
        t.read_memory(0x8010_0000, &mut buf).unwrap();
        assert_eq!(buf, [1, 2, 0xaa]);
    }

    #[test]
    fn halt_guard_resumes_on_drop_and_on_error_paths() {
        let mut t = target();
        fn failing(t: &mut MemTarget) -> Result<(), TargetError> {
            let mut g = HaltGuard::new(t)?;
            let mut buf = [0u8; 4];
            g.read_memory(0x1234, &mut buf)?;
            unreachable!("the read above fails");
        }
        assert!(failing(&mut t).is_err());
        assert!(!t.is_halted());
        assert_eq!((t.stats().halts, t.stats().resumes), (1, 1));

        let guard = HaltGuard::new(&mut t).unwrap();
        assert!(guard.will_resume());
        guard.resume().unwrap();
        assert!(!t.is_halted());
        assert_eq!(t.stats().resumes, 2);
    }

    #[test]
    fn halt_guard_resumes_after_a_panic() {
        let mut t = target();
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let _g = HaltGuard::new(&mut t).unwrap();
            panic!("boom");
        }));
        assert!(result.is_err());
        assert!(!t.is_halted());
        assert_eq!(t.stats().resumes, 1);
    }

    #[test]
    fn halt_guard_leaves_an_already_halted_guest_halted() {
        let mut t = target();
        t.halt().unwrap();
        {
            let g = HaltGuard::new(&mut t).unwrap();
            assert_eq!(g.stop_reason(), StopReason::AlreadyHalted);
            assert!(!g.will_resume());
        }
        assert!(t.is_halted());
        assert_eq!(t.stats().resumes, 0);
    }

    #[test]
    fn breakpoints_steps_and_scheduled_stops() {
        let mut t = target();
        assert_eq!(t.wait_for_stop(Duration::ZERO).unwrap(), None);
        t.hit(0x8020_0000);
        assert_eq!(
            t.wait_for_stop(Duration::ZERO).unwrap(),
            Some(StopReason::Trap)
        );
        assert!(t.is_halted());
        assert_eq!(t.read_registers().unwrap().pc(), 0x8020_0000);
        assert_eq!(
            t.set_breakpoint(0x8020_0010).unwrap(),
            BreakpointKind::Software
        );
        assert_eq!(t.step().unwrap(), StopReason::Trap);
        assert_eq!(t.read_registers().unwrap().pc(), 0x8020_0004);
        t.remove_breakpoint(0x8020_0010).unwrap();
        assert!(matches!(
            t.remove_breakpoint(0x8020_0010),
            Err(TargetError::NoBreakpoint { .. })
        ));
        t.set_breakpoint(0x8020_0010).unwrap();
        t.detach().unwrap();
        assert!(t.is_detached() && !t.is_halted());
        assert_eq!(t.breakpoints().count(), 0);
        assert!(matches!(t.halt(), Err(TargetError::Detached)));
    }
}
