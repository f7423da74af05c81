//! The archive of user programs that the kernel embeds (written by `kernel/build.rs`).
//!
//! Format (little-endian): `b"LSAR"`, u32 count, then per program: u32 name length, the name
//! (UTF-8), u64 ELF length, the ELF bytes. [`Archive::parse`] walks it once with checked
//! arithmetic: a truncated or malformed archive is an [`ArchiveError`], never a panic, and the
//! lookups after it cannot fail. Read-only.

/// The archive's first four bytes.
pub const MAGIC: &[u8; 4] = b"LSAR";

/// The ELF header fields the archive clears in each program it keeps trimmed (it keeps no
/// section headers): `e_shoff`, then `e_shnum` and `e_shstrndx`.
const SECTION_HEADER_FIELDS: [core::ops::Range<usize>; 2] = [0x28..0x30, 0x3c..0x40];
/// Bytes of an ELF64 header.
const EHDR_LEN: usize = 0x40;

/// How many leading bytes of a 64-bit little-endian ELF the archive keeps (what the kernel's
/// loader reads): up to the end of the program headers and of the last PT_LOAD contents, at
/// least the ELF header. `None` if `elf` is not such an ELF or a header points outside it.
/// The archive's copy is these bytes with the section-header fields cleared
/// ([`clear_section_headers`]); `kernel/build.rs` writes it so.
pub fn loadable_len(elf: &[u8]) -> Option<usize> {
    const PT_LOAD: u32 = 1;
    let u16_at = |o: usize| Some(u16::from_le_bytes(elf.get(o..o + 2)?.try_into().ok()?));
    let u32_at = |o: usize| Some(u32::from_le_bytes(elf.get(o..o + 4)?.try_into().ok()?));
    let u64_at = |o: usize| Some(u64::from_le_bytes(elf.get(o..o + 8)?.try_into().ok()?));
    // ELFCLASS64, ELFDATA2LSB.
    if elf.get(4..6)? != [2, 1] {
        return None;
    }
    let phoff = usize::try_from(u64_at(0x20)?).ok()?;
    let phentsize = usize::from(u16_at(0x36)?);
    let phnum = usize::from(u16_at(0x38)?);
    let mut end = phoff
        .checked_add(phentsize.checked_mul(phnum)?)?
        .max(EHDR_LEN);
    for i in 0..phnum {
        let ph = phoff.checked_add(i * phentsize)?;
        if u32_at(ph)? != PT_LOAD {
            continue;
        }
        let offset = usize::try_from(u64_at(ph.checked_add(8)?)?).ok()?;
        let filesz = usize::try_from(u64_at(ph.checked_add(32)?)?).ok()?;
        end = end.max(offset.checked_add(filesz)?);
    }
    (end <= elf.len()).then_some(end)
}

/// Clears the section-header fields of the ELF header at the start of `elf` (at least
/// [`loadable_len`] bytes, so at least the header).
pub fn clear_section_headers(elf: &mut [u8]) {
    for r in SECTION_HEADER_FIELDS {
        elf[r].fill(0);
    }
}

/// True when `archived`, a program as the archive holds it, is what the archive would hold of
/// the ELF file `elf`: its loadable bytes, trimmed as [`loadable_len`] says (or the whole file,
/// which `kernel/build.rs` embeds when it cannot trim it). Compares in place.
pub fn same_program(archived: &[u8], elf: &[u8]) -> bool {
    if archived == elf {
        return true;
    }
    let Some(len) = loadable_len(elf) else {
        return false;
    };
    let [shoff, shnum] = SECTION_HEADER_FIELDS;
    archived.len() == len
        && archived[..shoff.start] == elf[..shoff.start]
        && archived[shoff.clone()].iter().all(|b| *b == 0)
        && archived[shoff.end..shnum.start] == elf[shoff.end..shnum.start]
        && archived[shnum.clone()].iter().all(|b| *b == 0)
        && archived[shnum.end..] == elf[shnum.end..len]
}

/// Why an archive was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ArchiveError {
    /// Not `LSAR`, or shorter than its 8-byte header.
    BadHeader,
    /// Program `index` (0-based) runs past the end of the archive.
    Truncated { index: usize },
    /// Program `index` has a name that is not UTF-8.
    BadName { index: usize },
    /// Bytes left over after the last program.
    TrailingBytes,
}

/// A checked archive.
#[derive(Clone, Copy, Debug)]
pub struct Archive<'a> {
    bytes: &'a [u8],
    count: usize,
}

/// Reads the little-endian u32 or u64 at `*p` and advances past it.
fn take<'a>(b: &'a [u8], p: &mut usize, n: usize) -> Option<&'a [u8]> {
    let s = b.get(*p..p.checked_add(n)?)?;
    *p += n;
    Some(s)
}

fn take_len(b: &[u8], p: &mut usize, width: usize) -> Option<usize> {
    let raw = take(b, p, width)?;
    let mut v = [0u8; 8];
    v[..width].copy_from_slice(raw);
    usize::try_from(u64::from_le_bytes(v)).ok()
}

