//! `DemoSource`: a deterministic simulated kernel for demos (`inspector tui --demo`) and tests.
//!
//! Each `sample()` advances simulated time by half a second: processes appear, allocate and
//! free pages, exit; what an exiting process still owns is force-freed with `ExitReclaim`
//! events (processes named `leak`, and some others, always leave pages behind). The same seed
//! gives the same sequence of snapshots. Optional simulated outages exercise reconnection.

use super::{Capabilities, Origin, Source};
use crate::model::{Entry, Event, EventKind, Header, ProcState, Process, ReadPath, Snapshot};
use crate::riscv::PAGE_SIZE;
use anyhow::bail;

const RAM_BASE: u64 = 0x8000_0000;
const RAM_PAGES: u64 = 32768; // 128 MiB
/// Pages at the start of RAM used by the kernel image and boot structures (never tracked).
const KERNEL_IMAGE_PAGES: u64 = 1024;
const CAPACITY: usize = 8192;
const EVENT_RING_LEN: usize = 1024;
/// The simulated timer's frequency (QEMU virt's), exported in the header like a kernel does.
const TIMEBASE_HZ: u64 = 10_000_000;
/// Timer ticks per sample (0.5 s).
const TICKS_PER_SAMPLE: u64 = TIMEBASE_HZ / 2;
const MAX_PROCS: usize = 8;
const NAMES: [&str; 6] = ["hello", "leak", "cat", "stress", "wc", "leak"];

#[derive(Clone, Debug)]
struct FakeProc {
    pid: u32,
    name: String,
    /// Samples left until exit; `None` for the shell (never exits).
    ttl: Option<u32>,
    /// Leaves allocations behind at exit.
    leaky: bool,
}

/// A simulated kernel. See the module doc.
#[derive(Clone, Debug)]
pub struct DemoSource {
    rng: u64,
    time: u64,
    /// Page bitmap: true = allocated (tracked or kernel image).
    used: Vec<bool>,
    /// Next-fit search start.
    hint: usize,
    slots: Vec<Option<Entry>>,
    header: Header,
    procs: Vec<FakeProc>,
    next_pid: u32,
    pending: Vec<Event>,
    missed: u64,
    samples: u64,
    /// `(every, attempts)`: every `every`-th sample fails, and reconnecting succeeds only at
    /// the `attempts`-th try.
    outage: Option<(u64, u32)>,
    down: bool,
    failed_reconnects: u32,
    detached: bool,
}

impl DemoSource {
    /// A fresh simulated kernel with the default seed (see `with_seed`).
    pub fn new() -> DemoSource {
        DemoSource::with_seed(1)
    }

    /// A fresh simulated kernel: shell (pid 1) running, a few kernel allocations. The same
    /// seed gives the same snapshots.
    pub fn with_seed(seed: u64) -> DemoSource {
        let mut used = vec![false; RAM_PAGES as usize];
        used[..KERNEL_IMAGE_PAGES as usize].fill(true);
        let mut f = DemoSource {
            rng: seed ^ 0x9e37_79b9_7f4a_7c15,
            time: 0,
            used,
            hint: KERNEL_IMAGE_PAGES as usize,
            slots: vec![None; CAPACITY],
            header: Header {
                capacity: CAPACITY as u64,
                ram_base: RAM_BASE,
                ram_pages: RAM_PAGES,
                timebase_hz: TIMEBASE_HZ,
                alloc_base: RAM_BASE + KERNEL_IMAGE_PAGES * PAGE_SIZE,
                ..Header::default()
            },
            procs: vec![FakeProc {
                pid: 1,
                name: "shell".into(),
                ttl: None,
                leaky: false,
            }],
            next_pid: 2,
            pending: Vec::new(),
            missed: 0,
            samples: 0,
            outage: None,
            down: false,
            failed_reconnects: 0,
            detached: false,
        };
        f.alloc(0, 16, "kernel_heap");
        f.alloc(0, 4, "kstack");
        f.alloc(1, 1, "page_table");
        f.alloc(1, 2, "user_stack");
        f.alloc(1, 4, "heap");
        f
    }

    /// Makes every `every`-th sample fail as if the connection dropped; reconnecting then
    /// fails `attempts - 1` times before it succeeds.
    pub fn with_outages(mut self, every: u64, attempts: u32) -> DemoSource {
        self.outage = Some((every.max(1), attempts.max(1)));
        self
    }

