//! [`LiveSource`]: a running kernel over its GDB stub, as a [`Source`]. Loads the ELF at once
//! (a wrong path fails before anything starts) and connects on the first sample; after an error
//! the connection is dropped (detaching if it still can) and `reconnect` makes a new one, except
//! after [`NotReady`] (a booting kernel), which keeps the connection.

use std::path::Path;
use std::sync::Arc;

use anyhow::Result;

use super::session::{load_elf, Connector, NotReady, Session};
use super::{Capabilities, Origin, Source};
use crate::dwarf::DebugInfo;
use crate::model::Snapshot;
use crate::target::ShutdownFlag;

/// See the module doc.
pub struct LiveSource {
    debug: Arc<DebugInfo>,
    gdb: String,
    session: Option<Session>,
    shutdown: ShutdownFlag,
    /// Where sessions get their target; None: a connection of their own to `gdb`.
    connector: Option<Connector>,
}

impl LiveSource {
    /// Loads `elf`; connects to the stub at `gdb` lazily.
    pub fn new(elf: &Path, gdb: &str) -> Result<LiveSource> {
        Ok(LiveSource {
            debug: load_elf(elf)?,
            gdb: gdb.to_string(),
            session: None,
            shutdown: ShutdownFlag::new(),
            connector: None,
        })
    }

    /// Waits inside this source (a booting kernel) end once `flag` is raised (see
    /// [`Session::set_shutdown`]).
    pub fn with_shutdown(mut self, flag: ShutdownFlag) -> LiveSource {
        if let Some(s) = &mut self.session {
            s.set_shutdown(flag.clone());
        }
        self.shutdown = flag;
        self
    }

    /// Sessions take their target from `connector` (a shared connection) instead of
    /// connecting to the stub themselves.
    pub fn with_connector(mut self, connector: Connector) -> LiveSource {
        self.session = None;
        self.connector = Some(connector);
        self
    }

    /// Loads `elf` and connects now (checking the build id), for the one-shot commands.
    pub fn connect(elf: &Path, gdb: &str) -> Result<LiveSource> {
        let mut source = LiveSource::new(elf, gdb)?;
        source.reconnect()?;
        Ok(source)
    }

    /// The connection, made now if there is none.
    fn session(&mut self) -> Result<&mut Session> {
        if self.session.is_none() {
            self.reconnect()?;
        }
        Ok(self.session.as_mut().expect("connected above"))
    }
}

impl Source for LiveSource {
    fn source_root(&self) -> Option<std::path::PathBuf> {
        crate::sites::kernel_root(&self.debug)
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            origin: Origin::Live,
            halts_guest: true,
            can_debug: false,
        }
    }

    fn sample(&mut self) -> Result<Snapshot> {
        let result = self.session().and_then(Session::sample);
        if let Err(e) = &result {
            // The guest's state (still booting, mid-change) is no reason to drop a working
            // connection; anything else may be, and the next call reconnects.
            if NotReady::find(e).is_none() && !super::stayed_mid_change(e) {
                self.session = None;
            }
        }
        result
    }

    fn reconnect(&mut self) -> Result<()> {
        self.session = None;
        let mut session = match &self.connector {
            Some(c) => Session::connect_through(self.debug.clone(), c)?,
            None => Session::connect_with(self.debug.clone(), &self.gdb)?,
        };
        session.set_shutdown(self.shutdown.clone());
        self.session = Some(session);
        Ok(())
    }

    fn finish(&mut self) -> Result<()> {
        match self.session.take() {
            Some(s) => s.detach(),
            None => Ok(()),
        }
    }

    fn detach(&mut self) {
        if let Some(s) = self.session.take() {
            let _ = s.detach();
        }
    }
}
