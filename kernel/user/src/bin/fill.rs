//! `fill [S]`: allocates single pages until the kernel refuses (its allocation table is full),
//! prints how far it got and the error, holds S seconds (default 0) and exits: the exit sweep
//! must give everything back.
#![no_std]
#![no_main]

use user::*;

entry!(main);

fn main(args: Args) -> i32 {
    let hold = args.get(1).and_then(parse_u64).unwrap_or(0);
    let pid = getpid();
    let mut n = 0u64;
    let err = loop {
        match alloc_pages(1) {
            Ok(_) => n += 1,
            Err(e) => break e,
        }
    };
    println!(
        "fill: pid={pid} allocated {n} pages, then {}",
        err_name(err)
    );
    // The failure must be clean: the next attempt fails the same way and nothing leaked.
    let again = alloc_pages(1);
    println!(
        "fill: retry -> {}",
        match again {
            Ok(_) => "ok",
            Err(e) => err_name(e),
        }
    );
    if hold > 0 {
        sleep_ms(hold * 1000);
    }
    if err == ETABLEFULL {
        0
    } else {
        1
    }
}
