//! Generic decoding: target bytes + a DWARF type → a [`Value`] tree, in the ELF's byte order and
//! with the sizes DWARF gives. For the hot path (thousands of records) use `layout` instead.
//!
//! Contract: decoding never reads target memory. Strings behind `&str`/`char *` come back as
//! [`Value::Str`] with the pointer and length to read (see [`StrRef::fetch`]). One decode takes at
//! most [`MAX_VALUE_BYTES`] and produces at most [`MAX_VALUE_ITEMS`] values nested at most
//! [`MAX_VALUE_DEPTH`] deep (deeper ones come back as bytes): a type beyond that is an
//! [`Implausible`](DwarfError::Implausible) error, whatever its DWARF claims.

use super::error::{DwarfError, Result};
use super::limits::{MAX_VALUE_BYTES, MAX_VALUE_DEPTH, MAX_VALUE_ITEMS};
use super::loader::Endian;
use super::types::{
    byte_range, width_mask, BaseEncoding, StrRef, StringKind, TypeId, TypeKind, TypeTable,
};
use super::DebugInfo;
use std::cell::Cell;

/// A decoded value.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    /// Signed integers (including C `char`), sign-extended.
    Int(i128),
    /// Unsigned integers (including `usize`, `u8`, `unsigned char`).
    UInt(u128),
    Bool(bool),
    Float(f64),
    /// Rust `char`; `None` if the bits are not a Unicode scalar.
    Char(Option<char>),
    /// A C-like enum: `name` is the matching enumerator, `None` for a value none matches.
    /// `value` is sign-extended if the enum's underlying type is signed.
    Enum {
        type_name: String,
        name: Option<String>,
        value: i128,
    },
    Pointer(u64),
    /// `&str` or `char *`: where the string is; reading it is the caller's job.
    Str(StrRef),
    Array(Vec<Value>),
    /// Members in declaration order; anonymous members get the name `""`.
    Struct {
        type_name: String,
        fields: Vec<(String, Value)>,
    },
    /// What is not decoded structurally: unions, data-carrying Rust enums, bit-fields,
    /// opaque and unknown types.
    Bytes(Vec<u8>),
}

impl Value {
    /// Sees through single-field structs (`TrackerCell<T>`, `UnsafeCell<T>`, newtypes) to the
    /// value they wrap; other values are returned as they are.
    pub fn inner(&self) -> &Value {
        let mut v = self;
        while let Value::Struct { fields, .. } = v {
            match fields.as_slice() {
                [(_, only)] => v = only,
                _ => break,
            }
        }
        v
    }

    /// The member called `name` of a struct value (looking through single-field wrappers).
    pub fn field(&self, name: &str) -> Option<&Value> {
        let mut v = self;
        loop {
            let Value::Struct { fields, .. } = v else {
                return None;
            };
            if let Some((_, f)) = fields.iter().find(|(n, _)| n == name) {
                return Some(f);
            }
            match fields.as_slice() {
                [(_, only)] => v = only,
                _ => return None,
            }
        }
    }

    /// Element `i` of an array value (looking through single-field wrappers).
    pub fn index(&self, i: usize) -> Option<&Value> {
        match self.inner() {
            Value::Array(items) => items.get(i),
            _ => None,
        }
    }

    /// Integer-like values (UInt, non-negative Int, Bool, Enum, Pointer) as `u64`, if they fit
    /// (looking through single-field wrappers).
    pub fn as_u64(&self) -> Option<u64> {
        match *self.inner() {
            Value::UInt(v) => u64::try_from(v).ok(),
            Value::Int(v) => u64::try_from(v).ok(),
            Value::Bool(b) => Some(u64::from(b)),
            Value::Enum { value, .. } => u64::try_from(value).ok(),
            Value::Pointer(p) => Some(p),
            _ => None,
        }
    }

    /// Integer-like values as `i64`, if they fit.
    pub fn as_i64(&self) -> Option<i64> {
        match *self.inner() {
            Value::UInt(v) => i64::try_from(v).ok(),
            Value::Int(v) => i64::try_from(v).ok(),
            Value::Bool(b) => Some(i64::from(b)),
            Value::Enum { value, .. } => i64::try_from(value).ok(),
            Value::Pointer(p) => i64::try_from(p).ok(),
            _ => None,
        }
    }

