//! Lists the processes: pid, parent, state, the hart running it (`-` when none), name, and the
//! tracked allocations each owns.
#![no_std]
#![no_main]

use user::*;

entry!(main);

fn state_name(s: u32) -> &'static str {
    match s {
        1 => "runnable",
        2 => "running",
        3 => "sleeping",
        4 => "waiting",
        5 => "zombie",
        _ => "?",
    }
}

/// `v` in decimal, written into `buf` (4 digits at most: hart ids are small).
fn fmt_u32(v: u32, buf: &mut [u8; 4]) -> &str {
    let mut n = 0;
    let mut x = v.min(9999);
    loop {
        buf[3 - n] = b'0' + (x % 10) as u8;
        n += 1;
        x /= 10;
        if x == 0 {
            break;
        }
    }
    core::str::from_utf8(&buf[4 - n..]).unwrap_or("?")
}

fn main(_args: Args) -> i32 {
    let mut recs = [ProcStat::default(); 64];
    let n = match procinfo(&mut recs) {
        Ok(n) => n,
        Err(e) => {
            println!("ps: {}", err_name(e));
            return 1;
        }
    };
    println!("PID PPID STATE    HART NAME             ALLOCS PAGES");
    for r in &recs[..n] {
        let mut hart = [b'-'; 4];
        let hart = if r.hart == NO_HART {
            "-"
        } else {
            fmt_u32(r.hart, &mut hart)
        };
        println!(
            "{:<3} {:<4} {:<8} {:<4} {:<16} {:<6} {}",
            r.pid,
            r.parent,
            state_name(r.state),
            hart,
            name_str(&r.name),
            r.allocs,
            r.pages
        );
    }
    0
}
