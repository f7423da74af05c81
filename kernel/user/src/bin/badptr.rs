//! Passes bad pointers and arguments to every syscall that takes them and prints each result.
//! Every call must be refused with an error; the last line says whether all were.
#![no_std]
#![no_main]

use user::*;

entry!(main);

const KERNEL: usize = 0x8020_0000;
const UNMAPPED: usize = 0x2000_0000;
const HIGH: usize = 0xffff_ffc0_0000_0000;

fn main(_args: Args) -> i32 {
    let text = _start_addr();
    let mut buf = [0u8; 64];
    let ok_ptr = buf.as_mut_ptr() as usize;
    let name = "hello";
    let stack_top = USER_STACK_TOP as usize;
    // One page of our own: frees of it with absurd page counts must be EINVAL, not a size
    // mismatch computed from a wrapped range.
    let own = alloc_pages(1).expect("badptr: alloc_pages(1)");
    let calls: [(&str, usize, [usize; 4]); 30] = [
        ("write(null)", SYS_WRITE, [0, 10, 0, 0]),
        ("write(kernel)", SYS_WRITE, [KERNEL, 10, 0, 0]),
        ("write(unmapped)", SYS_WRITE, [UNMAPPED, 10, 0, 0]),
        ("write(high)", SYS_WRITE, [HIGH, 8, 0, 0]),
        ("write(len overflow)", SYS_WRITE, [ok_ptr, usize::MAX, 0, 0]),
        (
            "write(past stack top)",
            SYS_WRITE,
            [stack_top - 8, 64, 0, 0],
        ),
        ("read(null)", SYS_READ, [0, 10, 0, 0]),
        ("read(kernel)", SYS_READ, [KERNEL, 10, 0, 0]),
        ("read(into text)", SYS_READ, [text, 10, 0, 0]),
        ("spawn(null name)", SYS_SPAWN, [0, 5, 0, 0]),
        ("spawn(kernel name)", SYS_SPAWN, [KERNEL, 5, 0, 0]),
        (
            "spawn(huge name len)",
            SYS_SPAWN,
            [name.as_ptr() as usize, 1 << 40, 0, 0],
        ),
        (
            "spawn(bad args)",
            SYS_SPAWN,
            [name.as_ptr() as usize, name.len(), KERNEL, 8],
        ),
        (
            "spawn(huge args len)",
            SYS_SPAWN,
            [name.as_ptr() as usize, name.len(), ok_ptr, 1 << 30],
        ),
        (
            "spawn(no such program)",
            SYS_SPAWN,
            ["nosuch".as_ptr() as usize, 6, 0, 0],
        ),
        ("wait(bad status)", SYS_WAIT, [usize::MAX, KERNEL, 0, 0]),
        ("procinfo(null)", SYS_PROCINFO, [0, 8, 0, 0]),
        ("procinfo(into text)", SYS_PROCINFO, [text, 8, 0, 0]),
        ("meminfo(null)", SYS_MEMINFO, [0, 0, 0, 0]),
        ("meminfo(kernel)", SYS_MEMINFO, [KERNEL, 0, 0, 0]),
        ("list(unmapped)", SYS_LIST, [UNMAPPED, 100, 0, 0]),
        ("alloc_pages(0)", SYS_ALLOC_PAGES, [0, 0, 0, 0]),
        ("alloc_pages(2^40)", SYS_ALLOC_PAGES, [1 << 40, 0, 0, 0]),
        ("free_pages(null)", SYS_FREE_PAGES, [0, 1, 0, 0]),
        (
            "free_pages(stack)",
            SYS_FREE_PAGES,
            [ok_ptr & !4095, 1, 0, 0],
        ),
        (
            "free_pages(heap, 0 pages)",
            SYS_FREE_PAGES,
            [HEAP_BASE as usize, 0, 0, 0],
        ),
        (
            "free_pages(unaligned)",
            SYS_FREE_PAGES,
            [HEAP_BASE as usize + 12, 1, 0, 0],
        ),
        (
            "free_pages(own page, 2^64-1 pages)",
            SYS_FREE_PAGES,
            [own, usize::MAX, 0, 0],
        ),
        (
            "free_pages(own page, 2^63 pages)",
            SYS_FREE_PAGES,
            [own, 1 << 63, 0, 0],
        ),
        ("syscall 999", 999, [0, 0, 0, 0]),
    ];
    let mut accepted = 0;
    for (what, n, a) in calls {
        let r = syscall(n, a[0], a[1], a[2], a[3]);
        println!(
            "badptr: {what} -> {r} {}",
            if r < 0 { err_name(r) } else { "ACCEPTED" }
        );
        if r >= 0 {
            accepted += 1;
        }
    }
    if free_pages(own, 1).is_err() {
        println!("badptr: FAILED: the own page could not be freed after the bad frees");
        accepted += 1;
    }
    if accepted == 0 {
        println!("badptr: all {} bad calls refused", calls.len());
        0
    } else {
        println!("badptr: FAILED: {accepted} bad calls accepted");
        1
    }
}

fn _start_addr() -> usize {
    USER_BASE as usize
}