    /// An array of 1-byte integers (e.g. `[u8; 16]`, `char name[16]`) as its bytes.
    pub fn as_bytes(&self) -> Option<Vec<u8>> {
        match self.inner() {
            Value::Array(items) => items
                .iter()
                .map(|v| match *v {
                    Value::UInt(b) => u8::try_from(b).ok(),
                    Value::Int(b) => i8::try_from(b).ok().map(|b| b as u8),
                    _ => None,
                })
                .collect(),
            Value::Bytes(b) => Some(b.clone()),
            _ => None,
        }
    }
}

impl DebugInfo {
    /// Decodes `bytes` (at least the type's size) as a value of type `ty`, in the ELF's byte order.
    pub fn decode(&self, ty: TypeId, bytes: &[u8]) -> Result<Value> {
        decode_value(self.types(), self.endian(), ty, bytes)
    }
}

/// Decodes `bytes` as type `ty` of `types`, in byte order `endian`. Errors: `UnsizedType` if the
/// type's size is unknown, `ShortBuffer` if `bytes` is shorter than it, `Implausible` if the
/// type is larger than [`MAX_VALUE_BYTES`] or holds more than [`MAX_VALUE_ITEMS`] values.
pub fn decode_value(types: &TypeTable, endian: Endian, ty: TypeId, bytes: &[u8]) -> Result<Value> {
    let size = types.size_of(ty).ok_or_else(|| DwarfError::UnsizedType {
        type_name: types.display_name(ty),
    })?;
    let what = || format!("a value of type `{}`", types.display_name(ty));
    if size > MAX_VALUE_BYTES {
        return Err(DwarfError::implausible(
            what(),
            format!("{size} bytes, more than the decoder's limit of {MAX_VALUE_BYTES}"),
        ));
    }
    if (bytes.len() as u64) < size {
        return Err(DwarfError::ShortBuffer {
            type_name: types.display_name(ty),
            needed: size,
            got: bytes.len(),
        });
    }
    let decoder = Decoder {
        types,
        endian,
        budget: Cell::new(MAX_VALUE_ITEMS),
    };
    decoder
        .decode(ty, &bytes[..size as usize], 0)
        .map_err(|TooManyItems| {
            DwarfError::implausible(
                what(),
                format!("more than the decoder's limit of {MAX_VALUE_ITEMS} items"),
            )
        })
}

struct Decoder<'a> {
    types: &'a TypeTable,
    endian: Endian,
    /// Values this decode may still produce.
    budget: Cell<usize>,
}

/// The decode ran out of its item budget.
struct TooManyItems;

