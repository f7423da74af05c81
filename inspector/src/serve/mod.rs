//! Your gdb alongside the inspector: a GDB remote-protocol server (the `gdbstub` crate) in
//! front of the guest, sharing the inspector's one connection to QEMU's gdbstub (which takes
//! one client) with the sampler. `tui --serve ADDR` and `watch --serve ADDR` start it; gdb,
//! gdb-dashboard or an IDE attach with `target remote ADDR`.
//!
//! Files: `arbiter` (the shared connection: whose breakpoint, whose stop, who holds the guest),
//! `sampler` (the sampler's
//! [`SamplerTarget`] under those rules), `gdb_target` (the client's gdbstub `Target`, the event
//! loop, the buffered connection), `listener` (accepting clients, one at a time), `guest` (what
//! the server needs of the connection beyond the `Target` trait), `wake` (waiting on several
//! descriptors at once, and waking a waiting thread).
//!
//! Contract: dropping a [`Serve`] closes the client's connection (its breakpoints removed) and
//! detaches from the guest, which runs on.

mod arbiter;
mod client_ops;
mod gdb_target;
mod guest;
mod listener;
mod locked;
mod memcache;
mod sampler;
mod wake;

use std::sync::Arc;

use anyhow::{Context, Result};

pub use arbiter::{Arbiter, Busy, ClientNext, ClientStop, Connect, IDLE_LOOK, STOP_POLL};
pub use gdb_target::{hart_of, stop_reason, tid_of, BufConn, ClientTarget, EventLoop};
pub use guest::{Guest, WatchKind};
pub use listener::{ClientLog, Listener, PACKET_SIZE};
pub use sampler::SamplerTarget;
pub use wake::Waker;

use crate::dwarf::DebugInfo;
use crate::rsp::{spin, RspConfig};
use crate::source::session::Connector;
use crate::target::{RspTarget, RspTargetOptions, Target};

/// The gdb server over a connection to the stub at `gdb`. See the module doc.
pub struct Serve {
    arbiter: Arc<Arbiter<RspTarget>>,
    listener: Listener,
    gdb: String,
}

impl Serve {
    /// Listens on `listen` for gdb clients; connects to the stub at `gdb` when first needed.
    pub fn start(listen: &str, gdb: &str) -> Result<Serve> {
        let upstream = gdb.to_string();
        // gdb's requests are answered from the stub's within microseconds while it holds the
        // guest: the shared connection waits for them without sleeping first.
        let options = RspTargetOptions {
            rsp: RspConfig {
                spin: spin::SPIN,
                ..RspConfig::default()
            },
            ..RspTargetOptions::default()
        };
        let arbiter = Arbiter::new(Box::new(move || {
            RspTarget::connect(&upstream, options.clone())
        }));
        let listener = Listener::start(listen, arbiter.clone())?;
        Ok(Serve {
            arbiter,
            listener,
            gdb: gdb.to_string(),
        })
    }

    /// Lets the client's memory reads within the ELF at `elf`'s load segments (the kernel
    /// image: RAM) be answered from blocks read once per stop; without segments (an ELF that
    /// cannot be read), every read goes to the guest.
    pub fn read_ahead_in_kernel(&self, elf: &std::path::Path) {
        let ranges = crate::dwarf::load_segments(elf)
            .unwrap_or_default()
            .iter()
            .map(|s| (s.vaddr..s.vaddr.saturating_add(s.len), s.writable))
            .collect();
        self.arbiter.read_ahead_in(ranges);
    }

    /// Breakpoint and watchpoint stops the guest reported through this server's connection
    /// so far, anyone's ([`Arbiter::traps`]).
    pub fn guest_traps(&self) -> u64 {
        self.arbiter.traps()
    }

    /// The address gdb attaches to.
    pub fn addr(&self) -> &str {
        self.listener.addr()
    }

    /// How the views' sessions reach the guest: through the shared connection.
    pub fn connector(&self) -> Connector {
        let arbiter = self.arbiter.clone();
        let gdb = self.gdb.clone();
        Arc::new(move || {
            let t = arbiter.sampler_target().with_context(|| {
                format!(
                    "cannot attach to the GDB stub at {gdb}: is QEMU running with \
                     `-gdb tcp:{gdb}`? (start it with make qemu)"
                )
            })?;
            Ok(Box::new(t) as Box<dyn Target + Send>)
        })
    }

    /// What the TUI shows about the client.
    pub fn status(&self, debug: Option<Arc<DebugInfo>>) -> ServeStatus {
        ServeStatus {
            arbiter: self.arbiter.clone(),
            debug,
            addr: self.addr().to_string(),
        }
    }

    /// Ends the client's session and detaches from the guest (also on drop).
    pub fn stop(&mut self) {
        self.listener.stop();
        self.arbiter.shutdown();
    }

    pub fn log(&self) -> ClientLog {
        self.listener.log()
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The client's state in words, for a header line.
#[derive(Clone)]
pub struct ServeStatus {
    arbiter: Arc<Arbiter<RspTarget>>,
    debug: Option<Arc<DebugInfo>>,
    addr: String,
}

impl ServeStatus {
    /// `held by gdb at FUNCTION FILE:LINE` while the client holds the guest stopped, `gdb
    /// attached` while it lets it run, `serving gdb on ADDR` without a client.
    pub fn line(&self) -> String {
        if let Some(pc) = self.arbiter.held_by_client() {
            return format!("held by gdb at {}", self.describe(pc));
        }
        if self.arbiter.client_attached() {
            format!("gdb attached on {}", self.addr)
        } else {
            format!("serving gdb on {}", self.addr)
        }
    }

    /// True while the client holds the guest stopped.
    pub fn held(&self) -> bool {
        self.arbiter.held_by_client().is_some()
    }

    /// `FUNCTION FILE:LINE` for `pc`, as much as the DWARF tells.
    fn describe(&self, pc: u64) -> String {
        describe_pc(self.debug.as_deref(), pc)
    }
}

/// `FUNCTION FILE:LINE` for `pc` (the innermost frame), or the address where DWARF says nothing.
pub fn describe_pc(debug: Option<&DebugInfo>, pc: u64) -> String {
    let Some(debug) = debug else {
        return format!("{pc:#x}");
    };
    let function = debug
        .function_at(pc)
        .map(|f| f.name)
        .unwrap_or_else(|| format!("{pc:#x}"));
    match debug.location(pc) {
        Some(loc) => {
            let file = std::path::Path::new(&loc.file)
                .file_name()
                .map(|f| f.to_string_lossy().into_owned())
                .unwrap_or(loc.file.clone());
            format!("{function} {file}:{}", loc.line)
        }
        None => function,
    }
}

#[cfg(test)]
mod tests;
