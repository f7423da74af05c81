//! Leakscope kernel entry: boot assembly, `kmain` (the order of initialisation), panic handler.
//!
//! OpenSBI enters `_start` in S-mode on one hart (the boot hart) with a0 = hart id, a1 = device
//! tree address, paging off. `_start` sets `tp` to the hart id and `sp` to that hart's stack
//! (which its scheduler keeps), zeroes .bss and calls `kmain`, which never returns. The other
//! harts are started by `kmain` (`hart::start_secondaries`) and enter `secondary_main`.
#![no_std]
#![no_main]
#![forbid(unsafe_op_in_unsafe_fn)]

mod archive;
mod console;
mod devicetree;
mod hart;
mod mm;
mod proc;
mod sbi;
mod sync;
mod syscall;
mod timer;
mod trap;
mod uart;

use core::arch::global_asm;
/// The syscall ABI shared with the user programs.
use kcore::sysabi;

mod build_id {
    include!(concat!(env!("OUT_DIR"), "/build_id.rs"));
}

/// The inspector compares these bytes in the ELF file with guest memory: a fresh stamp per build.
#[no_mangle]
#[used]
pub static leakscope_build_id: [u8; 16] = build_id::BUILD_ID;

global_asm!(
    r#"
    .section .text.entry
    .globl _start
_start:
    li t0, {max_harts}
    bgeu a0, t0, 3f
    mv tp, a0
    la sp, __hart_stacks
    addi t0, a0, 1
    slli t0, t0, {stack_shift}
    add sp, sp, t0
    # One hart boots: the first to take the ticket (in .data, so the BSS clearing below
    # cannot reset it). Another hart that firmware sends here runs as a secondary instead.
    la t0, {boot_ticket}
    li t1, 1
    .option push
    .option arch, +a
    amoswap.w.aqrl t1, t1, (t0)
    .option pop
    bnez t1, 4f
    la t0, __bss_start
    la t1, __bss_end
1:
    bgeu t0, t1, 2f
    sd zero, 0(t0)
    addi t0, t0, 8
    j 1b
2:
    call kmain
3:
    wfi
    j 3b
4:
    call late_entry
    j 3b
"#,
    max_harts = const hart::MAX_HARTS,
    stack_shift = const hart::STACK_SHIFT,
    boot_ticket = sym hart::BOOT_TICKET,
);

#[no_mangle]
extern "C" fn kmain(hartid: usize, dtb: usize) -> ! {
    uart::init();
    let boot = devicetree::parse(dtb);
    let nonce = boot_nonce();
    banner(hartid, &boot, nonce);
    trap::init();
    mm::init(&boot, nonce);
    timer::init(boot.timebase_hz);
    hart::online();
    hart::start_secondaries();
    proc::inject_shell_start_failures(boot.fail_shell_starts);
    proc::spawn_init();
    proc::scheduler()
}

/// Entry of every hart but the boot hart (from `_secondary_start`, on its own stack, `tp` set,
/// paging off): the kernel's table, its trap vector and timer, then its scheduler.
#[no_mangle]
pub extern "C" fn secondary_main(_hartid: usize) -> ! {
    trap::init();
    mm::vm::activate(mm::vm::kernel_root());
    timer::init_hart();
    hart::online();
    proc::scheduler()
}

/// This build's id, read through a volatile load (which keeps the stamp in the image).
fn build_id() -> [u8; 16] {
    // SAFETY: a plain read of our own immutable static.
    unsafe { core::ptr::read_volatile(&leakscope_build_id) }
}

/// A value for the tracker header's `boot_nonce`: the wall clock (RTC) and the `time` CSR
/// mixed with the build id; differs between boots, never 0.
fn boot_nonce() -> u64 {
    kcore::nonce::boot_nonce(timer::rtc_ns(), timer::now(), &build_id())
}

fn banner(hartid: usize, boot: &devicetree::BootInfo, nonce: u64) {
    let id = build_id();
    println!();
    println!("Leakscope kernel (riscv64, S-mode) on hart {hartid}");
    print!("build id ");
    for b in id {
        print!("{b:02x}");
    }
    println!();
    println!(
        "RAM {:#x}..{:#x} ({} MiB), timebase {} Hz",
        boot.ram_base,
        boot.ram_base + boot.ram_size,
        boot.ram_size >> 20,
        boot.timebase_hz
    );
    println!("boot nonce {nonce:#018x}");
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo) -> ! {
    console::panic_print(format_args!(
        "\n[kernel panic] hart {}: {info}\n",
        hart::id()
    ));
    sbi::shutdown()
}
