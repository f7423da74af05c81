//! Field readers resolved once per sampler, so the per-record work of a table read is a
//! bounds-checked load per field: no lookup by name, no re-check of the field's kind and size.
//!
//! Contract: an [`Int`] reads exactly what [`FieldLayout::read_u64`] reads (the unit tests
//! compare them); it only moves the decisions that depend on the layout, not on the record,
//! out of the loop.

use super::{SiteFields, TrackerLayout};
use crate::dwarf::{Endian, FieldKind, FieldLayout, StructLayout};

/// A field read as `u64`.
#[derive(Clone, Debug)]
pub(super) enum Int {
    /// A whole unsigned field of 1, 2, 4 or 8 bytes (integers, bools, chars, unsigned enums,
    /// pointers): one load.
    Word {
        offset: usize,
        size: usize,
        little: bool,
    },
    /// Anything else `read_u64` decodes (signed, bit-fields, odd widths).
    Field(FieldLayout),
}

impl Int {
    pub(super) fn of(f: &FieldLayout, endian: Endian) -> Int {
        let unsigned = matches!(
            f.kind,
            FieldKind::UInt
                | FieldKind::Bool
                | FieldKind::Char
                | FieldKind::Pointer
                | FieldKind::Enum { signed: false, .. }
        );
        match (usize::try_from(f.offset), f.size) {
            (Ok(offset), 1 | 2 | 4 | 8) if unsigned && f.bits.is_none() => Int::Word {
                offset,
                size: f.size as usize,
                little: endian == Endian::Little,
            },
            _ => Int::Field(f.clone()),
        }
    }

    /// The field's value in `rec`; `None` when `rec` is too short (or the field is not an
    /// integer of at most 8 bytes).
    #[inline]
    pub(super) fn read(&self, rec: &[u8]) -> Option<u64> {
        match *self {
            Int::Word {
                offset,
                size,
                little,
            } => {
                let b = rec.get(offset..offset.checked_add(size)?)?;
                macro_rules! load {
                    ($t:ty) => {{
                        let a = <[u8; std::mem::size_of::<$t>()]>::try_from(b).ok()?;
                        u64::from(if little {
                            <$t>::from_le_bytes(a)
                        } else {
                            <$t>::from_be_bytes(a)
                        })
                    }};
                }
                Some(match size {
                    8 => load!(u64),
                    4 => load!(u32),
                    2 => load!(u16),
                    _ => u64::from(b[0]),
                })
            }
            Int::Field(ref f) => f.read_u64(rec),
        }
    }
}

/// The byte range of a field within its record, for comparing records' raw fields.
#[derive(Clone, Copy, Debug)]
pub(super) struct Raw {
    start: usize,
    end: usize,
}

impl Raw {
    fn of(f: &FieldLayout) -> Option<Raw> {
        let start = usize::try_from(f.offset).ok()?;
        let end = start.checked_add(usize::try_from(f.size).ok()?)?;
        Some(Raw { start, end })
    }

    #[inline]
    pub(super) fn bytes(self, rec: &[u8]) -> Option<&[u8]> {
        rec.get(self.start..self.end)
    }
}

/// The readers of an `alloc_table` entry.
#[derive(Clone, Debug)]
pub(super) struct EntryReaders {
    pub used: Int,
    pub pa: Int,
    pub npages: Int,
    pub owner: Int,
    pub time: Option<Int>,
    /// The tag field's bytes (pointer and length): equal bytes name the same string.
    pub tag: Option<Raw>,
    pub site: Option<Int>,
    pub user_site: Option<Int>,
}

