//! The debugger without QEMU: argument decoding from register and stack locations (real
//! compiler DWARF: the Rust fixture built by rustc for riscv64 with -O, the C fixture built by
//! gcc -O0), evaluated against a `MemTarget` with registers; breakpoint bookkeeping on a
//! `MemTarget` (set, removed, temporary, conditions that resume silently, simulated hits);
//! line table to address and back. One ignored test checks the same on build/kernel.elf.
//!
//! Run: `cargo test -p inspector --test debugger_units` (add `-- --include-ignored` for the
//! kernel ELF test, after `make kernel`).

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use inspector::debugger::args::decode_args;
use inspector::debugger::stepping::position;
use inspector::debugger::{ArgValue, Breakpoints, Condition, Debugger, Location};
use inspector::dwarf::{DebugInfo, ParamLocation};
use inspector::riscv::{A0, A1, A2, PC, SP};
use inspector::target::{MemTarget, Target};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

fn rust_fixture(dir: &Path) -> Arc<DebugInfo> {
    let obj = common::fixtures::rust_tracker_object(dir);
    Arc::new(DebugInfo::load(obj).unwrap())
}

fn c_fixture(dir: &Path) -> Arc<DebugInfo> {
    let obj = dir.join("chapter64.o");
    let out = Command::new("gcc")
        .args(["-g", "-O0", "-c"])
        .arg(fixtures().join("chapter_tracker.c"))
        .arg("-o")
        .arg(&obj)
        .output()
        .expect("running gcc");
    assert!(
        out.status.success(),
        "gcc failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Arc::new(DebugInfo::load(obj).unwrap())
}

fn marker_line(file: &Path, marker: &str) -> u32 {
    let text = std::fs::read_to_string(file).unwrap();
    text.lines()
        .position(|l| l.contains(marker))
        .unwrap_or_else(|| panic!("{marker} not in {file:?}")) as u32
        + 1
}

/// A halted MemTarget with pc and the given (register, value) pairs.
fn halted_at(pc: u64, regs: &[(usize, u64)]) -> MemTarget {
    let mut t = MemTarget::new();
    t.set_register(PC, pc);
    for &(r, v) in regs {
        t.set_register(r, v);
    }
    t.halt().unwrap();
    t
}

#[test]
fn rust_args_from_registers_and_entry_values() {
    let dir = tempfile::tempdir().unwrap();
    let info = rust_fixture(dir.path());
    let f = info.function("track_alloc").unwrap();
    let params = info
        .function_params(f.low)
        .unwrap()
        .expect("track_alloc has DWARF");
    let names: Vec<_> = params.params.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["owner", "pa"]);
    // rustc -O: owner lives in a0 by a location list, pa in a1 by a plain expression.
    assert!(matches!(params.params[0].location, ParamLocation::List(_)));
    assert!(matches!(params.params[1].location, ParamLocation::Expr(_)));

    let mut dbg = Debugger::new(info.clone());
    let mut t = halted_at(f.low, &[(A0, 7), (A1, 0x8050_3000)]);
    let regs = t.read_registers().unwrap();
    let args = dbg.args(&mut t, &regs);
    assert_eq!(args.get("owner").unwrap().value, ArgValue::UInt(7));
    assert_eq!(args.get("pa").unwrap().value, ArgValue::UInt(0x8050_3000));
    assert_eq!(args.get("owner").unwrap().type_name, "u32");
    assert_eq!(args.text(), "owner=7 pa=0x80503000");
    assert_eq!(
        serde_json::to_value(&args).unwrap(),
        serde_json::json!({"owner": 7, "pa": 0x8050_3000u64})
    );

    // Past the range where owner is in a0, its location is DW_OP_entry_value(a0): unknown
    // away from the entry, so it is reported unavailable rather than read from a0.
    let ParamLocation::List(ranges) = &params.params[0].location else {
        unreachable!()
    };
    let late = ranges
        .iter()
        .map(|r| r.begin)
        .find(|&b| b > f.low)
        .expect("a second range");
    let mut t = halted_at(late, &[(A0, 99), (A1, 0x8050_3000)]);
    let regs = t.read_registers().unwrap();
    let args = dbg.args(&mut t, &regs);
    assert!(
        matches!(args.get("owner").unwrap().value, ArgValue::Unavailable(_)),
        "{:?}",
        args.get("owner")
    );
    assert_eq!(args.get("pa").unwrap().value, ArgValue::UInt(0x8050_3000));
}

