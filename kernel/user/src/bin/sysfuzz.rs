//! `sysfuzz [ITERATIONS] [SEED]` (default 2000 iterations, seed from the clock): random
//! syscalls with hostile arguments (kernel, device, unmapped and wrapping addresses, huge and
//! zero lengths, misaligned pointers, other processes' pages, random PIDs to wait on, garbage
//! spawn arguments, bad frees), and a bounded number of children doing the same
//! (`sysfuzz N SEED child`, quiet, no grandchildren). The kernel must refuse what is bad and
//! survive; what this process leaks, its exit sweep reclaims.
//! Last line: `sysfuzz: N calls, E errors` (E = calls that returned an error).
//!
//! Never called, so the run stays meaningful for the rest of the system: `exit` (except at the
//! end), `debug` (a global flag), `dump_allocs` (floods the console), `read` into a valid
//! buffer (would take the shell's console input) and `sleep` for more than a few ms; spawns
//! only `hello` and `sysfuzz` (never `shell`, which would compete for the console).
#![no_std]
#![no_main]

use user::*;

entry!(main);

const KERNEL: u64 = 0x8020_0000;
const OPENSBI: u64 = 0x8000_0000;
const UART: u64 = 0x1000_0000;
const UPPER_HALF: u64 = 0xffff_ffc0_0000_0000;
const UNMAPPED: u64 = 0x2000_0000;
const PAGE: u64 = PAGE_SIZE;
/// Most allocations held at once, live children at once, and children per 200 iterations.
const MAX_HELD: usize = 24;
const MAX_LIVE_CHILDREN: usize = 3;
const ITERATIONS_PER_CHILD: u64 = 200;
/// Bytes a valid write-type call may use in `SCRATCH` past its (misaligning) offset.
const SCRATCH_LEN: usize = 8192;
const SCRATCH_SLACK: usize = 64;

/// Where the kernel may write for us: records from procinfo/meminfo/list, wait statuses,
/// random bytes for spawn names and argument blocks.
static mut SCRATCH: [u8; SCRATCH_LEN + SCRATCH_SLACK] = [0; SCRATCH_LEN + SCRATCH_SLACK];

fn scratch() -> u64 {
    core::ptr::addr_of_mut!(SCRATCH) as u64
}

struct Fuzz {
    rng: Rng,
    calls: u64,
    errors: u64,
    /// Our allocations: (user address, pages).
    held: [(u64, u64); MAX_HELD],
    nheld: usize,
    /// Addresses we freed (for double frees), a small ring.
    freed: [u64; 8],
    nfreed: usize,
    /// Our children still running or not yet reaped, and how many we may still start.
    live: [u32; MAX_LIVE_CHILDREN],
    nlive: usize,
    spawns_left: u64,
    child_iterations: u64,
    /// Children do not spawn.
    may_spawn: bool,
    /// Children started: all, and `sysfuzz` ones.
    spawned: u64,
    spawned_fuzzers: u64,
}

impl Fuzz {
    fn call(&mut self, n: usize, a: [u64; 4]) -> isize {
        let r = syscall(
            n,
            a[0] as usize,
            a[1] as usize,
            a[2] as usize,
            a[3] as usize,
        );
        self.calls += 1;
        if r < 0 {
            self.errors += 1;
        }
        r
    }

    fn pick<T: Copy>(&mut self, xs: &[T]) -> T {
        xs[self.rng.below(xs.len() as u64) as usize]
    }

    fn chance(&mut self, one_in: u64) -> bool {
        self.rng.below(one_in) == 0
    }

    /// A pointer the kernel must refuse (EFAULT) whatever the length and whether it reads or
    /// writes there: null, the kernel, firmware, a device, the upper half, the end of user
    /// space, near 2^64, or unmapped user space; misaligned at times.
    fn bad_pointer(&mut self) -> u64 {
        let off = self.rng.below(64 * PAGE);
        let odd = self.rng.below(8);
        match self.rng.below(9) {
            0 => 0,
            1 => odd,
            2 => KERNEL + off + odd,
            3 => OPENSBI + odd,
            4 => UART,
            5 => UPPER_HALF + off,
            6 => USER_VA_END - self.rng.below(8),
            7 => u64::MAX - self.rng.below(16),
            _ => UNMAPPED + off + odd,
        }
    }

