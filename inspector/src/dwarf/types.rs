//! The type model: every DWARF type DIE of the ELF as a [`TypeInfo`] in a [`TypeTable`], plus
//! the queries on it (sizes, seeing through typedefs/qualifiers/single-field wrappers, string
//! detection). Building happens in `index.rs`; this module only says what a DIE becomes.
//!
//! Invariants: a [`TypeId`] is an index into its table and never dangles; references to DIEs the
//! table does not model resolve to a `TypeKind::Unknown` entry. Nothing here assumes a language:
//! rustc and C compilers produce the same model.

use super::loader::Endian;
use std::collections::HashMap;

/// Index of a type in a [`TypeTable`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TypeId(pub(crate) u32);

/// How the bytes of a base type are to be read (`DW_AT_encoding`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BaseEncoding {
    Signed,
    Unsigned,
    Bool,
    Float,
    /// C `char` / `signed char` (`DW_ATE_signed_char`).
    SignedChar,
    /// C `unsigned char` (`DW_ATE_unsigned_char`).
    UnsignedChar,
    /// A Unicode scalar (Rust `char`, `DW_ATE_UTF`).
    Utf,
    /// Target address (`DW_ATE_address`).
    Address,
    Other,
}

impl BaseEncoding {
    pub(crate) fn from_dwarf(ate: gimli::DwAte) -> Self {
        match ate {
            gimli::DW_ATE_signed => Self::Signed,
            gimli::DW_ATE_unsigned => Self::Unsigned,
            gimli::DW_ATE_boolean => Self::Bool,
            gimli::DW_ATE_float => Self::Float,
            gimli::DW_ATE_signed_char => Self::SignedChar,
            gimli::DW_ATE_unsigned_char => Self::UnsignedChar,
            gimli::DW_ATE_UTF => Self::Utf,
            gimli::DW_ATE_address => Self::Address,
            _ => Self::Other,
        }
    }

    /// True for encodings whose values are sign-extended.
    pub fn is_signed(self) -> bool {
        matches!(self, Self::Signed | Self::SignedChar)
    }
}

/// A struct or union member.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Member {
    /// `None` for anonymous members (C anonymous unions).
    pub name: Option<String>,
    pub ty: TypeId,
    /// Byte offset from the start of the enclosing struct.
    pub offset: u64,
    /// `(bit offset from `offset`, bit size)` for bit-fields (`DW_AT_data_bit_offset` form).
    pub bits: Option<(u64, u64)>,
}

/// One named value of a C-like enum. `value` is the raw constant; compare it with
/// [`Enumerator::matches`], which ignores how the producer chose to encode the sign.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Enumerator {
    pub name: String,
    pub value: i128,
}

impl Enumerator {
    /// True if this enumerator's value equals `raw`, both truncated to `byte_size` bytes.
    pub fn matches(&self, raw: u128, byte_size: u64) -> bool {
        let mask = width_mask(byte_size);
        (self.value as u128) & mask == raw & mask
    }
}

/// `bytes[offset .. offset + len]`, or `None` if it is out of range or the arithmetic overflows
/// (offsets and sizes come from DWARF, which may be malformed).
pub(crate) fn byte_range(bytes: &[u8], offset: u64, len: u64) -> Option<&[u8]> {
    let start = usize::try_from(offset).ok()?;
    let end = start.checked_add(usize::try_from(len).ok()?)?;
    bytes.get(start..end)
}

pub(crate) fn width_mask(byte_size: u64) -> u128 {
    if byte_size >= 16 {
        u128::MAX
    } else {
        (1u128 << (8 * byte_size)) - 1
    }
}

/// Which qualifier a `Qualified` type adds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Qualifier {
    Const,
    Volatile,
    Restrict,
    Atomic,
}

