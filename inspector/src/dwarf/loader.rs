//! ELF loading: the file's bytes, endianness, address size, symbol table, allocated sections and
//! the DWARF sections handed to gimli.
//!
//! Compressed debug sections (`SHF_COMPRESSED` with zlib or zstd, as `gcc -gz` or `objcopy
//! --compress-debug-sections` make them, and GNU `.zdebug_*`) are decompressed on load, up to
//! [`MAX_SECTION_BYTES`] each; a larger or undecodable one is a [`DwarfError::Section`] error.
//!
//! Relocatable objects (`.o`, as the tests compile) are made to look linked: every allocated
//! section gets a distinct synthetic base address (sections laid out in index order from
//! [`REL_BASE`]), symbol addresses become base + value, and absolute relocations are applied to
//! the DWARF and the allocated sections. Linked ELFs (the kernel) are used as they are.

use std::borrow::Cow;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use object::{
    Object, ObjectSection, ObjectSymbol, RelocationKind, RelocationTarget, SectionIndex,
    SectionKind, SymbolKind,
};

use super::error::{DwarfError, Result};
use super::limits::MAX_SECTION_BYTES;

/// The gimli reader used by the whole layer: owned, cheap to clone, `Send + Sync`.
pub type Reader = gimli::EndianArcSlice<gimli::RunTimeEndian>;

/// Where the first allocated section of a relocatable object is placed.
pub const REL_BASE: u64 = 0x1_0000;

/// Byte order of the ELF (and so of the target's memory).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Endian {
    Little,
    Big,
}

impl Endian {
    /// Reads an unsigned integer of `bytes.len()` (1..=16) bytes in this byte order.
    pub fn read_uint(self, bytes: &[u8]) -> u128 {
        debug_assert!(bytes.len() <= 16);
        // The common widths in one load each (a table read decodes tens of thousands).
        let little = self == Endian::Little;
        macro_rules! whole {
            ($t:ty) => {{
                let a = <[u8; std::mem::size_of::<$t>()]>::try_from(bytes).expect("length matched");
                return u128::from(if little {
                    <$t>::from_le_bytes(a)
                } else {
                    <$t>::from_be_bytes(a)
                });
            }};
        }
        match bytes.len() {
            8 => whole!(u64),
            4 => whole!(u32),
            2 => whole!(u16),
            1 => return u128::from(bytes[0]),
            _ => {}
        }
        let mut v: u128 = 0;
        match self {
            Endian::Little => {
                for &b in bytes.iter().rev() {
                    v = (v << 8) | u128::from(b);
                }
            }
            Endian::Big => {
                for &b in bytes {
                    v = (v << 8) | u128::from(b);
                }
            }
        }
        v
    }

    /// Writes the low `out.len()` bytes of `value` in this byte order.
    pub fn write_uint(self, value: u128, out: &mut [u8]) {
        let n = out.len();
        for i in 0..n {
            let byte = (value >> (8 * i)) as u8;
            match self {
                Endian::Little => out[i] = byte,
                Endian::Big => out[n - 1 - i] = byte,
            }
        }
    }

    fn gimli(self) -> gimli::RunTimeEndian {
        match self {
            Endian::Little => gimli::RunTimeEndian::Little,
            Endian::Big => gimli::RunTimeEndian::Big,
        }
    }
}

/// What an ELF symbol names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SymbolType {
    Function,
    Data,
    Other,
}

/// One named, defined symbol of the ELF symbol table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Symbol {
    pub name: String,
    /// Address in the target (for relocatable objects: synthetic, see the module doc).
    pub address: u64,
    /// `st_size`; 0 when the producer did not say.
    pub size: u64,
    pub kind: SymbolType,
    pub global: bool,
}

/// An allocated section: what the target's memory holds at `address` when the image is loaded.
#[derive(Clone, Debug)]
pub struct LoadedSection {
    pub name: String,
    pub address: u64,
    pub size: u64,
    /// `None` for sections without file contents (`.bss`): zeros at load time.
    pub data: Option<Arc<[u8]>>,
    pub executable: bool,
}

/// A loaded ELF file: symbols, allocated sections and the raw DWARF.
pub struct ElfFile {
    path: PathBuf,
    endian: Endian,
    address_size: u8,
    relocatable: bool,
    symbols: Vec<Symbol>,
    by_name: HashMap<String, usize>,
    sections: Vec<LoadedSection>,
    dwarf: Arc<gimli::Dwarf<Reader>>,
}

