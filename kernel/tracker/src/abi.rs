//! The tracker's exported data layout: the types behind the symbols the inspector reads.
//!
//! Contract (docs/tracker-abi.md): symbol and field names and their meaning are stable; offsets are
//! not. The inspector learns every layout from DWARF, so fields may be added or reordered, but a
//! renamed field breaks the inspector.

/// Slots in `alloc_table`.
pub const MAX_TRACKED_ALLOCS: usize = 8192;
/// Records in the `alloc_events` ring.
pub const EVENT_RING_LEN: usize = 1024;
/// log2 of [`PAGE_SIZE`]: the bits of an address below the page number (Sv39: 12).
pub const PAGE_SHIFT: u32 = 12;
/// Bytes of a page: the one page size of the kernel, its user programs and the tracker.
pub const PAGE_SIZE: u64 = 1 << PAGE_SHIFT;
/// `TrackerHeader::magic` once initialised: "LEAKSCOP" read as a little-endian u64.
pub const TRACKER_MAGIC: u64 = u64::from_le_bytes(*b"LEAKSCOP");
/// `TrackerHeader::abi_version`.
pub const TRACKER_ABI_VERSION: u32 = 1;

/// Process id. 0 is the kernel; processes count up from 1, skipping [`NO_PID`]; after a wrap a
/// PID is reused only once no process (live or zombie) has it.
pub type Pid = u32;

/// A PID no process ever has (the kernel's PID counter skips it): never the owner of an
/// entry, nor of an event.
pub const NO_PID: Pid = Pid::MAX;

/// One slot of `alloc_table`: a live allocation of `npages` contiguous pages at `pa`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AllocEntry {
    /// 1 = in use; 0 = free slot (the other fields are then meaningless).
    pub used: u32,
    /// Owning PID; 0 = kernel.
    pub owner: Pid,
    /// Physical address of the first page.
    pub pa: u64,
    /// Number of contiguous pages.
    pub npages: u64,
    /// What the pages are for.
    pub tag: &'static str,
    /// `time` CSR ticks when allocated (`TrackerHeader::timebase_hz` per second).
    pub time: u64,
    /// Kernel call site ([`AllocSite::site`]): the return address of the call to the kernel's
    /// `alloc_pages`; 0 = not recorded.
    pub site: u64,
    /// The program's pc at its `alloc_pages` syscall ([`AllocSite::user_site`]); 0 = the
    /// kernel asked for these pages itself. The program is the owner's (its `proc_table`
    /// name): a live entry's owner is a process (running or zombie). Entries have no
    /// `user_program` of their own so that one is 64 bytes, a cache line.
    pub user_site: u64,
}

impl AllocEntry {
    pub const EMPTY: AllocEntry = AllocEntry {
        used: 0,
        owner: 0,
        pa: 0,
        npages: 0,
        tag: "",
        time: 0,
        site: 0,
        user_site: 0,
    };
}

/// Who asked for an allocation: the code addresses an entry and its `Alloc` event record.
///
/// Why addresses and not `core::panic::Location`s: an address costs one register move to
/// record (no stack walk, no `#[track_caller]` plumbing through every caller), names the
/// function as well as the line once a reader looks it up in DWARF (a `Location` gives only
/// file:line), and is the same kind of value for the kernel and for a user program, whose pc is
/// all the kernel can know of it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AllocSite {
    /// Return address of the call to the kernel's `alloc_pages`: the call instruction ends
    /// there, so a reader looks up `site - 1` (as a backtrace does). 0 = unknown.
    pub site: u64,
    /// Address of the program's `ecall` instruction that asked for the pages; 0 = the kernel
    /// asked on its own behalf.
    pub user_site: u64,
    /// The program (archive name) `user_site` belongs to; "" when `user_site` is 0.
    pub user_program: &'static str,
}

impl AllocSite {
    /// Nothing recorded.
    pub const NONE: AllocSite = AllocSite {
        site: 0,
        user_site: 0,
        user_program: "",
    };
}

/// The tracker's header, exported as `alloc_tracker`. See docs/tracker-abi.md for each field.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TrackerHeader {
    pub magic: u64,
    pub abi_version: u32,
    pub capacity: u32,
    /// Odd while a change is in progress, even otherwise.
    pub generation: u64,
    /// 1 + highest slot index ever used.
    pub high_water: u64,
    pub failed_allocs: u64,
    pub invalid_frees: u64,
    pub total_allocs: u64,
    pub total_frees: u64,
    pub reclaimed_allocs: u64,
    pub reclaimed_pages: u64,
    /// Sequence number the next event will get.
    pub event_head: u64,
    pub ram_base: u64,
    pub ram_pages: u64,
    /// First page the page allocator manages; RAM below it (firmware, kernel image) is never
    /// handed out, and every page from here on is either tracked or free.
    pub alloc_base: u64,
    pub free_pages: u64,
    pub tracked_pages: u64,
    /// Frequency of the `time` CSR in Hz (the device tree's `timebase-frequency`), stamped at
    /// `init`: the unit of every `time` field, in entries and events.
    pub timebase_hz: u64,
    /// Differs between boots, never 0 once initialised, stamped at `init` and never changed
    /// after: a reader that sees it change knows the guest rebooted, whatever the generation.
    pub boot_nonce: u64,
}

