//! Says hello.
#![no_std]
#![no_main]

use user::*;

entry!(main);

fn main(_args: Args) -> i32 {
    println!("Hello from pid {}!", getpid());
    0
}
