//! The TUI's event loop: terminal set-up and restore (RAII guard + panic hook), the sampling
//! thread that owns the source (a `debugger::live::Debuggable`), and the loop that feeds keys
//! and snapshots to `App` and redraws.
//!
//! Contract: the terminal is restored on every exit path (return, error, panic on any thread),
//! and however the event loop ends (quit, SIGINT/SIGTERM/SIGHUP through the shutdown flag, an
//! error, a panic while drawing) the shutdown flag is raised, the sampling thread is told to
//! stop and is waited for while it detaches the source (user and temporary breakpoints
//! removed, guest running): [`SamplerHandle`] does this when it is finished or dropped. The
//! flag also ends a long debugger command (a line step, `next`/`finish` waiting for a return)
//! in the source, so the wait is short; it is bounded by [`DETACH_WAIT`] only as a last resort.
//!
//! A hung-up terminal (a closed tmux pane or terminal window) counts as a quit, whether or not
//! SIGHUP reaches the TUI (it does not when a shell in the pane runs it): both threads watch
//! the terminal ([`TtyWatch`]); the sampling thread detaches on its own when it sees the
//! hang-up, and ends the process if the event loop does not come back (crossterm's reader can
//! spin on a hung-up terminal).

use super::app::{Action, App, Connection};
use super::input::from_crossterm;
use super::views;
use crate::debugger::live::{DebugCommand, DebugReport, Debuggable};
use crate::model::Snapshot;
use crate::serve::ServeStatus;
use crate::source::NotReady;
use crate::target::{Cancelled, ShutdownFlag, SHUTDOWN_POLL};
use anyhow::{bail, Context};
use crossterm::event::{self, Event as TermEvent};
use crossterm::execute;
use crossterm::terminal::{
    disable_raw_mode, enable_raw_mode, Clear, ClearType, EnterAlternateScreen, LeaveAlternateScreen,
};
use ratatui::backend::CrosstermBackend;
use ratatui::Terminal;
use std::io::{self, Stdout, Write};
use std::panic::{self, PanicHookInfo};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender, TryRecvError};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

/// The longest quitting waits for the sampler thread to detach the source. Every operation of
/// the thread ends well before (stub replies time out after seconds, long debugger commands end
/// on the shutdown flag); past it the process exits and says the guest may be left halted.
pub const DETACH_WAIT: Duration = Duration::from_secs(30);
/// After this long waiting for the detach, say on stderr what the inspector is waiting for.
const DETACH_NOTICE: Duration = Duration::from_millis(500);
/// After the terminal hung up and the source is detached, how long the sampling thread waits
/// for the event loop to finish before it ends the process.
const HANGUP_EXIT_WAIT: Duration = Duration::from_secs(2);
/// First reconnect delay; doubles per failed attempt up to `MAX_BACKOFF`.
pub const FIRST_BACKOFF: Duration = Duration::from_millis(250);
pub const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// How often the event loop checks for snapshots between key presses.
const POLL: Duration = Duration::from_millis(50);

/// Runs the TUI until the user quits or `shutdown` is raised (SIGINT/SIGTERM/SIGHUP). Samples
/// `source` every `interval` on a background thread; connection errors are shown and retried
/// with backoff, never fatal. Returns after the source is detached.
/// Errors: the terminal could not be set up or drawn, or the sampler thread died (panicked).
pub fn run_tui(
    source: Box<dyn Debuggable>,
    interval: Duration,
    shutdown: ShutdownFlag,
    gdb: Option<ServeStatus>,
) -> anyhow::Result<()> {
    let hook = PanicHookGuard::install();
    let guard = TerminalGuard::enter().context("cannot set up the terminal (is stdout a tty?)")?;
    let terminal =
        Terminal::new(CrosstermBackend::new(io::stdout())).context("cannot open the terminal")?;
    let mut screen = CrosstermScreen {
        terminal,
        guard: Some(guard),
        tty: TtyWatch::open(),
    };
    let result = run_with_gdb(&mut screen, source, interval, shutdown, gdb);
    drop(screen);
    drop(hook);
    result
}

