//! The shutdown flag: raised by SIGINT, SIGTERM or SIGHUP (Ctrl-C, `kill`, `timeout`, a closed
//! terminal or tmux pane, a service manager) or by the TUI's quit, so the owner of a target
//! stops what it is doing and detaches (leaving the guest running) instead of the process dying
//! with the guest halted or with breakpoints in it.
//!
//! Contract: whoever waits or loops for long with a target (sampling loops, waits for a
//! breakpoint, line steps, waits for a booting kernel) polls [`ShutdownFlag::is_set`] at least
//! every [`SHUTDOWN_POLL`] and then returns ([`Cancelled`] if it has no result), so its owner can detach.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

/// How often a waiting loop looks at the flag: the longest a shutdown waits for a sleeper.
pub const SHUTDOWN_POLL: Duration = Duration::from_millis(50);

/// A shared flag; cheap to clone. Raised once, never lowered.
#[derive(Debug, Clone, Default)]
pub struct ShutdownFlag(Arc<AtomicBool>);

impl ShutdownFlag {
    pub fn new() -> Self {
        Self::default()
    }

    /// True once shutdown was requested.
    pub fn is_set(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }

    pub fn set(&self) {
        self.0.store(true, Ordering::SeqCst);
    }

    /// Sleeps for `d`, waking early (within [`SHUTDOWN_POLL`]) when the flag is raised. Returns true if
    /// the flag is set.
    pub fn sleep(&self, d: Duration) -> bool {
        let end = Instant::now() + d;
        loop {
            if self.is_set() {
                return true;
            }
            let left = end.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            std::thread::sleep(left.min(SHUTDOWN_POLL));
        }
    }

    /// `Err(Cancelled)` once the flag is set.
    pub fn check(&self) -> Result<(), Cancelled> {
        if self.is_set() {
            Err(Cancelled)
        } else {
            Ok(())
        }
    }
}

/// What a long operation returns when the shutdown flag stopped it. The target is halted or
/// running as the operation's doc says; its owner is expected to detach next.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("stopped: the inspector is shutting down (signal or quit)")]
pub struct Cancelled;

impl Cancelled {
    /// True if `e` (or one of its causes) is a [`Cancelled`].
    pub fn is(e: &anyhow::Error) -> bool {
        e.downcast_ref::<Cancelled>().is_some()
            || e.chain().any(|c| c.downcast_ref::<Cancelled>().is_some())
    }
}

static CTRLC_FLAG: OnceLock<Result<ShutdownFlag, String>> = OnceLock::new();

/// Installs a handler for SIGINT, SIGTERM and SIGHUP that raises the returned flag instead of
/// killing the process. The owner of a target polls [`ShutdownFlag::is_set`] in its loops and
/// then drops or detaches the target. Safe to call more than once: later calls return the same
/// flag. Fails if another handler was installed outside this function.
pub fn install_ctrlc_handler() -> Result<ShutdownFlag, std::io::Error> {
    CTRLC_FLAG
        .get_or_init(|| {
            let flag = ShutdownFlag::new();
            let raised = flag.clone();
            // With the crate's `termination` feature this covers SIGTERM and SIGHUP too.
            ctrlc::set_handler(move || raised.set())
                .map(|()| flag)
                .map_err(|e| e.to_string())
        })
        .clone()
        .map_err(|e| {
            std::io::Error::other(format!(
                "cannot install the SIGINT/SIGTERM/SIGHUP handler: {e}"
            ))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flag_is_shared_between_clones() {
        let a = ShutdownFlag::new();
        let b = a.clone();
        assert!(!b.is_set());
        assert_eq!(b.check(), Ok(()));
        a.set();
        assert!(b.is_set());
        assert_eq!(b.check(), Err(Cancelled));
    }

    #[test]
    fn installing_twice_returns_the_same_flag() {
        let a = install_ctrlc_handler().unwrap();
        let b = install_ctrlc_handler().unwrap();
        assert!(Arc::ptr_eq(&a.0, &b.0));
    }

    #[test]
    fn sleep_wakes_when_the_flag_is_raised() {
        let f = ShutdownFlag::new();
        let start = Instant::now();
        assert!(!f.sleep(Duration::from_millis(60)));
        assert!(start.elapsed() >= Duration::from_millis(60));
        let raiser = f.clone();
        let t = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(100));
            raiser.set();
        });
        let start = Instant::now();
        assert!(f.sleep(Duration::from_secs(30)));
        assert!(start.elapsed() < Duration::from_secs(5));
        t.join().unwrap();
    }
}
