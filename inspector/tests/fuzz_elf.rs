//! A deterministic mutation fuzzer for the ELF/DWARF loader, on stable Rust: the kernel ELF and
//! small compiler-built objects are truncated, bit-flipped and overwritten (ELF header, section
//! and program header tables, `.debug_info`, `.debug_abbrev`, `.debug_line`, …), then loaded
//! with [`DebugInfo`], resolved into a tracker layout, sampled from an in-memory target and
//! looked up in. The property: every input gives `Ok` or an `Err` — never a panic, never an
//! abort, never an allocation over [`ALLOCATION_LIMIT`], never an input that runs for minutes.
//!
//! `LEAKSCOPE_FUZZ_ITERS` (default 10,000) sets the scale; the corpus files share it by cost: the
//! kernel ELF (3 MB, ~20 times slower per input than a small object) gets `ITERS / 5000` inputs,
//! the small objects `ITERS / 80` between them, so `make fuzz` (10,000,000: 2,000 + 125,000
//! inputs) takes about 4 minutes in release on an idle 2-core machine. `LEAKSCOPE_FUZZ_SEED` (default fixed) changes the inputs; a failure prints the seed
//! and writes the input to a file, which `replay_a_saved_input` runs again on its own
//! (`LEAKSCOPE_FUZZ_SAVE=SEED` saves any input by its seed, e.g. the largest allocation's).
//!
//! Run: `LEAKSCOPE_FUZZ_ITERS=100000 cargo test --release -p inspector --test fuzz_elf -- --nocapture`.

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::io::Write as _;
use std::ops::Range;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Once};
use std::time::{Duration, Instant};

use inspector::dwarf::{DebugInfo, ElfFile, FrameRegs, Unwinder};
use inspector::snapshot::Sampler;
use inspector::target::MemTarget;

/// No single allocation may ask for more: the inspector's own bounds stop at 1 GiB
/// (`dwarf::limits`, the tracker's span limit), so anything above is a missing check.
const ALLOCATION_LIMIT: usize = (1 << 30) + (64 << 20);

/// The allocator of this test binary: the system's, refusing (null) and reporting any request
/// over [`ALLOCATION_LIMIT`]. A refused `try_reserve` is an error the code handles; a refused
/// infallible allocation aborts the test binary, after the report names the input.
struct Bounded;

static LARGEST: AtomicUsize = AtomicUsize::new(0);
/// Seed of the input that made the largest request.
static LARGEST_SEED: AtomicU64 = AtomicU64::new(0);
/// Seed of the input being run (0: none); read by the allocator's report.
static CURRENT_SEED: AtomicU64 = AtomicU64::new(0);

// SAFETY: defers to `System` for every request it does not refuse; a refusal returns null,
// which `GlobalAlloc` allows.
unsafe impl GlobalAlloc for Bounded {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if !admit(layout.size()) {
            return std::ptr::null_mut();
        }
        // SAFETY: the caller's contract for `alloc`, passed on.
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if !admit(layout.size()) {
            return std::ptr::null_mut();
        }
        // SAFETY: as for `alloc`.
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from `System` through this allocator, with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if !admit(new_size) {
            return std::ptr::null_mut();
        }
        // SAFETY: as for `dealloc`, and `new_size` is the caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

/// Records the largest request; false (after a report) for one over the limit.
fn admit(size: usize) -> bool {
    if LARGEST.fetch_max(size, Ordering::Relaxed) < size {
        LARGEST_SEED.store(CURRENT_SEED.load(Ordering::Relaxed), Ordering::Relaxed);
    }
    if size <= ALLOCATION_LIMIT {
        return true;
    }
    // No allocation here: a fixed message and the seed in hex, written to fd 2.
    let mut msg =
        *b"\nfuzz_elf: refused an allocation over the limit; input seed 0x0000000000000000\n";
    let seed = CURRENT_SEED.load(Ordering::Relaxed);
    let digits = msg.len() - 17;
    for i in 0..16 {
        msg[digits + i] = b"0123456789abcdef"[((seed >> (60 - 4 * i)) & 0xf) as usize];
    }
    let _ = std::io::stderr().write_all(&msg);
    false
}

#[global_allocator]
static ALLOCATOR: Bounded = Bounded;

// ---- deterministic randomness ----

/// splitmix64: small, fast, and the same on every machine.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    /// Uniform in `0..n` (`n > 0`).
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn chance(&mut self, one_in: usize) -> bool {
        self.below(one_in) == 0
    }
}

