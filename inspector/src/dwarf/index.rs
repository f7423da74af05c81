//! One pass over every DIE of every unit: builds the [`TypeTable`], the static variables and the
//! concrete functions, each with its `::`-qualified name (namespaces, enclosing functions).
//!
//! Contract: only variables whose `DW_AT_location` evaluates to a fixed address (`DW_OP_addr`,
//! optionally with constant arithmetic such as `DW_OP_plus_uconst`) are recorded; locals and
//! TLS are not. A definition with `DW_AT_specification` takes its name (and, if it has none of
//! its own, its type) from the declaration.

use gimli::{AttributeValue, DebuggingInformationEntry, Unit};

use super::limits::MAX_EXPRESSION_STEPS;
use super::loader::Reader;
use super::types::{
    BaseEncoding, Enumerator, Member, Qualifier, TypeId, TypeInfo, TypeKind, TypeTable,
};

/// A variable with a static address.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VariableDie {
    /// `DW_AT_name` (of the declaration if this is a definition with a specification).
    pub name: String,
    /// Name with enclosing namespaces/functions, `::`-joined (`kernel::mm::ALLOC_TABLE`).
    pub qualified_name: String,
    pub linkage_name: Option<String>,
    pub address: u64,
    pub ty: Option<TypeId>,
}

/// A concrete (not inlined-only) function with a contiguous `DW_AT_low_pc`/`DW_AT_high_pc`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FunctionDie {
    pub name: String,
    pub qualified_name: String,
    pub linkage_name: Option<String>,
    pub low_pc: u64,
    /// One past the last byte.
    pub high_pc: u64,
}

/// Everything the pass collects.
#[derive(Debug, Default)]
pub struct DieIndex {
    pub types: TypeTable,
    pub variables: Vec<VariableDie>,
    pub functions: Vec<FunctionDie>,
    /// Struct/union/enum DIEs with `DW_AT_declaration` (C forward declarations).
    declarations: Vec<TypeId>,
}

enum Scope {
    /// A namespace or function: contributes to qualified names.
    Named(String),
    /// A struct/union/enum/array being built: its children are members/enumerators/subranges.
    Type(TypeId),
    Other,
}

/// Builds the index of all units; the first malformed unit fails the whole build.
pub fn build(dwarf: &gimli::Dwarf<Reader>, address_size: u8) -> gimli::Result<DieIndex> {
    let mut index = DieIndex {
        types: TypeTable::new(address_size),
        ..Default::default()
    };
    let mut units = dwarf.units();
    while let Some(header) = units.next()? {
        let unit = dwarf.unit(header)?;
        index_unit(dwarf, &unit, &mut index)?;
    }
    let declarations = std::mem::take(&mut index.declarations);
    index.types.resolve_declarations(&declarations);
    Ok(index)
}

fn index_unit(
    dwarf: &gimli::Dwarf<Reader>,
    unit: &Unit<Reader>,
    index: &mut DieIndex,
) -> gimli::Result<()> {
    let mut stack: Vec<(isize, Scope)> = Vec::new();
    let mut cursor = unit.entries();
    while let Some(entry) = cursor.next_dfs()? {
        let depth = entry.depth();
        while stack.last().is_some_and(|(d, _)| *d >= depth) {
            stack.pop();
        }
        let parent_type = match stack.last() {
            Some((_, Scope::Type(id))) => Some(*id),
            _ => None,
        };
        let scope = visit(dwarf, unit, entry, parent_type, &stack, index)?;
        if entry.has_children() {
            stack.push((depth, scope));
        }
    }
    Ok(())
}

fn qualify(stack: &[(isize, Scope)], name: &str) -> String {
    let mut parts: Vec<&str> = stack
        .iter()
        .filter_map(|(_, s)| match s {
            Scope::Named(n) => Some(n.as_str()),
            _ => None,
        })
        .collect();
    parts.push(name);
    parts.join("::")
}

