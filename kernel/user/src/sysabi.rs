//! The syscall ABI shared by the kernel and the user programs (the kernel includes this file):
//! syscall numbers, error codes, the user address-space layout and the records `ps`/`mem` get.
//!
//! Calling convention: `ecall` with the number in a7 and arguments in a0..a5; the result comes
//! back in a0: >= 0 on success, a negative error code below on failure.

pub const SYS_WRITE: usize = 1; // (buf, len) -> len
pub const SYS_READ: usize = 2; // (buf, len) -> bytes of one console line
pub const SYS_EXIT: usize = 3; // (code) -> never returns
pub const SYS_GETPID: usize = 4; // () -> pid
pub const SYS_SPAWN: usize = 5; // (name, name_len, args, args_len) -> child pid
pub const SYS_WAIT: usize = 6; // (pid or -1, status ptr or 0, flags) -> pid reaped, 0 with WAIT_NOHANG if none yet
pub const SYS_YIELD: usize = 7; // () -> 0
pub const SYS_SLEEP: usize = 8; // (milliseconds) -> 0
pub const SYS_ALLOC_PAGES: usize = 9; // (npages) -> user address of the pages
pub const SYS_FREE_PAGES: usize = 10; // (addr, npages) -> 0
pub const SYS_PROCINFO: usize = 11; // (buf of ProcStat, max records) -> records written
pub const SYS_MEMINFO: usize = 12; // (buf of MemStat) -> 0
pub const SYS_DEBUG: usize = 13; // (0 = off, 1 = on) -> previous value
pub const SYS_TIME: usize = 14; // () -> nanoseconds since the Unix epoch (RTC)
pub const SYS_UPTIME: usize = 15; // () -> milliseconds since boot
pub const SYS_LIST: usize = 16; // (buf, len) -> bytes written: program names, one per line
pub const SYS_DUMP_ALLOCS: usize = 17; // () -> 0, prints the kernel's allocation table
pub const SYS_LOCKSTAT: usize = 18; // (buf of LockStat, max records) -> records written

pub const EINVAL: isize = -1; // bad argument
pub const EFAULT: isize = -2; // bad user pointer
pub const ENOMEM: isize = -3; // out of physical memory
pub const ENOENT: isize = -4; // no such program
pub const ECHILD: isize = -5; // no such child
pub const ENOTOWNER: isize = -6; // free of pages the caller does not own
pub const EUNTRACKED: isize = -7; // free of an address that is not a live allocation
pub const EDOUBLEFREE: isize = -8; // free of pages that are already free
pub const EWRONGSIZE: isize = -9; // free with another size than allocated
pub const ETABLEFULL: isize = -10; // the kernel's allocation table is full
pub const ENOSYS: isize = -11; // no such syscall
pub const EPROCLIM: isize = -12; // process table full

pub const WAIT_NOHANG: usize = 1;

/// `ProcStat::hart` of a process no hart runs.
pub use tracker::abi::NO_HART;
/// Bytes of a page: `SYS_ALLOC_PAGES`/`SYS_FREE_PAGES` count in these, and the page counts of
/// `MemStat` and `ProcStat` too.
pub use tracker::abi::PAGE_SIZE;
/// Bytes of a process name in `ProcStat` and `OwnerStat`, NUL-padded.
pub use tracker::abi::PROC_NAME_LEN;

/// A short name for an error code.
pub fn err_name(e: isize) -> &'static str {
    match e {
        EINVAL => "EINVAL",
        EFAULT => "EFAULT",
        ENOMEM => "ENOMEM",
        ENOENT => "ENOENT",
        ECHILD => "ECHILD",
        ENOTOWNER => "ENOTOWNER",
        EUNTRACKED => "EUNTRACKED",
        EDOUBLEFREE => "EDOUBLEFREE",
        EWRONGSIZE => "EWRONGSIZE",
        ETABLEFULL => "ETABLEFULL",
        ENOSYS => "ENOSYS",
        EPROCLIM => "EPROCLIM",
        _ => "E?",
    }
}

