//! Layouts for the hot path: a struct's fields by name with offset, size and kind, and an
//! array's element stride and length, so a caller can decode thousands of records straight
//! from bytes without building [`Value`](super::Value) trees.
//!
//! Contract: layouts are computed once from DWARF and checked then: every field lies inside its
//! record, an array's elements have a size and the whole array fits in
//! [`MAX_OBJECT_BYTES`](super::limits::MAX_OBJECT_BYTES); anything else is an
//! [`Implausible`](DwarfError::Implausible) error. The `read_*` methods take one record's bytes
//! (starting at the struct) and return `None` rather than panic when the bytes are too short or
//! the field is not of a readable kind.

use super::error::{DwarfError, Result};
use super::limits::MAX_OBJECT_BYTES;
use super::loader::Endian;
use super::types::{
    byte_range, BaseEncoding, Enumerator, StrRef, StringKind, TypeId, TypeKind, TypeTable,
};
use super::value::sign_extend;
use super::DebugInfo;

/// How a field's bytes are to be read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FieldKind {
    UInt,
    Int,
    Bool,
    Float,
    Char,
    /// C-like enum; `signed` tells how to extend the raw value.
    Enum {
        enumerators: Vec<Enumerator>,
        signed: bool,
    },
    Pointer,
    /// `&str` or `char *`: use [`FieldLayout::read_str`].
    Str(StringKind),
    Array {
        element: TypeId,
        counts: Vec<Option<u64>>,
    },
    Struct,
    Union,
    /// Anything else (opaque, unknown, Rust data enums): only [`FieldLayout::bytes`] applies.
    Other,
}

/// One field of a struct.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldLayout {
    pub name: String,
    /// Byte offset from the start of the record.
    pub offset: u64,
    pub size: u64,
    pub kind: FieldKind,
    /// The field's declared type (before seeing through typedefs).
    pub ty: TypeId,
    /// `(bit offset, bit count)` for bit-fields, relative to `offset` in little-endian bit order.
    pub bits: Option<(u64, u64)>,
    endian: Endian,
}

impl FieldLayout {
    /// A field made by hand, for tests of code that decodes records.
    #[cfg(test)]
    pub(crate) fn new(
        name: &str,
        offset: u64,
        size: u64,
        kind: FieldKind,
        ty: TypeId,
        bits: Option<(u64, u64)>,
        endian: Endian,
    ) -> FieldLayout {
        FieldLayout {
            name: name.into(),
            offset,
            size,
            kind,
            ty,
            bits,
            endian,
        }
    }

