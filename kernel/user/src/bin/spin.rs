//! `spin [N]`: busy-loops N×10^7 iterations (default 100) without a syscall, then says so.
//! With the timer preempting it, other programs keep running meanwhile.
#![no_std]
#![no_main]

use user::*;

entry!(main);

fn main(args: Args) -> i32 {
    let n = args.get(1).and_then(parse_u64).unwrap_or(100) * 10_000_000;
    let mut x = 0u64;
    for i in 0..n {
        x = core::hint::black_box(x.wrapping_add(i));
    }
    println!("spin: pid={} done ({x:#x})", getpid());
    0
}