    /// A (pointer, length) the kernel must refuse with EFAULT: a bad pointer, a range that
    /// runs past the top of our stack, or a valid start with a length that wraps or leaves
    /// user space. Never touches memory of ours: a buffer whose length the kernel clamps
    /// (`read`) must use `bad_pointer` instead.
    fn bad_buffer(&mut self) -> (u64, u64) {
        let len = self.pick(&[1, 4, 8, 100, PAGE, 3 * PAGE + 5, 1 << 20]);
        match self.rng.below(5) {
            0 => {
                let d = 1 + self.rng.below(64);
                (USER_STACK_TOP - d, d + 1 + self.rng.below(100))
            }
            1 => (
                scratch() + self.rng.below(8),
                self.pick(&[u64::MAX, u64::MAX - scratch() + 1, USER_VA_END, 1 << 40]),
            ),
            _ => (self.bad_pointer(), len),
        }
    }

    /// A destination the kernel may write, or must refuse: our scratch (misaligned at times),
    /// a bad buffer, our read-only text, or someone's heap page (ours are scratch too).
    fn dest(&mut self, need: u64) -> (u64, u64) {
        match self.rng.below(5) {
            0 | 1 => (scratch() + self.rng.below(SCRATCH_SLACK as u64), need),
            2 => (USER_BASE + self.rng.below(PAGE), need),
            3 => (
                HEAP_BASE + self.rng.below(32768) * PAGE + self.rng.below(8),
                need,
            ),
            _ => (self.bad_pointer(), need),
        }
    }

    fn step(&mut self) {
        match self.rng.below(20) {
            0 => {
                // write: only bad buffers or nothing, so no garbage reaches the console.
                let (p, len) = if self.chance(4) {
                    let (p, _) = self.bad_buffer();
                    (p, 0)
                } else {
                    self.bad_buffer()
                };
                self.call(SYS_WRITE, [p, len, 0, 0]);
            }
            1 => {
                // read: a bad buffer is refused before a line is taken (len 0 takes none).
                let p = self.bad_pointer();
                let len = self.pick(&[0, 1, 255, 256, 4096, u64::MAX]);
                self.call(SYS_READ, [p, len, 0, 0]);
            }
            2 => self.spawn_garbage(),
            3 => self.spawn_real(),
            4 | 5 => self.wait_random(),
            6 | 7 => self.alloc(),
            8..=11 => self.free_hostile(),
            12 => {
                let (p, _) = self.dest(0);
                let max = self.pick(&[0, 1, 3, 64, 65, u32::MAX as u64, u64::MAX]);
                let max = if p >= scratch() && p < scratch() + SCRATCH_SLACK as u64 {
                    max.min(64)
                } else {
                    max
                };
                self.call(SYS_PROCINFO, [p, max, 0, 0]);
            }
            13 => {
                let (p, _) = self.dest(0);
                let junk = self.rng.next_u64();
                self.call(SYS_MEMINFO, [p, junk, 0, 0]);
            }
            14 => {
                let (p, _) = self.dest(0);
                let len = if p >= scratch() && p < scratch() + SCRATCH_SLACK as u64 {
                    self.rng.below(SCRATCH_LEN as u64)
                } else {
                    self.pick(&[0, 1, 512, 1 << 30, u64::MAX])
                };
                self.call(SYS_LIST, [p, len, 0, 0]);
            }
            15 => {
                let n = self.pick(&[SYS_GETPID, SYS_TIME, SYS_UPTIME, SYS_YIELD]);
                let junk = [self.rng.next_u64(), self.rng.next_u64(), 0, u64::MAX];
                self.call(n, junk);
            }
            16 => {
                let ms = self.rng.below(3);
                let junk = self.rng.next_u64();
                self.call(SYS_SLEEP, [ms, junk, 0, 0]);
            }
            17 => {
                // No such syscall, with random arguments.
                let n = self.pick(&[0, 18, 19, 64, 255, 999, u32::MAX as usize, usize::MAX]);
                let junk = [
                    self.rng.next_u64(),
                    self.rng.next_u64(),
                    self.rng.next_u64(),
                    self.rng.next_u64(),
                ];
                self.call(n, junk);
            }
            _ => {
                self.call(SYS_YIELD, [0; 4]);
            }
        }
        if self.chance(16) {
            self.reap(true);
        }
    }

    /// Random bytes at the start of the scratch buffer (`n` of them); returns their address.
    fn random_bytes(&mut self, n: usize) -> u64 {
        let p = scratch();
        for k in 0..n {
            let b = self.rng.next_u64() as u8;
            // SAFETY: `k < n <= SCRATCH_LEN`: inside our static scratch buffer, single-threaded.
            unsafe { ((p as usize + k) as *mut u8).write_volatile(b) };
        }
        p
    }

