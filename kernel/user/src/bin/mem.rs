//! Memory summary: page totals, then the tracked allocations and pages of each owner
//! (pid 0 = the kernel), then the tracker's counters.
#![no_std]
#![no_main]

use user::*;

entry!(main);

static mut STAT: MemStat = MemStat::ZERO;

fn main(_args: Args) -> i32 {
    // SAFETY: single-threaded program; the only reference to STAT.
    let m = unsafe { &mut *core::ptr::addr_of_mut!(STAT) };
    if let Err(e) = meminfo(m) {
        println!("mem: {}", err_name(e));
        return 1;
    }
    println!(
        "pages total={} free={} used={} tracked={} allocs={}",
        m.total, m.free, m.used, m.tracked, m.allocs
    );
    for o in &m.owners[..m.nowners as usize] {
        println!(
            "pid={} name={} allocs={} pages={}",
            o.pid,
            name_str(&o.name),
            o.allocs,
            o.pages
        );
    }
    println!(
        "tracker failed_allocs={} invalid_frees={} reclaimed_allocs={} reclaimed_pages={}",
        m.failed_allocs, m.invalid_frees, m.reclaimed_allocs, m.reclaimed_pages
    );
    0
}
