//! The stopped function's arguments, decoded by DWARF: each formal parameter's location
//! (register, stack slot, frame-base offset, pieces) evaluated against the halted target, the
//! bytes decoded by the parameter's type, strings read from target memory.
//!
//! Contract: an argument that cannot be read is [`ArgValue::Unavailable`] with the reason
//! (`optimized out`, an unreadable address), never a made-up number.

use std::fmt;

use serde::ser::{SerializeMap, Serializer};
use serde::Serialize;

use crate::dwarf::{
    evaluate_frame_base, evaluate_location, read_pieces, DebugInfo, FunctionParams, Machine,
    Reader, Value,
};
use crate::riscv::Registers;
use crate::target::Target;

use super::condition::Scope;

/// Longest string read for a `&str`/`char *` argument.
pub const STRING_LIMIT: u64 = 256;

/// A decoded argument value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ArgValue {
    UInt(u128),
    Int(i128),
    Bool(bool),
    Char(char),
    Str(String),
    Enum {
        name: Option<String>,
        value: i128,
    },
    Pointer(u64),
    /// A value shown as text only (structs, arrays, bytes).
    Other(String),
    /// Not readable at this pc; the reason.
    Unavailable(String),
}

/// JSON: numbers as numbers (unsigned above `u64::MAX` as a string), strings as strings,
/// enumerators by name, unavailable values as `null`.
impl Serialize for ArgValue {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            ArgValue::UInt(u) => match u64::try_from(*u) {
                Ok(v) => s.serialize_u64(v),
                Err(_) => s.collect_str(u),
            },
            ArgValue::Int(i) => match i64::try_from(*i) {
                Ok(v) => s.serialize_i64(v),
                Err(_) => s.collect_str(i),
            },
            ArgValue::Bool(b) => s.serialize_bool(*b),
            ArgValue::Char(c) => s.collect_str(c),
            ArgValue::Str(text) | ArgValue::Other(text) => s.serialize_str(text),
            ArgValue::Enum { name: Some(n), .. } => s.serialize_str(n),
            ArgValue::Enum { name: None, value } => match i64::try_from(*value) {
                Ok(v) => s.serialize_i64(v),
                Err(_) => s.collect_str(value),
            },
            ArgValue::Pointer(p) => s.serialize_u64(*p),
            ArgValue::Unavailable(_) => s.serialize_none(),
        }
    }
}

impl fmt::Display for ArgValue {
    /// Addresses-like unsigned values (above 0xffff) in hex, small ones in decimal.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ArgValue::UInt(u) if *u > 0xffff => write!(f, "{u:#x}"),
            ArgValue::UInt(u) => write!(f, "{u}"),
            ArgValue::Int(i) => write!(f, "{i}"),
            ArgValue::Bool(b) => write!(f, "{b}"),
            ArgValue::Char(c) => write!(f, "{c:?}"),
            ArgValue::Str(s) => write!(f, "{s:?}"),
            ArgValue::Enum {
                name: Some(n),
                value,
            } => write!(f, "{n} ({value})"),
            ArgValue::Enum { name: None, value } => write!(f, "{value}"),
            ArgValue::Pointer(p) => write!(f, "{p:#x}"),
            ArgValue::Other(s) => f.write_str(s),
            ArgValue::Unavailable(r) => write!(f, "<{r}>"),
        }
    }
}

/// One argument of the stopped function.
#[derive(Clone, Debug, PartialEq)]
pub struct Arg {
    pub name: String,
    /// The DWARF type name (`u64`, `&str`, …); `?` if DWARF gives none.
    pub type_name: String,
    pub value: ArgValue,
    /// The structural value, for conditions on fields (`e.pa`); `None` if unreadable.
    pub decoded: Option<Value>,
}

/// The arguments of one stop, in declaration order; a [`Scope`] for conditions.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Args(pub Vec<Arg>);

/// JSON: `{"name": value, …}`.
impl Serialize for Args {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(self.0.len()))?;
        for a in &self.0 {
            map.serialize_entry(&a.name, &a.value)?;
        }
        map.end()
    }
}

