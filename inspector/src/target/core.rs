//! [`CoreFile`]: guest memory from a QEMU memory dump (`dump-guest-memory FILE`): an ELF core
//! file whose `PT_LOAD` segments carry the guest-physical address of the memory they hold
//! (`p_paddr`: 0x1000 for the boot ROM, 0x8000_0000 for RAM on `virt`). The guest is not
//! there: the dump is one stopped moment, read as often as one likes.
//!
//! Contracts: kernel addresses are translated to physical ones through the kernel ELF's load
//! segments (as [`RamFile`](super::RamFile) does); a read must lie inside one segment's file
//! bytes, else it is [`TargetError::Unreadable`]; a file that is not an ELF core is refused
//! at [`CoreFile::open`] with what it is. (A plain copy of QEMU's RAM file is no ELF: read it
//! with a `RamFile` instead; [`is_elf_core`] tells the two apart.)
//!
//! The harts' pcs at the dump come from its `NT_PRSTATUS` notes (QEMU writes one per hart,
//! named `CORE`, with Linux's `elf_prstatus` layout: `pr_reg` at byte 112, the pc first). A
//! note too short for that is skipped; a dump without any has no pcs.

use std::fs::File;
use std::path::{Path, PathBuf};

use memmap2::{Mmap, MmapOptions};
use object::read::elf::{FileHeader, ProgramHeader};
use object::{elf, Endianness};

use super::{GuestMemory, Segment, TargetError};

/// One `PT_LOAD` segment of the dump: `len` bytes of guest-physical memory at `paddr`, at
/// `offset` in the file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CoreSegment {
    pub paddr: u64,
    pub offset: u64,
    pub len: u64,
}

/// See the module doc.
#[derive(Debug)]
pub struct CoreFile {
    path: PathBuf,
    map: Mmap,
    memory: Vec<CoreSegment>,
    kernel: Vec<Segment>,
    pcs: Vec<u64>,
}

/// Where the pc is in an `NT_PRSTATUS` note's descriptor of a 64-bit core (`pr_reg`'s offset
/// in Linux's `elf_prstatus`; RISC-V's `user_regs_struct` starts with the pc).
const PRSTATUS_PC: usize = 112;

/// True when `bytes` (a file's start) is an ELF core file.
pub fn is_elf_core(bytes: &[u8]) -> bool {
    /// `e_type` of a core file.
    const ET_CORE: u16 = 4;
    bytes.len() >= 18
        && bytes[..4] == *b"\x7fELF"
        && match bytes[5] {
            1 => u16::from_le_bytes([bytes[16], bytes[17]]) == ET_CORE,
            2 => u16::from_be_bytes([bytes[16], bytes[17]]) == ET_CORE,
            _ => false,
        }
}

