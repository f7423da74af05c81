//! Shared test support: fixtures, a fake GDB stub, and the QEMU harness.
#![allow(dead_code)] // each test binary uses only part of it

pub mod cli;
pub mod fake_stub;
pub mod fixtures;
pub mod qemu;
