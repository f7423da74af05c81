//! The commands, one file each; every file opens with its usage. `main.rs` only parses the
//! command line and dispatches here. All output formats live in [`render`].
//!
//! Contract: every command leaves the guest running when it returns, on success, on error and
//! after SIGINT, SIGTERM or SIGHUP (the sources and sessions detach on every path).

pub mod breakpoint;
pub mod check;
pub mod diff;
pub mod record;
pub mod render;
pub mod snapshot;
pub mod step;
pub mod tui;
pub mod watch;

use crate::serve::Serve;
use crate::source::{LiveSource, RamSource, Source};
use crate::target::ShutdownFlag;
use anyhow::Result;
use clap::Args;
use std::path::PathBuf;

/// Where the running kernel is: its ELF, its GDB stub, and the file QEMU keeps its RAM in.
#[derive(Args, Clone, Debug)]
pub struct Conn {
    /// The running kernel's ELF, with DWARF (`make kernel` leaves it at build/kernel.elf).
    #[arg(long, default_value = DEFAULT_ELF)]
    pub elf: PathBuf,
    /// Address of the GDB stub (QEMU's `-gdb tcp:HOST:PORT`) [default: 127.0.0.1:1234].
    /// With --ram the stub serves only the debugger.
    #[arg(long)]
    pub gdb: Option<String>,
    /// Read the tracker from guest RAM in this file (QEMU's memory-backend-file, as `make qemu`
    /// sets up in /dev/shm/leakscope-PORT.ram): no stub needed, the guest never halts.
    #[arg(long, value_name = "FILE")]
    pub ram: Option<PathBuf>,
    /// Guest-physical address of the RAM file's first byte [default: 0x80000000, QEMU virt].
    #[arg(long, value_name = "ADDRESS", value_parser = parse_address)]
    pub ram_base: Option<u64>,
}

/// Where `make kernel` leaves the kernel ELF, relative to the repository root.
pub const DEFAULT_ELF: &str = "build/kernel.elf";
/// Where `make qemu` serves the GDB stub.
pub const DEFAULT_GDB: &str = "127.0.0.1:1234";

impl Conn {
    /// The stub's address.
    pub fn gdb(&self) -> &str {
        self.gdb.as_deref().unwrap_or(DEFAULT_GDB)
    }

    /// Where the views read the tracker: the RAM file with `--ram` (no halt), else the stub.
    /// Not connected yet; `stop` ends its waits.
    /// With `serve`, reads through the stub go through its shared connection.
    pub fn view_source(
        &self,
        stop: &ShutdownFlag,
        serve: Option<&Serve>,
    ) -> Result<Box<dyn Source>> {
        Ok(match (&self.ram, serve) {
            (Some(ram), _) => Box::new(RamSource::new(&self.elf, ram, self.ram_base)?),
            (None, Some(serve)) => Box::new(
                LiveSource::new(&self.elf, self.gdb())?
                    .with_shutdown(stop.clone())
                    .with_connector(serve.connector()),
            ),
            (None, None) => {
                Box::new(LiveSource::new(&self.elf, self.gdb())?.with_shutdown(stop.clone()))
            }
        })
    }

    /// What the views read, in words (`the GDB stub at ADDR`, `the RAM file FILE`).
    pub fn view_origin(&self) -> String {
        match &self.ram {
            Some(ram) => format!("the RAM file {}", ram.display()),
            None => format!("the GDB stub at {}", self.gdb()),
        }
    }
}

/// Where `--serve` listens: gdb attaches there (`target remote ADDR`).
#[derive(Args, Clone, Debug, Default)]
pub struct ServeArg {
    /// Serve the GDB remote protocol on HOST:PORT for your own gdb (or IDE), sharing the
    /// inspector's connection to QEMU: `target remote HOST:PORT` in gdb. One client at a time;
    /// its stops and breakpoints stay its own. `make run` serves on GDB_PORT+1 (1235).
    #[arg(long, value_name = "HOST:PORT")]
    pub serve: Option<String>,
}

impl ServeArg {
    /// Starts the server (None without `--serve`) and says on stderr how to attach.
    pub fn start(&self, conn: &Conn, quiet: bool) -> Result<Option<Serve>> {
        let Some(addr) = &self.serve else {
            return Ok(None);
        };
        let serve = Serve::start(addr, conn.gdb())?;
        serve.read_ahead_in_kernel(&conn.elf);
        if !quiet {
            eprintln!(
                "inspector: serving gdb on {0}: gdb-multiarch {1} -ex 'target remote {0}' (or make gdb)",
                serve.addr(),
                conn.elf.display()
            );
        }
        Ok(Some(serve))
    }
}

/// An address in hex (`0x80000000`) or decimal.
fn parse_address(s: &str) -> std::result::Result<u64, String> {
    let parsed = match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        Some(hex) => u64::from_str_radix(&hex.replace('_', ""), 16),
        None => s.replace('_', "").parse(),
    };
    parsed.map_err(|e| format!("`{s}` is not an address: {e}"))
}
