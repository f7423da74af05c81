//! `Session`: one connection to a running kernel (ELF + DWARF + GDB stub + snapshot reader),
//! as the commands and the TUI use it. Errors here carry the next step for the user.
//!
//! Contract: a `Session` leaves the guest running whenever control returns to the caller, and
//! detaches when dropped (the `RspTarget` inside does), so no exit path leaves QEMU halted.

use crate::dwarf::DebugInfo;
use crate::model::Snapshot;
use crate::snapshot::{Sampler, SnapshotError};
use crate::target::{RspTarget, RspTargetOptions, Target};
use anyhow::{Context, Result};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long `sample` waits for a kernel that is still booting (tracker not initialised yet).
const BOOT_WAIT: Duration = Duration::from_secs(10);

pub struct Session {
    debug: Arc<DebugInfo>,
    target: RspTarget,
    sampler: Sampler,
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
        let mut sampler = Sampler::new(debug.clone()).with_context(|| {
            format!(
                "{} does not describe the tracker",
                debug.elf().path().display()
            )
        })?;
        let mut target = RspTarget::connect(gdb, RspTargetOptions::default()).with_context(|| {
            format!("cannot attach to the GDB stub at {gdb}: is QEMU running with `-gdb tcp:{gdb}`? (start it with make qemu)")
        })?;
        sampler.check_build_id(&mut target)?;
        Ok(Session {
            debug,
            target,
            sampler,
        })
    }

    /// One snapshot; waits up to 10 s for a kernel that has not initialised its tracker yet.
    pub fn sample(&mut self) -> Result<Snapshot> {
        let start = Instant::now();
        loop {
            match self.sampler.sample(&mut self.target) {
                Err(SnapshotError::NotInitialised { .. }) if start.elapsed() < BOOT_WAIT => {
                    std::thread::sleep(Duration::from_millis(100));
                }
                other => return other.context("taking a snapshot"),
            }
        }
    }

    pub fn debug_info(&self) -> &Arc<DebugInfo> {
        &self.debug
    }

    pub fn target(&mut self) -> &mut RspTarget {
        &mut self.target
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
