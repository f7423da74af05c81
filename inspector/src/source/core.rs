//! [`CoreSource`]: the tracker of a stopped or crashed kernel, read from a memory dump instead
//! of a live guest: QEMU's `dump-guest-memory` ELF core (`target::CoreFile`), or a copy of
//! QEMU's shared RAM file (`target::RamFile`, RAM from `--ram-base` at offset 0). Decoded by
//! the same `Sampler` as a live read, so every view shows it as it would the live kernel.
//!
//! Contract: a dump taken while the kernel was inside a tracker change is refused with that
//! reason rather than shown torn: an odd generation, or, for a kernel without a generation
//! counter (the chapter's bare table), a hart's pc inside a function that writes the table (the
//! pcs come from the ELF core's notes; a RAM copy, which has none, is refused for such a
//! kernel). A dump of another build than the ELF is refused (build id).

use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};

use super::session::load_elf;
use super::{Capabilities, Origin, Source, DEFAULT_RAM_BASE};
use crate::dwarf::load_segments;
use crate::model::Snapshot;
use crate::snapshot::{Sampler, SnapshotError};
use crate::target::{is_elf_core, CoreFile, GuestMemory, RamFile};

/// See the module doc.
pub struct CoreSource {
    path: PathBuf,
    memory: Box<dyn GuestMemory + Send>,
    sampler: Sampler,
    /// The harts' pcs at the dump (an ELF core's notes); None for a RAM copy, which has none.
    pcs: Option<Vec<u64>>,
}

impl CoreSource {
    /// Opens the dump at `core` for the kernel `elf`; `ram_base` applies to a RAM-file copy
    /// (None: QEMU virt's 0x8000_0000). Checks the build id at once.
    pub fn open(elf: &Path, core: &Path, ram_base: Option<u64>) -> Result<CoreSource> {
        let debug = load_elf(elf)?;
        let segments = load_segments(elf)
            .with_context(|| format!("reading the load segments of {}", elf.display()))?;
        let sampler = Sampler::new(debug)
            .with_context(|| format!("{} does not describe the tracker", elf.display()))?;
        let mut head = [0u8; 64];
        let n = std::fs::File::open(core)
            .and_then(|mut f| std::io::Read::read(&mut f, &mut head))
            .with_context(|| format!("cannot read the dump {}", core.display()))?;
        let mut pcs = None;
        let memory: Box<dyn GuestMemory + Send> = if is_elf_core(&head[..n]) {
            let file = CoreFile::open(core, segments).map_err(|e| anyhow!(e))?;
            pcs = Some(file.hart_pcs().to_vec()).filter(|p| !p.is_empty());
            Box::new(file)
        } else {
            let ram = RamFile::open(core, ram_base.unwrap_or(DEFAULT_RAM_BASE), segments)
                .with_context(|| format!("cannot open the dump {}", core.display()))?;
            if ram.is_empty() {
                bail!("the dump {} is empty", core.display());
            }
            Box::new(ram)
        };
        let mut source = CoreSource {
            path: core.to_path_buf(),
            memory,
            sampler,
            pcs,
        };
        source
            .sampler
            .check_build_id_live(&mut *source.memory)
            .map_err(|e| match e {
                SnapshotError::BuildIdMismatch => anyhow!(
                    "the dump {} holds another build than the ELF (leakscope_build_id differs): \
                     pass the ELF of the kernel that was dumped",
                    core.display()
                ),
                other => anyhow::Error::new(other).context(format!(
                    "reading the build id from the dump {} (is it a dump of this kernel's \
                     machine? a RAM copy needs the right --ram-base)",
                    core.display()
                )),
            })?;
        Ok(source)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Source for CoreSource {
    fn source_root(&self) -> Option<PathBuf> {
        self.sampler.site_root().map(Into::into)
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            origin: Origin::Recorded,
            halts_guest: false,
            can_debug: false,
        }
    }

    /// The dump's tracker, read afresh each time (the same state every time).
    fn sample(&mut self) -> Result<Snapshot> {
        // A kernel without a generation counter (the chapter's bare table) is consistent only
        // where no hart was inside a function that writes the table.
        if self.sampler.needs_quiescence() {
            let Some(pcs) = &self.pcs else {
                bail!(
                    "the dump {} holds no registers (a copy of the RAM file), and this kernel has                      no generation counter: nothing tells whether a hart was changing alloc_table                      when it was taken; take an ELF dump instead (make dump, or QEMU's                      dump-guest-memory)",
                    self.path.display()
                );
            };
            if let Some(writer) = self.sampler.writer_at(pcs) {
                bail!(
                    "the dump {} was taken while a hart was inside {writer}, which changes                      alloc_table: its table may be torn; take the dump again",
                    self.path.display()
                );
            }
        }
        self.sampler
            .sample_still(&mut *self.memory)
            .map_err(|e| match e {
                SnapshotError::Torn => anyhow!(
                    "the dump {} was taken while the kernel was inside a tracker change (odd \
                     generation): its table may be torn; take the dump again",
                    self.path.display()
                ),
                other => anyhow::Error::new(other).context(format!(
                    "reading the tracker from the dump {}",
                    self.path.display()
                )),
            })
    }

    fn reconnect(&mut self) -> Result<()> {
        Ok(())
    }

    fn detach(&mut self) {}
}