fn visit(
    dwarf: &gimli::Dwarf<Reader>,
    unit: &Unit<Reader>,
    entry: &DebuggingInformationEntry<Reader>,
    parent_type: Option<TypeId>,
    stack: &[(isize, Scope)],
    index: &mut DieIndex,
) -> gimli::Result<Scope> {
    let tag = entry.tag();
    let name = die_name(dwarf, unit, entry);
    let types = &mut index.types;
    let this_type = |types: &mut TypeTable| -> Option<TypeId> {
        let offset = entry.offset().to_debug_info_offset(&unit.header)?;
        Some(types.id_for_offset(offset.0))
    };
    let type_ref = |types: &mut TypeTable, e: &DebuggingInformationEntry<Reader>| {
        attr_type_ref(unit, e, gimli::DW_AT_type).map(|off| types.id_for_offset(off))
    };
    let byte_size = entry
        .attr_value(gimli::DW_AT_byte_size)
        .and_then(|v| v.udata_value());

    let kind = match tag {
        gimli::DW_TAG_base_type => {
            let enc = match entry.attr_value(gimli::DW_AT_encoding) {
                Some(AttributeValue::Encoding(ate)) => BaseEncoding::from_dwarf(ate),
                _ => BaseEncoding::Other,
            };
            Some(TypeKind::Base(enc))
        }
        gimli::DW_TAG_pointer_type
        | gimli::DW_TAG_reference_type
        | gimli::DW_TAG_rvalue_reference_type
        | gimli::DW_TAG_ptr_to_member_type => Some(TypeKind::Pointer {
            pointee: type_ref(types, entry),
        }),
        gimli::DW_TAG_array_type => match type_ref(types, entry) {
            Some(element) => Some(TypeKind::Array {
                element,
                counts: Vec::new(),
            }),
            None => Some(TypeKind::Opaque),
        },
        gimli::DW_TAG_structure_type | gimli::DW_TAG_class_type => Some(TypeKind::Struct {
            members: Vec::new(),
            has_variants: false,
        }),
        gimli::DW_TAG_union_type => Some(TypeKind::Union {
            members: Vec::new(),
        }),
        gimli::DW_TAG_enumeration_type => Some(TypeKind::Enum {
            underlying: type_ref(types, entry),
            enumerators: Vec::new(),
        }),
        gimli::DW_TAG_typedef => Some(TypeKind::Typedef {
            target: type_ref(types, entry),
        }),
        gimli::DW_TAG_const_type
        | gimli::DW_TAG_volatile_type
        | gimli::DW_TAG_restrict_type
        | gimli::DW_TAG_atomic_type => Some(TypeKind::Qualified {
            qualifier: match tag {
                gimli::DW_TAG_const_type => Qualifier::Const,
                gimli::DW_TAG_volatile_type => Qualifier::Volatile,
                gimli::DW_TAG_restrict_type => Qualifier::Restrict,
                _ => Qualifier::Atomic,
            },
            target: type_ref(types, entry),
        }),
        gimli::DW_TAG_subroutine_type | gimli::DW_TAG_unspecified_type => Some(TypeKind::Opaque),
        _ => None,
    };
    if let Some(kind) = kind {
        let Some(id) = this_type(types) else {
            return Ok(Scope::Other);
        };
        let is_container = matches!(
            kind,
            TypeKind::Struct { .. }
                | TypeKind::Union { .. }
                | TypeKind::Enum { .. }
                | TypeKind::Array { .. }
        );
        *types.get_mut(id) = TypeInfo {
            name,
            byte_size,
            kind,
        };
        if is_container
            && !matches!(types.get(id).kind, TypeKind::Array { .. })
            && matches!(
                entry.attr_value(gimli::DW_AT_declaration),
                Some(AttributeValue::Flag(true))
            )
        {
            index.declarations.push(id);
        }
        return Ok(if is_container {
            Scope::Type(id)
        } else {
            Scope::Other
        });
    }

    match tag {
        gimli::DW_TAG_member => {
            if let Some(parent) = parent_type {
                let Some(ty) = type_ref(types, entry) else {
                    return Ok(Scope::Other);
                };
                let offset = member_offset(unit, entry).unwrap_or(0);
                let bits = match (
                    entry
                        .attr_value(gimli::DW_AT_data_bit_offset)
                        .and_then(|v| v.udata_value()),
                    entry
                        .attr_value(gimli::DW_AT_bit_size)
                        .and_then(|v| v.udata_value()),
                ) {
                    (Some(bit_off), Some(bit_size)) => Some((bit_off % 8, bit_size)),
                    (None, Some(bit_size)) => Some((0, bit_size)),
                    _ => None,
                };
                let offset = match entry
                    .attr_value(gimli::DW_AT_data_bit_offset)
                    .and_then(|v| v.udata_value())
                {
                    Some(bit_off) => bit_off / 8,
                    None => offset,
                };
                let member = Member {
                    name,
                    ty,
                    offset,
                    bits,
                };
                match &mut types.get_mut(parent).kind {
                    TypeKind::Struct { members, .. } | TypeKind::Union { members } => {
                        members.push(member)
                    }
                    _ => {}
                }
            }
            Ok(Scope::Other)
        }
        gimli::DW_TAG_variant_part => {
            if let Some(parent) = parent_type {
                if let TypeKind::Struct { has_variants, .. } = &mut types.get_mut(parent).kind {
                    *has_variants = true;
                }
            }
            Ok(Scope::Other)
        }
        gimli::DW_TAG_enumerator => {
            if let (Some(parent), Some(name)) = (parent_type, name) {
                let value = match entry.attr_value(gimli::DW_AT_const_value) {
                    Some(AttributeValue::Sdata(v)) => Some(i128::from(v)),
                    Some(AttributeValue::Data16(v)) => Some(v as i128),
                    Some(v) => v.udata_value().map(i128::from),
                    None => None,
                };
                if let (Some(value), TypeKind::Enum { enumerators, .. }) =
                    (value, &mut types.get_mut(parent).kind)
                {
                    enumerators.push(Enumerator { name, value });
                }
            }
            Ok(Scope::Other)
        }
        gimli::DW_TAG_subrange_type => {
            if let Some(parent) = parent_type {
                if let TypeKind::Array { counts, .. } = &mut types.get_mut(parent).kind {
                    counts.push(subrange_count(entry));
                }
            }
            Ok(Scope::Other)
        }
        gimli::DW_TAG_namespace => Ok(Scope::Named(name.unwrap_or_else(|| "{anon}".into()))),
        gimli::DW_TAG_variable => {
            record_variable(dwarf, unit, entry, name, stack, index);
            Ok(Scope::Other)
        }
        gimli::DW_TAG_subprogram => {
            let (name, linkage_name, _) = with_specification(dwarf, unit, entry, name);
            let name = name.unwrap_or_else(|| "{anon}".into());
            if let Some(low_pc) = entry
                .attr_value(gimli::DW_AT_low_pc)
                .and_then(|v| dwarf.attr_address(unit, v).ok().flatten())
            {
                let high_pc = match entry.attr_value(gimli::DW_AT_high_pc) {
                    Some(AttributeValue::Udata(len)) => low_pc.checked_add(len),
                    Some(v) => match v.udata_value() {
                        // DWARF 4+: a constant class high_pc is the length.
                        Some(len)
                            if !matches!(
                                v,
                                AttributeValue::Addr(_) | AttributeValue::DebugAddrIndex(_)
                            ) =>
                        {
                            low_pc.checked_add(len)
                        }
                        _ => dwarf.attr_address(unit, v).ok().flatten(),
                    },
                    None => None,
                };
                index.functions.push(FunctionDie {
                    qualified_name: qualify(stack, &name),
                    name: name.clone(),
                    linkage_name,
                    low_pc,
                    high_pc: high_pc.unwrap_or(low_pc),
                });
            }
            Ok(Scope::Named(name))
        }
        _ => Ok(Scope::Other),
    }
}

