//! Minimal ELF64 (RISC-V, little-endian, static) reader: the entry point and the loadable
//! segments of a user program, and the span of pages they need. [`Elf::parse`] checks every
//! header and program header it will later read, so a truncated or malformed image is an
//! [`ElfError`], never a panic, and [`Elf::segments`] cannot fail. Owns no state.

/// Segment permission bits of `Segment::flags` (ELF `p_flags`).
pub const PF_X: u32 = 1;
pub const PF_W: u32 = 2;
pub const PF_R: u32 = 4;

/// Why an image was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ElfError {
    /// Shorter than the ELF64 file header.
    Truncated,
    /// Not `\x7fELF`.
    BadMagic,
    /// Not 64-bit, not little-endian, or not RISC-V.
    WrongKind,
    /// The program header table lies (partly) outside the image, or its entries are too small.
    BadProgramHeaders,
    /// A PT_LOAD segment's file bytes lie (partly) outside the image.
    SegmentOutOfImage,
    /// A PT_LOAD segment has more file bytes than memory bytes, or its end overflows.
    BadSegmentSize,
    /// No PT_LOAD segment, or the segments do not fit between the allowed addresses.
    BadLayout,
}

/// One PT_LOAD segment; `data.len() <= memsz` and `vaddr + memsz` does not overflow.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Segment<'a> {
    pub vaddr: u64,
    pub memsz: u64,
    /// The file bytes (the rest up to `memsz` is zero).
    pub data: &'a [u8],
    /// `PF_R`, `PF_W`, `PF_X` bits.
    pub flags: u32,
}

impl Segment<'_> {
    /// Whether the segment's memory overlaps `[va, va + len)`.
    pub fn overlaps(&self, va: u64, len: u64) -> bool {
        self.vaddr < va.saturating_add(len) && va < self.vaddr + self.memsz
    }
}

/// A parsed image: the entry point, and program headers known to be in bounds.
#[derive(Clone, Copy, Debug)]
pub struct Elf<'a> {
    image: &'a [u8],
    pub entry: u64,
    phoff: usize,
    phnum: usize,
    phentsize: usize,
}

/// The page-aligned virtual range `[lo, hi)` the PT_LOAD segments occupy.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ImageSpan {
    pub lo: u64,
    pub hi: u64,
}

impl ImageSpan {
    pub fn npages(&self, page_size: u64) -> u64 {
        (self.hi - self.lo) / page_size
    }
}

fn u16_at(b: &[u8], p: usize) -> Option<u16> {
    Some(u16::from_le_bytes(
        b.get(p..p.checked_add(2)?)?.try_into().ok()?,
    ))
}
fn u32_at(b: &[u8], p: usize) -> Option<u32> {
    Some(u32::from_le_bytes(
        b.get(p..p.checked_add(4)?)?.try_into().ok()?,
    ))
}
fn u64_at(b: &[u8], p: usize) -> Option<u64> {
    Some(u64::from_le_bytes(
        b.get(p..p.checked_add(8)?)?.try_into().ok()?,
    ))
}

const ELF_MAGIC: &[u8; 4] = b"\x7fELF";
/// `e_ident` bytes: class (64-bit) and data encoding (little-endian).
const EI_CLASS: usize = 4;
const ELFCLASS64: u8 = 2;
const EI_DATA: usize = 5;
const ELFDATA2LSB: u8 = 1;
const EM_RISCV: u16 = 243;
const PT_LOAD: u32 = 1;

/// Bytes of the ELF64 file header and of one ELF64 program header.
pub const EHDR_SIZE: usize = 64;
pub const PHDR_SIZE: usize = 56;

/// Offsets of the ELF64 file header fields read here.
const E_MACHINE: usize = 18;
const E_ENTRY: usize = 24;
const E_PHOFF: usize = 32;
const E_PHENTSIZE: usize = 54;
const E_PHNUM: usize = 56;

/// Offsets of the ELF64 program header fields read here.
const P_TYPE: usize = 0;
const P_FLAGS: usize = 4;
const P_OFFSET: usize = 8;
const P_VADDR: usize = 16;
const P_FILESZ: usize = 32;
const P_MEMSZ: usize = 40;

