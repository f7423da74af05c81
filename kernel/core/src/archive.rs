//! The archive of user programs that the kernel embeds (written by `kernel/build.rs`).
//!
//! Format (little-endian): `b"LSAR"`, u32 count, then per program: u32 name length, the name
//! (UTF-8), u64 ELF length, the ELF bytes. [`Archive::parse`] walks it once with checked
//! arithmetic: a truncated or malformed archive is an [`ArchiveError`], never a panic, and the
//! lookups after it cannot fail. Read-only.

/// The archive's first four bytes.
pub const MAGIC: &[u8; 4] = b"LSAR";

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
