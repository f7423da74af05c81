//! GDB remote serial protocol client: the codec (framing, escapes, run-length decoding, stop
//! replies), target descriptions, and a TCP connection to any conforming stub (QEMU's gdbstub,
//! gdbserver, OpenOCD, `gdbstub`-crate stubs), QEMU's quirks included. See `client` for the
//! all-stop invariants.

mod client;
#[cfg(test)]
pub(crate) mod client_tests;
pub mod codec;
mod error;
pub mod features;

pub use client::{
    BreakpointType, Features, RspClient, RspConfig, DEFAULT_PACKET_SIZE, QEMU_MAX_MEMORY_READ,
};
pub use codec::{StopKind, StopReply};
pub use error::RspError;
pub use features::{RegisterDesc, RegisterMap};
