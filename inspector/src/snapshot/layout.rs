//! `TrackerLayout`: where the tracker's exported statics are and how their records are laid
//! out, resolved once from the ELF's symbols and DWARF (docs/tracker-abi.md).
//!
//! Contract: only `alloc_table` (with fields `used`, `pa`, `npages`, `owner`, `tag`) is
//! required, so a kernel built from the chapter's C header decodes too; `alloc_table_count`,
//! `alloc_tracker`, `alloc_events`, `proc_table` and `leakscope_build_id` are used when present.
//! Nothing here knows an offset or a size: all come from DWARF.
//!
//! Checked when resolved, before anything halts the guest: every array has records of non-zero
//! size that fit their stride, at most [`MAX_RECORDS`] of them in at most [`MAX_SPAN_BYTES`]
//! that do not wrap the address space; the header and the build stamp are small; the entry
//! fields the sampler reads as integers are 1 to 8 bytes. A symbol that is present but breaks
//! one of these is an [`Implausible`](DwarfError::Implausible) error, even an optional one: a
//! layout that is half believed would be worse than none. (The sampler checks the spans again
//! against the guest's RAM size once the header has told it.)

use crate::dwarf::limits::MAX_OBJECT_BYTES;
use crate::dwarf::{
    ArrayLayout, DebugInfo, DwarfError, Endian, FieldKind, FieldLayout, StructLayout,
};

/// Largest span of one tracker array (table, event ring, process table) accepted at load
/// time, when the guest's RAM size is not known yet: it must fit in RAM, and no guest this
/// inspector serves has 1 GiB.
pub const MAX_SPAN_BYTES: u64 = MAX_OBJECT_BYTES;
/// Most records of one tracker array (the kernel's table has 8192, its ring 1024).
pub const MAX_RECORDS: u64 = 1 << 20;
/// Largest `alloc_tracker` header: it is read at every snapshot.
pub const MAX_HEADER_BYTES: u64 = 64 * 1024;
/// Largest `leakscope_build_id`.
pub const MAX_BUILD_ID_BYTES: u64 = 256;

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
        // The layout errors name a type; say which symbol has it.
        let named = |e: DwarfError| match e {
            DwarfError::Implausible { what, reason } => DwarfError::Implausible {
                what: format!("`{symbol}`, {what},"),
                reason,
            },
            e => e,
        };
        let global = debug.global(symbol)?;
        let array = debug.array_layout(global.ty).map_err(named)?;
        let record = debug.struct_layout(array.element).map_err(named)?;
        let r = RecordArray {
            address: global.address,
            array,
            record,
        };
        r.check(symbol)?;
        Ok(r)
    }

    /// The load-time bounds of the module doc; `symbol` names the array in the error.
    pub fn check(&self, symbol: &str) -> Result<(), DwarfError> {
        let (len, stride) = (self.array.len, self.array.stride);
        let bytes = stride.checked_mul(len);
        let reason = if len == 0 {
            Some("it has no elements".to_string())
        } else if stride == 0 || self.record.size == 0 {
            Some("its records have no size".to_string())
        } else if self.record.size > stride {
            Some(format!(
                "its {}-byte records do not fit their {stride}-byte stride",
                self.record.size
            ))
        } else if len > MAX_RECORDS {
            Some(format!("{len} records, more than {MAX_RECORDS}"))
        } else if bytes.is_none_or(|b| b > MAX_SPAN_BYTES) {
            Some(format!(
                "{len} records of {stride} bytes, more than {MAX_SPAN_BYTES} bytes"
            ))
        } else if bytes.and_then(|b| self.address.checked_add(b)).is_none() {
            Some(format!(
                "it runs past the end of the address space from {:#x}",
                self.address
            ))
        } else {
            None
        };
        match reason {
            Some(reason) => Err(DwarfError::implausible(format!("`{symbol}`"), reason)),
            None => Ok(()),
        }
    }

    /// Guest address and byte length of elements `start..end`; `None` if `start..end` is not
    /// inside the array or the length does not fit a `usize`.
    pub fn span(&self, start: u64, end: u64) -> Option<(u64, usize)> {
        if start > end || end > self.array.len {
            return None;
        }
        let len = (end - start).checked_mul(self.array.stride)?;
        Some((
            self.array.element_address(self.address, start),
            usize::try_from(len).ok()?,
        ))
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
    /// The allocation's call sites (docs/tracker-abi.md), when the kernel records them.
    pub sites: Option<SiteFields>,
}