/// Where programs are linked (user.ld) and loaded.
pub const USER_BASE: u64 = 0x4000_0000;
/// The user stack ends here (exclusive); arguments sit at its top.
pub const USER_STACK_TOP: u64 = 0x8000_0000;
pub const USER_STACK_PAGES: u64 = 8;
/// Pages from `SYS_ALLOC_PAGES` appear at `HEAP_BASE + (pa - ram_base)`.
pub const HEAP_BASE: u64 = 0x10_0000_0000;
/// End of the Sv39 lower half: no user address is at or above it.
pub const USER_VA_END: u64 = 1 << 38;
/// Most pages one `SYS_ALLOC_PAGES` call may ask for.
pub const MAX_ALLOC_PAGES: u64 = 256;
/// Longest argument block for `SYS_SPAWN` (NUL-separated arguments).
pub const MAX_ARGS_LEN: usize = 256;
/// Longest program name for `SYS_SPAWN`, in bytes.
pub const MAX_NAME_LEN: usize = 32;

/// One process, as `SYS_PROCINFO` reports it.
#[repr(C)]
#[derive(Clone, Copy, Default)]
pub struct ProcStat {
    pub pid: u32,
    pub parent: u32,
    /// 1 runnable, 2 running, 3 sleeping, 4 waiting, 5 zombie.
    pub state: u32,
    /// Hart id running it while `state` is 2 (running), else `NO_HART`.
    pub hart: u32,
    pub name: [u8; PROC_NAME_LEN],
    /// Tracked allocations and pages owned.
    pub allocs: u64,
    pub pages: u64,
}

/// One owner of tracked pages, as `SYS_MEMINFO` reports it.
#[repr(C)]
#[derive(Clone, Copy, Default)]
pub struct OwnerStat {
    pub pid: u32,
    /// 1 if `pid` is a live (not yet reaped) process or the kernel.
    pub live: u32,
    pub name: [u8; PROC_NAME_LEN],
    pub allocs: u64,
    pub pages: u64,
}

pub const MAX_OWNERS: usize = 80;

/// Memory totals, as `SYS_MEMINFO` reports them, in pages of `PAGE_SIZE` bytes.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct MemStat {
    pub total: u64,
    pub free: u64,
    pub used: u64,
    pub tracked: u64,
    pub allocs: u64,
    pub failed_allocs: u64,
    pub invalid_frees: u64,
    pub reclaimed_allocs: u64,
    pub reclaimed_pages: u64,
    pub nowners: u64,
    pub owners: [OwnerStat; MAX_OWNERS],
}

impl MemStat {
    pub const ZERO: MemStat = MemStat {
        total: 0,
        free: 0,
        used: 0,
        tracked: 0,
        allocs: 0,
        failed_allocs: 0,
        invalid_frees: 0,
        reclaimed_allocs: 0,
        reclaimed_pages: 0,
        nowners: 0,
        owners: [OwnerStat {
            pid: 0,
            live: 0,
            name: [0; PROC_NAME_LEN],
            allocs: 0,
            pages: 0,
        }; MAX_OWNERS],
    };
}

/// The text of a NUL-padded name.
pub fn name_str(name: &[u8; PROC_NAME_LEN]) -> &str {
    let n = name.iter().position(|&b| b == 0).unwrap_or(PROC_NAME_LEN);
    core::str::from_utf8(&name[..n]).unwrap_or("?")
}

/// Longest kernel lock name in a [`LockStat`] (NUL-padded).
pub const LOCK_NAME_LEN: usize = 16;
/// Most locks `SYS_LOCKSTAT` reports.
pub const MAX_LOCKS: usize = 8;

/// One kernel spin lock's cost counters since boot, as `SYS_LOCKSTAT` reports them (all harts
/// together; never reset: a caller measures a span by the difference of two reports).
#[repr(C)]
#[derive(Clone, Copy, Default)]
pub struct LockStat {
    pub name: [u8; LOCK_NAME_LEN],
    /// Acquisitions.
    pub acquired: u64,
    /// Acquisitions that found the lock held and waited.
    pub contended: u64,
    /// Iterations of the wait loops.
    pub spins: u64,
    /// Time the waiting acquirers spent waiting, in microseconds (of the `time` CSR).
    pub wait_us: u64,
}
