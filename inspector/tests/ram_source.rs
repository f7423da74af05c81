//! `--ram FILE` without QEMU: a RAM file laid out from the Rust tracker fixture's sections (the
//! file's offset 0 at the lowest section address) read by the commands with no stub at all:
//! the same entries as through a stub, `source: ram` and no pause; a file of another build is
//! refused; the file vanishing under `watch` ends it with a clear line and status 1.

mod common;

use inspector::dwarf::DebugInfo;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_inspector");

struct Ram {
    _dir: tempfile::TempDir,
    elf: PathBuf,
    ram: PathBuf,
    base: u64,
    info: DebugInfo,
}

fn ram_image() -> Ram {
    let dir = tempfile::tempdir().unwrap();
    let elf = common::fixtures::rust_tracker_object(dir.path());
    let info = DebugInfo::load(&elf).unwrap();
    let sections: Vec<_> = info
        .elf()
        .sections()
        .iter()
        .filter(|s| s.size > 0)
        .collect();
    let base = sections.iter().map(|s| s.address).min().unwrap();
    let end = sections.iter().map(|s| s.address + s.size).max().unwrap();
    let mut bytes = vec![0u8; (end - base) as usize];
    for s in &sections {
        if let Some(d) = &s.data {
            let at = (s.address - base) as usize;
            bytes[at..at + d.len()].copy_from_slice(d);
        }
    }
    let ram = dir.path().join("guest.ram");
    std::fs::write(&ram, &bytes).unwrap();
    Ram {
        _dir: dir,
        elf,
        ram,
        base,
        info,
    }
}

fn inspector(r: &Ram, args: &[&str]) -> Command {
    let mut c = Command::new(BIN);
    c.args(args)
        .arg("--elf")
        .arg(&r.elf)
        .arg("--ram")
        .arg(&r.ram)
        .args(["--ram-base", &format!("{:#x}", r.base)]);
    c
}

fn poke(path: &Path, offset: u64, bytes: &[u8]) {
    use std::os::unix::fs::FileExt;
    let f = std::fs::OpenOptions::new().write(true).open(path).unwrap();
    f.write_all_at(bytes, offset).unwrap();
}

#[test]
fn snapshot_from_the_ram_file_needs_no_stub_and_no_pause() {
    let r = ram_image();
    // No stub anywhere: --gdb is not given, and nothing listens on the default port's behalf.
    let out = inspector(&r, &["snapshot", "--json"]).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        (v["source"].as_str(), v["pause_us"].as_u64()),
        (Some("ram"), Some(0))
    );
    assert_eq!(
        (v["count"].as_u64(), v["generation"].as_u64()),
        (Some(3), Some(42))
    );
    let rows: Vec<(u64, u64, u64, &str)> = v["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["slot"].as_u64().unwrap(),
                e["pa"].as_u64().unwrap(),
                e["owner"].as_u64().unwrap(),
                e["tag"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        rows,
        [
            (0, 0x8020_0000, 0, "kernel_heap"),
            (1, 0x8053_7000, 3, "alloc_pages"),
            (3, 0x8100_0000, 7, "user_stack")
        ],
        "the same entries a stub serves (tests/cli_fake_stub.rs)"
    );
}

#[test]
fn a_ram_file_of_another_build_is_refused() {
    let r = ram_image();
    let stamp = r.info.global("leakscope_build_id").unwrap().address;
    poke(&r.ram, stamp - r.base, b"another-build!!!");
    let out = inspector(&r, &["snapshot"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("holds another build") && err.contains("make qemu"),
        "{err}"
    );
    assert_eq!(err.trim().lines().count(), 1, "one line: {err}");
}

#[test]
fn a_missing_ram_file_or_wrong_base_says_what_to_do() {
    let r = ram_image();
    let out = Command::new(BIN)
        .args(["snapshot", "--elf"])
        .arg(&r.elf)
        .args(["--ram", "/nonexistent/leakscope.ram"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("cannot open the guest RAM file"), "{err}");
    // With the default base (QEMU virt's RAM at 0x80000000) the fixture's addresses are not
    // in the file: a clear error, no garbage.
    let out = Command::new(BIN)
        .args(["snapshot", "--elf"])
        .arg(&r.elf)
        .arg("--ram")
        .arg(&r.ram)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("not readable"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn watch_ends_clearly_when_the_ram_file_vanishes() {
    let r = ram_image();
    let child = inspector(&r, &["watch", "--interval", "20ms", "--duration", "20s"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(500));
    std::fs::remove_file(&r.ram).unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(1), "the kernel is gone: status 1");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("lost the kernel at the RAM file") && err.contains("gone"),
        "{err}"
    );
}