impl Decoder<'_> {
    /// Takes `n` values from the budget, or fails without taking any.
    fn spend(&self, n: u64) -> std::result::Result<(), TooManyItems> {
        let left = self.budget.get();
        match usize::try_from(n) {
            Ok(n) if n <= left => {
                self.budget.set(left - n);
                Ok(())
            }
            _ => Err(TooManyItems),
        }
    }

    /// `bytes` is exactly the value's bytes.
    fn decode(
        &self,
        ty: TypeId,
        bytes: &[u8],
        depth: usize,
    ) -> std::result::Result<Value, TooManyItems> {
        self.spend(1)?;
        let t = self.types;
        let raw = || Value::Bytes(bytes.to_vec());
        if depth > MAX_VALUE_DEPTH {
            return Ok(raw());
        }
        if let Some(kind) = t.string_kind(ty) {
            if let Some(s) = self.string(kind, bytes) {
                return Ok(Value::Str(s));
            }
        }
        let Some(id) = t.strip_typedefs(ty) else {
            return Ok(raw());
        };
        let info = t.get(id);
        Ok(match &info.kind {
            TypeKind::Base(enc) => self.base(*enc, bytes),
            TypeKind::Pointer { .. } => match self.uint(bytes) {
                Some(p) => Value::Pointer(p as u64),
                None => raw(),
            },
            TypeKind::Enum {
                underlying,
                enumerators,
            } => {
                let Some(bits) = self.uint(bytes) else {
                    return Ok(raw());
                };
                let signed = underlying
                    .and_then(|u| t.strip_typedefs(u))
                    .is_some_and(|u| matches!(t.get(u).kind, TypeKind::Base(e) if e.is_signed()));
                let size = bytes.len() as u64;
                Value::Enum {
                    type_name: t.display_name(id),
                    name: enumerators
                        .iter()
                        .find(|e| e.matches(bits, size))
                        .map(|e| e.name.clone()),
                    value: if signed {
                        sign_extend(bits, size)
                    } else {
                        bits as i128
                    },
                }
            }
            TypeKind::Array { element, counts } => {
                let Some(esize) = t.size_of(*element) else {
                    return Ok(raw());
                };
                self.array(*element, esize, counts, bytes, depth)?
            }
            TypeKind::Struct {
                members,
                has_variants: false,
            } => {
                let mut fields = Vec::with_capacity(members.len());
                for m in members {
                    let name = m.name.clone().unwrap_or_default();
                    let size = t.size_of(m.ty).unwrap_or(0);
                    let v = match byte_range(bytes, m.offset, size) {
                        Some(b) if m.bits.is_none() => self.decode(m.ty, b, depth + 1)?,
                        Some(b) => Value::Bytes(b.to_vec()),
                        None => Value::Bytes(Vec::new()),
                    };
                    fields.push((name, v));
                }
                Value::Struct {
                    type_name: t.display_name(id),
                    fields,
                }
            }
            _ => raw(),
        })
    }

    fn array(
        &self,
        element: TypeId,
        esize: u64,
        counts: &[Option<u64>],
        bytes: &[u8],
        depth: usize,
    ) -> std::result::Result<Value, TooManyItems> {
        let Some((first, rest)) = counts.split_first() else {
            return self.decode(element, bytes, depth + 1);
        };
        // Bytes of one item of this dimension; dimensions whose size overflows stay raw bytes.
        let Some(inner) = rest
            .iter()
            .try_fold(esize, |acc, c| acc.checked_mul(c.unwrap_or(0)))
        else {
            return Ok(Value::Bytes(bytes.to_vec()));
        };
        // An unbounded dimension takes as many elements as the bytes hold.
        let n = first.unwrap_or((bytes.len() as u64).checked_div(inner).unwrap_or(0));
        // Zero-sized items cost no bytes, so the count alone must fit the budget; the items
        // themselves are charged again as they are decoded.
        if n > self.budget.get() as u64 {
            return Err(TooManyItems);
        }
        let mut items = Vec::new();
        for i in 0..n {
            let Some(b) = i
                .checked_mul(inner)
                .and_then(|start| byte_range(bytes, start, inner))
            else {
                break;
            };
            items.push(self.array(element, esize, rest, b, depth + 1)?);
        }
        Ok(Value::Array(items))
    }

    fn base(&self, enc: BaseEncoding, bytes: &[u8]) -> Value {
        let Some(bits) = self.uint(bytes) else {
            return Value::Bytes(bytes.to_vec());
        };
        let size = bytes.len() as u64;
        match enc {
            BaseEncoding::Signed | BaseEncoding::SignedChar => Value::Int(sign_extend(bits, size)),
            BaseEncoding::Bool => Value::Bool(bits != 0),
            BaseEncoding::Float => match size {
                4 => Value::Float(f64::from(f32::from_bits(bits as u32))),
                8 => Value::Float(f64::from_bits(bits as u64)),
                _ => Value::Bytes(bytes.to_vec()),
            },
            BaseEncoding::Utf => Value::Char(u32::try_from(bits).ok().and_then(char::from_u32)),
            BaseEncoding::Unsigned
            | BaseEncoding::UnsignedChar
            | BaseEncoding::Address
            | BaseEncoding::Other => Value::UInt(bits),
        }
    }

    fn string(&self, kind: StringKind, bytes: &[u8]) -> Option<StrRef> {
        kind.str_ref(bytes, self.endian)
    }

    /// The bytes as an unsigned integer in the ELF's order; `None` for empty or > 16 bytes.
    fn uint(&self, bytes: &[u8]) -> Option<u128> {
        (1..=16)
            .contains(&bytes.len())
            .then(|| self.endian.read_uint(bytes))
    }
}

