//! Formal parameters of concrete functions (`DW_TAG_formal_parameter`) with their DWARF
//! locations, and the evaluation of location expressions against a stopped target's registers
//! and memory: what the debugger shows as a stopped function's arguments.
//!
//! Contract: [`DebugInfo::function_params`] describes the concrete (out-of-line) function whose
//! `DW_AT_low_pc` is the given entry address; parameters of inlined copies are not included.
//! [`evaluate_location`] never guesses: a location that needs something the [`Machine`] cannot
//! supply (an entry value away from the entry, TLS, …) is an [`EvalError`], shown to the user as
//! `<optimized out>`-like text, never as a wrong number.

use gimli::{AttributeValue, EvaluationResult, Location, Piece, Value as GValue};

use super::error::Result;
use super::index::attr_string;
use super::limits::{MAX_EXPRESSION_STEPS, MAX_VALUE_BYTES};
use super::loader::Reader;
use super::types::TypeId;
use super::DebugInfo;

/// Where a parameter lives.
#[derive(Clone, Debug)]
pub enum ParamLocation {
    /// No `DW_AT_location`: optimized out everywhere.
    None,
    /// One expression valid in the whole function.
    Expr(gimli::Expression<Reader>),
    /// A location list: expressions valid for `[begin, end)` pc ranges.
    List(Vec<LocRange>),
}

/// One entry of a location list.
#[derive(Clone, Debug)]
pub struct LocRange {
    pub begin: u64,
    pub end: u64,
    pub expr: gimli::Expression<Reader>,
}

impl ParamLocation {
    /// The expression valid at `pc`, if any.
    pub fn at(&self, pc: u64) -> Option<&gimli::Expression<Reader>> {
        match self {
            ParamLocation::None => None,
            ParamLocation::Expr(e) => Some(e),
            ParamLocation::List(ranges) => ranges
                .iter()
                .find(|r| pc >= r.begin && pc < r.end)
                .map(|r| &r.expr),
        }
    }
}

/// One formal parameter.
#[derive(Clone, Debug)]
pub struct Parameter {
    /// `DW_AT_name` (of the abstract origin if the DIE has none); `_N` for unnamed ones.
    pub name: String,
    pub ty: Option<TypeId>,
    pub location: ParamLocation,
}

/// A concrete function's parameters and what is needed to evaluate their locations.
#[derive(Clone, Debug)]
pub struct FunctionParams {
    pub low: u64,
    pub high: u64,
    pub encoding: gimli::Encoding,
    /// `DW_AT_frame_base` of the function (e.g. `DW_OP_reg2` = sp on riscv64).
    pub frame_base: Option<gimli::Expression<Reader>>,
    pub params: Vec<Parameter>,
    /// For `DW_OP_addrx` in DWARF 5 expressions.
    debug_addr: gimli::DebugAddr<Reader>,
    addr_base: gimli::DebugAddrBase<usize>,
}

impl FunctionParams {
    /// Resolves a `.debug_addr` index of this function's unit.
    pub fn indexed_address(&self, index: gimli::DebugAddrIndex<usize>) -> Option<u64> {
        self.debug_addr
            .get_address(self.encoding.address_size, self.addr_base, index)
            .ok()
    }
}

/// What a location expression may ask of the stopped target. Register numbers are DWARF's
/// (riscv64: 0–31 = x0–x31, 32–63 = f0–f31).
pub trait Machine {
    /// The value of DWARF register `reg` in the frame being inspected; `None` if unknown.
    fn register(&mut self, reg: u16) -> Option<u64>;
    /// Fills `buf` from target memory at `addr`; false if unreadable.
    fn read_memory(&mut self, addr: u64, buf: &mut [u8]) -> bool;
    /// The canonical frame address (`DW_OP_call_frame_cfa`), if known.
    fn cfa(&mut self) -> Option<u64> {
        None
    }
    /// The value `expr` had at the function's entry (`DW_OP_entry_value`), if known: only
    /// knowable while still stopped at the entry address.
    fn entry_value(&mut self, _expr: &gimli::Expression<Reader>) -> Option<u64> {
        None
    }
}