/// What the event loop needs from a terminal; the real one is [`CrosstermScreen`], tests
/// inject their own.
pub(crate) trait Screen {
    /// Columns and rows.
    fn size(&mut self) -> anyhow::Result<(u16, u16)>;
    fn draw(&mut self, app: &App) -> anyhow::Result<()>;
    /// The next input event, waiting at most `timeout`.
    fn poll_event(&mut self, timeout: Duration) -> anyhow::Result<Option<TermEvent>>;
    /// Gives the terminal back (the event loop is over); called once, before the wait for
    /// the detach, so the user sees their shell (and any message) meanwhile.
    fn leave(&mut self);
    /// The terminal's hang-up, for the sampling thread to watch (None: nothing to watch).
    fn tty_watch(&self) -> Option<TtyWatch> {
        None
    }
}

/// What [`Screen::poll_event`] returns when the terminal is gone: the event loop ends as on a
/// quit.
#[derive(Debug, thiserror::Error)]
#[error("the terminal hung up (its window or tmux pane was closed)")]
pub(crate) struct TerminalGone;

/// The controlling terminal, opened once to `poll(2)` it: input ready, or hung up.
#[derive(Clone, Debug)]
pub(crate) struct TtyWatch(Arc<std::fs::File>);

impl TtyWatch {
    /// `/dev/tty`, or None without a controlling terminal.
    fn open() -> Option<TtyWatch> {
        std::fs::File::open("/dev/tty")
            .ok()
            .map(|f| TtyWatch(Arc::new(f)))
    }

    /// Waits up to `timeout` for input; Err when the terminal hung up.
    fn wait_input(&self, timeout: Duration) -> Result<bool, TerminalGone> {
        use rustix::event::{poll, PollFd, PollFlags, Timespec};
        let mut fds = [PollFd::new(&*self.0, PollFlags::IN)];
        let ts = Timespec {
            tv_sec: timeout.as_secs() as _,
            tv_nsec: timeout.subsec_nanos() as _,
        };
        match poll(&mut fds, Some(&ts)) {
            Ok(0) => Ok(false),
            Ok(_) => {
                let gone = PollFlags::HUP | PollFlags::ERR | PollFlags::NVAL;
                if fds[0].revents().intersects(gone) {
                    Err(TerminalGone)
                } else {
                    Ok(true)
                }
            }
            Err(rustix::io::Errno::INTR) => Ok(false),
            Err(_) => Err(TerminalGone),
        }
    }

    /// True once the terminal hung up (does not wait).
    fn hung_up(&self) -> bool {
        self.wait_input(Duration::ZERO).is_err()
    }
}

/// The terminal in raw mode and the alternate screen (see [`TerminalGuard`]).
struct CrosstermScreen {
    terminal: Terminal<CrosstermBackend<Stdout>>,
    guard: Option<TerminalGuard>,
    tty: Option<TtyWatch>,
}

