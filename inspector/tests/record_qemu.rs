//! Recordings, replays, diffs and memory dumps against the real kernel in QEMU: a recording
//! made during `churn` holds, at the moments the guest was held, exactly what a stub snapshot
//! read then; its end equals a live snapshot taken after it stopped; every sample's change is
//! explained by its events, so stepping event by event is faithful, and backwards equals
//! forwards; a diff around a leak's exit lists the leaked pages; a QEMU dump (and a copy of the
//! RAM file) read offline equals the live snapshot of that moment. Each test boots its own
//! QEMU (killed by pid on drop) and bounds every wait.

mod common;

use common::cli::{entry_rows, BIN};
use common::qemu::{kernel_elf, test_ram_file, Qemu};
use inspector::cli::render::snapshot_json;
use inspector::model::{diff, EventKind, Snapshot};
use inspector::record::{Player, Pos, Recording};
use inspector::source::Session;
use serde_json::Value;
use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const T: Duration = Duration::from_secs(60);

/// `inspector record` against `q`'s RAM file, writing `out`, until stopped.
fn start_recorder(q: &Qemu, out: &Path) -> Child {
    Command::new(BIN)
        .arg("record")
        .arg("--elf")
        .arg(kernel_elf())
        .arg("--ram")
        .arg(q.ram_file().expect("booted with a RAM file"))
        .arg("-o")
        .arg(out)
        .args(["--interval", "50ms", "--keyframe-every", "400ms"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start inspector record")
}

/// Waits (bounded) until the recording at `file` holds its first keyframe: the recorder runs.
fn wait_started(file: &Path) {
    let deadline = Instant::now() + T;
    while Recording::open(file).is_err() {
        assert!(
            Instant::now() < deadline,
            "the recorder never wrote a keyframe"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Stops the recorder as Ctrl-C would and waits (bounded) for it to finish its file.
fn stop_recorder(mut child: Child) -> Output {
    // SAFETY: kill(2) on the pid of our own child, which has not been reaped yet.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    common::cli::wait_bounded(&mut child, Duration::from_secs(20))
        .expect("inspector record stops within 20 s of SIGTERM");
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "record failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn run(args: &[&str]) -> Output {
    Command::new(BIN).args(args).output().unwrap()
}

fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

/// Connects to `q`'s stub, halts the guest outside any tracker change, and returns the
/// session (guest held) and the snapshot read then.
fn hold(q: &Qemu) -> (Session, Snapshot) {
    let mut session =
        Session::connect(&kernel_elf(), &format!("127.0.0.1:{}", q.gdb_port())).unwrap();
    let deadline = Instant::now() + T;
    loop {
        assert!(Instant::now() < deadline, "never halted outside a change");
        session.target().halt().unwrap();
        session.sampler().reset();
        match session.sample() {
            Ok(s) if !s.mid_change => return (session, s),
            _ => {
                session.target().resume().unwrap();
                std::thread::sleep(Duration::from_millis(5));
            }
        }
    }
}

/// What a snapshot's JSON and another's must share: entries, counts, pids.
fn same_state(got: &Value, want: &Value, what: &str) {
    assert_eq!(entry_rows(got), entry_rows(want), "{what}: entries");
    for k in [
        "count",
        "generation",
        "free_pages",
        "tracked_pages",
        "high_water",
    ] {
        assert_eq!(got[k], want[k], "{what}: {k}");
    }
    assert_eq!(got["pids"], want["pids"], "{what}: pids");
}

#[test]
#[ignore = "boots QEMU: run with make test"]
fn a_recording_during_churn_holds_what_live_snapshots_saw_and_replays_both_ways() {
    let ram = test_ram_file("rec-churn");
    let mut q = Qemu::boot_with_ram(&ram);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("churn.lsrec");
    let recorder = start_recorder(&q, &file);
    wait_started(&file);
    // A second or two of churn (thousands of rounds a second); held soon after it started.
    q.send_line("churn 6000 &");
    std::thread::sleep(Duration::from_millis(250));
    // Hold the guest for a while: every frame recorded meanwhile (keyframes among them) is
    // the state the stub reads.
    let (session, live) = hold(&q);
    let held_from = unix_ms();
    std::thread::sleep(Duration::from_millis(1500));
    let held_to = unix_ms();
    session.detach().unwrap();
    // Churn's last line; then nothing changes (the shell waits for input).
    q.expect("churn: pid=", T);
    q.expect("allocations", T);
    // Churn can outrun the event ring between two samples (on two harts it often does), so
    // a small change follows: a few events, well inside the ring, that some delta frame
    // accounts for completely (checked below).
    // The first change after the quiet spell is recorded as a keyframe (over 400 ms since the
    // last one), so a second follows soon after it: recorded as a delta.
    q.send_line("leak 2");
    q.expect("allocated 2 pages", T);
    std::thread::sleep(Duration::from_millis(150));
    q.send_line("leak 1");
    q.expect("allocated 1 pages", T);
    std::thread::sleep(Duration::from_millis(600));
    let out = stop_recorder(recorder);
    let after = run(&[
        "snapshot",
        "--json",
        "--elf",
        kernel_elf().to_str().unwrap(),
        "--ram",
        ram.to_str().unwrap(),
    ]);
    assert!(after.status.success());
    let after: Value = serde_json::from_slice(&after.stdout).unwrap();
    eprintln!("{}", String::from_utf8_lossy(&out.stderr));

    let rec = Arc::new(Recording::open(&file).unwrap());
    eprintln!("{} frames, {} events", rec.len(), rec.events_total());
    assert!(rec.ended_cleanly() && rec.damage().is_none());
    let start_ms = rec.info().started_unix_ms;
    let mut p = Player::new(rec.clone());
    let wall = |f: usize| start_ms + rec.frame_time(f).as_millis() as u64;
    // Frames stamped well inside the hold: each is the held state. (A frame is stamped just
    // after its read, so one stamped at the hold's very start may hold the state before it.)
    let inside = |f: usize| wall(f) > held_from + 150 && wall(f) + 150 < held_to;
    for f in (0..rec.len()).filter(|&f| inside(f)) {
        let st = p.state(Pos::frame(f));
        assert_eq!(st.entries, live.entries, "frame {f} while held");
        assert_eq!(st.header, live.header, "frame {f} while held");
        assert_eq!(st.procs, live.procs, "frame {f} while held");
    }
    // A keyframe was written during the hold (the first change after the last keyframe
    // is one once 400 ms passed), and it is exactly what the stub read.
    let during: Vec<usize> = rec
        .keyframes()
        .iter()
        .copied()
        .filter(|&k| wall(k) + 100 >= held_from && wall(k) < held_to)
        .collect();
    let equal = during.iter().any(|&k| {
        let st = p.state(Pos::frame(k));
        st.entries == live.entries && st.header == live.header && st.procs == live.procs
    });
    assert!(
        equal,
        "no keyframe equal to the held state: keyframes {:?} of {} frames at {:?} ms; held \
         {}..{} ms",
        rec.keyframes(),
        rec.len(),
        (0..rec.len())
            .map(|f| rec.frame_time(f).as_millis())
            .collect::<Vec<_>>(),
        held_from - start_ms,
        held_to - start_ms
    );
    // The end of the replay is the live state after the recording stopped.
    let end = run(&[
        "snapshot",
        "--replay",
        file.to_str().unwrap(),
        "--at",
        "end",
        "--json",
    ]);
    let end: Value = serde_json::from_slice(&end.stdout).unwrap();
    same_state(&end, &after, "replay at end vs live after");
    same_state(
        &snapshot_json(&p.snapshot(p.at_time(Duration::MAX), 0)),
        &end,
        "player end",
    );

    // Each sample's change is what its events say (the kernel's events carry slots).
    let mut complete = 0;
    for f in 1..rec.len() {
        if p.is_complete_delta(f) && !rec.frame_events(f).is_empty() {
            let derived = p.derive_from_events(f);
            let recorded = p.state(Pos::frame(f));
            assert_eq!(derived.entries, recorded.entries, "frame {f}");
            assert_eq!(derived.header.count, recorded.header.count, "frame {f}");
            assert_eq!(
                derived.header.tracked_pages, recorded.header.tracked_pages,
                "frame {f}"
            );
            complete += 1;
        }
    }
    assert!(
        complete >= 1,
        "{complete} frames with events of {}",
        rec.len()
    );

    // One event at a time, forwards then backwards: the same states.
    let fingerprint = |p: &mut Player, pos: Pos| {
        let st = p.state(pos);
        let rows: Vec<(usize, u64, u64)> = st
            .entries
            .iter()
            .map(|e| (e.slot, e.pa, e.npages))
            .collect();
        (p.event_count(pos), st.header.count, rows)
    };
    let mut pos = Pos::frame(0);
    let mut forward = vec![fingerprint(&mut p, pos)];
    loop {
        let next = p.step(pos, 1);
        if next == pos {
            break;
        }
        pos = next;
        forward.push(fingerprint(&mut p, pos));
    }
    assert_eq!(p.event_count(pos), rec.events_total());
    assert!(forward.len() > 200, "{} events", forward.len());
    let mut back = vec![fingerprint(&mut p, pos)];
    loop {
        let prev = p.step(pos, -1);
        if prev == pos {
            break;
        }
        pos = prev;
        back.push(fingerprint(&mut p, pos));
    }
    back.reverse();
    assert!(back == forward, "stepping back reached other states");
}

/// `(pa, npages)` of the console's ` freeing leak: pa=… npages=…` lines.
fn leaked(console: &str) -> BTreeSet<(u64, u64)> {
    let field = |l: &str, k: &str| -> u64 {
        let v = l
            .split(&format!("{k}="))
            .nth(1)
            .unwrap()
            .split(' ')
            .next()
            .unwrap();
        match v.strip_prefix("0x") {
            Some(h) => u64::from_str_radix(h, 16).unwrap(),
            None => v.parse().unwrap(),
        }
    };
    console
        .lines()
        .filter(|l| l.starts_with(" freeing leak: "))
        .map(|l| (field(l, "pa"), field(l, "npages")))
        .collect()
}

#[test]
#[ignore = "boots QEMU: run with make test"]
fn a_diff_around_a_leaks_exit_lists_the_leaked_pages() {
    let ram = test_ram_file("rec-leak");
    let mut q = Qemu::boot_with_ram(&ram);
    assert!(q.run("debug on", T).contains("debug: on"));
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("leak.lsrec");
    let recorder = start_recorder(&q, &file);
    wait_started(&file);
    let console = q.run("leak 5 2", T);
    let pid: u32 = console
        .split("leak: pid=")
        .nth(1)
        .unwrap_or_else(|| panic!("{console}"))
        .split(|c: char| !c.is_ascii_digit())
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let want = leaked(&console);
    assert_eq!(want.iter().map(|l| l.1).sum::<u64>(), 5, "{console}");
    std::thread::sleep(Duration::from_millis(500));
    stop_recorder(recorder);

    let rec = Arc::new(Recording::open(&file).unwrap());
    // The first sample that saw the exit sweep, and the events before the sweep.
    let mut seen = 0;
    let mut sweep = None;
    for f in 0..rec.len() {
        for e in rec.frame_events(f) {
            if e.kind == EventKind::ExitReclaim && e.owner == pid && sweep.is_none() {
                sweep = Some((f, seen));
            }
            seen += 1;
        }
    }
    let (f_exit, before_sweep) = sweep.expect("the recording saw the exit sweep");
    assert!(f_exit > 0);
    let a = format!(
        "{}@{}us",
        file.display(),
        rec.frame_time(f_exit - 1).as_micros()
    );
    let b = format!("{}@end", file.display());
    let out = run(&["diff", &a, &b, "--json"]);
    assert_eq!(out.status.code(), Some(0), "pages went down: {:?}", out);
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let removed: BTreeSet<(u64, u64)> = v["removed"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["owner"] == pid && e["tag"] == "alloc_pages")
        .map(|e| (e["pa"].as_u64().unwrap(), e["npages"].as_u64().unwrap()))
        .collect();
    assert_eq!(
        removed, want,
        "the leak's heap pages, as the console reported them"
    );
    assert!(
        v["added"]
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["owner"] != pid),
        "{v}"
    );
    let row = v["by_pid"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["pid"] == pid)
        .expect("the leak's row");
    assert!(row["lost_pages"].as_u64().unwrap() >= 5, "{row}");
    // Reversed: B holds more than A, exit 1.
    assert_eq!(run(&["diff", &b, &a]).status.code(), Some(1));

    // Around the sweep itself, event by event: exactly the leaked pages go.
    let mut p = Player::new(rec.clone());
    let pre = p.at_event_count(before_sweep);
    let post = p.at_event_count(
        before_sweep
            + rec
                .frame_events(f_exit)
                .iter()
                .filter(|e| e.kind == EventKind::ExitReclaim && e.owner == pid)
                .count(),
    );
    let (s0, s1) = (p.snapshot(pre, 0), p.snapshot(post, 0));
    let d = diff(&s0, &s1);
    let gone: BTreeSet<(u64, u64)> = d.removed.iter().map(|e| (e.pa, e.npages)).collect();
    assert_eq!(gone, want);
    assert!(d.added.is_empty(), "{:?}", d.added);
}

#[test]
#[ignore = "boots QEMU: run with make test"]
fn a_qemu_dump_and_a_ram_copy_read_offline_equal_the_live_snapshot_of_that_moment() {
    let ram = test_ram_file("rec-dump");
    let mut q = Qemu::boot_with_ram(&ram);
    q.send_line("leak 12 60 &");
    q.expect("leak: pid=", T);
    q.send_line("churn 100000 &");
    std::thread::sleep(Duration::from_millis(500));
    let dir = tempfile::tempdir().unwrap();
    let core = dir.path().join("guest.core");
    let copy = dir.path().join("ram.copy");
    let (mut session, live) = hold(&q);
    let reply = session
        .target()
        .monitor(&format!("dump-guest-memory {}", core.display()))
        .unwrap();
    std::fs::copy(&ram, &copy).unwrap();
    session.detach().unwrap();
    assert!(core.exists(), "QEMU wrote no dump: {reply:?}");
    let want = snapshot_json(&live);
    for (what, file) in [("QEMU dump", &core), ("RAM copy", &copy)] {
        let out = run(&[
            "snapshot",
            "--core",
            file.to_str().unwrap(),
            "--elf",
            kernel_elf().to_str().unwrap(),
            "--json",
        ]);
        assert!(
            out.status.success(),
            "{what}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let got: Value = serde_json::from_slice(&out.stdout).unwrap();
        same_state(&got, &want, what);
        assert!(entry_rows(&got).len() > 10, "{what}: {got}");
    }
    // The wrong ELF is refused.
    let c_elf = common::qemu::c_kernel_elf();
    if c_elf.exists() {
        let out = run(&[
            "snapshot",
            "--core",
            core.to_str().unwrap(),
            "--elf",
            c_elf.to_str().unwrap(),
        ]);
        assert_eq!(out.status.code(), Some(1));
    }
    q.kill();
}

#[test]
#[ignore = "boots QEMU: run with make test"]
fn make_dump_writes_a_core_that_reads_as_the_idle_kernel() {
    let mut q = Qemu::boot();
    q.send_line("leak 6 120 &");
    q.expect("leak: pid=", T);
    std::thread::sleep(Duration::from_millis(300)); // the leak sleeps, the shell waits: idle
    let dir = tempfile::tempdir().unwrap();
    let core = dir.path().join("guest.core");
    common::cli::make_dump(q.gdb_port(), &core);
    let live = common::cli::snapshot(&q);
    let got = run(&[
        "snapshot",
        "--core",
        core.to_str().unwrap(),
        "--elf",
        kernel_elf().to_str().unwrap(),
        "--json",
    ]);
    assert!(
        got.status.success(),
        "{}",
        String::from_utf8_lossy(&got.stderr)
    );
    let got: Value = serde_json::from_slice(&got.stdout).unwrap();
    same_state(&got, &live, "make dump");
    // The guest runs on after the dump.
    assert!(q.run("echo after", T).contains("after"));
}
