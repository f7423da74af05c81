//! The runtime of Leakscope user programs: syscall wrappers, `print!`/`println!`, arguments,
//! the `_start` entry (see [`entry!`]) and a panic handler that exits with code 101.
#![no_std]
#![forbid(unsafe_op_in_unsafe_fn)]

pub mod sysabi;

use core::arch::asm;
use core::fmt::{self, Write};
pub use sysabi::*;

/// Raw syscall: number `n`, up to four arguments; the kernel's result.
///
/// Always inlined, with [`check`] and [`alloc_pages`]: the `ecall` then sits in the caller's
/// own code, and its pc (what the kernel records as the user site of an allocation) has the
/// caller's line in the line table's inlining information.
#[inline(always)]
pub fn syscall(n: usize, a0: usize, a1: usize, a2: usize, a3: usize) -> isize {
    let ret: isize;
    // SAFETY: `ecall` into the kernel, which validates every argument; only a0 is clobbered.
    unsafe {
        asm!("ecall", inlateout("a0") a0 as isize => ret, in("a1") a1, in("a2") a2, in("a3") a3, in("a7") n);
    }
    ret
}

/// `Ok(value)` for a result >= 0, else `Err(code)`.
#[inline(always)]
pub fn check(r: isize) -> Result<usize, isize> {
    if r >= 0 {
        Ok(r as usize)
    } else {
        Err(r)
    }
}

pub fn write(bytes: &[u8]) -> isize {
    syscall(SYS_WRITE, bytes.as_ptr() as usize, bytes.len(), 0, 0)
}

/// Reads one console line (with its `\n`) into `buf`; returns its length.
pub fn read_line(buf: &mut [u8]) -> Result<usize, isize> {
    check(syscall(
        SYS_READ,
        buf.as_mut_ptr() as usize,
        buf.len(),
        0,
        0,
    ))
}

pub fn exit(code: i32) -> ! {
    syscall(SYS_EXIT, code as usize, 0, 0, 0);
    unreachable!("exit returned")
}

pub fn getpid() -> u32 {
    syscall(SYS_GETPID, 0, 0, 0, 0) as u32
}

/// Starts program `name` with `args` (args[0] is conventionally the name); returns its pid.
pub fn spawn(name: &str, args: &[&str]) -> Result<u32, isize> {
    let mut block = [0u8; MAX_ARGS_LEN];
    let mut n = 0;
    for a in args {
        if n + a.len() + 1 > block.len() {
            return Err(EINVAL);
        }
        block[n..n + a.len()].copy_from_slice(a.as_bytes());
        n += a.len() + 1;
    }
    check(syscall(
        SYS_SPAWN,
        name.as_ptr() as usize,
        name.len(),
        block.as_ptr() as usize,
        n,
    ))
    .map(|p| p as u32)
}

/// Waits for child `pid` (or any child with `None`); `Ok(None)` with `nohang` if none exited yet.
pub fn wait(pid: Option<u32>, nohang: bool) -> Result<Option<(u32, i32)>, isize> {
    let mut status: i32 = 0;
    let target = pid.map_or(-1isize as usize, |p| p as usize);
    let flags = if nohang { WAIT_NOHANG } else { 0 };
    let r = check(syscall(
        SYS_WAIT,
        target,
        &mut status as *mut i32 as usize,
        flags,
        0,
    ))?;
    Ok((r != 0).then_some((r as u32, status)))
}

pub fn yield_now() {
    syscall(SYS_YIELD, 0, 0, 0, 0);
}

pub fn sleep_ms(ms: u64) {
    syscall(SYS_SLEEP, ms as usize, 0, 0, 0);
}

/// Allocates `npages` zeroed pages mapped into this process; returns their address. The kernel
/// records the caller's line as the pages' user site (inlined for that, see [`syscall`]).
#[inline(always)]
pub fn alloc_pages(npages: usize) -> Result<usize, isize> {
    check(syscall(SYS_ALLOC_PAGES, npages, 0, 0, 0))
}

pub fn free_pages(addr: usize, npages: usize) -> Result<(), isize> {
    check(syscall(SYS_FREE_PAGES, addr, npages, 0, 0)).map(|_| ())
}

pub fn procinfo(out: &mut [ProcStat]) -> Result<usize, isize> {
    check(syscall(
        SYS_PROCINFO,
        out.as_mut_ptr() as usize,
        out.len(),
        0,
        0,
    ))
}

pub fn meminfo(out: &mut MemStat) -> Result<(), isize> {
    check(syscall(SYS_MEMINFO, out as *mut MemStat as usize, 0, 0, 0)).map(|_| ())
}

pub fn set_debug(on: bool) -> bool {
    syscall(SYS_DEBUG, on as usize, 0, 0, 0) != 0
}

pub fn time_ns() -> u64 {
    syscall(SYS_TIME, 0, 0, 0, 0) as u64
}

pub fn uptime_ms() -> u64 {
    syscall(SYS_UPTIME, 0, 0, 0, 0) as u64
}

