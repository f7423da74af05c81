//! The `dwarf` layer against the real kernel ELF (`build/kernel.elf`, or `$LEAKSCOPE_KERNEL_ELF`):
//! every tracker symbol of docs/tracker-abi.md is found and its layout decoded by field name.
//!
//! Ignored by default because the ELF must be built first; `make test` runs it:
//! `cargo test -p inspector --test dwarf_kernel -- --ignored`.

mod common;

use common::qemu::kernel_elf;
use inspector::dwarf::{DebugInfo, FieldKind};

fn load() -> DebugInfo {
    let path = kernel_elf();
    DebugInfo::load(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Element struct layout of an array global, requiring every named field.
fn array_of(
    info: &DebugInfo,
    symbol: &str,
    fields: &[&str],
) -> (u64, inspector::dwarf::StructLayout) {
    let g = info.global(symbol).unwrap();
    let sym = info.elf().symbol(symbol).unwrap();
    assert_eq!(
        g.address, sym.address,
        "{symbol}: DWARF and symbol table agree"
    );
    let a = info
        .array_layout(g.ty)
        .unwrap_or_else(|e| panic!("{symbol}: {e}"));
    let s = info.struct_layout(a.element).unwrap();
    assert_eq!(a.stride, s.size);
    assert_eq!(g.size, a.stride * a.len, "{symbol}");
    for f in fields {
        s.require(f).unwrap_or_else(|e| panic!("{symbol}: {e}"));
    }
    (a.len, s)
}

#[test]
#[ignore = "needs build/kernel.elf: run with make test"]
fn kernel_elf_tracker_symbols_and_layouts() {
    let info = load();
    assert_eq!(info.address_size(), 8, "riscv64");

    let (len, entry) = array_of(
        &info,
        "alloc_table",
        &["used", "owner", "pa", "npages", "tag", "time"],
    );
    assert_eq!(len, 8192, "MAX_TRACKED_ALLOCS");
    assert!(matches!(
        entry.require("tag").unwrap().kind,
        FieldKind::Str(_)
    ));
    assert_eq!(entry.require("pa").unwrap().size, 8);

    let (len, ev) = array_of(
        &info,
        "alloc_events",
        &["seq", "kind", "owner", "pa", "npages", "tag", "time"],
    );
    assert_eq!(len, 1024, "EVENT_RING_LEN");
    match &ev.require("kind").unwrap().kind {
        FieldKind::Enum { enumerators, .. } => {
            let names: Vec<&str> = enumerators.iter().map(|e| e.name.as_str()).collect();
            for n in ["Alloc", "Free", "ExitReclaim", "AllocFailed", "InvalidFree"] {
                assert!(names.contains(&n), "EventKind lacks {n}: {names:?}");
            }
        }
        other => panic!("EventKind decoded as {other:?}"),
    }

    let (_, procs) = array_of(&info, "proc_table", &["pid", "parent", "state", "name"]);
    assert!(matches!(
        procs.require("state").unwrap().kind,
        FieldKind::Enum { .. }
    ));
    assert_eq!(procs.require("name").unwrap().size, 16);

    let hdr = info.global("alloc_tracker").unwrap();
    let h = info.struct_layout(hdr.ty).unwrap();
    for f in [
        "magic",
        "abi_version",
        "capacity",
        "generation",
        "high_water",
        "failed_allocs",
        "invalid_frees",
        "total_allocs",
        "total_frees",
        "reclaimed_allocs",
        "reclaimed_pages",
        "event_head",
        "ram_base",
        "ram_pages",
        "free_pages",
        "tracked_pages",
    ] {
        h.require(f).unwrap();
    }

    let count = info.global("alloc_table_count").unwrap();
    assert_eq!(count.size, 8);

    let id = info.global("leakscope_build_id").unwrap();
    assert_eq!(id.size, 16);
    let mut stamp = [0u8; 16];
    assert!(
        info.elf().read_static(id.address, &mut stamp),
        "build id has file contents"
    );

    for f in [
        "track_alloc",
        "track_free",
        "free_all_tracked_for_pid",
        "free_proc",
    ] {
        let func = info.function(f).unwrap_or_else(|e| panic!("{e}"));
        assert!(func.high > func.low, "{f} has a size");
        assert!(info.location(func.low).is_some(), "{f} has line info");
        let bp = info.breakpoint_address(&func).unwrap();
        assert!(
            bp >= func.low && bp < func.high,
            "{f}: breakpoint {bp:#x} inside {func:?}"
        );
        let loc = info.user_location(bp).unwrap();
        assert!(loc.file.ends_with(".rs") && loc.line > 0, "{f}: {loc:?}");
    }
}
