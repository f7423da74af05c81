//! What a reader of the tracker can rely on in the real kernel, in QEMU: the generation is
//! even (a snapshot succeeds) while the exit report prints thousands of reclaimed entries;
//! `boot_nonce` is set, stays put during a boot and differs between boots; `InvalidFree`
//! events name the process that asked, also for its own kernel-side pages.
//!
//! Each test boots its own QEMU (killed by pid on drop) with timeouts; ignored by a plain
//! `cargo test`, run by `make test`.

mod common;

use common::qemu::{kernel_elf, Qemu};
use inspector::model::EventKind;
use inspector::snapshot::{Sampler, TrackerLayout};
use inspector::target::{HaltGuard, RspTarget, RspTargetOptions, Target};
use std::time::{Duration, Instant};

const T: Duration = Duration::from_secs(30);

fn connect(q: &Qemu) -> RspTarget {
    let gdb = format!("127.0.0.1:{}", q.gdb_port());
    RspTarget::connect(&gdb, RspTargetOptions::default()).unwrap()
}

fn sampler() -> Sampler {
    Sampler::new(inspector::source::load_elf(&kernel_elf()).unwrap()).unwrap()
}

/// The number after `key=` in `text`'s first line containing it.
fn num_after(text: &str, key: &str) -> u64 {
    let rest = text
        .split(key)
        .nth(1)
        .unwrap_or_else(|| panic!("no {key} in:\n{text}"));
    rest.chars()
        .take_while(|c| c.is_ascii_digit())
        .collect::<String>()
        .parse()
        .unwrap()
}

#[test]
#[ignore = "boots QEMU: run with make test"]
fn snapshots_succeed_while_the_exit_report_prints_thousands_of_entries() {
    let mut q = Qemu::boot();
    q.run("debug on", T);
    let mut target = connect(&q);
    let mut sampler = sampler();
    let start = sampler.sample(&mut target).unwrap().header.reclaimed_allocs;
    // fill takes about 8000 single pages and exits: the sweep prints a line for each.
    q.send_line("fill");
    let line = q.expect("then ETABLEFULL", Duration::from_secs(60));
    let pid = num_after(&line, "fill: pid=");
    q.expect(" freeing leak: ", Duration::from_secs(60));
    let end_marker = format!("==== END of list - ALLOCS for pid={pid} ====");
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut during = Vec::new();
    while !q.output().contains(&end_marker) {
        assert!(Instant::now() < deadline, "the sweep did not finish");
        match sampler.sample(&mut target) {
            Ok(s) => {
                assert_eq!(s.header.generation % 2, 0);
                during.push(s.header.reclaimed_allocs - start);
            }
            Err(e) => panic!(
                "a snapshot gave up during the exit report (after {} good ones): {e}",
                during.len()
            ),
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    q.expect("$ ", T);
    let total = sampler.sample(&mut target).unwrap().header.reclaimed_allocs - start;
    target.detach().unwrap();
    assert!(total > 8000, "reclaimed {total}");
    // Snapshots taken in the middle of the sweep, not only before or after it.
    let mid = during.iter().filter(|&&n| n > 0 && n < total).count();
    eprintln!(
        "{} snapshots during the sweep, {mid} inside it",
        during.len()
    );
    assert!(
        mid >= 3,
        "only {mid} snapshots fell inside the sweep: {during:?}"
    );
}

/// `alloc_tracker.boot_nonce` of the kernel running in `q`, read by field name through DWARF.
fn boot_nonce(q: &Qemu) -> u64 {
    let debug = inspector::source::load_elf(&kernel_elf()).unwrap();
    let layout = TrackerLayout::resolve(&debug).unwrap();
    let (addr, header) = layout
        .header
        .clone()
        .expect("the kernel exports alloc_tracker");
    let field = header
        .field("boot_nonce")
        .expect("alloc_tracker has a boot_nonce field")
        .clone();
    let mut target = connect(q);
    let mut buf = vec![0u8; header.size as usize];
    let mut halted = HaltGuard::new(&mut target).unwrap();
    halted.read_memory(addr, &mut buf).unwrap();
    halted.resume().unwrap();
    target.detach().unwrap();
    field.read_u64(&buf).unwrap()
}

#[test]
#[ignore = "boots QEMU: run with make test"]
fn the_boot_nonce_is_stable_during_a_boot_and_differs_between_boots() {
    let mut first = Qemu::boot();
    let a = boot_nonce(&first);
    assert_ne!(a, 0);
    let banner = first.output();
    assert!(
        banner.contains(&format!("boot nonce {a:#018x}")),
        "the banner shows another nonce than the header ({a:#018x}):\n{banner}"
    );
    first.run("leak 5", T);
    assert_eq!(boot_nonce(&first), a, "the nonce changed during a boot");
    drop(first);

    let second = Qemu::boot();
    let b = boot_nonce(&second);
    assert_ne!(b, 0);
    assert_ne!(a, b, "two boots of the same kernel have the same nonce");
}

#[test]
#[ignore = "boots QEMU: run with make test"]
fn invalid_free_events_name_the_process_that_asked() {
    let mut q = Qemu::boot();
    // Frees of its own page-table pages (kernel-side pages it owns but never mapped).
    let out = q.run("badfree tables", T);
    let pid = num_after(&out, "badfree: pid=") as u32;
    assert_eq!(
        out.matches("of a page-table page -> ENOTOWNER").count(),
        2,
        "{out}"
    );
    assert!(
        out.contains(&format!(
            "[tracker] invalid free by pid {pid} (one of its kernel-side pages): "
        )),
        "{out}"
    );
    // Another process's pages, a wrong size, a double free: the asking pid each time.
    let out = q.run("badfree", T);
    assert!(out.contains("badfree: ok"), "{out}");

    let mut target = connect(&q);
    let snap = sampler().sample(&mut target).unwrap();
    target.detach().unwrap();
    let invalid: Vec<_> = snap
        .events
        .iter()
        .filter(|e| e.kind == EventKind::InvalidFree)
        .collect();
    assert!(invalid.len() >= 6, "{invalid:?}");
    let tables: Vec<_> = invalid.iter().filter(|e| &*e.tag == "not_owner").collect();
    assert!(
        tables.iter().any(|e| e.owner == pid),
        "no not_owner event names pid {pid}: {invalid:?}"
    );
    for e in &invalid {
        assert_ne!(
            e.owner,
            u32::MAX,
            "an InvalidFree event names NO_PID: {e:?}"
        );
        assert_ne!(
            e.owner, 0,
            "a process's invalid free names the kernel: {e:?}"
        );
    }
}
