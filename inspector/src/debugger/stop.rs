//! What a stop shows: the function, file and line, the source lines around it (read from the
//! file on disk), the registers, the backtrace (inlined frames included), the decoded
//! arguments, and the tracker rows that changed since the previous stop (`model::diff`).
//!
//! Contract: collecting a view reads the halted target and never resumes it; a source file
//! that is not on disk gives no source lines (the position is still shown).

use std::path::Path;

use serde_json::json;

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
        let debug = dbg.debug().clone();
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
        })
    }

    pub fn to_json(&self) -> serde_json::Value {
        json!({
            "pc": self.pc,
            "breakpoint": self.breakpoint,
            "function": self.position.as_ref().and_then(|p| p.function.clone()),
            "file": self.position.as_ref().map(|p| p.file.clone()),
            "line": self.position.as_ref().map(|p| p.line),
            "args": self.args.to_json(),
            "inlined_args": self.inlined_args.iter().map(|(f, a)| json!({"function": f, "args": a.to_json()})).collect::<Vec<_>>(),
            "source": self.source.iter().map(|l| json!({"line": l.number, "text": l.text, "current": l.current})).collect::<Vec<_>>(),
            "registers": self.registers.named_gprs().map(|(n, v)| (n.to_string(), json!(v))).collect::<serde_json::Map<_, _>>(),
            "backtrace": self.backtrace.iter().map(|f| json!({"pc": f.pc, "function": f.function, "file": f.file, "line": f.line, "inlined": f.inlined})).collect::<Vec<_>>(),
            "changed": self.changed.as_ref().map(|d| json!({"added": d.added, "removed": d.removed})),
        })
    }

    /// A multi-line text rendering (for the CLI).
    pub fn text(&self) -> String {
        let mut out = String::new();
        let (func, file, line) = match &self.position {
            Some(p) => (
                p.function.clone().unwrap_or_else(|| "??".into()),
                p.file.clone(),
                p.line,
            ),
            None => ("??".into(), "??".into(), 0),
        };
        out.push_str(&format!(
            "stopped at {:#x} in {func} ({file}:{line}) {}\n",
            self.pc,
            self.args.text()
        ));
        for (f, a) in &self.inlined_args {
            out.push_str(&format!("  in inlined {f}: {}\n", a.text()));
        }
        for l in &self.source {
            let mark = if l.current { "=>" } else { "  " };
            out.push_str(&format!("{mark}{:5} {}\n", l.number, l.text));
        }
        for (i, f) in self.backtrace.iter().enumerate() {
            out.push_str(&format!(
                "#{i:<2} {:#x} {}{} at {}:{}\n",
                f.pc,
                if f.inlined { "[inlined] " } else { "" },
                f.function.as_deref().unwrap_or("??"),
                f.file.as_deref().unwrap_or("??"),
                f.line
            ));
        }
        out
    }
}
