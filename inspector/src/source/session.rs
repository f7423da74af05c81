//! `Session`: one connection to a running kernel (ELF + DWARF + GDB stub + snapshot reader),
//! as the commands and the TUI use it. Errors here carry the next step for the user.
//!
//! Contract: a `Session` leaves the guest running whenever control returns to the caller
//! (unless the caller held it halted before), and detaches when dropped (the `RspTarget`
//! inside does), so no exit path leaves QEMU halted. It never waits with the guest halted: a
//! kernel still booting is waited for with the guest running between attempts, and not at all
//! while someone above holds the guest ([`NotReady`] at once).

use crate::dwarf::DebugInfo;
use crate::model::{Process, Snapshot};
use crate::snapshot::{Sampler, SnapshotError};
use crate::target::{Cancelled, RspTarget, RspTargetOptions, ShutdownFlag, Target};
use anyhow::{Context, Result};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long `sample` waits for a kernel that is still booting (tracker not initialised yet).
pub const BOOT_WAIT: Duration = Duration::from_secs(10);
/// How long the booting guest runs between two attempts.
pub const BOOT_RETRY: Duration = Duration::from_millis(100);

/// The kernel has not initialised its tracker yet: it is still booting (or was stopped before
/// it got there). Not a connection problem: keep the connection and try again later.
#[derive(Debug, thiserror::Error)]
pub enum NotReady {
    #[error(
        "the kernel has not initialised its tracker yet (alloc_tracker.magic unset after {} s: \
         still booting?); it keeps running: try again in a moment",
        waited.as_secs()
    )]
    Booting { waited: Duration },
    #[error(
        "the kernel has not initialised its tracker yet and the guest is held by the \
         debugger: continue it to let it boot"
    )]
    Held,
}

impl NotReady {
    /// The `NotReady` in `e` (or in its chain of causes), if any.
    pub fn find(e: &anyhow::Error) -> Option<&NotReady> {
        e.downcast_ref::<NotReady>()
            .or_else(|| e.chain().find_map(|c| c.downcast_ref::<NotReady>()))
    }
}

/// One snapshot through `sampler`, waiting up to `wait` for a kernel whose tracker is not
/// initialised yet, with the guest running between attempts (the sampler's guard resumes it
/// after each). If the guest is halted on entry (someone above holds it), makes one attempt and
/// returns [`NotReady::Held`] at once instead of waiting. Returns [`Cancelled`] when `cancel` is
/// raised during the wait. The guest is left as it was found.
pub fn sample_when_ready<T: Target + ?Sized>(
    sampler: &mut Sampler,
    target: &mut T,
    wait: Duration,
    cancel: &ShutdownFlag,
) -> Result<Snapshot> {
    let held = target.is_halted();
    let start = Instant::now();
    loop {
        match sampler.sample(target) {
            Err(SnapshotError::NotInitialised { .. }) if held => {
                return Err(NotReady::Held.into());
            }
            Err(SnapshotError::NotInitialised { .. }) => {
                let waited = start.elapsed();
                if waited >= wait {
                    return Err(NotReady::Booting { waited }.into());
                }
                if cancel.sleep(BOOT_RETRY.min(wait - waited)) {
                    return Err(Cancelled.into());
                }
            }
            other => return other.context("taking a snapshot"),
        }
    }
}

/// How a session reaches the guest: a target handed out by whoever owns the connection to the
/// stub (e.g. the gdb server's arbiter, which shares one connection between the sampler and a
/// gdb client). Called at every (re)connect.
pub type Connector = Arc<dyn Fn() -> Result<Box<dyn Target + Send>> + Send + Sync>;

pub struct Session {
    debug: Arc<DebugInfo>,
    target: Box<dyn Target + Send>,
    sampler: Sampler,
    shutdown: ShutdownFlag,
}

/// Loads and indexes the kernel ELF, with an error that says what to do.
pub fn load_elf(elf: &Path) -> Result<Arc<DebugInfo>> {
    let debug = DebugInfo::load(elf)
        .with_context(|| format!("loading the kernel ELF {}", elf.display()))?;
    Ok(Arc::new(debug))
}

impl Session {
    /// Loads `elf`, connects to the stub at `gdb` and checks that the ELF is the running kernel.
    pub fn connect(elf: &Path, gdb: &str) -> Result<Session> {
        Self::connect_with(load_elf(elf)?, gdb)
    }

    /// Like [`connect`](Self::connect) with an ELF already loaded (reconnects reuse it).
    pub fn connect_with(debug: Arc<DebugInfo>, gdb: &str) -> Result<Session> {
        let sampler = Sampler::new(debug.clone()).with_context(|| {
            format!(
                "{} does not describe the tracker",
                debug.elf().path().display()
            )
        })?;
        let target = RspTarget::connect(gdb, RspTargetOptions::default()).with_context(|| {
            format!("cannot attach to the GDB stub at {gdb}: is QEMU running with `-gdb tcp:{gdb}`? (start it with make qemu)")
        })?;
        Self::with_target(debug, sampler, Box::new(target))
    }

    /// Like [`connect_with`](Self::connect_with), with the target from `connector` instead of
    /// a connection of its own.
    pub fn connect_through(debug: Arc<DebugInfo>, connector: &Connector) -> Result<Session> {
        let sampler = Sampler::new(debug.clone()).with_context(|| {
            format!(
                "{} does not describe the tracker",
                debug.elf().path().display()
            )
        })?;
        let target = connector()?;
        Self::with_target(debug, sampler, target)
    }

    fn with_target(
        debug: Arc<DebugInfo>,
        mut sampler: Sampler,
        mut target: Box<dyn Target + Send>,
    ) -> Result<Session> {
        sampler.check_build_id(&mut *target)?;
        Ok(Session {
            debug,
            target,
            sampler,
            shutdown: ShutdownFlag::new(),
        })
    }

    /// Waits in this session (a booting kernel) end with [`Cancelled`] once `flag` is raised.
    pub fn set_shutdown(&mut self, flag: ShutdownFlag) {
        self.shutdown = flag;
    }

    /// One snapshot; waits up to [`BOOT_WAIT`] for a kernel that has not initialised its
    /// tracker yet, with the guest running meanwhile; see [`sample_when_ready`] (a held guest
    /// is not waited for).
    pub fn sample(&mut self) -> Result<Snapshot> {
        sample_when_ready(
            &mut self.sampler,
            &mut *self.target,
            BOOT_WAIT,
            &self.shutdown,
        )
    }

    /// The process table read now, the target halted (e.g. at a breakpoint stop); see
    /// [`Sampler::processes`].
    pub fn processes(&mut self) -> Result<Vec<Process>> {
        Ok(self.sampler.processes(&mut *self.target)?)
    }

    pub fn debug_info(&self) -> &Arc<DebugInfo> {
        &self.debug
    }

    pub fn target(&mut self) -> &mut dyn Target {
        &mut *self.target
    }

    pub fn sampler(&mut self) -> &mut Sampler {
        &mut self.sampler
    }

    /// Removes our breakpoints, leaves the guest running, and closes the connection.
    pub fn detach(mut self) -> Result<()> {
        self.target.detach().context(
            "detaching from the GDB stub (the guest may stay halted: `c` in gdb resumes it)",
        )
    }
}
