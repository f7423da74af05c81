//! Calls into the SBI firmware (OpenSBI): timer, hart start (HSM) and system reset. Owns no
//! state.

use core::arch::asm;

const EXT_TIME: usize = 0x5449_4D45;
const EXT_SRST: usize = 0x5352_5354;
const EXT_HSM: usize = 0x0048_534D;
const HSM_HART_START: usize = 0;

fn call(ext: usize, func: usize, a0: usize, a1: usize) -> (isize, usize) {
    call3(ext, func, a0, a1, 0)
}

fn call3(ext: usize, func: usize, a0: usize, a1: usize, a2: usize) -> (isize, usize) {
    let (err, val);
    // SAFETY: an SBI ecall clobbers only a0/a1 (declared); the firmware does not touch our memory.
    unsafe {
        asm!("ecall", inlateout("a0") a0 => err, inlateout("a1") a1 => val,
             in("a2") a2, in("a6") func, in("a7") ext);
    }
    (err, val)
}

/// Starts hart `hartid` (stopped, as OpenSBI leaves every hart but the boot hart) in S-mode at
/// physical address `start` with paging off, a0 = `hartid` and a1 = `opaque`. Err(SBI error
/// code) if there is no such hart or it is not stopped.
pub fn hart_start(hartid: usize, start: usize, opaque: usize) -> Result<(), isize> {
    match call3(EXT_HSM, HSM_HART_START, hartid, start, opaque).0 {
        0 => Ok(()),
        e => Err(e),
    }
}

/// Arms the S-mode timer interrupt for absolute time `stime` (in `time` CSR ticks).
pub fn set_timer(stime: u64) {
    call(EXT_TIME, 0, stime as usize, 0);
}

/// Powers the machine off (QEMU exits). Never returns.
pub fn shutdown() -> ! {
    call(EXT_SRST, 0, 0, 0);
    loop {
        // SAFETY: wfi only waits.
        unsafe { asm!("wfi") };
    }
}
