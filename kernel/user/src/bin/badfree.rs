//! Invalid frees: wrong size, an address inside an allocation (untracked), a double free, a
//! free of another process's pages (a child, `badfree steal ADDR N`, tries to free ours) and
//! an address outside the heap. Each must be refused and counted (invalid_frees + 4), and
//! change nothing: the free-page count is the same before and after each refused free.
//! Last line: `badfree: ok` or what went wrong.
//!
//! `badfree tables`: frees of this process's own page-table pages (kernel-side pages it owns
//! but never mapped): its first heap page's tables sit just after the page in RAM on a fresh
//! boot. Each must be refused with ENOTOWNER; prints `badfree: pid=P …` per attempt.
#![no_std]
#![no_main]

use core::fmt::Write;
use user::*;

entry!(main);

static mut STAT: MemStat = MemStat::ZERO;

fn stat() -> (u64, u64) {
    // SAFETY: single-threaded program; the only reference to STAT.
    let m = unsafe { &mut *core::ptr::addr_of_mut!(STAT) };
    meminfo(m).expect("meminfo");
    (m.free, m.invalid_frees)
}

/// Runs one free and checks its result; a refused free must leave the free-page count as it was.
fn expect(
    what: &str,
    free: impl FnOnce() -> Result<(), isize>,
    want: Result<(), isize>,
    bad: &mut u32,
) {
    let show = |r: Result<(), isize>| match r {
        Ok(()) => "ok",
        Err(e) => err_name(e),
    };
    let (free0, _) = stat();
    let got = free();
    let (free1, _) = stat();
    println!("badfree: {what} -> {} (want {})", show(got), show(want));
    if got != want {
        *bad += 1;
    }
    if got.is_err() && free1 != free0 {
        println!("badfree: a refused free changed the free-page count: {free0} -> {free1}");
        *bad += 1;
    }
}

/// Child mode: try to free someone else's pages; exit 0 if refused with ENOTOWNER.
fn steal(args: Args) -> i32 {
    let addr = args.get(2).and_then(parse_hex).unwrap_or(0) as usize;
    let n = args.get(3).and_then(parse_u64).unwrap_or(1) as usize;
    let r = free_pages(addr, n);
    println!(
        "badfree: child pid {} free({addr:#x}, {n}) of the parent's pages -> {}",
        getpid(),
        match r {
            Ok(()) => "ok",
            Err(e) => err_name(e),
        }
    );
    if r == Err(ENOTOWNER) {
        0
    } else {
        1
    }
}

/// `tables` mode: free the two pages after our first heap page (the heap window's page
/// tables, allocated right after it); exit 0 if both are refused with ENOTOWNER.
fn tables() -> i32 {
    let pid = getpid();
    let a = alloc_pages(1).expect("alloc 1");
    let mut refused = 0;
    for k in 1..=2 {
        let addr = a + k * PAGE_SIZE as usize;
        let r = free_pages(addr, 1);
        println!(
            "badfree: pid={pid} free({addr:#x}, 1) of a page-table page -> {}",
            match r {
                Ok(()) => "ok",
                Err(e) => err_name(e),
            }
        );
        refused += (r == Err(ENOTOWNER)) as i32;
    }
    free_pages(a, 1).expect("free 1");
    if refused == 2 {
        0
    } else {
        1
    }
}

fn main(args: Args) -> i32 {
    if args.get(1) == Some("steal") {
        return steal(args);
    }
    if args.get(1) == Some("tables") {
        return tables();
    }
    let mut bad = 0;
    // Warm up: the first heap page also brings the page-table pages of the heap window.
    let w = alloc_pages(1).expect("alloc 1");
    free_pages(w, 1).expect("free 1");
    let (free0, invalid0) = stat();
    let a = alloc_pages(2).expect("alloc 2");
    let b = alloc_pages(3).expect("alloc 3");
    expect(
        "free(a, 1) of a 2-page allocation",
        || free_pages(a, 1),
        Err(EWRONGSIZE),
        &mut bad,
    );
    expect(
        "free(b + 1 page, 1)",
        || free_pages(b + PAGE_SIZE as usize, 1),
        Err(EUNTRACKED),
        &mut bad,
    );
    expect("free(a, 2)", || free_pages(a, 2), Ok(()), &mut bad);
    expect(
        "free(a, 2) again",
        || free_pages(a, 2),
        Err(EDOUBLEFREE),
        &mut bad,
    );
    expect("free(b, 3)", || free_pages(b, 3), Ok(()), &mut bad);
    expect(
        "free(stack page, 1)",
        || free_pages(0x7fff_f000, 1),
        Err(EINVAL),
        &mut bad,
    );
    // Another process may not free our pages.
    let d = alloc_pages(2).expect("alloc 2");
    // SAFETY: \`d\` is two writable pages of ours.
    unsafe { (d as *mut u64).write_volatile(0x5eed) };
    let mut text = [0u8; 24];
    let mut w = BufWriter::new(&mut text);
    let _ = write!(w, "{d:#x}");
    let child = spawn("badfree", &["badfree", "steal", w.as_str(), "2"]).expect("spawn child");
    let status = wait(Some(child), false)
        .expect("wait child")
        .map(|(_, code)| code);
    if status != Some(0) {
        println!("badfree: child was not refused with ENOTOWNER");
        bad += 1;
    }
    // SAFETY: as above: still ours.
    if unsafe { (d as *const u64).read_volatile() } != 0x5eed {
        bad += 1;
    }
    expect(
        "free(d, 2) after the child's attempt",
        || free_pages(d, 2),
        Ok(()),
        &mut bad,
    );
    // Pages are still usable after the refused frees.
    let c = alloc_pages(1).expect("alloc after invalid frees");
    expect("free(c, 1)", || free_pages(c, 1), Ok(()), &mut bad);
    let (free1, invalid1) = stat();
    println!("badfree: free pages {free0} -> {free1}, invalid_frees {invalid0} -> {invalid1}");
    if invalid1 != invalid0 + 4 {
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
