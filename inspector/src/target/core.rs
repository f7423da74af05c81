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
}

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
        Ok(CoreFile {
            path: path.to_path_buf(),
            map,
            memory,
            kernel,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The dump's memory segments.
    pub fn segments(&self) -> &[CoreSegment] {
        &self.memory
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
        f[56..58].copy_from_slice(&1u16.to_le_bytes()); // e_phnum
        let mut ph = vec![0u8; 56];
        ph[..4].copy_from_slice(&1u32.to_le_bytes()); // PT_LOAD
        ph[8..16].copy_from_slice(&120u64.to_le_bytes()); // p_offset
        ph[24..32].copy_from_slice(&paddr.to_le_bytes()); // p_paddr
        ph[32..40].copy_from_slice(&(ram.len() as u64).to_le_bytes()); // p_filesz
        ph[40..48].copy_from_slice(&(ram.len() as u64).to_le_bytes()); // p_memsz
        f.extend(ph);
        f.extend_from_slice(ram);
        f
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