fn record_variable(
    dwarf: &gimli::Dwarf<Reader>,
    unit: &Unit<Reader>,
    entry: &DebuggingInformationEntry<Reader>,
    name: Option<String>,
    stack: &[(isize, Scope)],
    index: &mut DieIndex,
) {
    let Some(AttributeValue::Exprloc(expr)) = entry.attr_value(gimli::DW_AT_location) else {
        return;
    };
    let Some(address) = eval_static_address(expr, unit.encoding(), |i| dwarf.address(unit, i).ok())
    else {
        return;
    };
    let (name, linkage_name, spec_type) = with_specification(dwarf, unit, entry, name);
    let Some(name) = name.or_else(|| linkage_name.clone()) else {
        return;
    };
    let ty = attr_type_ref(unit, entry, gimli::DW_AT_type)
        .or(spec_type)
        .map(|off| index.types.id_for_offset(off));
    index.variables.push(VariableDie {
        qualified_name: qualify(stack, &name),
        name,
        linkage_name,
        address,
        ty,
    });
}

/// `(name, linkage name, type offset)`, taken from `DW_AT_specification`/`DW_AT_abstract_origin`
/// when the entry itself lacks them.
fn with_specification(
    dwarf: &gimli::Dwarf<Reader>,
    unit: &Unit<Reader>,
    entry: &DebuggingInformationEntry<Reader>,
    name: Option<String>,
) -> (Option<String>, Option<String>, Option<usize>) {
    let mut linkage = linkage_name(dwarf, unit, entry);
    let mut name = name;
    let mut ty = None;
    for attr in [gimli::DW_AT_specification, gimli::DW_AT_abstract_origin] {
        let Some(AttributeValue::UnitRef(off)) = entry.attr_value(attr) else {
            continue;
        };
        let Ok(decl) = unit.entry(off) else { continue };
        name = name.or_else(|| die_name(dwarf, unit, &decl));
        linkage = linkage.or_else(|| linkage_name(dwarf, unit, &decl));
        ty = ty.or_else(|| attr_type_ref(unit, &decl, gimli::DW_AT_type));
    }
    (name, linkage, ty)
}