    /// Spawns that must fail: bad pointers and lengths, names no program has, bad arguments.
    fn spawn_garbage(&mut self) {
        let hello = "hello";
        let (bad, badlen) = self.bad_buffer();
        let args = match self.rng.below(7) {
            0 => [self.bad_pointer(), 5, 0, 0],
            1 => [
                hello.as_ptr() as u64,
                self.pick(&[0, 33, 1 << 40, u64::MAX]),
                0,
                0,
            ],
            2 => [hello.as_ptr() as u64, 5, bad, badlen],
            3 => [
                hello.as_ptr() as u64,
                5,
                scratch(),
                self.pick(&[257, 1 << 31, u64::MAX]),
            ],
            4 => {
                // A random name that is no program ("zz" first), maybe not even UTF-8.
                let n = 3 + self.rng.below(20) as usize;
                let p = self.random_bytes(n);
                // SAFETY: inside our scratch buffer (n <= 22).
                unsafe {
                    (p as *mut u8).write_volatile(b'z');
                    ((p + 1) as *mut u8).write_volatile(b'z');
                }
                [p, n as u64, 0, 0]
            }
            5 => [USER_STACK_TOP - 3, 5, 0, 0],
            _ => [KERNEL, 5, scratch(), 8],
        };
        self.call(SYS_SPAWN, args);
    }

    /// A real child: `hello` with garbage arguments, or (from the parent only) a quiet
    /// `sysfuzz` child. Bounded in number and in how many run at once.
    fn spawn_real(&mut self) {
        if !self.may_spawn || self.spawns_left == 0 || self.nlive == MAX_LIVE_CHILDREN {
            self.call(SYS_GETPID, [0; 4]);
            return;
        }
        let fuzzer = !self.chance(2);
        let r = if !fuzzer {
            let n = self.rng.below(MAX_ARGS_LEN as u64 + 1) as usize;
            let args = self.random_bytes(n);
            let name = "hello";
            self.call(SYS_SPAWN, [name.as_ptr() as u64, 5, args, n as u64])
        } else {
            let mut iters = [0u8; 20];
            let mut w = BufWriter::new(&mut iters);
            let _ = core::fmt::Write::write_fmt(&mut w, format_args!("{}", self.child_iterations));
            let mut seed = [0u8; 20];
            let mut s = BufWriter::new(&mut seed);
            let _ =
                core::fmt::Write::write_fmt(&mut s, format_args!("{}", self.rng.next_u64() >> 1));
            let r = spawn("sysfuzz", &["sysfuzz", w.as_str(), s.as_str(), "child"]);
            self.calls += 1;
            match r {
                Ok(pid) => pid as isize,
                Err(e) => {
                    self.errors += 1;
                    e
                }
            }
        };
        if r > 0 {
            self.live[self.nlive] = r as u32;
            self.nlive += 1;
            self.spawns_left -= 1;
            self.spawned += 1;
            self.spawned_fuzzers += fuzzer as u64;
        }
    }

    /// Waits that return at once: random PIDs (others', the kernel's, absurd ones), bad status
    /// pointers, random flags with no-hang; a blocking wait only for one of our own children.
    fn wait_random(&mut self) {
        let status = match self.rng.below(4) {
            0 => 0,
            1 => scratch() + self.rng.below(8),
            _ => self.bad_pointer(),
        };
        let target = match self.rng.below(7) {
            0 => u64::MAX, // -1: any child
            1 => 0,
            2 => 1, // the shell: not our child
            3 => self.rng.below(200),
            4 => u32::MAX as u64,
            5 => self.rng.next_u64(),
            _ => i64::MIN as u64,
        };
        let flags = WAIT_NOHANG as u64 | (self.rng.next_u64() & !1 & 0xff);
        let r = self.call(SYS_WAIT, [target, status, flags, 0]);
        if r > 0 {
            self.forget_child(r as u32);
        }
        if self.nlive > 0 && self.chance(8) {
            // Blocking, for a child of ours that is certain to end.
            let pid = self.live[self.rng.below(self.nlive as u64) as usize];
            let r = self.call(SYS_WAIT, [pid as u64, scratch(), 0, 0]);
            if r > 0 {
                self.forget_child(r as u32);
            }
        }
    }

    fn forget_child(&mut self, pid: u32) {
        if let Some(k) = self.live[..self.nlive].iter().position(|&p| p == pid) {
            self.nlive -= 1;
            self.live[k] = self.live[self.nlive];
        }
    }

