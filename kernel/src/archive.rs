//! The archive of user programs embedded in the kernel image by build.rs (format there):
//! lookup by name and listing. Read-only.

static ARCHIVE: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/user_programs.lsar"));

fn u32_at(p: usize) -> usize {
    u32::from_le_bytes(ARCHIVE[p..p + 4].try_into().unwrap()) as usize
}

fn u64_at(p: usize) -> usize {
    u64::from_le_bytes(ARCHIVE[p..p + 8].try_into().unwrap()) as usize
}

/// Every (name, ELF image) in the archive, in name order.
pub fn programs() -> impl Iterator<Item = (&'static str, &'static [u8])> {
    assert!(&ARCHIVE[..4] == b"LSAR", "archive: bad magic");
    let count = u32_at(4);
    let mut p = 8;
    (0..count).map(move |_| {
        let nlen = u32_at(p);
        let name = core::str::from_utf8(&ARCHIVE[p + 4..p + 4 + nlen]).unwrap_or("?");
        p += 4 + nlen;
        let elen = u64_at(p);
        let elf = &ARCHIVE[p + 8..p + 8 + elen];
        p += 8 + elen;
        (name, elf)
    })
}

pub fn find(name: &str) -> Option<&'static [u8]> {
    programs().find(|(n, _)| *n == name).map(|(_, elf)| elf)
}