fn expr(bytes: &[u8]) -> gimli::Expression<inspector::dwarf::Reader> {
    gimli::Expression(gimli::EndianArcSlice::new(
        Arc::from(bytes),
        gimli::RunTimeEndian::Little,
    ))
}

/// Synthetic location expressions (register, register pieces, sp-relative, frame-base
/// relative) evaluated against a MemTarget's registers and memory, decoded by real DWARF
/// types (`&str`, `u64` of the Rust fixture).
#[test]
fn synthetic_locations_against_a_mem_target() {
    use inspector::debugger::args::{to_arg_value, TargetMachine};
    use inspector::dwarf::{evaluate_frame_base, evaluate_location, read_pieces};

    let dir = tempfile::tempdir().unwrap();
    let info = rust_fixture(dir.path());
    let str_ty = info
        .types()
        .find_by_name("&str")
        .next()
        .expect("&str in DWARF");
    let u64_ty = info
        .types()
        .find_by_name("u64")
        .next()
        .expect("u64 in DWARF");
    let enc = gimli::Encoding {
        format: gimli::Format::Dwarf32,
        version: 4,
        address_size: 8,
    };
    let no_index = |_: gimli::DebugAddrIndex<usize>| None;

    // Guest memory: a string at 0x8800_0000, a stack at 0x8100_0000 with a u64 at sp+16.
    let sp = 0x8100_0000u64;
    let mut t = MemTarget::new()
        .with_region(0x8800_0000, b"user_stack and more".to_vec())
        .with_region(sp, vec![0; 64]);
    t.poke(sp + 16, &0x8050_7000u64.to_le_bytes());
    t.set_register(SP, sp);
    t.set_register(A0, 0x8800_0000);
    t.set_register(A1, 10);
    t.set_register(A2, 42);
    t.set_register(PC, 0x8020_0000);
    t.halt().unwrap();
    let regs = t.read_registers().unwrap();
    let mut m = TargetMachine {
        target: &mut t,
        regs: &regs,
        entry: None,
        cfa: None,
    };

    // A &str in a0 (pointer) and a1 (length): DW_OP_reg10 DW_OP_piece 8 DW_OP_reg11 DW_OP_piece 8.
    let e = expr(&[
        gimli::DW_OP_reg10.0,
        gimli::DW_OP_piece.0,
        8,
        gimli::DW_OP_reg11.0,
        gimli::DW_OP_piece.0,
        8,
    ]);
    let pieces = evaluate_location(&e, enc, None, &mut m, &no_index).unwrap();
    let bytes = read_pieces(&pieces, 16, &mut m).unwrap();
    let value = info.decode(str_ty, &bytes).unwrap();
    assert_eq!(
        to_arg_value(&info, &value, m.target),
        ArgValue::Str("user_stack".into())
    );

    // A u64 in a2: DW_OP_reg12.
    let pieces =
        evaluate_location(&expr(&[gimli::DW_OP_reg12.0]), enc, None, &mut m, &no_index).unwrap();
    let value = info
        .decode(u64_ty, &read_pieces(&pieces, 8, &mut m).unwrap())
        .unwrap();
    assert_eq!(value.as_u64(), Some(42));

    // A u64 on the stack: DW_OP_breg2 +16, and the same through the frame base (DW_OP_reg2)
    // with DW_OP_fbreg +16.
    let pieces = evaluate_location(
        &expr(&[gimli::DW_OP_breg2.0, 16]),
        enc,
        None,
        &mut m,
        &no_index,
    )
    .unwrap();
    let value = info
        .decode(u64_ty, &read_pieces(&pieces, 8, &mut m).unwrap())
        .unwrap();
    assert_eq!(value.as_u64(), Some(0x8050_7000));
    let fb = evaluate_frame_base(&expr(&[gimli::DW_OP_reg2.0]), enc, &mut m, &no_index).unwrap();
    assert_eq!(fb, sp);
    let pieces = evaluate_location(
        &expr(&[gimli::DW_OP_fbreg.0, 16]),
        enc,
        Some(fb),
        &mut m,
        &no_index,
    )
    .unwrap();
    assert_eq!(
        read_pieces(&pieces, 8, &mut m).unwrap(),
        0x8050_7000u64.to_le_bytes()
    );

    // Beyond the stack region: an error, not a value.
    let pieces = evaluate_location(
        &expr(&[gimli::DW_OP_breg2.0, 0x80, 0x01]),
        enc,
        None,
        &mut m,
        &no_index,
    )
    .unwrap();
    assert!(read_pieces(&pieces, 8, &mut m).is_err());
}

