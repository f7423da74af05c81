//! Guest RAM in a shared file, as `make qemu` keeps it (`-object memory-backend-file,…,share=on`),
//! read by the test itself while the guest runs, without the gdbstub and without halting it:
//! the build stamp `leakscope_build_id` there holds the ELF's bytes, the tracker header is the
//! running kernel's (its magic, the boot nonce the console printed), reads that follow the
//! tracker's sequence lock (docs/tracker-abi.md, "Reading without halting") only ever see
//! consistent states while `allocbench` changes the tracker thousands of times, and the file is
//! gone once the harness has killed QEMU.
//!
//! Addresses: the ELF symbol's address is a kernel address; the ELF's load segments give its
//! physical address `pa`, and the file holds it at offset `pa - 0x8000_0000`.
//!
//! They boot `build/kernel.elf` (or `LEAKSCOPE_KERNEL_ELF`), so they are ignored by a plain
//! `cargo test`; run them with `make test` (or `make kernel` then
//! `cargo test -p inspector --test ram_file -- --include-ignored`).

mod common;

use common::qemu::{kernel_elf, test_ram_file, Qemu, RAM_BASE};
use inspector::dwarf::DebugInfo;
use inspector::snapshot::TrackerLayout;
use object::read::elf::{ElfFile64, ProgramHeader};
use object::{Object, ObjectSection, ObjectSymbol};
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::sync::atomic::{fence, Ordering};
use std::time::{Duration, Instant};

const T: Duration = Duration::from_secs(30);
/// `make qemu`'s guest RAM: 128 MiB.
const RAM_BYTES: u64 = 128 << 20;

/// The kernel ELF's load segments: (vaddr, paddr, memsz).
fn load_segments(data: &[u8]) -> Vec<(u64, u64, u64)> {
    let elf = ElfFile64::<object::Endianness>::parse(data).expect("kernel ELF is ELF64");
    let endian = elf.endian();
    elf.elf_program_headers()
        .iter()
        .filter(|ph| ph.p_type(endian) == object::elf::PT_LOAD)
        .map(|ph| (ph.p_vaddr(endian), ph.p_paddr(endian), ph.p_memsz(endian)))
        .collect()
}

/// Offset in the RAM file of the `len` bytes at kernel address `addr`.
fn file_offset(segments: &[(u64, u64, u64)], addr: u64, len: u64) -> u64 {
    let &(vaddr, paddr, _) = segments
        .iter()
        .find(|&&(v, _, size)| addr >= v && addr + len <= v + size)
        .unwrap_or_else(|| panic!("{addr:#x} is in no load segment: {segments:x?}"));
    let pa = paddr + (addr - vaddr);
    assert!(
        pa >= RAM_BASE && pa + len <= RAM_BASE + RAM_BYTES,
        "{pa:#x} is not in RAM"
    );
    pa - RAM_BASE
}

/// `leakscope_build_id`'s kernel address and the bytes the ELF file holds there.
fn elf_build_id(data: &[u8]) -> (u64, Vec<u8>) {
    let file = object::File::parse(data).expect("parse the kernel ELF");
    let sym = file
        .symbols()
        .find(|s| s.name() == Ok("leakscope_build_id"))
        .expect("the kernel ELF has no leakscope_build_id symbol");
    let section = file
        .section_by_index(sym.section_index().expect("build id in a section"))
        .unwrap();
    let bytes = section
        .data_range(sym.address(), sym.size())
        .unwrap()
        .unwrap_or_else(|| {
            panic!(
                "{} holds no bytes for the build id",
                section.name().unwrap()
            )
        });
    assert_eq!(bytes.len(), 16, "leakscope_build_id is [u8; 16]");
    (sym.address(), bytes.to_vec())
}

/// The boot nonce the kernel printed on its console (`boot nonce 0x…`).
fn console_nonce(console: &str) -> u64 {
    let hex = console
        .lines()
        .find_map(|l| l.trim().strip_prefix("boot nonce 0x"))
        .unwrap_or_else(|| panic!("no boot nonce line in:\n{console}"));
    u64::from_str_radix(hex.trim(), 16).unwrap()
}

fn read_u64(ram: &File, offset: u64) -> u64 {
    let mut b = [0u8; 8];
    ram.read_exact_at(&mut b, offset)
        .expect("read the RAM file");
    u64::from_le_bytes(b)
}

#[test]
#[ignore = "boots QEMU: run with make test"]
fn the_ram_file_holds_the_running_kernels_build_id_and_goes_with_qemu() {
    let data = std::fs::read(kernel_elf()).expect("read the kernel ELF");
    let segments = load_segments(&data);
    let (addr, want) = elf_build_id(&data);
    let offset = file_offset(&segments, addr, want.len() as u64);

    let path = test_ram_file("build-id");
    let mut q = Qemu::boot_with_ram(&path);
    let ram = File::open(&path).expect("QEMU created the RAM file");
    assert_eq!(ram.metadata().unwrap().len(), RAM_BYTES, "RAM file size");

    // Read while the guest runs (a program is executing, too): no stub, no halt.
    q.send_line("allocbench 3000");
    let mut got = vec![0u8; want.len()];
    ram.read_exact_at(&mut got, offset).unwrap();
    assert_eq!(
        got, want,
        "build id at file offset {offset:#x} (kernel address {addr:#x})"
    );
    q.expect("pairs in", T);
    q.expect("$ ", T);
    assert!(q.run("hello", T).contains("Hello from pid"));

    q.kill();
    assert!(
        !path.exists(),
        "{} still there after QEMU was killed",
        path.display()
    );
}

