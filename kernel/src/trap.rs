//! Traps: the user trap vector and return path, the kernel trap vector (fatal), and dispatch of
//! user traps to syscalls, the scheduler tick, or killing the faulting process.
//!
//! Invariants: while a process runs in U-mode, `stvec` = `uservec` and `sscratch` = the
//! address of its trapframe; in S-mode `stvec` = `kernelvec`. Every table maps the kernel, so
//! neither vector switches `satp`. FP state (sstatus.FS on for everyone) is saved per process.

use crate::mm::vm;
use crate::{hart, println, proc, syscall, timer};
use core::arch::{asm, global_asm};

/// A process's registers while it is in the kernel. Lives in its own "trapframe" page.
/// The assembly below addresses the fields through `offset_of!`.
#[repr(C)]
pub struct TrapFrame {
    /// x0..x31 (x0 unused).
    pub regs: [u64; 32],
    pub fregs: [u64; 32],
    pub fcsr: u64,
    pub sepc: u64,
    /// Top of the process's kernel stack.
    pub kernel_sp: u64,
    /// The kernel's `tp` (hart id) of the hart the process runs on, set by `return_to_user`
    /// and loaded by `uservec` (user code may change `tp`; the user's value is in `regs[4]`).
    pub kernel_tp: u64,
}

pub const REG_SP: usize = 2;
pub const REG_A0: usize = 10;
pub const REG_A1: usize = 11;
pub const REG_A7: usize = 17;
/// Bytes of one saved register.
pub const XLEN_BYTES: usize = 8;

global_asm!(
    r#"
    .section .text
    .option push
    .option arch, +d
    .balign 4
    .globl uservec
uservec:
    csrrw a0, sscratch, a0
    .irp n, 1,2,3,4,5,6,7,8,9,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31
    sd x\n, ({regs}+\n*{xlen})(a0)
    .endr
    .irp n, 0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31
    fsd f\n, ({fregs}+\n*{xlen})(a0)
    .endr
    frcsr t0
    sd t0, {fcsr}(a0)
    csrr t0, sscratch
    sd t0, {saved_a0}(a0)
    csrr t0, sepc
    sd t0, {sepc}(a0)
    ld sp, {kernel_sp}(a0)
    ld tp, {kernel_tp}(a0)
    la t0, kernelvec
    csrw stvec, t0
    call user_trap

    .globl userret
userret:
    ld t0, {fcsr}(a0)
    fscsr t0
    .irp n, 0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31
    fld f\n, ({fregs}+\n*{xlen})(a0)
    .endr
    .irp n, 1,2,3,4,5,6,7,8,9,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31
    ld x\n, ({regs}+\n*{xlen})(a0)
    .endr
    ld a0, {saved_a0}(a0)
    sret

    .balign 4
    .globl kernelvec
kernelvec:
    addi sp, sp, -16
    sd ra, 8(sp)
    call kernel_trap
    .option pop
"#,
    xlen = const XLEN_BYTES,
    regs = const core::mem::offset_of!(TrapFrame, regs),
    fregs = const core::mem::offset_of!(TrapFrame, fregs),
    fcsr = const core::mem::offset_of!(TrapFrame, fcsr),
    sepc = const core::mem::offset_of!(TrapFrame, sepc),
    kernel_sp = const core::mem::offset_of!(TrapFrame, kernel_sp),
    kernel_tp = const core::mem::offset_of!(TrapFrame, kernel_tp),
    saved_a0 = const core::mem::offset_of!(TrapFrame, regs) + REG_A0 * XLEN_BYTES,
);

extern "C" {
    fn uservec();
    fn kernelvec();
    fn userret(tf: *mut TrapFrame) -> !;
}

const SSTATUS_SPP: usize = 1 << 8;
const SSTATUS_SPIE: usize = 1 << 5;
const SSTATUS_FS_INITIAL: usize = 1 << 13;
const SCAUSE_INTR: u64 = 1 << 63;
const IRQ_S_TIMER: u64 = 5;
const EXC_U_ECALL: u64 = 8;

/// Installs the kernel vector and turns the FPU on (FS = Initial).
pub fn init() {
    // SAFETY: kernelvec is a valid 4-aligned trap entry; setting FS only enables FP instructions.
    unsafe {
        asm!("csrw stvec, {0}", in(reg) kernelvec as *const () as usize);
        asm!("csrs sstatus, {0}", in(reg) SSTATUS_FS_INITIAL);
    }
}

fn csr_scause() -> u64 {
    let v: u64;
    // SAFETY: CSR read without side effects.
    unsafe { asm!("csrr {0}, scause", out(reg) v) };
    v
}

fn csr_stval() -> u64 {
    let v: u64;
    // SAFETY: CSR read without side effects.
    unsafe { asm!("csrr {0}, stval", out(reg) v) };
    v
}

/// Entered from `uservec` on the process's kernel stack with its trapframe.
#[no_mangle]
extern "C" fn user_trap(tf: *mut TrapFrame) -> ! {
    let scause = csr_scause();
    if scause & SCAUSE_INTR != 0 {
        if scause & !SCAUSE_INTR == IRQ_S_TIMER {
            timer::tick();
            proc::yield_now();
        } else {
            println!("[trap] unexpected interrupt scause={scause:#x}");
        }
    } else if scause == EXC_U_ECALL {
        // SAFETY: `tf` is the current process's trapframe page; only this flow uses it.
        let tf = unsafe { &mut *tf };
        tf.sepc += 4;
        syscall::dispatch(tf);
    } else {
        // SAFETY: as above, read only.
        let sepc = unsafe { (*tf).sepc };
        println!(
            "[trap] pid {} killed: scause={scause:#x} stval={:#x} sepc={sepc:#x}",
            proc::current_pid(),
            csr_stval()
        );
        proc::exit_current(-1);
    }
    return_to_user()
}

/// Returns to U-mode in the current process: its table, its trapframe, `sret`. Every return
/// writes `satp` and flushes this hart's TLB (`vm::activate`): the TLB strategy
/// (docs/architecture.md) relies on no hart entering U-mode with a translation cached before.
pub fn return_to_user() -> ! {
    let (tf, root, kstack_top) = proc::current_user_context();
    // SAFETY: `tf` is the current process's trapframe page; the CSR writes prepare `sret` to
    // U-mode at the saved pc with the process's own table (which maps the kernel too).
    unsafe {
        (*tf).kernel_sp = kstack_top;
        (*tf).kernel_tp = hart::id() as u64;
        vm::activate(root);
        asm!("csrw stvec, {0}", in(reg) uservec as *const () as usize);
        asm!("csrw sscratch, {0}", in(reg) tf as usize);
        asm!("csrc sstatus, {0}", in(reg) SSTATUS_SPP);
        asm!("csrs sstatus, {0}", in(reg) SSTATUS_SPIE);
        asm!("csrw sepc, {0}", in(reg) (*tf).sepc);
        userret(tf)
    }
}

/// A trap taken in S-mode: the kernel never expects one (interrupts are off), so it is fatal.
#[no_mangle]
extern "C" fn kernel_trap() -> ! {
    let sepc: u64;
    // SAFETY: CSR read without side effects.
    unsafe { asm!("csrr {0}, sepc", out(reg) sepc) };
    panic!(
        "kernel trap: scause={:#x} stval={:#x} sepc={sepc:#x}",
        csr_scause(),
        csr_stval()
    );
}
