//! Taking snapshots: halt the guest, read what changed, resume. Owns the reading protocol of
//! docs/tracker-abi.md and the decoding of raw records into the `model` by field name.
//!
//! One snapshot: halt → read `alloc_tracker` → if `generation` is odd, resume, wait briefly and
//! retry (a torn entry is never reported) → if `generation` moved since the previous snapshot,
//! read `alloc_table[0 .. high_water]`, else reuse the previous entries → read the events from
//! the ring since the previous `event_head` → read `proc_table` → resume. The pause (halt to
//! resume) is measured and reported per snapshot.
//!
//! Bounds: the layout is checked ([`TrackerLayout::check`]) before the guest is halted, and no
//! read is larger than the guest's RAM (`ram_pages` of the header, when it says) or
//! [`MAX_SPAN_BYTES`]: a layout that does not describe the running kernel gives an error, and
//! the guest runs again, rather than an attempt to allocate what the guest cannot hold.
//!
//! A kernel with only the chapter's table (no header, no ring): every snapshot reads the whole
//! table, is taken only with the guest outside the functions that write it (`quiescent`), and
//! its events are derived by comparing snapshots (`derived`).

mod derived;
mod events;
mod follow;
mod layout;
mod live;
mod procs;
mod quiescent;
mod readers;
mod site_fields;

/// An event's `slot` when it names no table slot (the ABI's `NO_SLOT`, docs/tracker-abi.md).
const NO_SLOT: u64 = u32::MAX as u64;

pub use derived::derive as derive_events;
pub use layout::{
    EntryFields, RecordArray, Scalar, SiteFields, TrackerLayout, MAX_BUILD_ID_BYTES,
    MAX_HEADER_BYTES, MAX_RECORDS, MAX_SPAN_BYTES,
};
pub use live::LIVE_BOUND;
pub use quiescent::{TrackerCode, TRACKER_WRITERS};

use crate::dwarf::{DebugInfo, DwarfError, FieldLayout, StrRef};
use crate::model::{Entry, Header, Process, ReadPath, Snapshot};
use crate::riscv::PAGE_SIZE;
use crate::sites::{AddressHasher, SiteNames};
use crate::target::{GuestMemory, HaltGuard, Target, TargetError};
use follow::follow_events;
use std::collections::HashMap;
use std::hash::BuildHasherDefault;
use std::sync::Arc;
use std::time::Duration;

/// Attempts to find the generation even before giving up on a snapshot.
const TORN_RETRIES: u32 = 50;
/// How long the guest runs between two such attempts.
const TORN_BACKOFF: Duration = Duration::from_millis(1);
/// Longest tag or name read from guest memory.
const MAX_STRING: u64 = 128;

#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    #[error(transparent)]
    Target(#[from] TargetError),
    #[error(
        "the tracker is not initialised yet (alloc_tracker.magic is {found:#x}): the kernel is \
         still booting; try again in a moment"
    )]
    NotInitialised { found: u64 },
    #[error(
        "the tracker stayed mid-change (odd generation, or the guest inside a function that \
         writes alloc_table) over {TORN_RETRIES} attempts: is the guest stopped inside a \
         tracker function by a breakpoint? continue it and retry"
    )]
    Torn,
    #[error(
        "this kernel exports no generation counter (alloc_tracker.generation), so its table \
         cannot be read while it runs: read it through the GDB stub (--gdb instead of --ram)"
    )]
    NoGeneration,
    #[error(
        "the ELF does not match the running kernel (leakscope_build_id differs): pass the ELF \
         that QEMU booted, or rebuild and restart (make kernel, then make qemu)"
    )]
    BuildIdMismatch,
    #[error(transparent)]
    Layout(#[from] DwarfError),
    #[error(
        "reading {what} would take {bytes} bytes, more than the guest's RAM or the inspector's \
         limit ({limit} bytes): the ELF does not describe the running kernel's tracker; pass \
         the ELF that QEMU booted"
    )]
    TooLarge {
        what: &'static str,
        bytes: u64,
        limit: u64,
    },
}

/// Serves bytes of the ELF file's static data at a guest address; false if the ELF has none there.
pub type StaticReader = Box<dyn Fn(u64, &mut [u8]) -> bool + Send>;

