//! Breakpoint bookkeeping: the user's breakpoints (by function name, `file:line` or `*address`;
//! enabled or not; an optional condition; hit counts) and the debugger's own temporary ones
//! (step-over, step-out), reconciled with what is installed in the target.
//!
//! Contracts: the target holds exactly the addresses of enabled user breakpoints plus temporary
//! ones after every call here that takes a target ([`Breakpoints::sync`]); a user breakpoint is
//! only removed by the user ([`Breakpoints::remove`], [`Breakpoints::set_enabled`]) or by
//! detaching — never by a step or a snapshot (nothing here sends `?`, which clears QEMU's
//! breakpoints). Calls that take a target need it halted.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::str::FromStr;

use anyhow::{bail, Context, Result};

use crate::dwarf::DebugInfo;
use crate::target::{BreakpointKind, Target};

use super::condition::Condition;

/// Where a breakpoint goes, as the user wrote it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Location {
    /// A function name (plain, qualified or linkage): stops after its prologue.
    Function(String),
    /// A source line; the file matches by trailing path components.
    Line { file: String, line: u32 },
    /// `*0x80204272`: an exact address.
    Address(u64),
}

impl FromStr for Location {
    type Err = anyhow::Error;

    /// `track_alloc`, `kernel::mm::tracker::track_alloc`, `tracker.rs:175`, `*0x80204272`.
    fn from_str(s: &str) -> Result<Location> {
        let s = s.trim();
        if s.is_empty() {
            bail!("empty breakpoint location: give a function name or file:line");
        }
        if let Some(addr) = s.strip_prefix('*') {
            let addr = addr.trim();
            let value = match addr.strip_prefix("0x").or_else(|| addr.strip_prefix("0X")) {
                Some(hex) => u64::from_str_radix(hex, 16),
                None => addr.parse(),
            }
            .with_context(|| format!("`{addr}` is not an address"))?;
            return Ok(Location::Address(value));
        }
        if let Some((file, line)) = s.rsplit_once(':') {
            if !file.is_empty() && !file.ends_with(':') && !line.is_empty() {
                let line: u32 = line
                    .parse()
                    .with_context(|| format!("`{line}` in `{s}` is not a line number"))?;
                return Ok(Location::Line {
                    file: file.to_string(),
                    line,
                });
            }
        }
        Ok(Location::Function(s.to_string()))
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Location::Function(n) => f.write_str(n),
            Location::Line { file, line } => write!(f, "{file}:{line}"),
            Location::Address(a) => write!(f, "*{a:#x}"),
        }
    }
}

/// One user breakpoint.
#[derive(Clone, Debug)]
pub struct Breakpoint {
    /// 1, 2, … in creation order; never reused.
    pub id: u32,
    pub location: Location,
    /// Where it is installed (several for a line with several blocks of code).
    pub addresses: Vec<u64>,
    /// The function the (first) address is in, for messages and argument checks.
    pub function: Option<String>,
    pub enabled: bool,
    pub condition: Option<Condition>,
    /// Stops at this breakpoint whose condition held (or that had none).
    pub hits: u64,
    /// How the target installed it (software, or hardware after a refused `Z0`).
    pub kind: Option<BreakpointKind>,
}

/// See the module doc.
#[derive(Debug, Default)]
pub struct Breakpoints {
    list: Vec<Breakpoint>,
    next_id: u32,
    /// The debugger's temporary breakpoints (address → users).
    temporary: BTreeMap<u64, u32>,
    /// What the target has installed now.
    installed: BTreeMap<u64, BreakpointKind>,
}

impl Breakpoints {
    pub fn new() -> Self {
        Self::default()
    }

