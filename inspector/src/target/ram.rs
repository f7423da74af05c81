//! [`RamFile`]: guest RAM read straight from the file QEMU keeps it in
//! (`-object memory-backend-file,…,mem-path=FILE,share=on`), while the guest runs: no stub, no
//! halt, no cost to the guest. The file holds RAM from the guest-physical RAM base at offset 0.
//!
//! The file is mapped (shared, read-only), so a read is a copy out of the mapping: no system
//! call, which matters because a sampler wakes up for every snapshot, and the first system
//! calls after a sleep are the slowest (on this project's virtual machine, a cold snapshot's
//! reads went from about 27 µs through `pread` to under 2 µs through the mapping).
//!
//! Contracts:
//! - reads see the guest's stores as QEMU performs them, in no promised order: a reader that
//!   needs a consistent view uses the tracker's generation as a sequence lock (the `snapshot`
//!   layer does);
//! - kernel (virtual) addresses are translated to physical ones through the ELF's load
//!   segments (`vaddr → paddr`), identity outside them; an address outside RAM (outside the
//!   file as it was when opened) is [`TargetError::Unreadable`];
//! - the file disappearing or being replaced (QEMU ended or restarted) is noticed by
//!   [`RamFile::still_there`], never by reading stale bytes past the file's end: the mapping
//!   keeps the old RAM readable until it is dropped.
//! - the file must not shrink while it is mapped (a read past the new end would raise SIGBUS).
//!   QEMU never shrinks its RAM file, and `scripts/qemu.sh` never touches a file that a process
//!   maps; `still_there` also reports a shrunk file as gone, so a reader that checks it drops
//!   the mapping.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::atomic::{fence, Ordering};

use memmap2::{Mmap, MmapOptions};

use super::{Target, TargetError};

/// One ELF load segment: `len` bytes at kernel address `vaddr` live at physical `paddr`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Segment {
    pub vaddr: u64,
    pub paddr: u64,
    pub len: u64,
    /// Mapped writable (`PF_W`): its bytes change as the kernel runs (data, bss, stacks);
    /// false for code and read-only data.
    pub writable: bool,
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
    /// The whole file as it was when opened (None for an empty file: nothing to map).
    map: Option<Mmap>,
    ram_base: u64,
    segments: Vec<Segment>,
}

impl RamFile {
    /// Opens `path` (read-only) as RAM starting at guest-physical `ram_base`, with the ELF's
    /// load `segments` for address translation.
    pub fn open(path: &Path, ram_base: u64, segments: Vec<Segment>) -> std::io::Result<RamFile> {
        let file = File::open(path)?;
        let map = if file.metadata()?.len() == 0 {
            None
        } else {
            // SAFETY: the mapping is read-only and shared with QEMU, which writes guest RAM
            // into it while we read: Rust sees no data race because every read copies raw
            // bytes out through a pointer (`read_guest`), never forming a reference to the
            // changing memory, and any byte value is valid for `u8`. The file does not shrink
            // while mapped (module contract), so no access faults.
            Some(unsafe { MmapOptions::new().map(&file)? })
        };
        Ok(RamFile {
            path: path.to_path_buf(),
            file,
            map,
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

    /// Bytes of RAM that can be read: the file's length when it was opened.
    pub fn len(&self) -> u64 {
        self.map.as_ref().map_or(0, |m| m.len() as u64)
    }

    /// True when the file holds no RAM (any more).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// True while `path` still names the file that was opened (QEMU removes it when it ends;
    /// a new QEMU makes a new one) and the file still holds all that was mapped.
    pub fn still_there(&self) -> bool {
        use std::os::unix::fs::MetadataExt;
        match (std::fs::metadata(&self.path), self.file.metadata()) {
            (Ok(now), Ok(opened)) => {
                now.ino() == opened.ino() && now.dev() == opened.dev() && opened.len() >= self.len()
            }
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
        let map = match &self.map {
            Some(map) if end <= map.len() as u64 => map,
            _ => return Err(unreadable()),
        };
        // SAFETY: `offset..end` lies inside the mapping (checked above), `buf` is our own
        // memory and cannot overlap a read-only file mapping. The bytes are copied through a
        // raw pointer, never a reference, because QEMU changes them concurrently (see `open`).
        unsafe {
            std::ptr::copy_nonoverlapping(
                map.as_ptr().add(offset as usize),
                buf.as_mut_ptr(),
                buf.len(),
            );
        }
        // Acquire: a later read (the generation read again) is not taken before this one's
        // bytes, on hosts that would reorder loads (a no-op on x86-64).
        fence(Ordering::Acquire);
        Ok(())
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
            writable: true,
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

    #[test]
    fn a_shrunk_file_is_reported_gone_before_it_is_read() {
        let (f, r) = ram(&[0; 8192], Vec::new());
        assert!(r.still_there());
        f.as_file().set_len(4096).unwrap();
        assert!(!r.still_there(), "shrunk under the mapping: gone");
    }

    #[test]
    fn an_empty_file_maps_nothing_and_reads_nothing() {
        let (_f, mut r) = ram(&[], Vec::new());
        assert!(r.is_empty());
        let mut buf = [0u8; 1];
        assert!(matches!(
            r.read_guest(0x8000_0000, &mut buf),
            Err(TargetError::Unreadable { .. })
        ));
    }
}