    /// Reaps finished children (`nohang`), or all of them.
    fn reap(&mut self, nohang: bool) {
        loop {
            let flags = if nohang { WAIT_NOHANG as u64 } else { 0 };
            let r = self.call(SYS_WAIT, [u64::MAX, 0, flags, 0]);
            if r <= 0 {
                return;
            }
            self.forget_child(r as u32);
        }
    }

    fn alloc(&mut self) {
        let n = self.pick(&[0, 1, 1, 1, 2, 3, 4, 8, 64, 256, 257, 1 << 40, u64::MAX]);
        let n = if n >= 64 && self.nheld > 4 { 1 } else { n };
        let r = self.call(SYS_ALLOC_PAGES, [n, 0, 0, 0]);
        if r > 0 {
            if self.nheld == MAX_HELD {
                // Leak the oldest: the exit sweep must get it back.
                self.held.copy_within(1.., 0);
                self.nheld -= 1;
            }
            self.held[self.nheld] = (r as u64, n);
            self.nheld += 1;
        }
    }

    fn free_hostile(&mut self) {
        let own = (self.nheld > 0).then(|| self.held[self.rng.below(self.nheld as u64) as usize]);
        let (addr, n) = match (self.rng.below(12), own) {
            // A correct free of one of ours.
            (0..=2, Some((a, n))) => {
                let r = self.call(SYS_FREE_PAGES, [a, n, 0, 0]);
                if r == 0 {
                    if let Some(k) = self.held[..self.nheld].iter().position(|h| h.0 == a) {
                        self.nheld -= 1;
                        self.held[k] = self.held[self.nheld];
                    }
                    self.freed[self.nfreed % self.freed.len()] = a;
                    self.nfreed += 1;
                }
                return;
            }
            (3, Some((a, n))) => (
                a,
                self.pick(&[n + 1, n.saturating_sub(1), 0, u64::MAX, 1 << 63]),
            ),
            (4, Some((a, n))) => (a + PAGE * (1 + self.rng.below(n.max(1))), 1),
            // Just past an allocation: often a page table of ours, or someone else's page.
            (5, Some((a, n))) => (a + n * PAGE, 1 + self.rng.below(2)),
            (6, _) if self.nfreed > 0 => {
                let k = self.rng.below(self.nfreed.min(self.freed.len()) as u64) as usize;
                (self.freed[k], 1)
            }
            // Anyone's heap page: most belong to other processes or to nobody.
            (7 | 8, _) => (
                HEAP_BASE + self.rng.below(32768) * PAGE,
                self.pick(&[1, 2, 4]),
            ),
            (9, _) => (
                HEAP_BASE + self.rng.below(32768) * PAGE + 1 + self.rng.below(PAGE - 1),
                1,
            ),
            (10, _) => (
                HEAP_BASE + self.rng.below(32768) * PAGE,
                self.pick(&[u64::MAX, u64::MAX - 1, 1 << 52]),
            ),
            _ => (self.bad_pointer() & !(PAGE - 1), 1),
        };
        self.call(SYS_FREE_PAGES, [addr, n, 0, 0]);
    }
}

fn main(args: Args) -> i32 {
    let iterations = args.get(1).and_then(parse_u64).unwrap_or(2000);
    let seed = args
        .get(2)
        .and_then(parse_u64)
        .unwrap_or_else(|| time_ns() ^ ((getpid() as u64) << 40));
    let child = args.get(3) == Some("child");
    let mut f = Fuzz {
        rng: Rng::new(seed ^ 0x9e37_79b9_7f4a_7c15),
        calls: 0,
        errors: 0,
        held: [(0, 0); MAX_HELD],
        nheld: 0,
        freed: [0; 8],
        nfreed: 0,
        live: [0; MAX_LIVE_CHILDREN],
        nlive: 0,
        spawns_left: iterations / ITERATIONS_PER_CHILD,
        child_iterations: (iterations / 20).clamp(1, 500),
        may_spawn: !child,
        spawned: 0,
        spawned_fuzzers: 0,
    };
    for _ in 0..iterations {
        f.step();
    }
    f.reap(false);
    // Half the time leave what we hold to the exit sweep; else free it.
    if f.rng.below(2) == 0 {
        while f.nheld > 0 {
            let (a, n) = f.held[f.nheld - 1];
            f.call(SYS_FREE_PAGES, [a, n, 0, 0]);
            f.nheld -= 1;
        }
    }
    if !child {
        println!(
            "sysfuzz: pid={} seed={seed}: {} children ({} of them fuzzing)",
            getpid(),
            f.spawned,
            f.spawned_fuzzers
        );
        println!("sysfuzz: {} calls, {} errors", f.calls, f.errors);
    }
    0
}
