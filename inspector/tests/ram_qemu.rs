//! The inspector's RAM-file reads against the real kernel in QEMU (booted with its RAM in a
//! shared file, as `make qemu` does): under one halt, the RAM file and the stub give the same
//! tracker, again and again while `churn` changes it; `snapshot --ram` (no stub involved)
//! agrees entry for entry with the kernel's own `allocs` dump; a guest reset on the same file is
//! seen as a reboot and read afresh. Each test boots its own QEMU (killed by pid on drop).

mod common;

use common::cli::{allocs_rows, entry_rows, BIN};
use common::qemu::{kernel_elf, test_ram_file, Qemu};
use inspector::dwarf::load_segments;
use inspector::snapshot::Sampler;
use inspector::source::{load_elf, RamSource, Session, Source, DEFAULT_RAM_BASE};
use inspector::target::{HaltGuard, RamFile};
use serde_json::Value;
use std::process::Command;
use std::time::{Duration, Instant};

const T: Duration = Duration::from_secs(30);

#[test]
#[ignore = "boots QEMU: run with make test"]
fn ram_and_stub_agree_under_one_halt_while_churn_runs() {
    let ram_path = test_ram_file("agree");
    let mut q = Qemu::boot_with_ram(&ram_path);
    let debug = load_elf(&kernel_elf()).unwrap();
    let mut session =
        Session::connect_with(debug.clone(), &format!("127.0.0.1:{}", q.gdb_port())).unwrap();
    let mut ram = RamFile::open(
        &ram_path,
        DEFAULT_RAM_BASE,
        load_segments(&kernel_elf()).unwrap(),
    )
    .unwrap();
    let mut from_ram = Sampler::new(debug.clone()).unwrap();
    let mut from_stub = Sampler::new(debug.clone()).unwrap();
    from_ram.check_build_id_live(&mut ram).unwrap();

    // Far longer than the comparisons take (it ends with the QEMU): the table keeps changing.
    q.send_line("churn 1000000 &");
    let (mut compared, mut changed) = (0, 0);
    let mut last_generation = 0;
    let deadline = Instant::now() + T;
    while compared < 40 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
        let mut guard = HaltGuard::new(session.target()).unwrap();
        // Both read the same halted guest: the stub through gdb, the file directly.
        from_stub.reset(); // read the whole table every time
        let stub = from_stub.sample(&mut *guard);
        let Ok(stub) = stub else { continue };
        if stub.mid_change {
            continue; // halted inside the tracker: nothing consistent to compare
        }
        let live = from_ram.sample_live(&mut ram).unwrap();
        drop(guard);
        assert_eq!(
            (live.header.generation, live.header.count),
            (stub.header.generation, stub.header.count)
        );
        assert_eq!(live.entries, stub.entries, "RAM and stub disagree");
        assert_eq!(live.procs, stub.procs);
        changed += usize::from(stub.header.generation != last_generation);
        last_generation = stub.header.generation;
        compared += 1;
    }
    assert!(compared >= 40, "only {compared} comparisons within {T:?}");
    assert!(
        changed > 10,
        "churn must change the table between comparisons"
    );
    session.detach().unwrap();
}

#[test]
#[ignore = "boots QEMU: run with make test"]
fn snapshot_from_ram_equals_the_kernels_allocs_dump_and_a_reset_is_a_reboot() {
    let ram_path = test_ram_file("dump");
    let mut q = Qemu::boot_with_ram(&ram_path);
    q.send_line("leak 9 60 &");
    q.expect("allocated 9 pages", T);
    let out = Command::new(BIN)
        .args(["snapshot", "--json", "--elf"])
        .arg(kernel_elf())
        .arg("--ram")
        .arg(&ram_path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let snap: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        (snap["source"].as_str(), snap["pause_us"].as_u64()),
        (Some("ram"), Some(0))
    );
    let dump = q.run("allocs", T);
    let dumped = allocs_rows(&dump);
    assert_eq!(
        entry_rows(&snap),
        dumped,
        "snapshot --ram and allocs disagree"
    );

    // A reset of the guest on the same file: the next reads see a new boot (its nonce).
    let mut source = RamSource::open(&kernel_elf(), &ram_path, None).unwrap();
    let before = source.sample().unwrap();
    assert!(!before.rebooted);
    let mut session =
        Session::connect(&kernel_elf(), &format!("127.0.0.1:{}", q.gdb_port())).unwrap();
    {
        let mut halted = HaltGuard::new(session.target()).unwrap();
        halted.monitor("system_reset").unwrap();
    }
    session.detach().unwrap();
    q.expect("Leakscope shell", T);
    let deadline = Instant::now() + T;
    let after = loop {
        let got = source.sample();
        if let Ok(s) = &got {
            if s.rebooted || s.header.boot_nonce != before.header.boot_nonce {
                break got.unwrap();
            }
        }
        assert!(
            Instant::now() < deadline,
            "the reboot was never seen: {:?} (nonce before {:#x})",
            got.map(|s| (s.header.boot_nonce, s.header.generation)),
            before.header.boot_nonce
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_ne!(after.header.boot_nonce, before.header.boot_nonce);
    assert!(
        !after
            .entries
            .iter()
            .any(|e| e.owner >= 2 && &*e.tag == "alloc_pages"),
        "the old boot's leaker is gone: {:?}",
        after.entries
    );
}