/// Reads snapshots through a [`TrackerLayout`]; keeps what it needs to read only what changed.
pub struct Sampler {
    /// Shared so a read can hold it while it borrows the sampler mutably (no per-read clone).
    layout: std::sync::Arc<TrackerLayout>,
    /// Tag and name strings by (pointer, length), read once.
    strings: HashMap<(u64, u64), Arc<str>, BuildHasherDefault<AddressHasher>>,
    /// The last string looked up: a table's entries mostly repeat a few tags, so most lookups
    /// end here without hashing.
    last_string: Option<((u64, u64), Arc<str>)>,
    /// Static string bytes from the ELF file, so `&'static str` tags cost no guest read.
    elf_strings: StaticReader,
    previous: Option<Snapshot>,
    /// Sequence number of the next event to read.
    next_event: Option<u64>,
    /// Reusable read buffer.
    buf: Vec<u8>,
    /// Without a generation counter: the code that writes the table, where no read is taken.
    tracker_code: Option<TrackerCode>,
    /// Without an event ring: the sequence number of the next derived event.
    derived_head: u64,
    /// Names the site fields (`None`: sites are left out of the snapshots).
    site_names: Option<SiteNames>,
    /// Process names by PID from the latest read of `proc_table`: the program of an entry's
    /// user site is its owner's.
    proc_names: HashMap<u32, Arc<str>>,
    /// The raw bytes of the last `proc_table` read and what they decoded to.
    last_procs: Option<(Vec<u8>, Vec<Process>)>,
    /// The site fields of the event ring's records, if it has them.
    event_sites: Option<Arc<SiteFields>>,
    /// The layout's fields as readers, resolved once (shared like `layout`).
    readers: Arc<readers::Readers>,
}

impl Sampler {
    /// A sampler for the kernel described by `debug`.
    pub fn new(debug: std::sync::Arc<DebugInfo>) -> Result<Sampler, crate::dwarf::DwarfError> {
        let layout = TrackerLayout::resolve(&debug)?;
        let code = (!layout.has_generation()).then(|| TrackerCode::resolve(&debug));
        let site_names = layout
            .entry
            .sites
            .is_some()
            .then(|| SiteNames::new(debug.clone()));
        let elf_strings =
            Box::new(move |addr: u64, buf: &mut [u8]| debug.elf().read_static(addr, buf));
        let mut sampler = Sampler::with_layout(layout, elf_strings);
        sampler.set_tracker_code(code);
        sampler.set_site_names(site_names);
        Ok(sampler)
    }

    /// A sampler over an explicit layout; `elf_strings` serves static bytes (or returns false).
    pub fn with_layout(layout: TrackerLayout, elf_strings: StaticReader) -> Sampler {
        let event_sites = layout
            .events
            .as_ref()
            .and_then(|e| SiteFields::resolve(&e.record))
            .map(Arc::new);
        Sampler {
            readers: Arc::new(readers::Readers::of(&layout)),
            layout: std::sync::Arc::new(layout),
            strings: HashMap::default(),
            last_string: None,
            elf_strings,
            previous: None,
            next_event: None,
            buf: Vec::new(),
            tracker_code: None,
            derived_head: 0,
            site_names: None,
            proc_names: HashMap::new(),
            last_procs: None,
            event_sites,
        }
    }

    /// The code no read may be taken in (see `quiescent`); [`new`](Self::new) sets it for a
    /// kernel without a generation counter.
    pub fn set_tracker_code(&mut self, code: Option<TrackerCode>) {
        self.tracker_code = code;
    }

    pub fn layout(&self) -> &TrackerLayout {
        &self.layout
    }

    /// Forgets the previous snapshot: the next one reads everything (after a reconnect).
    pub fn reset(&mut self) {
        self.previous = None;
        self.next_event = None;
        self.last_procs = None;
    }

    /// Checks that the ELF's build stamp is the one in guest memory. Halts briefly.
    pub fn check_build_id<T: Target + ?Sized>(
        &mut self,
        target: &mut T,
    ) -> Result<(), SnapshotError> {
        let Some((addr, want)) = self.layout.build_id.clone() else {
            return Ok(());
        };
        let mut got = vec![0; want.len()];
        let mut guard = HaltGuard::new(target)?;
        guard.read_memory(addr, &mut got)?;
        guard.resume()?;
        if got == want {
            Ok(())
        } else {
            Err(SnapshotError::BuildIdMismatch)
        }
    }

