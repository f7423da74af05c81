//! The commands, one file each; every file opens with its usage. `main.rs` only parses the
//! command line and dispatches here. All output formats live in [`render`].
//!
//! Contract: every command leaves the guest running when it returns, on success, on error and
//! after SIGINT, SIGTERM or SIGHUP (the sources and sessions detach on every path).

pub mod breakpoint;
pub mod check;
pub mod render;
pub mod snapshot;
pub mod step;
pub mod tui;
pub mod watch;

use clap::Args;
use std::path::PathBuf;

/// Where the running kernel is: its ELF and its GDB stub.
#[derive(Args, Clone, Debug)]
pub struct Conn {
    /// The running kernel's ELF, with DWARF (`make kernel` leaves it at build/kernel.elf).
    #[arg(long, default_value = DEFAULT_ELF)]
    pub elf: PathBuf,
    /// Address of the GDB stub (QEMU's `-gdb tcp:HOST:PORT`).
    #[arg(long, default_value = "127.0.0.1:1234")]
    pub gdb: String,
}

/// Where `make kernel` leaves the kernel ELF, relative to the repository root.
pub const DEFAULT_ELF: &str = "build/kernel.elf";