/// What a type is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TypeKind {
    Base(BaseEncoding),
    /// Pointer or reference; `pointee: None` is `void *` (or an unmodelled target).
    Pointer {
        pointee: Option<TypeId>,
    },
    /// `counts[i]` is the length of dimension `i` (outermost first); `None` when DWARF gives
    /// no bound (flexible array member, VLA).
    Array {
        element: TypeId,
        counts: Vec<Option<u64>>,
    },
    Struct {
        members: Vec<Member>,
        /// True for Rust enums with data (`DW_TAG_variant_part`): decoded as raw bytes.
        has_variants: bool,
    },
    Union {
        members: Vec<Member>,
    },
    Enum {
        underlying: Option<TypeId>,
        enumerators: Vec<Enumerator>,
    },
    Typedef {
        target: Option<TypeId>,
    },
    Qualified {
        qualifier: Qualifier,
        target: Option<TypeId>,
    },
    /// Function types, `DW_TAG_unspecified_type` and the like: known to exist, not decoded.
    Opaque,
    /// A DIE that was referenced but is not a type this table models.
    Unknown,
}

/// One type: its name (as DWARF gives it, unqualified), `DW_AT_byte_size` and kind.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TypeInfo {
    pub name: Option<String>,
    /// As DWARF says; use [`TypeTable::size_of`] for the effective size (pointers, typedefs,
    /// arrays without `DW_AT_byte_size`).
    pub byte_size: Option<u64>,
    pub kind: TypeKind,
}

/// A string that lives in target memory, as a value of type `&str` or `char *` refers to it.
/// Reading it is the caller's job ([`StrRef::fetch`] does it with any memory reader).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StrRef {
    pub ptr: u64,
    /// Bytes to read: exact for `&str`; `NulTerminated` for `char *`.
    pub len: StrLen,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StrLen {
    Exact(u64),
    /// Read until a NUL byte, at most `max` bytes.
    NulTerminated {
        max: u64,
    },
}

impl StrRef {
    /// Default bound for `char *` strings.
    pub const DEFAULT_C_MAX: u64 = 256;

    /// Reads the string through `read(address, buf)` (which must fill `buf` or fail). Exact
    /// lengths are clamped to `limit` bytes. NUL-terminated strings are read in chunks that do
    /// not cross a 64-byte boundary; a chunk that fails is retried one byte at a time, so a string
    /// ending just before unreadable memory still reads.
    /// A null pointer gives `""` without a read. Invalid UTF-8 is replaced (lossy).
    pub fn fetch<E>(
        &self,
        limit: u64,
        mut read: impl FnMut(u64, &mut [u8]) -> Result<(), E>,
    ) -> Result<String, E> {
        if self.ptr == 0 {
            return Ok(String::new());
        }
        match self.len {
            StrLen::Exact(n) => {
                let mut buf = vec![0u8; n.min(limit) as usize];
                if !buf.is_empty() {
                    read(self.ptr, &mut buf)?;
                }
                Ok(String::from_utf8_lossy(&buf).into_owned())
            }
            StrLen::NulTerminated { max } => {
                let max = max.min(limit);
                let mut out = Vec::new();
                let mut addr = self.ptr;
                while (out.len() as u64) < max {
                    let chunk = (64 - addr % 64).min(max - out.len() as u64) as usize;
                    let mut buf = vec![0u8; chunk];
                    if chunk > 1 && read(addr, &mut buf).is_err() {
                        // The chunk may run past the end of readable memory (a section's or a
                        // mapping's end): go on one byte at a time, which fails only at the byte
                        // that is really unreadable.
                        buf.truncate(1);
                    }
                    if buf.len() == 1 {
                        read(addr, &mut buf)?;
                    }
                    let chunk = buf.len();
                    if let Some(nul) = buf.iter().position(|&b| b == 0) {
                        out.extend_from_slice(&buf[..nul]);
                        return Ok(String::from_utf8_lossy(&out).into_owned());
                    }
                    out.extend_from_slice(&buf);
                    addr = addr.wrapping_add(chunk as u64);
                }
                Ok(String::from_utf8_lossy(&out).into_owned())
            }
        }
    }
}

