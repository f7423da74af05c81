//! Builds the Rust tracker fixture (`tests/fixtures/rust_tracker.rs`: the kernel's ABI types in
//! statics, compiled by rustc for riscv64) and the chapter's C tracker fixture
//! (`tests/fixtures/chapter_tracker.c`, gcc for the host) for tests that need real DWARF
//! without QEMU.

use std::path::{Path, PathBuf};
use std::process::Command;

/// Compiles the fixture into `dir` and returns the object's path. Panics with the compiler's
/// message if rustc fails (the riscv64 target is installed by scripts/setup.sh).
pub fn rust_tracker_object(dir: &Path) -> PathBuf {
    rustc_fixture(dir, "rust_tracker.o", &[])
}

/// The same fixture with the tracker ABI from before call sites (no `site`, `user_site`,
/// `user_program` fields: `tests/fixtures/abi_without_sites.rs`).
pub fn rust_tracker_object_without_sites(dir: &Path) -> PathBuf {
    rustc_fixture(
        dir,
        "rust_tracker_without_sites.o",
        &["--cfg", "without_sites"],
    )
}

fn rustc_fixture(dir: &Path, out: &str, extra: &[&str]) -> PathBuf {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/rust_tracker.rs");
    let obj = dir.join(out);
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let out = Command::new(rustc)
        .args([
            "--edition",
            "2021",
            "--crate-type=lib",
            "--emit=obj",
            "-g",
            "-O",
        ])
        .args(["--target", "riscv64gc-unknown-none-elf"])
        .args(extra)
        .arg(&src)
        .arg("-o")
        .arg(&obj)
        .output()
        .expect("running rustc");
    assert!(
        out.status.success(),
        "rustc could not build {} (rustup target add riscv64gc-unknown-none-elf):\n{}",
        src.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    obj
}

/// Compiles `tests/fixtures/chapter_tracker.c` (the chapter's table, `alloc_table_count`, a
/// `proc_table` and a `track_alloc`; no header, no ring) with `gcc -g -O0 -c` into `dir`.
/// Panics with gcc's message if it fails (scripts/setup.sh installs gcc).
pub fn chapter_tracker_object(dir: &Path) -> PathBuf {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/chapter_tracker.c");
    let obj = dir.join("chapter_tracker.o");
    let out = Command::new("gcc")
        .args(["-g", "-O0", "-c"])
        .arg(&src)
        .arg("-o")
        .arg(&obj)
        .output()
        .expect("running gcc (make setup installs it)");
    assert!(
        out.status.success(),
        "gcc could not build {}:\n{}",
        src.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    obj
}

/// The fixture's memory as (address, bytes) regions, one per section with a size (zeros for
/// sections without data): what a fake stub or an in-memory target serves.
pub fn memory_regions(info: &inspector::dwarf::DebugInfo) -> Vec<(u64, Vec<u8>)> {
    info.elf()
        .sections()
        .iter()
        .filter(|s| s.size > 0)
        .map(|s| {
            (
                s.address,
                s.data
                    .as_ref()
                    .map_or_else(|| vec![0; s.size as usize], |d| d.to_vec()),
            )
        })
        .collect()
}
