//! The RSP client and `RspTarget` against a fake stub built with the `gdbstub` crate (no-ack
//! mode, run-length encoded replies, no PhyMemMode): connect, halt, reads split across packets,
//! registers, breakpoints, step, resume, detach, and injected faults.

mod common;

use std::time::Duration;

use common::fake_stub::{regions_from_elf, FakeStub, FakeStubConfig, Fault};
use inspector::rsp::{RspConfig, RspError};
use inspector::target::{
    BreakpointKind, HaltGuard, MemoryMode, RspTarget, RspTargetOptions, StopReason, Target,
    TargetError,
};

const RAM: u64 = 0x8000_0000;

/// Waits (up to 3 s) for the stub to reach a state: the client returns from `c` as soon as it is
/// sent, before the stub has processed it.
fn eventually(stub: &FakeStub, what: &str, cond: impl Fn(&common::fake_stub::Shared) -> bool) {
    for _ in 0..300 {
        if cond(&stub.shared()) {
            return;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    panic!("the fake stub never got {what}: {:?}", *stub.shared());
}

fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 7 + i / 251) as u8).collect()
}

fn options(resume: bool) -> RspTargetOptions {
    RspTargetOptions {
        rsp: RspConfig {
            connect_timeout: Duration::from_secs(2),
            reply_timeout: Duration::from_millis(1500),
            max_retransmits: 2,
            ..RspConfig::default()
        },
        memory: MemoryMode::PreferPhysical,
        resume_on_connect: resume,
    }
}

fn stub(packet_size: usize, fault: Fault) -> FakeStub {
    FakeStub::spawn(FakeStubConfig {
        regions: vec![
            (RAM, pattern(10_000)),
            // Zeros: the stub run-length encodes them.
            (0x8020_0000, vec![0; 0x1000]),
        ],
        packet_size,
        fault,
        ..FakeStubConfig::default()
    })
}

#[test]
fn halt_read_across_packet_splits_resume_and_detach() {
    let mut stub = stub(256, Fault::None);
    let mut target = RspTarget::connect(&stub.addr, options(true)).unwrap();
    assert!(
        !target.client().acks_enabled(),
        "gdbstub offers QStartNoAckMode"
    );
    assert_eq!(target.client().max_read_chunk(), 128);
    assert!(
        !target.physical_memory(),
        "gdbstub has no Qqemu.PhyMemMode: virtual reads"
    );
    assert!(!target.is_halted());
    eventually(&stub, "running after connect", |s| s.running);

    let mut buf = vec![0u8; 9_000];
    let mut zeros = vec![0xffu8; 0x1000];
    {
        let mut guard = HaltGuard::new(&mut target).unwrap();
        assert_eq!(guard.stop_reason(), StopReason::Interrupted);
        assert!(!stub.shared().running);
        guard.read_memory(RAM + 3, &mut buf).unwrap();
        guard.read_memory(0x8020_0000, &mut zeros).unwrap();
        guard.resume().unwrap();
    }
    assert_eq!(buf, pattern(10_000)[3..9_003]);
    assert!(zeros.iter().all(|&b| b == 0));
    eventually(&stub, "running after the guard", |s| s.resumes == 2);
    {
        let s = stub.shared();
        // 9000 bytes in 128-byte packets, then 0x1000 zeros in 32 more.
        assert_eq!(s.reads, 9_000u64.div_ceil(128) + 32);
        assert_eq!(s.bytes_read, 9_000 + 0x1000);
        assert_eq!((s.interrupts, s.resumes), (1, 2));
        assert!(s.running, "the guard resumed the guest");
    }
    target.detach().unwrap();
    assert_eq!(stub.wait_end(), "detached");
    assert!(stub.shared().running);
    assert!(matches!(target.halt(), Err(TargetError::Detached)));
}

#[test]
fn guest_writes_while_running_are_seen_at_the_next_halt() {
    let mut stub = stub(4096, Fault::None);
    let mut target = RspTarget::connect(&stub.addr, options(true)).unwrap();
    let mut word = [0u8; 8];
    for value in [1u64, 0xdead_beef] {
        stub.poke(RAM + 0x100, &value.to_le_bytes());
        let mut g = HaltGuard::new(&mut target).unwrap();
        g.read_memory(RAM + 0x100, &mut word).unwrap();
        assert_eq!(u64::from_le_bytes(word), value);
    }
    assert_eq!(stub.shared().interrupts, 2);
    drop(target);
    assert_eq!(stub.wait_end(), "detached", "Drop detaches");
    assert!(stub.shared().running);
}

#[test]
fn registers_via_g_and_p_and_target_description() {
    let mut stub = stub(4096, Fault::None);
    let mut target = RspTarget::connect(&stub.addr, options(false)).unwrap();
    assert!(target.is_halted(), "resume_on_connect off: halted as found");
    let regs = target.read_registers().unwrap();
    assert_eq!(regs.to_array().len(), 33);
    assert_eq!(regs.x(0), Some(0));
    assert_eq!(regs.x(5), Some(0x1005));
    assert_eq!(regs.pc(), 0x8020_0000);
    let client = target.client();
    assert_eq!(client.read_register(5).unwrap(), 0x1005u64.to_le_bytes());
    let map = client.target_description().unwrap();
    assert_eq!(map.by_name("pc").unwrap().regnum, 32);
    assert_eq!(map.by_name("sp").unwrap().regnum, 2);
    target.detach().unwrap();
    assert_eq!(stub.wait_end(), "detached");
}