pub(crate) fn sign_extend(bits: u128, byte_size: u64) -> i128 {
    if byte_size >= 16 {
        return bits as i128;
    }
    if byte_size == 0 {
        return 0;
    }
    let shift = 128 - 8 * byte_size as u32;
    (((bits & width_mask(byte_size)) << shift) as i128) >> shift
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dwarf::types::tests::{base, member, synth};
    use crate::dwarf::types::{Enumerator, StrLen, TypeInfo};

    #[test]
    fn sign_extension_by_width() {
        assert_eq!(sign_extend(0xff, 1), -1);
        assert_eq!(sign_extend(0x7f, 1), 127);
        assert_eq!(sign_extend(0xfffe, 2), -2);
        assert_eq!(sign_extend(0x8000_0000, 4), -2_147_483_648);
    }

    /// struct S { u32 a; i16 b; &str s; char *c; enum E e; u8 name[4]; } laid out by hand.
    fn record(address_size: u8) -> (crate::dwarf::types::tests::Synth, TypeId) {
        let mut s = synth(address_size);
        let a = u64::from(address_size);
        let t = &mut s.table;
        let e = t.push(TypeInfo {
            name: Some("EventKind".into()),
            byte_size: Some(4),
            kind: TypeKind::Enum {
                underlying: Some(s.u32_),
                enumerators: vec![
                    Enumerator {
                        name: "Alloc".into(),
                        value: 1,
                    },
                    Enumerator {
                        name: "Free".into(),
                        value: 2,
                    },
                ],
            },
        });
        let name = t.push(TypeInfo {
            name: None,
            byte_size: None,
            kind: TypeKind::Array {
                element: s.u8_,
                counts: vec![Some(4)],
            },
        });
        // offsets: a@0 (4), b@4 (2), pad, s@8 (2a), c@8+2a (a), e@8+3a (4), name@12+3a (4)
        let size = 16 + 3 * a;
        let st = t.push(TypeInfo {
            name: Some("S".into()),
            byte_size: Some(size),
            kind: TypeKind::Struct {
                members: vec![
                    member("a", s.u32_, 0),
                    member("b", s.i16_, 4),
                    member("s", s.str_, 8),
                    member("c", s.cstr, 8 + 2 * a),
                    member("e", e, 8 + 3 * a),
                    member("name", name, 12 + 3 * a),
                ],
                has_variants: false,
            },
        });
        (s, st)
    }

    fn encode(endian: Endian, address_size: u8) -> Vec<u8> {
        let a = address_size as usize;
        let mut b = vec![0u8; 16 + 3 * a];
        endian.write_uint(0xdead_beef, &mut b[0..4]);
        endian.write_uint(0xfffe, &mut b[4..6]); // -2
        endian.write_uint(0x8000_1000, &mut b[8..8 + a]);
        endian.write_uint(11, &mut b[8 + a..8 + 2 * a]);
        endian.write_uint(0x8000_2000, &mut b[8 + 2 * a..8 + 3 * a]);
        endian.write_uint(2, &mut b[8 + 3 * a..12 + 3 * a]);
        b[12 + 3 * a..16 + 3 * a].copy_from_slice(b"init");
        b
    }

    #[test]
    fn decodes_every_kind_in_both_byte_orders_and_widths() {
        for endian in [Endian::Little, Endian::Big] {
            for asz in [4u8, 8] {
                let (s, st) = record(asz);
                let v = decode_value(&s.table, endian, st, &encode(endian, asz)).unwrap();
                let ctx = format!("{endian:?} {asz}");
                assert_eq!(v.field("a"), Some(&Value::UInt(0xdead_beef)), "{ctx}");
                assert_eq!(v.field("b"), Some(&Value::Int(-2)), "{ctx}");
                assert_eq!(
                    v.field("s"),
                    Some(&Value::Str(StrRef {
                        ptr: 0x8000_1000,
                        len: StrLen::Exact(11)
                    })),
                    "{ctx}"
                );
                assert_eq!(
                    v.field("c"),
                    Some(&Value::Str(StrRef {
                        ptr: 0x8000_2000,
                        len: StrLen::NulTerminated {
                            max: StrRef::DEFAULT_C_MAX
                        }
                    })),
                    "{ctx}"
                );
                assert_eq!(
                    v.field("e"),
                    Some(&Value::Enum {
                        type_name: "EventKind".into(),
                        name: Some("Free".into()),
                        value: 2
                    }),
                    "{ctx}"
                );
                assert_eq!(
                    v.field("name").and_then(Value::as_bytes),
                    Some(b"init".to_vec()),
                    "{ctx}"
                );
            }
        }
    }

    #[test]
    fn unknown_enum_value_has_no_name_and_short_buffers_fail() {
        let (s, st) = record(8);
        let mut b = encode(Endian::Little, 8);
        b[32..36].copy_from_slice(&9u32.to_le_bytes());
        let v = decode_value(&s.table, Endian::Little, st, &b).unwrap();
        assert!(
            matches!(
                v.field("e"),
                Some(Value::Enum {
                    name: None,
                    value: 9,
                    ..
                })
            ),
            "{v:?}"
        );
        let err = decode_value(&s.table, Endian::Little, st, &b[..10]).unwrap_err();
        assert!(
            matches!(
                err,
                DwarfError::ShortBuffer {
                    needed: 40,
                    got: 10,
                    ..
                }
            ),
            "{err}"
        );
    }

    #[test]
    fn accessors_look_through_single_field_wrappers() {
        let cell = Value::Struct {
            type_name: "TrackerCell<usize>".into(),
            fields: vec![(
                "__0".into(),
                Value::Struct {
                    type_name: "UnsafeCell<usize>".into(),
                    fields: vec![("value".into(), Value::UInt(3))],
                },
            )],
        };
        assert_eq!(cell.inner(), &Value::UInt(3));
        assert_eq!(cell.as_u64(), Some(3));
        assert_eq!(cell.field("value"), Some(&Value::UInt(3)));
        assert_eq!(cell.field("__0").map(Value::as_u64), Some(Some(3)));
        let two = Value::Struct {
            type_name: "P".into(),
            fields: vec![("a".into(), Value::UInt(1)), ("b".into(), Value::Int(-1))],
        };
        assert_eq!(two.inner(), &two, "two fields: not a wrapper");
        assert_eq!(two.as_u64(), None);
        assert_eq!(two.field("b").and_then(Value::as_i64), Some(-1));
        assert_eq!(two.field("c"), None);
    }

    #[test]
    fn multi_dimensional_arrays_nest_outermost_first() {
        let mut s = synth(8);
        let i8_ = base(&mut s.table, "i8", 1, BaseEncoding::Signed);
        let arr = s.table.push(TypeInfo {
            name: None,
            byte_size: None,
            kind: TypeKind::Array {
                element: i8_,
                counts: vec![Some(2), Some(3)],
            },
        });
        let v = decode_value(&s.table, Endian::Little, arr, &[1, 2, 3, 0xff, 5, 6]).unwrap();
        assert_eq!(v.index(1).and_then(|r| r.index(0)), Some(&Value::Int(-1)));
        assert_eq!(v.index(0).and_then(|r| r.index(2)), Some(&Value::Int(3)));
    }

    #[test]
    fn sign_extension_of_nothing_is_zero() {
        assert_eq!(sign_extend(0xff, 0), 0);
        assert_eq!(sign_extend(u128::MAX, 16), -1);
    }

    #[test]
    fn zero_sized_elements_do_not_make_a_million_items_from_nothing() {
        let mut s = synth(8);
        let empty = s.table.push(TypeInfo {
            name: Some("Empty".into()),
            byte_size: Some(0),
            kind: TypeKind::Struct {
                members: vec![],
                has_variants: false,
            },
        });
        let many = s.table.push(TypeInfo {
            name: None,
            byte_size: None,
            kind: TypeKind::Array {
                element: empty,
                counts: vec![Some(1 << 21)],
            },
        });
        let err = decode_value(&s.table, Endian::Little, many, &[]).unwrap_err();
        assert!(matches!(err, DwarfError::Implausible { .. }), "{err}");
        // A handful of zero-sized items is fine.
        let few = s.table.push(TypeInfo {
            name: None,
            byte_size: None,
            kind: TypeKind::Array {
                element: empty,
                counts: vec![Some(3)],
            },
        });
        let v = decode_value(&s.table, Endian::Little, few, &[]).unwrap();
        assert!(
            matches!(&v, Value::Array(items) if items.len() == 3),
            "{v:?}"
        );
    }

    #[test]
    fn overflowing_inner_dimensions_decode_as_bytes() {
        let mut s = synth(8);
        let arr = s.table.push(TypeInfo {
            name: None,
            byte_size: None,
            kind: TypeKind::Array {
                element: s.u8_,
                counts: vec![Some(2), Some(1 << 40), Some(1 << 40)],
            },
        });
        // A struct that states its own size, holding that array: the member has no size.
        let st = s.table.push(TypeInfo {
            name: Some("Holder".into()),
            byte_size: Some(8),
            kind: TypeKind::Struct {
                members: vec![member("a", arr, 0), member("b", s.u32_, u64::MAX - 2)],
                has_variants: false,
            },
        });
        let v = decode_value(&s.table, Endian::Little, st, &[7u8; 8]).unwrap();
        assert_eq!(v.field("a"), Some(&Value::Bytes(vec![])));
        assert_eq!(v.field("b"), Some(&Value::Bytes(vec![])));
    }

    #[test]
    fn oversized_values_are_refused_before_decoding() {
        let mut s = synth(8);
        let big = s.table.push(TypeInfo {
            name: None,
            byte_size: None,
            kind: TypeKind::Array {
                element: s.u8_,
                counts: vec![Some(crate::dwarf::limits::MAX_VALUE_BYTES + 1)],
            },
        });
        let err = decode_value(&s.table, Endian::Little, big, &[]).unwrap_err();
        assert!(matches!(err, DwarfError::Implausible { .. }), "{err}");
    }
}
