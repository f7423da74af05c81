//! Call-frame unwinding from the ELF's CFI (`.debug_frame`, else `.eh_frame`): given a frame's
//! registers, the caller's pc and registers. The debugger's backtrace and step-out use it.
//!
//! Contract: a rule this module cannot follow (a DWARF expression rule, an unreadable save slot)
//! ends the unwind there; it never invents a caller. Register numbers are DWARF's (riscv64:
//! x0..x31 = 0..31); the return address register comes from the CIE (x1 = ra on riscv64).

use std::path::Path;
use std::sync::Arc;

use gimli::{BaseAddresses, CfaRule, RegisterRule, RunTimeEndian, UnwindContext, UnwindSection};
use object::{Object, ObjectSection};

use super::loader::Reader;
use crate::riscv::{is_callee_saved, Registers, GPRS, RA, SP};

/// One frame's general registers `x0..x31` (by DWARF number): `None` where unknown (not saved
/// by any callee).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FrameRegs {
    pub pc: u64,
    pub regs: [Option<u64>; GPRS],
}

impl FrameRegs {
    /// The innermost frame: every register known.
    pub fn from_registers(registers: &Registers) -> FrameRegs {
        FrameRegs {
            pc: registers.pc(),
            regs: registers.gprs().map(Some),
        }
    }
}

/// The result of unwinding one frame.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Unwound {
    /// The canonical frame address of the frame that was unwound (the caller's sp on riscv64).
    pub cfa: u64,
    /// The caller, with pc = the return address.
    pub caller: FrameRegs,
}

enum Section {
    Debug(gimli::DebugFrame<Reader>),
    Eh(gimli::EhFrame<Reader>),
}

/// CFI of one ELF.
pub struct Unwinder {
    section: Section,
    bases: BaseAddresses,
}

impl std::fmt::Debug for Unwinder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Unwinder")
    }
}

impl Unwinder {
    /// Reads the CFI of the ELF at `path`. `Ok(None)` if it has neither `.debug_frame` nor
    /// `.eh_frame`.
    pub fn load(path: &Path) -> std::io::Result<Option<Unwinder>> {
        Self::from_elf_bytes(&std::fs::read(path)?).map_err(std::io::Error::other)
    }

    /// Like [`load`](Self::load), from the ELF file's bytes.
    pub fn from_elf_bytes(data: &[u8]) -> Result<Option<Unwinder>, object::Error> {
        let file = object::File::parse(data)?;
        let endian = if file.is_little_endian() {
            RunTimeEndian::Little
        } else {
            RunTimeEndian::Big
        };
        let address_size = if file.is_64() { 8 } else { 4 };
        let bytes = |name: &str| -> Option<(Arc<[u8]>, u64)> {
            let s = file.section_by_name(name)?;
            let d = super::loader::section_bytes(&s).ok()?;
            (!d.is_empty()).then(|| (Arc::from(d.into_owned()), s.address()))
        };
        if let Some((d, _)) = bytes(".debug_frame") {
            return Ok(Some(Self::from_debug_frame(d, endian, address_size)));
        }
        if let Some((d, addr)) = bytes(".eh_frame") {
            let mut eh = gimli::EhFrame::from(gimli::EndianArcSlice::new(d, endian));
            eh.set_address_size(address_size);
            let text = file.section_by_name(".text").map_or(0, |s| s.address());
            return Ok(Some(Unwinder {
                section: Section::Eh(eh),
                bases: BaseAddresses::default().set_eh_frame(addr).set_text(text),
            }));
        }
        Ok(None)
    }

    /// From raw `.debug_frame` bytes (for tests and for callers that have the section).
    pub fn from_debug_frame(data: Arc<[u8]>, endian: RunTimeEndian, address_size: u8) -> Unwinder {
        let mut df = gimli::DebugFrame::from(gimli::EndianArcSlice::new(data, endian));
        df.set_address_size(address_size);
        Unwinder {
            section: Section::Debug(df),
            bases: BaseAddresses::default(),
        }
    }

