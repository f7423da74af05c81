//! The `dwarf` layer's error type: every variant names what failed and what the user can do next.

use std::path::PathBuf;

/// Errors from loading an ELF and reading its DWARF.
#[derive(Debug, thiserror::Error)]
pub enum DwarfError {
    #[error(
        "cannot read {path}: {source}; check the path (the kernel ELF is built by `make kernel`)"
    )]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("{path} is not an ELF file ({reason}); pass the kernel ELF, e.g. build/kernel.elf")]
    NotElf { path: PathBuf, reason: String },

    #[error("{path} has no DWARF debug info (.debug_info is missing or empty); rebuild with debug info: make kernel")]
    NoDebugInfo { path: PathBuf },

    #[error("cannot read section {section} of {path}: {reason}; the file is damaged or compressed in a way the inspector does not read (zlib and zstd are read): rebuild it (make kernel)")]
    Section {
        path: PathBuf,
        section: &'static str,
        reason: String,
    },

    #[error("symbol `{name}` not found in {path}; is this the Leakscope kernel ELF? rebuild it with make kernel")]
    SymbolNotFound { name: String, path: PathBuf },

    #[error(
        "no DWARF variable describes `{name}` in {path}; rebuild with full debug info: make kernel"
    )]
    VariableNotFound { name: String, path: PathBuf },

    #[error("function `{name}` not found in {path} (neither in the symbol table nor in DWARF)")]
    FunctionNotFound { name: String, path: PathBuf },

    #[error("malformed DWARF in {path}: {source}; rebuild the ELF (make kernel) or report a bug")]
    Gimli {
        path: PathBuf,
        #[source]
        source: gimli::Error,
    },

    #[error("type `{type_name}` is {found}, expected {expected}; the ELF and the inspector disagree on the data layout")]
    UnexpectedType {
        type_name: String,
        expected: &'static str,
        found: &'static str,
    },

    #[error("type `{type_name}` has no field `{field}` (fields: {available}); the ELF and the inspector disagree on the tracker ABI")]
    FieldNotFound {
        type_name: String,
        field: String,
        available: String,
    },

    #[error("type `{type_name}` has no known size in DWARF; cannot decode it")]
    UnsizedType { type_name: String },

    #[error(
        "{what} is implausible: {reason}; the ELF's DWARF is damaged or describes something \
             the inspector cannot read (rebuild the kernel with make kernel)"
    )]
    Implausible { what: String, reason: String },

    #[error("value of type `{type_name}` needs {needed} bytes, got {got}")]
    ShortBuffer {
        type_name: String,
        needed: u64,
        got: usize,
    },
}

pub type Result<T, E = DwarfError> = std::result::Result<T, E>;

impl DwarfError {
    /// An [`Implausible`](DwarfError::Implausible) error: `what` names the thing (``array
    /// `alloc_table` ``), `reason` says which bound it breaks.
    pub(crate) fn implausible(what: impl Into<String>, reason: impl Into<String>) -> DwarfError {
        DwarfError::Implausible {
            what: what.into(),
            reason: reason.into(),
        }
    }
}
