//! The debugger with several harts (QEMU `-smp`, 2 unless `LEAKSCOPE_SMP` says otherwise):
//! `break track_alloc --json` hits name the hart that stopped and the process it was running
//! (`pid`, `process`), with the arguments; a condition
//! on `hart` keeps only that hart's hits; and stepping steps the hart that stopped alone: the
//! other hart, busy in a user program, stays exactly where it was.
//!
//! Each test boots its own QEMU (killed by pid on drop); every wait has a timeout.

mod common;

use common::cli::{finish, start_armed};
use common::qemu::{kernel_elf, smp, Qemu};
use inspector::dwarf::DebugInfo;
use inspector::target::{RspTarget, RspTargetOptions, StopReason, Target};
use serde_json::Value;
use std::time::{Duration, Instant};

const T: Duration = Duration::from_secs(30);

fn gdb(q: &Qemu) -> String {
    format!("127.0.0.1:{}", q.gdb_port())
}

/// Runs `inspector break track_alloc --json` with `extra` arguments against `q` while three
/// `churn`s allocate on every hart; returns the hits. The churns run far longer than any
/// test (a short one could end before the breakpoint is armed, leaving nothing to hit), and
/// end with the QEMU.
fn break_hits(q: &mut Qemu, extra: &[&str]) -> Vec<Value> {
    for _ in 0..3 {
        q.send_line("churn 1000000 &");
        q.expect("churn running in the background", T);
    }
    let elf = kernel_elf();
    let mut args = vec!["break", "track_alloc", "--json", "--timeout", "30s"];
    args.extend_from_slice(extra);
    args.extend_from_slice(&["--elf", elf.to_str().unwrap()]);
    let addr = gdb(q);
    args.extend_from_slice(&["--gdb", &addr]);
    let (child, rx, err) = start_armed(&args);
    finish(child, rx, err, Duration::from_secs(60))
}

#[test]
#[ignore = "boots QEMU: run with make test"]
fn break_hits_name_the_hart_that_stopped() {
    let mut q = Qemu::boot();
    let hits = break_hits(&mut q, &["--count", "4"]);
    assert_eq!(hits.len(), 4, "{hits:?}");
    for h in &hits {
        let hart = h["hart"].as_u64().unwrap_or_else(|| panic!("no hart: {h}"));
        assert!(hart < smp() as u64, "{h}");
        assert_eq!(h["function"], "track_alloc", "{h}");
        let a = &h["args"];
        assert!(a["pa"].as_u64().unwrap() >= 0x8000_0000, "{h}");
        assert!(a["npages"].as_u64().unwrap() >= 1, "{h}");
        assert!(a["owner"].as_u64().is_some(), "{h}");
        // The process on that hart, when it ran one: named with its pid.
        if let Some(pid) = h.get("pid") {
            assert!(pid.as_u64().unwrap() >= 1, "{h}");
            assert!(!h["process"].as_str().unwrap().is_empty(), "{h}");
        }
    }
    // A program of churn's (churn or the `leak`s it runs) allocating for itself: its own
    // process on the hart that stopped.
    assert!(
        hits.iter().any(
            |h| ["churn", "leak"].contains(&h["process"].as_str().unwrap_or(""))
                && h["pid"] == h["args"]["owner"]
        ),
        "no hit names the process allocating: {hits:?}"
    );
}

#[test]
#[ignore = "boots QEMU: run with make test"]
fn a_condition_on_hart_keeps_that_harts_hits() {
    let last = smp() - 1;
    let mut q = Qemu::boot();
    let cond = format!("hart == {last}");
    let hits = break_hits(&mut q, &["--count", "3", "--if", &cond]);
    assert_eq!(hits.len(), 3, "{hits:?}");
    for h in &hits {
        assert_eq!(h["hart"], last, "{h}");
    }
}

/// The kernel on its harts with `spin` keeping one busy in user code (so a hart that ran
/// would have moved); None, said on stderr, with one hart: nothing to check then.
fn boot_with_a_spinning_hart() -> Option<Qemu> {
    if smp() < 2 {
        eprintln!("one hart: nothing to check");
        return None;
    }
    let mut q = Qemu::boot();
    q.send_line("spin 100000 &");
    q.expect("spin running in the background", T);
    Some(q)
}