#[test]
fn c_args_from_stack_slots_relative_to_the_frame_base() {
    let dir = tempfile::tempdir().unwrap();
    let info = c_fixture(dir.path());
    let f = info.function("track_alloc").unwrap();
    let params = info.function_params(f.low).unwrap().unwrap();
    let names: Vec<_> = params.params.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["owner", "pa", "npages"]);

    // gcc -O0 puts each parameter at DW_OP_fbreg N with the frame base = the CFA. Read N from
    // the expression itself (no offsets hard-coded) and put the values there.
    let cfa = 0x7fff_0000u64;
    let slot = |i: usize| -> u64 {
        let ParamLocation::Expr(e) = &params.params[i].location else {
            panic!("gcc -O0 gives a single expression")
        };
        let mut ops = e.clone().operations(params.encoding);
        match ops.next().unwrap().unwrap() {
            gimli::Operation::FrameOffset { offset } => cfa.wrapping_add(offset as u64),
            other => panic!("expected DW_OP_fbreg, got {other:?}"),
        }
    };
    let mut t = MemTarget::new().with_region(cfa - 128, vec![0; 128]);
    t.poke(slot(0), &42u32.to_le_bytes());
    t.poke(slot(1), &0x8060_0000u64.to_le_bytes());
    t.poke(slot(2), &3u64.to_le_bytes());
    t.set_register(PC, f.low + 8);
    t.halt().unwrap();
    let regs = t.read_registers().unwrap();
    let args = decode_args(&info, &params, &mut t, &regs, Some(cfa));
    assert_eq!(args.get("owner").unwrap().value, ArgValue::Int(42));
    assert_eq!(args.get("pa").unwrap().value, ArgValue::UInt(0x8060_0000));
    assert_eq!(args.get("npages").unwrap().value, ArgValue::UInt(3));
    assert!(
        Condition::parse("owner == 42 && npages >= 3 && pa > 0x80000000")
            .unwrap()
            .eval(&args)
            .unwrap()
    );

    // Without the CFA the frame base is unknown: every argument says so.
    let args = decode_args(&info, &params, &mut t, &regs, None);
    for a in &args.0 {
        assert!(matches!(a.value, ArgValue::Unavailable(_)), "{a:?}");
    }
}