    /// This field's bytes within `record`.
    pub fn bytes<'b>(&self, record: &'b [u8]) -> Option<&'b [u8]> {
        byte_range(record, self.offset, self.size)
    }

    fn raw(&self, record: &[u8]) -> Option<u128> {
        let b = self.bytes(record)?;
        if b.is_empty() || b.len() > 16 {
            return None;
        }
        let v = self.endian.read_uint(b);
        match self.bits {
            None => Some(v),
            // Bit-fields are only supported in little-endian bit numbering.
            Some(_) if self.endian == Endian::Big => None,
            // A shift past the value's width leaves no bits (malformed DWARF, not a panic).
            Some((off, n)) => Some(
                u32::try_from(off)
                    .ok()
                    .and_then(|off| v.checked_shr(off))
                    .unwrap_or(0)
                    & if n >= 128 {
                        u128::MAX
                    } else {
                        (1u128 << n) - 1
                    },
            ),
        }
    }

    fn is_integer_like(&self) -> bool {
        matches!(
            self.kind,
            FieldKind::UInt
                | FieldKind::Int
                | FieldKind::Bool
                | FieldKind::Char
                | FieldKind::Enum { .. }
                | FieldKind::Pointer
        )
    }

    fn is_signed(&self) -> bool {
        matches!(
            self.kind,
            FieldKind::Int | FieldKind::Enum { signed: true, .. }
        )
    }

    /// The field as `u64`: integers (zero-extended; signed ones sign-extended then reinterpreted),
    /// bools, chars, enums, pointers. `None` for other kinds, wider values or short records.
    pub fn read_u64(&self, record: &[u8]) -> Option<u64> {
        // Fast path for the common case (a whole unsigned field of at most 8 bytes): a table
        // read decodes tens of thousands of them.
        if self.bits.is_none()
            && self.size <= 8
            && matches!(self.kind, FieldKind::UInt | FieldKind::Pointer)
        {
            let b = self.bytes(record)?;
            return (!b.is_empty()).then(|| self.endian.read_uint(b) as u64);
        }
        self.read_i128(record)
            .map(|v| v as u64)
            .filter(|_| self.size <= 8)
    }

    /// The field as `i64` (sign-extended if the type is signed). Same kinds as `read_u64`.
    pub fn read_i64(&self, record: &[u8]) -> Option<i64> {
        self.read_i128(record)
            .map(|v| v as i64)
            .filter(|_| self.size <= 8)
    }

    fn read_i128(&self, record: &[u8]) -> Option<i128> {
        if !self.is_integer_like() {
            return None;
        }
        let raw = self.raw(record)?;
        let width_bytes = match self.bits {
            Some((_, n)) => n.div_ceil(8),
            None => self.size,
        };
        Some(if self.is_signed() && self.bits.is_none() {
            sign_extend(raw, width_bytes)
        } else {
            raw as i128
        })
    }

    /// The enumerator name for an enum field's value, `None` if it is not an enum or no
    /// enumerator matches.
    pub fn enum_name(&self, record: &[u8]) -> Option<&str> {
        let FieldKind::Enum { enumerators, .. } = &self.kind else {
            return None;
        };
        let raw = self.raw(record)?;
        enumerators
            .iter()
            .find(|e| e.matches(raw, self.size))
            .map(|e| e.name.as_str())
    }

    /// Where the string of a `&str`/`char *` field is. `None` for other kinds.
    pub fn read_str(&self, record: &[u8]) -> Option<StrRef> {
        let FieldKind::Str(kind) = self.kind else {
            return None;
        };
        kind.str_ref(self.bytes(record)?, self.endian)
    }
}

/// A struct's layout.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StructLayout {
    pub type_name: String,
    /// Bytes of one record (the stride of arrays of it).
    pub size: u64,
    /// In declaration order; anonymous members are left out.
    pub fields: Vec<FieldLayout>,
}

impl StructLayout {
    pub fn field(&self, name: &str) -> Option<&FieldLayout> {
        self.fields.iter().find(|f| f.name == name)
    }

    /// Like [`field`](Self::field), with an error that lists the fields the ELF has.
    pub fn require(&self, name: &str) -> Result<&FieldLayout> {
        self.field(name).ok_or_else(|| DwarfError::FieldNotFound {
            type_name: self.type_name.clone(),
            field: name.to_string(),
            available: self
                .fields
                .iter()
                .map(|f| f.name.as_str())
                .collect::<Vec<_>>()
                .join(", "),
        })
    }
}

/// An array's layout, flattened over all dimensions.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ArrayLayout {
    pub element: TypeId,
    /// Bytes between consecutive elements.
    pub stride: u64,
    /// Number of elements over all dimensions.
    pub len: u64,
    /// Length of each dimension, outermost first.
    pub dims: Vec<u64>,
}

impl ArrayLayout {
    /// The bytes of element `i` (flat index) within the array's bytes.
    pub fn element_bytes<'b>(&self, array: &'b [u8], i: u64) -> Option<&'b [u8]> {
        if i >= self.len {
            return None;
        }
        byte_range(array, i.checked_mul(self.stride)?, self.stride)
    }

    /// Address of element `i` of an array at `base`, wrapping like the target's address
    /// arithmetic (a checked layout keeps `i < len` inside the address space).
    pub fn element_address(&self, base: u64, i: u64) -> u64 {
        base.wrapping_add(i.wrapping_mul(self.stride))
    }

    /// Bytes of the whole array (checked against [`MAX_OBJECT_BYTES`] when the layout was made).
    pub fn byte_len(&self) -> u64 {
        self.stride.saturating_mul(self.len)
    }
}

