//! Terminal UI: live views of the page tracker (overview, allocations, page map, leaks and
//! events) and the debugger view, fed by a `source::Source` (with `debugger::live::Debuggable`
//! for the debugger's commands) sampled on a background thread.
//!
//! Layers: state without ratatui: `app` (app-wide state, keys → state changes and actions),
//! beside it the per-view state `overview` (rows), `allocations` (sort order), `pagemap`
//! (grid, cells, cursor) and `debugger` (the debugger pane and its `B` prompt parser), the
//! `filter` and the footer's line editor `prompt`; `input` (keys), `views` (drawing only),
//! `run` (terminal guard, sampling thread, event loop).

pub mod allocations;
pub mod app;
pub mod debugger;
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
mod tests_replay;
#[cfg(test)]
mod tests_sites;
#[cfg(test)]
mod tests_views;

pub use app::{Action, App, Connection};
pub use run::run_tui;
