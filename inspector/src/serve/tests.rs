//! The arbitration rules on an in-memory guest: whose stop, breakpoint bookkeeping, holds,
//! one client at a time, a dead client cleaned up; and the listener over TCP with the
//! inspector's own RSP client playing gdb.

use std::sync::Arc;
use std::time::Duration;

use super::*;
use crate::riscv::PC;
use crate::rsp::{BreakpointType, RspClient, RspConfig, StopReply};
use crate::target::{HaltGuard, MemTarget, StopReason, Target, TargetError};

const A: u64 = 0x8020_0000; // the client's breakpoint
const B: u64 = 0x8020_0100; // the sampler's breakpoint
const RAM: u64 = 0x8000_0000;

fn arbiter() -> Arc<Arbiter<MemTarget>> {
    Arbiter::new(Box::new(|| {
        Ok(MemTarget::new().with_region(RAM, (0..=255u8).cycle().take(0x1000).collect()))
    }))
}

fn running(a: &Arbiter<MemTarget>) -> bool {
    !a.with_guest(|g| g.is_halted()).expect("connected")
}

fn installed(a: &Arbiter<MemTarget>) -> Vec<u64> {
    a.with_guest(|g| g.breakpoints().map(|(addr, _)| addr).collect())
        .expect("connected")
}

/// The client attached, with a breakpoint at A, continued.
fn client_waiting_at_a(a: &Arbiter<MemTarget>) {
    a.attach_client().unwrap().unwrap();
    assert!(!running(a), "attaching halts the guest for the client");
    a.client_add_breakpoint(A, None).unwrap();
    a.client_resume().unwrap();
    assert!(running(a));
}

#[test]
fn the_samplers_halts_are_invisible_to_the_client() {
    let a = arbiter();
    let mut t = a.sampler_target().unwrap();
    client_waiting_at_a(&a);
    for _ in 0..3 {
        let mut g = HaltGuard::new(&mut t).unwrap();
        assert!(g.will_resume());
        let mut buf = [0u8; 4];
        g.read_memory(RAM, &mut buf).unwrap();
        drop(g);
        assert!(running(&a), "the sampler resumed after its read");
        assert_eq!(a.client_poll().unwrap(), None, "no stop for the client");
    }
}

#[test]
fn each_debugger_sees_only_its_own_breakpoint_stops() {
    let a = arbiter();
    let mut t = a.sampler_target().unwrap();
    HaltGuard::new(&mut t).unwrap().set_breakpoint(B).unwrap();
    client_waiting_at_a(&a);
    assert_eq!(installed(&a), vec![A, B]);

    // The sampler's breakpoint: found by the client's poll, kept for the sampler.
    a.with_guest(|g| g.hit(B));
    assert_eq!(a.client_poll().unwrap(), None);
    assert!(!running(&a), "held for the sampler to see");
    assert_eq!(t.halt().unwrap(), StopReason::Trap);
    assert_eq!(t.read_registers().unwrap().pc(), B);
    t.resume().unwrap();
    assert!(running(&a));
    assert_eq!(a.client_poll().unwrap(), None);

    // The client's breakpoint: found by the sampler's halt, given to the client.
    a.with_guest(|g| g.hit(A));
    assert_eq!(t.halt().unwrap(), StopReason::AlreadyHalted);
    assert!(
        t.is_halted(),
        "the client holds it: the sampler reads in place"
    );
    assert_eq!(t.read_registers().unwrap().pc(), A);
    t.resume().unwrap();
    assert!(!running(&a), "the sampler never resumes the client's stop");
    assert_eq!(a.client_poll().unwrap(), Some(ClientStop::Breakpoint));
    assert_eq!(a.client_poll().unwrap(), None, "told once");
    assert_eq!(a.held_by_client(), Some(A));
}

#[test]
fn a_breakpoint_both_set_stops_both() {
    let a = arbiter();
    let mut t = a.sampler_target().unwrap();
    HaltGuard::new(&mut t).unwrap().set_breakpoint(A).unwrap();
    client_waiting_at_a(&a);
    assert_eq!(installed(&a), vec![A]);
    a.with_guest(|g| g.hit(A));
    assert_eq!(a.client_poll().unwrap(), Some(ClientStop::Breakpoint));
    assert_eq!(t.halt().unwrap(), StopReason::Trap);
    t.resume().unwrap();
    assert!(!running(&a), "still held by the client");
    // The client removes its breakpoint: the sampler's stays installed.
    assert!(a.client_remove_breakpoint(A).unwrap());
    assert_eq!(installed(&a), vec![A]);
    a.client_resume().unwrap();
    assert!(running(&a));
}

