//! [`RspConfig`]: the timeouts and retry limits of a connection to a stub.

use std::time::Duration;

/// The longest an abandoned connection is drained of what the stub still sends, when the
/// configured reply timeout is shorter (see `RspClient::drain`).
pub(super) const DRAIN_AT_MOST: Duration = Duration::from_secs(2);

/// Timeouts and retry limits of a connection.
#[derive(Debug, Clone)]
pub struct RspConfig {
    /// Limit for establishing the TCP connection.
    pub connect_timeout: Duration,
    /// Limit for each reply (and for the stop reply after an interrupt), and for each write: a
    /// stub that stops reading cannot block the client longer.
    pub reply_timeout: Duration,
    /// How many times a packet is resent after `-` before giving up.
    pub max_retransmits: u32,
    /// How long to wait for a reply without sleeping first (see `spin`); never while the
    /// target runs. Zero by default: measured against QEMU on a 2-CPU host, spinning halved
    /// the pause of reading a whole idle table, but lengthened the reads of a guest halted
    /// while busy by about a third. The gdb server turns it on: gdb waits on each answer.
    pub spin: Duration,
}

impl Default for RspConfig {
    fn default() -> Self {
        RspConfig {
            connect_timeout: Duration::from_secs(3),
            reply_timeout: Duration::from_secs(3),
            max_retransmits: 3,
            spin: Duration::ZERO,
        }
    }
}
