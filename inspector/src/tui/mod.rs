//! Terminal UI: live views of the page tracker (overview, allocations, page map, leaks and
//! events) fed by a `SnapshotSource` sampled on a background thread.
//!
//! Layers: state without ratatui: `app` (app-wide state, keys → state changes and actions),
//! beside it the per-view state `overview` (rows), `allocations` (sort order), `pagemap`
//! (grid, cells, cursor) and `debugger` (the debugger pane and its `B` prompt parser), the
//! `filter` and the footer's line editor `prompt`; `input` (keys), `views` (drawing only),
//! `run` (terminal guard, sampler thread, event loop), `fake` (a simulated source for demos
//! and tests).

pub mod allocations;
pub mod app;
pub mod debugger;
pub mod fake;
pub mod filter;
pub mod input;
pub mod overview;
pub mod pagemap;
pub mod prompt;
pub mod run;
pub mod views;

#[cfg(test)]
mod tests_app;
#[cfg(test)]
mod tests_debugger;
#[cfg(test)]
mod tests_views;

pub use app::{Action, App, Connection};
pub use fake::FakeSource;
pub use run::run_tui;

/// Where the TUI's snapshots come from. The TUI calls it from one background thread only.
pub trait SnapshotSource: Send + 'static {
    /// Takes one snapshot (halts the guest briefly, reads, resumes). Err: connection trouble;
    /// the TUI shows it and calls `reconnect` later.
    fn sample(&mut self) -> anyhow::Result<crate::model::Snapshot>;
    /// Tries to (re)connect; Ok(()) when connected.
    fn reconnect(&mut self) -> anyhow::Result<()>;
    /// Leaves the guest running and detaches (called on quit).
    fn detach(&mut self);
    /// Carries out a debugger command (the debugger view). Sources without a debugger say so.
    fn debug(
        &mut self,
        _cmd: crate::debugger::live::DebugCommand,
    ) -> anyhow::Result<crate::debugger::live::DebugReport> {
        anyhow::bail!("this data source has no debugger")
    }
    /// A breakpoint stop the last `sample` found, once (then the TUI opens the debugger view).
    fn take_debug_report(&mut self) -> Option<crate::debugger::live::DebugReport> {
        None
    }
}
