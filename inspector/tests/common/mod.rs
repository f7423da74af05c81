//! Shared test support: fixtures, a fake GDB stub, the QEMU harness, and the TUI in tmux.
#![allow(dead_code)] // each test binary uses only part of it

pub mod cli;
pub mod fake_stub;
pub mod fixtures;
pub mod qemu;
pub mod tmux;