/// The readers of the `alloc_tracker` header's fields (each `None` when the kernel's header
/// lacks it).
#[derive(Clone, Debug, Default)]
pub(super) struct HeaderReaders {
    pub magic: Option<Int>,
    pub generation: Option<Int>,
    pub high_water: Option<Int>,
    pub failed_allocs: Option<Int>,
    pub invalid_frees: Option<Int>,
    pub total_allocs: Option<Int>,
    pub total_frees: Option<Int>,
    pub reclaimed_allocs: Option<Int>,
    pub reclaimed_pages: Option<Int>,
    pub event_head: Option<Int>,
    pub ram_base: Option<Int>,
    pub ram_pages: Option<Int>,
    pub alloc_base: Option<Int>,
    pub free_pages: Option<Int>,
    pub tracked_pages: Option<Int>,
    pub timebase_hz: Option<Int>,
    pub boot_nonce: Option<Int>,
}

/// The readers of a `proc_table` record.
#[derive(Clone, Debug, Default)]
pub(super) struct ProcReaders {
    pub pid: Option<Int>,
    pub parent: Option<Int>,
    pub hart: Option<Int>,
    pub state: Option<FieldLayout>,
    pub name: Option<FieldLayout>,
}

/// Every reader of one layout.
#[derive(Clone, Debug)]
pub(super) struct Readers {
    /// Guest address and size (at most 8 bytes) of the header's `generation`, read alone.
    pub generation: Option<(u64, usize)>,
    pub entry: EntryReaders,
    pub header: HeaderReaders,
    pub procs: ProcReaders,
}

impl Readers {
    pub(super) fn of(layout: &TrackerLayout) -> Readers {
        let e = layout.endian;
        let int = |f: &FieldLayout| Int::of(f, e);
        let named = |r: &StructLayout, name: &str| r.field(name).map(int);
        let f = &layout.entry;
        let sites: Option<&SiteFields> = f.sites.as_ref();
        let entry = EntryReaders {
            used: int(&f.used),
            pa: int(&f.pa),
            npages: int(&f.npages),
            owner: int(&f.owner),
            time: f.time.as_ref().map(int),
            tag: Raw::of(&f.tag),
            site: sites.map(|s| int(&s.site)),
            user_site: sites.and_then(|s| s.user_site.as_ref()).map(int),
        };
        let header = match &layout.header {
            Some((_, h)) => HeaderReaders {
                magic: named(h, "magic"),
                generation: named(h, "generation"),
                high_water: named(h, "high_water"),
                failed_allocs: named(h, "failed_allocs"),
                invalid_frees: named(h, "invalid_frees"),
                total_allocs: named(h, "total_allocs"),
                total_frees: named(h, "total_frees"),
                reclaimed_allocs: named(h, "reclaimed_allocs"),
                reclaimed_pages: named(h, "reclaimed_pages"),
                event_head: named(h, "event_head"),
                ram_base: named(h, "ram_base"),
                ram_pages: named(h, "ram_pages"),
                alloc_base: named(h, "alloc_base"),
                free_pages: named(h, "free_pages"),
                tracked_pages: named(h, "tracked_pages"),
                timebase_hz: named(h, "timebase_hz"),
                boot_nonce: named(h, "boot_nonce"),
            },
            None => HeaderReaders::default(),
        };
        let procs = match &layout.procs {
            Some(p) => ProcReaders {
                pid: named(&p.record, "pid"),
                parent: named(&p.record, "parent"),
                hart: named(&p.record, "hart"),
                state: p.record.field("state").cloned(),
                name: p.record.field("name").cloned(),
            },
            None => ProcReaders::default(),
        };
        let generation = layout.header.as_ref().and_then(|(addr, h)| {
            let f = h.field("generation")?;
            Some((addr.wrapping_add(f.offset), f.size.min(8) as usize))
        });
        Readers {
            generation,
            entry,
            header,
            procs,
        }
    }
}

/// Reads an optional field, 0 when absent or unreadable.
#[inline]
pub(super) fn or_zero(f: &Option<Int>, rec: &[u8]) -> u64 {
    f.as_ref().and_then(|f| f.read(rec)).unwrap_or(0)
}

