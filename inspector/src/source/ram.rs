//! [`RamSource`]: the tracker read from guest RAM in QEMU's shared memory file while the kernel
//! runs: no GDB stub, no halt, nothing for the guest to pay. Consistency comes from the
//! tracker's generation used as a sequence lock (`snapshot::Sampler::sample_live`).
//!
//! Contracts:
//! - the file must hold the build the ELF describes (`leakscope_build_id`), else an error that
//!   says so; checked at every (re)open;
//! - the file vanishing or being replaced (QEMU ended or restarted) is an error; `reconnect`
//!   opens the new one; a reboot inside one file is seen through the boot nonce;
//! - the file maps guest-physical RAM from `ram_base` (QEMU virt: [`DEFAULT_RAM_BASE`]); a
//!   kernel whose header says otherwise is refused with the option to pass.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use super::session::load_elf;
use super::{Capabilities, Origin, Source};
use crate::dwarf::{load_segments, DebugInfo};
use crate::model::Snapshot;
use crate::snapshot::{Sampler, SnapshotError};
use crate::target::{RamFile, Segment};

/// Where RAM starts on QEMU's `virt` machine (the file's offset 0).
pub const DEFAULT_RAM_BASE: u64 = 0x8000_0000;

/// See the module doc.
pub struct RamSource {
    path: PathBuf,
    ram_base: u64,
    segments: Vec<Segment>,
    ram: Option<RamFile>,
    sampler: Sampler,
    /// When the file was last checked to be still there.
    checked: Instant,
}

/// How often a sample checks that the RAM file is still QEMU's.
const PRESENCE_CHECK: Duration = Duration::from_millis(100);

impl RamSource {
    /// Loads `elf` and prepares to read `ram` (opened on the first sample); `ram_base` is
    /// where the file's RAM starts (None: QEMU virt's).
    pub fn new(elf: &Path, ram: &Path, ram_base: Option<u64>) -> Result<RamSource> {
        RamSource::with_debug(load_elf(elf)?, ram, ram_base)
    }

    /// Like [`new`](Self::new) with the ELF already loaded.
    pub fn with_debug(
        debug: Arc<DebugInfo>,
        ram: &Path,
        ram_base: Option<u64>,
    ) -> Result<RamSource> {
        let segments = load_segments(debug.elf().path()).with_context(|| {
            format!(
                "reading the load segments of {}",
                debug.elf().path().display()
            )
        })?;
        let sampler = Sampler::new(debug.clone()).with_context(|| {
            format!(
                "{} does not describe the tracker",
                debug.elf().path().display()
            )
        })?;
        Ok(RamSource {
            path: ram.to_path_buf(),
            ram_base: ram_base.unwrap_or(DEFAULT_RAM_BASE),
            segments,
            ram: None,
            sampler,
            checked: Instant::now(),
        })
    }

    /// Opens the file now and checks its build, for the one-shot commands.
    pub fn open(elf: &Path, ram: &Path, ram_base: Option<u64>) -> Result<RamSource> {
        let mut source = RamSource::new(elf, ram, ram_base)?;
        source.reconnect()?;
        Ok(source)
    }

    /// False for a kernel without a generation counter (the chapter's bare table): its
    /// samples fail with [`SnapshotError::NoGeneration`]; read it through the stub instead.
    pub fn reads_while_running(&self) -> bool {
        self.sampler.layout().has_generation()
    }

    /// Forgets the previous snapshot but keeps the file mapped: the next sample reads the
    /// whole table, as after a reconnect, without the cost of mapping the file again.
    pub fn forget(&mut self) {
        self.sampler.reset();
    }

    /// The RAM file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn sample_open(&mut self) -> Result<Snapshot> {
        if self.ram.is_none() {
            self.reconnect()?;
        }
        let ram = self.ram.as_mut().expect("opened above");
        // Two stat calls: not on every read at 60 Hz, but often enough to notice QEMU ending
        // (its unlinked file would still read, frozen).
        if self.checked.elapsed() >= PRESENCE_CHECK
            && !{
                self.checked = Instant::now();
                ram.still_there()
            }
        {
            bail!(
                "the RAM file {} is gone or was replaced (QEMU ended or restarted)",
                self.path.display()
            );
        }
        let snap = match self.sampler.sample_live(ram) {
            Err(SnapshotError::Target(e)) if !ram.still_there() => {
                return Err(anyhow::Error::new(e).context(format!(
                    "the RAM file {} went away while it was read (QEMU ended?)",
                    self.path.display()
                )))
            }
            other => other.context("reading the tracker from guest RAM")?,
        };
        let base = snap.header.ram_base;
        if base != 0 && base != self.ram_base {
            bail!(
                "the kernel's RAM starts at {base:#x}, not at {:#x} where the file's offset 0 was \
                 assumed: pass --ram-base {base:#x}",
                self.ram_base
            );
        }
        Ok(snap)
    }
}

impl Source for RamSource {
    fn source_root(&self) -> Option<PathBuf> {
        self.sampler.site_root().map(Into::into)
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            origin: Origin::Live,
            halts_guest: false,
            can_debug: false,
        }
    }

    fn sample(&mut self) -> Result<Snapshot> {
        let result = self.sample_open();
        if result.is_err() {
            self.ram = None;
        }
        result
    }

    fn reconnect(&mut self) -> Result<()> {
        self.ram = None;
        let mut ram = RamFile::open(&self.path, self.ram_base, self.segments.clone())
            .with_context(|| {
                format!(
                    "cannot open the guest RAM file {}: is QEMU running with its RAM there \
                     (make qemu keeps it in /dev/shm/leakscope-PORT.ram)?",
                    self.path.display()
                )
            })?;
        self.sampler.reset();
        self.sampler
            .check_build_id_live(&mut ram)
            .map_err(|e| match e {
                SnapshotError::BuildIdMismatch => anyhow::anyhow!(
                    "the RAM file {} holds another build than the ELF (leakscope_build_id \
                     differs): pass the ELF that QEMU booted, or rebuild and restart (make \
                     kernel, then make qemu)",
                    self.path.display()
                ),
                other => anyhow::Error::new(other)
                    .context(format!("reading the build id from {}", self.path.display())),
            })?;
        self.ram = Some(ram);
        Ok(())
    }

    fn detach(&mut self) {
        self.ram = None;
    }
}
