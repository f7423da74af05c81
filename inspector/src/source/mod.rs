//! Where snapshots come from: the [`Source`] trait every way of reading the tracker implements,
//! and what each source can do ([`Capabilities`]). The TUI and the commands read the tracker
//! through a `Source` only; they never reach below this layer for data.
//!
//! Sources today: [`LiveSource`] (a running kernel over its GDB stub: [`Session`] halts the
//! guest briefly for each snapshot), [`RamSource`] (a running kernel's RAM in QEMU's shared
//! memory file: no stub, no halt) and [`DemoSource`] (a simulated kernel, for trying the UI
//! without QEMU and for tests), [`ReplaySource`] (a recording, on a timeline) and
//! [`CoreSource`] (a memory dump of a stopped kernel). The debugger layer adds a live source that can also debug
//! (`debugger::live::DebugSource`).
//!
//! Contract: a source that can touch a guest leaves it running whenever a call returns (unless
//! a debugger above holds it on purpose) and after `detach`.

pub mod core;
pub mod demo;
pub mod live;
pub mod ram;
pub mod replay;
pub mod session;

pub use self::core::CoreSource;
pub use demo::DemoSource;
pub use live::LiveSource;
pub use ram::{RamSource, DEFAULT_RAM_BASE};
pub use replay::{ReplayControl, ReplaySource, Seek, Timeline};
pub use session::{load_elf, sample_when_ready, NotReady, Session};

use crate::model::Snapshot;

/// True when a sample failed only because the tracker stayed mid-change (the guest's state,
/// not the connection's: keep the connection and try again later).
pub fn stayed_mid_change(e: &anyhow::Error) -> bool {
    matches!(
        e.downcast_ref::<crate::snapshot::SnapshotError>(),
        Some(crate::snapshot::SnapshotError::Torn)
    )
}

/// What kind of thing a source reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Origin {
    /// A running guest.
    Live,
    /// A recording or a memory dump: the guest is not there.
    Recorded,
    /// Generated data (`tui --demo`).
    Demo,
}

/// What a source can do, for the UI to show and offer the right things.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Capabilities {
    pub origin: Origin,
    /// Each snapshot halts the guest for a moment (the pause is measured in the snapshot).
    pub halts_guest: bool,
    /// Breakpoints and stepping are available (see `debugger::Debuggable`).
    pub can_debug: bool,
}

/// A stream of snapshots. The TUI calls it from one background thread only.
pub trait Source: Send + 'static {
    /// What this source is and can do; constant for the source's life.
    fn capabilities(&self) -> Capabilities;

    /// Takes one snapshot. Err: connection trouble; callers show it and call `reconnect`.
    fn sample(&mut self) -> anyhow::Result<Snapshot>;

    /// Tries to (re)connect; Ok(()) when connected.
    fn reconnect(&mut self) -> anyhow::Result<()>;

    /// Leaves the guest running and lets it go (called on quit). Idempotent.
    fn detach(&mut self);

    /// Like `detach`, reporting a failure to leave the guest running (the one-shot commands
    /// end with it, so the user hears of it).
    fn finish(&mut self) -> anyhow::Result<()> {
        self.detach();
        Ok(())
    }

    /// The timeline of a replayed recording (see [`ReplaySource`]); None for any other source.
    fn replay_control(&self) -> Option<ReplayControl> {
        None
    }

    /// The directory the snapshots' site files are relative to (the workspace root the kernel
    /// was built in, from its DWARF; see `sites`), when this source knows it.
    fn source_root(&self) -> Option<std::path::PathBuf> {
        None
    }
}
