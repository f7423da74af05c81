//! `exits N [PAGES]` (default 100 children, 6 pages each): starts N short-lived children one
//! after another, each of which allocates PAGES pages in runs of 1-3 and ends without freeing
//! them: most exit normally, some with an error code, some by a fault (the kernel kills them).
//! Every exit must be swept: `mem` shows the same free pages before and after. Children run
//! as `exits child PAGES HOW`. Prints progress every 1000 children and last
//! `exits: N children exited, F failed to start, P pages leaked`.
#![no_std]
#![no_main]

use core::fmt::Write;
use user::*;

entry!(main);

/// How a child ends (its third argument).
const HOW_EXIT: &str = "exit";
const HOW_CODE: &str = "code";
const HOW_FAULT: &str = "fault";

fn child(args: Args) -> i32 {
    let pages = args.get(2).and_then(parse_u64).unwrap_or(6);
    let mut rng = Rng::new(time_ns() ^ ((getpid() as u64) << 32));
    let mut done = 0;
    while done < pages {
        let size = (1 + rng.below(3)).min(pages - done);
        match alloc_pages(size as usize) {
            Ok(addr) => {
                // SAFETY: the kernel mapped `size` writable pages at `addr`.
                unsafe { (addr as *mut u64).write_volatile(done) };
                done += size;
            }
            Err(e) => {
                println!("exits: child {} alloc failed: {}", getpid(), err_name(e));
                return 1;
            }
        }
    }
    match args.get(3) {
        Some(HOW_CODE) => 7,
        Some(HOW_FAULT) => {
            // SAFETY: none: a store to address 0, which no process maps; the kernel kills us.
            unsafe { core::ptr::null_mut::<u64>().write_volatile(1) };
            0
        }
        _ => 0,
    }
}

fn main(args: Args) -> i32 {
    if args.get(1) == Some("child") {
        return child(args);
    }
    let n = args.get(1).and_then(parse_u64).unwrap_or(100);
    let pages = args.get(2).and_then(parse_u64).unwrap_or(6);
    let mut text = [0u8; 20];
    let mut w = BufWriter::new(&mut text);
    let _ = write!(w, "{pages}");
    let pages_arg = w.as_str();
    let (mut exited, mut failed, mut bad_status) = (0u64, 0u64, 0u64);
    for i in 0..n {
        let how = match i % 16 {
            5 => HOW_CODE,
            11 => HOW_FAULT,
            _ => HOW_EXIT,
        };
        let pid = match spawn("exits", &["exits", "child", pages_arg, how]) {
            Ok(pid) => pid,
            Err(e) => {
                println!("exits: child {i} failed to start: {}", err_name(e));
                failed += 1;
                continue;
            }
        };
        match wait(Some(pid), false) {
            Ok(Some((_, code))) => {
                exited += 1;
                let want = match how {
                    HOW_CODE => 7,
                    HOW_FAULT => -1,
                    _ => 0,
                };
                if code != want {
                    println!("exits: child {pid} ({how}) exited with {code}, not {want}");
                    bad_status += 1;
                }
            }
            other => {
                println!("exits: wait for child {pid}: {other:?}");
                failed += 1;
            }
        }
        if (i + 1) % 1000 == 0 {
            println!("exits: {}/{n}", i + 1);
        }
    }
    println!(
        "exits: {exited} children exited, {failed} failed to start, {} pages leaked",
        exited * pages
    );
    if failed == 0 && bad_status == 0 {
        0
    } else {
        1
    }
}
