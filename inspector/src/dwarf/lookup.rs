//! Finding global variables: an ELF symbol name (or a DWARF qualified name such as
//! `kernel::mm::FOO`) or an address → the variable's address, size and DWARF type.
//!
//! Contract: when the ELF has a symbol of that name, the DWARF variable is matched by *address*
//! (rustc's `#[no_mangle]` statics have no linkage name and sit under namespaces), so a symbol and
//! a DWARF variable that disagree on the address are never paired.

use super::error::{DwarfError, Result};
use super::index::VariableDie;
use super::limits::MAX_OBJECT_BYTES;
use super::types::TypeId;
use super::DebugInfo;

/// A global variable, ready to be read from target memory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Global {
    /// The name asked for (or, from [`DebugInfo::global_at`], the DWARF name).
    pub name: String,
    /// The DWARF name with namespaces (`rust_tracker::alloc_table`).
    pub qualified_name: String,
    pub address: u64,
    /// Bytes to read: the DWARF type's size, else (incomplete array types) the symbol's size.
    pub size: u64,
    pub ty: TypeId,
}

impl DebugInfo {
    /// Finds the global `name`: first as an ELF symbol (matched to its DWARF variable by address),
    /// else as a DWARF variable by linkage name, qualified name, or unique plain name.
    ///
    /// Errors: `SymbolNotFound` if neither the symbol table nor DWARF knows the name;
    /// `VariableNotFound` if the symbol exists but no DWARF variable with a type describes it;
    /// `UnsizedType` if no size is known; `Implausible` if the size is over
    /// [`MAX_OBJECT_BYTES`] (callers allocate that many bytes to read it).
    pub fn global(&self, name: &str) -> Result<Global> {
        let vars = &self.index.variables;
        let (var, symbol_size) = match self.elf.find_symbol(name) {
            Some(sym) => {
                let at_address = vars
                    .iter()
                    .filter(|v| v.address == sym.address && v.ty.is_some());
                // Several variables can share an address (zero-sized ones, aliases): prefer the
                // one whose name matches.
                let best = at_address
                    .clone()
                    .find(|v| names_match(v, name))
                    .or_else(|| at_address.clone().next());
                let var = best.ok_or_else(|| DwarfError::VariableNotFound {
                    name: name.to_string(),
                    path: self.elf.path().to_path_buf(),
                })?;
                (var, sym.size)
            }
            None => {
                let var = vars
                    .iter()
                    .find(|v| {
                        v.ty.is_some()
                            && (v.linkage_name.as_deref() == Some(name) || v.qualified_name == name)
                    })
                    .or_else(|| {
                        let mut plain = vars.iter().filter(|v| v.ty.is_some() && v.name == name);
                        let first = plain.next();
                        // An ambiguous plain name is not guessed.
                        if plain.next().is_some() {
                            None
                        } else {
                            first
                        }
                    })
                    .ok_or_else(|| DwarfError::SymbolNotFound {
                        name: name.to_string(),
                        path: self.elf.path().to_path_buf(),
                    })?;
                (var, 0)
            }
        };
        let mut global = self.make_global(var, symbol_size)?;
        global.name = name.to_string();
        Ok(global)
    }

    /// The global variable whose bytes contain `address`, if DWARF describes one.
    pub fn global_at(&self, address: u64) -> Option<Global> {
        self.index
            .variables
            .iter()
            .filter_map(|v| self.make_global(v, 0).ok())
            .filter(|g| address >= g.address && address - g.address < g.size.max(1))
            .min_by_key(|g| g.size)
    }

    fn make_global(&self, var: &VariableDie, symbol_size: u64) -> Result<Global> {
        let ty = var.ty.ok_or_else(|| DwarfError::VariableNotFound {
            name: var.qualified_name.clone(),
            path: self.elf.path().to_path_buf(),
        })?;
        let size = match self.types().size_of(ty) {
            Some(s) => s,
            None if symbol_size > 0 => symbol_size,
            None => {
                return Err(DwarfError::UnsizedType {
                    type_name: self.types().display_name(ty),
                })
            }
        };
        if size > MAX_OBJECT_BYTES {
            return Err(DwarfError::implausible(
                format!("global `{}`", var.qualified_name),
                format!("{size} bytes, more than the limit of {MAX_OBJECT_BYTES}"),
            ));
        }
        Ok(Global {
            name: var.name.clone(),
            qualified_name: var.qualified_name.clone(),
            address: var.address,
            size,
            ty,
        })
    }
}

fn names_match(v: &VariableDie, name: &str) -> bool {
    v.name == name || v.qualified_name == name || v.linkage_name.as_deref() == Some(name)
}
