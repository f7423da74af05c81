//! `lockstat`: the kernel's spin locks' cost counters since boot, one line per lock:
//! `lock=NAME acquired=A contended=C spins=S wait_us=W` (W: microseconds acquirers spent
//! waiting, all harts together). Differences between two runs measure what happened between.
#![no_std]
#![no_main]

use user::*;

entry!(main);

fn main(_args: Args) -> i32 {
    let mut recs = [LockStat::default(); MAX_LOCKS];
    let n = match lockstat(&mut recs) {
        Ok(n) => n,
        Err(e) => {
            println!("lockstat: {}", err_name(e));
            return 1;
        }
    };
    for r in &recs[..n] {
        let len = r.name.iter().position(|&b| b == 0).unwrap_or(r.name.len());
        let name = core::str::from_utf8(&r.name[..len]).unwrap_or("?");
        println!(
            "lock={name} acquired={} contended={} spins={} wait_us={}",
            r.acquired, r.contended, r.spins, r.wait_us
        );
    }
    0
}