#[test]
fn breakpoints_are_installed_removed_and_kept_across_steps() {
    let dir = tempfile::tempdir().unwrap();
    let info = rust_fixture(dir.path());
    let f = info.function("track_alloc").unwrap();
    let bp_addr = info.breakpoint_address(&f).unwrap();
    let mut dbg = Debugger::new(info.clone());
    let mut t = MemTarget::new();
    t.halt().unwrap();

    let id = dbg
        .break_at(&mut t, Location::Function("track_alloc".into()), None)
        .unwrap();
    let installed = |t: &MemTarget| t.breakpoints().map(|(a, _)| a).collect::<Vec<_>>();
    assert_eq!(installed(&t), [bp_addr]);
    assert_eq!(
        dbg.breakpoints.get(id).unwrap().function.as_deref(),
        Some("track_alloc")
    );

    // A temporary breakpoint at the same address leaves the user's in place when removed.
    dbg.breakpoints.add_temporary(&mut t, bp_addr).unwrap();
    dbg.breakpoints.add_temporary(&mut t, bp_addr + 8).unwrap();
    assert_eq!(installed(&t), [bp_addr, bp_addr + 8]);
    dbg.breakpoints.remove_temporary(&mut t, bp_addr).unwrap();
    dbg.breakpoints
        .remove_temporary(&mut t, bp_addr + 8)
        .unwrap();
    assert_eq!(installed(&t), [bp_addr]);

    // Disable / enable / toggle / remove.
    dbg.breakpoints.set_enabled(&mut t, id, false).unwrap();
    assert!(installed(&t).is_empty());
    dbg.breakpoints.set_enabled(&mut t, id, true).unwrap();
    assert_eq!(installed(&t), [bp_addr]);
    let loc = Location::Function("track_alloc".into());
    assert_eq!(
        dbg.breakpoints
            .toggle(&mut t, &info, loc.clone(), None)
            .unwrap(),
        None
    );
    assert!(installed(&t).is_empty() && dbg.breakpoints.list().is_empty());
    let id2 = dbg
        .breakpoints
        .toggle(&mut t, &info, loc, None)
        .unwrap()
        .unwrap();
    assert!(id2 > id, "ids are never reused");
    assert!(dbg.breakpoints.remove(&mut t, id).is_err());

    // Continuing from the breakpoint steps off it and reinstalls it.
    t.set_register(PC, bp_addr);
    dbg.resume(&mut t).unwrap();
    assert!(!t.is_halted());
    assert_eq!(t.stats().steps, 1);
    assert_eq!(installed(&t), [bp_addr]);
    dbg.breakpoints.remove(&mut t.clone(), id2).unwrap_err(); // needs a halted target
}

#[test]
fn false_conditions_resume_silently_and_true_ones_stop() {
    let dir = tempfile::tempdir().unwrap();
    let info = rust_fixture(dir.path());
    let f = info.function("track_alloc").unwrap();
    let bp_addr = info.breakpoint_address(&f).unwrap();
    let mut dbg = Debugger::new(info.clone());
    let mut t = MemTarget::new();
    t.halt().unwrap();

    // A condition naming something that is not an argument is refused up front.
    let err = dbg
        .break_at(
            &mut t,
            Location::Function("track_alloc".into()),
            Some(Condition::parse("pid == 3").unwrap()),
        )
        .unwrap_err();
    assert!(err.to_string().contains("owner, pa"), "{err}");
    assert_eq!(t.breakpoints().count(), 0);

    let id = dbg
        .break_at(
            &mut t,
            Location::Function("track_alloc".into()),
            Some(Condition::parse("owner == 7").unwrap()),
        )
        .unwrap();
    t.resume().unwrap();

    // owner = 8: the stop is judged, found false, and the guest resumed without a report.
    t.set_register(A0, 8);
    t.set_register(A1, 0x8050_0000);
    t.hit(bp_addr);
    let resumes = t.stats().resumes;
    let got = dbg
        .continue_until_hit(&mut t, Duration::from_millis(50), None)
        .unwrap();
    assert!(got.is_none());
    assert!(!t.is_halted(), "a false condition leaves the guest running");
    assert_eq!(t.stats().resumes, resumes + 1);
    assert_eq!(dbg.breakpoints.get(id).unwrap().hits, 0);
    assert_eq!(t.breakpoints().count(), 1, "the breakpoint stays installed");

    // owner = 7: reported, with the decoded arguments, and the guest stays halted.
    t.set_register(A0, 7);
    t.hit(bp_addr);
    let hit = dbg
        .continue_until_hit(&mut t, Duration::from_millis(50), None)
        .unwrap()
        .expect("a hit");
    assert_eq!(hit.breakpoint, Some(id));
    assert_eq!(hit.pc, bp_addr);
    assert_eq!(hit.args.get("owner").unwrap().value, ArgValue::UInt(7));
    assert!(t.is_halted());
    assert_eq!(dbg.breakpoints.get(id).unwrap().hits, 1);

    // Detaching clears the target's breakpoints (the only other way they go away).
    t.detach().unwrap();
    assert_eq!(t.breakpoints().count(), 0);
}