/// Why a location could not be evaluated or read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EvalError {
    #[error("optimized out")]
    OptimizedOut,
    #[error("register {0} unavailable")]
    Register(u16),
    #[error("memory at {0:#x} unreadable")]
    Memory(u64),
    #[error("needs {0}")]
    Unsupported(String),
    #[error("malformed location: {0}")]
    Malformed(String),
}

impl From<gimli::Error> for EvalError {
    fn from(e: gimli::Error) -> Self {
        EvalError::Malformed(e.to_string())
    }
}

/// Evaluates a location expression. `frame_base` answers `DW_OP_fbreg`; `indexed` resolves
/// `.debug_addr` indices. Returns the pieces (one for a plain location).
pub fn evaluate_location(
    expr: &gimli::Expression<Reader>,
    encoding: gimli::Encoding,
    frame_base: Option<u64>,
    machine: &mut dyn Machine,
    indexed: &dyn Fn(gimli::DebugAddrIndex<usize>) -> Option<u64>,
) -> Result<Vec<Piece<Reader>>, EvalError> {
    let mask = if encoding.address_size >= 8 {
        u64::MAX
    } else {
        (1u64 << (8 * encoding.address_size)) - 1
    };
    let mut eval = expr.clone().evaluation(encoding);
    eval.set_max_iterations(MAX_EXPRESSION_STEPS);
    let mut result = eval.evaluate()?;
    loop {
        result = match result {
            EvaluationResult::Complete => break,
            EvaluationResult::RequiresMemory { address, size, .. } => {
                let mut buf = vec![0u8; usize::from(size)];
                if !machine.read_memory(address, &mut buf) {
                    return Err(EvalError::Memory(address));
                }
                let mut le = [0u8; 8];
                let n = buf.len().min(8);
                le[..n].copy_from_slice(&buf[..n]);
                eval.resume_with_memory(GValue::Generic(u64::from_le_bytes(le) & mask))?
            }
            EvaluationResult::RequiresRegister { register, .. } => {
                let v = machine
                    .register(register.0)
                    .ok_or(EvalError::Register(register.0))?;
                eval.resume_with_register(GValue::Generic(v))?
            }
            EvaluationResult::RequiresFrameBase => {
                let fb = frame_base.ok_or_else(|| EvalError::Unsupported("a frame base".into()))?;
                eval.resume_with_frame_base(fb)?
            }
            EvaluationResult::RequiresCallFrameCfa => {
                let cfa = machine
                    .cfa()
                    .ok_or_else(|| EvalError::Unsupported("the call frame address".into()))?;
                eval.resume_with_call_frame_cfa(cfa)?
            }
            EvaluationResult::RequiresEntryValue(e) => {
                let v = machine.entry_value(&e).ok_or(EvalError::OptimizedOut)?;
                eval.resume_with_entry_value(GValue::Generic(v))?
            }
            EvaluationResult::RequiresRelocatedAddress(a) => {
                eval.resume_with_relocated_address(a)?
            }
            EvaluationResult::RequiresIndexedAddress { index, .. } => {
                let a =
                    indexed(index).ok_or_else(|| EvalError::Unsupported(".debug_addr".into()))?;
                eval.resume_with_indexed_address(a)?
            }
            EvaluationResult::RequiresTls(_) => {
                return Err(EvalError::Unsupported("thread-local storage".into()))
            }
            other => return Err(EvalError::Unsupported(format!("{other:?}"))),
        };
    }
    Ok(eval.result())
}