/// How a string-like type is laid out, as [`TypeTable::string_kind`] recognises it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StringKind {
    /// Rust `&str`: a struct with a `data_ptr` pointer and a `length` integer.
    RustStr {
        ptr_offset: u64,
        ptr_size: u64,
        len_offset: u64,
        len_size: u64,
    },
    /// A pointer to C `char` (any signedness, any qualifiers).
    CStr { ptr_size: u64 },
}

impl StringKind {
    /// Where the string is, from the bytes of one `&str`/`char *` value in `endian` order.
    /// `None` if the bytes are too short.
    pub fn str_ref(self, value: &[u8], endian: Endian) -> Option<StrRef> {
        let uint = |off: u64, size: u64| {
            let b = byte_range(value, off, size)?;
            (1..=8)
                .contains(&b.len())
                .then(|| endian.read_uint(b) as u64)
        };
        match self {
            StringKind::RustStr {
                ptr_offset,
                ptr_size,
                len_offset,
                len_size,
            } => Some(StrRef {
                ptr: uint(ptr_offset, ptr_size)?,
                len: StrLen::Exact(uint(len_offset, len_size)?),
            }),
            StringKind::CStr { ptr_size } => Some(StrRef {
                ptr: uint(0, ptr_size)?,
                len: StrLen::NulTerminated {
                    max: StrRef::DEFAULT_C_MAX,
                },
            }),
        }
    }
}

/// All types of one ELF.
#[derive(Clone, Debug, Default)]
pub struct TypeTable {
    pub(crate) types: Vec<TypeInfo>,
    /// `.debug_info` offset of each type DIE → its id.
    pub(crate) by_offset: HashMap<usize, TypeId>,
    /// The ELF's address size: the size of pointers without `DW_AT_byte_size`.
    pub(crate) address_size: u8,
}

/// See [`TypeTable::signature`]: size, (name, offset, size) per member, enumerators.
type LayoutSignature = (
    Option<u64>,
    Vec<(Option<String>, u64, Option<u64>)>,
    Vec<Enumerator>,
);

/// Bound on typedef/qualifier chains followed by the queries below (guards against cycles in
/// malformed DWARF).
const MAX_CHAIN: usize = 64;

impl TypeTable {
    pub(crate) fn new(address_size: u8) -> Self {
        TypeTable {
            address_size,
            ..Default::default()
        }
    }

    /// The id for the DIE at `.debug_info` offset `offset`, allocating an `Unknown` placeholder
    /// if that DIE has not been built yet.
    pub(crate) fn id_for_offset(&mut self, offset: usize) -> TypeId {
        if let Some(&id) = self.by_offset.get(&offset) {
            return id;
        }
        let id = self.push(TypeInfo {
            name: None,
            byte_size: None,
            kind: TypeKind::Unknown,
        });
        self.by_offset.insert(offset, id);
        id
    }

    pub(crate) fn push(&mut self, info: TypeInfo) -> TypeId {
        let id = TypeId(self.types.len() as u32);
        self.types.push(info);
        id
    }

    pub(crate) fn get_mut(&mut self, id: TypeId) -> &mut TypeInfo {
        &mut self.types[id.0 as usize]
    }

    /// Replaces each declaration-only struct/union/enum in `decls` (C `struct foo;` seen in one
    /// unit) by a copy of the complete type of the same kind and name from any unit, if there is
    /// exactly one distinct layout for that name. Ambiguous or missing definitions stay as they
    /// are (unsized).
    pub(crate) fn resolve_declarations(&mut self, decls: &[TypeId]) {
        let key = |t: &TypeInfo| -> Option<(u8, String)> {
            let kind = match t.kind {
                TypeKind::Struct { .. } => 0,
                TypeKind::Union { .. } => 1,
                TypeKind::Enum { .. } => 2,
                _ => return None,
            };
            Some((kind, t.name.clone()?))
        };
        let mut complete: HashMap<(u8, String), Option<TypeId>> = HashMap::new();
        let is_decl: std::collections::HashSet<TypeId> = decls.iter().copied().collect();
        for (i, t) in self.types.iter().enumerate() {
            let id = TypeId(i as u32);
            if t.byte_size.is_none() || is_decl.contains(&id) {
                continue;
            }
            if let Some(k) = key(t) {
                complete
                    .entry(k)
                    .and_modify(|seen| {
                        // The same definition repeated in several units is not ambiguous.
                        if seen.is_some_and(|s| self.signature(s) != self.signature(id)) {
                            *seen = None;
                        }
                    })
                    .or_insert(Some(id));
            }
        }
        for &d in decls {
            let Some(k) = key(self.get(d)) else { continue };
            if let Some(Some(full)) = complete.get(&k) {
                self.types[d.0 as usize] = self.types[full.0 as usize].clone();
            }
        }
    }