#[test]
fn resuming_from_a_breakpoint_steps_over_it_first() {
    let a = arbiter();
    client_waiting_at_a(&a);
    a.with_guest(|g| g.hit(A));
    assert_eq!(a.client_poll().unwrap(), Some(ClientStop::Breakpoint));
    a.client_resume().unwrap();
    assert!(running(&a));
    let (steps, pc) = a
        .with_guest(|g| (g.stats().steps, g.read_registers().ok()))
        .unwrap();
    assert_eq!(steps, 1, "one step over the breakpoint before continuing");
    assert!(pc.is_none(), "running");
    assert_eq!(installed(&a), vec![A], "the breakpoint is back");
}

#[test]
fn a_client_step_waits_for_the_samplers_hold() {
    let a = arbiter();
    let mut t = a.sampler_target().unwrap();
    a.attach_client().unwrap().unwrap();
    a.client_resume().unwrap();
    assert_eq!(t.halt().unwrap(), StopReason::Interrupted);
    a.client_interrupt().unwrap();
    a.client_step().unwrap();
    assert_eq!(
        a.client_poll().unwrap(),
        None,
        "the sampler holds the guest"
    );
    assert_eq!(a.with_guest(|g| g.stats().steps), Some(0));
    t.resume().unwrap();
    assert_eq!(a.client_poll().unwrap(), Some(ClientStop::Step));
    assert_eq!(a.with_guest(|g| g.stats().steps), Some(1));
    assert!(!running(&a), "held by the client after its step");
}

#[test]
fn the_sampler_cannot_step_a_guest_the_client_holds() {
    let a = arbiter();
    let mut t = a.sampler_target().unwrap();
    a.attach_client().unwrap().unwrap();
    assert!(matches!(t.step(), Err(TargetError::HeldElsewhere { .. })));
    assert!(t.is_halted());
    // Reads are fine, and a HaltGuard leaves the guest to the client.
    let g = HaltGuard::new(&mut t).unwrap();
    assert!(!g.will_resume());
    drop(g);
    assert!(!running(&a));
}

#[test]
fn a_client_continue_waits_for_the_samplers_read_in_place() {
    let a = arbiter();
    let mut t = a.sampler_target().unwrap();
    a.attach_client().unwrap().unwrap();
    let mut g = HaltGuard::new(&mut t).unwrap();
    assert!(!g.will_resume(), "the client holds it: read in place");
    a.client_resume().unwrap();
    assert!(!running(&a), "the continue waits for the sampler's read");
    let mut buf = [0u8; 4];
    g.read_memory(RAM, &mut buf).unwrap();
    assert_eq!(a.client_poll().unwrap(), None);
    drop(g);
    assert!(
        running(&a),
        "the read is over: the client's continue went ahead"
    );
    // The same for a step, ended by the sampler's next halt rather than a guard.
    a.client_interrupt().unwrap();
    assert_eq!(t.halt().unwrap(), StopReason::AlreadyHalted);
    a.client_step().unwrap();
    assert_eq!(a.with_guest(|g| g.stats().steps), Some(0));
    t.read_registers().unwrap();
    t.resume().unwrap();
    assert_eq!(a.client_poll().unwrap(), Some(ClientStop::Step));
    assert_eq!(a.with_guest(|g| g.stats().steps), Some(1));
}

#[test]
fn interrupt_holds_the_guest_for_the_client() {
    let a = arbiter();
    let mut t = a.sampler_target().unwrap();
    a.attach_client().unwrap().unwrap();
    a.client_resume().unwrap();
    assert_eq!(a.client_interrupt().unwrap(), ClientStop::Interrupted);
    assert!(!running(&a));
    let mut buf = [0u8; 2];
    a.client_read_memory(RAM + 1, &mut buf).unwrap();
    assert_eq!(buf, [1, 2]);
    t.resume().unwrap();
    assert!(!running(&a));
    a.client_write_register(PC, 0x8020_0040).unwrap();
    assert_eq!(a.client_read_registers().unwrap().pc(), 0x8020_0040);
}

