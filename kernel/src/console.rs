//! The console: formatted output (`print!`/`println!`) and the input line discipline over the
//! UART. Output turns `\n` into `\r\n`. Input is edited (echo, backspace) into one pending line;
//! a line is complete at `\r` or `\n` and is handed out whole by [`take_line`].
//!
//! Invariant: the UART and the line buffer are touched only under `CONSOLE` (the last lock in
//! the lock order), so output of one `print!` or one write is never interleaved with another
//! hart's; only a panic writes without it (`panic_print`).

use crate::sync::SpinLock;
use crate::uart;
use core::fmt::{self, Write};

struct Console;

impl Write for Console {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        emit(s.as_bytes());
        Ok(())
    }
}

/// Writes raw bytes to the console (`\n` becomes `\r\n`), in one piece.
pub fn write_bytes(bytes: &[u8]) {
    let _c = CONSOLE.lock();
    emit(bytes);
}

/// Writes `bytes` to the UART. Caller holds `CONSOLE` (or is panicking).
fn emit(bytes: &[u8]) {
    for &b in bytes {
        if b == b'\n' {
            uart::putc(b'\r');
        }
        uart::putc(b);
    }
}

#[doc(hidden)]
pub fn _print(args: fmt::Arguments) {
    let _c = CONSOLE.lock();
    let _ = Console.write_fmt(args);
}

/// Prints without the console lock: for the panic handler only (the panicking hart may hold
/// it; another hart's output may interleave).
pub fn panic_print(args: fmt::Arguments) {
    let _ = Console.write_fmt(args);
}

#[macro_export]
macro_rules! print {
    ($($arg:tt)*) => ($crate::console::_print(format_args!($($arg)*)));
}

#[macro_export]
macro_rules! println {
    () => ($crate::print!("\n"));
    ($($arg:tt)*) => ($crate::console::_print(format_args!("{}\n", format_args!($($arg)*))));
}

/// Bytes of the line buffer: a line holds at most `LINE_MAX - 1` characters and its `\n`.
pub const LINE_MAX: usize = 256;
/// Input bytes that erase the last character (Ctrl-H, DEL).
const BACKSPACE: u8 = 0x08;
const DELETE: u8 = 0x7f;

struct LineBuf {
    buf: [u8; LINE_MAX],
    len: usize,
    complete: bool,
}

/// The UART and the pending input line.
static CONSOLE: SpinLock<LineBuf> = SpinLock::new(
    "console",
    LineBuf {
        buf: [0; LINE_MAX],
        len: 0,
        complete: false,
    },
);

/// Drains the UART into the line buffer (echoing) until a line is complete or no byte waits.
/// Caller holds `CONSOLE` (whose data `line` is).
fn poll(line: &mut LineBuf) {
    while !line.complete {
        let Some(b) = uart::getc() else { break };
        match b {
            b'\r' | b'\n' => {
                emit(b"\n");
                line.complete = true;
            }
            BACKSPACE | DELETE if line.len > 0 => {
                line.len -= 1;
                emit(b"\x08 \x08");
            }
            b' '..=b'~' if line.len < LINE_MAX - 1 => {
                line.buf[line.len] = b;
                line.len += 1;
                uart::putc(b);
            }
            _ => {}
        }
    }
}

/// If a complete line is pending, copies it (with a trailing `\n`, truncated to `out.len()`)
/// into `out`, consumes it and returns the byte count.
pub fn take_line(out: &mut [u8]) -> Option<usize> {
    let mut guard = CONSOLE.lock();
    let line = &mut *guard;
    poll(line);
    if !line.complete {
        return None;
    }
    line.buf[line.len] = b'\n';
    let n = (line.len + 1).min(out.len());
    out[..n].copy_from_slice(&line.buf[..n]);
    line.len = 0;
    line.complete = false;
    Some(n)
}

/// The cost counters of the console's lock (`SYS_LOCKSTAT`).
pub fn lock_report() -> crate::sysabi::LockStat {
    CONSOLE.report()
}
