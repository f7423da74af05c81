//! Call sites in the tracker's records, on the Rust tracker fixture (real rustc DWARF, no QEMU):
//! a kernel whose entries and events have `site`, `user_site` and `user_program` gets them
//! decoded and named, the JSON carrying `site`/`user_site` objects; a kernel of the ABI from
//! before sites (no such fields: `fixtures/abi_without_sites.rs`) still decodes, without sites
//! and without those keys.

mod common;

use inspector::cli::render;
use inspector::dwarf::DebugInfo;
use inspector::model::{EventKind, GroupBy, Site, Snapshot, NO_SITE};
use inspector::sites::SiteNames;
use inspector::snapshot::Sampler;
use inspector::target::MemTarget;
use std::path::Path;
use std::sync::Arc;

fn sample(obj: &Path, user_dir: &Path) -> (Sampler, Snapshot) {
    let info = Arc::new(DebugInfo::load(obj).unwrap());
    let mut target = MemTarget::new();
    for (addr, bytes) in common::fixtures::memory_regions(&info) {
        target.add_region(addr, bytes);
    }
    let mut sampler = Sampler::new(info.clone()).unwrap();
    // The fixture's ring holds two events (an Alloc, an InvalidFree): say so in the header.
    let (header, layout) = sampler.layout().header.clone().unwrap();
    let head = layout.require("event_head").unwrap();
    target.poke(header + head.offset, &2u64.to_le_bytes());
    if sampler.layout().entry.sites.is_some() {
        // No program ELFs there: user sites are named by program and address.
        sampler.set_site_names(Some(SiteNames::new(info).with_user_dir(user_dir)));
    }
    let snap = sampler.sample(&mut target).unwrap();
    (sampler, snap)
}

