//! Reading without halting: a writer thread changes the Rust tracker fixture's memory under the
//! generation protocol (odd → data → even, release stores) while the reader samples it with
//! `Sampler::sample_live` a million times (30,000 in debug builds; `cargo test --release` runs the million): no snapshot is
//! ever torn. A torn one would show an entry whose fields come from two different writes, or
//! totals that disagree with the entries.

mod common;

use inspector::dwarf::{DebugInfo, FieldLayout};
use inspector::snapshot::Sampler;
use inspector::target::{GuestMemory, TargetError};
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::Arc;

/// Guest memory shared between the writer (the "kernel") and the reader, one atomic per byte.
#[derive(Clone)]
struct Shared {
    regions: Arc<Vec<(u64, Vec<AtomicU8>)>>,
}

impl Shared {
    fn byte(&self, addr: u64) -> &AtomicU8 {
        self.regions
            .iter()
            .find(|(base, r)| addr >= *base && addr - base < r.len() as u64)
            .map(|(base, r)| &r[(addr - base) as usize])
            .unwrap_or_else(|| panic!("{addr:#x} is outside the fixture"))
    }

    /// The kernel's store: release, so a reader that sees it sees what came before.
    fn store(&self, addr: u64, f: &FieldLayout, value: u64) {
        self.store_at(addr + f.offset, f.size as usize, value);
    }

    fn store_at(&self, addr: u64, size: usize, value: u64) {
        for (i, b) in value.to_le_bytes()[..size].iter().enumerate() {
            self.byte(addr + i as u64).store(*b, Ordering::Release);
        }
    }
}

impl GuestMemory for Shared {
    fn read_guest(&mut self, addr: u64, buf: &mut [u8]) -> Result<(), TargetError> {
        for (i, b) in buf.iter_mut().enumerate() {
            *b = self.byte(addr + i as u64).load(Ordering::Acquire);
        }
        Ok(())
    }
}

/// Slots the writer keeps rewriting; each entry is (pa, npages, owner) = (BASE + k·4 KiB, k, k).
const SLOTS: u64 = 8;
const BASE: u64 = 0x9000_0000;

#[test]
fn a_million_live_reads_of_a_changing_table_are_never_torn() {
    let dir = tempfile::tempdir().unwrap();
    let info =
        Arc::new(DebugInfo::load(common::fixtures::rust_tracker_object(dir.path())).unwrap());
    let regions = info
        .elf()
        .sections()
        .iter()
        .filter(|s| s.size > 0)
        .map(|s| {
            let bytes = s
                .data
                .as_ref()
                .map_or_else(|| vec![0; s.size as usize], |d| d.to_vec());
            (s.address, bytes.into_iter().map(AtomicU8::new).collect())
        })
        .collect();
    let mem = Shared {
        regions: Arc::new(regions),
    };
    let mut sampler = Sampler::new(info.clone()).unwrap();
    let layout = sampler.layout().clone();
    let (hdr_addr, hdr) = layout.header.clone().unwrap();
    let field = |name: &str| hdr.require(name).unwrap().clone();
    let (generation, high_water, tracked) = (
        field("generation"),
        field("high_water"),
        field("tracked_pages"),
    );
    let count = layout.count.clone().unwrap();
    let table = layout.table.clone();
    let rec = |name: &str| table.record.require(name).unwrap().clone();
    let (used, pa, npages, owner) = (rec("used"), rec("pa"), rec("npages"), rec("owner"));
    let slot = move |s: u64| table.array.element_address(table.address, s);

    // A clean start: the writer's pattern in slots 0..SLOTS, nothing else, generation even.
    let mut gen = 100u64;
    mem.store(hdr_addr, &generation, gen);
    let mut sizes = [0u64; SLOTS as usize];
    for s in 0..SLOTS {
        sizes[s as usize] = s + 1;
        for (f, v) in [
            (&used, 1),
            (&pa, BASE + (s + 1) * 4096),
            (&npages, s + 1),
            (&owner, s + 1),
        ] {
            mem.store(slot(s), f, v);
        }
    }
    let used_end = layout.table.array.len.min(16);
    for s in SLOTS..used_end {
        mem.store(slot(s), &used, 0);
    }
    mem.store(hdr_addr, &high_water, SLOTS);
    mem.store(hdr_addr, &tracked, sizes.iter().sum());
    mem.store_at(count.address, count.size, SLOTS);

    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (mem, stop) = (mem.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut i = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let s = i % SLOTS;
                let k = 1 + (i * 7 + 3) % 13;
                gen += 1; // odd: inside a change
                mem.store(hdr_addr, &generation, gen);
                // Field by field, with time for a reader to see a half-written entry.
                mem.store(slot(s), &pa, BASE + k * 4096);
                std::hint::spin_loop();
                mem.store(slot(s), &npages, k);
                std::hint::spin_loop();
                mem.store(slot(s), &owner, k);
                sizes[s as usize] = k;
                mem.store(hdr_addr, &tracked, sizes.iter().sum());
                gen += 1; // even: complete
                mem.store(hdr_addr, &generation, gen);
                i += 1;
                // Bursts of back-to-back changes, then a quiet moment, as a kernel has: how
                // many reads land in a quiet moment depends on the machine's load, so the
                // reader below counts consistent reads rather than timing anything.
                if i.is_multiple_of(256) {
                    std::thread::sleep(std::time::Duration::from_micros(50));
                }
            }
            i
        })
    };

    let reads = if cfg!(debug_assertions) {
        30_000
    } else {
        1_000_000
    };
    // Read until `reads` reads are done and a tenth of them were consistent (each one checked
    // below), however busy the machine; the cap only stops a reader that never gets one.
    let wanted_consistent = reads / 10;
    let cap = reads * 20;
    let mut reader = mem.clone();
    let (mut done, mut stale) = (0u64, 0u64);
    while done < cap && (done < reads || done - stale < wanted_consistent) {
        let n = done;
        done += 1;
        // Before the first consistent read there is no earlier state to fall back on: a
        // tracker that keeps changing past the bound is an error then, and only then.
        let snap = match sampler.sample_live(&mut reader) {
            Err(inspector::snapshot::SnapshotError::Torn) if done - stale == 1 => {
                stale += 1;
                continue;
            }
            other => other.unwrap(),
        };
        if snap.mid_change {
            stale += 1;
            continue;
        }
        assert_eq!(snap.entries.len() as u64, SLOTS, "read {n}: {snap:?}");
        assert_eq!(snap.header.count, SLOTS, "read {n}");
        for e in snap.entries.iter() {
            assert!(
                e.npages == e.owner as u64 && e.pa == BASE + e.npages * 4096,
                "read {n}: torn entry {e:?}"
            );
        }
        let pages: u64 = snap.entries.iter().map(|e| e.npages).sum();
        assert_eq!(pages, snap.header.tracked_pages, "read {n}: totals torn");
        assert_eq!(snap.pause_us, 0, "a live read never pauses the guest");
    }
    stop.store(true, Ordering::Relaxed);
    let writes = writer.join().unwrap();
    eprintln!("{done} live reads ({stale} stale) against {writes} changes, none torn");
    assert!(
        writes > 1000,
        "the writer must really have raced the reader"
    );
    assert!(
        done - stale >= wanted_consistent,
        "only {} of {done} reads found a consistent state",
        done - stale
    );
}
