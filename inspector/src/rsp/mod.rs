//! GDB remote serial protocol client: the codec (framing, escapes, run-length decoding, stop
//! replies), target descriptions, and a TCP connection to any conforming stub (QEMU's gdbstub,
//! gdbserver, OpenOCD, `gdbstub`-crate stubs), QEMU's quirks included.
//!
//! Files: `codec` (bytes ⇄ packets, no I/O), `transport` ([`RspClient`]'s connection: socket,
//! acks, timeouts, the all-stop invariants), `packets` (the requests: memory, registers,
//! breakpoints, monitor, detach; [`Supported`], the parsed `qSupported` reply), `target_xml`
//! (the target description XML and its register numbering, [`RegisterMap`]).

#[cfg(test)]
pub(crate) mod client_tests;
pub mod codec;
mod error;
mod packets;
pub mod target_xml;
mod transport;

pub use codec::{StopKind, StopReply};
pub use error::RspError;
pub use packets::{BreakpointType, Supported, DEFAULT_PACKET_SIZE, QEMU_MAX_MEMORY_READ};
pub use target_xml::{RegisterDesc, RegisterMap};
pub use transport::{RspClient, RspConfig};
