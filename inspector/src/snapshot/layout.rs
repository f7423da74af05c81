//! `TrackerLayout`: where the tracker's exported statics are and how their records are laid
//! out, resolved once from the ELF's symbols and DWARF (docs/tracker-abi.md).
//!
//! Contract: only `alloc_table` (with fields `used`, `pa`, `npages`, `owner`, `tag`) is
//! required, so a kernel built from the chapter's C header decodes too; `alloc_table_count`,
//! `alloc_tracker`, `alloc_events`, `proc_table` and `leakscope_build_id` are used when present.
//! Nothing here knows an offset or a size: all come from DWARF.

use crate::dwarf::{ArrayLayout, DebugInfo, DwarfError, Endian, FieldLayout, StructLayout};

/// An array of structs in guest memory.
#[derive(Clone, Debug)]
pub struct RecordArray {
    /// Guest address of element 0.
    pub address: u64,
    pub array: ArrayLayout,
    pub record: StructLayout,
}

impl RecordArray {
    fn resolve(debug: &DebugInfo, symbol: &str) -> Result<RecordArray, DwarfError> {
        let global = debug.global(symbol)?;
        let array = debug.array_layout(global.ty)?;
        let record = debug.struct_layout(array.element)?;
        Ok(RecordArray {
            address: global.address,
            array,
            record,
        })
    }

    /// Guest address and byte length of elements `start..end`.
    pub fn span(&self, start: u64, end: u64) -> (u64, usize) {
        (
            self.array.element_address(self.address, start),
            ((end - start) * self.array.stride) as usize,
        )
    }
}

/// The fields of an `alloc_table` entry the inspector reads.
#[derive(Clone, Debug)]
pub struct EntryFields {
    pub used: FieldLayout,
    pub pa: FieldLayout,
    pub npages: FieldLayout,
    pub owner: FieldLayout,
    pub tag: FieldLayout,
    pub time: Option<FieldLayout>,
}

/// A scalar global (`alloc_table_count`).
#[derive(Clone, Debug)]
pub struct Scalar {
    pub address: u64,
    pub size: usize,
}

/// Everything the snapshot reader needs to know about the kernel's exported tracker state.
#[derive(Clone, Debug)]
pub struct TrackerLayout {
    pub endian: Endian,
    pub table: RecordArray,
    pub entry: EntryFields,
    pub count: Option<Scalar>,
    /// `alloc_tracker`: one record.
    pub header: Option<(u64, StructLayout)>,
    pub events: Option<RecordArray>,
    pub procs: Option<RecordArray>,
    /// `leakscope_build_id`: address and the bytes the ELF file holds there.
    pub build_id: Option<(u64, Vec<u8>)>,
}

impl TrackerLayout {
    /// Resolves the layout from `debug`. Errors only when `alloc_table` or one of its required
    /// fields is missing; optional symbols that are absent are simply not used.
    pub fn resolve(debug: &DebugInfo) -> Result<TrackerLayout, DwarfError> {
        let table = RecordArray::resolve(debug, "alloc_table")?;
        let r = &table.record;
        let entry = EntryFields {
            used: r.require("used")?.clone(),
            pa: r.require("pa")?.clone(),
            npages: r.require("npages")?.clone(),
            owner: r.require("owner")?.clone(),
            tag: r.require("tag")?.clone(),
            time: r.field("time").cloned(),
        };
        let count = debug
            .global("alloc_table_count")
            .ok()
            .map(|g| Scalar {
                address: g.address,
                size: g.size as usize,
            })
            .filter(|s| (1..=8).contains(&s.size));
        let header = debug
            .global("alloc_tracker")
            .ok()
            .and_then(|g| Some((g.address, debug.struct_layout(g.ty).ok()?)));
        let events = RecordArray::resolve(debug, "alloc_events").ok();
        let procs = RecordArray::resolve(debug, "proc_table").ok();
        let build_id = debug.global("leakscope_build_id").ok().and_then(|g| {
            let mut bytes = vec![0; g.size as usize];
            debug
                .elf()
                .read_static(g.address, &mut bytes)
                .then_some((g.address, bytes))
        });
        Ok(TrackerLayout {
            endian: debug.endian(),
            table,
            entry,
            count,
            header,
            events,
            procs,
            build_id,
        })
    }

    /// True when the kernel exports the header with the generation protocol, so unchanged tables
    /// need not be read again.
    pub fn has_generation(&self) -> bool {
        self.header
            .as_ref()
            .is_some_and(|(_, h)| h.field("generation").is_some())
    }
}
