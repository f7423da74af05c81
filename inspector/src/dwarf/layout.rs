//! Layouts for the hot path: a struct's fields by name with offset, size and kind, and an
//! array's element stride and length, so a caller can decode thousands of records straight
//! from bytes without building [`Value`](super::Value) trees.
//!
//! Contract: layouts are computed once from DWARF; the `read_*` methods take one record's bytes
//! (starting at the struct) and return `None` rather than panic when the bytes are too short or
//! the field is not of a readable kind.

use super::error::{DwarfError, Result};
use super::loader::Endian;
use super::types::{BaseEncoding, Enumerator, StrRef, StringKind, TypeId, TypeKind, TypeTable};
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
    /// This field's bytes within `record`.
    pub fn bytes<'b>(&self, record: &'b [u8]) -> Option<&'b [u8]> {
        record.get(self.offset as usize..(self.offset + self.size) as usize)
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
            Some((off, n)) => Some(
                (v >> off)
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
        let start = i.checked_mul(self.stride)?;
        array.get(start as usize..(start + self.stride) as usize)
    }

    /// Address of element `i` of an array at `base`.
    pub fn element_address(&self, base: u64, i: u64) -> u64 {
        base + i * self.stride
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
    let fields = members
        .iter()
        .filter_map(|m| {
            Some(FieldLayout {
                name: m.name.clone()?,
                offset: m.offset,
                // A bit-field covers only the bytes its bits touch.
                size: match m.bits {
                    Some((off, n)) => (off + n).div_ceil(8),
                    None => types.size_of(m.ty).unwrap_or(0),
                },
                kind: field_kind(types, m.ty),
                ty: m.ty,
                bits: m.bits,
                endian,
            })
        })
        .collect();
    // An anonymous struct is known by the typedef that named it (`alloc_track_t`).
    let type_name = match info.name {
        Some(_) => types.display_name(id),
        None => types.display_name(ty),
    };
    Ok(StructLayout {
        type_name,
        size: types.size_of(id).ok_or_else(|| DwarfError::UnsizedType {
            type_name: types.display_name(id),
        })?,
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
    Ok(ArrayLayout {
        element,
        stride: types.size_of(element).ok_or_else(unsized_)?,
        len: dims.iter().product(),
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
}