#[test]
fn site_fields_are_decoded_and_named_in_entries_and_events() {
    let dir = tempfile::tempdir().unwrap();
    let obj = common::fixtures::rust_tracker_object(dir.path());
    let (sampler, snap) = sample(&obj, dir.path());
    let fields = sampler.layout().entry.sites.as_ref().expect("site fields");
    // Entries have no program of their own: it is their owner's (pid 3 is `leak`).
    assert!(fields.user_site.is_some() && fields.user_program.is_none());

    let slot = |i: usize| snap.entries.iter().find(|e| e.slot == i).unwrap();
    assert_eq!(
        (slot(0).site.as_ref(), slot(0).user_site.as_ref()),
        (None, None)
    );
    // Slot 1: a program's request. The object has no code at the kernel address, and there is
    // no `leak` ELF in the user directory: both are named by their address, the user site
    // with its program, so grouping still tells them apart.
    let user = slot(1).user_site.as_deref().expect("user site");
    assert_eq!(
        user,
        &Site {
            function: "0x4000010e".into(),
            file: "leak".into(),
            line: 0
        }
    );
    let kernel = slot(1).site.as_deref().expect("kernel site");
    assert_eq!((kernel.file.as_str(), kernel.line), ("", 0));
    assert_eq!(slot(1).site_label(), "leak:0 0x4000010e");
    // Slot 3: the kernel's own request: a site, no user site.
    assert!(slot(3).site.is_some() && slot(3).user_site.is_none());
    assert_ne!(slot(3).site, slot(1).site, "another return address");

    let alloc = snap
        .events
        .iter()
        .find(|e| e.kind == EventKind::Alloc)
        .unwrap();
    assert_eq!(alloc.user_site.as_deref(), Some(user));
    assert_eq!(alloc.site.as_deref(), Some(kernel));
    let refused = snap
        .events
        .iter()
        .find(|e| e.kind == EventKind::InvalidFree)
        .unwrap();
    assert_eq!(
        (refused.site.as_ref(), refused.user_site.as_ref()),
        (None, None)
    );

    let v = render::snapshot_json(&snap);
    let e1 = v["entries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["slot"] == 1)
        .unwrap();
    assert_eq!(e1["user_site"]["file"], "leak");
    assert_eq!(e1["user_site"]["line"], 0);
    assert!(e1["site"]["function"].is_string());
    assert_eq!(v["events"][0]["user_site"]["function"], "0x4000010e");
}

#[test]
fn a_kernel_without_site_fields_still_decodes_without_sites() {
    let dir = tempfile::tempdir().unwrap();
    let obj = common::fixtures::rust_tracker_object_without_sites(dir.path());
    let (sampler, snap) = sample(&obj, dir.path());
    assert!(sampler.layout().entry.sites.is_none());
    let rows: Vec<(usize, u64, u32, &str)> = snap
        .entries
        .iter()
        .map(|e| (e.slot, e.npages, e.owner, &*e.tag))
        .collect();
    assert_eq!(
        rows,
        [
            (0, 4, 0, "kernel_heap"),
            (1, 1, 3, "alloc_pages"),
            (3, 16, 7, "user_stack")
        ]
    );
    assert!(snap
        .entries
        .iter()
        .all(|e| e.site.is_none() && e.user_site.is_none()));
    assert_eq!(snap.events.len(), 2);
    assert!(snap
        .events
        .iter()
        .all(|e| e.site.is_none() && e.user_site.is_none()));

    // The JSON keeps its old shape: no `site` keys at all.
    let v = render::snapshot_json(&snap);
    for e in v["entries"]
        .as_array()
        .unwrap()
        .iter()
        .chain(v["events"].as_array().unwrap())
    {
        assert!(
            e.get("site").is_none() && e.get("user_site").is_none(),
            "{e}"
        );
    }
    // Grouped by site, everything is in one group that says so, and it adds up.
    let groups = snap.groups(GroupBy::Site);
    assert_eq!(groups.len(), 1);
    assert_eq!(
        (groups[0].key.as_str(), groups[0].allocs, groups[0].pages),
        (NO_SITE, 3, 21)
    );
}

/// A change the kernel makes to its memory.
type Change = Box<dyn FnOnce(&mut MemTarget)>;

/// Guest memory that runs `change` once, just after the first read of `trigger` returned:
/// a kernel that changes its state between two of the reader's loads.
struct ChangesOnce {
    mem: MemTarget,
    trigger: u64,
    change: Option<Change>,
}

impl inspector::target::GuestMemory for ChangesOnce {
    fn read_guest(
        &mut self,
        addr: u64,
        buf: &mut [u8],
    ) -> Result<(), inspector::target::TargetError> {
        let r = self.mem.read_guest(addr, buf);
        if addr == self.trigger {
            if let Some(change) = self.change.take() {
                change(&mut self.mem);
            }
        }
        r
    }
}

#[test]
fn a_process_born_as_a_live_read_begins_names_its_user_sites() {
    use inspector::target::Target;
    let dir = tempfile::tempdir().unwrap();
    let obj = common::fixtures::rust_tracker_object(dir.path());
    let info = Arc::new(DebugInfo::load(&obj).unwrap());
    let mut mem = MemTarget::new();
    for (addr, bytes) in common::fixtures::memory_regions(&info) {
        mem.add_region(addr, bytes);
    }
    mem.halt().unwrap();
    let mut sampler = Sampler::new(info.clone()).unwrap();
    sampler.set_site_names(Some(SiteNames::new(info.clone()).with_user_dir(dir.path())));
    let layout = sampler.layout().clone();
    let (header, h) = layout.header.clone().unwrap();
    let generation = header + h.require("generation").unwrap().offset;
    let used =
        layout.table.array.element_address(layout.table.address, 1) + layout.entry.used.offset;
    let procs = layout.procs.clone().unwrap();
    let pid =
        procs.array.element_address(procs.address, 3) + procs.record.require("pid").unwrap().offset;
    let count = info.global("alloc_table_count").unwrap().address;
    // Before: pid 3 (`leak`) is not there yet, nor its allocation in slot 1.
    mem.poke(used, &[0]);
    mem.poke(pid, &0u32.to_le_bytes());
    mem.poke(count, &2u64.to_le_bytes());
    // As the read starts, the kernel creates pid 3, which allocates: one whole change.
    let change = move |m: &mut MemTarget| {
        m.poke(pid, &3u32.to_le_bytes());
        m.poke(used, &[1]);
        m.poke(count, &3u64.to_le_bytes());
        m.poke(generation, &44u64.to_le_bytes());
    };
    let mut live = ChangesOnce {
        mem,
        trigger: generation,
        change: Some(Box::new(change)),
    };
    let snap = sampler.sample_live(&mut live).unwrap();
    let entry = snap
        .entries
        .iter()
        .find(|e| e.slot == 1)
        .expect("slot 1 read");
    assert_eq!(entry.owner, 3);
    assert_eq!(
        entry.user_site.as_deref().map(|s| s.file.as_str()),
        Some("leak"),
        "named by its owner's program, read after the tracker"
    );
    assert!(snap.process(3).is_some());
}
