//! `debug on|off`: turns the kernel's exit-cleanup report on or off.
#![no_std]
#![no_main]

use user::*;

entry!(main);

fn main(args: Args) -> i32 {
    let on = match args.get(1) {
        Some("on") => true,
        Some("off") => false,
        _ => {
            println!("usage: debug on|off");
            return 2;
        }
    };
    set_debug(on);
    println!("debug: {}", if on { "on" } else { "off" });
    0
}