fn die_name(
    dwarf: &gimli::Dwarf<Reader>,
    unit: &Unit<Reader>,
    entry: &DebuggingInformationEntry<Reader>,
) -> Option<String> {
    attr_string(dwarf, unit, entry, gimli::DW_AT_name)
}

fn linkage_name(
    dwarf: &gimli::Dwarf<Reader>,
    unit: &Unit<Reader>,
    entry: &DebuggingInformationEntry<Reader>,
) -> Option<String> {
    attr_string(dwarf, unit, entry, gimli::DW_AT_linkage_name)
        .or_else(|| attr_string(dwarf, unit, entry, gimli::DW_AT_MIPS_linkage_name))
}

pub(crate) fn attr_string(
    dwarf: &gimli::Dwarf<Reader>,
    unit: &Unit<Reader>,
    entry: &DebuggingInformationEntry<Reader>,
    at: gimli::DwAt,
) -> Option<String> {
    let value = entry.attr_value(at)?;
    let s = dwarf.attr_string(unit, value).ok()?;
    use gimli::Reader as _;
    Some(s.to_string_lossy().ok()?.into_owned())
}

/// `.debug_info` offset of the DIE an attribute refers to (same-unit or section references).
fn attr_type_ref(
    unit: &Unit<Reader>,
    entry: &DebuggingInformationEntry<Reader>,
    at: gimli::DwAt,
) -> Option<usize> {
    match entry.attr_value(at)? {
        AttributeValue::UnitRef(off) => off.to_debug_info_offset(&unit.header).map(|o| o.0),
        AttributeValue::DebugInfoRef(off) => Some(off.0),
        _ => None,
    }
}

/// `DW_AT_data_member_location` as a constant, or as an expression such as
/// `DW_OP_plus_uconst N` evaluated with the struct address 0 on the stack.
fn member_offset(unit: &Unit<Reader>, entry: &DebuggingInformationEntry<Reader>) -> Option<u64> {
    match entry.attr_value(gimli::DW_AT_data_member_location)? {
        AttributeValue::Exprloc(expr) => {
            let mut eval = expr.evaluation(unit.encoding());
            eval.set_max_iterations(MAX_EXPRESSION_STEPS);
            eval.set_initial_value(0);
            match eval.evaluate().ok()? {
                gimli::EvaluationResult::Complete => {}
                _ => return None,
            }
            match eval.result().as_slice() {
                [gimli::Piece {
                    location: gimli::Location::Address { address },
                    ..
                }] => Some(*address),
                _ => None,
            }
        }
        AttributeValue::Sdata(v) => u64::try_from(v).ok(),
        v => v.udata_value(),
    }
}

/// Length of one array dimension: `DW_AT_count` (rustc), else `DW_AT_upper_bound` −
/// `DW_AT_lower_bound` (default 0) + 1 (C compilers). `None` when neither is a constant
/// (flexible array members, VLAs); an upper bound of −1 means length 0.
pub(crate) fn subrange_count(entry: &DebuggingInformationEntry<Reader>) -> Option<u64> {
    let constant = |at| match entry.attr_value(at)? {
        AttributeValue::Sdata(v) => Some(i128::from(v)),
        AttributeValue::Data16(v) => Some(v as i128),
        v => v.udata_value().map(i128::from),
    };
    array_count(
        constant(gimli::DW_AT_count),
        constant(gimli::DW_AT_upper_bound),
        constant(gimli::DW_AT_lower_bound),
    )
}

/// The arithmetic of [`subrange_count`]: `count` wins; else `upper - lower + 1` (lower
/// defaults to 0, negative lengths clamp to 0); `None` without either bound.
pub(crate) fn array_count(
    count: Option<i128>,
    upper: Option<i128>,
    lower: Option<i128>,
) -> Option<u64> {
    if let Some(count) = count {
        return u64::try_from(count).ok();
    }
    let upper = upper?;
    u64::try_from((upper - lower.unwrap_or(0) + 1).max(0)).ok()
}

