//! The ns16550a UART at 0x1000_0000: polled byte I/O. Owns the device registers.
//! Callers serialise access: they hold the console lock (`console`), or are panicking.

const BASE: usize = 0x1000_0000;
const RBR_THR: usize = 0; // receive buffer / transmit holding
const IER: usize = 1;
const FCR: usize = 2;
const LCR: usize = 3;
const LSR: usize = 5;
const LSR_DATA_READY: u8 = 1 << 0;
const LSR_THR_EMPTY: u8 = 1 << 5;
/// Line control: 8 data bits, no parity, 1 stop bit.
const LCR_8N1: u8 = 0x03;
const FCR_FIFO_ENABLE: u8 = 1 << 0;

fn reg(off: usize) -> *mut u8 {
    (BASE + off) as *mut u8
}

fn read(off: usize) -> u8 {
    // SAFETY: BASE is the UART's MMIO window on QEMU virt, identity-mapped in every page table.
    unsafe { reg(off).read_volatile() }
}

fn write(off: usize, v: u8) {
    // SAFETY: as in `read`.
    unsafe { reg(off).write_volatile(v) }
}

/// 8N1, FIFO on (pending input kept), device interrupts off (the console is polled).
pub fn init() {
    write(IER, 0);
    write(LCR, LCR_8N1);
    write(FCR, FCR_FIFO_ENABLE);
}

pub fn putc(b: u8) {
    while read(LSR) & LSR_THR_EMPTY == 0 {}
    write(RBR_THR, b);
}

/// The next received byte, if one is waiting.
pub fn getc() -> Option<u8> {
    (read(LSR) & LSR_DATA_READY != 0).then(|| read(RBR_THR))
}