/// The next (name, ELF) at `*p`, advancing past it. Err(Truncated)/Err(BadName) as in `parse`.
fn next_program<'a>(
    b: &'a [u8],
    p: &mut usize,
    index: usize,
) -> Result<(&'a str, &'a [u8]), ArchiveError> {
    let truncated = ArchiveError::Truncated { index };
    let nlen = take_len(b, p, 4).ok_or(truncated)?;
    let name = take(b, p, nlen).ok_or(truncated)?;
    let name = core::str::from_utf8(name).map_err(|_| ArchiveError::BadName { index })?;
    let elen = take_len(b, p, 8).ok_or(truncated)?;
    let elf = take(b, p, elen).ok_or(truncated)?;
    Ok((name, elf))
}

impl<'a> Archive<'a> {
    /// Checks the whole archive: header, every entry in bounds with a UTF-8 name, nothing after.
    pub fn parse(bytes: &'a [u8]) -> Result<Archive<'a>, ArchiveError> {
        if bytes.get(..4) != Some(&MAGIC[..]) {
            return Err(ArchiveError::BadHeader);
        }
        let mut p = 4;
        let count = take_len(bytes, &mut p, 4).ok_or(ArchiveError::BadHeader)?;
        for index in 0..count {
            next_program(bytes, &mut p, index)?;
        }
        if p != bytes.len() {
            return Err(ArchiveError::TrailingBytes);
        }
        Ok(Archive { bytes, count })
    }

    /// Every (name, ELF image), in archive order.
    pub fn programs(&self) -> impl Iterator<Item = (&'a str, &'a [u8])> + 'a {
        let bytes = self.bytes;
        let mut p = 8;
        // `parse` walked the same entries, so none fails here.
        (0..self.count).map_while(move |i| next_program(bytes, &mut p, i).ok())
    }

