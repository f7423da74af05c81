//! `allocbench N`: N pairs of a one-page `alloc_pages` and its `free_pages`, timed with the
//! kernel's clock; prints `allocbench: N pairs in T us`. The cost of the tracker's bookkeeping
//! (and its generation protocol) per allocation is T / 2N, syscalls and page zeroing included.
//!
//! T has the resolution of the uptime syscall (1 ms): the run starts on a millisecond boundary,
//! so T is short of the truth by less than 1 ms; pick N large enough (2000 pairs take tens of
//! ms).
//! Exits 1 if an allocation or a free fails (the exit sweep reclaims a page it still held).
#![no_std]
#![no_main]

use user::*;

entry!(main);

fn main(args: Args) -> i32 {
    let Some(n) = args.get(1).and_then(parse_u64) else {
        println!("usage: allocbench N");
        return 2;
    };
    // Start just after the uptime clock ticks: the first reading is then exact to within the
    // time of one syscall, not of one millisecond.
    let t0 = uptime_ms();
    let mut start = uptime_ms();
    while start == t0 {
        start = uptime_ms();
    }
    for i in 0..n {
        let addr = match alloc_pages(1) {
            Ok(a) => a,
            Err(e) => {
                println!("allocbench: allocation {i} failed: {}", err_name(e));
                return 1;
            }
        };
        if let Err(e) = free_pages(addr, 1) {
            println!("allocbench: free {i} of {addr:#x} failed: {}", err_name(e));
            return 1;
        }
    }
    let us = (uptime_ms() - start) * 1000;
    println!("allocbench: {n} pairs in {us} us");
    0
}
