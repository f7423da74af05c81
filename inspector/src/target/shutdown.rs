//! The process-wide shutdown flag raised by Ctrl-C, so the owner of a target detaches (leaving
//! the guest running) instead of the process dying with the guest halted.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};

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
}

static CTRLC_FLAG: OnceLock<Result<ShutdownFlag, String>> = OnceLock::new();

/// Installs a SIGINT/SIGTERM handler that raises the returned flag instead of killing the
/// process. The owner of a target polls [`ShutdownFlag::is_set`] in its loops and then drops or
/// detaches the target. Safe to call more than once: later calls return the same flag. Fails if
/// another Ctrl-C handler was installed outside this function.
pub fn install_ctrlc_handler() -> Result<ShutdownFlag, std::io::Error> {
    CTRLC_FLAG
        .get_or_init(|| {
            let flag = ShutdownFlag::new();
            let raised = flag.clone();
            ctrlc::set_handler(move || raised.set())
                .map(|()| flag)
                .map_err(|e| e.to_string())
        })
        .clone()
        .map_err(|e| std::io::Error::other(format!("cannot install the Ctrl-C handler: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flag_is_shared_between_clones() {
        let a = ShutdownFlag::new();
        let b = a.clone();
        assert!(!b.is_set());
        a.set();
        assert!(b.is_set());
    }

    #[test]
    fn installing_twice_returns_the_same_flag() {
        let a = install_ctrlc_handler().unwrap();
        let b = install_ctrlc_handler().unwrap();
        assert!(Arc::ptr_eq(&a.0, &b.0));
    }
}
