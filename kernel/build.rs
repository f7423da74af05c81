//! Kernel build script: linker script (riscv64 only), a per-build id stamp, and the archive of
//! user programs embedded in the kernel image.
//!
//! The archive is read from the directory in `LEAKSCOPE_USER_DIR` (the Makefile points it at the
//! user crate's release output). Without it the kernel embeds an empty archive and says so.
//! Archive format (little-endian): b"LSAR", u32 count, then per program: u32 name length, name
//! bytes, u64 ELF length, ELF bytes.
//!
//! The user programs are built with line tables (the inspector symbolises their `alloc_pages`
//! sites from the files in `LEAKSCOPE_USER_DIR`); the archive keeps only what the kernel loads
//! of each (`loadable_only`): the headers and the PT_LOAD contents, no sections, no DWARF.

use std::env;
use std::fs;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::path::PathBuf;
use std::time::{SystemTime, UNIX_EPOCH};

fn main() {
    let manifest = PathBuf::from(env::var("CARGO_MANIFEST_DIR").unwrap());
    let out = PathBuf::from(env::var("OUT_DIR").unwrap());
    let target = env::var("TARGET").unwrap_or_default();

    if target.starts_with("riscv64") {
        println!(
            "cargo:rustc-link-arg-bins=-T{}",
            manifest.join("linker.ld").display()
        );
        println!("cargo:rustc-link-arg-bins=--no-relax");
    }
    println!("cargo:rerun-if-changed=linker.ld");
    println!("cargo:rerun-if-changed=build.rs");
    // Rerun on any kernel source change so every kernel build gets a fresh build id.
    println!("cargo:rerun-if-changed=src");
    println!("cargo:rerun-if-env-changed=LEAKSCOPE_USER_DIR");

    write_build_id(&out);
    write_archive(&manifest, &out);
}

fn write_build_id(out: &std::path::Path) {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
    let mut id = [0u8; 16];
    for (i, chunk) in id.chunks_mut(8).enumerate() {
        let mut h = DefaultHasher::new();
        (now.as_nanos(), i, std::process::id(), out).hash(&mut h);
        chunk.copy_from_slice(&h.finish().to_le_bytes());
    }
    fs::write(
        out.join("build_id.rs"),
        format!("pub const BUILD_ID: [u8; 16] = {id:?};\n"),
    )
    .unwrap();
}

fn write_archive(manifest: &std::path::Path, out: &std::path::Path) {
    let bin_dir = manifest.join("user/src/bin");
    println!("cargo:rerun-if-changed={}", bin_dir.display());
    let mut names: Vec<String> = fs::read_dir(&bin_dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .filter_map(|e| {
                    e.file_name()
                        .to_str()?
                        .strip_suffix(".rs")
                        .map(str::to_owned)
                })
                .collect()
        })
        .unwrap_or_default();
    names.sort();

    let mut ar = Vec::new();
    ar.extend_from_slice(b"LSAR");
    let user_dir = env::var_os("LEAKSCOPE_USER_DIR").map(PathBuf::from);
    let mut programs: Vec<(String, Vec<u8>)> = Vec::new();
    match &user_dir {
        Some(dir) => {
            for name in &names {
                let path = dir.join(name);
                println!("cargo:rerun-if-changed={}", path.display());
                match fs::read(&path) {
                    Ok(elf) if elf.starts_with(b"\x7fELF") => {
                        let elf = loadable_only(&elf).unwrap_or_else(|| {
                            println!("cargo:warning=user program {name}: not a 64-bit little-endian ELF this script can trim; embedded whole");
                            elf
                        });
                        programs.push((name.clone(), elf))
                    }
                    _ => println!("cargo:warning=user program {name} not found in {}", dir.display()),
                }
            }
        }
        None => println!("cargo:warning=LEAKSCOPE_USER_DIR not set: embedding no user programs (use `make kernel`)"),
    }
    ar.extend_from_slice(&(programs.len() as u32).to_le_bytes());
    for (name, elf) in &programs {
        ar.extend_from_slice(&(name.len() as u32).to_le_bytes());
        ar.extend_from_slice(name.as_bytes());
        ar.extend_from_slice(&(elf.len() as u64).to_le_bytes());
        ar.extend_from_slice(elf);
    }
    fs::write(out.join("user_programs.lsar"), ar).unwrap();
}

/// The bytes of a 64-bit little-endian ELF that the kernel's loader reads
/// (`kcore::archive::loadable_len`: the headers and the PT_LOAD contents) with the section
/// header fields cleared (`clear_section_headers`). `None` if it is not such an ELF or a header
/// points outside the file. The inspector checks the program ELFs it names user sites from
/// against these bytes (`kcore::archive::same_program`).
fn loadable_only(elf: &[u8]) -> Option<Vec<u8>> {
    let mut out = elf[..kcore::archive::loadable_len(elf)?].to_vec();
    kcore::archive::clear_section_headers(&mut out);
    Some(out)
}