/// The last two distinct keys looked up and their values: a table's runs alternate between
/// a few tags and sites (a process's data pages and its page-table pages), so most records
/// find theirs here without hashing.
pub(super) struct Recent<K, V> {
    slots: [Option<(K, V)>; 2],
}

impl<K: PartialEq, V: Clone> Recent<K, V> {
    pub(super) fn new() -> Self {
        Recent {
            slots: [None, None],
        }
    }

    /// The value of `key`, from the two slots or else from `make` (then remembered).
    #[inline]
    pub(super) fn get_or<E>(
        &mut self,
        key: K,
        make: impl FnOnce() -> Result<V, E>,
    ) -> Result<V, E> {
        if let Some((_, v)) = self.slots[0].as_ref().filter(|(k, _)| *k == key) {
            return Ok(v.clone());
        }
        if self.slots[1].as_ref().is_some_and(|(k, _)| *k == key) {
            self.slots.swap(0, 1);
            return Ok(self.slots[0].as_ref().expect("just found").1.clone());
        }
        let v = make()?;
        self.slots[1] = self.slots[0].take();
        self.slots[0] = Some((key, v.clone()));
        Ok(v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dwarf::TypeId;

    fn field(kind: FieldKind, offset: u64, size: u64, bits: Option<(u64, u64)>) -> FieldLayout {
        field_in(kind, offset, size, bits, Endian::Little)
    }

    fn field_in(
        kind: FieldKind,
        offset: u64,
        size: u64,
        bits: Option<(u64, u64)>,
        endian: Endian,
    ) -> FieldLayout {
        FieldLayout::new("f", offset, size, kind, TypeId(0), bits, endian)
    }

    #[test]
    fn an_int_reads_what_read_u64_reads() {
        let rec: Vec<u8> = (0..32u8).map(|b| b.wrapping_mul(37) ^ 0xa5).collect();
        let kinds = [
            FieldKind::UInt,
            FieldKind::Int,
            FieldKind::Bool,
            FieldKind::Char,
            FieldKind::Pointer,
            FieldKind::Float,
            FieldKind::Enum {
                enumerators: Vec::new(),
                signed: true,
            },
            FieldKind::Enum {
                enumerators: Vec::new(),
                signed: false,
            },
        ];
        for endian in [Endian::Little, Endian::Big] {
            for kind in &kinds {
                for size in 0..=12 {
                    for offset in [0, 3, 8, 24, 30, 40] {
                        for bits in [None, Some((3, 5))] {
                            let f = field_in(kind.clone(), offset, size, bits, endian);
                            assert_eq!(
                                Int::of(&f, endian).read(&rec),
                                f.read_u64(&rec),
                                "{kind:?} {endian:?} size {size} at {offset} bits {bits:?}"
                            );
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn recent_keeps_the_last_two_keys() {
        let mut recent = Recent::new();
        let made = std::cell::Cell::new(0);
        let mut get = |k: u32| {
            recent
                .get_or(k, || {
                    made.set(made.get() + 1);
                    Ok::<_, ()>(k * 10)
                })
                .unwrap()
        };
        assert_eq!(get(1), 10);
        assert_eq!(get(2), 20);
        assert_eq!(get(1), 10);
        assert_eq!(get(2), 20);
        assert_eq!(get(3), 30); // forgets 1, the older one
        assert_eq!(get(1), 10);
        assert_eq!(made.get(), 4);
    }

    #[test]
    fn whole_unsigned_fields_take_the_one_load_path() {
        let fast = |kind, size| {
            matches!(
                Int::of(&field(kind, 0, size, None), Endian::Little),
                Int::Word { .. }
            )
        };
        assert!(fast(FieldKind::UInt, 8));
        assert!(fast(FieldKind::Bool, 1));
        assert!(!fast(FieldKind::Int, 4), "signed values are sign-extended");
        assert!(!fast(FieldKind::UInt, 3));
    }
}
