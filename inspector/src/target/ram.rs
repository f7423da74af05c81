//! [`RamFile`]: guest RAM read straight from the file QEMU keeps it in
//! (`-object memory-backend-file,…,mem-path=FILE,share=on`), while the guest runs: no stub, no
//! halt, no cost to the guest. The file holds RAM from the guest-physical RAM base at offset 0.
//!
//! Contracts:
//! - reads see the guest's stores as QEMU performs them, in no promised order: a reader that
//!   needs a consistent view uses the tracker's generation as a sequence lock (the `snapshot`
//!   layer does);
//! - kernel (virtual) addresses are translated to physical ones through the ELF's load
//!   segments (`vaddr → paddr`), identity outside them; an address outside RAM is
//!   [`TargetError::Unreadable`];
//! - the file disappearing or shrinking (QEMU ended) is an error naming the file, never a
//!   read of stale or zero bytes past its end.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{fence, Ordering};

use super::{Target, TargetError};

/// One ELF load segment: `len` bytes at kernel address `vaddr` live at physical `paddr`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Segment {
    pub vaddr: u64,
    pub paddr: u64,
    pub len: u64,
}

/// Guest memory as a reader of the tracker needs it: bytes at kernel addresses. A halted
/// [`Target`] is one (its reads need it halted); a [`RamFile`] is one while the guest runs.
pub trait GuestMemory {
    /// Fills `buf` from guest memory at kernel address `addr`.
    fn read_guest(&mut self, addr: u64, buf: &mut [u8]) -> Result<(), TargetError>;
}

impl<T: Target + ?Sized> GuestMemory for T {
    fn read_guest(&mut self, addr: u64, buf: &mut [u8]) -> Result<(), TargetError> {
        self.read_memory(addr, buf)
    }
}

/// See the module doc.
#[derive(Debug)]
pub struct RamFile {
    path: PathBuf,
    file: File,
    ram_base: u64,
    segments: Vec<Segment>,
}

impl RamFile {
    /// Opens `path` (read-only) as RAM starting at guest-physical `ram_base`, with the ELF's
    /// load `segments` for address translation.
    pub fn open(path: &Path, ram_base: u64, segments: Vec<Segment>) -> std::io::Result<RamFile> {
        Ok(RamFile {
            path: path.to_path_buf(),
            file: File::open(path)?,
            ram_base,
            segments,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn ram_base(&self) -> u64 {
        self.ram_base
    }

    /// Bytes of RAM the file holds now (0 once QEMU truncated or removed it).
    pub fn len(&self) -> u64 {
        self.file.metadata().map_or(0, |m| m.len())
    }

    /// True when the file holds no RAM (any more).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// True while `path` still names the file that was opened (QEMU removes it when it ends;
    /// a new QEMU makes a new one).
    pub fn still_there(&self) -> bool {
        use std::os::unix::fs::MetadataExt;
        match (std::fs::metadata(&self.path), self.file.metadata()) {
            (Ok(now), Ok(opened)) => now.ino() == opened.ino() && now.dev() == opened.dev(),
            _ => false,
        }
    }

    /// The physical address of kernel address `addr`.
    pub fn physical(&self, addr: u64) -> u64 {
        self.segments
            .iter()
            .find(|s| addr >= s.vaddr && addr - s.vaddr < s.len)
            .map_or(addr, |s| s.paddr + (addr - s.vaddr))
    }
}

impl GuestMemory for RamFile {
    fn read_guest(&mut self, addr: u64, buf: &mut [u8]) -> Result<(), TargetError> {
        let unreadable = || TargetError::Unreadable {
            addr,
            len: buf.len(),
            code: None,
        };
        let offset = self
            .physical(addr)
            .checked_sub(self.ram_base)
            .ok_or_else(unreadable)?;
        let end = offset
            .checked_add(buf.len() as u64)
            .ok_or_else(unreadable)?;
        if end > self.len() {
            return Err(unreadable());
        }
        let read = self
            .file
            .read_exact_at(buf, offset)
            .map_err(|source| TargetError::RamFile {
                path: self.path.clone(),
                source,
            });
        // Acquire: a later read (the generation read again) is not taken before this one's
        // bytes, on hosts that would reorder loads (a no-op on x86-64).
        fence(Ordering::Acquire);
        read
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn ram(bytes: &[u8], segments: Vec<Segment>) -> (tempfile::NamedTempFile, RamFile) {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        f.write_all(bytes).unwrap();
        f.flush().unwrap();
        let r = RamFile::open(f.path(), 0x8000_0000, segments).unwrap();
        (f, r)
    }

    #[test]
    fn reads_at_physical_offsets_through_the_load_segments() {
        let bytes: Vec<u8> = (0..=255).collect();
        let high = Segment {
            vaddr: 0xffff_ffc0_0000_0000,
            paddr: 0x8000_0040,
            len: 0x40,
        };
        let (_f, mut r) = ram(&bytes, vec![high]);
        let mut buf = [0u8; 4];
        r.read_guest(0x8000_0010, &mut buf).unwrap();
        assert_eq!(buf, [16, 17, 18, 19], "identity outside the segments");
        r.read_guest(0xffff_ffc0_0000_0004, &mut buf).unwrap();
        assert_eq!(buf, [68, 69, 70, 71], "a kernel linked high: vaddr → paddr");
    }

    #[test]
    fn outside_ram_is_unreadable_never_a_short_read() {
        let (_f, mut r) = ram(&[7; 64], Vec::new());
        let mut buf = [0u8; 8];
        for addr in [0x7fff_fff8, 0x8000_003c, u64::MAX - 2] {
            let e = r.read_guest(addr, &mut buf).unwrap_err();
            assert!(
                matches!(e, TargetError::Unreadable { .. }),
                "{addr:#x}: {e}"
            );
        }
    }

    #[test]
    fn a_removed_file_is_noticed() {
        let (f, r) = ram(&[0; 64], Vec::new());
        assert!(r.still_there());
        let path = f.path().to_path_buf();
        drop(f);
        assert!(!path.exists());
        assert!(!r.still_there());
    }
}
