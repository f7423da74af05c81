//! Terminal UI: live views of the page tracker (overview, allocations, page map, leaks and
//! events) and the debugger view, fed by a `source::Source` (with `debugger::live::Debuggable`
//! for the debugger's commands) sampled on a background thread.
//!
//! Layers: `app` (state, no ratatui), `debugger` (the debugger view's state), `input` (keys),
//! `views` (drawing only), `run` (terminal guard, sampling thread, event loop).

pub mod app;
pub mod debugger;
pub mod input;
pub mod run;
pub mod views;

#[cfg(test)]
mod tests_app;
#[cfg(test)]
mod tests_debugger;
#[cfg(test)]
mod tests_views;

pub use app::{Action, App, Connection};
pub use run::run_tui;
