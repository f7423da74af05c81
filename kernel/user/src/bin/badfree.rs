//! Invalid frees: wrong size, an address inside an allocation (untracked), a double free and
//! an address outside the heap. Each must be refused and counted, and change nothing: the
//! free-page count is the same before and after. Last line: `badfree: ok` or what went wrong.
#![no_std]
#![no_main]

use user::*;

entry!(main);

static mut STAT: MemStat = MemStat::ZERO;

fn stat() -> (u64, u64) {
    // SAFETY: single-threaded program; the only reference to STAT.
    let m = unsafe { &mut *core::ptr::addr_of_mut!(STAT) };
    meminfo(m).expect("meminfo");
    (m.free, m.invalid_frees)
}

fn expect(what: &str, got: Result<(), isize>, want: Result<(), isize>, bad: &mut u32) {
    let show = |r: Result<(), isize>| match r {
        Ok(()) => "ok",
        Err(e) => err_name(e),
    };
    println!("badfree: {what} -> {} (want {})", show(got), show(want));
    if got != want {
        *bad += 1;
    }
}

fn main(_args: Args) -> i32 {
    let mut bad = 0;
    // Warm up: the first heap page also brings the page-table pages of the heap window.
    let w = alloc_pages(1).expect("alloc 1");
    free_pages(w, 1).expect("free 1");
    let (free0, invalid0) = stat();
    let a = alloc_pages(2).expect("alloc 2");
    let b = alloc_pages(3).expect("alloc 3");
    expect(
        "free(a, 1) of a 2-page allocation",
        free_pages(a, 1),
        Err(EWRONGSIZE),
        &mut bad,
    );
    expect(
        "free(b + 1 page, 1)",
        free_pages(b + 4096, 1),
        Err(EUNTRACKED),
        &mut bad,
    );
    expect("free(a, 2)", free_pages(a, 2), Ok(()), &mut bad);
    expect(
        "free(a, 2) again",
        free_pages(a, 2),
        Err(EDOUBLEFREE),
        &mut bad,
    );
    expect("free(b, 3)", free_pages(b, 3), Ok(()), &mut bad);
    expect(
        "free(stack page, 1)",
        free_pages(0x7fff_f000, 1),
        Err(EINVAL),
        &mut bad,
    );
    // Pages are still usable after the refused frees.
    let c = alloc_pages(1).expect("alloc after invalid frees");
    expect("free(c, 1)", free_pages(c, 1), Ok(()), &mut bad);
    let (free1, invalid1) = stat();
    println!("badfree: free pages {free0} -> {free1}, invalid_frees {invalid0} -> {invalid1}");
    if free1 != free0 {
        bad += 1;
    }
    if invalid1 != invalid0 + 3 {
        bad += 1;
    }
    if bad == 0 {
        println!("badfree: ok");
        0
    } else {
        println!("badfree: FAILED ({bad} checks)");
        1
    }
}