// ---- the corpus ----

/// One file to mutate: its bytes, and the byte ranges worth aiming at.
struct Seed {
    name: String,
    bytes: Vec<u8>,
    /// Headers, header tables and DWARF sections, by name.
    regions: Vec<(String, Range<usize>)>,
    /// Files and lines whose line-table lookups are exercised.
    source: (&'static str, u32),
}

impl Seed {
    fn new(name: impl Into<String>, bytes: Vec<u8>, source: (&'static str, u32)) -> Seed {
        let regions = regions(&bytes);
        Seed {
            name: name.into(),
            bytes,
            regions,
            source,
        }
    }
}

/// The ELF header, the program and section header tables, and the sections a debugger reads.
fn regions(bytes: &[u8]) -> Vec<(String, Range<usize>)> {
    use object::{Object, ObjectSection};
    let mut out = vec![("ELF header".to_string(), 0..bytes.len().min(64))];
    let is64 = bytes.get(4) == Some(&2);
    let big = bytes.get(5) == Some(&2);
    let uint = |at: usize, n: usize| -> usize {
        let b = &bytes[at..at + n];
        let mut v = 0usize;
        for i in 0..n {
            let byte = if big { b[i] } else { b[n - 1 - i] };
            v = (v << 8) | usize::from(byte);
        }
        v
    };
    // (e_phoff, e_shoff, e_phentsize, e_phnum, e_shentsize, e_shnum) offsets and widths.
    let (phoff, shoff, fields) = if is64 {
        (uint(0x20, 8), uint(0x28, 8), [0x36, 0x38, 0x3a, 0x3c])
    } else {
        (uint(0x1c, 4), uint(0x20, 4), [0x2a, 0x2c, 0x2e, 0x30])
    };
    let [phentsize, phnum, shentsize, shnum] = fields.map(|at| uint(at, 2));
    if phnum > 0 {
        out.push(("program headers".into(), phoff..phoff + phentsize * phnum));
    }
    out.push(("section headers".into(), shoff..shoff + shentsize * shnum));
    let file = object::File::parse(bytes).expect("corpus files are valid ELF");
    for section in file.sections() {
        let Ok(name) = section.name() else { continue };
        let wanted = name.contains("debug")
            || matches!(name, ".symtab" | ".strtab" | ".shstrtab" | ".eh_frame")
            || name.starts_with(".rela");
        if let (true, Some((start, len))) = (wanted, section.file_range()) {
            let (start, len) = (start as usize, len as usize);
            if len > 0 && start + len <= bytes.len() {
                out.push((name.to_string(), start..start + len));
            }
        }
    }
    out.retain(|(_, r)| r.start < r.end && r.end <= bytes.len());
    out
}

fn run(cmd: &mut Command) -> Result<(), String> {
    let out = cmd.output().map_err(|e| format!("{cmd:?}: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!("{cmd:?}: {}", String::from_utf8_lossy(&out.stderr)))
    }
}

/// Builds the small objects; a tool that is missing is reported (past the harness's capture)
/// and its object left out.
fn small_seeds(dir: &Path) -> Vec<Seed> {
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let mut seeds = Vec::new();
    let gcc_builds: [(&str, &str, &[&str]); 4] = [
        ("chapter64.o", "chapter_tracker.c", &[]),
        ("chapter32.o", "chapter_tracker.c", &["-m32"]),
        ("chapter64-zlib.o", "chapter_tracker.c", &["-gz=zlib"]),
        ("absurd.o", "absurd_tracker.c", &[]),
    ];
    for (out, src, args) in gcc_builds {
        let obj = dir.join(out);
        let built = run(Command::new("gcc")
            .args(args)
            .args(["-g", "-O1", "-c"])
            .arg(fixtures.join(src))
            .arg("-o")
            .arg(&obj));
        match built.and_then(|()| std::fs::read(&obj).map_err(|e| e.to_string())) {
            Ok(bytes) => seeds.push(Seed::new(out, bytes, ("chapter_tracker.c", 70))),
            Err(e) => note(&format!("fuzz_elf: {out} left out of the corpus: {e}")),
        }
    }
    let rust = common::fixtures::rust_tracker_object(dir);
    seeds.push(Seed::new(
        "rust_tracker.o",
        std::fs::read(rust).unwrap(),
        ("rust_tracker.rs", 80),
    ));
    seeds
}

/// The kernel ELF, or (with a note) the rustc fixture object standing in for it.
fn kernel_seed(dir: &Path) -> Seed {
    let path = common::qemu::kernel_elf();
    match std::fs::read(&path) {
        Ok(bytes) => Seed::new("kernel.elf", bytes, ("tracker.rs", 100)),
        Err(e) => {
            note(&format!(
                "fuzz_elf: no kernel ELF at {} ({e}; make kernel builds it): fuzzing the rustc \
                 riscv64 fixture object in its place",
                path.display()
            ));
            let obj = common::fixtures::rust_tracker_object(dir);
            Seed::new(
                "rust_tracker.o (for kernel.elf)",
                std::fs::read(obj).unwrap(),
                ("rust_tracker.rs", 80),
            )
        }
    }
}

/// A line on the terminal even when the harness captures output.
fn note(msg: &str) {
    let _ = writeln!(std::io::stderr().lock(), "\n{msg}");
}

// ---- mutations ----

/// Values that tend to hit boundaries: zero, all ones, sign bits, sizes near 2^32 and 2^40.
const INTERESTING: [u64; 12] = [
    0,
    1,
    0x7f,
    0x80,
    0xff,
    0x7fff_ffff,
    0x8000_0000,
    0xffff_ffff,
    1 << 32,
    1 << 40,
    u64::MAX >> 1,
    u64::MAX,
];

/// Mutates a copy of `seed` and says how (for the failure report).
fn mutate(seed: &Seed, rng: &mut Rng) -> (Vec<u8>, String) {
    let mut bytes = seed.bytes.clone();
    let mut how = Vec::new();
    let rounds = 1 + rng.below(3);
    for _ in 0..rounds {
        if bytes.is_empty() {
            break;
        }
        // Most mutations aim at a region; some anywhere in the file.
        let (region, range) = if rng.chance(5) {
            ("anywhere".to_string(), 0..bytes.len())
        } else {
            let (name, r) = &seed.regions[rng.below(seed.regions.len())];
            (
                name.clone(),
                r.start.min(bytes.len())..r.end.min(bytes.len()),
            )
        };
        if range.is_empty() {
            continue;
        }
        let at = range.start + rng.below(range.len());
        match rng.below(10) {
            0 => {
                // Truncate: inside the region, so the file ends in the middle of something.
                bytes.truncate(at);
                how.push(format!("truncate at {at} ({region})"));
            }
            1..=4 => {
                let bit = rng.below(8);
                bytes[at] ^= 1 << bit;
                how.push(format!("flip bit {bit} of byte {at} ({region})"));
            }
            5..=7 => {
                let width = [1, 2, 4, 8][rng.below(4)];
                let value = INTERESTING[rng.below(INTERESTING.len())];
                let le = value.to_le_bytes();
                let big = rng.chance(2);
                for i in 0..width {
                    if let Some(b) = bytes.get_mut(at + i) {
                        *b = if big { le[width - 1 - i] } else { le[i] };
                    }
                }
                how.push(format!(
                    "write {value:#x} ({width} bytes) at {at} ({region})"
                ));
            }
            _ => {
                let n = 1 + rng.below(16);
                for i in 0..n {
                    if let Some(b) = bytes.get_mut(at + i) {
                        *b = rng.next() as u8;
                    }
                }
                how.push(format!("randomise {n} bytes at {at} ({region})"));
            }
        }
    }
    (bytes, how.join(", "))
}

// ---- running one input ----

/// How far an input got.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Outcome {
    /// `ElfFile::parse` refused it (not an ELF, a section that does not read, no DWARF).
    ElfRefused,
    /// The DWARF index could not be built.
    DwarfRefused,
    /// The tracker layout did not resolve (or was implausible).
    NoLayout,
    Sampled,
    SampleError,
}

/// Loads `bytes` and uses what loads the way the inspector does. Errors are fine; a panic
/// unwinds out of here to the caller's `catch_unwind`.
fn exercise(bytes: &[u8], source: (&str, u32)) -> Outcome {
    let Ok(elf) = ElfFile::parse(bytes, Path::new("fuzz-input.elf")) else {
        return Outcome::ElfRefused;
    };
    let Ok(info) = DebugInfo::from_elf(elf) else {
        return Outcome::DwarfRefused;
    };
    let info = Arc::new(info);
    for name in [
        "alloc_table",
        "alloc_table_count",
        "alloc_tracker",
        "alloc_events",
        "proc_table",
        "grid",
    ] {
        let Ok(g) = info.global(name) else { continue };
        if let Ok(a) = info.array_layout(g.ty) {
            let _ = info.struct_layout(a.element);
        }
        let _ = info.struct_layout(g.ty);
        if g.size <= 1 << 20 {
            let mut b = vec![0; g.size as usize];
            if info.elf().read_static(g.address, &mut b) {
                let _ = info.decode(g.ty, &b);
            }
        }
        let _ = info.global_at(g.address.wrapping_add(1));
    }
    let unwinder = Unwinder::from_elf_bytes(bytes).ok().flatten();
    for name in ["track_alloc", "free_all_tracked_for_pid", "kmain"] {
        let Ok(f) = info.function(name) else { continue };
        let _ = info.breakpoint_address(&f);
        for pc in [f.low, f.low.wrapping_add(4)] {
            let _ = info.location(pc);
            let _ = info.frames(pc);
            let _ = info.user_location(pc);
            let _ = info.function_at(pc);
            let _ = info.inlined_params(pc);
        }
        let _ = info.function_params(f.low);
        if let Some(u) = &unwinder {
            let frame = FrameRegs {
                pc: f.low,
                regs: [Some(0x8000_1000); 32],
            };
            let _ = u.unwind(&frame, f.low, &mut |_, buf: &mut [u8]| {
                buf.fill(0x5a);
                true
            });
        }
    }
    let _ = info.line_addresses(source.0, source.1);
    let Ok(mut sampler) = Sampler::new(info.clone()) else {
        return Outcome::NoLayout;
    };
    // Guest memory: the ELF's allocated sections, as a loader would place them (up to 64 MiB:
    // a damaged file may claim sections of any size).
    let mut target = guest_memory(&info);
    let sampled = sampler.sample(&mut target).is_ok();
    let _ = sampler.check_build_id(&mut target);
    assert!(
        !inspector::target::Target::is_halted(&target),
        "the sampler left the guest halted"
    );
    if sampled {
        Outcome::Sampled
    } else {
        Outcome::SampleError
    }
}

/// Guest memory as a loader would lay the ELF out, with the tracker header made to look
/// initialised and full (magic, every slot below the high-water mark, a few events), so the
/// sampler reads every array the layout names.
fn guest_memory(info: &DebugInfo) -> MemTarget {
    let mut target = MemTarget::new();
    let mut total = 0;
    // A damaged file's sections may overlap or wrap: those are left out (MemTarget refuses them).
    let mut placed: Vec<Range<u64>> = Vec::new();
    for s in info.elf().sections() {
        // The region is what the section holds, which a damaged header may size differently
        // from its `sh_size`.
        let len = s.data.as_ref().map_or(s.size, |d| d.len() as u64);
        if len == 0 || len > (64 << 20) - total {
            continue;
        }
        let Some(end) = s.address.checked_add(len) else {
            continue;
        };
        if placed.iter().any(|r| s.address < r.end && r.start < end) {
            continue;
        }
        placed.push(s.address..end);
        total += len;
        let bytes = match &s.data {
            Some(d) => d.to_vec(),
            None => vec![0; len as usize],
        };
        target.add_region(s.address, bytes);
    }
    let Ok(layout) = inspector::snapshot::TrackerLayout::resolve(info) else {
        return target;
    };
    if let Some((addr, header)) = &layout.header {
        use inspector::target::Target as _;
        let capacity = layout.table.array.len;
        // Written halted, through the target's own checks: a damaged layout may point anywhere.
        let _ = target.halt();
        for (name, value) in [
            ("magic", u64::from_le_bytes(*b"LEAKSCOP")),
            ("high_water", capacity),
            ("event_head", 3),
            ("generation", 2),
        ] {
            let Some(f) = header.field(name).filter(|f| (1..=8).contains(&f.size)) else {
                continue;
            };
            let bytes = value.to_le_bytes();
            let _ = target.write_memory(addr.wrapping_add(f.offset), &bytes[..f.size as usize]);
        }
        let _ = target.resume();
    }
    target
}

// ---- the driver ----

/// What went wrong with one input.
struct Failure {
    seed: u64,
    how: String,
    message: String,
    saved: PathBuf,
}

thread_local! {
    /// Set while this thread runs an input: its panics are findings, recorded not printed.
    static IN_INPUT: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
    static PANIC_MESSAGE: std::cell::RefCell<Option<String>> = const { std::cell::RefCell::new(None) };
}

/// Panics of an input are expected findings: record the message (with its location) instead
/// of printing it; any other panic goes to the default hook. Installed once for the binary.
fn quiet_panics() {
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !IN_INPUT.with(|i| i.get()) {
                return default(info);
            }
            let msg = match info.payload().downcast_ref::<&str>() {
                Some(s) => s.to_string(),
                None => info
                    .payload()
                    .downcast_ref::<String>()
                    .cloned()
                    .unwrap_or_else(|| "(non-string panic)".into()),
            };
            let at = info
                .location()
                .map(|l| format!(" at {}:{}", l.file(), l.line()))
                .unwrap_or_default();
            PANIC_MESSAGE.with(|m| *m.borrow_mut() = Some(format!("{msg}{at}")));
        }));
    });
}

