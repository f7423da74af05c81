//! The RISC-V 64 facts the host side relies on, in one place: register numbers, ABI register
//! names, the callee-saved set, the page size, and [`Registers`], a stopped hart's `x0..x31` and
//! `pc`.
//!
//! Numbering: `x0..x31` are 0..31 both in GDB's register numbering (the `g` packet's order,
//! QEMU's target description) and in DWARF's; `pc` is 32 for GDB only (DWARF 32 is `f0`), so
//! [`Registers::get`] takes GDB numbers and [`Registers::x`] only general registers.
//!
//! This is the lowest layer with `rsp`: it imports nothing from the rest of the crate.

/// Bytes per page (Sv39 base pages; the kernel's allocator hands out whole pages).
pub const PAGE_SIZE: u64 = 4096;

/// Number of general registers, `x0..x31`.
pub const GPRS: usize = 32;
/// How many registers a target returns: `x0..x31`, then `pc`.
pub const REGISTERS: usize = GPRS + 1;
/// Bytes per register on riscv64.
pub const REGISTER_BYTES: usize = 8;

/// `x0`, hard-wired to zero.
pub const ZERO: usize = 0;
/// `x1`, the return address.
pub const RA: usize = 1;
/// `x2`, the stack pointer.
pub const SP: usize = 2;
/// `x8`, `s0`, the frame pointer.
pub const FP: usize = 8;
/// `x8` under its saved-register name.
pub const S0: usize = FP;
/// `x9`, the other saved register below `s2..s11` (x18..x27).
pub const S1: usize = 9;
/// `x10..x17`: `a0..a7`, the first eight integer arguments (`a0`, `a1` also return values).
pub const A0: usize = 10;
pub const A1: usize = 11;
pub const A2: usize = 12;
pub const A3: usize = 13;
pub const A4: usize = 14;
pub const A5: usize = 15;
pub const A6: usize = 16;
pub const A7: usize = 17;
/// How many arguments are passed in registers (`a0..a7`).
pub const ARG_REGISTERS: usize = 8;
/// GDB's number of `pc`, after `x0..x31`.
pub const PC: usize = 32;

/// ABI names of `x0..x31`.
pub const ABI_NAMES: [&str; GPRS] = [
    "zero", "ra", "sp", "gp", "tp", "t0", "t1", "t2", "s0", "s1", "a0", "a1", "a2", "a3", "a4",
    "a5", "a6", "a7", "s2", "s3", "s4", "s5", "s6", "s7", "s8", "s9", "s10", "s11", "t3", "t4",
    "t5", "t6",
];

/// The ABI name of GDB register `regnum` (`"pc"` for [`PC`]); None beyond.
pub fn register_name(regnum: usize) -> Option<&'static str> {
    match regnum {
        PC => Some("pc"),
        n => ABI_NAMES.get(n).copied(),
    }
}

/// Length in bytes of the instruction whose first byte is `low_byte`: 2 for a compressed
/// instruction (low two bits not `11`), else 4.
pub fn instruction_len(low_byte: u8) -> u32 {
    if low_byte & 0b11 != 0b11 {
        2
    } else {
        4
    }
}

/// True for the registers a callee must preserve: `sp` (x2), `s0`–`s1` (x8–x9), `s2`–`s11`
/// (x18–x27).
pub fn is_callee_saved(regnum: usize) -> bool {
    matches!(regnum, SP | S0 | S1 | 18..=27)
}

/// One hart's `x0..x31` and `pc`, as a stopped target reports them.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Registers {
    x: [u64; GPRS],
    pc: u64,
}

impl Registers {
    /// From the general registers and the pc.
    pub fn new(x: [u64; GPRS], pc: u64) -> Registers {
        Registers { x, pc }
    }

    /// From [`REGISTERS`] values in GDB order (`x0..x31`, `pc`); None if fewer. Values beyond
    /// are ignored (a `g` reply may carry more registers).
    pub fn from_values(values: &[u64]) -> Option<Registers> {
        let values = values.get(..REGISTERS)?;
        let mut x = [0; GPRS];
        x.copy_from_slice(&values[..GPRS]);
        Some(Registers { x, pc: values[PC] })
    }

    /// From a `g` reply's bytes (little-endian, [`REGISTER_BYTES`] each, GDB order); None if
    /// shorter than [`REGISTERS`] registers. Bytes beyond (CSRs, FPRs) are ignored.
    pub fn from_le_bytes(bytes: &[u8]) -> Option<Registers> {
        let bytes = bytes.get(..REGISTERS * REGISTER_BYTES)?;
        let mut values = [0u64; REGISTERS];
        for (v, c) in values.iter_mut().zip(bytes.chunks_exact(REGISTER_BYTES)) {
            *v = u64::from_le_bytes(c.try_into().expect("chunks of REGISTER_BYTES"));
        }
        Registers::from_values(&values)
    }