/// The frame base value from a `DW_AT_frame_base` expression: a register location gives that
/// register's contents, an address location the address.
pub fn evaluate_frame_base(
    expr: &gimli::Expression<Reader>,
    encoding: gimli::Encoding,
    machine: &mut dyn Machine,
    indexed: &dyn Fn(gimli::DebugAddrIndex<usize>) -> Option<u64>,
) -> Result<u64, EvalError> {
    let pieces = evaluate_location(expr, encoding, None, machine, indexed)?;
    match pieces.as_slice() {
        [p] => match &p.location {
            Location::Register { register } => machine
                .register(register.0)
                .ok_or(EvalError::Register(register.0)),
            Location::Address { address } => Ok(*address),
            Location::Value { value } => Ok(value.to_u64(u64::MAX)?),
            _ => Err(EvalError::Unsupported("an unusual frame base".into())),
        },
        _ => Err(EvalError::Unsupported("a composite frame base".into())),
    }
}

/// Reads the `size` bytes (little-endian target) an evaluated location describes. Pieces
/// without a size take the rest of the object. Registers give their low bytes.
pub fn read_pieces(
    pieces: &[Piece<Reader>],
    size: u64,
    machine: &mut dyn Machine,
) -> Result<Vec<u8>, EvalError> {
    use gimli::Reader as _;
    let too_big = |bytes: u64| {
        EvalError::Malformed(format!(
            "a value of {bytes} bytes (the limit is {MAX_VALUE_BYTES})"
        ))
    };
    if size > MAX_VALUE_BYTES {
        return Err(too_big(size));
    }
    let size = size as usize;
    let mut out = Vec::with_capacity(size);
    for piece in pieces {
        let want = match piece.size_in_bits {
            Some(bits) if bits.div_ceil(8) > MAX_VALUE_BYTES => {
                return Err(too_big(bits.div_ceil(8)))
            }
            Some(bits) => bits.div_ceil(8) as usize,
            None => size.saturating_sub(out.len()),
        };
        if piece.bit_offset.is_some_and(|o| o % 8 != 0) {
            return Err(EvalError::Unsupported("a bit-offset piece".into()));
        }
        let skip = piece.bit_offset.map_or(0, |o| (o / 8) as usize);
        let bytes: Vec<u8> = match &piece.location {
            Location::Empty => return Err(EvalError::OptimizedOut),
            Location::Register { register } => {
                let v = machine
                    .register(register.0)
                    .ok_or(EvalError::Register(register.0))?;
                le_bytes(u128::from(v), skip, want)
            }
            Location::Address { address } => {
                let mut buf = vec![0u8; want];
                if !machine.read_memory(address.wrapping_add(skip as u64), &mut buf) {
                    return Err(EvalError::Memory(*address));
                }
                buf
            }
            Location::Value { value } => {
                let raw: u128 = match *value {
                    GValue::Generic(v) | GValue::U64(v) => u128::from(v),
                    GValue::I64(v) => v as u128,
                    GValue::U32(v) => u128::from(v),
                    GValue::I32(v) => v as i64 as u128,
                    GValue::U16(v) => u128::from(v),
                    GValue::I16(v) => v as i64 as u128,
                    GValue::U8(v) => u128::from(v),
                    GValue::I8(v) => v as i64 as u128,
                    GValue::F32(v) => u128::from(v.to_bits()),
                    GValue::F64(v) => u128::from(v.to_bits()),
                };
                le_bytes(raw, skip, want)
            }
            Location::Bytes { value } => {
                let b = value.to_slice()?.into_owned();
                let mut b: Vec<u8> = b.into_iter().skip(skip).collect();
                b.resize(want, 0);
                b
            }
            Location::ImplicitPointer { .. } => {
                return Err(EvalError::Unsupported("an implicit pointer".into()))
            }
        };
        out.extend_from_slice(&bytes);
        if out.len() >= size {
            break;
        }
    }
    if out.len() < size {
        return Err(EvalError::OptimizedOut);
    }
    out.truncate(size);
    Ok(out)
}

