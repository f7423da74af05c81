//! The archive of user programs embedded in the kernel image by build.rs (format and parsing:
//! `kcore::archive`): lookup by name and listing. Read-only.

use kcore::archive::Archive;

/// The archive under a fixed symbol: the inspector reads it from the kernel ELF file (never
/// from guest memory) to check that the program ELFs it names user sites from are the ones
/// packed here (docs/tracker-abi.md).
#[no_mangle]
#[used]
pub static leakscope_user_archive: [u8; include_bytes!(concat!(
    env!("OUT_DIR"),
    "/user_programs.lsar"
))
.len()] = *include_bytes!(concat!(env!("OUT_DIR"), "/user_programs.lsar"));

static ARCHIVE: &[u8] = &leakscope_user_archive;

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