impl Screen for CrosstermScreen {
    fn size(&mut self) -> anyhow::Result<(u16, u16)> {
        let s = self.terminal.size()?;
        Ok((s.width, s.height))
    }
    fn draw(&mut self, app: &App) -> anyhow::Result<()> {
        self.terminal.draw(|f| views::draw(f, app))?;
        Ok(())
    }
    fn poll_event(&mut self, timeout: Duration) -> anyhow::Result<Option<TermEvent>> {
        // Wait here rather than in crossterm, whose reader spins on a hung-up terminal; then
        // take what crossterm has (keys, and resizes, which arrive by signal) without waiting.
        let wait = match &self.tty {
            Some(tty) => {
                tty.wait_input(timeout)?;
                Duration::ZERO
            }
            None => timeout,
        };
        // A signal (SIGTERM, SIGHUP, SIGWINCH…) interrupts the wait: no event, look again.
        let interrupted = |e: &io::Error| e.kind() == io::ErrorKind::Interrupted;
        match event::poll(wait) {
            Ok(true) => {}
            Ok(false) => return Ok(None),
            Err(e) if interrupted(&e) => return Ok(None),
            Err(e) => return Err(e.into()),
        }
        match event::read() {
            Ok(ev) => Ok(Some(ev)),
            Err(e) if interrupted(&e) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }
    fn leave(&mut self) {
        // Shown here, errors ignored: the terminal may be gone (ratatui would complain on drop).
        let _ = self.terminal.show_cursor();
        self.guard.take();
    }
    fn tty_watch(&self) -> Option<TtyWatch> {
        self.tty.clone()
    }
}

/// The TUI on `screen`: starts the sampler thread, runs the event loop, and on every way out of
/// it (including a panic, through [`SamplerHandle`]'s drop) stops the thread and waits for the
/// detach.
#[cfg(test)]
pub(crate) fn run_with(
    screen: &mut dyn Screen,
    source: Box<dyn Debuggable>,
    interval: Duration,
    shutdown: ShutdownFlag,
) -> anyhow::Result<()> {
    run_with_gdb(screen, source, interval, shutdown, None)
}

/// [`run_with`], with the state of a gdb client served beside the TUI in the header.
pub(crate) fn run_with_gdb(
    screen: &mut dyn Screen,
    source: Box<dyn Debuggable>,
    interval: Duration,
    shutdown: ShutdownFlag,
    gdb: Option<ServeStatus>,
) -> anyhow::Result<()> {
    let capabilities = source.capabilities();
    let replay = source.replay_control();
    let source_root = source.source_root();
    let mut sample_loop = SampleLoop::new(source, interval);
    sample_loop.gdb = gdb;
    let (mut sampler, msgs) = SamplerHandle::spawn(sample_loop, shutdown, screen.tty_watch())?;
    let mut app = App::new(interval);
    app.source = Some(capabilities);
    app.source_root = source_root;
    app.replay = replay;
    let result = (|| {
        let (w, h) = screen.size()?;
        app.set_terminal_size(w, h);
        event_loop(screen, &mut app, &msgs, &sampler)
    })();
    screen.leave();
    sampler.finish();
    result
}

fn event_loop(
    screen: &mut dyn Screen,
    app: &mut App,
    msgs: &Receiver<Msg>,
    sampler: &SamplerHandle,
) -> anyhow::Result<()> {
    let mut dirty = true;
    loop {
        if sampler.shutdown.is_set() {
            return Ok(()); // a signal: quit as `q` would
        }
        if dirty {
            screen.draw(app)?;
            dirty = false;
        }
        let event = match screen.poll_event(POLL) {
            Ok(e) => e,
            // Nobody left to show anything to: quit.
            Err(e) if e.downcast_ref::<TerminalGone>().is_some() => return Ok(()),
            Err(e) => return Err(e),
        };
        match event {
            Some(TermEvent::Key(k)) => {
                if let Some(key) = from_crossterm(&k) {
                    match app.handle_key(key) {
                        Action::Quit => return Ok(()),
                        Action::SetInterval(d) => sampler.send(Cmd::Interval(d)),
                        Action::SetPaused(p) => sampler.send(Cmd::Paused(p)),
                        Action::Debug(c) => sampler.send(Cmd::Debug(c)),
                        Action::None => {}
                    }
                    dirty = true;
                }
            }
            Some(TermEvent::Resize(w, h)) => {
                app.set_terminal_size(w, h);
                dirty = true;
            }
            _ => {}
        }
        loop {
            match msgs.try_recv() {
                Ok(Msg::Snapshot(s, at)) => app.apply_snapshot(s, at),
                Ok(Msg::Connection(c)) => app.set_connection(c),
                Ok(Msg::Debug(r)) => app.apply_debug_report(r),
                Ok(Msg::Gdb(line)) => app.gdb = Some(line),
                Err(TryRecvError::Empty) => break,
                // On shutdown the thread may end first (it watches the flag too).
                Err(TryRecvError::Disconnected) if sampler.shutdown.is_set() => return Ok(()),
                Err(TryRecvError::Disconnected) => {
                    bail!("the sampler thread stopped unexpectedly (see the panic message above)")
                }
            }
            dirty = true;
        }
    }
}

/// The sampler thread, from the event loop's side. Finishing it (explicitly or by drop, as on a
/// panic) raises the shutdown flag, sends `Quit` and waits for the thread, which detaches the
/// source before it ends.
pub(crate) struct SamplerHandle {
    cmds: Sender<Cmd>,
    shutdown: ShutdownFlag,
    thread: Option<JoinHandle<()>>,
}

impl SamplerHandle {
    /// Starts the thread (which also watches `tty` for a hang-up); returns the handle and the
    /// receiver of its reports.
    pub(crate) fn spawn(
        sampler: SampleLoop,
        shutdown: ShutdownFlag,
        tty: Option<TtyWatch>,
    ) -> anyhow::Result<(SamplerHandle, Receiver<Msg>)> {
        let (msg_tx, msg_rx) = mpsc::channel();
        let (cmd_tx, cmd_rx) = mpsc::channel();
        let flag = shutdown.clone();
        let thread = thread::Builder::new()
            .name("tui-sampler".into())
            .spawn(move || sampler_thread(sampler, cmd_rx, msg_tx, flag, tty))
            .context("cannot start the sampler thread")?;
        Ok((
            SamplerHandle {
                cmds: cmd_tx,
                shutdown,
                thread: Some(thread),
            },
            msg_rx,
        ))
    }