    /// What makes two definitions from different units the same layout: size, and member names,
    /// offsets and sizes (or enumerators). Member type ids differ between units, so they are
    /// not compared.
    fn signature(&self, id: TypeId) -> LayoutSignature {
        let t = self.get(id);
        match &t.kind {
            TypeKind::Struct { members, .. } | TypeKind::Union { members } => (
                t.byte_size,
                members
                    .iter()
                    .map(|m| (m.name.clone(), m.offset, self.size_of(m.ty)))
                    .collect(),
                Vec::new(),
            ),
            TypeKind::Enum { enumerators, .. } => (t.byte_size, Vec::new(), enumerators.clone()),
            _ => (t.byte_size, Vec::new(), Vec::new()),
        }
    }

    /// The type with this id. Panics only if `id` comes from another table.
    pub fn get(&self, id: TypeId) -> &TypeInfo {
        &self.types[id.0 as usize]
    }

    /// Number of types.
    pub fn len(&self) -> usize {
        self.types.len()
    }

    pub fn is_empty(&self) -> bool {
        self.types.is_empty()
    }

    /// Pointer size of the target.
    pub fn address_size(&self) -> u8 {
        self.address_size
    }

    /// All types called `name` (unqualified DWARF name, e.g. `AllocEntry` or `alloc_track_t`).
    pub fn find_by_name<'a>(&'a self, name: &'a str) -> impl Iterator<Item = TypeId> + 'a {
        self.types
            .iter()
            .enumerate()
            .filter(move |(_, t)| t.name.as_deref() == Some(name))
            .map(|(i, _)| TypeId(i as u32))
    }

    /// Follows typedefs and qualifiers (`const`, `volatile`, …) to the type they name. Returns
    /// `id` itself if it is neither; `None` for a typedef of nothing (`void`).
    pub fn strip_typedefs(&self, mut id: TypeId) -> Option<TypeId> {
        for _ in 0..MAX_CHAIN {
            match &self.get(id).kind {
                TypeKind::Typedef { target } | TypeKind::Qualified { target, .. } => {
                    id = (*target)?
                }
                _ => return Some(id),
            }
        }
        None
    }

    /// Like [`strip_typedefs`](Self::strip_typedefs), then also through single-field wrapper
    /// structs (`TrackerCell<T>`, `UnsafeCell<T>`, `#[repr(transparent)]` newtypes, C
    /// `struct { T x; }`) whose only member is at offset 0 and as large as the wrapper. Stops at
    /// strings (`&str` is a two-field struct anyway) and at anything else.
    pub fn see_through(&self, id: TypeId) -> Option<TypeId> {
        let mut id = self.strip_typedefs(id)?;
        for _ in 0..MAX_CHAIN {
            let info = self.get(id);
            let TypeKind::Struct {
                members,
                has_variants: false,
            } = &info.kind
            else {
                return Some(id);
            };
            let [only] = members.as_slice() else {
                return Some(id);
            };
            if only.offset != 0 || only.bits.is_some() {
                return Some(id);
            }
            let inner = self.strip_typedefs(only.ty)?;
            if self.size_of(inner).is_some() && self.size_of(inner) != info.byte_size {
                return Some(id);
            }
            id = inner;
        }
        Some(id)
    }

    /// Size in bytes: `DW_AT_byte_size` if given; else the address size for pointers, the
    /// target's size for typedefs and qualifiers, element size × counts for arrays. `None` if
    /// unknown (incomplete types, unbounded arrays, `void`).
    pub fn size_of(&self, id: TypeId) -> Option<u64> {
        self.size_of_depth(id, 0)
    }