#[test]
fn the_client_reads_and_steps_each_hart_and_the_stopped_one_stays_the_arbiters() {
    let a = Arbiter::new(Box::new(|| {
        let mut g = MemTarget::new()
            .with_harts(2)
            .with_region(RAM, vec![0; 0x1000]);
        g.set_hart_register(1, PC, 0x8020_0200);
        Ok(g)
    }));
    client_waiting_at_a(&a);
    a.with_guest(|g| g.hit_on(0, A));
    assert_eq!(a.client_poll().unwrap(), Some(ClientStop::Breakpoint));
    assert_eq!(a.stopped_hart(), Some(0));
    assert_eq!(a.client_harts().unwrap(), [0, 1]);
    assert_eq!(
        a.client_read_registers_on(Some(1)).unwrap().pc(),
        0x8020_0200
    );
    // Back on the hart that stopped, for gdb and for the arbiter (cached or not).
    assert_eq!(a.client_read_registers().unwrap().pc(), A);
    a.client_write_register_on(Some(1), PC, 0x8020_0300)
        .unwrap();
    assert_eq!(
        a.client_read_registers_on(Some(1)).unwrap().pc(),
        0x8020_0300
    );
    assert_eq!(a.client_read_registers_on(Some(0)).unwrap().pc(), A);
    // A step of hart 1 moves hart 1 alone, and its stop names hart 1.
    a.client_step_hart(Some(1)).unwrap();
    assert_eq!(a.client_poll().unwrap(), Some(ClientStop::Step));
    assert_eq!(a.stopped_hart(), Some(1));
    assert_eq!(a.client_read_registers().unwrap().pc(), 0x8020_0304);
    assert_eq!(a.client_read_registers_on(Some(0)).unwrap().pc(), A);
    // gdb's threads are the harts, 1-based.
    assert_eq!(hart_of(tid_of(1)), Some(1));
    assert_eq!(tid_of(0).get(), 1);
}

#[test]
fn a_scheduler_locked_continue_keeps_the_other_harts_stopped_across_the_samplers_reads() {
    let a = Arbiter::new(Box::new(|| {
        Ok(MemTarget::new()
            .with_harts(2)
            .with_region(RAM, vec![0; 0x1000]))
    }));
    let mut t = a.sampler_target().unwrap();
    a.attach_client().unwrap().unwrap();
    let resumed = |a: &Arbiter<MemTarget>| {
        a.with_guest(|g| g.resumed_harts().map(<[u32]>::to_vec))
            .expect("connected")
    };
    // gdb's `vCont;c:2` (thread 2 = hart 1) with scheduler locking.
    a.client_resume_harts(Some(vec![1])).unwrap();
    assert!(running(&a));
    assert_eq!(resumed(&a), Some(vec![1]));
    // A sampler's read halts everything; after it, hart 1 alone runs again.
    let mut g = HaltGuard::new(&mut t).unwrap();
    let mut buf = [0u8; 4];
    g.read_memory(RAM, &mut buf).unwrap();
    drop(g);
    assert!(running(&a));
    assert_eq!(resumed(&a), Some(vec![1]), "the lock outlives the read");
    // The client stops, then continues plainly: every hart runs.
    a.client_interrupt().unwrap();
    assert!(!running(&a));
    a.client_resume().unwrap();
    assert_eq!(resumed(&a), None);
}

#[test]
fn a_second_client_is_refused() {
    let a = arbiter();
    a.attach_client().unwrap().unwrap();
    assert!(a.attach_client().unwrap().is_err());
}

#[test]
fn a_departing_client_leaves_no_breakpoint_and_a_running_guest() {
    let a = arbiter();
    let mut t = a.sampler_target().unwrap();
    HaltGuard::new(&mut t).unwrap().set_breakpoint(B).unwrap();
    client_waiting_at_a(&a);
    a.with_guest(|g| g.hit(A));
    assert_eq!(a.client_poll().unwrap(), Some(ClientStop::Breakpoint));
    a.client_add_watchpoint(WatchKind::Write, RAM, 8).unwrap();
    a.detach_client();
    assert!(running(&a));
    assert_eq!(installed(&a), vec![B], "the sampler's breakpoint stays");
    assert!(!a.client_attached());
    a.attach_client().unwrap().unwrap();
}

#[test]
fn the_last_user_detaches_the_connection() {
    let a = arbiter();
    let mut t = a.sampler_target().unwrap();
    HaltGuard::new(&mut t).unwrap().set_breakpoint(B).unwrap();
    a.attach_client().unwrap().unwrap();
    t.detach().unwrap();
    assert_eq!(installed(&a), Vec::<u64>::new());
    assert!(!running(&a), "the client still holds it");
    a.detach_client();
    assert!(running(&a));
    a.shutdown();
    assert!(a.with_guest(|_| ()).is_none(), "detached");
}

// ---- over TCP ---------------------------------------------------------------------------

fn rsp_config() -> RspConfig {
    RspConfig {
        reply_timeout: Duration::from_secs(5),
        ..RspConfig::default()
    }
}

