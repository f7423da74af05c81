//! Lists the processes: pid, parent, state, name, and the tracked allocations each owns.
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

fn main(_args: Args) -> i32 {
    let mut recs = [ProcStat::default(); 64];
    let n = match procinfo(&mut recs) {
        Ok(n) => n,
        Err(e) => {
            println!("ps: {}", err_name(e));
            return 1;
        }
    };
    println!("PID PPID STATE    NAME             ALLOCS PAGES");
    for r in &recs[..n] {
        println!(
            "{:<3} {:<4} {:<8} {:<16} {:<6} {}",
            r.pid,
            r.parent,
            state_name(r.state),
            name_str(&r.name),
            r.allocs,
            r.pages
        );
    }
    0
}