impl Args {
    pub fn get(&self, name: &str) -> Option<&Arg> {
        self.0.iter().find(|a| a.name == name)
    }

    /// `name=value name=value`.
    pub fn text(&self) -> String {
        self.0
            .iter()
            .map(|a| format!("{}={}", a.name, a.value))
            .collect::<Vec<_>>()
            .join(" ")
    }
}

impl Scope for Args {
    fn lookup(&self, path: &[String]) -> Option<ArgValue> {
        let arg = self.get(path.first()?)?;
        if path.len() == 1 {
            return Some(arg.value.clone());
        }
        let mut v = arg.decoded.as_ref()?;
        for p in &path[1..] {
            v = match p.parse::<usize>() {
                Ok(i) => v.index(i)?,
                Err(_) => v.field(p)?,
            };
        }
        Some(plain(v))
    }

    fn names(&self) -> Vec<String> {
        self.0.iter().map(|a| a.name.clone()).collect()
    }
}

/// A [`Machine`] over a halted target's registers and memory.
pub struct TargetMachine<'a> {
    pub target: &'a mut dyn Target,
    pub regs: &'a Registers,
    /// The function's entry address: entry values are known only while stopped there.
    pub entry: Option<u64>,
    pub cfa: Option<u64>,
}

impl Machine for TargetMachine<'_> {
    fn register(&mut self, reg: u16) -> Option<u64> {
        self.regs.x(usize::from(reg))
    }

    fn read_memory(&mut self, addr: u64, buf: &mut [u8]) -> bool {
        self.target.read_memory(addr, buf).is_ok()
    }

    fn cfa(&mut self) -> Option<u64> {
        self.cfa
    }

    fn entry_value(&mut self, expr: &gimli::Expression<Reader>) -> Option<u64> {
        if Some(self.regs.pc()) != self.entry {
            return None;
        }
        // At the entry the registers still hold their entry values: evaluate in place.
        let enc = gimli::Encoding {
            format: gimli::Format::Dwarf32,
            version: 5,
            address_size: 8,
        };
        let pieces = evaluate_location(expr, enc, None, self, &|_| None).ok()?;
        match pieces.as_slice() {
            [p] => match &p.location {
                gimli::Location::Register { register } => self.register(register.0),
                gimli::Location::Address { address } => Some(*address),
                gimli::Location::Value { value } => value.to_u64(u64::MAX).ok(),
                _ => None,
            },
            _ => None,
        }
    }
}

/// Decodes every parameter of `function` for the frame whose registers are `regs`. The target
/// must be halted.
pub fn decode_args(
    debug: &DebugInfo,
    function: &FunctionParams,
    target: &mut dyn Target,
    regs: &Registers,
    cfa: Option<u64>,
) -> Args {
    let pc = regs.pc();
    let mut machine = TargetMachine {
        target,
        regs,
        entry: Some(function.low),
        cfa,
    };
    let indexed = |i| function.indexed_address(i);
    let frame_base = function
        .frame_base
        .as_ref()
        .map(|fb| evaluate_frame_base(fb, function.encoding, &mut machine, &indexed));
    let mut out = Vec::new();
    for p in &function.params {
        let type_name =
            p.ty.map_or_else(|| "?".to_string(), |t| debug.types().display_name(t));
        let result = (|| -> Result<(ArgValue, Option<Value>), String> {
            let ty = p.ty.ok_or("no type in DWARF")?;
            let size = debug.types().size_of(ty).ok_or("unsized type")?;
            let expr = p.location.at(pc).ok_or("optimized out")?;
            let fb = match &frame_base {
                Some(Ok(v)) => Some(*v),
                _ => None,
            };
            let pieces = evaluate_location(expr, function.encoding, fb, &mut machine, &indexed)
                .map_err(|e| e.to_string())?;
            let bytes = read_pieces(&pieces, size, &mut machine).map_err(|e| e.to_string())?;
            let value = debug.decode(ty, &bytes).map_err(|e| e.to_string())?;
            if let Some((shown, pointee)) = deref_struct(debug, ty, &value, machine.target) {
                return Ok((shown, Some(pointee)));
            }
            let shown = to_arg_value(debug, &value, machine.target);
            Ok((shown, Some(value)))
        })();
        let (value, decoded) = result.unwrap_or_else(|r| (ArgValue::Unavailable(r), None));
        out.push(Arg {
            name: p.name.clone(),
            type_name,
            value,
            decoded,
        });
    }
    Args(out)
}

