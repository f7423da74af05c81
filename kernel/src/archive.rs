//! The archive of user programs embedded in the kernel image by build.rs (format and parsing:
//! `kcore::archive`): lookup by name and listing. Read-only.

use kcore::archive::Archive;

static ARCHIVE: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/user_programs.lsar"));

/// The embedded archive. Panics if it is malformed: build.rs wrote it, so that is a build bug.
fn archive() -> Archive<'static> {
    Archive::parse(ARCHIVE)
        .unwrap_or_else(|e| panic!("archive: the embedded program archive is malformed: {e:?}"))
}

/// Every (name, ELF image) in the archive, in name order.
pub fn programs() -> impl Iterator<Item = (&'static str, &'static [u8])> {
    archive().programs()
}

/// The program called `name`: its name as the archive holds it (a `&'static str` the tracker
/// may keep, see `proc::current_program`) and its ELF image.
pub fn find(name: &str) -> Option<(&'static str, &'static [u8])> {
    programs().find(|(n, _)| *n == name)
}
