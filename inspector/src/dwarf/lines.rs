//! Source lines and functions, for the debugger: address → file:line (exact, and the user's own
//! frame past inlining), file:line → breakpoint addresses (`is_stmt` rows), function name →
//! address range.
//!
//! Contract: file names match by trailing path components (`main.rs`, `src/main.rs` and the
//! full path all match `/work/main/kernel/src/main.rs`; `ain.rs` does not).

use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};

use gimli::Reader as _;

use super::error::{DwarfError, Result};
use super::loader::SymbolType;
use super::DebugInfo;

/// A position in a source file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SourceLocation {
    pub file: String,
    /// 0 when the line table says "no line" for the address.
    pub line: u32,
    pub column: Option<u32>,
}

/// One frame at an address: the innermost inlined call first, the concrete function last.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Frame {
    /// Demangled name, if DWARF has one.
    pub function: Option<String>,
    pub location: Option<SourceLocation>,
    /// True for frames that are inlined into the next one.
    pub inlined: bool,
}

/// A function's code range.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FunctionInfo {
    pub name: String,
    /// Entry address.
    pub low: u64,
    /// One past the last byte (equal to `low` if the size is unknown).
    pub high: u64,
}

/// The breakpoint addresses for a requested source line in one file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LineMatch {
    /// The full path as the line table names it.
    pub file: String,
    /// The line that has code: the requested one, or the next one after it that does.
    pub line: u32,
    /// The first `is_stmt` address of every block of code for that line, ascending.
    pub addresses: Vec<u64>,
}

impl DebugInfo {
    fn addr2line(&self) -> std::sync::MutexGuard<'_, addr2line::Context<super::Reader>> {
        // A panic while the lock was held leaves only caches behind: still usable.
        self.addr2line.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The exact line-table location of `address` (inside inlined code, the inlined source).
    pub fn location(&self, address: u64) -> Option<SourceLocation> {
        let ctx = self.addr2line();
        let loc = ctx.find_location(address).ok()??;
        Some(SourceLocation {
            file: loc.file?.to_string(),
            line: loc.line.unwrap_or(0),
            column: loc.column,
        })
    }

    /// The frames at `address`, innermost first; the last one is the concrete function.
    pub fn frames(&self, address: u64) -> Result<Vec<Frame>> {
        let ctx = self.addr2line();
        let mut iter = ctx
            .find_frames(address)
            .skip_all_loads()
            .map_err(|e| self.elf.gimli_error(e))?;
        let mut frames = Vec::new();
        while let Some(frame) = iter.next().map_err(|e| self.elf.gimli_error(e))? {
            frames.push(Frame {
                function: frame
                    .function
                    .as_ref()
                    .and_then(|f| f.demangle().ok())
                    .map(|s| s.into_owned()),
                location: frame.location.and_then(|l| {
                    Some(SourceLocation {
                        file: l.file?.to_string(),
                        line: l.line.unwrap_or(0),
                        column: l.column,
                    })
                }),
                inlined: true,
            });
        }
        if let Some(last) = frames.last_mut() {
            last.inlined = false;
        }
        Ok(frames)
    }

    /// The line in the concrete (non-inlined) function that contains `address`: what a user
    /// stepping through their own code wants to see. Falls back to [`location`](Self::location).
    pub fn user_location(&self, address: u64) -> Option<SourceLocation> {
        self.frames(address)
            .ok()
            .and_then(|f| f.into_iter().last().and_then(|f| f.location))
            .or_else(|| self.location(address))
    }

    /// The compilation directory (`DW_AT_comp_dir`) of the unit whose code contains
    /// `address`: for a crate that cargo built as a workspace member, the workspace root.
    pub fn comp_dir_at(&self, address: u64) -> Option<PathBuf> {
        let dwarf = self.elf.dwarf();
        let mut units = dwarf.units();
        while let Ok(Some(header)) = units.next() {
            let Ok(unit) = dwarf.unit(header) else {
                continue;
            };
            let Ok(mut ranges) = dwarf.unit_ranges(&unit) else {
                continue;
            };
            while let Ok(Some(r)) = ranges.next() {
                if (r.begin..r.end).contains(&address) {
                    let dir = unit.comp_dir.as_ref()?.to_string_lossy().ok()?;
                    return Some(PathBuf::from(dir.as_ref()));
                }
            }
        }
        None
    }