/// The site fields of an entry or event record: `site`, `user_site` (integers of 1 to 8
/// bytes), `user_program` (a string: events only; an entry's program is its owner's) and
/// `owner` (whose process names the program when the record does not). Optional as a whole:
/// a kernel without them (an older one, the chapter's C kernel) decodes without sites.
#[derive(Clone, Debug)]
pub struct SiteFields {
    pub site: FieldLayout,
    pub user_site: Option<FieldLayout>,
    pub user_program: Option<FieldLayout>,
    pub owner: Option<FieldLayout>,
}

impl SiteFields {
    /// The site fields of `record`: `None` without a `site` integer field; the others are used
    /// when of the right kind.
    pub fn resolve(record: &StructLayout) -> Option<SiteFields> {
        let int = |f: &&FieldLayout| (1..=8).contains(&f.size);
        Some(SiteFields {
            site: record.field("site").filter(int)?.clone(),
            user_site: record.field("user_site").filter(int).cloned(),
            user_program: record
                .field("user_program")
                .filter(|p| matches!(p.kind, FieldKind::Str(_)))
                .cloned(),
            owner: record.field("owner").filter(int).cloned(),
        })
    }
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
    /// Resolves the layout from `debug`. Errors when `alloc_table` or one of its required
    /// fields is missing, and when any tracker symbol breaks the bounds of the module doc;
    /// optional symbols that are absent (or of another shape) are simply not used.
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
            sites: SiteFields::resolve(r),
        };
        let count = optional(debug.global("alloc_table_count"))?
            .map(|g| Scalar {
                address: g.address,
                size: g.size as usize,
            })
            .filter(|s| (1..=8).contains(&s.size));
        let header = match optional(debug.global("alloc_tracker"))? {
            Some(g) => optional(debug.struct_layout(g.ty))?.map(|l| (g.address, l)),
            None => None,
        };
        let events = optional(RecordArray::resolve(debug, "alloc_events"))?;
        let procs = optional(RecordArray::resolve(debug, "proc_table"))?;
        let build_id = match optional(debug.global("leakscope_build_id"))? {
            Some(g) if g.size > MAX_BUILD_ID_BYTES => {
                return Err(DwarfError::implausible(
                    "`leakscope_build_id`",
                    format!("{} bytes, more than {MAX_BUILD_ID_BYTES}", g.size),
                ))
            }
            Some(g) => {
                let mut bytes = vec![0; g.size as usize];
                debug
                    .elf()
                    .read_static(g.address, &mut bytes)
                    .then_some((g.address, bytes))
            }
            None => None,
        };
        let layout = TrackerLayout {
            endian: debug.endian(),
            table,
            entry,
            count,
            header,
            events,
            procs,
            build_id,
        };
        layout.check()?;
        Ok(layout)
    }

    /// The bounds of the module doc, on a layout however it was made ([`resolve`](Self::resolve)
    /// checks them; the sampler checks again before it halts the guest).
    pub fn check(&self) -> Result<(), DwarfError> {
        self.table.check("alloc_table")?;
        for (name, f) in [
            ("used", &self.entry.used),
            ("pa", &self.entry.pa),
            ("npages", &self.entry.npages),
            ("owner", &self.entry.owner),
        ] {
            if !(1..=8).contains(&f.size) {
                return Err(DwarfError::implausible(
                    format!("field `{name}` of `alloc_table`'s records"),
                    format!("{} bytes, not an integer of 1 to 8 bytes", f.size),
                ));
            }
        }
        if let Some((_, h)) = &self.header {
            if h.size == 0 || h.size > MAX_HEADER_BYTES {
                return Err(DwarfError::implausible(
                    "`alloc_tracker`",
                    format!("{} bytes, not 1 to {MAX_HEADER_BYTES}", h.size),
                ));
            }
        }
        if let Some(c) = &self.count {
            if !(1..=8).contains(&c.size) {
                return Err(DwarfError::implausible(
                    "`alloc_table_count`",
                    format!("{} bytes, not 1 to 8", c.size),
                ));
            }
        }
        if let Some(e) = &self.events {
            e.check("alloc_events")?;
        }
        if let Some(p) = &self.procs {
            p.check("proc_table")?;
        }
        Ok(())
    }

    /// True when the kernel exports the header with the generation protocol, so unchanged tables
    /// need not be read again.
    pub fn has_generation(&self) -> bool {
        self.header
            .as_ref()
            .is_some_and(|(_, h)| h.field("generation").is_some())
    }
}

/// An optional tracker symbol: absent or of another shape is `None`, implausible is an error.
fn optional<T>(r: Result<T, DwarfError>) -> Result<Option<T>, DwarfError> {
    match r {
        Ok(v) => Ok(Some(v)),
        Err(e @ DwarfError::Implausible { .. }) => Err(e),
        Err(_) => Ok(None),
    }
}
