//! The `dwarf` layer: loads a kernel ELF and answers "where is this symbol, what is its layout,
//! what do these bytes mean, which source line is this address" — from the ELF's own DWARF,
//! with nothing about the tracker hard-coded.
//!
//! Files: `loader` (ELF, sections, symbols, relocation of `.o` files), `index` (one pass over the
//! DIEs), `types` (the type model), `lookup` (globals by symbol name/address), `value` (generic
//! decoding into [`Value`]), `layout` (field offsets for the hot path), `lines` (line table and
//! functions), `params` (formal parameters and inlined-call arguments at a pc), `unwind`
//! (call-frame information), `limits` (the bounds a malformed file runs into), `error`.
//!
//! Typical use:
//! ```no_run
//! # fn main() -> Result<(), inspector::dwarf::DwarfError> {
//! use inspector::dwarf::DebugInfo;
//! let info = DebugInfo::load("build/kernel.elf")?;
//! let table = info.global("alloc_table")?;
//! let array = info.array_layout(table.ty)?;
//! let entry = info.struct_layout(array.element)?;
//! let pa = entry.require("pa")?;
//! # let bytes = vec![0u8; table.size as usize];
//! for i in 0..array.len {
//!     let record = array.element_bytes(&bytes, i).unwrap();
//!     let _pa = pa.read_u64(record);
//! }
//! # Ok(()) }
//! ```

mod error;
mod index;
mod layout;
pub mod limits;
mod lines;
mod loader;
mod lookup;
mod params;
mod segments;
mod types;
mod unwind;
mod value;

use std::path::Path;

pub use error::{DwarfError, Result};
pub use index::{eval_static_address, FunctionDie, VariableDie};
pub use layout::{ArrayLayout, FieldKind, FieldLayout, StructLayout};
pub use lines::{Frame, FunctionInfo, LineMatch, SourceLocation};
pub use loader::{ElfFile, Endian, LoadedSection, Reader, Symbol, SymbolType, REL_BASE};
pub use lookup::Global;
pub use params::{
    evaluate_frame_base, evaluate_location, read_pieces, EvalError, FunctionParams, InlinedParams,
    LocRange, Machine, ParamLocation, Parameter,
};
pub use segments::load_segments;
pub use types::{
    BaseEncoding, Enumerator, Member, Qualifier, StrLen, StrRef, StringKind, TypeId, TypeInfo,
    TypeKind, TypeTable,
};
pub use unwind::{FrameRegs, Unwinder, Unwound};
pub use value::{decode_value, Value};

/// A loaded ELF with its DWARF indexed: the entry point of this layer.
pub struct DebugInfo {
    elf: ElfFile,
    index: index::DieIndex,
    /// Behind a mutex: addr2line's lazily parsed caches are not `Sync`, and `DebugInfo` is shared
    /// across threads. Held only for one lookup.
    addr2line: std::sync::Mutex<addr2line::Context<Reader>>,
}

impl std::fmt::Debug for DebugInfo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DebugInfo")
            .field("elf", &self.elf)
            .field("types", &self.index.types.len())
            .field("variables", &self.index.variables.len())
            .field("functions", &self.index.functions.len())
            .finish()
    }
}

impl DebugInfo {
    /// Loads the ELF at `path` and indexes its DWARF.
    pub fn load(path: impl AsRef<Path>) -> Result<Self> {
        Self::from_elf(ElfFile::load(path)?)
    }

    /// Indexes an already loaded ELF.
    pub fn from_elf(elf: ElfFile) -> Result<Self> {
        let index =
            index::build(elf.dwarf(), elf.address_size()).map_err(|e| elf.gimli_error(e))?;
        let addr2line =
            addr2line::Context::from_arc_dwarf(elf.dwarf_arc()).map_err(|e| elf.gimli_error(e))?;
        Ok(DebugInfo {
            elf,
            index,
            addr2line: std::sync::Mutex::new(addr2line),
        })
    }

    pub fn elf(&self) -> &ElfFile {
        &self.elf
    }

    pub fn types(&self) -> &TypeTable {
        &self.index.types
    }

    pub fn endian(&self) -> Endian {
        self.elf.endian()
    }

    pub fn address_size(&self) -> u8 {
        self.elf.address_size()
    }

    /// All variables with a static address, as DWARF describes them.
    pub fn variables(&self) -> &[VariableDie] {
        &self.index.variables
    }

    /// All concrete functions DWARF describes with an address range.
    pub fn functions(&self) -> &[FunctionDie] {
        &self.index.functions
    }
}

#[cfg(test)]
mod tests {
    /// The TUI and the sampler share one `DebugInfo` across threads (`Arc<DebugInfo>`).
    #[test]
    fn debug_info_is_send_and_sync() {
        fn check<T: Send + Sync>() {}
        check::<super::DebugInfo>();
        check::<super::Value>();
        check::<super::StructLayout>();
    }
}