/// The first `Some` that `f` gives for the units whose address ranges contain `pc`.
fn first_in_units<R>(
    debug: &DebugInfo,
    pc: u64,
    mut f: impl FnMut(
        &gimli::Dwarf<crate::dwarf::Reader>,
        &gimli::Unit<crate::dwarf::Reader>,
    ) -> gimli::Result<Option<R>>,
) -> gimli::Result<Option<R>> {
    let dwarf = debug.elf().dwarf();
    let mut units = dwarf.units();
    while let Some(header) = units.next()? {
        let unit = dwarf.unit(header)?;
        let mut ranges = dwarf.unit_ranges(&unit)?;
        let mut covers = false;
        while let Some(r) = ranges.next()? {
            covers |= pc >= r.begin && pc < r.end;
        }
        if covers {
            if let Some(found) = f(dwarf, &unit)? {
                return Ok(Some(found));
            }
        }
    }
    Ok(None)
}

fn le_bytes(v: u128, skip: usize, want: usize) -> Vec<u8> {
    let all = v.to_le_bytes();
    (0..want)
        .map(|i| {
            skip.checked_add(i)
                .and_then(|j| all.get(j))
                .map_or(0, |&b| b)
        })
        .collect()
}

impl DebugInfo {
    /// The parameters of the concrete function whose entry address is `low`, in declaration
    /// order. `Ok(None)` if DWARF describes no subprogram with that entry address.
    pub fn function_params(&self, low: u64) -> Result<Option<FunctionParams>> {
        self.collect_params(low)
            .map_err(|e| self.elf().gimli_error(e))
    }

    fn collect_params(&self, low: u64) -> gimli::Result<Option<FunctionParams>> {
        first_in_units(self, low, |dwarf, unit| {
            self.params_in_unit(dwarf, unit, low)
        })
    }

    fn params_in_unit(
        &self,
        dwarf: &gimli::Dwarf<Reader>,
        unit: &gimli::Unit<Reader>,
        low: u64,
    ) -> gimli::Result<Option<FunctionParams>> {
        let mut cursor = unit.entries();
        let mut current: Option<(isize, FunctionParams)> = None;
        while let Some(entry) = cursor.next_dfs()? {
            let depth = entry.depth();
            if let Some((d, _)) = &current {
                if depth <= *d {
                    break;
                }
                if depth == *d + 1 && entry.tag() == gimli::DW_TAG_formal_parameter {
                    let param = self.parameter(dwarf, unit, entry)?;
                    current.as_mut().expect("checked").1.params.push(param);
                }
                continue;
            }
            if entry.tag() != gimli::DW_TAG_subprogram {
                continue;
            }
            let Some(entry_low) = entry
                .attr_value(gimli::DW_AT_low_pc)
                .and_then(|v| dwarf.attr_address(unit, v).ok().flatten())
            else {
                continue;
            };
            if entry_low != low {
                continue;
            }
            let high = match entry.attr_value(gimli::DW_AT_high_pc) {
                Some(AttributeValue::Addr(a)) => a,
                Some(v) => v.udata_value().map_or(low, |len| low.saturating_add(len)),
                None => low,
            };
            let frame_base = match entry.attr_value(gimli::DW_AT_frame_base) {
                Some(AttributeValue::Exprloc(e)) => Some(e),
                _ => None,
            };
            current = Some((
                depth,
                FunctionParams {
                    low,
                    high,
                    encoding: unit.encoding(),
                    frame_base,
                    params: Vec::new(),
                    debug_addr: dwarf.debug_addr.clone(),
                    addr_base: unit.addr_base,
                },
            ));
        }
        Ok(current.map(|(_, f)| f))
    }

