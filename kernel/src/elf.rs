//! Minimal ELF64 (RISC-V, little-endian, static) reader: the entry point and the loadable
//! segments of a user program. Rejects anything it does not understand. Owns no state.

/// Segment permission bits of `Segment::flags` (ELF `p_flags`).
pub const PF_X: u32 = 1;
pub const PF_W: u32 = 2;
pub const PF_R: u32 = 4;

pub struct Segment {
    pub vaddr: u64,
    pub memsz: u64,
    pub data: &'static [u8],
    /// `PF_R`, `PF_W`, `PF_X` bits.
    pub flags: u32,
}

pub struct Elf {
    image: &'static [u8],
    pub entry: u64,
    phoff: usize,
    phnum: usize,
    phentsize: usize,
}

fn u16_at(b: &[u8], p: usize) -> Option<u16> {
    Some(u16::from_le_bytes(b.get(p..p + 2)?.try_into().ok()?))
}
fn u32_at(b: &[u8], p: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(p..p + 4)?.try_into().ok()?))
}
fn u64_at(b: &[u8], p: usize) -> Option<u64> {
    Some(u64::from_le_bytes(b.get(p..p + 8)?.try_into().ok()?))
}

const ELF_MAGIC: &[u8; 4] = b"\x7fELF";
/// `e_ident` bytes: class (64-bit) and data encoding (little-endian).
const EI_CLASS: usize = 4;
const ELFCLASS64: u8 = 2;
const EI_DATA: usize = 5;
const ELFDATA2LSB: u8 = 1;
const EM_RISCV: u16 = 243;
const PT_LOAD: u32 = 1;

/// Offsets of the ELF64 file header fields read here.
const E_MACHINE: usize = 18;
const E_ENTRY: usize = 24;
const E_PHOFF: usize = 32;
const E_PHENTSIZE: usize = 54;
const E_PHNUM: usize = 56;

/// Offsets of the ELF64 program header fields read here.
const P_TYPE: usize = 0;
const P_FLAGS: usize = 4;
const P_OFFSET: usize = 8;
const P_VADDR: usize = 16;
const P_FILESZ: usize = 32;
const P_MEMSZ: usize = 40;

impl Elf {
    pub fn parse(image: &'static [u8]) -> Option<Elf> {
        if image.get(..ELF_MAGIC.len())? != ELF_MAGIC
            || image[EI_CLASS] != ELFCLASS64
            || image[EI_DATA] != ELFDATA2LSB
            || u16_at(image, E_MACHINE)? != EM_RISCV
        {
            return None;
        }
        Some(Elf {
            image,
            entry: u64_at(image, E_ENTRY)?,
            phoff: u64_at(image, E_PHOFF)? as usize,
            phentsize: u16_at(image, E_PHENTSIZE)? as usize,
            phnum: u16_at(image, E_PHNUM)? as usize,
        })
    }

    /// The PT_LOAD segments; a malformed header ends the list early (`parse` callers check sizes).
    pub fn segments(&self) -> impl Iterator<Item = Segment> + '_ {
        (0..self.phnum).filter_map(move |i| {
            let b = self.image;
            let p = self.phoff + i * self.phentsize;
            if u32_at(b, p + P_TYPE)? != PT_LOAD {
                return None;
            }
            let flags = u32_at(b, p + P_FLAGS)?;
            let off = u64_at(b, p + P_OFFSET)? as usize;
            let vaddr = u64_at(b, p + P_VADDR)?;
            let filesz = u64_at(b, p + P_FILESZ)? as usize;
            let memsz = u64_at(b, p + P_MEMSZ)?;
            Some(Segment {
                vaddr,
                memsz,
                data: b.get(off..off.checked_add(filesz)?)?,
                flags,
            })
        })
    }
}