impl std::fmt::Debug for ElfFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ElfFile")
            .field("path", &self.path)
            .field("endian", &self.endian)
            .field("address_size", &self.address_size)
            .field("relocatable", &self.relocatable)
            .field("symbols", &self.symbols.len())
            .finish()
    }
}

impl ElfFile {
    /// Reads and parses the ELF at `path`.
    pub fn load(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let data = std::fs::read(path).map_err(|source| DwarfError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Self::parse(&data, path)
    }

    /// Parses ELF bytes; `path` is only used in messages. Fails with `NoDebugInfo` when the file
    /// has no `.debug_info`.
    pub fn parse(data: &[u8], path: &Path) -> Result<Self> {
        let not_elf = |reason: String| DwarfError::NotElf {
            path: path.to_path_buf(),
            reason,
        };
        let file = object::File::parse(data).map_err(|e| not_elf(e.to_string()))?;
        if file.format() != object::BinaryFormat::Elf {
            return Err(not_elf(format!("it is {:?}", file.format())));
        }
        let endian = if file.is_little_endian() {
            Endian::Little
        } else {
            Endian::Big
        };
        let address_size = if file.is_64() { 8 } else { 4 };
        let relocatable = file.kind() == object::ObjectKind::Relocatable;

        let bases = section_bases(&file, relocatable);
        let symbol_address = |sym: &object::Symbol<'_, '_>| -> u64 {
            match sym.section_index() {
                Some(idx) if relocatable => bases
                    .get(&idx)
                    .copied()
                    .unwrap_or(0)
                    .wrapping_add(sym.address()),
                _ => sym.address(),
            }
        };

        let mut symbols = Vec::new();
        for sym in file.symbols() {
            if sym.is_undefined() || matches!(sym.kind(), SymbolKind::Section | SymbolKind::File) {
                continue;
            }
            let Ok(name) = sym.name() else { continue };
            if name.is_empty() {
                continue;
            }
            symbols.push(Symbol {
                name: name.to_string(),
                address: symbol_address(&sym),
                size: sym.size(),
                kind: match sym.kind() {
                    SymbolKind::Text => SymbolType::Function,
                    SymbolKind::Data | SymbolKind::Tls => SymbolType::Data,
                    _ => SymbolType::Other,
                },
                global: sym.is_global(),
            });
        }
        // A global definition wins over a local one of the same name; then the first one.
        let mut by_name: HashMap<String, usize> = HashMap::new();
        for (i, s) in symbols.iter().enumerate() {
            match by_name.get(&s.name) {
                Some(&j) if symbols[j].global || !s.global => {}
                _ => {
                    by_name.insert(s.name.clone(), i);
                }
            }
        }

        let relocate = |section: &object::Section<'_, '_>, bytes: &mut [u8]| {
            if !relocatable {
                return;
            }
            for (offset, reloc) in section.relocations() {
                if reloc.kind() != RelocationKind::Absolute {
                    continue;
                }
                let width = match reloc.size() {
                    32 => 4,
                    64 => 8,
                    _ => continue,
                };
                let target = match reloc.target() {
                    RelocationTarget::Symbol(idx) => match file.symbol_by_index(idx) {
                        Ok(sym) if !sym.is_undefined() => symbol_address(&sym),
                        _ => 0,
                    },
                    RelocationTarget::Section(idx) => bases.get(&idx).copied().unwrap_or(0),
                    _ => continue,
                };
                let Some(slot) = usize::try_from(offset)
                    .ok()
                    .and_then(|o| bytes.get_mut(o..o.checked_add(width)?))
                else {
                    continue;
                };
                let implicit = if reloc.has_implicit_addend() {
                    endian.read_uint(slot) as u64
                } else {
                    0
                };
                let value = target
                    .wrapping_add(reloc.addend() as u64)
                    .wrapping_add(implicit);
                endian.write_uint(u128::from(value), slot);
            }
        };

        let mut sections = Vec::new();
        for section in file.sections() {
            let Some(&address) = bases.get(&section.index()) else {
                continue;
            };
            let data = if section.kind() == SectionKind::UninitializedData {
                None
            } else {
                let mut bytes = section_bytes(&section)
                    .map(Cow::into_owned)
                    .unwrap_or_default();
                relocate(&section, &mut bytes);
                Some(Arc::from(bytes))
            };
            sections.push(LoadedSection {
                name: section.name().unwrap_or("").to_string(),
                address,
                size: section.size(),
                data,
                executable: section.kind() == SectionKind::Text,
            });
        }

        let gendian = endian.gimli();
        let load_section = |id: gimli::SectionId| -> std::result::Result<Reader, DwarfError> {
            let bytes = match file.section_by_name(id.name()) {
                Some(section) => {
                    let mut bytes = section_bytes(&section)
                        .map_err(|reason| DwarfError::Section {
                            path: path.to_path_buf(),
                            section: id.name(),
                            reason,
                        })?
                        .into_owned();
                    relocate(&section, &mut bytes);
                    bytes
                }
                None => Vec::new(),
            };
            Ok(gimli::EndianArcSlice::new(Arc::from(bytes), gendian))
        };
        let dwarf = gimli::Dwarf::load(load_section)?;
        if gimli::Section::reader(&dwarf.debug_info).is_empty() {
            return Err(DwarfError::NoDebugInfo {
                path: path.to_path_buf(),
            });
        }

        Ok(ElfFile {
            path: path.to_path_buf(),
            endian,
            address_size,
            relocatable,
            symbols,
            by_name,
            sections,
            dwarf: Arc::new(dwarf),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn endian(&self) -> Endian {
        self.endian
    }

    /// Bytes of a target address: 4 or 8.
    pub fn address_size(&self) -> u8 {
        self.address_size
    }

    /// True for `.o` files, whose addresses are synthetic (see the module doc).
    pub fn is_relocatable(&self) -> bool {
        self.relocatable
    }

    /// All named, defined symbols.
    pub fn symbols(&self) -> &[Symbol] {
        &self.symbols
    }

    /// The symbol called `name` (a global one if there are several), or `None`.
    pub fn find_symbol(&self, name: &str) -> Option<&Symbol> {
        self.by_name.get(name).map(|&i| &self.symbols[i])
    }

    /// Like [`find_symbol`](Self::find_symbol), with an error that names the symbol and the ELF.
    pub fn symbol(&self, name: &str) -> Result<&Symbol> {
        self.find_symbol(name)
            .ok_or_else(|| DwarfError::SymbolNotFound {
                name: name.to_string(),
                path: self.path.clone(),
            })
    }

    /// The sized symbol whose `[address, address + size)` contains `address`; a zero-sized
    /// symbol only matches its own address. Prefers functions and data over other kinds.
    pub fn symbol_at(&self, address: u64) -> Option<&Symbol> {
        self.symbols
            .iter()
            .filter(|s| {
                address == s.address || (address > s.address && address - s.address < s.size)
            })
            .min_by_key(|s| (s.kind == SymbolType::Other, !s.global, s.size))
    }

    /// The allocated sections (what a loader puts in memory).
    pub fn sections(&self) -> &[LoadedSection] {
        &self.sections
    }

    /// True when `address` is inside an executable section (or the file has none to say).
    /// Line-table sequences of functions the linker discarded keep their unrelocated
    /// addresses (from 0): they are not code of this image.
    pub fn is_code(&self, address: u64) -> bool {
        let mut text = self.sections.iter().filter(|s| s.executable).peekable();
        text.peek().is_none() || text.any(|s| address >= s.address && address - s.address < s.size)
    }

    /// Copies the load-time contents of target memory at `address` into `buf` (zeros for
    /// `.bss`). Returns false if the range is not inside one allocated section. Useful for
    /// constant data (`&'static str` tags live in `.rodata`) and for build-id comparison.
    pub fn read_static(&self, address: u64, buf: &mut [u8]) -> bool {
        let len = buf.len() as u64;
        for s in &self.sections {
            if address < s.address || address.saturating_add(len) > s.address.saturating_add(s.size)
            {
                continue;
            }
            let start = (address - s.address) as usize;
            match &s.data {
                None => buf.fill(0),
                Some(data) => match data.get(start..start.saturating_add(buf.len())) {
                    Some(src) => buf.copy_from_slice(src),
                    None => return false,
                },
            }
            return true;
        }
        false
    }

    /// The DWARF sections, for the other modules of this layer.
    pub fn dwarf(&self) -> &gimli::Dwarf<Reader> {
        &self.dwarf
    }

    pub(crate) fn dwarf_arc(&self) -> Arc<gimli::Dwarf<Reader>> {
        Arc::clone(&self.dwarf)
    }

    pub(crate) fn gimli_error(&self, source: gimli::Error) -> DwarfError {
        DwarfError::Gimli {
            path: self.path.clone(),
            source,
        }
    }
}

/// A section's contents, decompressed if need be. Errors (as text, for the caller to wrap):
/// a compressed section that claims more than [`MAX_SECTION_BYTES`], or more than its zlib data
/// can expand to (refused before anything is allocated), or one that does not decompress to
/// its stated size.
pub(crate) fn section_bytes<'data>(
    section: &object::Section<'data, '_>,
) -> std::result::Result<Cow<'data, [u8]>, String> {
    let compressed = section.compressed_data().map_err(|e| e.to_string())?;
    let claimed = compressed.uncompressed_size;
    if compressed.format != object::CompressionFormat::None && claimed > MAX_SECTION_BYTES {
        return Err(format!(
            "it claims {claimed} bytes uncompressed, more than the limit of {MAX_SECTION_BYTES}"
        ));
    }
    // DEFLATE expands at most 1032:1: a zlib section claiming more is damaged (zstd has no such
    // bound: its run-length blocks expand far more).
    let zlib_bound = (compressed.data.len() as u64)
        .saturating_mul(1032)
        .saturating_add(64);
    if compressed.format == object::CompressionFormat::Zlib && claimed > zlib_bound {
        return Err(format!(
            "it claims {claimed} bytes uncompressed from {} bytes of zlib data, more than zlib \
             can expand to",
            compressed.data.len()
        ));
    }
    compressed.decompress().map_err(|e| e.to_string())
}

/// Synthetic base address of every allocated section: its own address in a linked file, a
/// distinct laid-out address in a relocatable one.
fn section_bases(file: &object::File<'_>, relocatable: bool) -> HashMap<SectionIndex, u64> {
    let mut bases = HashMap::new();
    let mut cursor = REL_BASE;
    for section in file.sections() {
        let alloc = match section.flags() {
            object::SectionFlags::Elf { sh_flags, .. } => sh_flags.contains(object::elf::SHF_ALLOC),
            _ => false,
        };
        if !alloc {
            continue;
        }
        if relocatable {
            // Saturating: absurd alignments or sizes (a damaged file) give odd addresses, not a
            // panic.
            let align = section.align().max(1);
            cursor = cursor.div_ceil(align).saturating_mul(align);
            bases.insert(section.index(), cursor);
            cursor = cursor.saturating_add(section.size().max(1));
        } else {
            bases.insert(section.index(), section.address());
        }
    }
    bases
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_width_reads_as_the_bytes_say_in_both_orders() {
        let bytes: Vec<u8> = (1..=16).collect();
        for n in 1..=16 {
            let b = &bytes[..n];
            let (mut little, mut big) = (0u128, 0u128);
            for (i, &x) in b.iter().enumerate() {
                little |= u128::from(x) << (8 * i);
                big = (big << 8) | u128::from(x);
            }
            assert_eq!(Endian::Little.read_uint(b), little, "{n} bytes, little");
            assert_eq!(Endian::Big.read_uint(b), big, "{n} bytes, big");
        }
    }

    #[test]
    fn endian_round_trip_and_order() {
        let mut b = [0u8; 4];
        Endian::Big.write_uint(0x1122_3344, &mut b);
        assert_eq!(b, [0x11, 0x22, 0x33, 0x44]);
        assert_eq!(Endian::Big.read_uint(&b), 0x1122_3344);
        assert_eq!(Endian::Little.read_uint(&b), 0x4433_2211);
        Endian::Little.write_uint(0x1122_3344, &mut b);
        assert_eq!(b, [0x44, 0x33, 0x22, 0x11]);
    }

    #[test]
    fn not_an_elf_says_so() {
        let err = ElfFile::parse(b"\x7fELF garbage", Path::new("x.bin")).unwrap_err();
        assert!(matches!(err, DwarfError::NotElf { .. }), "{err}");
        let err = ElfFile::parse(b"hello world, not an object", Path::new("x.bin")).unwrap_err();
        assert!(err.to_string().contains("not an ELF"), "{err}");
    }
}