    fn parameter(
        &self,
        dwarf: &gimli::Dwarf<Reader>,
        unit: &gimli::Unit<Reader>,
        entry: &gimli::DebuggingInformationEntry<Reader>,
    ) -> gimli::Result<Parameter> {
        let mut name = attr_string(dwarf, unit, entry, gimli::DW_AT_name);
        let mut ty = type_offset(unit, entry);
        if name.is_none() || ty.is_none() {
            if let Some(AttributeValue::UnitRef(off)) =
                entry.attr_value(gimli::DW_AT_abstract_origin)
            {
                if let Ok(origin) = unit.entry(off) {
                    name = name.or_else(|| attr_string(dwarf, unit, &origin, gimli::DW_AT_name));
                    ty = ty.or_else(|| type_offset(unit, &origin));
                }
            }
        }
        let location = match entry.attr_value(gimli::DW_AT_location) {
            None => ParamLocation::None,
            Some(AttributeValue::Exprloc(e)) => ParamLocation::Expr(e),
            Some(v) => match dwarf.attr_locations(unit, v)? {
                Some(mut iter) => {
                    let mut ranges = Vec::new();
                    while let Some(l) = iter.next()? {
                        ranges.push(LocRange {
                            begin: l.range.begin,
                            end: l.range.end,
                            expr: l.data,
                        });
                    }
                    ParamLocation::List(ranges)
                }
                None => ParamLocation::None,
            },
        };
        Ok(Parameter {
            name: name.unwrap_or_else(|| "_".into()),
            ty: ty.and_then(|off| self.types().by_offset.get(&off).copied()),
            location,
        })
    }
}

/// The parameters of an inlined call that contains a pc.
#[derive(Clone, Debug)]
pub struct InlinedParams {
    /// The inlined function's name (`DW_AT_name` of its abstract origin).
    pub function: String,
    /// Its parameters, evaluated with the enclosing concrete function's frame base.
    pub params: FunctionParams,
}

impl DebugInfo {
    /// The parameters of every inlined call (`DW_TAG_inlined_subroutine`) that contains `pc`,
    /// innermost first. Empty when `pc` is not in inlined code.
    pub fn inlined_params(&self, pc: u64) -> Result<Vec<InlinedParams>> {
        self.collect_inlined(pc)
            .map_err(|e| self.elf().gimli_error(e))
    }

    fn collect_inlined(&self, pc: u64) -> gimli::Result<Vec<InlinedParams>> {
        let found = first_in_units(self, pc, |dwarf, unit| {
            let found = self.inlined_in_unit(dwarf, unit, pc)?;
            Ok((!found.is_empty()).then_some(found))
        })?;
        Ok(found.unwrap_or_default())
    }