/// Evaluates a location expression that names a fixed address (`DW_OP_addr X`,
/// `DW_OP_addrx i`, possibly followed by constant arithmetic like `DW_OP_plus_uconst Y`).
/// `indexed` resolves `.debug_addr` indices. `None` for anything that needs registers, a frame,
/// TLS, or yields more than one piece.
pub fn eval_static_address(
    expr: gimli::Expression<Reader>,
    encoding: gimli::Encoding,
    indexed: impl Fn(gimli::DebugAddrIndex<usize>) -> Option<u64>,
) -> Option<u64> {
    let mut eval = expr.evaluation(encoding);
    eval.set_max_iterations(MAX_EXPRESSION_STEPS);
    let mut result = eval.evaluate().ok()?;
    loop {
        result = match result {
            gimli::EvaluationResult::Complete => break,
            gimli::EvaluationResult::RequiresRelocatedAddress(a) => {
                eval.resume_with_relocated_address(a).ok()?
            }
            gimli::EvaluationResult::RequiresIndexedAddress { index, .. } => {
                eval.resume_with_indexed_address(indexed(index)?).ok()?
            }
            _ => return None,
        };
    }
    match eval.result().as_slice() {
        [gimli::Piece {
            location: gimli::Location::Address { address },
            ..
        }] => Some(*address),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn expr(bytes: &[u8]) -> gimli::Expression<Reader> {
        gimli::Expression(gimli::EndianArcSlice::new(
            Arc::from(bytes),
            gimli::RunTimeEndian::Little,
        ))
    }

    fn enc(address_size: u8) -> gimli::Encoding {
        gimli::Encoding {
            format: gimli::Format::Dwarf32,
            version: 4,
            address_size,
        }
    }

    #[test]
    fn array_bounds_count_versus_upper_bound() {
        // rustc: DW_AT_count 8192
        assert_eq!(array_count(Some(8192), None, None), Some(8192));
        // C: DW_AT_upper_bound 8191 (lower bound 0 implied)
        assert_eq!(array_count(None, Some(8191), None), Some(8192));
        // explicit lower bound (Fortran-style 1-based)
        assert_eq!(array_count(None, Some(10), Some(1)), Some(10));
        // `int a[0]` from some compilers: upper bound -1
        assert_eq!(array_count(None, Some(-1), None), Some(0));
        // flexible array member: no bound at all
        assert_eq!(array_count(None, None, None), None);
        // count takes precedence over a (contradictory) upper bound
        assert_eq!(array_count(Some(4), Some(99), None), Some(4));
    }

    #[test]
    fn location_addr_alone_and_with_plus_uconst() {
        let mut b = vec![gimli::DW_OP_addr.0];
        b.extend_from_slice(&0x8020_1000u64.to_le_bytes());
        assert_eq!(
            eval_static_address(expr(&b), enc(8), |_| None),
            Some(0x8020_1000)
        );
        // DW_OP_plus_uconst 0x130 (ULEB128: 0xb0 0x02)
        b.extend_from_slice(&[gimli::DW_OP_plus_uconst.0, 0xb0, 0x02]);
        assert_eq!(
            eval_static_address(expr(&b), enc(8), |_| None),
            Some(0x8020_1130)
        );
    }

    #[test]
    fn location_32_bit_addr_and_constu_plus() {
        let mut b = vec![gimli::DW_OP_addr.0];
        b.extend_from_slice(&0x1000u32.to_le_bytes());
        b.extend_from_slice(&[gimli::DW_OP_constu.0, 0x10, gimli::DW_OP_plus.0]);
        assert_eq!(
            eval_static_address(expr(&b), enc(4), |_| None),
            Some(0x1010)
        );
    }

    #[test]
    fn location_addrx_uses_the_index_resolver() {
        let b = [gimli::DW_OP_addrx.0, 0x02];
        let got = eval_static_address(expr(&b), enc(8), |i| (i.0 == 2).then_some(0x4000));
        assert_eq!(got, Some(0x4000));
        assert_eq!(eval_static_address(expr(&b), enc(8), |_| None), None);
    }

    #[test]
    fn frame_relative_locations_are_not_static() {
        // DW_OP_fbreg -8: a local variable.
        let b = [gimli::DW_OP_fbreg.0, 0x78];
        assert_eq!(eval_static_address(expr(&b), enc(8), |_| None), None);
        // DW_OP_reg10: a register.
        assert_eq!(
            eval_static_address(expr(&[gimli::DW_OP_reg10.0]), enc(8), |_| None),
            None
        );
    }
}
