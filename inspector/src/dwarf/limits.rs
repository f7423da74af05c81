//! Bounds on what the inspector believes of an ELF's DWARF. A damaged or hostile file must give
//! an error, never an arithmetic overflow, a multi-terabyte allocation, an endless loop or a
//! million items decoded from zero bytes. The limits are far above anything a teaching kernel
//! on a 128 MiB guest describes, and far below what would hurt the host.
//!
//! The tracker's own, tighter bounds (spans checked against the guest's RAM at sample time)
//! live with the tracker layout in `snapshot`.

/// Largest object (a global, an array, a record) whose layout is accepted: 1 GiB.
pub const MAX_OBJECT_BYTES: u64 = 1 << 30;

/// Largest value the generic decoder and the location reader take: 64 MiB.
pub const MAX_VALUE_BYTES: u64 = 64 << 20;

/// Most `Value` nodes one decode produces: 2^20. The kernel's whole `alloc_table` (8192
/// records of six fields) needs about 57,000.
pub const MAX_VALUE_ITEMS: usize = 1 << 20;

/// Deepest nesting one decode follows; deeper values come back as raw bytes.
pub const MAX_VALUE_DEPTH: usize = 32;

/// Largest debug section accepted, after decompression: 1 GiB.
pub const MAX_SECTION_BYTES: u64 = 1 << 30;

/// Most operations one DWARF expression evaluation may execute (`DW_OP_skip` can loop).
pub const MAX_EXPRESSION_STEPS: u32 = 10_000;
