//! Prints its arguments.
#![no_std]
#![no_main]

use core::fmt::Write;
use user::*;

entry!(main);

fn main(args: Args) -> i32 {
    let mut w = LineWriter::new();
    for (i, a) in args.iter().skip(1).enumerate() {
        let _ = write!(w, "{}{}", if i > 0 { " " } else { "" }, a);
    }
    let _ = writeln!(w);
    w.flush();
    0
}