fn iterations() -> u64 {
    std::env::var("LEAKSCOPE_FUZZ_ITERS")
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(10_000)
}

fn base_seed() -> u64 {
    std::env::var("LEAKSCOPE_FUZZ_SEED")
        .ok()
        .and_then(|v| {
            let v = v.trim();
            match v.strip_prefix("0x") {
                Some(hex) => u64::from_str_radix(hex, 16).ok(),
                None => v.parse().ok(),
            }
        })
        .unwrap_or(0x1ea4_5c09_e1f0_0001)
}

/// Reports an input that has been running for long (an endless loop cannot be interrupted,
/// but it can be named). One per binary; watches the inputs of every fuzz test.
struct Watchdog {
    /// Corpus file, seed and start of the input each fuzz test is running.
    running: Mutex<Vec<Option<(String, u64, Instant)>>>,
}

fn watchdog() -> &'static Watchdog {
    static DOG: std::sync::OnceLock<&'static Watchdog> = std::sync::OnceLock::new();
    DOG.get_or_init(|| {
        let dog: &'static Watchdog = Box::leak(Box::new(Watchdog {
            running: Mutex::new(Vec::new()),
        }));
        std::thread::spawn(move || loop {
            std::thread::sleep(Duration::from_secs(5));
            for (name, seed, start) in dog.running.lock().unwrap().iter().flatten() {
                if start.elapsed() > Duration::from_secs(30) {
                    note(&format!(
                        "fuzz_elf: {name} input seed {seed:#018x} has run for {:?}: a hang?",
                        start.elapsed()
                    ));
                }
            }
        });
        dog
    })
}