    /// Whether `detach` was called.
    pub fn detached(&self) -> bool {
        self.detached
    }

    fn rand(&mut self, n: u64) -> u64 {
        // xorshift64*: deterministic, good enough for a simulation.
        self.rng ^= self.rng >> 12;
        self.rng ^= self.rng << 25;
        self.rng ^= self.rng >> 27;
        self.rng.wrapping_mul(0x2545_f491_4f6c_dd1d) % n.max(1)
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.rand(100) < percent
    }

    /// Records one tracker change (generation stays even between changes).
    fn event(&mut self, kind: EventKind, owner: u32, pa: u64, npages: u64, tag: &str) {
        self.header.generation += 2;
        self.time += 1 + self.rand(1000);
        self.pending.push(Event {
            seq: self.header.event_head,
            kind,
            owner,
            slot: None,
            pa,
            npages,
            tag: tag.into(),
            time: self.time,
            site: None,
            user_site: None,
        });
        self.header.event_head += 1;
        if self.pending.len() > EVENT_RING_LEN {
            self.pending.remove(0);
            self.missed += 1;
        }
    }

    /// Allocates `n` contiguous pages for `owner` (next fit). None when RAM or the table is full.
    fn alloc(&mut self, owner: u32, n: u64, tag: &str) -> Option<u64> {
        let n = n as usize;
        let ram = self.used.len();
        let slot = self.slots.iter().position(Option::is_none);
        let mut found = None;
        for k in 0..ram {
            let start = (self.hint + k) % ram;
            if start + n <= ram && self.used[start..start + n].iter().all(|u| !u) {
                found = Some(start);
                break;
            }
        }
        let (Some(start), Some(slot)) = (found, slot) else {
            self.header.failed_allocs += 1;
            self.event(EventKind::AllocFailed, owner, 0, n as u64, tag);
            return None;
        };
        self.used[start..start + n].fill(true);
        // Leave a small gap so the page map shows separate runs.
        self.hint = (start + n + self.rand(24) as usize) % ram;
        let pa = RAM_BASE + start as u64 * PAGE_SIZE;
        self.event(EventKind::Alloc, owner, pa, n as u64, tag);
        self.slots[slot] = Some(Entry {
            slot,
            pa,
            npages: n as u64,
            owner,
            tag: tag.into(),
            time: self.time,
            site: None,
            user_site: None,
        });
        self.header.total_allocs += 1;
        self.header.high_water = self.header.high_water.max(slot as u64 + 1);
        Some(pa)
    }

    /// Frees the entry in `slot`; `reclaim` records it as an exit sweep.
    fn free_slot(&mut self, slot: usize, reclaim: bool) {
        let Some(e) = self.slots[slot].take() else {
            return;
        };
        let start = ((e.pa - RAM_BASE) / PAGE_SIZE) as usize;
        self.used[start..start + e.npages as usize].fill(false);
        if reclaim {
            self.header.reclaimed_allocs += 1;
            self.header.reclaimed_pages += e.npages;
            self.event(EventKind::ExitReclaim, e.owner, e.pa, e.npages, &e.tag);
        } else {
            self.header.total_frees += 1;
            self.event(EventKind::Free, e.owner, e.pa, e.npages, &e.tag);
        }
    }

    fn slots_of(&self, pid: u32) -> Vec<usize> {
        self.slots
            .iter()
            .enumerate()
            .filter(|(_, e)| e.as_ref().is_some_and(|e| e.owner == pid))
            .map(|(i, _)| i)
            .collect()
    }