impl<'a> Elf<'a> {
    /// Checks the file header, the program header table and every PT_LOAD segment.
    pub fn parse(image: &'a [u8]) -> Result<Elf<'a>, ElfError> {
        if image.len() < EHDR_SIZE {
            return Err(
                if image.starts_with(ELF_MAGIC) || ELF_MAGIC.starts_with(image) {
                    ElfError::Truncated
                } else {
                    ElfError::BadMagic
                },
            );
        }
        if &image[..4] != ELF_MAGIC {
            return Err(ElfError::BadMagic);
        }
        let header = |off| u16_at(image, off).ok_or(ElfError::Truncated);
        if image[EI_CLASS] != ELFCLASS64
            || image[EI_DATA] != ELFDATA2LSB
            || header(E_MACHINE)? != EM_RISCV
        {
            return Err(ElfError::WrongKind);
        }
        let elf = Elf {
            image,
            entry: u64_at(image, E_ENTRY).ok_or(ElfError::Truncated)?,
            phoff: usize::try_from(u64_at(image, E_PHOFF).ok_or(ElfError::Truncated)?)
                .map_err(|_| ElfError::BadProgramHeaders)?,
            phentsize: header(E_PHENTSIZE)? as usize,
            phnum: header(E_PHNUM)? as usize,
        };
        if elf.phnum > 0 && elf.phentsize < PHDR_SIZE {
            return Err(ElfError::BadProgramHeaders);
        }
        let table_end = elf
            .phentsize
            .checked_mul(elf.phnum)
            .and_then(|n| n.checked_add(elf.phoff))
            .ok_or(ElfError::BadProgramHeaders)?;
        if table_end > image.len() {
            return Err(ElfError::BadProgramHeaders);
        }
        for i in 0..elf.phnum {
            elf.segment(i)?;
        }
        Ok(elf)
    }

    /// Program header `i` (in bounds: checked by `parse`): Ok(None) if it is not PT_LOAD.
    fn segment(&self, i: usize) -> Result<Option<Segment<'a>>, ElfError> {
        let b = self.image;
        let p = self.phoff + i * self.phentsize;
        let field32 = |off| u32_at(b, p + off).ok_or(ElfError::BadProgramHeaders);
        let field64 = |off| u64_at(b, p + off).ok_or(ElfError::BadProgramHeaders);
        if field32(P_TYPE)? != PT_LOAD {
            return Ok(None);
        }
        let (off, filesz) = (field64(P_OFFSET)?, field64(P_FILESZ)?);
        let (vaddr, memsz) = (field64(P_VADDR)?, field64(P_MEMSZ)?);
        if filesz > memsz || vaddr.checked_add(memsz).is_none() {
            return Err(ElfError::BadSegmentSize);
        }
        let data = usize::try_from(off)
            .ok()
            .zip(usize::try_from(filesz).ok())
            .and_then(|(off, len)| b.get(off..off.checked_add(len)?))
            .ok_or(ElfError::SegmentOutOfImage)?;
        Ok(Some(Segment {
            vaddr,
            memsz,
            data,
            flags: field32(P_FLAGS)?,
        }))
    }

    /// The PT_LOAD segments, in program header order.
    pub fn segments(&self) -> impl Iterator<Item = Segment<'a>> + '_ {
        // `parse` checked every program header, so `segment` cannot fail here.
        (0..self.phnum).filter_map(move |i| self.segment(i).ok().flatten())
    }

    /// The pages `[lo, hi)` the PT_LOAD segments occupy, which must lie within `[base, limit)`
    /// (`page_size` a power of two). Err(BadLayout) without segments or outside the bounds.
    pub fn span(&self, base: u64, limit: u64, page_size: u64) -> Result<ImageSpan, ElfError> {
        let (mut lo, mut hi) = (u64::MAX, 0u64);
        for s in self.segments().filter(|s| s.memsz > 0) {
            lo = lo.min(s.vaddr);
            hi = hi.max(s.vaddr + s.memsz);
        }
        lo &= !(page_size - 1);
        let hi = hi
            .checked_next_multiple_of(page_size)
            .ok_or(ElfError::BadLayout)?;
        if lo >= hi || lo < base || hi > limit {
            return Err(ElfError::BadLayout);
        }
        Ok(ImageSpan { lo, hi })
    }