#[test]
#[ignore = "boots QEMU: run with make test"]
fn sequence_lock_reads_of_the_ram_file_are_consistent_while_the_tracker_changes() {
    let elf = kernel_elf();
    let data = std::fs::read(&elf).expect("read the kernel ELF");
    let segments = load_segments(&data);
    let layout = TrackerLayout::resolve(&DebugInfo::load(&elf).unwrap()).unwrap();
    let (header_addr, header) = layout.header.clone().expect("alloc_tracker in the ELF");
    let count = layout.count.clone().expect("alloc_table_count in the ELF");
    assert_eq!(count.size, 8, "alloc_table_count is a usize");
    let field = |name: &str| {
        let f = header
            .field(name)
            .unwrap_or_else(|| panic!("no {name} in {}", header.type_name));
        assert_eq!(f.size, 8, "{name} is a u64");
        f.offset as usize
    };
    let header_off = file_offset(&segments, header_addr, header.size);
    let count_off = file_offset(&segments, count.address, 8);
    let generation_off = header_off + field("generation") as u64;
    let get = |h: &[u8], name: &str| {
        let o = field(name);
        u64::from_le_bytes(h[o..o + 8].try_into().unwrap())
    };

    let path = test_ram_file("seqlock");
    let mut q = Qemu::boot_with_ram(&path);
    let ram = File::open(&path).expect("QEMU created the RAM file");
    let nonce = console_nonce(&q.output());

    // One sequence-lock read: generation, (acquire) copy of the header and the count,
    // (acquire) generation again. Some((header, count)) when the copy is consistent.
    let mut h = vec![0u8; header.size as usize];
    let sample = |h: &mut Vec<u8>| -> Option<u64> {
        let g1 = read_u64(&ram, generation_off);
        fence(Ordering::Acquire);
        if g1 % 2 == 1 {
            return None;
        }
        ram.read_exact_at(h, header_off).unwrap();
        let n = read_u64(&ram, count_off);
        fence(Ordering::Acquire);
        let g2 = read_u64(&ram, generation_off);
        (g2 == g1 && get(h, "generation") == g1).then_some(n)
    };

    let consistent_generation = |h: &mut Vec<u8>| loop {
        if sample(h).is_some() {
            break get(h, "generation");
        }
    };
    let first = consistent_generation(&mut h);
    assert_eq!(get(&h, "magic"), u64::from_le_bytes(*b"LEAKSCOP"), "magic");
    assert_eq!(get(&h, "boot_nonce"), nonce, "the console's boot nonce");
    assert_eq!(get(&h, "ram_base"), RAM_BASE);
    let pages = get(&h, "free_pages") + get(&h, "tracked_pages");

    // allocbench in the background: thousands of changes while we read.
    q.send_line("allocbench 5000 &");
    let (mut consistent, mut retried, mut moves, mut last_gen) = (0u64, 0u64, 0u64, first);
    let deadline = Instant::now() + Duration::from_secs(120);
    while !q.output().contains("allocbench: 5000 pairs in") {
        assert!(Instant::now() < deadline, "allocbench did not finish");
        for _ in 0..200 {
            let Some(n) = sample(&mut h) else {
                retried += 1;
                continue;
            };
            consistent += 1;
            let g = get(&h, "generation");
            assert!(g >= last_gen, "generation went back: {last_gen} → {g}");
            moves += u64::from(g != last_gen);
            last_gen = g;
            // Invariants of every consistent state (docs/tracker-abi.md): every page handed out
            // is tracked, and the count is what the counters say.
            assert_eq!(
                get(&h, "free_pages") + get(&h, "tracked_pages"),
                pages,
                "free + tracked pages at generation {g}"
            );
            assert_eq!(
                n,
                get(&h, "total_allocs") - get(&h, "total_frees") - get(&h, "reclaimed_allocs"),
                "alloc_table_count at generation {g}"
            );
            assert_eq!(get(&h, "boot_nonce"), nonce);
        }
    }
    let last = consistent_generation(&mut h);
    eprintln!(
        "{consistent} consistent reads ({moves} saw a new generation), {retried} retried; \
         generation {first} → {last}"
    );
    // allocbench's 10,000 changes moved the generation by 20,000 at least, and the reads saw
    // it move while the guest ran.
    assert!(last >= first + 2 * 10_000, "generation {first} → {last}");
    assert!(consistent > 100, "only {consistent} consistent reads");
    assert!(
        moves > 10,
        "the generation moved only {moves} times between reads"
    );
}