/// Program names, one per line; returns the bytes written.
pub fn list_programs(buf: &mut [u8]) -> Result<usize, isize> {
    check(syscall(
        SYS_LIST,
        buf.as_mut_ptr() as usize,
        buf.len(),
        0,
        0,
    ))
}

pub fn dump_allocs() {
    syscall(SYS_DUMP_ALLOCS, 0, 0, 0, 0);
}

pub struct Stdout;

impl Write for Stdout {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        write(s.as_bytes());
        Ok(())
    }
}

/// Formats into a buffer first so one line is one `write` (lines of concurrent programs do
/// not interleave mid-line).
pub struct LineWriter {
    buf: [u8; 256],
    len: usize,
}

impl LineWriter {
    pub const fn new() -> Self {
        LineWriter {
            buf: [0; 256],
            len: 0,
        }
    }
    pub fn flush(&mut self) {
        if self.len > 0 {
            write(&self.buf[..self.len]);
            self.len = 0;
        }
    }
}

impl Default for LineWriter {
    fn default() -> Self {
        Self::new()
    }
}

impl Write for LineWriter {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        for &b in s.as_bytes() {
            if self.len == self.buf.len() {
                self.flush();
            }
            self.buf[self.len] = b;
            self.len += 1;
        }
        Ok(())
    }
}

/// Formats into a byte buffer (for building arguments); text past its end is dropped.
pub struct BufWriter<'a> {
    buf: &'a mut [u8],
    len: usize,
}

impl<'a> BufWriter<'a> {
    pub fn new(buf: &'a mut [u8]) -> Self {
        BufWriter { buf, len: 0 }
    }
    pub fn as_str(&self) -> &str {
        core::str::from_utf8(&self.buf[..self.len]).unwrap_or("")
    }
}

impl Write for BufWriter<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let n = s.len().min(self.buf.len() - self.len);
        self.buf[self.len..self.len + n].copy_from_slice(&s.as_bytes()[..n]);
        self.len += n;
        Ok(())
    }
}

/// Parses a hexadecimal number with or without `0x`.
pub fn parse_hex(s: &str) -> Option<u64> {
    let s = s.strip_prefix("0x").unwrap_or(s);
    u64::from_str_radix(s, 16).ok()
}

#[doc(hidden)]
pub fn _print(args: fmt::Arguments) {
    let mut w = LineWriter::new();
    let _ = w.write_fmt(args);
    w.flush();
}

#[macro_export]
macro_rules! print {
    ($($arg:tt)*) => ($crate::_print(format_args!($($arg)*)));
}

#[macro_export]
macro_rules! println {
    () => ($crate::print!("\n"));
    ($($arg:tt)*) => ($crate::_print(format_args!("{}\n", format_args!($($arg)*))));
}

/// The program's arguments (args[0] is the program name).
#[derive(Clone, Copy)]
pub struct Args {
    block: &'static [u8],
}

impl Args {
    pub fn iter(&self) -> impl Iterator<Item = &'static str> {
        let block = self.block;
        block
            .strip_suffix(b"\0")
            .unwrap_or(block)
            .split(|&b| b == 0)
            .filter(move |_| !block.is_empty())
            .map(|a| core::str::from_utf8(a).unwrap_or("?"))
    }
    pub fn get(&self, i: usize) -> Option<&'static str> {
        self.iter().nth(i)
    }
    pub fn len(&self) -> usize {
        self.iter().count()
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Parses a decimal number.
pub fn parse_u64(s: &str) -> Option<u64> {
    if s.is_empty() {
        return None;
    }
    s.bytes().try_fold(0u64, |acc, b| {
        if b.is_ascii_digit() {
            acc.checked_mul(10)?.checked_add((b - b'0') as u64)
        } else {
            None
        }
    })
}

/// A small xorshift PRNG.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed | 1)
    }
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }
    /// Uniform-ish in `0..n` (n > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }
}

extern "Rust" {
    fn user_main(args: Args) -> i32;
}

/// Defines the program's entry: `entry!(main);` with `fn main(args: Args) -> i32`.
#[macro_export]
macro_rules! entry {
    ($main:path) => {
        #[no_mangle]
        fn user_main(args: $crate::Args) -> i32 {
            $main(args)
        }
    };
}

/// Process entry: a0/a1 = the argument block on the stack (set up by the kernel).
#[no_mangle]
#[link_section = ".text.entry"]
extern "C" fn _start(args: *const u8, len: usize) -> ! {
    // SAFETY: the kernel placed `len` bytes of arguments at `args`, at the top of our stack,
    // above the initial stack pointer: they stay valid and untouched for the whole run.
    let block = unsafe { core::slice::from_raw_parts(args, len) };
    // SAFETY: every program defines `user_main` through `entry!`.
    let code = unsafe { user_main(Args { block }) };
    exit(code)
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo) -> ! {
    println!("[pid {}] panic: {}", getpid(), info);
    exit(101)
}

/// The kernel's spin locks' counters (`SYS_LOCKSTAT`) into `out`; returns how many.
pub fn lockstat(out: &mut [LockStat]) -> Result<usize, isize> {
    check(syscall(
        SYS_LOCKSTAT,
        out.as_mut_ptr() as usize,
        out.len(),
        0,
        0,
    ))
}
