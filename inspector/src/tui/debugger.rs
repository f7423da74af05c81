//! The debugger view's state (no ratatui): the latest `DebugReport` from the data source, the
//! last message, the debugger keys → `DebugCommand` mapping and the parser of the `B` prompt's
//! text (`breakpoint_prompt_command`), and an allocation's call site opened from the
//! allocations view ([`SiteSource`]).
//!
//! Contract: keys only produce commands; the sampler thread carries them out on the
//! connection and reports back (`App::apply_debug_report`). While a command is in flight
//! `busy` is set and further commands are not sent.

use super::input::Key;
use crate::debugger::live::{DebugCommand, DebugReport, DebugState, SOURCE_CONTEXT};
use crate::debugger::stop::source_lines;
use crate::debugger::{SourceLine, StopView};
use crate::model::Site;
use std::path::{Path, PathBuf};
use std::sync::Arc;

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
    /// An allocation's site the view shows instead of the stop (see [`SiteSource`]).
    pub site: Option<SiteSource>,
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
                if stopped {
                    self.site = None; // a new stop is what the user should see
                }
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

/// Which of an allocation's two sites [`SiteSource`] shows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SiteKind {
    /// The kernel line that called `alloc_pages` (`Entry::site`).
    Kernel,
    /// The program line that asked for the pages (`Entry::user_site`).
    User,
}

impl SiteKind {
    pub fn label(self) -> &'static str {
        match self {
            SiteKind::Kernel => "kernel site",
            SiteKind::User => "user site",
        }
    }
}

/// An allocation's call site opened from the allocations view: its source around the line,
/// read from disk when opened (the guest need not be stopped). The debugger view shows it
/// instead of the stop or the running text until it is closed (Esc), a debugger command is
/// sent or a new stop arrives.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SiteSource {
    /// The allocation's (kernel site, user site), kept so that `u` can switch between them.
    pub sites: (Option<Arc<Site>>, Option<Arc<Site>>),
    pub shown: SiteKind,
    /// The file the lines were read from (`None`: no candidate path exists on this machine).
    pub path: Option<PathBuf>,
    /// The lines around the site's line, the site's line `current`; empty when the file
    /// cannot be read.
    pub lines: Vec<SourceLine>,
}

impl SiteSource {
    /// Opens `shown` of `sites`, reading its file: a path relative to the workspace root (as
    /// the sites layer names files inside it) is looked up under `root`, then under the
    /// current directory; an absolute one as it is. Err: that site is absent or has no line.
    pub fn open(
        sites: (Option<Arc<Site>>, Option<Arc<Site>>),
        shown: SiteKind,
        root: Option<&Path>,
    ) -> Result<SiteSource, String> {
        let site = match shown {
            SiteKind::Kernel => sites.0.as_ref(),
            SiteKind::User => sites.1.as_ref(),
        };
        let site = site.ok_or_else(|| match shown {
            SiteKind::Kernel => "this allocation has no recorded site".to_string(),
            SiteKind::User => {
                "this allocation has no user site (the kernel allocated it for itself)".to_string()
            }
        })?;
        if site.line == 0 || site.file.is_empty() {
            return Err(format!(
                "the {} {} has no line information",
                shown.label(),
                site.function
            ));
        }
        let path = site_path(&site.file, root);
        let lines = path
            .as_deref()
            .map(|p| source_lines(p, site.line, SOURCE_CONTEXT))
            .unwrap_or_default();
        Ok(SiteSource {
            sites: sites.clone(),
            shown,
            path,
            lines,
        })
    }

    /// The site shown.
    pub fn site(&self) -> &Arc<Site> {
        let site = match self.shown {
            SiteKind::Kernel => &self.sites.0,
            SiteKind::User => &self.sites.1,
        };
        site.as_ref().expect("opened with this site present")
    }

    /// The other site of the allocation, if it has one to switch to.
    pub fn other(&self) -> Option<SiteKind> {
        match self.shown {
            SiteKind::Kernel => self.sites.1.as_ref().map(|_| SiteKind::User),
            SiteKind::User => self.sites.0.as_ref().map(|_| SiteKind::Kernel),
        }
    }
}

/// The file a site names, on this machine: see [`SiteSource::open`]. `None` when no candidate
/// exists.
pub fn site_path(file: &str, root: Option<&Path>) -> Option<PathBuf> {
    let file = Path::new(file);
    if file.is_absolute() {
        return file.exists().then(|| file.to_path_buf());
    }
    root.map(|r| r.join(file))
        .into_iter()
        .chain(std::iter::once(file.to_path_buf()))
        .find(|p| p.exists())
}
