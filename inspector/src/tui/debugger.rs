//! The debugger view's state (no ratatui): the latest `DebugReport` from the data source, the
//! last message, the debugger keys → `DebugCommand` mapping and the parser of the `B` prompt's
//! text (`breakpoint_prompt_command`).
//!
//! Contract: keys only produce commands; the sampler thread carries them out on the
//! connection and reports back (`App::apply_debug_report`). While a command is in flight
//! `busy` is set and further commands are not sent.

use super::input::Key;
use crate::debugger::live::{DebugCommand, DebugReport, DebugState};
use crate::debugger::StopView;

/// The function `b` toggles a breakpoint on.
pub const DEFAULT_BREAK: &str = "track_alloc";

/// The command for the debugger's `B` prompt: `enable N`, `disable N`, `delete N`, or else a
/// location to toggle (`LOCATION [if CONDITION]`).
pub fn breakpoint_prompt_command(text: &str) -> DebugCommand {
    let mut words = text.split_whitespace();
    let (verb, id) = (
        words.next(),
        words.next().and_then(|w| w.parse::<u32>().ok()),
    );
    match (verb, id, words.next()) {
        (Some("enable"), Some(id), None) => DebugCommand::SetEnabled { id, enabled: true },
        (Some("disable"), Some(id), None) => DebugCommand::SetEnabled { id, enabled: false },
        (Some("delete"), Some(id), None) => DebugCommand::Remove(id),
        _ => DebugCommand::ToggleBreakpoint(text.to_string()),
    }
}

/// See the module doc.
#[derive(Clone, Debug, Default)]
pub struct DebugPane {
    pub report: Option<DebugReport>,
    /// The last message or error, for the view's status line.
    pub message: Option<String>,
    /// A command was sent and its report has not come back.
    pub busy: bool,
}

impl DebugPane {
    /// The held stop, if the user holds the guest.
    pub fn stop(&self) -> Option<&StopView> {
        match self.report.as_ref().map(|r| &r.state) {
            Some(DebugState::Stopped(v)) => Some(v),
            _ => None,
        }
    }

    /// The command for a key pressed in the debugger view; `None` for other keys (and while
    /// a command is in flight).
    pub fn command_for(&self, key: Key) -> Option<DebugCommand> {
        if self.busy {
            return None;
        }
        Some(match key {
            Key::Char('c') => DebugCommand::Continue,
            Key::Char('s') => DebugCommand::Step,
            Key::Char('n') => DebugCommand::Next,
            Key::Char('f') => DebugCommand::Finish,
            Key::Char('i') => DebugCommand::StepInstruction,
            Key::Char('x') => DebugCommand::Interrupt,
            Key::Char('b') => DebugCommand::ToggleBreakpoint(DEFAULT_BREAK.into()),
            Key::Char('h') => DebugCommand::NextHart,
            _ => return None,
        })
    }

    /// Takes in a report (or an error) from the source. Returns true when it is a new stop
    /// the user should look at.
    pub fn apply(&mut self, result: Result<DebugReport, String>) -> bool {
        self.busy = false;
        match result {
            Ok(r) => {
                self.message = r.message.clone();
                let stopped = matches!(r.state, DebugState::Stopped(_));
                self.report = Some(r);
                stopped
            }
            Err(e) => {
                self.message = Some(e);
                false
            }
        }
    }
}
