//! The stale user-program check against the real build: `build/kernel.elf` (or
//! `$LEAKSCOPE_KERNEL_ELF`) exports its program archive as `leakscope_user_archive`, and a
//! program ELF in the user directory names user sites only if its loadable bytes are the
//! archive's copy. The `leak` ELF `make kernel` packed names a line; the same file with one
//! byte of code changed is refused with a message; a change outside the loadable bytes (debug
//! info) is not a mismatch.
//!
//! Ignored by default because the kernel and user programs must be built first; `make test`
//! runs it: `cargo test -p inspector --test sites_stale -- --ignored`.

mod common;

use common::qemu::kernel_elf;
use inspector::dwarf::DebugInfo;
use inspector::sites::{SiteNames, ARCHIVE_SYMBOL, USER_TARGET_DIR};
use std::path::{Path, PathBuf};
use std::sync::Arc;

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// (e_entry, the file offset of the first executable PT_LOAD's contents) of an ELF64.
fn entry_and_code_offset(elf: &[u8]) -> (u64, usize) {
    let u16_at = |o: usize| u16::from_le_bytes(elf[o..o + 2].try_into().unwrap());
    let u32_at = |o: usize| u32::from_le_bytes(elf[o..o + 4].try_into().unwrap());
    let u64_at = |o: usize| u64::from_le_bytes(elf[o..o + 8].try_into().unwrap());
    let (phoff, phentsize, phnum) = (u64_at(0x20) as usize, u16_at(0x36), u16_at(0x38));
    let code = (0..phnum as usize)
        .map(|i| phoff + i * phentsize as usize)
        .find(|&ph| u32_at(ph) == 1 && u32_at(ph + 4) & 1 != 0)
        .map(|ph| u64_at(ph + 8) as usize)
        .expect("an executable PT_LOAD");
    (u64_at(0x18), code)
}

/// The user site at `pc` of `leak`, named with `elf`'s bytes as the user directory's `leak`.
fn name_with(kernel: &Arc<DebugInfo>, elf: &[u8], pc: u64) -> inspector::model::Site {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("leak"), elf).unwrap();
    let mut names = SiteNames::new(kernel.clone()).with_user_dir(dir.path());
    let (_, user) = names.resolve((0, pc, 1, 4), "leak");
    user.expect("a user site").as_ref().clone()
}

#[test]
#[ignore = "needs make kernel"]
fn a_user_elf_that_is_not_the_kernels_program_names_no_lines() {
    let kernel = Arc::new(DebugInfo::load(kernel_elf()).unwrap());
    assert!(
        kernel.elf().find_symbol(ARCHIVE_SYMBOL).is_some(),
        "the kernel exports {ARCHIVE_SYMBOL}"
    );
    let built = std::fs::read(workspace().join(USER_TARGET_DIR).join("leak")).unwrap();
    let (entry, code) = entry_and_code_offset(&built);

    // The packed program: a line of the program (or its runtime), not a stale mark.
    let named = name_with(&kernel, &built, entry);
    assert!(named.line > 0, "{named}");
    assert!(!named.function.contains("stale"), "{named}");

    // One byte of its code changed: refused, with what to do.
    let mut changed = built.clone();
    changed[code] ^= 0xff;
    let stale = name_with(&kernel, &changed, entry);
    assert_eq!(stale.line, 0, "{stale}");
    assert_eq!(stale.file, "leak");
    assert!(
        stale.function.contains("stale ELF") && stale.function.contains("make kernel"),
        "{stale}"
    );

    // The last byte of the file (section headers, past the loadable bytes) changed: still the
    // kernel's program.
    let mut tail = built.clone();
    *tail.last_mut().unwrap() ^= 0xff;
    assert!(name_with(&kernel, &tail, entry).line > 0);
}