    /// Resolves `location` to addresses. Errors name what was not found.
    pub fn resolve(debug: &DebugInfo, location: &Location) -> Result<(Vec<u64>, Option<String>)> {
        match location {
            Location::Function(name) => {
                let f = debug.function(name)?;
                let addr = debug.breakpoint_address(&f)?;
                Ok((vec![addr], Some(f.name)))
            }
            Location::Line { file, line } => {
                let matches = debug.line_addresses(file, *line)?;
                let addrs: BTreeSet<u64> = matches
                    .iter()
                    .flat_map(|m| m.addresses.iter().copied())
                    .collect();
                if addrs.is_empty() {
                    bail!(
                        "no code at {file}:{line} (or after it) in {}: check the file name and line",
                        debug.elf().path().display()
                    );
                }
                let first = *addrs.iter().next().expect("not empty");
                Ok((
                    addrs.into_iter().collect(),
                    debug.function_at(first).map(|f| f.name),
                ))
            }
            Location::Address(a) => Ok((vec![*a], debug.function_at(*a).map(|f| f.name))),
        }
    }

    /// Adds an enabled breakpoint and installs it. Returns its id.
    pub fn add(
        &mut self,
        target: &mut dyn Target,
        debug: &DebugInfo,
        location: Location,
        condition: Option<Condition>,
    ) -> Result<u32> {
        let (addresses, function) = Self::resolve(debug, &location)?;
        self.add_at(target, location, addresses, function, condition)
    }

    /// Adds an enabled breakpoint at already resolved `addresses` (a subset of what
    /// [`resolve`](Self::resolve) gave) and installs it. Returns its id.
    pub fn add_at(
        &mut self,
        target: &mut dyn Target,
        location: Location,
        addresses: Vec<u64>,
        function: Option<String>,
        condition: Option<Condition>,
    ) -> Result<u32> {
        if addresses.is_empty() {
            bail!("no address for the breakpoint at {location}");
        }
        self.next_id += 1;
        let id = self.next_id;
        self.list.push(Breakpoint {
            id,
            location,
            addresses,
            function,
            enabled: true,
            condition,
            hits: 0,
            kind: None,
        });
        if let Err(e) = self.sync(target) {
            self.list.retain(|b| b.id != id);
            let _ = self.sync(target);
            return Err(e);
        }
        Ok(id)
    }

    /// Removes breakpoint `id` (and uninstalls its addresses unless another needs them).
    pub fn remove(&mut self, target: &mut dyn Target, id: u32) -> Result<()> {
        let before = self.list.len();
        self.list.retain(|b| b.id != id);
        if self.list.len() == before {
            bail!("no breakpoint {id}");
        }
        self.sync(target)
    }

    pub fn set_enabled(&mut self, target: &mut dyn Target, id: u32, enabled: bool) -> Result<()> {
        let bp = self
            .list
            .iter_mut()
            .find(|b| b.id == id)
            .with_context(|| format!("no breakpoint {id}"))?;
        bp.enabled = enabled;
        self.sync(target)
    }

    /// Adds a breakpoint at `location` (with `condition`) if there is none there, else removes
    /// the one there. Returns the new id, or `None` if one was removed.
    pub fn toggle(
        &mut self,
        target: &mut dyn Target,
        debug: &DebugInfo,
        location: Location,
        condition: Option<Condition>,
    ) -> Result<Option<u32>> {
        if let Some(id) = self
            .list
            .iter()
            .find(|b| b.location == location)
            .map(|b| b.id)
        {
            self.remove(target, id)?;
            return Ok(None);
        }
        self.add(target, debug, location, condition).map(Some)
    }

    pub fn list(&self) -> &[Breakpoint] {
        &self.list
    }

    pub fn get(&self, id: u32) -> Option<&Breakpoint> {
        self.list.iter().find(|b| b.id == id)
    }

    /// The enabled user breakpoint at `pc`, if any (the first created wins).
    pub fn at(&self, pc: u64) -> Option<&Breakpoint> {
        self.list
            .iter()
            .find(|b| b.enabled && b.addresses.contains(&pc))
    }

    /// Counts a hit of breakpoint `id`.
    pub fn record_hit(&mut self, id: u32) {
        if let Some(b) = self.list.iter_mut().find(|b| b.id == id) {
            b.hits += 1;
        }
    }

