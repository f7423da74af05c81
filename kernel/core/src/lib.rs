//! The kernel's pure logic, kept apart from the hardware so it runs (and is tested) on the host:
//! the page bitmap, ELF and program-archive parsing, the checks of syscall arguments that need
//! no page table, the choice of the next PID, the boot nonce and the kernel command line.
//!
//! Nothing here touches a register, a device or memory it was not handed: every function takes
//! plain values or slices and returns a result; malformed input is an error, never a panic
//! (except where a doc comment names a broken invariant of the caller). The kernel keeps only
//! the glue (`kernel/src`): statics, interrupts off, page tables, the console.
#![cfg_attr(not(test), no_std)]
#![deny(unsafe_code)]

pub mod archive;
pub mod bootargs;
pub mod elf;
pub mod nonce;
pub mod page_alloc;
pub mod pid;
pub mod sysargs;

/// The syscall ABI shared with the user programs (its home is the user crate; both include it).
#[path = "../../user/src/sysabi.rs"]
pub mod sysabi;
