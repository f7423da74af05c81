//! GDB remote serial protocol client: the codec (framing, escapes, run-length decoding, stop
//! replies), target descriptions, and a TCP connection to any conforming stub (QEMU's gdbstub,
//! gdbserver, OpenOCD, `gdbstub`-crate stubs), QEMU's quirks included.
//!
//! Files: `codec` (bytes ⇄ packets, no I/O), `transport` ([`RspClient`]'s connection:
//! acks, timeouts, the all-stop invariants), `console` (the bounded buffer of `O` output),
//! `packets` (the requests: memory, registers, breakpoints, monitor, detach; [`Supported`], the
//! parsed `qSupported` reply), `target_xml` (the target description XML and its register
//! numbering, [`RegisterMap`]), `socket` (reads with deadlines), `spin` (catching a reply due at
//! once without sleeping for it).
//!
//! A stub is not trusted with the client's memory: frames ([`MAX_FRAME`]), decoded payloads
//! ([`MAX_PAYLOAD`]), console output ([`MAX_CONSOLE_BYTES`]) and target descriptions
//! ([`MAX_XML_ANNEXES`], [`MAX_XML_DEPTH`], [`MAX_XML_BYTES`]) are bounded.

#[cfg(test)]
pub(crate) mod client_tests;
pub mod codec;
mod config;
mod console;
mod error;
mod packets;
mod socket;
pub mod spin;
pub mod target_xml;
mod transport;

pub use codec::{StopKind, StopReply, MAX_FRAME, MAX_PAYLOAD};
pub use config::RspConfig;
pub use console::MAX_CONSOLE_BYTES;
pub use error::RspError;
pub use packets::{
    hart_of_thread, BreakpointType, Supported, DEFAULT_PACKET_SIZE, QEMU_MAX_MEMORY_READ,
};
pub use target_xml::{RegisterDesc, RegisterMap, MAX_XML_ANNEXES, MAX_XML_BYTES, MAX_XML_DEPTH};
pub use transport::RspClient;
