//! Live updates and breakpoints together, against the kernel in QEMU (the TUI's data source,
//! `DebugSource`, driven without a terminal): a breakpoint toggled on `track_alloc` is found
//! by sampling; while the user holds the guest, samples leave it halted; next/finish/stepi
//! move it; continue resumes it and the breakpoint (never cleared behind the user's back)
//! hits again; toggled off, the kernel runs on.
//!
//! Run: `make test`, or after `make kernel`:
//! `cargo test -p inspector --test debugger_live -- --include-ignored`.

mod common;

use common::qemu::{kernel_elf, Qemu};
use inspector::debugger::live::{DebugCommand, DebugReport, DebugSource, DebugState, Debuggable};
use inspector::debugger::StopView;
use inspector::source::Source;
use std::time::{Duration, Instant};

const T: Duration = Duration::from_secs(20);

/// Samples (as the TUI does every interval) until a breakpoint stop is reported.
fn sample_until_stop(src: &mut DebugSource) -> DebugReport {
    let deadline = Instant::now() + T;
    loop {
        src.sample().expect("sample");
        if let Some(r) = src.take_stop_report() {
            return r;
        }
        assert!(Instant::now() < deadline, "no breakpoint stop within {T:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn stopped(r: &DebugReport) -> &StopView {
    match &r.state {
        DebugState::Stopped(v) => v,
        DebugState::Running => panic!("expected a stop: {r:?}"),
    }
}

fn function(v: &StopView) -> String {
    v.backtrace
        .iter()
        .find(|f| !f.inlined)
        .and_then(|f| f.function.clone())
        .unwrap_or_default()
}

#[test]
#[ignore = "boots QEMU: run with make test"]
fn breakpoints_hold_the_guest_and_survive_continue_and_samples() {
    let mut q = Qemu::boot();
    let gdb = format!("127.0.0.1:{}", q.gdb_port());
    let mut src = DebugSource::new(kernel_elf(), gdb).unwrap();
    src.sample().expect("first sample connects");

    let r = src
        .command(DebugCommand::ToggleBreakpoint("track_alloc".into()))
        .unwrap();
    assert_eq!(r.breakpoints.len(), 1);
    assert!(matches!(r.state, DebugState::Running));

    q.send_line("leak 3 5 &");
    let r = sample_until_stop(&mut src);
    let v = stopped(&r);
    assert_eq!(v.breakpoint, Some(r.breakpoints[0].id));
    let first_pa = v.args.get("pa").unwrap().value.clone();
    let names: Vec<_> = v.args.0.iter().map(|a| a.name.as_str()).collect();
    assert_eq!(names, ["pa", "npages", "owner", "tag", "site"]);
    assert!(v.position.as_ref().unwrap().file.ends_with("mm/tracker.rs"));
    assert!(v.source.iter().any(|l| l.current), "source around the line");
    assert_eq!(v.registers.to_array().len(), 33);
    assert!(function(v).ends_with("track_alloc"), "{:?}", v.backtrace);
    assert!(v.backtrace.len() > 1, "callers: {:?}", v.backtrace);

    // Held: samples read the held state and do not resume the guest; the shell stays silent.
    let before = q.output().len();
    q.send_line("mem");
    for _ in 0..3 {
        src.sample().unwrap();
        std::thread::sleep(Duration::from_millis(150));
    }
    assert!(src.is_held());
    assert!(
        !q.output()[before..].contains("pages total="),
        "the guest ran while held"
    );

    // Continue straight from the first stop: the next stop is another allocation.
    src.command(DebugCommand::Continue).unwrap();
    let r = sample_until_stop(&mut src);
    assert_ne!(
        stopped(&r).args.get("pa").unwrap().value,
        first_pa,
        "continue got past the first breakpoint stop"
    );
    let v = stopped(&r).clone();

    // Stepping moves the held guest.
    let pc0 = v.pc;
    let r = src.command(DebugCommand::StepInstruction).unwrap();
    assert_ne!(stopped(&r).pc, pc0);
    let r = src.command(DebugCommand::Next).unwrap();
    let line = stopped(&r).position.as_ref().map(|p| p.line);
    assert!(line.is_some());
    let r = src.command(DebugCommand::Finish).unwrap();
    assert!(
        !function(stopped(&r)).ends_with("track_alloc"),
        "finish leaves track_alloc: {:?}",
        stopped(&r).backtrace
    );

    // Continue: the breakpoint is still there and hits again (the leak allocates more).
    let r = src.command(DebugCommand::Continue).unwrap();
    assert!(matches!(r.state, DebugState::Running));
    let r = sample_until_stop(&mut src);
    assert!(stopped(&r).pc > 0);
    assert_ne!(
        stopped(&r).args.get("pa").unwrap().value,
        first_pa,
        "the second stop is another allocation"
    );
    assert!(r.breakpoints[0].hits >= 2, "{:?}", r.breakpoints);
    // The second stop shows which tracker rows changed since the first.
    assert!(stopped(&r).changed.is_some());
    // Continue straight from a breakpoint stop: the guest gets past it (the next stop is the
    // next allocation, and the one it was held at is now in the table).
    let held_pa = stopped(&r).args.get("pa").unwrap().value.clone();
    src.command(DebugCommand::Continue).unwrap();
    let r = sample_until_stop(&mut src);
    assert_ne!(stopped(&r).args.get("pa").unwrap().value, held_pa);
    let added: Vec<u64> = stopped(&r)
        .changed
        .as_ref()
        .unwrap()
        .added
        .iter()
        .map(|e| e.pa)
        .collect();
    assert!(
        added
            .iter()
            .any(|pa| inspector::debugger::ArgValue::UInt(u128::from(*pa)) == held_pa),
        "{added:x?} does not include the previous stop's allocation {held_pa:?}"
    );

    // Toggled off and continued: the kernel runs on and answers.
    let r = src
        .command(DebugCommand::ToggleBreakpoint("track_alloc".into()))
        .unwrap();
    assert!(r.breakpoints.is_empty());
    src.command(DebugCommand::Continue).unwrap();
    for _ in 0..5 {
        src.sample().unwrap();
        assert!(src.take_stop_report().is_none());
    }
    q.expect("pages total=", T);
    src.detach();
    let mem = q.run("mem", T);
    assert!(mem.contains("pages total="), "{mem}");
}

#[test]
#[ignore = "boots QEMU: run with make test"]
fn a_conditional_breakpoint_from_the_prompt_stops_only_when_it_holds() {
    let mut q = Qemu::boot();
    let gdb = format!("127.0.0.1:{}", q.gdb_port());
    let mut src = DebugSource::new(kernel_elf(), gdb).unwrap();
    src.sample().expect("first sample connects");

    // What the TUI's `B` prompt sends: a location and a condition (on a string argument too).
    let r = src
        .command(DebugCommand::ToggleBreakpoint(
            "track_alloc if tag == \"user_stack\" && owner != 0".into(),
        ))
        .unwrap();
    assert_eq!(r.breakpoints.len(), 1);
    assert!(r.breakpoints[0].condition.is_some(), "{:?}", r.breakpoints);

    // Spawning `hello` allocates its kernel stack, trapframe, page tables and image first:
    // those pass silently; the stop is at its user stack.
    q.send_line("hello");
    let r = sample_until_stop(&mut src);
    let v = stopped(&r);
    let arg = |n: &str| v.args.get(n).unwrap().value.clone();
    use inspector::debugger::ArgValue;
    assert_eq!(
        arg("tag"),
        ArgValue::Str("user_stack".into()),
        "{:?}",
        v.args
    );
    assert_ne!(arg("owner"), ArgValue::UInt(0));
    assert!(r.breakpoints[0].hits == 1, "{:?}", r.breakpoints);

    // Disabled, it stays listed but no longer stops; enabled again, it does.
    let id = r.breakpoints[0].id;
    let r = src
        .command(DebugCommand::SetEnabled { id, enabled: false })
        .unwrap();
    assert!(!r.breakpoints[0].enabled);
    src.command(DebugCommand::Continue).unwrap();
    q.expect("Hello from pid", T);
    q.send_line("hello");
    q.expect("Hello from pid", T);
    src.sample().unwrap();
    assert!(
        src.take_stop_report().is_none(),
        "a disabled breakpoint must not stop"
    );
    src.command(DebugCommand::SetEnabled { id, enabled: true })
        .unwrap();
    q.send_line("hello");
    let r = sample_until_stop(&mut src);
    assert_eq!(stopped(&r).breakpoint, Some(id));

    // The same location toggles it off, whatever the condition; the kernel runs on.
    let r = src
        .command(DebugCommand::ToggleBreakpoint("track_alloc".into()))
        .unwrap();
    assert!(r.breakpoints.is_empty());
    src.command(DebugCommand::Continue).unwrap();
    q.expect("Hello from pid", T);
    src.detach();
    assert!(q.run("hello", T).contains("Hello from pid"));
}

#[test]
#[ignore = "boots QEMU: run with make test"]
fn with_the_ram_file_views_stay_live_while_a_breakpoint_holds_the_guest() {
    let ram = common::qemu::test_ram_file("debug");
    let mut q = Qemu::boot_with_ram(&ram);
    let gdb = format!("127.0.0.1:{}", q.gdb_port());
    let mut src = DebugSource::new(kernel_elf(), gdb)
        .unwrap()
        .with_ram(&ram, None)
        .unwrap();
    assert!(
        !src.capabilities().halts_guest,
        "views from RAM halt nothing"
    );
    let first = src.sample().expect("RAM sample needs no stub");
    assert_eq!(first.read_path, inspector::model::ReadPath::Ram);

    // The stub serves the debugger: a breakpoint stop is noticed without halting for samples.
    src.command(DebugCommand::ToggleBreakpoint("track_alloc".into()))
        .unwrap();
    q.send_line("leak 3 5 &");
    let r = sample_until_stop(&mut src);
    assert!(function(stopped(&r)).ends_with("track_alloc"));
    assert!(src.is_held());

    // Held at track_alloc's entry (before its change): the views still read RAM, consistent.
    for _ in 0..5 {
        let s = src.sample().unwrap();
        assert_eq!(s.read_path, inspector::model::ReadPath::Ram);
        assert_eq!(s.pause_us, 0);
        assert!(!s.mid_change, "held outside a change: a consistent state");
    }
    // Toggled off and continued, the kernel runs on.
    src.command(DebugCommand::ToggleBreakpoint("track_alloc".into()))
        .unwrap();
    src.command(DebugCommand::Continue).unwrap();
    // The leak finishes allocating and says so; only then type (its line would cut the echo).
    q.expect("allocated 3 pages", T);
    q.run("mem", T);
    src.detach();
}
