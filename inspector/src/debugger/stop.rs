//! What a stop shows: the function, file and line, the source lines around it (read from the
//! file on disk), the registers, the backtrace (inlined frames included), the decoded
//! arguments, and the tracker rows that changed since the previous stop (`model::diff`); with
//! several harts, which hart the view is of and the process that hart runs.
//!
//! Contract: collecting a view reads the halted target and never resumes it; registers,
//! backtrace, source and arguments are those of the target's selected hart; a source file
//! that is not on disk gives no source lines (the position is still shown).

use std::path::Path;

use crate::model::{diff, Diff, Snapshot};
use crate::riscv::Registers;
use crate::target::Target;

use super::stepping::{position, Position};
use super::{Args, Debugger};

/// One source line around the stop.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SourceLine {
    pub number: u32,
    pub text: String,
    /// The line the pc is on.
    pub current: bool,
}

/// One backtrace entry (a physical frame, or a frame inlined into it).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BacktraceFrame {
    pub pc: u64,
    pub function: Option<String>,
    pub file: Option<String>,
    pub line: u32,
    pub inlined: bool,
}

/// Everything one stop shows.
#[derive(Clone, Debug)]
pub struct StopView {
    pub pc: u64,
    pub breakpoint: Option<u32>,
    pub position: Option<Position>,
    pub source: Vec<SourceLine>,
    pub registers: Registers,
    pub backtrace: Vec<BacktraceFrame>,
    pub args: Args,
    /// Arguments of the inlined calls the pc is in, innermost first, by function name.
    pub inlined_args: Vec<(String, Args)>,
    /// Tracker rows added/removed since the previous stop's snapshot (`None` for the first).
    pub changed: Option<Diff>,
    /// The hart this view is of (the one that stopped, or the one the user selected), when the
    /// target says.
    pub hart: Option<u32>,
    /// The hart the stop happened on, when the target says.
    pub stopped_hart: Option<u32>,
    /// Every hart of the target, by id (one: nothing to switch between).
    pub harts: Vec<u32>,
    /// The process running on `hart` as `name(pid)`, from this stop's process table (None:
    /// idle in its scheduler, or the kernel does not record harts).
    pub process: Option<String>,
}

impl StopView {
    /// The hart after the shown one in `harts`, wrapping around; None with fewer than two.
    pub fn next_hart(&self) -> Option<u32> {
        if self.harts.len() < 2 {
            return None;
        }
        let i = self
            .hart
            .and_then(|h| self.harts.iter().position(|&x| x == h))
            .map_or(0, |i| (i + 1) % self.harts.len());
        Some(self.harts[i])
    }
}

/// Lines `line - context ..= line + context` of `path`; empty if the file cannot be read.
pub fn source_lines(path: &Path, line: u32, context: u32) -> Vec<SourceLine> {
    let Ok(text) = std::fs::read_to_string(path) else {
        return Vec::new();
    };
    let first = line.saturating_sub(context).max(1);
    text.lines()
        .enumerate()
        .map(|(i, t)| (i as u32 + 1, t))
        .filter(|(n, _)| *n >= first && *n <= line + context)
        .map(|(number, t)| SourceLine {
            number,
            text: t.to_string(),
            current: number == line,
        })
        .collect()
}

/// The text of line `line` of `path`, if readable.
pub fn source_line(path: &Path, line: u32) -> Option<String> {
    source_lines(path, line, 0)
        .into_iter()
        .next()
        .map(|l| l.text)
}

impl StopView {
    /// Collects the view of the halted target's current stop. `previous`/`current` are the
    /// snapshots of the previous and this stop, for the changed rows.
    pub fn collect(
        dbg: &mut Debugger,
        target: &mut dyn Target,
        breakpoint: Option<u32>,
        context: u32,
        previous: Option<&Snapshot>,
        current: Option<&Snapshot>,
    ) -> anyhow::Result<StopView> {
        let registers = target.read_registers()?;
        let pc = registers.pc();
        let debug = dbg.debug_info().clone();
        let position = position(&debug, pc);
        let source = position
            .as_ref()
            .map(|p| source_lines(Path::new(&p.file), p.line, context))
            .unwrap_or_default();
        let mut backtrace = Vec::new();
        for (i, f) in dbg.unwind(target, &registers, 32).iter().enumerate() {
            let lookup = if i == 0 { f.pc } else { f.pc.wrapping_sub(1) };
            let frames = debug.frames(lookup).unwrap_or_default();
            if frames.is_empty() {
                backtrace.push(BacktraceFrame {
                    pc: f.pc,
                    function: debug.function_at(lookup).map(|f| f.name),
                    file: None,
                    line: 0,
                    inlined: false,
                });
            }
            for fr in frames {
                backtrace.push(BacktraceFrame {
                    pc: f.pc,
                    function: fr.function,
                    file: fr.location.as_ref().map(|l| l.file.clone()),
                    line: fr.location.as_ref().map_or(0, |l| l.line),
                    inlined: fr.inlined,
                });
            }
        }
        let args = dbg.args(target, &registers);
        let inlined_args = dbg.inlined_args(target, &registers);
        let changed = match (previous, current) {
            (Some(p), Some(c)) => Some(diff(p, c)),
            _ => None,
        };
        let hart = target.selected_hart();
        let process = match (hart, current) {
            (Some(h), Some(s)) => s.on_hart(h).map(|p| p.label()),
            _ => None,
        };
        Ok(StopView {
            pc,
            breakpoint,
            position,
            source,
            registers,
            backtrace,
            args,
            inlined_args,
            changed,
            hart,
            stopped_hart: target.stopped_hart(),
            harts: target.harts().unwrap_or_default(),
            process,
        })
    }
}