#[test]
fn breakpoint_wait_step_and_removal() {
    let mut stub = stub(4096, Fault::None);
    let mut target = RspTarget::connect(&stub.addr, options(false)).unwrap();
    let bp = 0x8020_0040;
    assert_eq!(target.set_breakpoint(bp).unwrap(), BreakpointKind::Software);
    assert_eq!(stub.shared().breakpoints, vec![bp]);
    target.resume().unwrap();
    let stop = target.wait_for_stop(Duration::from_secs(3)).unwrap();
    assert_eq!(stop, Some(StopReason::Trap));
    assert!(target.is_halted());
    assert_eq!(target.read_registers().unwrap().pc(), bp);
    assert_eq!(target.step().unwrap(), StopReason::Trap);
    assert_eq!(target.read_registers().unwrap().pc(), bp + 4);
    assert_eq!(stub.shared().steps, 1);
    target.remove_breakpoint(bp).unwrap();
    assert!(stub.shared().breakpoints.is_empty());
    assert!(matches!(
        target.remove_breakpoint(bp),
        Err(TargetError::NoBreakpoint { .. })
    ));
    // Left with a breakpoint set and the guest running: detach removes it first.
    target.set_breakpoint(0x8020_0080).unwrap();
    target.resume().unwrap();
    target.detach().unwrap();
    assert_eq!(stub.wait_end(), "detached");
    assert!(stub.shared().breakpoints.is_empty());
}

#[test]
fn no_stop_within_the_timeout_leaves_the_guest_running() {
    let mut stub = stub(4096, Fault::None);
    let mut target = RspTarget::connect(&stub.addr, options(true)).unwrap();
    assert_eq!(
        target.wait_for_stop(Duration::from_millis(50)).unwrap(),
        None
    );
    assert!(!target.is_halted());
    assert_eq!(stub.shared().interrupts, 0);
    target.detach().unwrap();
    assert_eq!(stub.wait_end(), "detached");
}

#[test]
fn reads_need_a_halt_and_unmapped_reads_are_typed() {
    let mut stub = stub(4096, Fault::None);
    let mut target = RspTarget::connect(&stub.addr, options(true)).unwrap();
    let mut buf = [0u8; 16];
    assert!(matches!(
        target.read_memory(RAM, &mut buf),
        Err(TargetError::NotHalted { .. })
    ));
    let result = (|| {
        let mut g = HaltGuard::new(&mut target)?;
        g.read_memory(0x1000, &mut buf)
    })();
    assert!(
        matches!(
            result,
            Err(TargetError::Unreadable {
                addr: 0x1000,
                len: 16,
                code: Some(14)
            })
        ),
        "{result:?}"
    );
    assert!(!target.is_halted(), "the guard resumed on the error path");
    eventually(&stub, "running after the error", |s| {
        s.running && s.resumes == 2
    });
    drop(target);
    assert_eq!(stub.wait_end(), "detached");
}

#[test]
fn silent_stub_times_out() {
    // Packets: qSupported, QStartNoAckMode, ?, then the read goes unanswered.
    let stub = stub(4096, Fault::SilentFrom(4));
    let mut opts = options(false);
    opts.memory = MemoryMode::Virtual;
    opts.rsp.reply_timeout = Duration::from_millis(300);
    let mut target = RspTarget::connect(&stub.addr, opts).unwrap();
    let err = target.read_memory(RAM, &mut [0u8; 8]).unwrap_err();
    assert!(
        matches!(err, TargetError::Rsp(RspError::Timeout { .. })),
        "{err}"
    );
    assert!(matches!(
        target.read_memory(RAM, &mut [0u8; 8]),
        Err(TargetError::Detached)
    ));
}

#[test]
fn dropped_connection_is_closed() {
    let mut stub = stub(4096, Fault::DisconnectAt(4));
    let mut opts = options(false);
    opts.memory = MemoryMode::Virtual;
    let mut target = RspTarget::connect(&stub.addr, opts).unwrap();
    let err = target.read_memory(RAM, &mut [0u8; 8]).unwrap_err();
    assert!(matches!(err, TargetError::Rsp(RspError::Closed)), "{err}");
    assert!(stub.wait_end().starts_with("error"));
}

#[test]
fn serves_an_elf_image() {
    let elf = std::fs::read(std::env::current_exe().unwrap()).unwrap();
    let regions = regions_from_elf(&elf);
    assert!(!regions.is_empty());
    let (addr, bytes) = regions
        .iter()
        .find(|(_, b)| b.len() >= 256 && b.iter().any(|&x| x != 0))
        .cloned()
        .unwrap();
    let mut stub = FakeStub::spawn(FakeStubConfig {
        regions,
        ..FakeStubConfig::default()
    });
    let mut target = RspTarget::connect(&stub.addr, options(false)).unwrap();
    let mut buf = vec![0u8; 256];
    target.read_memory(addr, &mut buf).unwrap();
    assert_eq!(buf, bytes[..256]);
    target.detach().unwrap();
    assert_eq!(stub.wait_end(), "detached");
}