    /// True if anything (user or temporary) is installed at `pc`.
    pub fn installed_at(&self, pc: u64) -> bool {
        self.installed.contains_key(&pc)
    }

    /// Installs a temporary breakpoint at `addr` (reference-counted).
    pub fn add_temporary(&mut self, target: &mut dyn Target, addr: u64) -> Result<()> {
        *self.temporary.entry(addr).or_default() += 1;
        self.sync(target)
    }

    /// Drops one reference to the temporary breakpoint at `addr`; a user breakpoint at the same
    /// address stays installed.
    pub fn remove_temporary(&mut self, target: &mut dyn Target, addr: u64) -> Result<()> {
        if let Some(n) = self.temporary.get_mut(&addr) {
            *n -= 1;
            if *n == 0 {
                self.temporary.remove(&addr);
            }
        }
        self.sync(target)
    }

    /// Runs one instruction at a pc that has a breakpoint installed: uninstalls it, steps,
    /// reinstalls it (so a continue does not stop again at once). Returns false (and does
    /// nothing) when nothing is installed at `pc`.
    pub fn step_over_installed(&mut self, target: &mut dyn Target, pc: u64) -> Result<bool> {
        if !self.installed.contains_key(&pc) {
            return Ok(false);
        }
        target.remove_breakpoint(pc)?;
        self.installed.remove(&pc);
        let stepped = target.step();
        let synced = self.sync(target);
        stepped?;
        synced?;
        Ok(true)
    }

    /// The addresses that must be installed: enabled user breakpoints and temporary ones.
    fn wanted(&self) -> BTreeSet<u64> {
        self.list
            .iter()
            .filter(|b| b.enabled)
            .flat_map(|b| b.addresses.iter().copied())
            .chain(self.temporary.keys().copied())
            .collect()
    }

    /// Makes the target's breakpoints equal [`wanted`](Self::wanted). Must be halted.
    pub fn sync(&mut self, target: &mut dyn Target) -> Result<()> {
        let wanted = self.wanted();
        let extra: Vec<u64> = self
            .installed
            .keys()
            .filter(|a| !wanted.contains(a))
            .copied()
            .collect();
        for addr in extra {
            target
                .remove_breakpoint(addr)
                .with_context(|| format!("removing the breakpoint at {addr:#x}"))?;
            self.installed.remove(&addr);
        }
        for addr in wanted {
            if self.installed.contains_key(&addr) {
                continue;
            }
            let kind = target
                .set_breakpoint(addr)
                .with_context(|| format!("setting a breakpoint at {addr:#x}"))?;
            self.installed.insert(addr, kind);
            for b in self.list.iter_mut().filter(|b| b.addresses.contains(&addr)) {
                b.kind = Some(kind);
            }
        }
        Ok(())
    }

    /// Forgets what is installed (after the target detached, which removed everything).
    pub fn forget_installed(&mut self) {
        self.installed.clear();
        self.temporary.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations_parse() {
        assert_eq!(
            "track_alloc".parse::<Location>().unwrap(),
            Location::Function("track_alloc".into())
        );
        assert_eq!(
            "kernel::mm::tracker::track_alloc"
                .parse::<Location>()
                .unwrap(),
            Location::Function("kernel::mm::tracker::track_alloc".into())
        );
        assert_eq!(
            "src/mm/tracker.rs:175".parse::<Location>().unwrap(),
            Location::Line {
                file: "src/mm/tracker.rs".into(),
                line: 175
            }
        );
        assert_eq!(
            "*0x80204272".parse::<Location>().unwrap(),
            Location::Address(0x8020_4272)
        );
        assert!("tracker.rs:abc".parse::<Location>().is_err());
        assert!("".parse::<Location>().is_err());
        assert_eq!(
            Location::Line {
                file: "a.rs".into(),
                line: 3
            }
            .to_string(),
            "a.rs:3"
        );
    }
}