    /// The ELF image of program `name`.
    pub fn find(&self, name: &str) -> Option<&'a [u8]> {
        self.programs()
            .find(|(n, _)| *n == name)
            .map(|(_, elf)| elf)
    }

    pub fn len(&self) -> usize {
        self.count
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A 64-bit little-endian ELF: header, one PT_LOAD program header at 0x40 whose contents
    /// are `code` at 0x78, then `tail` (sections, DWARF) that the archive drops; e_shoff etc.
    /// set as a linker would.
    fn elf(code: &[u8], tail: &[u8]) -> Vec<u8> {
        let mut e = vec![0u8; 0x78];
        e[..4].copy_from_slice(b"\x7fELF");
        e[4] = 2; // ELFCLASS64
        e[5] = 1; // little-endian
        e[0x20..0x28].copy_from_slice(&0x40u64.to_le_bytes()); // e_phoff
        e[0x28..0x30].copy_from_slice(&0x1234u64.to_le_bytes()); // e_shoff
        e[0x36..0x38].copy_from_slice(&0x38u16.to_le_bytes()); // e_phentsize
        e[0x38..0x3a].copy_from_slice(&1u16.to_le_bytes()); // e_phnum
        e[0x3c..0x40].copy_from_slice(&[7, 0, 6, 0]); // e_shnum, e_shstrndx
        e[0x40..0x44].copy_from_slice(&1u32.to_le_bytes()); // PT_LOAD
        e[0x48..0x50].copy_from_slice(&0x78u64.to_le_bytes()); // p_offset
        e[0x60..0x68].copy_from_slice(&(code.len() as u64).to_le_bytes()); // p_filesz
        e.extend_from_slice(code);
        e.extend_from_slice(tail);
        e
    }

    /// What `kernel/build.rs` puts in the archive for `elf`.
    fn archived(elf: &[u8]) -> Vec<u8> {
        let mut a = elf[..loadable_len(elf).unwrap()].to_vec();
        clear_section_headers(&mut a);
        a
    }

    #[test]
    fn a_program_matches_its_archived_copy_and_nothing_else() {
        let built = elf(b"code v1", b".debug_line of v1");
        let kept = archived(&built);
        assert_eq!(kept.len(), 0x78 + 7, "headers and loadable bytes only");
        assert!(same_program(&kept, &built));
        // The same code with other debug info (a rebuild that changed nothing loaded): same.
        assert!(same_program(&kept, &elf(b"code v1", b"other DWARF")));
        // A rebuilt program whose code changed, grew, or shrank: not the archive's.
        assert!(!same_program(&kept, &elf(b"code v2", b".debug_line of v1")));
        assert!(!same_program(&kept, &elf(b"code v1!", b"")));
        assert!(!same_program(&kept, &elf(b"code", b"")));
        // An archived copy whose cleared fields are not clear is not one build.rs wrote.
        let mut odd = kept.clone();
        odd[0x28] = 1;
        assert!(!same_program(&odd, &built));
        // Not an ELF the trimming knows: only an identical file matches (build.rs embeds those
        // whole).
        assert!(same_program(b"whole", b"whole"));
        assert!(!same_program(b"whole", b"whale"));
        assert_eq!(loadable_len(b"\x7fELF"), None);
        // A PT_LOAD past the end of the file: refused, never a panic.
        let mut bad = built.clone();
        bad[0x60..0x68].copy_from_slice(&u64::MAX.to_le_bytes());
        assert_eq!(loadable_len(&bad), None);
    }

    fn archive(programs: &[(&str, &[u8])]) -> Vec<u8> {
        let mut ar = MAGIC.to_vec();
        ar.extend_from_slice(&(programs.len() as u32).to_le_bytes());
        for (name, elf) in programs {
            ar.extend_from_slice(&(name.len() as u32).to_le_bytes());
            ar.extend_from_slice(name.as_bytes());
            ar.extend_from_slice(&(elf.len() as u64).to_le_bytes());
            ar.extend_from_slice(elf);
        }
        ar
    }

    fn sample() -> Vec<u8> {
        archive(&[
            ("hello", b"\x7fELF-hello"),
            ("ls", b""),
            ("sysfuzz", b"\x7fELF-fuzz!"),
        ])
    }

    #[test]
    fn lists_and_finds_programs() {
        let b = sample();
        let a = Archive::parse(&b).unwrap();
        assert_eq!(a.len(), 3);
        let names: Vec<&str> = a.programs().map(|(n, _)| n).collect();
        assert_eq!(names, ["hello", "ls", "sysfuzz"]);
        assert_eq!(a.find("sysfuzz"), Some(&b"\x7fELF-fuzz!"[..]));
        assert_eq!(a.find("ls"), Some(&b""[..]));
        assert_eq!(a.find("nosuch"), None);
        assert_eq!(a.find(""), None);
        let empty = archive(&[]);
        assert!(Archive::parse(&empty).unwrap().is_empty());
    }

    #[test]
    fn every_truncation_is_an_error_never_a_panic() {
        let b = sample();
        for n in 0..b.len() {
            assert!(
                Archive::parse(&b[..n]).is_err(),
                "accepted {n} of {} bytes",
                b.len()
            );
        }
        assert_eq!(
            Archive::parse(&b[..7]).unwrap_err(),
            ArchiveError::BadHeader
        );
        assert_eq!(
            Archive::parse(&b[..10]).unwrap_err(),
            ArchiveError::Truncated { index: 0 }
        );
        assert_eq!(
            Archive::parse(&b[..b.len() - 1]).unwrap_err(),
            ArchiveError::Truncated { index: 2 }
        );
    }

    #[test]
    fn bad_headers_lengths_and_names_are_refused() {
        assert_eq!(Archive::parse(b"").unwrap_err(), ArchiveError::BadHeader);
        assert_eq!(
            Archive::parse(b"LSAX\0\0\0\0").unwrap_err(),
            ArchiveError::BadHeader
        );
        // A count larger than the entries present.
        let mut b = sample();
        b[4] = 200;
        assert_eq!(
            Archive::parse(&b).unwrap_err(),
            ArchiveError::Truncated { index: 3 }
        );
        // A count smaller than the entries present.
        let mut b = sample();
        b[4] = 1;
        assert_eq!(Archive::parse(&b).unwrap_err(), ArchiveError::TrailingBytes);
        // Name and ELF lengths past the end, including ones that overflow an offset.
        for (at, len) in [
            (8usize, u32::MAX as u64),
            (8 + 4 + 5, u64::MAX),
            (8 + 4 + 5, u64::MAX - 16),
            (8 + 4 + 5, 1 << 40),
        ] {
            let mut b = sample();
            let width = if at == 8 { 4 } else { 8 };
            b[at..at + width].copy_from_slice(&len.to_le_bytes()[..width]);
            assert_eq!(
                Archive::parse(&b).unwrap_err(),
                ArchiveError::Truncated { index: 0 },
                "at {at} len {len:#x}"
            );
        }
        let bad_name = archive(&[("ok", b"x"), ("\u{e9}", b"y")]);
        let mut b = bad_name.clone();
        let at = b.len() - 1 - 8 - 2; // the second name's first byte (0xc3 of "é")
        b[at] = 0xff;
        assert_eq!(
            Archive::parse(&b).unwrap_err(),
            ArchiveError::BadName { index: 1 }
        );
        assert!(Archive::parse(&bad_name).is_ok());
    }

    #[test]
    fn random_corruption_never_panics() {
        let good = sample();
        let mut rng = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = || {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            rng
        };
        for _ in 0..20_000 {
            let mut b = good.clone();
            for _ in 0..1 + next() % 3 {
                let at = (next() % b.len() as u64) as usize;
                b[at] = next() as u8;
            }
            if let Ok(a) = Archive::parse(&b) {
                assert_eq!(a.programs().count(), a.len());
                let _ = a.find("hello");
            }
        }
    }
}