/// The argument value of a decoded DWARF value; strings are read from the target (or from the
/// ELF's load image for constant data when the target cannot read them).
pub fn to_arg_value(debug: &DebugInfo, value: &Value, target: &mut dyn Target) -> ArgValue {
    match value.inner() {
        Value::Str(r) => {
            let read = r.fetch(STRING_LIMIT, |addr, buf| {
                if target.read_memory(addr, buf).is_ok() || debug.elf().read_static(addr, buf) {
                    Ok(())
                } else {
                    Err(addr)
                }
            });
            match read {
                Ok(s) => ArgValue::Str(s),
                Err(addr) => ArgValue::Unavailable(format!("string at {addr:#x} unreadable")),
            }
        }
        v => plain(v),
    }
}

/// Largest struct a pointer argument is followed to.
const DEREF_LIMIT: u64 = 512;

/// A pointer/reference to a struct (`e: &AllocEntry`): reads the struct and shows
/// `0xADDR → {field: value, …}`; its decoded value is the struct, so conditions can name its
/// fields (`e.owner == 7`). `None` for other values or when the struct is unreadable.
fn deref_struct(
    debug: &DebugInfo,
    ty: crate::dwarf::TypeId,
    value: &Value,
    target: &mut dyn Target,
) -> Option<(ArgValue, Value)> {
    use crate::dwarf::TypeKind;
    let Value::Pointer(addr) = value.inner() else {
        return None;
    };
    let types = debug.types();
    let TypeKind::Pointer {
        pointee: Some(pointee),
    } = types.get(types.strip_typedefs(ty)?).kind
    else {
        return None;
    };
    let pointee = types.strip_typedefs(pointee)?;
    if !matches!(types.get(pointee).kind, TypeKind::Struct { .. }) || *addr == 0 {
        return None;
    }
    let size = types
        .size_of(pointee)
        .filter(|&n| n > 0 && n <= DEREF_LIMIT)?;
    let mut buf = vec![0u8; size as usize];
    target.read_memory(*addr, &mut buf).ok()?;
    let decoded = debug.decode(pointee, &buf).ok()?;
    let Value::Struct { fields, .. } = &decoded else {
        return None;
    };
    let shown = fields
        .iter()
        .map(|(n, v)| format!("{n}: {}", to_arg_value(debug, v, target)))
        .collect::<Vec<_>>()
        .join(", ");
    Some((ArgValue::Other(format!("{addr:#x} → {{{shown}}}")), decoded))
}

/// A value without memory reads (strings become their address).
fn plain(v: &Value) -> ArgValue {
    match v.inner() {
        Value::UInt(u) => ArgValue::UInt(*u),
        Value::Int(i) => ArgValue::Int(*i),
        Value::Bool(b) => ArgValue::Bool(*b),
        Value::Char(Some(c)) => ArgValue::Char(*c),
        Value::Char(None) => ArgValue::Other("<invalid char>".into()),
        Value::Enum { name, value, .. } => ArgValue::Enum {
            name: name.clone(),
            value: *value,
        },
        Value::Pointer(p) => ArgValue::Pointer(*p),
        Value::Str(r) => ArgValue::Other(format!("<string at {:#x}>", r.ptr)),
        other => ArgValue::Other(short_debug(other)),
    }
}

fn short_debug(v: &Value) -> String {
    let mut s = format!("{v:?}");
    if s.len() > 120 {
        s.truncate(117);
        s.push_str("...");
    }
    s
}