    /// Takes one snapshot; the guest runs again when this returns (unless it was halted by
    /// someone else before, e.g. at a breakpoint: then it stays halted).
    pub fn sample<T: Target + ?Sized>(
        &mut self,
        target: &mut T,
    ) -> Result<Snapshot, SnapshotError> {
        // Before the halt: an unchecked layout (`with_layout`) must not make us read absurd spans
        // with the guest stopped.
        self.layout.check()?;
        let mut pause = Duration::ZERO;
        for _ in 0..TORN_RETRIES {
            let mut guard = HaltGuard::new(target)?;
            let header = self.read_header(&mut *guard)?;
            if header.generation % 2 == 1 || self.inside_tracker_code(&mut *guard)? {
                if guard.will_resume() {
                    pause += guard.resume()?;
                    std::thread::sleep(TORN_BACKOFF);
                    continue;
                }
                // Held mid-change by someone else (a debugger stop inside the tracker): the
                // guest may not run, so report the last consistent state, marked as such.
                return self.stale();
            }
            let rebooted = self.is_new_boot(&header);
            if rebooted {
                self.reset();
            }
            let snap = self.read_rest(&mut *guard, header, true);
            pause += guard.resume()?;
            let mut snap = snap?;
            snap.pause_us = pause.as_micros() as u64;
            snap.mid_change = false;
            snap.rebooted = rebooted;
            self.derive_events(&mut snap);
            self.keep(&snap);
            return Ok(snap);
        }
        Err(SnapshotError::Torn)
    }

    /// The last consistent snapshot, marked `mid_change` (the guest is inside a tracker change
    /// that cannot be waited out); the events since stay unread until the change is complete.
    /// [`SnapshotError::Torn`] before the first snapshot.
    fn stale(&self) -> Result<Snapshot, SnapshotError> {
        let mut snap = self.previous.clone().ok_or(SnapshotError::Torn)?;
        snap.events.clear();
        snap.missed_events = 0;
        snap.table_read = false;
        snap.pause_us = 0;
        snap.mid_change = true;
        snap.rebooted = false;
        Ok(snap)
    }

    /// True when `header` is of another boot than the previous snapshot: nothing of that one
    /// (entries, event sequence) applies, even when the generation happens to be equal.
    fn is_new_boot(&self, header: &Header) -> bool {
        self.previous
            .as_ref()
            .is_some_and(|p| p.header.boot_nonce != header.boot_nonce)
    }

    /// Makes `snap` the state the next snapshot reads changes against.
    fn keep(&mut self, snap: &Snapshot) {
        self.next_event = Some(snap.header.event_head);
        // Without its events: changes are read against the entries, the header and the
        // processes, and copying up to a ring's worth of events would cost as much as the
        // rest of a read.
        self.previous = Some(Snapshot {
            header: snap.header.clone(),
            entries: snap.entries.clone(),
            procs: snap.procs.clone(),
            events: Vec::new(),
            ..*snap
        });
    }

    fn read_header<T: GuestMemory + ?Sized>(&mut self, t: &mut T) -> Result<Header, SnapshotError> {
        let capacity = self.layout.table.array.len;
        let Some((addr, layout)) = &self.layout.header else {
            // No header (a kernel with the chapter's bare table): the whole table is read every time.
            return Ok(Header {
                capacity,
                high_water: capacity,
                bare: true,
                ..Header::default()
            });
        };
        read_into(t, &mut self.buf, *addr, layout.size as usize)?; // checked: MAX_HEADER_BYTES
        let b = &self.buf;
        let h = &self.readers.header;
        let get = |f: &Option<readers::Int>| readers::or_zero(f, b);
        if let Some(magic) = h.magic.as_ref().and_then(|f| f.read(b)) {
            if magic != tracker_magic(self.layout.endian) {
                return Err(SnapshotError::NotInitialised { found: magic });
            }
        }
        Ok(Header {
            capacity,
            count: 0,
            generation: get(&h.generation),
            high_water: h
                .high_water
                .as_ref()
                .and_then(|f| f.read(b))
                .unwrap_or(capacity)
                .min(capacity),
            failed_allocs: get(&h.failed_allocs),
            invalid_frees: get(&h.invalid_frees),
            total_allocs: get(&h.total_allocs),
            total_frees: get(&h.total_frees),
            reclaimed_allocs: get(&h.reclaimed_allocs),
            reclaimed_pages: get(&h.reclaimed_pages),
            event_head: get(&h.event_head),
            ram_base: get(&h.ram_base),
            ram_pages: get(&h.ram_pages),
            alloc_base: get(&h.alloc_base),
            free_pages: get(&h.free_pages),
            tracked_pages: get(&h.tracked_pages),
            timebase_hz: get(&h.timebase_hz),
            boot_nonce: get(&h.boot_nonce),
            bare: false,
        })
    }