    fn inlined_in_unit(
        &self,
        dwarf: &gimli::Dwarf<Reader>,
        unit: &gimli::Unit<Reader>,
        pc: u64,
    ) -> gimli::Result<Vec<InlinedParams>> {
        let contains = |entry: &gimli::DebuggingInformationEntry<Reader>| -> gimli::Result<bool> {
            let mut ranges = dwarf.die_ranges(unit, entry)?;
            while let Some(r) = ranges.next()? {
                if pc >= r.begin && pc < r.end {
                    return Ok(true);
                }
            }
            Ok(false)
        };
        // Scopes containing pc: (depth, index into `out` for inlined calls).
        let mut stack: Vec<(isize, Option<usize>)> = Vec::new();
        let mut out: Vec<InlinedParams> = Vec::new();
        let mut frame_base = None;
        // The concrete function's range: entry values refer to its entry, not the inlined one.
        let mut concrete = (0, 0);
        let mut skip_below: Option<isize> = None;
        let mut cursor = unit.entries();
        while let Some(entry) = cursor.next_dfs()? {
            let depth = entry.depth();
            if let Some(d) = skip_below {
                if depth > d {
                    continue;
                }
                skip_below = None;
            }
            while stack.last().is_some_and(|(d, _)| *d >= depth) {
                stack.pop();
            }
            match entry.tag() {
                gimli::DW_TAG_subprogram => {
                    let has_code = entry.attr_value(gimli::DW_AT_low_pc).is_some()
                        || entry.attr_value(gimli::DW_AT_ranges).is_some();
                    if !has_code || !contains(entry)? {
                        skip_below = Some(depth);
                        continue;
                    }
                    frame_base = match entry.attr_value(gimli::DW_AT_frame_base) {
                        Some(AttributeValue::Exprloc(e)) => Some(e),
                        _ => None,
                    };
                    let low = entry
                        .attr_value(gimli::DW_AT_low_pc)
                        .and_then(|v| dwarf.attr_address(unit, v).ok().flatten())
                        .unwrap_or(0);
                    concrete = (low, low);
                    stack.push((depth, None));
                }
                gimli::DW_TAG_inlined_subroutine => {
                    if !contains(entry)? {
                        skip_below = Some(depth);
                        continue;
                    }
                    let name = match entry.attr_value(gimli::DW_AT_abstract_origin) {
                        Some(AttributeValue::UnitRef(off)) => {
                            unit.entry(off).ok().and_then(|o| named(dwarf, unit, &o))
                        }
                        Some(AttributeValue::DebugInfoRef(off)) => name_in_other_unit(dwarf, off)?,
                        _ => None,
                    };
                    out.push(InlinedParams {
                        function: name.unwrap_or_else(|| "{inlined}".into()),
                        params: FunctionParams {
                            low: concrete.0,
                            high: concrete.1,
                            encoding: unit.encoding(),
                            frame_base: frame_base.clone(),
                            params: Vec::new(),
                            debug_addr: dwarf.debug_addr.clone(),
                            addr_base: unit.addr_base,
                        },
                    });
                    stack.push((depth, Some(out.len() - 1)));
                }
                gimli::DW_TAG_lexical_block => {
                    let has_code = entry.attr_value(gimli::DW_AT_low_pc).is_some()
                        || entry.attr_value(gimli::DW_AT_ranges).is_some();
                    if has_code && !contains(entry)? {
                        skip_below = Some(depth);
                        continue;
                    }
                    stack.push((depth, None));
                }
                gimli::DW_TAG_formal_parameter => {
                    if let Some(&(d, Some(i))) = stack.last() {
                        if d == depth - 1 {
                            let p = self.parameter(dwarf, unit, entry)?;
                            out[i].params.params.push(p);
                        }
                    }
                }
                _ => {
                    // Types, namespaces, variables…: not scopes of code; their children are
                    // never parameters of an inlined call.
                    if entry.has_children() && stack.is_empty() {
                        continue;
                    }
                }
            }
        }
        out.reverse();
        Ok(out)
    }
}

/// `DW_AT_name` of a DIE, else of its `DW_AT_specification` (rustc's out-of-line
/// definitions of methods name themselves only in the declaration).
fn named(
    dwarf: &gimli::Dwarf<Reader>,
    unit: &gimli::Unit<Reader>,
    entry: &gimli::DebuggingInformationEntry<Reader>,
) -> Option<String> {
    attr_string(dwarf, unit, entry, gimli::DW_AT_name).or_else(|| {
        match entry.attr_value(gimli::DW_AT_specification)? {
            AttributeValue::UnitRef(off) => {
                let decl = unit.entry(off).ok()?;
                attr_string(dwarf, unit, &decl, gimli::DW_AT_name)
            }
            _ => None,
        }
    })
}

/// `DW_AT_name` of the DIE at a `.debug_info` offset in whichever unit holds it.
fn name_in_other_unit(
    dwarf: &gimli::Dwarf<Reader>,
    off: gimli::DebugInfoOffset<usize>,
) -> gimli::Result<Option<String>> {
    let mut units = dwarf.units();
    while let Some(header) = units.next()? {
        if let Some(uo) = off.to_unit_offset(&header) {
            let unit = dwarf.unit(header)?;
            let entry = unit.entry(uo)?;
            return Ok(named(dwarf, &unit, &entry));
        }
    }
    Ok(None)
}

