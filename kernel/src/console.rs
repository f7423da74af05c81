//! The console: formatted output (`print!`/`println!`) and the input line discipline over the
//! UART. Output turns `\n` into `\r\n`. Input is edited (echo, backspace) into one pending line;
//! a line is complete at `\r` or `\n` and is handed out whole by [`take_line`].

use crate::sync::{IrqGuard, KCell};
use crate::uart;
use core::fmt::{self, Write};

struct Console;

impl Write for Console {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        write_bytes(s.as_bytes());
        Ok(())
    }
}

/// Writes raw bytes to the console (`\n` becomes `\r\n`).
pub fn write_bytes(bytes: &[u8]) {
    for &b in bytes {
        if b == b'\n' {
            uart::putc(b'\r');
        }
        uart::putc(b);
    }
}

#[doc(hidden)]
pub fn _print(args: fmt::Arguments) {
    let _irq = IrqGuard::new();
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

static LINE: KCell<LineBuf> = KCell::new(LineBuf {
    buf: [0; LINE_MAX],
    len: 0,
    complete: false,
});

/// Drains the UART into the line buffer (echoing) until a line is complete or no byte waits.
fn poll() {
    // SAFETY: sync module invariant; no other reference to LINE is alive.
    let line = unsafe { &mut *LINE.get() };
    while !line.complete {
        let Some(b) = uart::getc() else { break };
        match b {
            b'\r' | b'\n' => {
                write_bytes(b"\n");
                line.complete = true;
            }
            BACKSPACE | DELETE if line.len > 0 => {
                line.len -= 1;
                write_bytes(b"\x08 \x08");
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
    let _irq = IrqGuard::new();
    poll();
    // SAFETY: sync module invariant; `poll`'s reference is dead.
    let line = unsafe { &mut *LINE.get() };
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