#[test]
fn line_table_to_address_and_back() {
    let dir = tempfile::tempdir().unwrap();
    // C: the marked line of track_alloc.
    let info = c_fixture(dir.path());
    let line = marker_line(&fixtures().join("chapter_tracker.c"), "LINE:owner");
    let loc: Location = format!("chapter_tracker.c:{line}").parse().unwrap();
    let (addrs, function) = Breakpoints::resolve(&info, &loc).unwrap();
    assert!(!addrs.is_empty());
    assert_eq!(function.as_deref(), Some("track_alloc"));
    for &a in &addrs {
        assert_eq!(info.location(a).unwrap().line, line);
        let p = position(&info, a).unwrap();
        assert_eq!((p.line, p.function.as_deref()), (line, Some("track_alloc")));
        assert!(p.file.ends_with("chapter_tracker.c"));
    }
    let err = Breakpoints::resolve(&info, &"no_such.c:3".parse().unwrap()).unwrap_err();
    assert!(err.to_string().contains("no code at no_such.c:3"), "{err}");

    // Rust: the first body line of track_alloc.
    let info = rust_fixture(dir.path());
    let src = fixtures().join("rust_tracker.rs");
    let line = marker_line(&src, "e.owner = owner;");
    let (addrs, function) = Breakpoints::resolve(
        &info,
        &Location::Line {
            file: "fixtures/rust_tracker.rs".into(),
            line,
        },
    )
    .unwrap();
    assert_eq!(function.as_deref(), Some("rust_tracker::track_alloc"));
    for &a in &addrs {
        let p = position(&info, a).unwrap();
        assert_eq!(p.line, line, "{a:#x}");
    }
}

