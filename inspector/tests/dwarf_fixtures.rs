//! The `dwarf` layer against real compiler output: a C tracker built with the host's gcc (64-bit,
//! 32-bit, both field orders, big-endian through llvm-mc, debug sections compressed three ways),
//! the Rust tracker ABI built by rustc for riscv64, and C trackers of absurd sizes. Fixtures are
//! compiled at test time into a temporary directory.
//!
//! A fixture whose tool is missing is skipped with a line on the terminal (written past cargo's
//! output capture, so it shows without `--nocapture`); when `CI` is set, a missing tool that
//! scripts/setup.sh provides (gcc, binutils, llvm-mc) fails the test instead.
//!
//! Run: `cargo test -p inspector --test dwarf_fixtures`.

mod common;

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use inspector::dwarf::{DebugInfo, DwarfError, Endian, FieldKind, StrLen, Value};
use inspector::snapshot::Sampler;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

fn run(cmd: &mut Command) -> Result<(), String> {
    let out = cmd.output().map_err(|e| format!("{cmd:?}: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{cmd:?} failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

fn gcc(dir: &Path, out: &str, args: &[&str]) -> Result<PathBuf, String> {
    gcc_source(dir, "chapter_tracker.c", out, args)
}

fn gcc_source(dir: &Path, source: &str, out: &str, args: &[&str]) -> Result<PathBuf, String> {
    let obj = dir.join(out);
    run(Command::new("gcc")
        .args(args)
        .args(["-g", "-O0", "-c"])
        .arg(fixtures().join(source))
        .arg("-o")
        .arg(&obj))?;
    Ok(obj)
}

/// A fixture that cannot be built here. Under CI (`CI` set) a tool that scripts/setup.sh
/// installs must be there, so `setup_provides` makes it a failure; otherwise the skip is
/// written straight to the process's stderr, which cargo's test harness does not capture
/// (`eprintln!` output of a passing test would be hidden).
fn unavailable(what: &str, reason: &str, setup_provides: bool) {
    let msg = format!("SKIPPED {what}: {reason}");
    if setup_provides && std::env::var_os("CI").is_some() {
        panic!("{msg}\nCI must run this fixture: run scripts/setup.sh (make setup)");
    }
    // A leading newline: the harness may be mid-line, printing its progress.
    let _ = writeln!(std::io::stderr().lock(), "\n{msg}");
}

/// True where the C fixtures' tool chain is the one scripts/setup.sh sets up and these tests
/// were written for: gcc for x86-64, which also builds `-m32` objects of chapter_tracker.c
/// without a multilib (the file includes only gcc's own `<stddef.h>`), and whose assembly the
/// big-endian fixture rewrites.
const X86_64_HOST: bool = cfg!(target_arch = "x86_64");

/// 1-based line of the source line containing `marker`.
fn marker_line(file: &Path, marker: &str) -> u32 {
    let text = std::fs::read_to_string(file).unwrap();
    let i = text
        .lines()
        .position(|l| l.contains(marker))
        .unwrap_or_else(|| panic!("{marker} not in {file:?}"));
    i as u32 + 1
}

/// Reads a string the way the inspector would from guest memory, here from the ELF's sections.
fn read_string(info: &DebugInfo, r: inspector::dwarf::StrRef) -> String {
    r.fetch(4096, |addr, buf| {
        if info.elf().read_static(addr, buf) {
            Ok(())
        } else {
            Err(format!("no static data at {addr:#x}"))
        }
    })
    .unwrap()
}

struct Entry {
    used: i64,
    pa: u64,
    npages: u64,
    owner: i64,
    tag: String,
}

/// Decodes `alloc_table` and `alloc_table_count` by field name only.
fn decode_c_table(info: &DebugInfo) -> (Vec<Entry>, u64, Vec<u64>) {
    let table = info.global("alloc_table").unwrap();
    let array = info.array_layout(table.ty).unwrap();
    assert_eq!(array.len, 128, "MAX_TRACKED_ALLOCS from DW_AT_upper_bound");
    let layout = info.struct_layout(array.element).unwrap();
    assert_eq!(layout.type_name, "alloc_track_t");
    assert_eq!(array.stride, layout.size);
    assert_eq!(table.size, array.stride * 128);
    let asz = u64::from(info.address_size());
    assert_eq!(
        layout.require("pa").unwrap().size,
        asz,
        "paddr_t is unsigned long"
    );
    assert_eq!(layout.require("npages").unwrap().size, asz, "size_t");
    assert_eq!(layout.require("used").unwrap().kind, FieldKind::Int);
    assert!(
        matches!(layout.require("tag").unwrap().kind, FieldKind::Str(_)),
        "char * is a string"
    );

    let mut bytes = vec![0u8; table.size as usize];
    assert!(info.elf().read_static(table.address, &mut bytes));
    let f = |n: &str| layout.require(n).unwrap();
    let entries = (0..4)
        .map(|i| {
            let rec = array.element_bytes(&bytes, i).unwrap();
            Entry {
                used: f("used").read_i64(rec).unwrap(),
                pa: f("pa").read_u64(rec).unwrap(),
                npages: f("npages").read_u64(rec).unwrap(),
                owner: f("owner").read_i64(rec).unwrap(),
                tag: read_string(info, f("tag").read_str(rec).unwrap()),
            }
        })
        .collect();

    let count = info.global("alloc_table_count").unwrap();
    let mut cb = vec![0u8; count.size as usize];
    assert!(info.elf().read_static(count.address, &mut cb));
    let count = info.decode(count.ty, &cb).unwrap().as_u64().unwrap();
    let offsets = ["used", "pa", "npages", "owner", "tag"]
        .iter()
        .map(|n| f(n).offset)
        .collect();
    (entries, count, offsets)
}

fn check_c_object(obj: &Path, address_size: u8) -> Vec<u64> {
    check_c_object_as(obj, address_size, Endian::Little, true)
}

/// `with_code`: the object has `track_alloc` (all but the big-endian, data-only variants).
fn check_c_object_as(obj: &Path, address_size: u8, endian: Endian, with_code: bool) -> Vec<u64> {
    let info = DebugInfo::load(obj).unwrap();
    assert_eq!(info.address_size(), address_size);
    assert_eq!(info.endian(), endian);
    let (e, count, offsets) = decode_c_table(&info);
    assert_eq!(count, 3);
    assert_eq!(
        (e[0].used, e[0].pa, e[0].npages, e[0].owner),
        (1, 0x8020_0000, 4, 0)
    );
    assert_eq!(e[0].tag, "kernel_heap");
    assert_eq!(
        (e[1].used, e[1].pa, e[1].npages, e[1].owner, &*e[1].tag),
        (1, 0x8053_7000, 1, 3, "alloc_pages")
    );
    assert_eq!(
        (e[2].used, e[2].pa, &*e[2].tag),
        (0, 0, ""),
        "a null char * reads as empty"
    );
    assert_eq!((e[3].owner, e[3].npages, &*e[3].tag), (7, 16, "user_stack"));

    // The generic decoder agrees with the layout path.
    let table = info.global("alloc_table").unwrap();
    let array = info.array_layout(table.ty).unwrap();
    let mut rec = vec![0u8; array.stride as usize];
    assert!(info
        .elf()
        .read_static(array.element_address(table.address, 1), &mut rec));
    let v = info.decode(array.element, &rec).unwrap();
    assert_eq!(v.field("owner").and_then(Value::as_i64), Some(3));
    match v.field("tag") {
        Some(Value::Str(s)) => {
            assert!(matches!(s.len, StrLen::NulTerminated { .. }));
            assert_eq!(read_string(&info, *s), "alloc_pages");
        }
        other => panic!("tag decoded as {other:?}"),
    }

    // C enum and char array inside a struct array.
    let procs = info.global("proc_table").unwrap();
    let mut pb = vec![0u8; procs.size as usize];
    assert!(info.elf().read_static(procs.address, &mut pb));
    let pv = info.decode(procs.ty, &pb).unwrap();
    let p3 = pv.index(3).unwrap();
    assert_eq!(
        p3.field("state"),
        Some(&Value::Enum {
            type_name: "proc_state".into(),
            name: Some("ZOMBIE".into()),
            value: 5
        })
    );
    let name = p3.field("name").and_then(Value::as_bytes).unwrap();
    assert_eq!(&name[..5], b"leak\0");
    let pl = info
        .struct_layout(info.array_layout(procs.ty).unwrap().element)
        .unwrap();
    let rec1 = &pb[pl.size as usize..2 * pl.size as usize];
    assert_eq!(
        pl.require("state").unwrap().enum_name(rec1),
        Some("SLEEPING")
    );

    // Two-dimensional array with upper bounds.
    let grid = info.global("grid").unwrap();
    let gl = info.array_layout(grid.ty).unwrap();
    assert_eq!((gl.dims.clone(), gl.stride, gl.len), (vec![3, 5], 2, 15));
    let mut gb = vec![0u8; grid.size as usize];
    assert!(info.elf().read_static(grid.address, &mut gb));
    let gv = info.decode(grid.ty, &gb).unwrap();
    assert_eq!(
        gv.index(2).and_then(|r| r.index(4)),
        Some(&Value::UInt(0xbeef))
    );

    if !with_code {
        return offsets;
    }
    // Line table: file:line → address → file:line, and the function's range.
    let src = fixtures().join("chapter_tracker.c");
    let line = marker_line(&src, "LINE:owner");
    let f = info.function("track_alloc").unwrap();
    assert!(f.high > f.low);
    let matches = info.line_addresses("chapter_tracker.c", line).unwrap();
    assert_eq!(matches.len(), 1, "{matches:?}");
    assert_eq!(matches[0].line, line);
    let addr = matches[0].addresses[0];
    assert!(addr > f.low && addr < f.high, "{addr:#x} in {f:?}");
    let loc = info.location(addr).unwrap();
    assert_eq!(loc.line, line);
    assert!(loc.file.ends_with("chapter_tracker.c"), "{}", loc.file);
    assert_eq!(
        info.function_at(addr).map(|f| f.name),
        Some("track_alloc".to_string())
    );
    assert_eq!(info.user_location(addr).map(|l| l.line), Some(line));
    // `break track_alloc` lands after the prologue, inside the function, on a body line.
    let bp = info.breakpoint_address(&f).unwrap();
    assert!(bp > f.low && bp < f.high, "{bp:#x} in {f:?}");
    let body = marker_line(&src, "int slot =");
    assert_eq!(info.location(bp).map(|l| l.line), Some(body));
    // A line without code (the comment above the function) moves to the next line with code.
    let blank = marker_line(&src, "Two dimensions");
    let next = info.line_addresses("chapter_tracker.c", blank).unwrap();
    assert!(next[0].line > blank, "{next:?}");
    assert!(info.line_addresses("no_such_file.c", 1).unwrap().is_empty());

    offsets
}

#[test]
fn c_tracker_64_bit_both_field_orders() {
    let dir = tempfile::tempdir().unwrap();
    let plain =
        gcc(dir.path(), "chapter64.o", &[]).expect("host gcc must build the 64-bit fixture");
    let reordered = gcc(dir.path(), "chapter64r.o", &["-DREORDER"]).unwrap();
    let a = check_c_object(&plain, 8);
    let b = check_c_object(&reordered, 8);
    assert_ne!(
        a, b,
        "the two orders must have different offsets, or the test proves nothing"
    );
}

#[test]
fn c_tracker_32_bit_both_field_orders() {
    let dir = tempfile::tempdir().unwrap();
    let plain = match gcc(dir.path(), "chapter32.o", &["-m32"]) {
        Ok(o) => o,
        Err(e) => {
            unavailable("the 32-bit C fixture (gcc -m32)", &e, X86_64_HOST);
            return;
        }
    };
    let reordered = gcc(dir.path(), "chapter32r.o", &["-m32", "-DREORDER"]).unwrap();
    let a = check_c_object(&plain, 4);
    let b = check_c_object(&reordered, 4);
    assert_ne!(a, b);
}

/// A big-endian object of the C fixture: gcc's x86 assembly of the data-only variant
/// (`-DNO_CODE`: no instructions, only data and DWARF directives), reassembled by LLVM's
/// assembler for a big-endian target (s390x for 64-bit, powerpc for 32-bit). The data and the
/// DWARF come out in big-endian byte order, as a big-endian compiler would write them.
fn big_endian_object(dir: &Path, m32: bool) -> Result<PathBuf, String> {
    let asm = dir.join(if m32 { "chapter32.s" } else { "chapter64.s" });
    let mut cmd = Command::new("gcc");
    if m32 {
        cmd.arg("-m32");
    }
    run(cmd
        .args(["-S", "-g", "-O0", "-DNO_CODE"])
        .arg(fixtures().join("chapter_tracker.c"))
        .arg("-o")
        .arg(&asm))?;
    // `.value` (2 bytes) and `.align` (bytes on x86, a power of two elsewhere) are x86 dialect.
    let text: String = std::fs::read_to_string(&asm)
        .map_err(|e| e.to_string())?
        .lines()
        .map(|l| {
            let t = l.trim_start();
            let l = if let Some(rest) = t.strip_prefix(".value") {
                format!("\t.short{rest}")
            } else if let Some(rest) = t.strip_prefix(".align") {
                format!("\t.balign{rest}")
            } else {
                l.to_string()
            };
            l + "\n"
        })
        .collect();
    let be_asm = dir.join(if m32 { "be32.s" } else { "be64.s" });
    std::fs::write(&be_asm, text).map_err(|e| e.to_string())?;
    let obj = dir.join(if m32 { "be32.o" } else { "be64.o" });
    let triple = if m32 {
        "powerpc-unknown-linux-gnu"
    } else {
        "s390x-unknown-linux-gnu"
    };
    run(Command::new("llvm-mc")
        .arg(format!("-triple={triple}"))
        .arg("-filetype=obj")
        .arg(&be_asm)
        .arg("-o")
        .arg(&obj))?;
    Ok(obj)
}

#[test]
fn c_tracker_big_endian_64_and_32_bit() {
    let dir = tempfile::tempdir().unwrap();
    for (m32, address_size) in [(false, 8), (true, 4)] {
        match big_endian_object(dir.path(), m32) {
            Ok(obj) => {
                check_c_object_as(&obj, address_size, Endian::Big, false);
            }
            Err(e) => unavailable(
                &format!(
                    "the big-endian {}-bit C fixture (gcc{} -S and llvm-mc)",
                    address_size * 8,
                    if m32 { " -m32" } else { "" }
                ),
                &e,
                X86_64_HOST,
            ),
        }
    }
}

#[test]
fn errors_name_the_problem_and_the_next_step() {
    let dir = tempfile::tempdir().unwrap();
    let err = DebugInfo::load(fixtures().join("chapter_tracker.c")).unwrap_err();
    assert!(matches!(err, DwarfError::NotElf { .. }), "{err}");

    let stripped = dir.path().join("nodebug.o");
    run(Command::new("gcc")
        .args(["-g0", "-c"])
        .arg(fixtures().join("chapter_tracker.c"))
        .arg("-o")
        .arg(&stripped))
    .unwrap();
    let err = DebugInfo::load(&stripped).unwrap_err();
    assert!(matches!(err, DwarfError::NoDebugInfo { .. }), "{err}");
    assert!(err.to_string().contains("make kernel"), "{err}");

    let err = DebugInfo::load(dir.path().join("missing.elf")).unwrap_err();
    assert!(matches!(err, DwarfError::Io { .. }), "{err}");

    let obj = gcc(dir.path(), "chapter64.o", &[]).unwrap();
    let info = DebugInfo::load(&obj).unwrap();
    let err = info.global("alloc_tracker").unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, DwarfError::SymbolNotFound { .. }), "{msg}");
    assert!(
        msg.contains("alloc_tracker") && msg.contains("chapter64.o"),
        "{msg}"
    );
    let err = info
        .struct_layout(info.global("alloc_table_count").unwrap().ty)
        .unwrap_err();
    assert!(err.to_string().contains("expected a struct"), "{err}");
}

/// The compression format of the object's DWARF info section (`.debug_info` or `.zdebug_info`),
/// and the file offset of the section (where its `Elf64_Chdr` is, if it has one).
fn debug_info_compression(obj: &Path) -> (object::CompressionFormat, u64) {
    use object::{Object, ObjectSection};
    let data = std::fs::read(obj).unwrap();
    let file = object::File::parse(&*data).unwrap();
    let section = file.section_by_name(".debug_info").expect(".debug_info");
    let c = section.compressed_data().unwrap();
    let (start, _) = section.file_range().unwrap();
    (c.format, start)
}

/// The loader reads compressed debug sections: zlib with `SHF_COMPRESSED` (`gcc -gz=zlib`),
/// GNU `.zdebug_*` sections (`gcc -gz=zlib-gnu`) and zstd (`objcopy
/// --compress-debug-sections=zstd`) all decode exactly as the uncompressed object does. A
/// compressed section that claims an absurd size, or whose stream is corrupt, is a `Section`
/// error naming the section, never a huge allocation and never "no debug info".
#[test]
fn compressed_debug_sections_are_read() {
    use object::CompressionFormat;
    let dir = tempfile::tempdir().unwrap();
    let plain = gcc(dir.path(), "plain.o", &[]).unwrap();
    assert_eq!(debug_info_compression(&plain).0, CompressionFormat::None);
    let expected = check_c_object(&plain, 8);

    let zstd = dir.path().join("zstd.o");
    let variants: [(&str, CompressionFormat, Result<PathBuf, String>); 3] = [
        (
            "zlib",
            CompressionFormat::Zlib,
            gcc(dir.path(), "zlib.o", &["-gz=zlib"]),
        ),
        (
            "zlib-gnu (.zdebug_*)",
            CompressionFormat::Zlib,
            gcc(dir.path(), "zdebug.o", &["-gz=zlib-gnu"]),
        ),
        (
            "zstd",
            CompressionFormat::Zstandard,
            run(Command::new("objcopy")
                .arg("--compress-debug-sections=zstd")
                .arg(&plain)
                .arg(&zstd))
            .map(|()| zstd.clone()),
        ),
    ];
    for (name, format, obj) in variants {
        let obj = match obj {
            Ok(obj) => obj,
            Err(e) => {
                unavailable(&format!("the {name}-compressed C fixture"), &e, true);
                continue;
            }
        };
        assert_eq!(
            debug_info_compression(&obj).0,
            format,
            "{name}: the fixture must really be compressed, or the test proves nothing"
        );
        assert_eq!(check_c_object(&obj, 8), expected, "{name}");
    }

    // Damaged compressed sections (from the zlib object, SHF_COMPRESSED with an Elf64_Chdr).
    let zlib = dir.path().join("zlib.o");
    if !zlib.exists() {
        return;
    }
    let (_, start) = debug_info_compression(&zlib);
    let pristine = std::fs::read(&zlib).unwrap();
    let chdr = usize::try_from(start).unwrap();
    // ch_size (offset 8 in Elf64_Chdr): 1 TiB uncompressed, or more than zlib can expand to.
    let mut huge = pristine.clone();
    huge[chdr + 8..chdr + 16].copy_from_slice(&(1u64 << 40).to_le_bytes());
    let mut inflated = pristine.clone();
    inflated[chdr + 8..chdr + 16].copy_from_slice(&(512u64 << 20).to_le_bytes());
    // The zlib stream's header, right after the 24-byte Elf64_Chdr, zeroed.
    let mut corrupt = pristine.clone();
    corrupt[chdr + 24..chdr + 26].fill(0);
    for (name, bytes, says) in [
        ("huge", huge, "limit"),
        ("inflated", inflated, "more than zlib can expand to"),
        ("corrupt", corrupt, "zlib"),
    ] {
        let path = dir.path().join(format!("{name}.o"));
        std::fs::write(&path, bytes).unwrap();
        let err = DebugInfo::load(&path).unwrap_err();
        assert!(
            matches!(
                err,
                DwarfError::Section {
                    section: ".debug_info",
                    ..
                }
            ),
            "{name}: {err}"
        );
        assert!(err.to_string().contains(says), "{name}: {err}");
    }
}

/// Tracker symbols with absurd sizes (absurd_tracker.c, one bound broken per variant) are
/// refused when the layout is resolved, by name, before any guest is halted.
#[test]
fn absurd_tracker_sizes_are_refused_when_the_layout_is_resolved() {
    let dir = tempfile::tempdir().unwrap();
    let load = |variant: &str| -> Result<Sampler, DwarfError> {
        let args: Vec<String> = match variant {
            "" => vec![],
            v => vec![format!("-D{v}")],
        };
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let obj = gcc_source(
            dir.path(),
            "absurd_tracker.c",
            &format!("absurd_{variant}.o"),
            &args,
        )
        .expect("host gcc must build absurd_tracker.c");
        Sampler::new(Arc::new(DebugInfo::load(obj)?))
    };
    let plausible = load("").expect("the fixture without a -D is a plausible tracker");
    assert_eq!(plausible.layout().table.array.len, 16);
    assert_eq!(plausible.layout().procs.as_ref().unwrap().array.len, 4);

    for (variant, symbol, says) in [
        ("HUGE_TABLE", "alloc_table", "more than the limit"),
        ("HUGE_RING", "alloc_events", "more than the limit"),
        ("TOO_MANY_EVENTS", "alloc_events", "records, more than"),
        ("ZERO_SIZED_PROCS", "proc_table", "zero size"),
        ("HUGE_HEADER", "alloc_tracker", "bytes, not 1 to 65536"),
        ("HUGE_BUILD_ID", "leakscope_build_id", "more than the limit"),
    ] {
        let err = load(variant)
            .map(|_| ())
            .expect_err(&format!("{variant} must be refused"));
        let msg = err.to_string();
        assert!(
            matches!(err, DwarfError::Implausible { .. }),
            "{variant}: {msg}"
        );
        assert!(
            msg.contains(symbol) && msg.contains(says),
            "{variant}: {msg}"
        );
    }
}

// ---- Rust: the kernel's real ABI types, compiled by rustc for riscv64 ----

fn static_bytes(info: &DebugInfo, name: &str) -> (inspector::dwarf::Global, Vec<u8>) {
    let g = info.global(name).unwrap();
    let mut b = vec![0u8; g.size as usize];
    assert!(
        info.elf().read_static(g.address, &mut b),
        "{name} not in the ELF's sections"
    );
    (g, b)
}

#[test]
fn rust_tracker_riscv64() {
    let dir = tempfile::tempdir().unwrap();
    let info = DebugInfo::load(common::fixtures::rust_tracker_object(dir.path())).unwrap();
    assert_eq!((info.address_size(), info.endian()), (8, Endian::Little));

    // alloc_table: TrackerCell<[AllocEntry; 8192]>, seen through to the array.
    let (table, bytes) = static_bytes(&info, "alloc_table");
    assert!(
        table.qualified_name.ends_with("::alloc_table"),
        "{}",
        table.qualified_name
    );
    let array = info.array_layout(table.ty).unwrap();
    assert_eq!(array.len, 8192, "DW_AT_count");
    let entry = info.struct_layout(array.element).unwrap();
    assert_eq!(entry.type_name, "AllocEntry");
    for f in ["used", "owner", "pa", "npages", "tag", "time"] {
        entry.require(f).unwrap();
    }
    let tag = entry.require("tag").unwrap();
    assert!(
        matches!(tag.kind, FieldKind::Str(_)),
        "&str: {:?}",
        tag.kind
    );
    let rec = |i| array.element_bytes(&bytes, i).unwrap();
    let f = |n: &str| entry.require(n).unwrap();
    assert_eq!(f("used").read_u64(rec(1)), Some(1));
    assert_eq!(f("owner").read_u64(rec(1)), Some(3));
    assert_eq!(f("pa").read_u64(rec(1)), Some(0x8053_7000));
    assert_eq!(f("time").read_u64(rec(3)), Some(300));
    let s = tag.read_str(rec(1)).unwrap();
    assert_eq!(s.len, StrLen::Exact(11));
    assert_eq!(read_string(&info, s), "alloc_pages");
    assert_eq!(
        read_string(&info, tag.read_str(rec(3)).unwrap()),
        "user_stack"
    );
    assert_eq!(f("used").read_u64(rec(8191)), Some(0));

    let (count, cb) = static_bytes(&info, "alloc_table_count");
    assert_eq!(info.decode(count.ty, &cb).unwrap().as_u64(), Some(3));

    let (hdr, hb) = static_bytes(&info, "alloc_tracker");
    let h = info.struct_layout(hdr.ty).unwrap();
    assert_eq!(
        h.require("magic").unwrap().read_u64(&hb),
        Some(u64::from_le_bytes(*b"LEAKSCOP"))
    );
    assert_eq!(h.require("generation").unwrap().read_u64(&hb), Some(42));
    assert_eq!(h.require("capacity").unwrap().read_u64(&hb), Some(8192));
    assert_eq!(h.require("high_water").unwrap().read_u64(&hb), Some(4));

    // #[repr(u32)] enum: enumerator names from DWARF.
    let (ev, eb) = static_bytes(&info, "alloc_events");
    let ea = info.array_layout(ev.ty).unwrap();
    assert_eq!(ea.len, 1024);
    let el = info.struct_layout(ea.element).unwrap();
    let kind = el.require("kind").unwrap();
    assert!(
        matches!(kind.kind, FieldKind::Enum { .. }),
        "{:?}",
        kind.kind
    );
    assert_eq!(
        kind.enum_name(ea.element_bytes(&eb, 0).unwrap()),
        Some("Alloc")
    );
    assert_eq!(
        kind.enum_name(ea.element_bytes(&eb, 1).unwrap()),
        Some("InvalidFree")
    );
    assert_eq!(
        kind.enum_name(ea.element_bytes(&eb, 2).unwrap()),
        Some("None")
    );
    let e1 = info
        .decode(ea.element, ea.element_bytes(&eb, 1).unwrap())
        .unwrap();
    assert!(
        matches!(e1.field("kind"), Some(Value::Enum { name: Some(n), value: 5, .. }) if n == "InvalidFree"),
        "{e1:?}"
    );
    match e1.field("tag") {
        Some(Value::Str(s)) => assert_eq!(read_string(&info, *s), "double_free"),
        other => panic!("{other:?}"),
    }

    let (procs, pb) = static_bytes(&info, "proc_table");
    let pv = info.decode(procs.ty, &pb).unwrap();
    let p3 = pv.index(3).unwrap();
    assert!(
        matches!(p3.field("state"), Some(Value::Enum { name: Some(n), .. }) if n == "Zombie"),
        "{p3:?}"
    );
    assert_eq!(
        p3.field("name").and_then(Value::as_bytes).unwrap()[..5],
        *b"leak\0"
    );
    assert_eq!(p3.field("parent").and_then(Value::as_u64), Some(1));

    let (_, id) = static_bytes(&info, "leakscope_build_id");
    assert_eq!(id, b"fixture-build-id");

    // The same variable by its namespaced DWARF name, and by an address inside it.
    let by_q = info.global(&table.qualified_name).unwrap();
    assert_eq!((by_q.address, by_q.ty), (table.address, table.ty));
    let inside = info.global_at(table.address + 100).unwrap();
    assert_eq!(inside.address, table.address);

    // Lines: a statement in track_alloc round-trips.
    let src = fixtures().join("rust_tracker.rs");
    let line = marker_line(&src, "e.owner = owner;");
    let func = info.function("track_alloc").unwrap();
    let m = info.line_addresses("rust_tracker.rs", line).unwrap();
    assert_eq!(m.len(), 1, "{m:?}");
    assert!(m[0].line >= line);
    for &a in &m[0].addresses {
        assert!(a >= func.low && a < func.high, "{a:#x} outside {func:?}");
    }
    let loc = info.user_location(m[0].addresses[0]).unwrap();
    assert_eq!(loc.line, m[0].line);
    assert!(loc.file.ends_with("rust_tracker.rs"), "{}", loc.file);
    let bp = info.breakpoint_address(&func).unwrap();
    assert!(bp >= func.low && bp < func.high, "{bp:#x} in {func:?}");
    let frames = info.frames(func.low).unwrap();
    assert!(!frames.last().unwrap().inlined);
    assert_eq!(
        frames.last().unwrap().function.as_deref(),
        Some("track_alloc")
    );
}