#[test]
#[ignore = "boots QEMU: run with make test"]
fn stepping_one_hart_through_the_exit_sweep_leaves_the_other_halted() {
    let Some(mut q) = boot_with_a_spinning_hart() else {
        return;
    };
    let debug = DebugInfo::load(kernel_elf()).unwrap();
    let sweep = debug
        .elf()
        .symbol("free_all_tracked_for_pid")
        .unwrap()
        .address;
    let mut t = RspTarget::connect(&gdb(&q), RspTargetOptions::default()).unwrap();
    t.halt().unwrap();
    assert_eq!(t.harts().unwrap().len(), smp() as usize);
    t.set_breakpoint(sweep).unwrap();
    t.resume().unwrap();
    q.send_line("leak 3");
    let stop = t.wait_for_stop(T).unwrap();
    assert_eq!(stop, Some(StopReason::Trap), "the sweep's breakpoint");
    let me = t.stopped_hart().expect("the stop names its hart");
    assert_eq!(t.read_registers().unwrap().pc(), sweep);
    t.remove_breakpoint(sweep).unwrap();
    let other = (0..smp()).find(|&h| h != me).unwrap();
    t.select_hart(other).unwrap();
    let other_before = t.read_registers().unwrap();
    t.select_hart(me).unwrap();
    let mut pcs = Vec::new();
    for _ in 0..200 {
        assert_eq!(t.step().unwrap(), StopReason::Trap);
        assert_eq!(t.stopped_hart(), Some(me), "the step stopped another hart");
        pcs.push(t.read_registers().unwrap().pc());
    }
    pcs.dedup();
    assert!(pcs.len() > 50, "the stepped hart moved: {} pcs", pcs.len());
    t.select_hart(other).unwrap();
    let other_after = t.read_registers().unwrap();
    assert_eq!(
        other_after, other_before,
        "hart {other} ran while hart {me} was stepped"
    );
    t.detach().unwrap();
    q.expect("allocated 3 pages", T);
    let mem = q.run("mem", T);
    assert!(mem.contains("pages total="), "{mem}");
}

#[test]
#[ignore = "boots QEMU: run with make test"]
fn the_tui_debugger_shows_each_hart_at_a_stop_and_steps_the_one_shown() {
    use inspector::debugger::live::{DebugCommand, DebugSource, DebugState, Debuggable};
    use inspector::source::Source;
    let Some(mut q) = boot_with_a_spinning_hart() else {
        return;
    };
    let mut src = DebugSource::new(kernel_elf(), gdb(&q)).unwrap();
    src.sample().expect("first sample connects");
    src.command(DebugCommand::ToggleBreakpoint("track_alloc".into()))
        .unwrap();
    q.send_line("leak 2");
    let deadline = Instant::now() + T;
    let report = loop {
        src.sample().expect("sample");
        if let Some(r) = src.take_stop_report() {
            break r;
        }
        assert!(Instant::now() < deadline, "no stop at track_alloc");
        std::thread::sleep(Duration::from_millis(50));
    };
    let view = |r: &inspector::debugger::live::DebugReport| match &r.state {
        DebugState::Stopped(v) => (**v).clone(),
        DebugState::Running => panic!("not stopped: {r:?}"),
    };
    let first = view(&report);
    let stopped = first.hart.expect("the stop names its hart");
    assert_eq!(first.stopped_hart, Some(stopped));
    assert_eq!(first.harts.len(), smp() as usize);
    let other = view(&src.command(DebugCommand::NextHart).unwrap());
    assert_ne!(other.hart, Some(stopped));
    assert_eq!(other.stopped_hart, Some(stopped));
    assert_ne!(other.pc, first.pc, "another hart's own registers");
    // A step moves the hart shown; back on the hart that stopped, it is still at the stop.
    let stepped = view(&src.command(DebugCommand::StepInstruction).unwrap());
    assert_eq!(stepped.hart, other.hart);
    let mut back = stepped;
    for _ in 1..smp() {
        back = view(&src.command(DebugCommand::NextHart).unwrap());
    }
    assert_eq!(back.hart, Some(stopped));
    assert_eq!(back.pc, first.pc, "the hart that stopped did not move");
    src.command(DebugCommand::ToggleBreakpoint("track_alloc".into()))
        .unwrap();
    src.command(DebugCommand::Continue).unwrap();
    src.detach();
    q.expect("allocated 2 pages", T);
}
