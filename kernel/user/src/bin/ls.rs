//! Lists the programs in the kernel's archive.
#![no_std]
#![no_main]

use user::*;

entry!(main);

fn main(_args: Args) -> i32 {
    let mut buf = [0u8; 512];
    match list_programs(&mut buf) {
        Ok(n) => {
            write(&buf[..n]);
            0
        }
        Err(e) => {
            println!("ls: {}", err_name(e));
            1
        }
    }
}