    /// Everything after the header, with the guest halted and the generation even.
    ///
    /// The entries come, cheapest first, from: the previous snapshot when the generation has
    /// not moved; the previous snapshot with the ring's events applied, when every event
    /// since is still in the ring and they account exactly for the new count and pages;
    /// else from reading `alloc_table[0 .. high_water]`.
    /// `with_procs`: read the process table too (a live read takes it after its generation
    /// check: the table is not the tracker's, and the lock's window must stay short).
    fn read_rest<T: GuestMemory + ?Sized>(
        &mut self,
        t: &mut T,
        mut header: Header,
        with_procs: bool,
    ) -> Result<Snapshot, SnapshotError> {
        let limit = span_limit(&header);
        // Before the entries: their user sites are named by their owners' programs.
        let procs = if with_procs {
            self.read_procs(t, limit)?
        } else {
            Vec::new()
        };
        let count = match &self.layout.count {
            Some(c) => {
                read_into(t, &mut self.buf, c.address, c.size)?;
                Some(self.layout.endian.read_uint(&self.buf) as u64)
            }
            None => None,
        };
        let (events, missed_events) = self.read_events(t, header.event_head, limit)?;
        let previous = self
            .previous
            .as_ref()
            .filter(|_| self.layout.has_generation());
        let derived = match previous {
            Some(p) if p.header.generation == header.generation => Some(p.entries.clone()),
            Some(p) if missed_events == 0 => {
                follow_events(p, &events, count, &header).map(Arc::new)
            }
            _ => None,
        };
        let table_read = derived.is_none();
        let entries = match derived {
            Some(entries) => entries,
            None => Arc::new(self.read_entries(t, header.high_water, limit)?),
        };
        header.count = count.unwrap_or(entries.len() as u64);
        if self.layout.header.is_none() {
            header.tracked_pages = entries.iter().map(|e| e.npages).sum();
        }
        Ok(Snapshot {
            header,
            entries,
            procs,
            events,
            missed_events,
            pause_us: 0,
            table_read,
            mid_change: false,
            rebooted: false,
            read_path: ReadPath::Stub,
        })
    }

    fn read_entries<T: GuestMemory + ?Sized>(
        &mut self,
        t: &mut T,
        high_water: u64,
        limit: u64,
    ) -> Result<Vec<Entry>, SnapshotError> {
        let (addr, len) = checked_span(&self.layout.table, 0, high_water, "alloc_table", limit)?;
        let mut bytes = std::mem::take(&mut self.buf);
        read_into(t, &mut bytes, addr, len)?;
        let layout = Arc::clone(&self.layout);
        let readers = Arc::clone(&self.readers);
        let (f, r) = (&layout.entry, &readers.entry);
        let stride = layout.table.array.stride as usize; // checked: non-zero, fits the span
        let mut entries = Vec::with_capacity(high_water as usize);
        // Runs of entries share a tag and sites (one process's pages from one line): an entry
        // whose raw tag bytes, or whose (site, user site, owner), equal a recent one's shares
        // its strings and sites without a lookup.
        let mut tags = readers::Recent::new();
        let mut sites = readers::Recent::new();
        for (slot, rec) in bytes.chunks_exact(stride).enumerate() {
            if r.used.read(rec).unwrap_or(0) == 0 {
                continue;
            }
            let owner = r.owner.read(rec).unwrap_or(0);
            let tag = match r.tag.and_then(|t| t.bytes(rec)) {
                Some(raw) => tags.get_or(raw, || self.string(t, &f.tag, rec))?,
                None => self.string(t, &f.tag, rec)?,
            };
            let (site, user_site) = match &f.sites {
                Some(fields) => {
                    let key = (
                        readers::or_zero(&r.site, rec),
                        readers::or_zero(&r.user_site, rec),
                        owner,
                    );
                    sites.get_or(key, || self.sites(t, fields, rec))?
                }
                None => (None, None),
            };
            entries.push(Entry {
                slot,
                pa: r.pa.read(rec).unwrap_or(0),
                npages: r.npages.read(rec).unwrap_or(0),
                owner: owner as u32,
                tag,
                time: r.time.as_ref().and_then(|f| f.read(rec)).unwrap_or(0),
                site,
                user_site,
            });
        }
        self.buf = bytes;
        Ok(entries)
    }