/// The kernel ELF: `track_alloc`'s four parameters with their DWARF types, a line of
/// `free_all_tracked_for_pid` round-trips through the line table, and the CFI covers the
/// debugger's functions.
#[test]
#[ignore = "needs build/kernel.elf (make kernel)"]
fn kernel_elf_params_lines_and_cfi() {
    let elf = common::qemu::kernel_elf();
    let info = Arc::new(DebugInfo::load(&elf).unwrap());
    let f = info.function("track_alloc").unwrap();
    let params = info.function_params(f.low).unwrap().unwrap();
    let got: Vec<(String, String)> = params
        .params
        .iter()
        .map(|p| (p.name.clone(), info.types().display_name(p.ty.unwrap())))
        .collect();
    assert_eq!(
        got,
        [
            ("pa".to_string(), "u64".to_string()),
            ("npages".into(), "u64".into()),
            ("owner".into(), "u32".into()),
            ("tag".into(), "&str".into()),
            ("site".into(), "AllocSite".into()),
        ]
    );
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("../kernel/src/mm/tracker.rs");
    let line = marker_line(&src, "let r = with_tracker(|t| {");
    let (addrs, function) = Breakpoints::resolve(
        &info,
        &Location::Line {
            file: "kernel/src/mm/tracker.rs".into(),
            line,
        },
    )
    .unwrap();
    assert_eq!(
        function.as_deref(),
        Some("kernel::mm::tracker::free_all_tracked_for_pid")
    );
    for &a in &addrs {
        assert_eq!(info.user_location(a).unwrap().line, line, "{a:#x}");
    }
    // Inside the exit sweep's callback (inlined into the tracker crate's loop), the inlined
    // calls' parameters are known: the callback's entry `e` (a closure); the
    // concrete function around it is the tracker's free_all_for_program (with `pid`). The loop
    // calls it between its changes, not from inside one, so no closure of the tracker's own
    // lies between them.
    let line = marker_line(&src, "with_pages(|a| a.free(e.pa, e.npages))");
    let (addrs, _) = Breakpoints::resolve(
        &info,
        &Location::Line {
            file: "kernel/src/mm/tracker.rs".into(),
            line,
        },
    )
    .unwrap();
    let names_at = |a: u64| -> Vec<(String, Vec<String>)> {
        info.inlined_params(a)
            .unwrap()
            .iter()
            .map(|f| {
                (
                    f.function.clone(),
                    f.params.params.iter().map(|p| p.name.clone()).collect(),
                )
            })
            .collect()
    };
    // Only code of the image: no address of a sequence the linker discarded (from 0).
    assert!(
        addrs
            .iter()
            .all(|&a| info.elf().is_code(a) && a >= 0x8000_0000),
        "{addrs:#x?}"
    );
    let names = names_at(addrs[0]);
    // The callback (a closure with `e`) is among the inlined calls; what the page
    // allocator's lock inlines into it may sit innermost.
    assert!(
        names
            .iter()
            .any(|(f, p)| f.starts_with("{closure") && p == &["e"]),
        "{names:?}"
    );
    let outer = info.function_at(addrs[0]).unwrap();
    assert!(outer.name.contains("free_all_for_program"), "{outer:?}");
    let outer_params = info.function_params(outer.low).unwrap().unwrap();
    assert!(outer_params.params.iter().any(|p| p.name == "pid"));
    // A function's own entry is not inlined code.
    assert!(info.inlined_params(f.low).unwrap().is_empty());

    let unwinder = inspector::dwarf::Unwinder::load(&elf)
        .unwrap()
        .expect("CFI");
    for name in ["track_alloc", "free_all_tracked_for_pid", "free_proc"] {
        let f = info.function(name).unwrap();
        assert!(unwinder.covers(f.low), "no CFI for {name}");
    }
}

/// Line stepping on real rustc line tables, with a MemTarget whose single step advances pc by
/// 4: each reported line is a new line of `track_alloc`'s body, a user breakpoint on the way
/// is stepped over (not lost), and leaving the function's range ends the session as a return.
#[test]
fn line_steps_report_new_lines_and_end_at_the_return() {
    use inspector::debugger::stepping::position;
    use inspector::debugger::{CallPolicy, LineOutcome, Stepper};

    let dir = tempfile::tempdir().unwrap();
    let info = rust_fixture(dir.path());
    let f = info.function("track_alloc").unwrap();
    let src = fixtures().join("rust_tracker.rs");
    let first = marker_line(&src, "pub extern \"C\" fn track_alloc");
    let last = first + 8;
    let mut dbg = Debugger::new(info.clone());
    let mut t = halted_at(f.low, &[]);
    // A user breakpoint in the middle of the function stays installed across the steps.
    let bp = f.low + 8;
    dbg.break_at(&mut t, Location::Address(bp), None).unwrap();

    let mut stepper = Stepper::new(&dbg, &mut t, CallPolicy::Over).unwrap();
    let mut lines = Vec::new();
    let mut prev = position(&info, f.low).map(|p| p.line);
    let outcome = loop {
        match stepper.next_line(&mut dbg, &mut t).unwrap() {
            LineOutcome::Line { pc, position: p } => {
                assert!(pc > f.low && pc < f.high, "{pc:#x}");
                assert!(p.file.ends_with("rust_tracker.rs"), "{p:?}");
                assert!((first..=last).contains(&p.line), "{p:?}");
                assert_ne!(Some(p.line), prev, "a step reports a new line");
                prev = Some(p.line);
                lines.push(p.line);
            }
            other => break other,
        }
        assert!(lines.len() < 100, "no end: {lines:?}");
    };
    assert!(lines.len() >= 2, "{lines:?}");
    match outcome {
        LineOutcome::Returned { pc } => assert!(pc >= f.high, "{pc:#x}"),
        other => panic!("expected the return, got {other:?}"),
    }
    assert_eq!(
        t.breakpoints().map(|(a, _)| a).collect::<Vec<_>>(),
        [bp],
        "the user's breakpoint is still installed"
    );
}

