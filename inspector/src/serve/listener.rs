//! The listener and its one-client policy: accepts gdb connections on the serve address, runs
//! one gdb session at a time (gdbstub's blocking loop over a [`ClientTarget`]) in its own
//! thread, and refuses a second client in gdb's terms: an `E.` error reply with the reason to
//! its first packet (gdb prints `Remote failure reply: E.…`), then the connection is closed.
//!
//! Contract: when a session ends for any reason (detach, kill, a closed or broken connection,
//! an error), the client is detached from the arbiter (its breakpoints removed, the guest
//! resumed unless the sampler holds it). [`Listener::stop`] closes the client's connection and
//! joins the threads.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::{Context, Result};
use gdbstub::stub::{DisconnectReason, GdbStubBuilder};

use super::arbiter::Arbiter;
use super::gdb_target::{BufConn, ClientTarget, EventLoop};
use super::guest::Guest;

/// How often the accept loop looks at the stop flag.
const ACCEPT_POLL: Duration = Duration::from_millis(50);
/// gdbstub's packet buffer, advertised to gdb as `PacketSize`.
pub const PACKET_SIZE: usize = 0x1000;

/// What happened to the clients, for a status line.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ClientLog {
    /// The attached client's address.
    pub attached: Option<String>,
    /// How the last session ended (`detached`, `killed`, `connection closed: …`).
    pub last_end: Option<String>,
    /// Clients refused because one was attached.
    pub refused: u64,
}

/// See the module doc.
pub struct Listener {
    addr: String,
    stop: Arc<AtomicBool>,
    log: Arc<Mutex<ClientLog>>,
    /// A handle on the attached client's socket, to close it on stop.
    client: Arc<Mutex<Option<TcpStream>>>,
    thread: Option<JoinHandle<()>>,
}

impl Listener {
    /// Listens on `addr` (`host:port`; port 0 picks one) and serves `arbiter`'s clients.
    pub fn start<G: Guest>(addr: &str, arbiter: Arc<Arbiter<G>>) -> Result<Listener> {
        let listener = TcpListener::bind(addr).with_context(|| {
            format!(
                "cannot serve gdb on {addr}: is the port in use (another inspector)? pick \
                 another with --serve HOST:PORT"
            )
        })?;
        let local = listener.local_addr()?.to_string();
        listener.set_nonblocking(true)?;
        let stop = Arc::new(AtomicBool::new(false));
        let log = Arc::new(Mutex::new(ClientLog::default()));
        let client = Arc::new(Mutex::new(None));
        let (s, l, c) = (stop.clone(), log.clone(), client.clone());
        let thread = std::thread::Builder::new()
            .name("gdb-listener".into())
            .spawn(move || accept_loop(listener, arbiter, s, l, c))
            .context("cannot start the gdb listener thread")?;
        Ok(Listener {
            addr: local,
            stop,
            log,
            client,
            thread: Some(thread),
        })
    }

    /// The address served (with the port chosen if 0 was asked).
    pub fn addr(&self) -> &str {
        &self.addr
    }

    pub fn log(&self) -> ClientLog {
        self.log.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Closes the client's connection (its session ends and detaches) and stops listening.
    /// Idempotent.
    pub fn stop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(s) = self
            .client
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
        {
            let _ = s.shutdown(std::net::Shutdown::Both);
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        self.stop();
    }
}

fn accept_loop<G: Guest>(
    listener: TcpListener,
    arbiter: Arc<Arbiter<G>>,
    stop: Arc<AtomicBool>,
    log: Arc<Mutex<ClientLog>>,
    client: Arc<Mutex<Option<TcpStream>>>,
) {
    let mut session: Option<JoinHandle<()>> = None;
    while !stop.load(Ordering::SeqCst) {
        let (stream, peer) = match listener.accept() {
            Ok(c) => c,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                std::thread::sleep(ACCEPT_POLL);
                continue;
            }
            Err(_) => {
                std::thread::sleep(ACCEPT_POLL);
                continue;
            }
        };
        let _ = stream.set_nonblocking(false);
        let _ = stream.set_nodelay(true);
        if session.as_ref().is_some_and(|s| !s.is_finished()) {
            refuse(
                stream,
                "another gdb is attached through the inspector; detach it first (one client \
                 at a time)",
            );
            log.lock().unwrap_or_else(|e| e.into_inner()).refused += 1;
            continue;
        }
        if let Some(s) = session.take() {
            let _ = s.join();
        }
        match arbiter.attach_client() {
            Ok(Ok(())) => {}
            Ok(Err(busy)) => {
                refuse(stream, &busy.to_string());
                continue;
            }
            Err(e) => {
                refuse(
                    stream,
                    &format!("the inspector cannot reach the guest: {e}; is QEMU running?"),
                );
                continue;
            }
        }
        *client.lock().unwrap_or_else(|e| e.into_inner()) = stream.try_clone().ok();
        log.lock().unwrap_or_else(|e| e.into_inner()).attached = Some(peer.to_string());
        let (a, l, c) = (arbiter.clone(), log.clone(), client.clone());
        session = std::thread::Builder::new()
            .name("gdb-client".into())
            .spawn(move || {
                let ended = serve_client(stream, &a);
                a.detach_client();
                *c.lock().unwrap_or_else(|e| e.into_inner()) = None;
                let mut l = l.lock().unwrap_or_else(|e| e.into_inner());
                l.attached = None;
                l.last_end = Some(ended);
            })
            .ok();
        if session.is_none() {
            arbiter.detach_client();
        }
    }
    if let Some(s) = session.take() {
        let _ = s.join();
    }
}

/// Runs one gdb session to its end; returns how it ended, in words.
fn serve_client<G: Guest>(stream: TcpStream, arbiter: &Arc<Arbiter<G>>) -> String {
    let mut target = ClientTarget::new(arbiter.clone());
    let gdb = match GdbStubBuilder::new(BufConn::new(stream))
        .packet_buffer_size(PACKET_SIZE)
        .build()
    {
        Ok(gdb) => gdb,
        Err(e) => return format!("cannot start the session: {e}"),
    };
    match gdb.run_blocking::<EventLoop<G>>(&mut target) {
        Ok(DisconnectReason::Disconnect) => "detached".into(),
        // `kill` in gdb: the guest is not killed (QEMU stays for the inspector); detached.
        Ok(DisconnectReason::Kill) => "killed (detached; the guest runs on)".into(),
        Ok(other) => format!("{other:?}"),
        Err(e) => format!("connection closed: {e}"),
    }
}

/// Answers the first packet of an unwanted client with `E.reason` and closes the connection.
fn refuse(mut stream: TcpStream, reason: &str) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    let mut buf = [0u8; 1024];
    // Wait for the start of a packet (gdb sends `+` and then `$qSupported…#xx`).
    let mut seen = Vec::new();
    while !seen.contains(&b'#') {
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => seen.extend_from_slice(&buf[..n]),
        }
        if seen.len() > 64 * 1024 {
            break;
        }
    }
    let payload = format!("E.{reason}");
    let sum = payload.bytes().fold(0u8, |a, b| a.wrapping_add(b));
    let _ = stream.write_all(format!("+${payload}#{sum:02x}").as_bytes());
    let _ = stream.flush();
    // Give gdb a moment to read the reply before the connection goes.
    std::thread::sleep(Duration::from_millis(100));
    let _ = stream.shutdown(std::net::Shutdown::Both);
}
