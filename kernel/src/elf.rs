//! Minimal ELF64 (RISC-V, little-endian, static) reader: the entry point and the loadable
//! segments of a user program. Rejects anything it does not understand. Owns no state.

pub struct Segment {
    pub vaddr: u64,
    pub memsz: u64,
    pub data: &'static [u8],
    /// PF_X = 1, PF_W = 2, PF_R = 4.
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

const PT_LOAD: u32 = 1;
const EM_RISCV: u16 = 243;

impl Elf {
    pub fn parse(image: &'static [u8]) -> Option<Elf> {
        if image.get(..4)? != b"\x7fELF"
            || image[4] != 2
            || image[5] != 1
            || u16_at(image, 18)? != EM_RISCV
        {
            return None;
        }
        Some(Elf {
            image,
            entry: u64_at(image, 24)?,
            phoff: u64_at(image, 32)? as usize,
            phentsize: u16_at(image, 54)? as usize,
            phnum: u16_at(image, 56)? as usize,
        })
    }

    /// The PT_LOAD segments; a malformed header ends the list early (`parse` callers check sizes).
    pub fn segments(&self) -> impl Iterator<Item = Segment> + '_ {
        (0..self.phnum).filter_map(move |i| {
            let b = self.image;
            let p = self.phoff + i * self.phentsize;
            if u32_at(b, p)? != PT_LOAD {
                return None;
            }
            let flags = u32_at(b, p + 4)?;
            let off = u64_at(b, p + 8)? as usize;
            let vaddr = u64_at(b, p + 16)?;
            let filesz = u64_at(b, p + 32)? as usize;
            let memsz = u64_at(b, p + 40)?;
            Some(Segment {
                vaddr,
                memsz,
                data: b.get(off..off.checked_add(filesz)?)?,
                flags,
            })
        })
    }
}
