//! Errors of the GDB remote protocol client. Each message says what likely went wrong and what
//! to try next, so the binary can show it to the user as is.

use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum RspError {
    #[error(
        "cannot connect to the GDB stub at {addr}: {source}; is QEMU running with \
         `-gdb tcp:{addr}` (`make qemu`)? Only one debugger can be attached at a time"
    )]
    Connect {
        addr: String,
        #[source]
        source: std::io::Error,
    },

    #[error("I/O error on the GDB stub connection: {0}; reconnect, and check that QEMU is still running")]
    Io(#[from] std::io::Error),

    #[error(
        "no answer from the GDB stub within {} ms while waiting for {what}; the stub may be busy \
         or wedged: check that QEMU is alive, then reconnect",
        after.as_millis()
    )]
    Timeout { what: String, after: Duration },

    #[error(
        "the GDB stub closed the connection (QEMU exited, or another client took over); reconnect"
    )]
    Closed,

    #[error(
        "the GDB stub rejected packet `{packet}` {attempts} times (checksum errors); the link is \
         corrupting data: reconnect"
    )]
    BadChecksum { packet: String, attempts: u32 },

    #[error(
        "malformed {what} from the GDB stub ({detail}): {packet:?}; the server speaks a dialect \
         this client does not understand: report it with this packet"
    )]
    Malformed {
        what: String,
        detail: String,
        packet: String,
    },

    #[error(
        "the GDB stub answered E{code:02x} to `{request}`; for memory requests this usually means \
         the address is not mapped or the request was too large"
    )]
    ErrorReply { code: u8, request: String },

    #[error(
        "the GDB stub does not support `{request}` (empty reply); use a newer QEMU or another stub"
    )]
    Unsupported { request: String },

    #[error("the target {what}; there is nothing left to inspect: restart QEMU")]
    TargetGone { what: String },

    #[error("`{request}` cannot be sent while the target runs; interrupt it first")]
    Running { request: String },
}

impl RspError {
    /// A [`RspError::Malformed`] quoting (a prefix of) the offending packet.
    pub fn malformed(what: &str, packet: &[u8], detail: &str) -> Self {
        RspError::Malformed {
            what: what.to_owned(),
            detail: detail.to_owned(),
            packet: quote(packet),
        }
    }

    /// True for errors after which the connection is unusable.
    pub fn is_fatal(&self) -> bool {
        matches!(
            self,
            RspError::Connect { .. }
                | RspError::Io(_)
                | RspError::Timeout { .. }
                | RspError::Closed
                | RspError::BadChecksum { .. }
                | RspError::TargetGone { .. }
        )
    }
}

/// Lossy text of at most 80 bytes of `packet`, for error messages.
pub(crate) fn quote(packet: &[u8]) -> String {
    let cut = &packet[..packet.len().min(80)];
    let mut s = String::from_utf8_lossy(cut).into_owned();
    if packet.len() > cut.len() {
        s.push('…');
    }
    s
}
