//! The TUI's event loop: terminal set-up and restore (RAII guard + panic hook), the sampling
//! thread that owns the source (a `debugger::live::Debuggable`), and the loop that feeds keys and snapshots to `App`
//! and redraws.
//!
//! Contract: the terminal is restored on every exit path (return, error, panic on any thread),
//! and on quit the source is asked to `detach` (leaving the guest running) unless it is stuck
//! inside `sample`/`reconnect` for longer than `DETACH_WAIT`.

use super::app::{Action, App, Connection};
use super::input::from_crossterm;
use super::views;
use crate::debugger::live::{DebugCommand, DebugReport, Debuggable};
use crate::model::Snapshot;
use anyhow::{bail, Context};
use crossterm::event::{self, Event as TermEvent};
use crossterm::execute;
use crossterm::terminal::{
    disable_raw_mode, enable_raw_mode, Clear, ClearType, EnterAlternateScreen, LeaveAlternateScreen,
};
use ratatui::backend::CrosstermBackend;
use ratatui::Terminal;
use std::io::{self, Stdout};
use std::panic::{self, PanicHookInfo};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender, TryRecvError};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

/// How long quitting waits for the sampler thread to detach the source.
pub const DETACH_WAIT: Duration = Duration::from_secs(3);
/// First reconnect delay; doubles per failed attempt up to `MAX_BACKOFF`.
pub const FIRST_BACKOFF: Duration = Duration::from_millis(250);
pub const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// How often the event loop checks for snapshots between key presses.
const POLL: Duration = Duration::from_millis(50);

/// Runs the TUI until the user quits. Samples `source` every `interval` on a background
/// thread; connection errors are shown and retried with backoff, never fatal.
/// Errors: the terminal could not be set up or drawn, or the sampler thread died (panicked).
pub fn run_tui(source: Box<dyn Debuggable>, interval: Duration) -> anyhow::Result<()> {
    let hook = PanicHookGuard::install();
    let guard = TerminalGuard::enter().context("cannot set up the terminal (is stdout a tty?)")?;
    let mut terminal =
        Terminal::new(CrosstermBackend::new(io::stdout())).context("cannot open the terminal")?;

    let (msg_tx, msg_rx) = mpsc::channel();
    let (cmd_tx, cmd_rx) = mpsc::channel();
    let (done_tx, done_rx) = mpsc::channel::<()>();
    let capabilities = source.capabilities();
    let sampler = SampleLoop::new(source, interval);
    thread::Builder::new()
        .name("tui-sampler".into())
        .spawn(move || {
            sampler_thread(sampler, cmd_rx, msg_tx);
            let _ = done_tx.send(());
        })
        .context("cannot start the sampler thread")?;

    let mut app = App::new(interval);
    app.source = Some(capabilities);
    let size = terminal.size()?;
    app.set_terminal_size(size.width, size.height);
    let result = event_loop(&mut terminal, &mut app, &msg_rx, &cmd_tx);

    let _ = cmd_tx.send(Cmd::Quit);
    let _ = done_rx.recv_timeout(DETACH_WAIT);
    drop(terminal);
    drop(guard);
    drop(hook);
    result
}

fn event_loop(
    terminal: &mut Terminal<CrosstermBackend<Stdout>>,
    app: &mut App,
    msgs: &Receiver<Msg>,
    cmds: &Sender<Cmd>,
) -> anyhow::Result<()> {
    let mut dirty = true;
    loop {
        if dirty {
            terminal.draw(|f| views::draw(f, app))?;
            dirty = false;
        }
        if event::poll(POLL)? {
            match event::read()? {
                TermEvent::Key(k) => {
                    if let Some(key) = from_crossterm(&k) {
                        match app.handle_key(key) {
                            Action::Quit => return Ok(()),
                            Action::SetInterval(d) => {
                                let _ = cmds.send(Cmd::Interval(d));
                            }
                            Action::SetPaused(p) => {
                                let _ = cmds.send(Cmd::Paused(p));
                            }
                            Action::Debug(c) => {
                                let _ = cmds.send(Cmd::Debug(c));
                            }
                            Action::None => {}
                        }
                        dirty = true;
                    }
                }
                TermEvent::Resize(w, h) => {
                    app.set_terminal_size(w, h);
                    dirty = true;
                }
                _ => {}
            }
        }
        loop {
            match msgs.try_recv() {
                Ok(Msg::Snapshot(s, at)) => app.apply_snapshot(s, at),
                Ok(Msg::Connection(c)) => app.set_connection(c),
                Ok(Msg::Debug(r)) => app.apply_debug_report(r),
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) => {
                    bail!("the sampler thread stopped unexpectedly (see the panic message above)")
                }
            }
            dirty = true;
        }
    }
}

/// Commands from the event loop to the sampler thread.
#[derive(Debug)]
enum Cmd {
    Interval(Duration),
    Paused(bool),
    /// A debugger command for the source (answered with `Msg::Debug`).
    Debug(DebugCommand),
    Quit,
}

/// Reports from the sampler thread.
#[derive(Debug)]
pub(crate) enum Msg {
    /// A snapshot and when it was taken.
    Snapshot(Snapshot, Instant),
    Connection(Connection),
    /// The debugger's report after a command or a breakpoint stop, or the command's error.
    Debug(Result<DebugReport, String>),
}