impl CoreFile {
    /// Opens the dump at `path`; `kernel` are the kernel ELF's load segments (for address
    /// translation). Err: unreadable, or not a 64-bit ELF core with memory segments.
    pub fn open(path: &Path, kernel: Vec<Segment>) -> Result<CoreFile, String> {
        let file = File::open(path).map_err(|e| format!("cannot open {}: {e}", path.display()))?;
        // SAFETY: a private read-only mapping of a file nobody is expected to change while
        // the inspector reads it (a finished dump); reads copy out through bounds-checked
        // slices. A file truncated under us could fault: the same contract as any tool that
        // maps its input.
        let map = unsafe { MmapOptions::new().map(&file) }
            .map_err(|e| format!("cannot map {}: {e}", path.display()))?;
        if !is_elf_core(&map) {
            return Err(format!(
                "{} is not an ELF core file (as QEMU's dump-guest-memory writes)",
                path.display()
            ));
        }
        let memory = load_segments(&map).map_err(|e| {
            format!(
                "{}: the core file's program headers do not parse: {e}",
                path.display()
            )
        })?;
        if memory.is_empty() {
            return Err(format!(
                "{} holds no memory (no PT_LOAD segment with file bytes)",
                path.display()
            ));
        }
        let pcs = hart_pcs(&map).map_err(|e| {
            format!(
                "{}: the core file's notes do not parse: {e}",
                path.display()
            )
        })?;
        Ok(CoreFile {
            path: path.to_path_buf(),
            map,
            memory,
            kernel,
            pcs,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The dump's memory segments.
    pub fn segments(&self) -> &[CoreSegment] {
        &self.memory
    }

    /// Each hart's pc at the dump, in the order of the dump's notes (QEMU: by hart); empty
    /// when the dump has no `NT_PRSTATUS` notes.
    pub fn hart_pcs(&self) -> &[u64] {
        &self.pcs
    }

    /// The physical address of kernel address `addr`.
    fn physical(&self, addr: u64) -> u64 {
        self.kernel
            .iter()
            .find(|s| addr >= s.vaddr && addr - s.vaddr < s.len)
            .map_or(addr, |s| s.paddr + (addr - s.vaddr))
    }
}

fn load_segments(data: &[u8]) -> Result<Vec<CoreSegment>, object::Error> {
    let header = elf::FileHeader64::<Endianness>::parse(data)?;
    let endian = header.endian()?;
    Ok(header
        .program_headers(endian, data)?
        .iter()
        .filter(|p| p.p_type(endian) == elf::PT_LOAD && p.p_filesz(endian) > 0)
        .map(|p| CoreSegment {
            paddr: p.p_paddr(endian),
            offset: p.p_offset(endian),
            len: p.p_filesz(endian),
        })
        .collect())
}

/// The pc of every `CORE`/`NT_PRSTATUS` note of the core in `data`.
fn hart_pcs(data: &[u8]) -> Result<Vec<u64>, object::Error> {
    let header = elf::FileHeader64::<Endianness>::parse(data)?;
    let endian = header.endian()?;
    let mut pcs = Vec::new();
    for ph in header.program_headers(endian, data)? {
        let Some(mut notes) = ph.notes(endian, data)? else {
            continue;
        };
        while let Some(note) = notes.next()? {
            if note.name() != b"CORE" || note.n_type(endian) != elf::NT_PRSTATUS {
                continue;
            }
            if let Some(pc) = note.desc().get(PRSTATUS_PC..PRSTATUS_PC + 8) {
                let pc: [u8; 8] = pc.try_into().expect("8 bytes");
                pcs.push(match endian {
                    Endianness::Little => u64::from_le_bytes(pc),
                    Endianness::Big => u64::from_be_bytes(pc),
                });
            }
        }
    }
    Ok(pcs)
}

impl GuestMemory for CoreFile {
    fn read_guest(&mut self, addr: u64, buf: &mut [u8]) -> Result<(), TargetError> {
        let unreadable = || TargetError::Unreadable {
            addr,
            len: buf.len(),
            code: None,
        };
        let pa = self.physical(addr);
        let seg = self
            .memory
            .iter()
            .find(|s| pa >= s.paddr && pa - s.paddr < s.len)
            .ok_or_else(unreadable)?;
        let within = pa - seg.paddr;
        if within + buf.len() as u64 > seg.len {
            return Err(unreadable());
        }
        let start = usize::try_from(seg.offset + within).map_err(|_| unreadable())?;
        let bytes = self
            .map
            .get(start..start + buf.len())
            .ok_or_else(unreadable)?;
        buf.copy_from_slice(bytes);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    /// A little-endian ELF64 core with one PT_LOAD of `ram` at physical `paddr` (virtual 0,
    /// as QEMU writes it).
    pub(crate) fn core_bytes(paddr: u64, ram: &[u8]) -> Vec<u8> {
        core_with_pcs(paddr, ram, &[])
    }

    /// Like [`core_bytes`], with a PT_NOTE first holding one `NT_PRSTATUS` note per pc (as
    /// QEMU writes one per hart), when `pcs` is not empty.
    fn core_with_pcs(paddr: u64, ram: &[u8], pcs: &[u64]) -> Vec<u8> {
        let mut notes = Vec::new();
        for &pc in pcs {
            notes.extend(5u32.to_le_bytes()); // n_namesz: "CORE\0"
            notes.extend(376u32.to_le_bytes()); // n_descsz: elf_prstatus
            notes.extend(1u32.to_le_bytes()); // NT_PRSTATUS
            notes.extend(b"CORE\0\0\0\0");
            let mut desc = vec![0u8; 376];
            desc[PRSTATUS_PC..PRSTATUS_PC + 8].copy_from_slice(&pc.to_le_bytes());
            notes.extend(desc);
        }
        let phnum: u16 = if pcs.is_empty() { 1 } else { 2 };
        let notes_at = 64 + 56 * u64::from(phnum);
        let ram_at = notes_at + notes.len() as u64;
        let mut f = vec![0u8; 64];
        f[..4].copy_from_slice(b"\x7fELF");
        f[4] = 2; // 64-bit
        f[5] = 1; // little-endian
        f[6] = 1;
        f[16..18].copy_from_slice(&4u16.to_le_bytes()); // ET_CORE
        f[18..20].copy_from_slice(&243u16.to_le_bytes()); // EM_RISCV
        f[20..24].copy_from_slice(&1u32.to_le_bytes());
        f[32..40].copy_from_slice(&64u64.to_le_bytes()); // e_phoff
        f[52..54].copy_from_slice(&64u16.to_le_bytes()); // e_ehsize
        f[54..56].copy_from_slice(&56u16.to_le_bytes()); // e_phentsize
        f[56..58].copy_from_slice(&phnum.to_le_bytes()); // e_phnum
        if !pcs.is_empty() {
            let mut ph = vec![0u8; 56];
            ph[..4].copy_from_slice(&4u32.to_le_bytes()); // PT_NOTE
            ph[8..16].copy_from_slice(&notes_at.to_le_bytes()); // p_offset
            ph[32..40].copy_from_slice(&(notes.len() as u64).to_le_bytes()); // p_filesz
            ph[48..56].copy_from_slice(&4u64.to_le_bytes()); // p_align
            f.extend(ph);
        }
        let mut ph = vec![0u8; 56];
        ph[..4].copy_from_slice(&1u32.to_le_bytes()); // PT_LOAD
        ph[8..16].copy_from_slice(&ram_at.to_le_bytes()); // p_offset
        ph[24..32].copy_from_slice(&paddr.to_le_bytes()); // p_paddr
        ph[32..40].copy_from_slice(&(ram.len() as u64).to_le_bytes()); // p_filesz
        ph[40..48].copy_from_slice(&(ram.len() as u64).to_le_bytes()); // p_memsz
        f.extend(ph);
        f.extend(notes);
        f.extend_from_slice(ram);
        f
    }

    #[test]
    fn the_harts_pcs_come_from_the_prstatus_notes() {
        let ram: Vec<u8> = (0..=255).collect();
        let mut tmp = tempfile::NamedTempFile::new().unwrap();
        let pcs = [0x8020_1234, 0x8020_5678];
        tmp.write_all(&core_with_pcs(0x8000_0000, &ram, &pcs))
            .unwrap();
        let mut c = CoreFile::open(tmp.path(), Vec::new()).unwrap();
        assert_eq!(c.hart_pcs(), pcs);
        let mut buf = [0u8; 2];
        c.read_guest(0x8000_0002, &mut buf).unwrap();
        assert_eq!(buf, [2, 3], "the memory is read past the notes");
        let mut plain = tempfile::NamedTempFile::new().unwrap();
        plain.write_all(&core_bytes(0x8000_0000, &ram)).unwrap();
        assert!(CoreFile::open(plain.path(), Vec::new())
            .unwrap()
            .hart_pcs()
            .is_empty());
    }

    #[test]
    fn reads_physical_memory_through_the_load_segments() {
        let ram: Vec<u8> = (0..=255).collect();
        let mut tmp = tempfile::NamedTempFile::new().unwrap();
        tmp.write_all(&core_bytes(0x8000_0000, &ram)).unwrap();
        let high = Segment {
            vaddr: 0xffff_ffc0_0000_0000,
            paddr: 0x8000_0040,
            len: 0x40,
            writable: false,
        };
        let mut c = CoreFile::open(tmp.path(), vec![high]).unwrap();
        assert_eq!(c.segments().len(), 1);
        let mut buf = [0u8; 4];
        c.read_guest(0x8000_0010, &mut buf).unwrap();
        assert_eq!(buf, [16, 17, 18, 19]);
        c.read_guest(0xffff_ffc0_0000_0004, &mut buf).unwrap();
        assert_eq!(buf, [68, 69, 70, 71]);
        for addr in [0x7fff_ffff, 0x8000_00fe, 0x9000_0000] {
            assert!(
                matches!(
                    c.read_guest(addr, &mut buf),
                    Err(TargetError::Unreadable { .. })
                ),
                "{addr:#x}"
            );
        }
    }

    #[test]
    fn a_file_that_is_no_core_is_refused_with_what_it_is() {
        let mut tmp = tempfile::NamedTempFile::new().unwrap();
        tmp.write_all(&[0u8; 4096]).unwrap();
        let e = CoreFile::open(tmp.path(), Vec::new()).unwrap_err();
        assert!(e.contains("not an ELF core file"), "{e}");
        assert!(!is_elf_core(b"\x7fELF"));
        assert!(is_elf_core(&core_bytes(0, &[1, 2, 3])));
    }
}
