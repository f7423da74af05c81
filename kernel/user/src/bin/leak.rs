//! `leak N [S]`: allocates N pages in runs of 1-4 pages, holds them S seconds (default 0) and
//! exits without freeing them: the kernel's exit sweep must reclaim them.
#![no_std]
#![no_main]

use user::*;

entry!(main);

fn main(args: Args) -> i32 {
    let Some(n) = args.get(1).and_then(parse_u64) else {
        println!("usage: leak N [S]");
        return 2;
    };
    let hold = args.get(2).and_then(parse_u64).unwrap_or(0);
    let pid = getpid();
    let mut rng = Rng::new(time_ns() ^ ((pid as u64) << 32));
    let (mut pages, mut allocs) = (0u64, 0u64);
    while pages < n {
        let size = (1 + rng.below(4)).min(n - pages);
        match alloc_pages(size as usize) {
            Ok(addr) => {
                // Touch every page: they are really ours.
                for k in 0..size as usize {
                    // SAFETY: the kernel mapped `size` writable pages at `addr`.
                    unsafe {
                        ((addr + k * PAGE_SIZE as usize) as *mut u64).write_volatile(pid as u64)
                    };
                }
                pages += size;
                allocs += 1;
            }
            Err(e) => {
                println!(
                    "leak: pid={pid} allocation failed after {pages} pages: {}",
                    err_name(e)
                );
                return 1;
            }
        }
    }
    println!("leak: pid={pid} allocated {pages} pages in {allocs} allocations");
    if hold > 0 {
        sleep_ms(hold * 1000);
    }
    0
}