    /// One half-second of simulated kernel life.
    fn step(&mut self) {
        self.time += TICKS_PER_SAMPLE;
        if self.procs.len() < MAX_PROCS && self.chance(45) {
            let pid = self.next_pid;
            self.next_pid += 1;
            let name = NAMES[self.rand(NAMES.len() as u64) as usize].to_string();
            let leaky = name == "leak" || self.chance(20);
            let ttl = Some(3 + self.rand(10) as u32);
            self.procs.push(FakeProc {
                pid,
                name,
                ttl,
                leaky,
            });
            self.alloc(pid, 1, "page_table");
            self.alloc(pid, 2, "user_stack");
            self.alloc(0, 1, "kstack");
        }
        let pids: Vec<u32> = self.procs.iter().map(|p| p.pid).collect();
        for pid in pids {
            if self.chance(60) {
                let n = 1 + self.rand(6);
                let tag = if self.chance(75) {
                    "heap"
                } else {
                    "alloc_pages"
                };
                self.alloc(pid, n, tag);
            }
            let mine = self.slots_of(pid);
            if !mine.is_empty() && self.chance(30) {
                let s = mine[self.rand(mine.len() as u64) as usize];
                self.free_slot(s, false);
            }
        }
        if self.chance(5) {
            let k = self.rand(self.procs.len() as u64) as usize;
            let owner = self.procs[k].pid;
            self.header.invalid_frees += 1;
            self.event(
                EventKind::InvalidFree,
                owner,
                RAM_BASE + 0x10_0000,
                1,
                "double_free",
            );
        }
        // Exits.
        let mut i = 0;
        while i < self.procs.len() {
            let expired = match &mut self.procs[i].ttl {
                Some(t) => {
                    *t = t.saturating_sub(1);
                    *t == 0
                }
                None => false,
            };
            if expired {
                let p = self.procs.remove(i);
                self.exit(&p);
            } else {
                i += 1;
            }
        }
    }

    fn exit(&mut self, p: &FakeProc) {
        let mine = self.slots_of(p.pid);
        for (k, s) in mine.iter().enumerate() {
            // A well-behaved process frees everything; a leaky one frees only every third.
            if !p.leaky || k % 3 == 0 {
                self.free_slot(*s, false);
            }
        }
        for s in self.slots_of(p.pid) {
            self.free_slot(s, true);
        }
        // The kernel stack of some exited process.
        if let Some(s) = self.slots.iter().position(|e| {
            e.as_ref()
                .is_some_and(|e| e.owner == 0 && &*e.tag == "kstack" && e.npages == 1)
        }) {
            self.free_slot(s, false);
        }
    }

    fn snapshot(&mut self) -> Snapshot {
        let entries: Vec<Entry> = self.slots.iter().flatten().cloned().collect();
        let mut header = self.header.clone();
        header.count = entries.len() as u64;
        header.tracked_pages = entries.iter().map(|e| e.npages).sum();
        header.free_pages = self.used.iter().filter(|u| !**u).count() as u64;
        let procs = self
            .procs
            .iter()
            .map(|p| Process {
                pid: p.pid,
                parent: if p.pid == 1 { 0 } else { 1 },
                name: p.name.clone(),
                state: if p.pid == 1 {
                    ProcState::Waiting
                } else {
                    ProcState::Running
                },
                hart: None,
            })
            .collect();
        Snapshot {
            header,
            entries: entries.into(),
            procs,
            events: std::mem::take(&mut self.pending),
            missed_events: std::mem::take(&mut self.missed),
            pause_us: 250 + self.rand(200),
            table_read: true,
            mid_change: false,
            rebooted: false,
            read_path: ReadPath::Stub,
        }
    }
}

impl Default for DemoSource {
    fn default() -> DemoSource {
        DemoSource::new()
    }
}

impl Source for DemoSource {
    fn capabilities(&self) -> Capabilities {
        Capabilities {
            origin: Origin::Demo,
            halts_guest: false,
            can_debug: false,
        }
    }

    fn sample(&mut self) -> anyhow::Result<Snapshot> {
        if self.down {
            bail!("demo kernel: connection refused");
        }
        self.samples += 1;
        if let Some((every, _)) = self.outage {
            if self.samples.is_multiple_of(every) {
                self.down = true;
                self.failed_reconnects = 0;
                bail!("demo kernel: connection reset by peer");
            }
        }
        self.step();
        Ok(self.snapshot())
    }

    fn reconnect(&mut self) -> anyhow::Result<()> {
        if self.down {
            let attempts = self.outage.map_or(1, |(_, a)| a);
            self.failed_reconnects += 1;
            if self.failed_reconnects < attempts {
                bail!(
                    "demo kernel: connection refused (attempt {})",
                    self.failed_reconnects
                );
            }
            self.down = false;
        }
        Ok(())
    }

    fn detach(&mut self) {
        self.detached = true;
    }
}