impl DebugInfo {
    /// Layout of struct type `ty`, seeing through typedefs, qualifiers and single-field wrappers.
    pub fn struct_layout(&self, ty: TypeId) -> Result<StructLayout> {
        struct_layout(self.types(), self.endian(), ty)
    }

    /// Layout of array type `ty`, seeing through typedefs, qualifiers and single-field wrappers.
    pub fn array_layout(&self, ty: TypeId) -> Result<ArrayLayout> {
        array_layout(self.types(), ty)
    }
}

pub(crate) fn struct_layout(types: &TypeTable, endian: Endian, ty: TypeId) -> Result<StructLayout> {
    let id = see_through(types, ty)?;
    let info = types.get(id);
    let TypeKind::Struct { members, .. } = &info.kind else {
        return Err(unexpected(types, id, "a struct"));
    };
    // An anonymous struct is known by the typedef that named it (`alloc_track_t`).
    let type_name = match info.name {
        Some(_) => types.display_name(id),
        None => types.display_name(ty),
    };
    let size = types.size_of(id).ok_or_else(|| DwarfError::UnsizedType {
        type_name: types.display_name(id),
    })?;
    let what = || format!("struct `{type_name}`");
    if size > MAX_OBJECT_BYTES {
        return Err(DwarfError::implausible(
            what(),
            format!("{size} bytes, more than the limit of {MAX_OBJECT_BYTES}"),
        ));
    }
    let mut fields = Vec::new();
    for m in members {
        let Some(name) = m.name.clone() else { continue };
        // A bit-field covers only the bytes its bits touch.
        let field_size = match m.bits {
            Some((off, n)) => off.checked_add(n).map(|bits| bits.div_ceil(8)),
            None => Some(types.size_of(m.ty).unwrap_or(0)),
        };
        let end = field_size.and_then(|s| m.offset.checked_add(s));
        let Some(field_size) = field_size.filter(|_| end.is_some_and(|e| e <= size)) else {
            return Err(DwarfError::implausible(
                what(),
                format!(
                    "field `{name}` at offset {} ({}) does not fit in its {size} bytes",
                    m.offset,
                    match field_size {
                        Some(s) => format!("{s} bytes"),
                        None => "a bit-field of overflowing width".into(),
                    }
                ),
            ));
        };
        fields.push(FieldLayout {
            name,
            offset: m.offset,
            size: field_size,
            kind: field_kind(types, m.ty),
            ty: m.ty,
            bits: m.bits,
            endian,
        });
    }
    Ok(StructLayout {
        type_name,
        size,
        fields,
    })
}

pub(crate) fn array_layout(types: &TypeTable, ty: TypeId) -> Result<ArrayLayout> {
    let id = see_through(types, ty)?;
    let Some((element, counts)) = types.array_info(id) else {
        return Err(unexpected(types, id, "an array"));
    };
    let unsized_ = || DwarfError::UnsizedType {
        type_name: types.display_name(id),
    };
    let dims = counts
        .iter()
        .map(|c| c.ok_or_else(unsized_))
        .collect::<Result<Vec<u64>>>()?;
    let stride = types.size_of(element).ok_or_else(unsized_)?;
    let implausible = |reason: String| {
        DwarfError::implausible(format!("array `{}`", types.display_name(id)), reason)
    };
    let len = dims
        .iter()
        .try_fold(1u64, |acc, &d| acc.checked_mul(d))
        .ok_or_else(|| implausible(format!("its dimensions {dims:?} overflow 64 bits")))?;
    if stride == 0 && len > 0 {
        return Err(implausible(format!(
            "{len} elements of zero size (`{}`)",
            types.display_name(element)
        )));
    }
    match stride.checked_mul(len) {
        Some(bytes) if bytes <= MAX_OBJECT_BYTES => {}
        _ => {
            return Err(implausible(format!(
                "{len} elements of {stride} bytes, more than the limit of {MAX_OBJECT_BYTES} bytes"
            )))
        }
    }
    Ok(ArrayLayout {
        element,
        stride,
        len,
        dims,
    })
}