impl TrackerHeader {
    pub const EMPTY: TrackerHeader = TrackerHeader {
        magic: 0,
        abi_version: 0,
        capacity: 0,
        generation: 0,
        high_water: 0,
        failed_allocs: 0,
        invalid_frees: 0,
        total_allocs: 0,
        total_frees: 0,
        reclaimed_allocs: 0,
        reclaimed_pages: 0,
        event_head: 0,
        ram_base: 0,
        ram_pages: 0,
        alloc_base: 0,
        free_pages: 0,
        tracked_pages: 0,
        timebase_hz: 0,
        boot_nonce: 0,
    };
}

/// What an [`AllocEvent`] records.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventKind {
    /// Never written: an empty ring record.
    None = 0,
    Alloc = 1,
    Free = 2,
    ExitReclaim = 3,
    AllocFailed = 4,
    InvalidFree = 5,
}

/// `AllocEvent::slot` of events that concern no slot (`AllocFailed`, `InvalidFree`).
pub const NO_SLOT: u32 = u32::MAX;

/// One record of the `alloc_events` ring; sequence number `seq` lives at `seq % EVENT_RING_LEN`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AllocEvent {
    pub seq: u64,
    pub kind: EventKind,
    pub owner: Pid,
    /// The `alloc_table` slot the event filled (`Alloc`) or emptied (`Free`, `ExitReclaim`);
    /// [`NO_SLOT`] otherwise. With it a reader can follow the table from the events alone.
    pub slot: u32,
    pub pa: u64,
    pub npages: u64,
    /// The allocation's tag, or for `InvalidFree` the reason.
    pub tag: &'static str,
    /// `time` CSR ticks (`TrackerHeader::timebase_hz` per second).
    pub time: u64,
    /// The allocation's sites (as in [`AllocEntry`]) for `Alloc`, `Free`, `ExitReclaim` and
    /// `AllocFailed`; 0 for `InvalidFree`.
    pub site: u64,
    pub user_site: u64,
    /// The program `user_site` belongs to (its archive name), for `Alloc`, `AllocFailed` and
    /// `ExitReclaim` with a `user_site`: the process may be gone by the time a reader sees the
    /// event. "" otherwise (a `Free`'s owner is the live process that freed, or the kernel).
    pub user_program: &'static str,
}

impl AllocEvent {
    pub const EMPTY: AllocEvent = AllocEvent {
        seq: 0,
        kind: EventKind::None,
        owner: 0,
        slot: NO_SLOT,
        pa: 0,
        npages: 0,
        tag: "",
        time: 0,
        site: 0,
        user_site: 0,
        user_program: "",
    };
}

/// Bytes of a process name (`ProcInfo::name`), NUL-padded: at most `PROC_NAME_LEN - 1`
/// characters are kept.
pub const PROC_NAME_LEN: usize = 16;

/// A process's state as exported in `proc_table`.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProcState {
    Unused = 0,
    Runnable = 1,
    Running = 2,
    Sleeping = 3,
    Waiting = 4,
    Zombie = 5,
}

/// One record of the exported `proc_table`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProcInfo {
    /// 0 for an unused record.
    pub pid: Pid,
    pub parent: Pid,
    pub state: ProcState,
    /// Program name, NUL-padded.
    pub name: [u8; PROC_NAME_LEN],
    /// Hart id of the hart running the process while `state` is `Running`, else `NO_HART`.
    pub hart: u32,
}

impl ProcInfo {
    pub const EMPTY: ProcInfo = ProcInfo {
        pid: 0,
        parent: 0,
        state: ProcState::Unused,
        name: [0; PROC_NAME_LEN],
        hart: NO_HART,
    };
}

/// `ProcInfo::hart` of a process that is not running on any hart.
pub const NO_HART: u32 = u32::MAX;

/// Why a free was refused; also the `tag` of its `InvalidFree` event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FreeError {
    /// No live allocation starts at this address and its page is not free: never tracked.
    Untracked,
    /// No live allocation starts at this address and the allocator already has the page free.
    DoubleFree,
    /// An allocation starts here, but with another size (`tracked` pages).
    WrongSize { tracked: u64 },
    /// The allocation belongs to another PID (`owner`).
    NotOwner { owner: Pid },
}

impl FreeError {
    /// The reason as it appears in an `InvalidFree` event's tag.
    pub fn reason(&self) -> &'static str {
        match self {
            FreeError::Untracked => "untracked",
            FreeError::DoubleFree => "double_free",
            FreeError::WrongSize { .. } => "wrong_size",
            FreeError::NotOwner { .. } => "not_owner",
        }
    }
}