    /// The string a `&str`/`char *` field points to: from the cache, else the ELF file's
    /// static data, else guest memory.
    pub(super) fn string<T: GuestMemory + ?Sized>(
        &mut self,
        t: &mut T,
        f: &FieldLayout,
        rec: &[u8],
    ) -> Result<Arc<str>, SnapshotError> {
        let Some(sref) = f.read_str(rec) else {
            return Ok(Arc::from(""));
        };
        let key = (sref.ptr, str_len_key(&sref));
        if let Some((k, s)) = &self.last_string {
            if *k == key {
                return Ok(s.clone());
            }
        }
        if let Some(s) = self.strings.get(&key) {
            self.last_string = Some((key, s.clone()));
            return Ok(s.clone());
        }
        let elf = &self.elf_strings;
        let from_elf = sref.fetch(
            MAX_STRING,
            |addr, buf| if elf(addr, buf) { Ok(()) } else { Err(()) },
        );
        let s: Arc<str> = match from_elf {
            Ok(s) => s.into(),
            Err(()) => sref
                .fetch(MAX_STRING, |addr, buf| t.read_guest(addr, buf))?
                .into(),
        };
        self.strings.insert(key, s.clone());
        self.last_string = Some((key, s.clone()));
        Ok(s)
    }
}

pub(super) fn str_len_key(s: &StrRef) -> u64 {
    match s.len {
        crate::dwarf::StrLen::Exact(n) => n,
        crate::dwarf::StrLen::NulTerminated { .. } => u64::MAX,
    }
}

pub(super) fn nul_terminated(bytes: &[u8]) -> String {
    let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
    String::from_utf8_lossy(&bytes[..end]).into_owned()
}

/// `TRACKER_MAGIC` ("LEAKSCOP") as the kernel's byte order reads it into a u64.
fn tracker_magic(endian: crate::dwarf::Endian) -> u64 {
    endian.read_uint(b"LEAKSCOP") as u64
}

/// The most bytes one read of a tracker array may take: the guest's RAM if the header says how
/// much there is, and never more than [`MAX_SPAN_BYTES`].
pub(crate) fn span_limit(header: &Header) -> u64 {
    match header.ram_pages.checked_mul(PAGE_SIZE) {
        Some(ram) if ram > 0 => ram.min(MAX_SPAN_BYTES),
        _ => MAX_SPAN_BYTES,
    }
}

/// [`RecordArray::span`] of elements `start..end` of `array`, refused if it is over `limit`.
pub(super) fn checked_span(
    array: &RecordArray,
    start: u64,
    end: u64,
    what: &'static str,
    limit: u64,
) -> Result<(u64, usize), SnapshotError> {
    let bytes = end.saturating_sub(start).saturating_mul(array.array.stride);
    match array.span(start, end) {
        Some(span) if bytes <= limit => Ok(span),
        _ => Err(SnapshotError::TooLarge { what, bytes, limit }),
    }
}

/// Reads `len` bytes at `addr` into `buf` (resized).
pub(super) fn read_into<T: GuestMemory + ?Sized>(
    t: &mut T,
    buf: &mut Vec<u8>,
    addr: u64,
    len: usize,
) -> Result<(), TargetError> {
    buf.clear();
    buf.resize(len, 0);
    t.read_guest(addr, buf)
}