#[test]
fn a_client_over_tcp_reads_breaks_and_detaches_a_second_is_refused() {
    let a = arbiter();
    let mut listener = Listener::start("127.0.0.1:0", a.clone()).unwrap();
    let mut gdb = RspClient::connect(listener.addr(), rsp_config()).unwrap();
    assert!(!running(&a), "attaching halts the guest");
    let mut buf = [0u8; 4];
    gdb.read_memory(RAM + 4, &mut buf).unwrap();
    assert_eq!(buf, [4, 5, 6, 7]);
    gdb.insert_breakpoint(BreakpointType::Software, A, 4)
        .unwrap();
    assert_eq!(installed(&a), vec![A]);
    assert_eq!(
        gdb.monitor("info status").unwrap(),
        "monitor: info status\n"
    );
    // A guest that describes nothing: gdb gets gdbstub_arch's integer registers, and a register
    // beyond them is an error reply, not a dead session.
    let xml = String::from_utf8(gdb.read_features_xml("target.xml").unwrap()).unwrap();
    assert!(xml.contains("org.gnu.gdb.riscv.cpu"), "{xml}");
    assert!(
        gdb.read_register(33).is_err(),
        "f0 is not served by a MemTarget"
    );
    assert_eq!(gdb.read_register(1).unwrap().len(), 8, "ra still reads");
    gdb.cont().unwrap();
    std::thread::sleep(Duration::from_millis(20));
    assert!(running(&a));
    a.with_guest(|g| g.hit(A));
    let stop = gdb.wait_for_stop(Duration::from_secs(5)).unwrap();
    assert!(
        matches!(stop, Some(StopReply::Stopped { signal: 5, .. })),
        "{stop:?}"
    );
    assert_eq!(a.held_by_client(), Some(A));

    // A second client is told why it cannot attach, in an error reply.
    let mut second = std::net::TcpStream::connect(listener.addr()).unwrap();
    second
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let reply = raw_packet(&mut second, "qSupported:multiprocess+");
    assert!(reply.starts_with("E.another gdb is attached"), "{reply}");
    assert_eq!(
        a.held_by_client(),
        Some(A),
        "the first client is undisturbed"
    );

    // The client detaches (`D`): its breakpoint goes, the guest runs.
    drop(gdb);
    wait_until(|| listener.log().last_end.is_some());
    assert!(running(&a));
    assert_eq!(installed(&a), Vec::<u64>::new());
    assert_eq!(listener.log().last_end.as_deref(), Some("detached"));
    listener.stop();
}

fn wait_until(mut f: impl FnMut() -> bool) {
    for _ in 0..500 {
        if f() {
            return;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    panic!("condition not met within 5 s");
}

/// Sends one packet and returns the payload of the reply (acks on).
fn raw_packet(s: &mut std::net::TcpStream, payload: &str) -> String {
    use std::io::Write;
    let sum = payload.bytes().fold(0u8, |a, b| a.wrapping_add(b));
    s.write_all(format!("${payload}#{sum:02x}").as_bytes())
        .unwrap();
    raw_reply(s)
}

fn raw_reply(s: &mut std::net::TcpStream) -> String {
    use std::io::{Read, Write};
    let mut got = Vec::new();
    let mut byte = [0u8; 1];
    loop {
        s.read_exact(&mut byte).unwrap();
        got.push(byte[0]);
        if let Some(start) = got.iter().position(|&b| b == b'$') {
            if got.len() >= 3 && got[got.len() - 3] == b'#' && got.len() > start + 3 {
                s.write_all(b"+").unwrap();
                return String::from_utf8_lossy(&got[start + 1..got.len() - 3]).into_owned();
            }
        }
    }
}

#[test]
fn a_client_that_dies_at_its_breakpoint_leaves_the_guest_running_without_it() {
    let a = arbiter();
    let mut listener = Listener::start("127.0.0.1:0", a.clone()).unwrap();
    let mut s = std::net::TcpStream::connect(listener.addr()).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    assert_eq!(raw_packet(&mut s, &format!("Z0,{A:x},4")), "OK");
    {
        use std::io::Write;
        s.write_all(b"$c#63").unwrap();
    }
    wait_until(|| running(&a));
    a.with_guest(|g| g.hit(A));
    let stop = raw_reply(&mut s);
    assert!(stop.starts_with("T05") || stop.starts_with("S05"), "{stop}");
    assert!(!running(&a));
    assert_eq!(installed(&a), vec![A]);
    // Killed: the socket closes without `D`.
    drop(s);
    wait_until(|| listener.log().last_end.is_some());
    assert!(!a.client_attached());
    assert!(running(&a), "the guest resumes");
    assert_eq!(installed(&a), Vec::<u64>::new(), "its breakpoint is gone");
    assert!(listener
        .log()
        .last_end
        .unwrap()
        .contains("connection closed"));
    listener.stop();
}