fn see_through(types: &TypeTable, ty: TypeId) -> Result<TypeId> {
    types
        .see_through(ty)
        .ok_or_else(|| DwarfError::UnexpectedType {
            type_name: types.display_name(ty),
            expected: "a data type",
            found: "void",
        })
}

fn unexpected(types: &TypeTable, id: TypeId, expected: &'static str) -> DwarfError {
    DwarfError::UnexpectedType {
        type_name: types.display_name(id),
        expected,
        found: types.kind_name(id),
    }
}

fn field_kind(types: &TypeTable, ty: TypeId) -> FieldKind {
    if let Some(s) = types.string_kind(ty) {
        return FieldKind::Str(s);
    }
    let Some(id) = types.strip_typedefs(ty) else {
        return FieldKind::Other;
    };
    match &types.get(id).kind {
        TypeKind::Base(enc) => match enc {
            BaseEncoding::Signed | BaseEncoding::SignedChar => FieldKind::Int,
            BaseEncoding::Unsigned | BaseEncoding::UnsignedChar | BaseEncoding::Address => {
                FieldKind::UInt
            }
            BaseEncoding::Bool => FieldKind::Bool,
            BaseEncoding::Float => FieldKind::Float,
            BaseEncoding::Utf => FieldKind::Char,
            BaseEncoding::Other => FieldKind::Other,
        },
        TypeKind::Pointer { .. } => FieldKind::Pointer,
        TypeKind::Enum {
            underlying,
            enumerators,
        } => FieldKind::Enum {
            enumerators: enumerators.clone(),
            signed: underlying
                .and_then(|u| types.strip_typedefs(u))
                .is_some_and(|u| matches!(types.get(u).kind, TypeKind::Base(e) if e.is_signed())),
        },
        TypeKind::Array { element, counts } => FieldKind::Array {
            element: *element,
            counts: counts.clone(),
        },
        TypeKind::Struct {
            has_variants: false,
            ..
        } => FieldKind::Struct,
        TypeKind::Union { .. } => FieldKind::Union,
        _ => FieldKind::Other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dwarf::types::tests::{member, synth};
    use crate::dwarf::types::{Member, TypeInfo};

    #[test]
    fn fields_by_name_in_any_order_and_byte_order() {
        // The same logical record with fields in two orders; decoding by name must agree.
        for endian in [Endian::Little, Endian::Big] {
            let mut s = synth(4);
            let t = &mut s.table;
            let a = t.push(TypeInfo {
                name: Some("A".into()),
                byte_size: Some(16),
                kind: TypeKind::Struct {
                    members: vec![
                        member("used", s.i16_, 0),
                        member("pa", s.u32_, 4),
                        member("tag", s.cstr, 8),
                    ],
                    has_variants: false,
                },
            });
            let b = t.push(TypeInfo {
                name: Some("B".into()),
                byte_size: Some(16),
                kind: TypeKind::Struct {
                    members: vec![
                        member("tag", s.cstr, 0),
                        member("pa", s.u32_, 4),
                        member("used", s.i16_, 8),
                    ],
                    has_variants: false,
                },
            });
            for (ty, used_at, pa_at, tag_at) in [(a, 0, 4, 8), (b, 8, 4, 0)] {
                let mut rec = vec![0u8; 16];
                endian.write_uint(0xffff, &mut rec[used_at..used_at + 2]);
                endian.write_uint(0x8053_7000, &mut rec[pa_at..pa_at + 4]);
                endian.write_uint(0x1234, &mut rec[tag_at..tag_at + 4]);
                let l = struct_layout(&s.table, endian, ty).unwrap();
                assert_eq!(l.size, 16);
                assert_eq!(l.require("pa").unwrap().read_u64(&rec), Some(0x8053_7000));
                assert_eq!(l.require("used").unwrap().read_i64(&rec), Some(-1));
                assert_eq!(
                    l.require("tag").unwrap().read_str(&rec).map(|r| r.ptr),
                    Some(0x1234)
                );
                assert_eq!(
                    l.require("tag").unwrap().read_u64(&rec),
                    None,
                    "a string is not an integer"
                );
                let err = l.require("owner").unwrap_err().to_string();
                let listed = if ty == a {
                    "used, pa, tag"
                } else {
                    "tag, pa, used"
                };
                assert!(
                    err.contains("no field `owner`") && err.contains(listed),
                    "{err}"
                );
                assert_eq!(
                    l.field("pa").unwrap().read_u64(&rec[..6]),
                    None,
                    "short record"
                );
            }
        }
    }

    #[test]
    fn array_layout_sees_through_wrappers_and_indexes_elements() {
        let mut s = synth(8);
        let t = &mut s.table;
        let arr = t.push(TypeInfo {
            name: None,
            byte_size: None,
            kind: TypeKind::Array {
                element: s.u32_,
                counts: vec![Some(2), Some(3)],
            },
        });
        let cell = t.push(TypeInfo {
            name: Some("TrackerCell".into()),
            byte_size: Some(24),
            kind: TypeKind::Struct {
                members: vec![member("__0", arr, 0)],
                has_variants: false,
            },
        });
        let l = array_layout(&s.table, cell).unwrap();
        assert_eq!((l.stride, l.len, l.dims.clone()), (4, 6, vec![2, 3]));
        let bytes: Vec<u8> = (0..24).collect();
        assert_eq!(l.element_bytes(&bytes, 5), Some(&bytes[20..24]));
        assert_eq!(l.element_bytes(&bytes, 6), None);
        let err = struct_layout(&s.table, Endian::Little, cell).unwrap_err();
        assert!(err.to_string().contains("expected a struct"), "{err}");
    }

    #[test]
    fn bitfields_read_in_little_endian() {
        let mut s = synth(8);
        let t = &mut s.table;
        let st = t.push(TypeInfo {
            name: Some("Flags".into()),
            byte_size: Some(4),
            kind: TypeKind::Struct {
                members: vec![
                    Member {
                        name: Some("lo".into()),
                        ty: s.u32_,
                        offset: 0,
                        bits: Some((0, 3)),
                    },
                    Member {
                        name: Some("hi".into()),
                        ty: s.u32_,
                        offset: 0,
                        bits: Some((3, 5)),
                    },
                ],
                has_variants: false,
            },
        });
        let l = struct_layout(&s.table, Endian::Little, st).unwrap();
        let rec = [0b1010_1101u8, 0, 0, 0];
        assert_eq!(l.require("lo").unwrap().read_u64(&rec), Some(0b101));
        assert_eq!(l.require("hi").unwrap().read_u64(&rec), Some(0b10101));
    }

    /// An array of `counts` elements of `element`, wrapped nowhere.
    fn array_of(t: &mut crate::dwarf::types::TypeTable, element: TypeId, counts: &[u64]) -> TypeId {
        t.push(TypeInfo {
            name: None,
            byte_size: None,
            kind: TypeKind::Array {
                element,
                counts: counts.iter().map(|&c| Some(c)).collect(),
            },
        })
    }

    #[test]
    fn absurd_array_lengths_are_errors_not_overflows() {
        let mut s = synth(8);
        let t = &mut s.table;
        // 2^40 × 2^40 elements: the length itself overflows u64.
        let overflow = array_of(t, s.u32_, &[1 << 40, 1 << 40]);
        // 2^40 four-byte elements: 4 TiB, far beyond any guest.
        let huge = array_of(t, s.u32_, &[1 << 40]);
        // 2^40 elements of nothing: a million items from zero bytes.
        let empty = t.push(TypeInfo {
            name: Some("Empty".into()),
            byte_size: Some(0),
            kind: TypeKind::Struct {
                members: vec![],
                has_variants: false,
            },
        });
        let zero_sized = array_of(t, empty, &[1 << 40]);
        // A stated element size near 2^64 with two elements.
        let giant = t.push(TypeInfo {
            name: Some("Giant".into()),
            byte_size: Some(u64::MAX / 2 + 1),
            kind: TypeKind::Struct {
                members: vec![],
                has_variants: false,
            },
        });
        let two_giants = array_of(t, giant, &[2]);
        for ty in [overflow, huge, zero_sized, two_giants] {
            let err = array_layout(&s.table, ty).unwrap_err();
            assert!(matches!(err, DwarfError::Implausible { .. }), "{err}");
            assert!(err.to_string().contains("implausible"), "{err}");
        }
        // The limit itself is fine; one element more is not.
        let at_limit = array_of(
            &mut s.table,
            s.u32_,
            &[crate::dwarf::limits::MAX_OBJECT_BYTES / 4],
        );
        assert!(array_layout(&s.table, at_limit).is_ok());
        let past = array_of(
            &mut s.table,
            s.u32_,
            &[crate::dwarf::limits::MAX_OBJECT_BYTES / 4 + 1],
        );
        assert!(array_layout(&s.table, past).is_err());
    }

    #[test]
    fn element_access_never_overflows() {
        let l = ArrayLayout {
            element: TypeId(0),
            stride: u64::MAX / 2 + 1,
            len: u64::MAX,
            dims: vec![u64::MAX],
        };
        let bytes = [0u8; 16];
        assert_eq!(l.element_bytes(&bytes, 1), None);
        assert_eq!(l.element_bytes(&bytes, 3), None);
        // Addresses wrap like the target's arithmetic rather than panic.
        let _ = l.element_address(u64::MAX, 3);
    }

    #[test]
    fn fields_outside_the_record_are_errors() {
        let mut s = synth(8);
        let t = &mut s.table;
        let far = t.push(TypeInfo {
            name: Some("Far".into()),
            byte_size: Some(16),
            kind: TypeKind::Struct {
                members: vec![member("a", s.u32_, 0), member("b", s.u32_, u64::MAX - 1)],
                has_variants: false,
            },
        });
        let past_end = t.push(TypeInfo {
            name: Some("PastEnd".into()),
            byte_size: Some(16),
            kind: TypeKind::Struct {
                members: vec![member("a", s.u32_, 14)],
                has_variants: false,
            },
        });
        let wild_bits = t.push(TypeInfo {
            name: Some("WildBits".into()),
            byte_size: Some(4),
            kind: TypeKind::Struct {
                members: vec![Member {
                    name: Some("f".into()),
                    ty: s.u32_,
                    offset: 0,
                    bits: Some((u64::MAX, 8)),
                }],
                has_variants: false,
            },
        });
        let huge_record = t.push(TypeInfo {
            name: Some("Huge".into()),
            byte_size: Some(1 << 50),
            kind: TypeKind::Struct {
                members: vec![member("a", s.u32_, 0)],
                has_variants: false,
            },
        });
        for ty in [far, past_end, wild_bits, huge_record] {
            let err = struct_layout(&s.table, Endian::Little, ty).unwrap_err();
            assert!(matches!(err, DwarfError::Implausible { .. }), "{err}");
        }
    }

    #[test]
    fn field_reads_never_panic_on_wild_layouts() {
        let wild = FieldLayout {
            name: "x".into(),
            offset: u64::MAX - 1,
            size: 8,
            kind: FieldKind::UInt,
            ty: TypeId(0),
            bits: Some((200, 300)),
            endian: Endian::Little,
        };
        let rec = [0xffu8; 32];
        assert_eq!(wild.bytes(&rec), None);
        assert_eq!(wild.read_u64(&rec), None);
        let shifty = FieldLayout {
            offset: 0,
            size: 4,
            ..wild
        };
        // A bit offset past the value's width reads as no bits rather than a shift overflow.
        assert_eq!(shifty.read_u64(&rec), Some(0));
    }
}
