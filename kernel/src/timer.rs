//! Time: the `time` CSR, the periodic scheduler tick (SBI timer), and the goldfish RTC for
//! wall-clock time. Owns the tick interval and the tick counter.

use crate::devicetree::DEFAULT_TIMEBASE_HZ;
use crate::sbi;
use crate::sync::KCell;
use core::arch::asm;

/// `time` CSR ticks per second, from the device tree (`init`). The tracker header keeps the
/// same value as `timebase_hz` for the inspector.
static TIMEBASE: KCell<u64> = KCell::new(DEFAULT_TIMEBASE_HZ);
/// Scheduler ticks per second (one every 10 ms).
const TICK_HZ: u64 = 100;
const SIE_STIE: usize = 1 << 5;
/// goldfish-rtc on QEMU virt: nanoseconds since the Unix epoch.
const RTC_BASE: usize = 0x0010_1000;

/// The `time` CSR.
pub fn now() -> u64 {
    let t: u64;
    // SAFETY: reading the time CSR has no side effects.
    unsafe { asm!("rdtime {0}", out(reg) t) };
    t
}

pub fn timebase() -> u64 {
    // SAFETY: written once in `init`, before the other harts start.
    unsafe { *TIMEBASE.get() }
}

pub fn ms_to_ticks(ms: u64) -> u64 {
    ms.saturating_mul(timebase() / 1000)
}

pub fn uptime_ms() -> u64 {
    now() / (timebase() / 1000)
}

/// Records the timer frequency, arms the first tick and enables the timer interrupt source
/// (delivered only in U-mode or while the scheduler idles: the kernel keeps SIE off).
pub fn init(timebase: u64) {
    // SAFETY: boot, before the other harts start: single flow of control.
    unsafe { *TIMEBASE.get() = timebase };
    init_hart();
}

/// Arms this hart's first tick and enables its timer interrupt source (each hart has its own
/// SBI timer). The boot hart calls it through `init`, the others at their start.
pub fn init_hart() {
    sbi::set_timer(now() + timebase() / TICK_HZ);
    // SAFETY: enabling the timer interrupt source only; sstatus.SIE stays off.
    unsafe { asm!("csrs sie, {0}", in(reg) SIE_STIE) };
}

/// Handles a pending timer interrupt: arms the next tick (which clears the pending bit).
pub fn tick() {
    sbi::set_timer(now() + timebase() / TICK_HZ);
}

/// Whether a timer interrupt is pending.
pub fn pending() -> bool {
    let sip: usize;
    // SAFETY: reading sip has no side effects.
    unsafe { asm!("csrr {0}, sip", out(reg) sip) };
    sip & SIE_STIE != 0
}

/// Wall-clock time in nanoseconds since the epoch.
pub fn rtc_ns() -> u64 {
    // SAFETY: the goldfish RTC's registers, identity-mapped in device slot 0; reading TIME_LOW
    // latches TIME_HIGH.
    unsafe {
        let lo = ((RTC_BASE) as *const u32).read_volatile() as u64;
        let hi = ((RTC_BASE + 4) as *const u32).read_volatile() as u64;
        (hi << 32) | lo
    }
}
