//! The ELF's load segments as the RAM-file reader needs them: where each `PT_LOAD` range of
//! kernel (virtual) addresses lives in physical memory (`p_vaddr → p_paddr`), so a kernel
//! linked high reads from the right place in guest RAM.

use object::read::elf::{FileHeader, ProgramHeader};
use object::{elf, Endianness};
use std::path::Path;

use super::{DwarfError, Result};
use crate::target::Segment;

/// The `PT_LOAD` segments of the ELF at `path` with a non-zero size in memory. An ELF without
/// program headers (a relocatable object) has none: addresses are then taken as physical.
pub fn load_segments(path: &Path) -> Result<Vec<Segment>> {
    let data = std::fs::read(path).map_err(|source| DwarfError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let not_elf = |reason: String| DwarfError::NotElf {
        path: path.to_path_buf(),
        reason,
    };
    let parsed = match object::FileKind::parse(&*data).map_err(|e| not_elf(e.to_string()))? {
        object::FileKind::Elf64 => segments::<elf::FileHeader64<Endianness>>(&data),
        object::FileKind::Elf32 => segments::<elf::FileHeader32<Endianness>>(&data),
        other => return Err(not_elf(format!("it is {other:?}"))),
    };
    parsed.map_err(|e| not_elf(e.to_string()))
}

fn segments<H: FileHeader<Endian = Endianness>>(
    data: &[u8],
) -> std::result::Result<Vec<Segment>, object::Error> {
    let header = H::parse(data)?;
    let endian = header.endian()?;
    Ok(header
        .program_headers(endian, data)?
        .iter()
        .filter(|p| p.p_type(endian) == elf::PT_LOAD && p.p_memsz(endian).into() > 0)
        .map(|p| Segment {
            vaddr: p.p_vaddr(endian).into(),
            paddr: p.p_paddr(endian).into(),
            len: p.p_memsz(endian).into(),
            writable: p.p_flags(endian).0 & elf::PF_W.0 != 0,
        })
        .collect())
}
