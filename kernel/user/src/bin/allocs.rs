//! Prints its pid, then the kernel's table of outstanding allocations (`dump_allocs`).
#![no_std]
#![no_main]

use user::*;

entry!(main);

fn main(_args: Args) -> i32 {
    println!("allocs: pid={}", getpid());
    dump_allocs();
    0
}