/// The pc of each hart of a halted `t`.
fn hart_pcs(t: &mut MemTarget) -> Vec<u64> {
    (0..2)
        .map(|h| {
            t.select_hart(h).unwrap();
            t.read_registers().unwrap().pc()
        })
        .collect()
}

/// Two harts, a breakpoint on `track_alloc`, hart 1 at `hart1_pc`; hart 0 hits the breakpoint
/// and the debugger reports it. Returns the debugger, the (halted) target and the address.
fn hart0_hit(dir: &Path, hart1_pc: Option<u64>) -> (Debugger, MemTarget, u64) {
    let info = rust_fixture(dir);
    let bp_addr = info
        .breakpoint_address(&info.function("track_alloc").unwrap())
        .unwrap();
    let mut dbg = Debugger::new(info.clone());
    let mut t = MemTarget::new().with_harts(2);
    t.halt().unwrap();
    dbg.break_at(&mut t, Location::Function("track_alloc".into()), None)
        .unwrap();
    t.set_hart_register(1, PC, hart1_pc.unwrap_or(bp_addr));
    t.resume().unwrap();
    t.hit_on(0, bp_addr);
    let hit = dbg
        .continue_until_hit(&mut t, Duration::from_millis(50), None)
        .unwrap()
        .expect("a hit");
    assert_eq!(hit.hart, Some(0));
    (dbg, t, bp_addr)
}

#[test]
fn continuing_after_stepping_another_hart_steps_the_first_off_its_breakpoint() {
    let dir = tempfile::tempdir().unwrap();
    let (mut dbg, mut t, bp_addr) = hart0_hit(dir.path(), Some(0x2000));
    // The user switches to hart 1 and steps it.
    t.select_hart(1).unwrap();
    inspector::debugger::stepping::step_instruction(&mut dbg, &mut t).unwrap();
    assert_eq!(hart_pcs(&mut t), [bp_addr, 0x2004]);

    // `c`: hart 0 leaves its breakpoint first (it would trap again at once), hart 1 is not
    // stepped again, and the breakpoint is back in place.
    t.select_hart(1).unwrap();
    dbg.resume(&mut t).unwrap();
    assert!(!t.is_halted());
    t.halt().unwrap();
    assert_eq!(hart_pcs(&mut t), [bp_addr + 4, 0x2004]);
    assert_eq!(
        t.breakpoints().map(|(a, _)| a).collect::<Vec<_>>(),
        [bp_addr]
    );
}

#[test]
fn a_hart_halted_on_a_breakpoint_it_has_not_hit_yet_is_left_to_hit_it() {
    let dir = tempfile::tempdir().unwrap();
    // Hart 1 was halted (by hart 0's stop) just as it reached the same breakpoint.
    let (mut dbg, mut t, bp_addr) = hart0_hit(dir.path(), None);
    dbg.resume(&mut t).unwrap();
    t.halt().unwrap();
    assert_eq!(
        hart_pcs(&mut t),
        [bp_addr + 4, bp_addr],
        "only the hart whose hit was reported steps off"
    );
}