    /// Unwinds `frame` one level. `lookup_pc` is the address to find the CFI row for (the pc
    /// itself for the innermost frame; `pc - 1` for callers, whose pc is a return address).
    /// `read` fills a buffer from target memory (false if unreadable). `Ok(None)` when the CFI
    /// says the frame has no caller or has no entry for the pc.
    pub fn unwind(
        &self,
        frame: &FrameRegs,
        lookup_pc: u64,
        read: &mut dyn FnMut(u64, &mut [u8]) -> bool,
    ) -> Option<Unwound> {
        let mut ctx = UnwindContext::new();
        let row = match &self.section {
            Section::Debug(s) => s
                .unwind_info_for_address(
                    &self.bases,
                    &mut ctx,
                    lookup_pc,
                    gimli::DebugFrame::cie_from_offset,
                )
                .ok()?
                .clone(),
            Section::Eh(s) => s
                .unwind_info_for_address(
                    &self.bases,
                    &mut ctx,
                    lookup_pc,
                    gimli::EhFrame::cie_from_offset,
                )
                .ok()?
                .clone(),
        };
        let ra_reg = self.return_address_register(lookup_pc).unwrap_or(RA as u16);
        let cfa = match row.cfa() {
            CfaRule::RegisterAndOffset { register, offset } => {
                let base = (*frame.regs.get(usize::from(register.0))?)?;
                base.wrapping_add(*offset as u64)
            }
            CfaRule::Expression(_) => return None,
        };
        let read_u64 = |read: &mut dyn FnMut(u64, &mut [u8]) -> bool, addr: u64| {
            let mut b = [0u8; 8];
            read(addr, &mut b).then(|| u64::from_le_bytes(b))
        };
        let mut caller = FrameRegs {
            pc: 0,
            regs: [None; GPRS],
        };
        for n in 0..GPRS {
            let rule = row.register(gimli::Register(n as u16));
            caller.regs[n] = match rule {
                // Unmentioned registers: callee-saved ones keep their value (the compiler
                // would have said otherwise), the rest are unknown after a call.
                None => is_callee_saved(n).then_some(frame.regs[n]).flatten(),
                Some(RegisterRule::Undefined) => None,
                Some(RegisterRule::SameValue) => frame.regs[n],
                Some(RegisterRule::Offset(o)) => read_u64(read, cfa.wrapping_add(o as u64)),
                Some(RegisterRule::ValOffset(o)) => Some(cfa.wrapping_add(o as u64)),
                Some(RegisterRule::Register(r)) => {
                    frame.regs.get(usize::from(r.0)).copied().flatten()
                }
                Some(RegisterRule::Constant(c)) => Some(c),
                Some(_) => None,
            };
        }
        // The return address: its rule if there is one, else the (leaf) register itself.
        let ra = match row.register(gimli::Register(ra_reg)) {
            None => frame.regs.get(usize::from(ra_reg)).copied().flatten(),
            // A CIE may name any register as the return address; one outside x0..x31 is unknown.
            Some(_) => caller.regs.get(usize::from(ra_reg)).copied().flatten(),
        }?;
        caller.regs[SP] = Some(cfa);
        caller.pc = ra;
        if ra == 0 {
            return None;
        }
        Some(Unwound { cfa, caller })
    }

    fn return_address_register(&self, pc: u64) -> Option<u16> {
        let get = |fde: gimli::FrameDescriptionEntry<Reader>| fde.cie().return_address_register().0;
        match &self.section {
            Section::Debug(s) => s
                .fde_for_address(&self.bases, pc, gimli::DebugFrame::cie_from_offset)
                .ok()
                .map(get),
            Section::Eh(s) => s
                .fde_for_address(&self.bases, pc, gimli::EhFrame::cie_from_offset)
                .ok()
                .map(get),
        }
    }

    /// True if the CFI has an entry covering `pc`.
    pub fn covers(&self, pc: u64) -> bool {
        self.return_address_register(pc).is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `.debug_frame` with one CIE (version 1, return address register `ra`, CFA = sp, the
    /// return address saved at CFA - 8) and one FDE covering `0x1000..0x1100`.
    fn debug_frame(ra: u8) -> Vec<u8> {
        let mut cie = vec![0xff, 0xff, 0xff, 0xff, 1, 0, 1, 0x78, ra];
        cie.extend_from_slice(&[0x0c, SP as u8, 0]); // DW_CFA_def_cfa sp, 0
        cie.extend_from_slice(&[0x05, ra, 1]); // DW_CFA_offset_extended ra, 1 × -8
        while !(cie.len() + 4).is_multiple_of(8) {
            cie.push(0); // DW_CFA_nop
        }
        let mut out = (cie.len() as u32).to_le_bytes().to_vec();
        out.extend_from_slice(&cie);
        let mut fde = 0u32.to_le_bytes().to_vec(); // CIE at offset 0
        fde.extend_from_slice(&0x1000u64.to_le_bytes());
        fde.extend_from_slice(&0x100u64.to_le_bytes());
        while !(fde.len() + 4).is_multiple_of(8) {
            fde.push(0);
        }
        out.extend_from_slice(&(fde.len() as u32).to_le_bytes());
        out.extend_from_slice(&fde);
        out
    }

    fn frame() -> FrameRegs {
        let mut regs = [Some(0); GPRS];
        regs[SP] = Some(0x8000);
        FrameRegs { pc: 0x1010, regs }
    }

    #[test]
    fn unwinds_through_a_saved_return_address() {
        let u =
            Unwinder::from_debug_frame(Arc::from(debug_frame(RA as u8)), RunTimeEndian::Little, 8);
        let mut read = |addr: u64, buf: &mut [u8]| {
            assert_eq!(addr, 0x8000 - 8);
            buf.copy_from_slice(&0x2222u64.to_le_bytes());
            true
        };
        let up = u.unwind(&frame(), 0x1010, &mut read).unwrap();
        assert_eq!((up.cfa, up.caller.pc), (0x8000, 0x2222));
    }

    #[test]
    fn a_return_address_register_outside_the_gprs_ends_the_unwind() {
        // Register 100 is no riscv64 general register: no caller, and no panic.
        let u = Unwinder::from_debug_frame(Arc::from(debug_frame(100)), RunTimeEndian::Little, 8);
        let mut read = |_: u64, buf: &mut [u8]| {
            buf.fill(0x11);
            true
        };
        assert_eq!(u.unwind(&frame(), 0x1010, &mut read), None);
    }
}