    /// The function called `name`: an ELF function symbol, else a DWARF function by plain,
    /// qualified or linkage name.
    pub fn function(&self, name: &str) -> Result<FunctionInfo> {
        if let Some(sym) = self
            .elf
            .find_symbol(name)
            .filter(|s| s.kind == SymbolType::Function)
        {
            return Ok(FunctionInfo {
                name: name.to_string(),
                low: sym.address,
                high: sym.address.saturating_add(sym.size),
            });
        }
        self.index
            .functions
            .iter()
            .find(|f| f.qualified_name == name || f.linkage_name.as_deref() == Some(name))
            .or_else(|| self.index.functions.iter().find(|f| f.name == name))
            .map(|f| FunctionInfo {
                name: name.to_string(),
                low: f.low_pc,
                high: f.high_pc,
            })
            .ok_or_else(|| DwarfError::FunctionNotFound {
                name: name.to_string(),
                path: self.elf.path().to_path_buf(),
            })
    }

    /// The concrete function whose code contains `address` (DWARF first, then ELF symbols).
    pub fn function_at(&self, address: u64) -> Option<FunctionInfo> {
        if let Some(f) = self
            .index
            .functions
            .iter()
            .filter(|f| address >= f.low_pc && address < f.high_pc)
            .min_by_key(|f| f.high_pc - f.low_pc)
        {
            return Some(FunctionInfo {
                name: f.qualified_name.clone(),
                low: f.low_pc,
                high: f.high_pc,
            });
        }
        let sym = self
            .elf
            .symbol_at(address)
            .filter(|s| s.kind == SymbolType::Function)?;
        Some(FunctionInfo {
            name: sym.name.clone(),
            low: sym.address,
            high: sym.address.saturating_add(sym.size),
        })
    }

    /// Where a breakpoint on `function` should go so that its arguments are set up, as gdb's
    /// `break function` does: the first row marked `prologue_end` inside the function, else the
    /// first statement row on a later line than the entry row, else the entry address.
    pub fn breakpoint_address(&self, function: &FunctionInfo) -> Result<u64> {
        let in_range = |a: u64| a >= function.low && a < function.high;
        let dwarf = self.elf.dwarf();
        let walk = || -> gimli::Result<Option<u64>> {
            let mut units = dwarf.units();
            while let Some(header) = units.next()? {
                let unit = dwarf.unit(header)?;
                let Some(program) = unit.line_program.clone() else {
                    continue;
                };
                let mut rows = program.rows();
                let mut entry_line: Option<u64> = None;
                let mut later_line: Option<u64> = None;
                while let Some((_, row)) = rows.next_row()? {
                    if row.end_sequence() || !in_range(row.address()) {
                        continue;
                    }
                    if row.prologue_end() && row.address() > function.low {
                        return Ok(Some(row.address()));
                    }
                    let line = row.line().map_or(0, |l| l.get());
                    if row.address() == function.low {
                        entry_line.get_or_insert(line);
                    } else if row.is_stmt()
                        && line != 0
                        && later_line.is_none()
                        && entry_line.is_some_and(|l| l != line)
                    {
                        later_line = Some(row.address());
                    }
                }
                if entry_line.is_some() {
                    return Ok(later_line);
                }
            }
            Ok(None)
        };
        let found = walk().map_err(|e| self.elf.gimli_error(e))?;
        Ok(found.unwrap_or(function.low))
    }

    /// Breakpoint addresses for `file:line`, one [`LineMatch`] per source file whose path ends
    /// with `file`. If `line` has no code, the next line after it that has code is used (as gdb
    /// does). Empty if no such file or no code at or after `line`.
    pub fn line_addresses(&self, file: &str, line: u32) -> Result<Vec<LineMatch>> {
        let rows = self.stmt_rows(file).map_err(|e| self.elf.gimli_error(e))?;
        let mut out = Vec::new();
        for (path, rows) in rows {
            let Some(target) = rows.iter().map(|r| r.line).filter(|&l| l >= line).min() else {
                continue;
            };
            let mut addresses: Vec<u64> = rows
                .iter()
                .filter(|r| r.line == target && r.block_start)
                .map(|r| r.address)
                .collect();
            addresses.sort_unstable();
            addresses.dedup();
            out.push(LineMatch {
                file: path,
                line: target,
                addresses,
            });
        }
        Ok(out)
    }