    fn size_of_depth(&self, id: TypeId, depth: usize) -> Option<u64> {
        if depth > MAX_CHAIN {
            return None;
        }
        let info = self.get(id);
        if let Some(size) = info.byte_size {
            return Some(size);
        }
        match &info.kind {
            TypeKind::Pointer { .. } => Some(u64::from(self.address_size)),
            TypeKind::Typedef { target } | TypeKind::Qualified { target, .. } => {
                self.size_of_depth((*target)?, depth + 1)
            }
            TypeKind::Array { element, counts } => {
                let mut total = self.size_of_depth(*element, depth + 1)?;
                for c in counts {
                    total = total.checked_mul((*c)?)?;
                }
                Some(total)
            }
            TypeKind::Enum {
                underlying: Some(u),
                ..
            } => self.size_of_depth(*u, depth + 1),
            _ => None,
        }
    }

    /// A printable name: the DWARF name, or a description built from the kind (`*u8`,
    /// `[AllocEntry; 8192]`).
    pub fn display_name(&self, id: TypeId) -> String {
        self.display_depth(id, 0)
    }

    fn display_depth(&self, id: TypeId, depth: usize) -> String {
        let info = self.get(id);
        if let Some(name) = &info.name {
            return name.clone();
        }
        if depth > 8 {
            return "…".into();
        }
        let sub = |t: Option<TypeId>| match t {
            Some(t) => self.display_depth(t, depth + 1),
            None => "void".into(),
        };
        match &info.kind {
            TypeKind::Pointer { pointee } => format!("*{}", sub(*pointee)),
            TypeKind::Array { element, counts } => {
                let mut s = sub(Some(*element));
                for c in counts.iter().rev() {
                    s = match c {
                        Some(n) => format!("[{s}; {n}]"),
                        None => format!("[{s}]"),
                    };
                }
                s
            }
            TypeKind::Qualified { qualifier, target } => {
                format!(
                    "{} {}",
                    format!("{qualifier:?}").to_lowercase(),
                    sub(*target)
                )
            }
            TypeKind::Typedef { target } => sub(*target),
            TypeKind::Struct { .. } => "<anonymous struct>".into(),
            TypeKind::Union { .. } => "<anonymous union>".into(),
            TypeKind::Enum { .. } => "<anonymous enum>".into(),
            TypeKind::Base(_) | TypeKind::Opaque => "<unnamed>".into(),
            TypeKind::Unknown => "<unknown>".into(),
        }
    }

