//! Calls into the SBI firmware (OpenSBI): timer and system reset. Owns no state.

use core::arch::asm;

const EXT_TIME: usize = 0x5449_4D45;
const EXT_SRST: usize = 0x5352_5354;

fn call(ext: usize, func: usize, a0: usize, a1: usize) -> (isize, usize) {
    let (err, val);
    // SAFETY: an SBI ecall clobbers only a0/a1 (declared); the firmware does not touch our memory.
    unsafe {
        asm!("ecall", inlateout("a0") a0 => err, inlateout("a1") a1 => val,
             in("a6") func, in("a7") ext);
    }
    (err, val)
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