    /// All values in GDB order: `x0..x31`, then `pc`.
    pub fn to_array(&self) -> [u64; REGISTERS] {
        let mut out = [0; REGISTERS];
        out[..GPRS].copy_from_slice(&self.x);
        out[PC] = self.pc;
        out
    }

    pub fn pc(&self) -> u64 {
        self.pc
    }

    pub fn sp(&self) -> u64 {
        self.x[SP]
    }

    pub fn ra(&self) -> u64 {
        self.x[RA]
    }

    pub fn fp(&self) -> u64 {
        self.x[FP]
    }

    /// Argument register `a<n>`; None for `n` ≥ [`ARG_REGISTERS`].
    pub fn arg(&self, n: usize) -> Option<u64> {
        (n < ARG_REGISTERS).then(|| self.x[A0 + n])
    }

    /// General register `x<n>` (also its DWARF number); None for `n` ≥ [`GPRS`].
    pub fn x(&self, n: usize) -> Option<u64> {
        self.x.get(n).copied()
    }

    /// The general registers `x0..x31`.
    pub fn gprs(&self) -> &[u64; GPRS] {
        &self.x
    }

    /// GDB register `regnum` (`x0..x31`, [`PC`]); None for any other number.
    pub fn get(&self, regnum: usize) -> Option<u64> {
        match regnum {
            PC => Some(self.pc),
            n => self.x(n),
        }
    }

    /// Sets GDB register `regnum` (`x0..x31`, [`PC`]). Panics on any other number: the caller
    /// names registers by this module's constants.
    pub fn set(&mut self, regnum: usize, value: u64) {
        match regnum {
            PC => self.pc = value,
            n if n < GPRS => self.x[n] = value,
            n => panic!("riscv64 has no register {n} in x0..x31, pc"),
        }
    }

    pub fn set_pc(&mut self, pc: u64) {
        self.pc = pc;
    }

    /// `x0..x31` by ABI name, in order.
    pub fn named_gprs(&self) -> impl Iterator<Item = (&'static str, u64)> + '_ {
        ABI_NAMES.iter().copied().zip(self.x.iter().copied())
    }
}

impl std::fmt::Debug for Registers {
    /// `Registers { pc: 0x…, zero: 0x0, ra: 0x…, … }`, in hex.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        struct Hex(u64);
        impl std::fmt::Debug for Hex {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                write!(f, "{:#x}", self.0)
            }
        }
        let mut s = f.debug_struct("Registers");
        s.field("pc", &Hex(self.pc));
        for (name, value) in self.named_gprs() {
            s.field(name, &Hex(value));
        }
        s.finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn named_accessors_follow_the_abi() {
        let mut values: Vec<u64> = (0..REGISTERS as u64).map(|n| 0x100 + n).collect();
        values.push(0xdead); // an extra register (a CSR) is ignored
        let r = Registers::from_values(&values).unwrap();
        assert_eq!((r.ra(), r.sp(), r.fp()), (0x101, 0x102, 0x108));
        assert_eq!(
            (r.arg(0), r.arg(7), r.arg(8)),
            (Some(0x10a), Some(0x111), None)
        );
        assert_eq!((r.pc(), r.get(PC), r.get(33)), (0x120, Some(0x120), None));
        assert_eq!((r.x(31), r.x(PC)), (Some(0x11f), None));
        assert_eq!(r.to_array().to_vec(), values[..REGISTERS]);
        assert!(Registers::from_values(&values[..PC]).is_none());
        assert_eq!(register_name(A0), Some("a0"));
        assert_eq!(register_name(PC), Some("pc"));
        assert_eq!(register_name(S0), Some("s0"));
    }

    #[test]
    fn from_g_reply_bytes_and_set() {
        let mut bytes: Vec<u8> = Vec::new();
        for n in 0..REGISTERS as u64 + 2 {
            bytes.extend_from_slice(&(n * 3).to_le_bytes());
        }
        let mut r = Registers::from_le_bytes(&bytes).unwrap();
        assert_eq!((r.sp(), r.pc()), (6, 96));
        assert!(Registers::from_le_bytes(&bytes[..REGISTERS * REGISTER_BYTES - 1]).is_none());
        r.set(SP, 0x80f4_3f00);
        r.set(PC, 0x8020_0000);
        assert_eq!((r.sp(), r.pc()), (0x80f4_3f00, 0x8020_0000));
        let text = format!("{r:?}");
        assert!(text.starts_with("Registers { pc: 0x80200000, zero: 0x0, ra: 0x3, sp: 0x80f43f00"));
    }

    #[test]
    #[should_panic(expected = "no register 40")]
    fn set_refuses_unknown_numbers() {
        Registers::default().set(40, 1);
    }

    #[test]
    fn callee_saved_set() {
        let saved: Vec<usize> = (0..GPRS).filter(|&n| is_callee_saved(n)).collect();
        assert_eq!(saved, [2, 8, 9, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27]);
    }
}
