//! Writes to address 0: the kernel must kill this process (exit code -1) and live on.
#![no_std]
#![no_main]

use user::*;

entry!(main);

fn main(_args: Args) -> i32 {
    println!("crash: pid={} writing to address 0", getpid());
    // SAFETY: none: this is the point. The page is unmapped; the kernel kills us.
    unsafe { core::ptr::null_mut::<u64>().write_volatile(1) };
    println!("crash: still alive?!");
    0
}