/// Runs `sampler` until `Quit` or until the event loop is gone, then detaches the source.
fn sampler_thread(mut sampler: SampleLoop, cmds: Receiver<Cmd>, msgs: Sender<Msg>) {
    let mut next_due = Instant::now();
    loop {
        let timeout = next_due.saturating_duration_since(Instant::now());
        match cmds.recv_timeout(timeout) {
            Ok(Cmd::Quit) | Err(RecvTimeoutError::Disconnected) => break,
            Ok(Cmd::Interval(d)) => {
                sampler.interval = d;
                next_due = next_due.min(Instant::now() + d);
            }
            Ok(Cmd::Paused(p)) => {
                sampler.paused = p;
                next_due = Instant::now();
            }
            Ok(Cmd::Debug(c)) => {
                let r = sampler.source.command(c).map_err(|e| one_line(&e));
                if msgs.send(Msg::Debug(r)).is_err() {
                    break;
                }
                next_due = Instant::now();
            }
            Err(RecvTimeoutError::Timeout) => {
                let mut gone = false;
                let mut wait = sampler.tick(&mut |m| gone |= msgs.send(m).is_err());
                if let Some(r) = sampler.source.take_stop_report() {
                    gone |= msgs.send(Msg::Debug(Ok(r))).is_err();
                    wait = wait.max(sampler.interval);
                }
                if gone {
                    break;
                }
                next_due = Instant::now() + wait;
            }
        }
    }
    sampler.source.detach();
}

/// The sampler's state machine, separate from threads and clocks so it can be tested.
pub(crate) struct SampleLoop {
    pub(crate) source: Box<dyn Debuggable>,
    pub(crate) interval: Duration,
    pub(crate) paused: bool,
    /// `Some(reason, attempts so far)` while the connection is down.
    down: Option<(String, u32)>,
}

impl SampleLoop {
    pub(crate) fn new(source: Box<dyn Debuggable>, interval: Duration) -> SampleLoop {
        SampleLoop {
            source,
            interval,
            paused: false,
            down: None,
        }
    }

    /// Does one unit of work (a sample, or a reconnect attempt while down), reports through
    /// `out`, and returns how long to wait before the next tick. While paused: nothing, and a
    /// long wait (a resume command wakes the thread).
    pub(crate) fn tick(&mut self, out: &mut dyn FnMut(Msg)) -> Duration {
        if self.paused {
            return Duration::from_secs(3600);
        }
        match self.down.take() {
            None => match self.source.sample() {
                Ok(s) => {
                    out(Msg::Snapshot(s, Instant::now()));
                    self.interval
                }
                Err(e) => {
                    let reason = one_line(&e);
                    out(Msg::Connection(Connection::Disconnected {
                        reason: reason.clone(),
                    }));
                    self.down = Some((reason, 0));
                    backoff(0)
                }
            },
            Some((reason, attempts)) => {
                let attempt = attempts + 1;
                out(Msg::Connection(Connection::Reconnecting {
                    attempt,
                    reason,
                }));
                match self.source.reconnect() {
                    Ok(()) => {
                        out(Msg::Connection(Connection::Connected));
                        Duration::ZERO
                    }
                    Err(e) => {
                        let reason = one_line(&e);
                        out(Msg::Connection(Connection::Disconnected {
                            reason: reason.clone(),
                        }));
                        self.down = Some((reason, attempt));
                        backoff(attempt)
                    }
                }
            }
        }
    }
}

/// Delay before reconnect attempt `attempt + 1`: `FIRST_BACKOFF` doubled per failed attempt,
/// at most `MAX_BACKOFF`.
pub(crate) fn backoff(failed_attempts: u32) -> Duration {
    FIRST_BACKOFF
        .saturating_mul(1u32 << failed_attempts.min(16))
        .min(MAX_BACKOFF)
}

/// An error and its causes on one line, for the header.
fn one_line(e: &anyhow::Error) -> String {
    format!("{e:#}").replace('\n', " ")
}

/// Raw mode + alternate screen while alive; restores the terminal on drop.
struct TerminalGuard;

impl TerminalGuard {
    fn enter() -> io::Result<TerminalGuard> {
        enable_raw_mode()?;
        let guard = TerminalGuard; // from here on, Drop restores even if the next step fails
                                   // Clear here rather than with `Terminal::clear`, which asks the terminal for the cursor
                                   // position and fails on terminals that do not answer.
        execute!(
            io::stdout(),
            EnterAlternateScreen,
            Clear(ClearType::All),
            crossterm::cursor::Hide
        )?;
        Ok(guard)
    }
}

impl Drop for TerminalGuard {
    fn drop(&mut self) {
        restore_terminal();
    }
}

/// Leaves the alternate screen and raw mode; safe to call more than once.
fn restore_terminal() {
    let _ = disable_raw_mode();
    let _ = execute!(io::stdout(), LeaveAlternateScreen, crossterm::cursor::Show);
}

type Hook = Box<dyn Fn(&PanicHookInfo<'_>) + Send + Sync + 'static>;

/// While alive, a panic on any thread restores the terminal before the previous hook prints
/// the message. Dropping it (outside a panic) puts the previous hook back.
struct PanicHookGuard {
    prev: Arc<Hook>,
}

impl PanicHookGuard {
    fn install() -> PanicHookGuard {
        let prev: Arc<Hook> = Arc::new(panic::take_hook());
        let chained = Arc::clone(&prev);
        panic::set_hook(Box::new(move |info| {
            restore_terminal();
            chained(info);
        }));
        PanicHookGuard { prev }
    }
}

impl Drop for PanicHookGuard {
    fn drop(&mut self) {
        if thread::panicking() {
            return; // take_hook would panic; the restoring hook is harmless to keep
        }
        let _ = panic::take_hook();
        let prev = Arc::clone(&self.prev);
        panic::set_hook(Box::new(move |info| prev(info)));
    }
}