    /// All `is_stmt` rows of files matching `file`, grouped by full path.
    fn stmt_rows(&self, file: &str) -> gimli::Result<BTreeMap<String, Vec<StmtRow>>> {
        let dwarf = self.elf.dwarf();
        let mut out: BTreeMap<String, Vec<StmtRow>> = BTreeMap::new();
        let mut units = dwarf.units();
        while let Some(header) = units.next()? {
            let unit = dwarf.unit(header)?;
            let Some(program) = unit.line_program.clone() else {
                continue;
            };
            let comp_dir = unit
                .comp_dir
                .as_ref()
                .and_then(|d| d.to_string_lossy().ok())
                .map(|d| PathBuf::from(d.as_ref()));
            let mut paths: BTreeMap<u64, Option<String>> = BTreeMap::new();
            let mut rows = program.rows();
            // Previous row of the current sequence: (file index, line).
            let mut prev: Option<(u64, u64)> = None;
            while let Some((header, row)) = rows.next_row()? {
                if row.end_sequence() {
                    prev = None;
                    continue;
                }
                let line = row.line().map_or(0, |l| l.get());
                let here = (row.file_index(), line);
                let block_start = prev != Some(here);
                prev = Some(here);
                if !row.is_stmt() || line == 0 || !self.elf.is_code(row.address()) {
                    continue;
                }
                let path = paths.entry(row.file_index()).or_insert_with(|| {
                    let entry = header.file(row.file_index())?;
                    let name = dwarf.attr_string(&unit, entry.path_name()).ok()?;
                    let mut p = match entry.directory(header) {
                        Some(dir) => PathBuf::from(
                            dwarf
                                .attr_string(&unit, dir)
                                .ok()?
                                .to_string_lossy()
                                .ok()?
                                .as_ref(),
                        ),
                        None => PathBuf::new(),
                    };
                    if p.is_relative() {
                        if let Some(cd) = &comp_dir {
                            p = cd.join(p);
                        }
                    }
                    p.push(name.to_string_lossy().ok()?.as_ref());
                    let s = p.to_string_lossy().into_owned();
                    path_matches(&s, file).then_some(s)
                });
                if let Some(path) = path {
                    out.entry(path.clone()).or_default().push(StmtRow {
                        line: u32::try_from(line).unwrap_or(u32::MAX),
                        address: row.address(),
                        block_start,
                    });
                }
            }
        }
        Ok(out)
    }
}

struct StmtRow {
    line: u32,
    address: u64,
    /// First row of a run of rows with the same file and line in its sequence.
    block_start: bool,
}

/// True if `query`'s path components are the trailing components of `full`.
pub(crate) fn path_matches(full: &str, query: &str) -> bool {
    let comps = |p: &str| -> Vec<String> {
        Path::new(p)
            .components()
            .filter(|c| !matches!(c, Component::CurDir | Component::RootDir))
            .map(|c| c.as_os_str().to_string_lossy().into_owned())
            .collect()
    };
    let (full, query) = (comps(full), comps(query));
    !query.is_empty() && full.ends_with(&query)
}

#[cfg(test)]
mod tests {
    use super::path_matches;

    #[test]
    fn file_names_match_by_whole_trailing_components() {
        let full = "/work/main/kernel/src/main.rs";
        assert!(path_matches(full, "main.rs"));
        assert!(path_matches(full, "src/main.rs"));
        assert!(path_matches(full, "./src/main.rs"));
        assert!(path_matches(full, full));
        assert!(!path_matches(full, "ain.rs"));
        assert!(!path_matches(full, "user/main.rs"));
        assert!(!path_matches(full, ""));
    }
}