    pub(crate) fn send(&self, cmd: Cmd) {
        let _ = self.cmds.send(cmd);
    }

    /// Raises the shutdown flag, tells the thread to quit and waits (up to [`DETACH_WAIT`])
    /// until it has detached the source. Idempotent.
    pub(crate) fn finish(&mut self) {
        self.shutdown.set();
        let _ = self.cmds.send(Cmd::Quit);
        let Some(thread) = self.thread.take() else {
            return;
        };
        let start = Instant::now();
        let mut told = false;
        while !thread.is_finished() {
            let waited = start.elapsed();
            if waited >= DETACH_WAIT {
                // Best effort: stderr may be gone with the terminal.
                let _ = writeln!(
                    io::stderr(),
                    "inspector: the sampler did not detach within {} s; the guest may be left \
                     halted: `inspector snapshot` or `c` in gdb resumes it",
                    DETACH_WAIT.as_secs()
                );
                return;
            }
            if !told && waited >= DETACH_NOTICE {
                let _ = writeln!(
                    io::stderr(),
                    "inspector: leaving the guest running (detaching)…"
                );
                told = true;
            }
            thread::sleep(Duration::from_millis(10));
        }
        let _ = thread.join(); // a panic there was reported by the hook; the source is dropped
    }
}

impl Drop for SamplerHandle {
    fn drop(&mut self) {
        self.finish();
    }
}

/// Commands from the event loop to the sampler thread.
#[derive(Debug)]
pub(crate) enum Cmd {
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
    /// The served gdb client's state in words (`held by gdb at FUNCTION FILE:LINE`).
    Gdb(String),
}

/// Runs `sampler` until `Quit`, the shutdown flag, a hang-up of `tty`, or until the event loop
/// is gone, then detaches the source. After a hang-up it raises the flag itself and, once
/// detached, ends the process if the event loop does not finish within [`HANGUP_EXIT_WAIT`].
fn sampler_thread(
    mut sampler: SampleLoop,
    cmds: Receiver<Cmd>,
    msgs: Sender<Msg>,
    shutdown: ShutdownFlag,
    tty: Option<TtyWatch>,
) {
    let mut next_due = Instant::now();
    let mut hung_up = false;
    loop {
        if tty.as_ref().is_some_and(TtyWatch::hung_up) {
            hung_up = true;
            shutdown.set(); // ends a long command in the source, and tells the event loop
            break;
        }
        if shutdown.is_set() {
            break;
        }
        let due = next_due.saturating_duration_since(Instant::now());
        // Wake at least every SHUTDOWN_POLL to see the flag (raised by a signal, say).
        let timeout = due.min(SHUTDOWN_POLL);
        match cmds.recv_timeout(timeout) {
            Ok(Cmd::Quit) | Err(RecvTimeoutError::Disconnected) => break,
            Err(RecvTimeoutError::Timeout) if timeout < due => {}
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
                if let Some(gdb) = &sampler.gdb {
                    gone |= msgs.send(Msg::Gdb(gdb.line())).is_err();
                }
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
    if hung_up {
        // The event loop normally sees the hang-up too and sends Quit; if it is stuck in the
        // terminal's reader, there is nothing left to do but end the process.
        if let Err(RecvTimeoutError::Timeout) = wait_for_quit(&cmds, HANGUP_EXIT_WAIT) {
            std::process::exit(0);
        }
    }
}

/// Waits up to `timeout` for `Quit` (or the sender's end), skipping other commands.
fn wait_for_quit(cmds: &Receiver<Cmd>, timeout: Duration) -> Result<(), RecvTimeoutError> {
    let deadline = Instant::now() + timeout;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match cmds.recv_timeout(left) {
            Ok(Cmd::Quit) | Err(RecvTimeoutError::Disconnected) => return Ok(()),
            Ok(_) => {}
            Err(RecvTimeoutError::Timeout) => return Err(RecvTimeoutError::Timeout),
        }
    }
}

/// The sampler's state machine, separate from threads and clocks so it can be tested.
pub(crate) struct SampleLoop {
    pub(crate) source: Box<dyn Debuggable>,
    pub(crate) interval: Duration,
    pub(crate) paused: bool,
    /// `Some(reason, attempts so far)` while the connection is down.
    down: Option<(String, u32)>,
    /// The gdb server beside the TUI, if any: its state is reported after every tick.
    pub(crate) gdb: Option<ServeStatus>,
}

impl SampleLoop {
    pub(crate) fn new(source: Box<dyn Debuggable>, interval: Duration) -> SampleLoop {
        SampleLoop {
            source,
            interval,
            paused: false,
            down: None,
            gdb: None,
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
                // A booting kernel: connected, nothing to read yet; try again at the interval.
                Err(e) if NotReady::find(&e).is_some() => {
                    out(Msg::Connection(Connection::Waiting {
                        reason: one_line(&e),
                    }));
                    self.interval
                }
                // Quitting: the thread ends and detaches; nothing to report.
                Err(e) if Cancelled::is(&e) => self.interval,
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

#[cfg(test)]
mod tests {
    //! The event loop's exits, with an injected screen and a fake source: a panic while
    //! drawing, `q` during a long debugger command, and the shutdown flag (a signal) all end
    //! with the source detached.

    use super::*;
    use crate::debugger::live::{DebugCommand, DebugReport, DebugState};
    use crate::source::{Capabilities, Origin, Source};
    use crossterm::event::{KeyCode, KeyEvent};
    use std::collections::VecDeque;
    use std::panic::AssertUnwindSafe;
    use std::sync::atomic::{AtomicBool, Ordering};

    /// What the fake source saw, shared with the test.
    #[derive(Default)]
    struct Seen {
        detached: AtomicBool,
        command_started: AtomicBool,
        command_cancelled: AtomicBool,
    }

    /// A live-looking source whose debugger commands run until the shutdown flag is raised
    /// (a line step of many instructions, say), as `DebugSource` with that flag does.
    struct SlowSource {
        seen: Arc<Seen>,
        shutdown: ShutdownFlag,
    }

    impl Source for SlowSource {
        fn capabilities(&self) -> Capabilities {
            Capabilities {
                origin: Origin::Live,
                halts_guest: true,
                can_debug: true,
            }
        }
        fn sample(&mut self) -> anyhow::Result<Snapshot> {
            Ok(Snapshot::default())
        }
        fn reconnect(&mut self) -> anyhow::Result<()> {
            Ok(())
        }
        fn detach(&mut self) {
            self.seen.detached.store(true, Ordering::SeqCst);
        }
    }

    impl Debuggable for SlowSource {
        fn command(&mut self, _cmd: DebugCommand) -> anyhow::Result<DebugReport> {
            self.seen.command_started.store(true, Ordering::SeqCst);
            let deadline = Instant::now() + Duration::from_secs(60);
            while Instant::now() < deadline {
                if self.shutdown.is_set() {
                    self.seen.command_cancelled.store(true, Ordering::SeqCst);
                    return Err(Cancelled.into());
                }
                thread::sleep(Duration::from_millis(5));
            }
            Ok(DebugReport {
                state: DebugState::Running,
                breakpoints: Vec::new(),
                message: None,
            })
        }
        fn take_stop_report(&mut self) -> Option<DebugReport> {
            None
        }
    }

    /// A screen that plays keys (each once `ready` says so) and may panic on a given draw.
    struct FakeScreen {
        keys: VecDeque<(char, Option<Arc<Seen>>)>,
        draws: u32,
        panic_on_draw: Option<u32>,
        /// The terminal hangs up once the keys are played.
        hang_up: bool,
        left: bool,
    }

    impl FakeScreen {
        fn new(keys: &[char]) -> FakeScreen {
            FakeScreen {
                keys: keys.iter().map(|&c| (c, None)).collect(),
                draws: 0,
                panic_on_draw: None,
                hang_up: false,
                left: false,
            }
        }
    }

    impl Screen for FakeScreen {
        fn size(&mut self) -> anyhow::Result<(u16, u16)> {
            Ok((120, 40))
        }
        fn draw(&mut self, _app: &App) -> anyhow::Result<()> {
            self.draws += 1;
            if self.panic_on_draw == Some(self.draws) {
                panic!("injected panic while drawing");
            }
            Ok(())
        }
        fn poll_event(&mut self, timeout: Duration) -> anyhow::Result<Option<TermEvent>> {
            let ready = match self.keys.front() {
                Some((_, Some(seen))) => seen.command_started.load(Ordering::SeqCst),
                Some((_, None)) => true,
                None => false,
            };
            if self.hang_up && self.keys.is_empty() {
                return Err(TerminalGone.into());
            }
            if !ready {
                thread::sleep(timeout);
                return Ok(None);
            }
            let (c, _) = self.keys.pop_front().expect("checked");
            Ok(Some(TermEvent::Key(KeyEvent::from(KeyCode::Char(c)))))
        }
        fn leave(&mut self) {
            self.left = true;
        }
    }

    fn slow_source(shutdown: &ShutdownFlag) -> (Box<dyn Debuggable>, Arc<Seen>) {
        let seen = Arc::new(Seen::default());
        let src = SlowSource {
            seen: seen.clone(),
            shutdown: shutdown.clone(),
        };
        (Box::new(src), seen)
    }

    const INTERVAL: Duration = Duration::from_millis(20);

    #[test]
    fn a_panic_while_drawing_still_detaches_the_source() {
        let shutdown = ShutdownFlag::new();
        let (src, seen) = slow_source(&shutdown);
        let mut screen = FakeScreen::new(&[]);
        screen.panic_on_draw = Some(1);
        let r = panic::catch_unwind(AssertUnwindSafe(|| {
            run_with(&mut screen, src, INTERVAL, shutdown.clone())
        }));
        assert!(r.is_err(), "the draw panicked");
        assert!(
            seen.detached.load(Ordering::SeqCst),
            "the sampler thread detached the source before the panic left the TUI"
        );
        assert!(shutdown.is_set());
    }

    #[test]
    fn quit_during_a_long_debugger_command_cancels_it_and_waits_for_the_detach() {
        let shutdown = ShutdownFlag::new();
        let (src, seen) = slow_source(&shutdown);
        // 5: the debugger view; s: a step (runs until cancelled); q once the step started.
        let mut screen = FakeScreen::new(&['5', 's']);
        screen.keys.push_back(('q', Some(seen.clone())));
        let start = Instant::now();
        run_with(&mut screen, src, INTERVAL, shutdown.clone()).unwrap();
        assert!(seen.command_started.load(Ordering::SeqCst));
        assert!(
            seen.command_cancelled.load(Ordering::SeqCst),
            "the step saw the flag"
        );
        assert!(
            seen.detached.load(Ordering::SeqCst),
            "detached before run_with returned"
        );
        assert!(screen.left, "the terminal is given back");
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "quit promptly: {:?}",
            start.elapsed()
        );
    }

    #[test]
    fn a_raised_shutdown_flag_quits_the_loop_and_detaches() {
        let shutdown = ShutdownFlag::new();
        let (src, seen) = slow_source(&shutdown);
        let mut screen = FakeScreen::new(&[]);
        let raiser = shutdown.clone();
        let signal = thread::spawn(move || {
            thread::sleep(Duration::from_millis(150));
            raiser.set(); // as the SIGTERM handler does
        });
        let start = Instant::now();
        run_with(&mut screen, src, INTERVAL, shutdown).unwrap();
        signal.join().unwrap();
        assert!(seen.detached.load(Ordering::SeqCst));
        assert!(screen.left);
        assert!(start.elapsed() < Duration::from_secs(5));
    }

    #[test]
    fn a_hung_up_terminal_quits_during_a_long_command_and_detaches() {
        let shutdown = ShutdownFlag::new();
        let (src, seen) = slow_source(&shutdown);
        let mut screen = FakeScreen::new(&['5', 's']);
        screen.hang_up = true;
        run_with(&mut screen, src, INTERVAL, shutdown.clone()).unwrap();
        assert!(seen.detached.load(Ordering::SeqCst));
        assert!(shutdown.is_set());
    }

    /// Fails every sample with a booting kernel held by the debugger; counts reconnects.
    struct Booting {
        reconnects: u32,
    }

    impl Source for Booting {
        fn capabilities(&self) -> Capabilities {
            SlowSource {
                seen: Arc::default(),
                shutdown: ShutdownFlag::new(),
            }
            .capabilities()
        }
        fn sample(&mut self) -> anyhow::Result<Snapshot> {
            Err(anyhow::Error::new(NotReady::Held).context("taking a snapshot"))
        }
        fn reconnect(&mut self) -> anyhow::Result<()> {
            self.reconnects += 1;
            Ok(())
        }
        fn detach(&mut self) {}
    }

    #[test]
    fn a_kernel_that_is_not_ready_is_waited_for_without_reconnecting() {
        let src = crate::debugger::live::NoDebugger(Booting { reconnects: 0 });
        let mut s = SampleLoop::new(Box::new(src), INTERVAL);
        for _ in 0..3 {
            let mut out = Vec::new();
            let wait = s.tick(&mut |m| out.push(m));
            assert_eq!(wait, INTERVAL, "sampled again at the interval, no backoff");
            match out.as_slice() {
                [Msg::Connection(Connection::Waiting { reason })] => {
                    assert!(reason.contains("continue it"), "{reason}")
                }
                other => panic!("{other:?}"),
            }
        }
        assert!(s.down.is_none(), "not taken for a lost connection");
    }

    #[test]
    fn finishing_the_handle_twice_is_harmless_and_drop_joins() {
        let shutdown = ShutdownFlag::new();
        let (src, seen) = slow_source(&shutdown);
        let (h, _msgs) =
            SamplerHandle::spawn(SampleLoop::new(src, INTERVAL), shutdown.clone(), None).unwrap();
        h.send(Cmd::Debug(DebugCommand::Step));
        while !seen.command_started.load(Ordering::SeqCst) {
            thread::sleep(Duration::from_millis(5));
        }
        drop(h); // as on a panic: the drop raises the flag and joins
        assert!(shutdown.is_set());
        assert!(seen.command_cancelled.load(Ordering::SeqCst));
        assert!(seen.detached.load(Ordering::SeqCst));
        let (mut h, _msgs) = SamplerHandle::spawn(
            SampleLoop::new(slow_source(&shutdown).0, INTERVAL),
            shutdown,
            None,
        )
        .unwrap();
        h.finish();
        h.finish();
    }
}