    /// The kind's name for error messages: "a struct", "an array", …
    pub fn kind_name(&self, id: TypeId) -> &'static str {
        match &self.get(id).kind {
            TypeKind::Base(_) => "a base type",
            TypeKind::Pointer { .. } => "a pointer",
            TypeKind::Array { .. } => "an array",
            TypeKind::Struct { .. } => "a struct",
            TypeKind::Union { .. } => "a union",
            TypeKind::Enum { .. } => "an enum",
            TypeKind::Typedef { .. } => "a typedef",
            TypeKind::Qualified { .. } => "a qualified type",
            TypeKind::Opaque => "an opaque type",
            TypeKind::Unknown => "an unknown type",
        }
    }

    /// Recognises string-like types (after typedefs/qualifiers): Rust `&str` — a struct named
    /// `&str`/`&mut str` or any struct with exactly the members `data_ptr` (pointer to a 1-byte
    /// type) and `length` — and C `char *`. `None` for everything else, including `&[u8]`-style
    /// slices whose name is not a `str`.
    pub fn string_kind(&self, id: TypeId) -> Option<StringKind> {
        let id = self.strip_typedefs(id)?;
        let info = self.get(id);
        match &info.kind {
            TypeKind::Struct { members, .. } => {
                let named_str = matches!(info.name.as_deref(), Some("&str" | "&mut str"));
                let ptr = members
                    .iter()
                    .find(|m| m.name.as_deref() == Some("data_ptr"))?;
                let len = members
                    .iter()
                    .find(|m| m.name.as_deref() == Some("length"))?;
                if members.len() != 2 {
                    return None;
                }
                let ptr_ty = self.strip_typedefs(ptr.ty)?;
                let TypeKind::Pointer { pointee } = self.get(ptr_ty).kind else {
                    return None;
                };
                if !named_str && pointee.and_then(|p| self.size_of(p)) != Some(1) {
                    return None;
                }
                Some(StringKind::RustStr {
                    ptr_offset: ptr.offset,
                    ptr_size: self.size_of(ptr_ty)?,
                    len_offset: len.offset,
                    len_size: self.size_of(len.ty)?,
                })
            }
            TypeKind::Pointer {
                pointee: Some(pointee),
            } => {
                let target = self.strip_typedefs(*pointee)?;
                let is_char = matches!(
                    self.get(target).kind,
                    TypeKind::Base(BaseEncoding::SignedChar | BaseEncoding::UnsignedChar)
                ) && self.size_of(target) == Some(1);
                is_char.then(|| StringKind::CStr {
                    ptr_size: self.size_of(id).unwrap_or(u64::from(self.address_size)),
                })
            }
            _ => None,
        }
    }

    /// Element type and dimension lengths of an array type (after
    /// [`see_through`](Self::see_through)), or `None` if it is not an array.
    pub fn array_info(&self, id: TypeId) -> Option<(TypeId, &[Option<u64>])> {
        let id = self.see_through(id)?;
        match &self.get(id).kind {
            TypeKind::Array { element, counts } => Some((*element, counts.as_slice())),
            _ => None,
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A hand-built table: u8, u32, i16, usize, *const u8, &str, char, char*, wrapper chain.
    pub(crate) struct Synth {
        pub table: TypeTable,
        pub u8_: TypeId,
        pub u32_: TypeId,
        pub i16_: TypeId,
        pub usize_: TypeId,
        pub str_: TypeId,
        pub cchar: TypeId,
        pub cstr: TypeId,
    }

    pub(crate) fn base(t: &mut TypeTable, name: &str, size: u64, enc: BaseEncoding) -> TypeId {
        t.push(TypeInfo {
            name: Some(name.into()),
            byte_size: Some(size),
            kind: TypeKind::Base(enc),
        })
    }

    pub(crate) fn member(name: &str, ty: TypeId, offset: u64) -> Member {
        Member {
            name: Some(name.into()),
            ty,
            offset,
            bits: None,
        }
    }

    pub(crate) fn synth(address_size: u8) -> Synth {
        let mut t = TypeTable::new(address_size);
        let u8_ = base(&mut t, "u8", 1, BaseEncoding::Unsigned);
        let u32_ = base(&mut t, "u32", 4, BaseEncoding::Unsigned);
        let i16_ = base(&mut t, "i16", 2, BaseEncoding::Signed);
        let a = u64::from(address_size);
        let usize_ = base(&mut t, "usize", a, BaseEncoding::Unsigned);
        let ptr_u8 = t.push(TypeInfo {
            name: Some("*const u8".into()),
            byte_size: None,
            kind: TypeKind::Pointer { pointee: Some(u8_) },
        });
        let str_ = t.push(TypeInfo {
            name: Some("&str".into()),
            byte_size: Some(2 * a),
            kind: TypeKind::Struct {
                members: vec![member("data_ptr", ptr_u8, 0), member("length", usize_, a)],
                has_variants: false,
            },
        });
        let cchar = base(&mut t, "char", 1, BaseEncoding::SignedChar);
        let const_char = t.push(TypeInfo {
            name: None,
            byte_size: None,
            kind: TypeKind::Qualified {
                qualifier: Qualifier::Const,
                target: Some(cchar),
            },
        });
        let cstr = t.push(TypeInfo {
            name: None,
            byte_size: Some(a),
            kind: TypeKind::Pointer {
                pointee: Some(const_char),
            },
        });
        Synth {
            table: t,
            u8_,
            u32_,
            i16_,
            usize_,
            str_,
            cchar,
            cstr,
        }
    }

    #[test]
    fn sizes_follow_pointers_typedefs_and_arrays() {
        let mut s = synth(4);
        let t = &mut s.table;
        let ptr = t.push(TypeInfo {
            name: None,
            byte_size: None,
            kind: TypeKind::Pointer { pointee: None },
        });
        assert_eq!(
            t.size_of(ptr),
            Some(4),
            "pointer without byte_size = address size"
        );
        let td = t.push(TypeInfo {
            name: Some("paddr_t".into()),
            byte_size: None,
            kind: TypeKind::Typedef {
                target: Some(s.u32_),
            },
        });
        assert_eq!(t.size_of(td), Some(4));
        let arr = t.push(TypeInfo {
            name: None,
            byte_size: None,
            kind: TypeKind::Array {
                element: td,
                counts: vec![Some(3), Some(5)],
            },
        });
        assert_eq!(t.size_of(arr), Some(60));
        assert_eq!(t.display_name(arr), "[[paddr_t; 5]; 3]");
        let flex = t.push(TypeInfo {
            name: None,
            byte_size: None,
            kind: TypeKind::Array {
                element: td,
                counts: vec![None],
            },
        });
        assert_eq!(t.size_of(flex), None);
    }

    #[test]
    fn see_through_wrappers_stops_at_real_structs() {
        let mut s = synth(8);
        let t = &mut s.table;
        let arr = t.push(TypeInfo {
            name: None,
            byte_size: None,
            kind: TypeKind::Array {
                element: s.u32_,
                counts: vec![Some(4)],
            },
        });
        let unsafe_cell = t.push(TypeInfo {
            name: Some("UnsafeCell<[u32; 4]>".into()),
            byte_size: Some(16),
            kind: TypeKind::Struct {
                members: vec![member("value", arr, 0)],
                has_variants: false,
            },
        });
        let cell = t.push(TypeInfo {
            name: Some("TrackerCell<[u32; 4]>".into()),
            byte_size: Some(16),
            kind: TypeKind::Struct {
                members: vec![member("__0", unsafe_cell, 0)],
                has_variants: false,
            },
        });
        assert_eq!(t.see_through(cell), Some(arr));
        assert_eq!(
            t.array_info(cell).map(|(e, c)| (e, c.to_vec())),
            Some((s.u32_, vec![Some(4)]))
        );
        // A struct whose single member is smaller than itself (padding) is not a wrapper.
        let padded = t.push(TypeInfo {
            name: Some("Padded".into()),
            byte_size: Some(8),
            kind: TypeKind::Struct {
                members: vec![member("x", s.u32_, 0)],
                has_variants: false,
            },
        });
        assert_eq!(t.see_through(padded), Some(padded));
        // &str has two fields: never seen through.
        assert_eq!(t.see_through(s.str_), Some(s.str_));
    }

    #[test]
    fn str_and_char_pointer_are_strings_u8_pointer_is_not() {
        let mut s = synth(8);
        assert_eq!(
            s.table.string_kind(s.str_),
            Some(StringKind::RustStr {
                ptr_offset: 0,
                ptr_size: 8,
                len_offset: 8,
                len_size: 8
            })
        );
        assert_eq!(
            s.table.string_kind(s.cstr),
            Some(StringKind::CStr { ptr_size: 8 })
        );
        let ptr_u8 = s.table.push(TypeInfo {
            name: None,
            byte_size: None,
            kind: TypeKind::Pointer {
                pointee: Some(s.u8_),
            },
        });
        assert_eq!(
            s.table.string_kind(ptr_u8),
            None,
            "*const u8 is not a C string"
        );
        assert_eq!(s.table.string_kind(s.cchar), None);
        assert_eq!(s.table.string_kind(s.i16_), None);
        let _ = s.usize_;
    }

    #[test]
    fn forward_declarations_resolve_to_the_unique_definition() {
        let mut s = synth(8);
        let t = &mut s.table;
        let decl = |t: &mut TypeTable, name: &str| {
            t.push(TypeInfo {
                name: Some(name.into()),
                byte_size: None,
                kind: TypeKind::Struct {
                    members: vec![],
                    has_variants: false,
                },
            })
        };
        let full = |t: &mut TypeTable, name: &str, ty: TypeId| {
            t.push(TypeInfo {
                name: Some(name.into()),
                byte_size: Some(4),
                kind: TypeKind::Struct {
                    members: vec![member("x", ty, 0)],
                    has_variants: false,
                },
            })
        };
        let foo_decl = decl(t, "foo");
        let foo = full(t, "foo", s.u32_);
        // The same layout in another unit, with that unit's own `u32`.
        let u32_again = base(t, "u32", 4, BaseEncoding::Unsigned);
        let _foo_again = full(t, "foo", u32_again);
        let bar_decl = decl(t, "bar");
        full(t, "bar", s.u32_);
        full(t, "bar", s.i16_); // two different `bar`s: ambiguous
        let baz_decl = decl(t, "baz"); // never defined
        t.resolve_declarations(&[foo_decl, bar_decl, baz_decl]);
        assert_eq!(t.get(foo_decl), t.get(foo));
        assert_eq!(t.size_of(foo_decl), Some(4));
        assert_eq!(t.size_of(bar_decl), None);
        assert_eq!(t.size_of(baz_decl), None);
    }

    #[test]
    fn enumerator_matching_ignores_sign_encoding() {
        let e = Enumerator {
            name: "Neg".into(),
            value: -1,
        };
        assert!(e.matches(0xffff_ffff, 4));
        assert!(!e.matches(0xffff, 4));
        let e = Enumerator {
            name: "Big".into(),
            value: 0xffff_ffff,
        };
        assert!(e.matches(0xffff_ffff, 4));
    }

    #[test]
    fn fetch_reads_exact_and_nul_terminated_strings() {
        let mut mem = [b'.'; 128];
        mem[4..16].copy_from_slice(b"hello\0world.");
        let read = |addr: u64, buf: &mut [u8]| -> Result<(), ()> {
            let a = addr as usize - 0x1000;
            buf.copy_from_slice(mem.get(a..a + buf.len()).ok_or(())?);
            Ok(())
        };
        let exact = StrRef {
            ptr: 0x1004,
            len: StrLen::Exact(5),
        };
        assert_eq!(exact.fetch(1024, read).unwrap(), "hello");
        let c = StrRef {
            ptr: 0x1004,
            len: StrLen::NulTerminated { max: 64 },
        };
        assert_eq!(c.fetch(1024, read).unwrap(), "hello");
        // Memory ends 2 bytes after the NUL: the 64-byte chunk fails, byte reads succeed.
        let short = |addr: u64, buf: &mut [u8]| -> Result<(), ()> {
            let a = addr as usize - 0x1000;
            buf.copy_from_slice(mem[..12].get(a..a + buf.len()).ok_or(())?);
            Ok(())
        };
        assert_eq!(c.fetch(1024, short).unwrap(), "hello");
        let unterminated = StrRef {
            ptr: 0x1006,
            len: StrLen::NulTerminated { max: 64 },
        };
        let mut no_nul = mem;
        no_nul[9] = b'!';
        let short = |addr: u64, buf: &mut [u8]| -> Result<(), ()> {
            let a = addr as usize - 0x1000;
            buf.copy_from_slice(no_nul[..12].get(a..a + buf.len()).ok_or(())?);
            Ok(())
        };
        assert!(
            unterminated.fetch(1024, short).is_err(),
            "runs into unreadable memory"
        );
        let bounded = StrRef {
            ptr: 0x1004,
            len: StrLen::NulTerminated { max: 3 },
        };
        assert_eq!(bounded.fetch(1024, read).unwrap(), "hel");
        let null = StrRef {
            ptr: 0,
            len: StrLen::Exact(5),
        };
        assert_eq!(null.fetch(1024, |_, _| Err(())).unwrap(), "");
    }
}
