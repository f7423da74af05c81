//! `churn [ROUNDS]` (default 300): random allocations and frees, and children that leak
//! (`leak K`); exits holding some pages, which the exit sweep reclaims.
#![no_std]
#![no_main]

use user::*;

entry!(main);

fn main(args: Args) -> i32 {
    let rounds = args.get(1).and_then(parse_u64).unwrap_or(300);
    let pid = getpid();
    let mut rng = Rng::new(time_ns() ^ 0x9e37_79b9_7f4a_7c15 ^ pid as u64);
    let mut held: [(usize, usize); 48] = [(0, 0); 48];
    let mut nheld = 0;
    let (mut allocs, mut frees, mut children, mut failed) = (0u64, 0u64, 0u64, 0u64);
    for _ in 0..rounds {
        match rng.below(10) {
            0..=4 if nheld < held.len() => {
                let size = 1 + rng.below(4) as usize;
                match alloc_pages(size) {
                    Ok(a) => {
                        held[nheld] = (a, size);
                        nheld += 1;
                        allocs += 1;
                    }
                    Err(_) => failed += 1,
                }
            }
            0..=7 if nheld > 0 => {
                let k = rng.below(nheld as u64) as usize;
                let (a, size) = held[k];
                if let Err(e) = free_pages(a, size) {
                    println!(
                        "churn: free of {a:#x} ({size} pages) failed: {}",
                        err_name(e)
                    );
                    return 1;
                }
                nheld -= 1;
                held[k] = held[nheld];
                frees += 1;
            }
            8 if rng.below(4) == 0 => {
                let mut num = [0u8; 2];
                num[0] = b'1' + rng.below(8) as u8;
                let n = core::str::from_utf8(&num[..1]).unwrap_or("1");
                match spawn("leak", &["leak", n]) {
                    Ok(child) => {
                        let _ = wait(Some(child), false);
                        children += 1;
                    }
                    Err(_) => failed += 1,
                }
            }
            _ => yield_now(),
        }
    }
    println!(
        "churn: pid={pid} rounds={rounds} allocs={allocs} frees={frees} children={children} failed={failed} leaving {nheld} allocations"
    );
    0
}