/// Runs `count` mutations of each seed in `seeds` (round robin), returning the summary line.
fn fuzz(label: &str, seeds: &[Seed], count: u64) -> String {
    quiet_panics();
    let dog = watchdog();
    let started = Instant::now();
    let mut outcomes = std::collections::BTreeMap::<Outcome, u64>::new();
    let mut failures: Vec<Failure> = Vec::new();
    let base = base_seed();
    let save_seed = std::env::var("LEAKSCOPE_FUZZ_SAVE")
        .ok()
        .and_then(|v| u64::from_str_radix(v.trim().trim_start_matches("0x"), 16).ok());
    let slot = {
        let mut running = dog.running.lock().unwrap();
        running.push(None);
        running.len() - 1
    };
    for i in 0..count {
        let seed_file = &seeds[(i % seeds.len() as u64) as usize];
        // Each input's seed depends only on the base seed, the corpus file and the index.
        let seed = Rng(base ^ fnv(&seed_file.name) ^ i.wrapping_mul(0x2545_f491_4f6c_dd1d)).next();
        let (bytes, how) = mutate(seed_file, &mut Rng(seed));
        if let Some(wanted) = save_seed {
            // Only looking for one input: make them all, run none.
            if wanted == seed {
                let path = std::env::temp_dir().join(format!("fuzz_elf-{seed:016x}.elf"));
                std::fs::write(&path, &bytes).unwrap();
                note(&format!(
                    "fuzz_elf: input {seed:#018x} ({how}) saved to {}",
                    path.display()
                ));
            }
            continue;
        }
        CURRENT_SEED.store(seed, Ordering::Relaxed);
        dog.running.lock().unwrap()[slot] = Some((seed_file.name.clone(), seed, Instant::now()));
        IN_INPUT.with(|f| f.set(true));
        let result = catch_unwind(AssertUnwindSafe(|| exercise(&bytes, seed_file.source)));
        IN_INPUT.with(|f| f.set(false));
        match result {
            Ok(outcome) => *outcomes.entry(outcome).or_default() += 1,
            Err(_) => {
                let message = PANIC_MESSAGE
                    .with(|m| m.borrow_mut().take())
                    .unwrap_or_default();
                let saved = std::env::temp_dir().join(format!("fuzz_elf-{seed:016x}.elf"));
                let _ = std::fs::write(&saved, &bytes);
                failures.push(Failure {
                    seed,
                    how: format!("{}: {how}", seed_file.name),
                    message,
                    saved,
                });
            }
        }
    }
    dog.running.lock().unwrap()[slot] = None;
    CURRENT_SEED.store(0, Ordering::Relaxed);
    let secs = started.elapsed().as_secs_f64();
    let summary = format!(
        "fuzz_elf: {count} inputs ({label}: {}) in {secs:.1} s, {:.0} inputs/s; outcomes {:?}; \
         largest allocation {} KiB (input {:#018x}); {} panics",
        seeds
            .iter()
            .map(|s| s.name.as_str())
            .collect::<Vec<_>>()
            .join(", "),
        count as f64 / secs.max(1e-9),
        outcomes,
        LARGEST.load(Ordering::Relaxed) / 1024,
        LARGEST_SEED.load(Ordering::Relaxed),
        failures.len(),
    );
    if !failures.is_empty() {
        let shown: Vec<String> = failures
            .iter()
            .take(10)
            .map(|f| {
                format!(
                    "  seed {:#018x} [{}]: {} (input saved to {}; replay with \
                     LEAKSCOPE_FUZZ_REPLAY={})",
                    f.seed,
                    f.how,
                    f.message,
                    f.saved.display(),
                    f.saved.display()
                )
            })
            .collect();
        panic!("{summary}\n{}", shown.join("\n"));
    }
    println!("{summary}");
    summary
}

fn fnv(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

#[test]
fn fuzz_small_objects() {
    let dir = tempfile::tempdir().unwrap();
    let seeds = small_seeds(dir.path());
    fuzz(
        "small objects",
        &seeds,
        (iterations() / 80).max(seeds.len() as u64),
    );
}

#[test]
fn fuzz_kernel_elf() {
    let dir = tempfile::tempdir().unwrap();
    let seed = kernel_seed(dir.path());
    fuzz(
        "kernel",
        std::slice::from_ref(&seed),
        (iterations() / 5000).max(2),
    );
}

/// `LEAKSCOPE_FUZZ_REPLAY=FILE cargo test -p inspector --test fuzz_elf replay`: runs one saved
/// input, panics and all (with a backtrace under `RUST_BACKTRACE=1`), to debug a finding.
#[test]
fn replay_a_saved_input() {
    let Some(path) = std::env::var_os("LEAKSCOPE_FUZZ_REPLAY") else {
        return;
    };
    let bytes = std::fs::read(&path).unwrap();
    let outcome = exercise(&bytes, ("tracker.rs", 100));
    println!(
        "fuzz_elf: replayed {}: {outcome:?}",
        Path::new(&path).display()
    );
}