fn type_offset(
    unit: &gimli::Unit<Reader>,
    entry: &gimli::DebuggingInformationEntry<Reader>,
) -> Option<usize> {
    match entry.attr_value(gimli::DW_AT_type)? {
        AttributeValue::UnitRef(off) => off.to_debug_info_offset(&unit.header).map(|o| o.0),
        AttributeValue::DebugInfoRef(off) => Some(off.0),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::riscv::{Registers, A0, A1, SP};
    use gimli::Reader as _;
    use std::sync::Arc;

    fn expr(bytes: &[u8]) -> gimli::Expression<Reader> {
        gimli::Expression(gimli::EndianArcSlice::new(
            Arc::from(bytes),
            gimli::RunTimeEndian::Little,
        ))
    }

    fn enc() -> gimli::Encoding {
        gimli::Encoding {
            format: gimli::Format::Dwarf32,
            version: 4,
            address_size: 8,
        }
    }

    /// Registers x0..x31 and a little memory.
    struct Fake {
        regs: Registers,
        mem: (u64, Vec<u8>),
    }

    impl Machine for Fake {
        fn register(&mut self, reg: u16) -> Option<u64> {
            self.regs.x(usize::from(reg))
        }
        fn read_memory(&mut self, addr: u64, buf: &mut [u8]) -> bool {
            let (base, bytes) = &self.mem;
            let Some(off) = addr.checked_sub(*base) else {
                return false;
            };
            match bytes.get(off as usize..off as usize + buf.len()) {
                Some(src) => {
                    buf.copy_from_slice(src);
                    true
                }
                None => false,
            }
        }
    }

    fn fake() -> Fake {
        let mut regs = Registers::default();
        regs.set(SP, 0x1000);
        regs.set(A0, 0xdead_beef);
        regs.set(A1, 5);
        let mut mem = vec![0u8; 64];
        mem[8..16].copy_from_slice(&0x8050_0000u64.to_le_bytes());
        Fake {
            regs,
            mem: (0x1000, mem),
        }
    }

    fn no_index(_: gimli::DebugAddrIndex<usize>) -> Option<u64> {
        None
    }

    #[test]
    fn register_piece_and_breg_and_fbreg() {
        let mut m = fake();
        // DW_OP_reg10 (a0)
        let p = evaluate_location(
            &expr(&[gimli::DW_OP_reg10.0]),
            enc(),
            None,
            &mut m,
            &no_index,
        )
        .unwrap();
        assert_eq!(
            read_pieces(&p, 8, &mut m).unwrap(),
            0xdead_beefu64.to_le_bytes()
        );
        // DW_OP_breg2 +8 → memory at sp+8
        let p = evaluate_location(
            &expr(&[gimli::DW_OP_breg2.0, 8]),
            enc(),
            None,
            &mut m,
            &no_index,
        )
        .unwrap();
        assert_eq!(
            read_pieces(&p, 8, &mut m).unwrap(),
            0x8050_0000u64.to_le_bytes()
        );
        // DW_OP_fbreg +8 with frame base = sp (DW_OP_reg2)
        let fb =
            evaluate_frame_base(&expr(&[gimli::DW_OP_reg2.0]), enc(), &mut m, &no_index).unwrap();
        assert_eq!(fb, 0x1000);
        let p = evaluate_location(
            &expr(&[gimli::DW_OP_fbreg.0, 8]),
            enc(),
            Some(fb),
            &mut m,
            &no_index,
        )
        .unwrap();
        assert_eq!(
            read_pieces(&p, 8, &mut m).unwrap(),
            0x8050_0000u64.to_le_bytes()
        );
    }

    #[test]
    fn str_in_two_register_pieces() {
        let mut m = fake();
        // DW_OP_reg10, DW_OP_piece 8, DW_OP_reg11, DW_OP_piece 8: a &str in a0/a1.
        let b = [
            gimli::DW_OP_reg10.0,
            gimli::DW_OP_piece.0,
            8,
            gimli::DW_OP_reg11.0,
            gimli::DW_OP_piece.0,
            8,
        ];
        let p = evaluate_location(&expr(&b), enc(), None, &mut m, &no_index).unwrap();
        let bytes = read_pieces(&p, 16, &mut m).unwrap();
        assert_eq!(&bytes[..8], &0xdead_beefu64.to_le_bytes());
        assert_eq!(&bytes[8..], &5u64.to_le_bytes());
    }

    #[test]
    fn empty_piece_is_optimized_out_and_entry_value_needs_the_entry() {
        let mut m = fake();
        // DW_OP_piece 8 alone: an empty (optimized-out) piece.
        let p = evaluate_location(
            &expr(&[gimli::DW_OP_piece.0, 8]),
            enc(),
            None,
            &mut m,
            &no_index,
        )
        .unwrap();
        assert_eq!(read_pieces(&p, 8, &mut m), Err(EvalError::OptimizedOut));
        // DW_OP_entry_value(DW_OP_reg10), DW_OP_stack_value
        let b = [
            gimli::DW_OP_entry_value.0,
            1,
            gimli::DW_OP_reg10.0,
            gimli::DW_OP_stack_value.0,
        ];
        assert_eq!(
            evaluate_location(&expr(&b), enc(), None, &mut m, &no_index).unwrap_err(),
            EvalError::OptimizedOut
        );
    }

    #[test]
    fn unreadable_memory_is_an_error_not_a_value() {
        let mut m = fake();
        let b = [gimli::DW_OP_breg2.0, 0x80, 0x01]; // sp + 128: outside the fake memory
        let p = evaluate_location(&expr(&b), enc(), None, &mut m, &no_index).unwrap();
        assert!(matches!(
            read_pieces(&p, 8, &mut m),
            Err(EvalError::Memory(_))
        ));
    }

    #[test]
    fn location_lists_pick_the_range_of_the_pc() {
        let l = ParamLocation::List(vec![
            LocRange {
                begin: 0x10,
                end: 0x20,
                expr: expr(&[gimli::DW_OP_reg10.0]),
            },
            LocRange {
                begin: 0x20,
                end: 0x30,
                expr: expr(&[gimli::DW_OP_reg11.0]),
            },
        ]);
        assert_eq!(
            l.at(0x18).unwrap().0.to_slice().unwrap()[0],
            gimli::DW_OP_reg10.0
        );
        assert_eq!(
            l.at(0x20).unwrap().0.to_slice().unwrap()[0],
            gimli::DW_OP_reg11.0
        );
        assert!(l.at(0x30).is_none());
        assert!(ParamLocation::None.at(0).is_none());
    }

    #[test]
    fn absurd_sizes_and_looping_expressions_are_errors() {
        let mut m = fake();
        let p = evaluate_location(
            &expr(&[gimli::DW_OP_breg2.0, 8]),
            enc(),
            None,
            &mut m,
            &no_index,
        )
        .unwrap();
        // A value of 1 TiB, or a piece claiming 2^60 bits: refused, nothing allocated.
        assert!(matches!(
            read_pieces(&p, 1 << 40, &mut m),
            Err(EvalError::Malformed(_))
        ));
        let mut wide = p.clone();
        wide[0].size_in_bits = Some(1 << 60);
        assert!(matches!(
            read_pieces(&wide, 8, &mut m),
            Err(EvalError::Malformed(_))
        ));
        // DW_OP_skip -3: jumps back onto itself forever.
        let looping = expr(&[gimli::DW_OP_skip.0, 0xfd, 0xff]);
        assert!(evaluate_location(&looping, enc(), None, &mut m, &no_index).is_err());
        assert_eq!(
            crate::dwarf::eval_static_address(looping, enc(), |_| None),
            None
        );
    }
}