    /// The union of the `PF_*` flags of the segments that overlap the page at `va`.
    pub fn page_flags(&self, va: u64, page_size: u64) -> u32 {
        self.segments()
            .filter(|s| s.overlaps(va, page_size))
            .fold(0, |f, s| f | s.flags)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PAGE: u64 = 4096;

    /// (vaddr, memsz, file bytes, flags) of one PT_LOAD segment; `ty` other than 1 for others.
    struct Ph {
        ty: u32,
        vaddr: u64,
        memsz: u64,
        data: Vec<u8>,
        flags: u32,
    }

    fn load(vaddr: u64, memsz: u64, data: &[u8], flags: u32) -> Ph {
        Ph {
            ty: PT_LOAD,
            vaddr,
            memsz,
            data: data.to_vec(),
            flags,
        }
    }

    /// A well-formed RISC-V ELF64 image: header, program headers, then the segment bytes.
    fn image(entry: u64, phs: &[Ph]) -> Vec<u8> {
        let mut b = vec![0u8; EHDR_SIZE + phs.len() * PHDR_SIZE];
        b[..4].copy_from_slice(ELF_MAGIC);
        b[EI_CLASS] = ELFCLASS64;
        b[EI_DATA] = ELFDATA2LSB;
        b[E_MACHINE..E_MACHINE + 2].copy_from_slice(&EM_RISCV.to_le_bytes());
        b[E_ENTRY..E_ENTRY + 8].copy_from_slice(&entry.to_le_bytes());
        b[E_PHOFF..E_PHOFF + 8].copy_from_slice(&(EHDR_SIZE as u64).to_le_bytes());
        b[E_PHENTSIZE..E_PHENTSIZE + 2].copy_from_slice(&(PHDR_SIZE as u16).to_le_bytes());
        b[E_PHNUM..E_PHNUM + 2].copy_from_slice(&(phs.len() as u16).to_le_bytes());
        for (i, ph) in phs.iter().enumerate() {
            let off = b.len() as u64;
            b.extend_from_slice(&ph.data);
            let p = EHDR_SIZE + i * PHDR_SIZE;
            let mut put = |at: usize, v: &[u8]| b[p + at..p + at + v.len()].copy_from_slice(v);
            put(P_TYPE, &ph.ty.to_le_bytes());
            put(P_FLAGS, &ph.flags.to_le_bytes());
            put(P_OFFSET, &off.to_le_bytes());
            put(P_VADDR, &ph.vaddr.to_le_bytes());
            put(P_FILESZ, &(ph.data.len() as u64).to_le_bytes());
            put(P_MEMSZ, &ph.memsz.to_le_bytes());
        }
        b
    }

    fn program() -> Vec<u8> {
        let text = load(0x4000_0000, 0x1800, &[0x13; 0x1800], PF_R | PF_X);
        let note = Ph {
            ty: 4,
            vaddr: 0,
            memsz: 0,
            data: vec![1, 2, 3],
            flags: 0,
        };
        let data = load(0x4000_2000, 0x3000, &[7; 100], PF_R | PF_W);
        image(0x4000_0010, &[text, note, data])
    }

    fn set_u64(b: &mut [u8], at: usize, v: u64) {
        b[at..at + 8].copy_from_slice(&v.to_le_bytes());
    }

    /// Offset of program header `i` in an image built by `image`.
    fn ph(i: usize) -> usize {
        EHDR_SIZE + i * PHDR_SIZE
    }

    #[test]
    fn a_well_formed_program_parses_with_its_load_segments() {
        let b = program();
        let elf = Elf::parse(&b).unwrap();
        assert_eq!(elf.entry, 0x4000_0010);
        let segs: Vec<Segment> = elf.segments().collect();
        assert_eq!(segs.len(), 2, "the note is not loaded");
        assert_eq!(
            (segs[0].vaddr, segs[0].memsz, segs[0].data.len()),
            (0x4000_0000, 0x1800, 0x1800)
        );
        assert_eq!(
            (segs[1].vaddr, segs[1].data, segs[1].flags),
            (0x4000_2000, &[7u8; 100][..], PF_R | PF_W)
        );
        let span = elf.span(0x4000_0000, 0x7fff_8000, PAGE).unwrap();
        assert_eq!(
            span,
            ImageSpan {
                lo: 0x4000_0000,
                hi: 0x4000_5000
            }
        );
        assert_eq!(span.npages(PAGE), 5);
        assert_eq!(elf.page_flags(0x4000_1000, PAGE), PF_R | PF_X);
        assert_eq!(elf.page_flags(0x4000_2000, PAGE), PF_R | PF_W);
        assert_eq!(elf.page_flags(0x4000_5000, PAGE), 0);
    }

    #[test]
    fn every_truncation_is_an_error_never_a_panic() {
        let b = program();
        for n in 0..b.len() {
            let r = Elf::parse(&b[..n]);
            assert!(r.is_err(), "accepted {n} of {} bytes", b.len());
        }
        assert_eq!(Elf::parse(&b[..3]).unwrap_err(), ElfError::Truncated);
        assert_eq!(Elf::parse(&b[..5]).unwrap_err(), ElfError::Truncated);
        assert_eq!(
            Elf::parse(&b[..EHDR_SIZE + 10]).unwrap_err(),
            ElfError::BadProgramHeaders
        );
        assert_eq!(
            Elf::parse(&b[..b.len() - 1]).unwrap_err(),
            ElfError::SegmentOutOfImage
        );
        assert_eq!(Elf::parse(&[]).unwrap_err(), ElfError::Truncated);
    }

    #[test]
    fn other_files_and_other_machines_are_refused() {
        assert_eq!(
            Elf::parse(&[b'M', b'Z', 0, 0, 0, 0]).unwrap_err(),
            ElfError::BadMagic
        );
        assert_eq!(Elf::parse(&[0u8; 200]).unwrap_err(), ElfError::BadMagic);
        for (at, v) in [(EI_CLASS, 1u8), (EI_DATA, 2), (E_MACHINE, 62)] {
            let mut b = program();
            b[at] = v;
            assert_eq!(
                Elf::parse(&b).unwrap_err(),
                ElfError::WrongKind,
                "byte {at}"
            );
        }
    }

    #[test]
    fn program_headers_out_of_the_image_or_too_small_are_refused() {
        for (phoff, phnum, phentsize) in [
            (u64::MAX, 1u16, PHDR_SIZE as u16),
            (u64::MAX - 10, 3, PHDR_SIZE as u16),
            (1 << 40, 1, PHDR_SIZE as u16),
            (EHDR_SIZE as u64, u16::MAX, u16::MAX),
            (EHDR_SIZE as u64, 3, 8),
        ] {
            let mut b = program();
            set_u64(&mut b, E_PHOFF, phoff);
            b[E_PHNUM..E_PHNUM + 2].copy_from_slice(&phnum.to_le_bytes());
            b[E_PHENTSIZE..E_PHENTSIZE + 2].copy_from_slice(&phentsize.to_le_bytes());
            assert_eq!(
                Elf::parse(&b).unwrap_err(),
                ElfError::BadProgramHeaders,
                "phoff {phoff:#x} phnum {phnum} phentsize {phentsize}"
            );
        }
    }

    #[test]
    fn segments_out_of_the_image_or_with_impossible_sizes_are_refused() {
        let cases: [(usize, u64, ElfError); 6] = [
            (P_OFFSET, u64::MAX, ElfError::SegmentOutOfImage),
            (P_OFFSET, u64::MAX - 0x1000, ElfError::SegmentOutOfImage),
            (P_OFFSET, 1 << 33, ElfError::SegmentOutOfImage),
            (P_FILESZ, 0x1801, ElfError::BadSegmentSize),
            (P_MEMSZ, 0x10, ElfError::BadSegmentSize),
            (P_VADDR, u64::MAX - 0x100, ElfError::BadSegmentSize),
        ];
        for (field, v, want) in cases {
            let mut b = program();
            set_u64(&mut b, ph(0) + field, v);
            assert_eq!(Elf::parse(&b).unwrap_err(), want, "field {field} = {v:#x}");
        }
        // A large file size that stays within memsz but not within the image.
        let mut b = program();
        set_u64(&mut b, ph(2) + P_MEMSZ, u64::MAX / 2);
        set_u64(&mut b, ph(2) + P_FILESZ, u64::MAX / 4);
        assert_eq!(Elf::parse(&b).unwrap_err(), ElfError::SegmentOutOfImage);
    }

    #[test]
    fn spans_outside_the_allowed_range_or_without_segments_are_refused() {
        let b = program();
        let elf = Elf::parse(&b).unwrap();
        assert_eq!(
            elf.span(0x4000_1000, u64::MAX, PAGE).unwrap_err(),
            ElfError::BadLayout
        );
        assert_eq!(
            elf.span(0, 0x4000_4000, PAGE).unwrap_err(),
            ElfError::BadLayout
        );
        let none = image(0, &[]);
        let elf = Elf::parse(&none).unwrap();
        assert_eq!(elf.segments().count(), 0);
        assert_eq!(
            elf.span(0, u64::MAX, PAGE).unwrap_err(),
            ElfError::BadLayout
        );
        // A segment that ends in the last page of the address space: rounding up overflows.
        let top = image(0, &[load(u64::MAX - 0x20, 0x10, &[], PF_R)]);
        let elf = Elf::parse(&top).unwrap();
        assert_eq!(
            elf.span(0, u64::MAX, PAGE).unwrap_err(),
            ElfError::BadLayout
        );
    }

    /// Random corruption of a good image: parse either refuses it or yields segments that are
    /// inside the image with sane sizes; nothing panics.
    #[test]
    fn random_corruption_never_panics() {
        let good = program();
        let mut rng = 0x2545_f491_4f6c_dd1du64;
        let mut next = || {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            rng
        };
        for _ in 0..20_000 {
            let mut b = good.clone();
            for _ in 0..1 + next() % 4 {
                let at = (next() % (EHDR_SIZE + 3 * PHDR_SIZE) as u64) as usize;
                b[at] = next() as u8;
            }
            let cut = if next() % 4 == 0 {
                (next() % b.len() as u64) as usize
            } else {
                b.len()
            };
            if let Ok(elf) = Elf::parse(&b[..cut]) {
                for s in elf.segments() {
                    assert!(s.data.len() as u64 <= s.memsz);
                    assert!(s.vaddr.checked_add(s.memsz).is_some());
                }
                let _ = elf.span(0x4000_0000, 0x7fff_8000, PAGE);
                let _ = elf.page_flags(0x4000_0000, PAGE);
            }
        }
    }
}
