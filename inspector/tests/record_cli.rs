//! `snapshot --replay`, `diff` and damaged recordings through the binary, on recordings of the
//! simulated kernel made with the library (no QEMU): what the commands print is what the
//! recording holds, exit codes are the documented ones, and a cut file replays up to the cut.

use inspector::model::{diff, Snapshot};
use inspector::record::{Player, Pos, Recorder, Recording, StartInfo};
use inspector::source::{DemoSource, Source};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Arc;
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_inspector");
/// Time between the simulated samples.
const STEP: Duration = Duration::from_millis(500);

/// A recording of `n` demo samples, one every [`STEP`], in `dir`; and the samples.
fn demo_recording(dir: &Path, n: u32) -> (PathBuf, Vec<Snapshot>) {
    let path = dir.join("demo.lsrec");
    let info = StartInfo {
        keyframe_every_ms: 2000,
        ..StartInfo::default()
    };
    let mut rec = Recorder::new(std::fs::File::create(&path).unwrap(), &info).unwrap();
    let mut demo = DemoSource::with_seed(4);
    let mut snaps = Vec::new();
    for i in 0..n {
        let s = demo.sample().unwrap();
        rec.push(&s, STEP * i).unwrap();
        snaps.push(s);
    }
    rec.finish(STEP * n).unwrap();
    (path, snaps)
}

fn inspector(args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .output()
        .expect("run the inspector")
}

fn json(out: &Output) -> Value {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("JSON on stdout")
}

/// (slot, pa, npages, owner, tag) of each entry of a JSON list.
fn rows(list: &Value) -> Vec<(u64, u64, u64, u64, String)> {
    list.as_array()
        .expect("a list")
        .iter()
        .map(|e| {
            (
                e["slot"].as_u64().unwrap(),
                e["pa"].as_u64().unwrap(),
                e["npages"].as_u64().unwrap(),
                e["owner"].as_u64().unwrap(),
                e["tag"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn entry_rows(s: &Snapshot) -> Vec<(u64, u64, u64, u64, String)> {
    s.entries
        .iter()
        .map(|e| {
            (
                e.slot as u64,
                e.pa,
                e.npages,
                u64::from(e.owner),
                e.tag.to_string(),
            )
        })
        .collect()
}

fn pages(s: &Snapshot) -> u64 {
    s.entries.iter().map(|e| e.npages).sum()
}

#[test]
fn snapshot_replay_prints_the_recorded_state_at_a_time_and_at_the_end() {
    let dir = tempfile::tempdir().unwrap();
    let (path, snaps) = demo_recording(dir.path(), 40);
    let file = path.to_str().unwrap();
    let end = json(&inspector(&[
        "snapshot", "--replay", file, "--at", "end", "--json",
    ]));
    let last = snaps.last().unwrap();
    assert_eq!(rows(&end["entries"]), entry_rows(last));
    assert_eq!(end["count"], last.header.count);
    assert_eq!(end["generation"], last.header.generation);
    assert_eq!(end["free_pages"], last.header.free_pages);
    // 7.2 s: the sample taken at 7 s (the 15th).
    let mid = json(&inspector(&[
        "snapshot", "--replay", file, "--at", "7s200ms", "--json",
    ]));
    assert_eq!(rows(&mid["entries"]), entry_rows(&snaps[14]));
    let pids: Vec<u64> = mid["pids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["pid"].as_u64().unwrap())
        .collect();
    let want: Vec<u64> = snaps[14].pids().iter().map(|p| u64::from(p.pid)).collect();
    assert_eq!(pids, want);
    // Text works too, and a time past the end is an error that says how long it lasts.
    let text = inspector(&["snapshot", "--replay", file, "--at", "3s"]);
    assert!(text.status.success());
    assert!(String::from_utf8_lossy(&text.stdout).contains("slots used"));
    let late = inspector(&["snapshot", "--replay", file, "--at", "1h"]);
    assert_eq!(late.status.code(), Some(1));
    let err = String::from_utf8_lossy(&late.stderr);
    assert!(err.contains("lasts 20.0 s"), "{err}");
}

#[test]
fn a_cut_or_corrupt_recording_replays_up_to_the_damage_and_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let (path, _) = demo_recording(dir.path(), 40);
    let bytes = std::fs::read(&path).unwrap();
    let cut = dir.path().join("cut.lsrec");
    std::fs::write(&cut, &bytes[..bytes.len() * 2 / 3]).unwrap();
    let intact = Recording::open(&cut).unwrap();
    assert!(intact.damage().is_some() && intact.len() > 2);
    let mut player = Player::new(Arc::new(intact));
    let want = player.snapshot(player.end(), 0);
    let out = inspector(&[
        "snapshot",
        "--replay",
        cut.to_str().unwrap(),
        "--at",
        "end",
        "--json",
    ]);
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(
        err.contains("is damaged at byte") && err.contains("cut off while it was written"),
        "{err}"
    );
    assert_eq!(rows(&json(&out)["entries"]), entry_rows(&want));
    // A flipped byte: the checksum says so.
    let mut corrupt = bytes.clone();
    let at = corrupt.len() / 2;
    corrupt[at] ^= 1;
    let bad = dir.path().join("bad.lsrec");
    std::fs::write(&bad, &corrupt).unwrap();
    let out = inspector(&["snapshot", "--replay", bad.to_str().unwrap()]);
    assert!(out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("checksum mismatch"), "{err}");
    // Not a recording at all; cut inside its first keyframe.
    let junk = dir.path().join("junk");
    std::fs::write(&junk, b"{\"entries\": []}").unwrap();
    let out = inspector(&["snapshot", "--replay", junk.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a Leakscope recording"));
    std::fs::write(&cut, &bytes[..60]).unwrap();
    let out = inspector(&["snapshot", "--replay", cut.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no complete keyframe"));
}

#[test]
fn diff_lists_added_and_removed_entries_and_exits_1_when_pages_grew() {
    let dir = tempfile::tempdir().unwrap();
    let (path, snaps) = demo_recording(dir.path(), 40);
    let file = path.to_str().unwrap();
    // Two samples whose tracked pages differ, the smaller first.
    let (i, j) = (0..snaps.len())
        .flat_map(|i| (i + 1..snaps.len()).map(move |j| (i, j)))
        .find(|&(i, j)| pages(&snaps[i]) < pages(&snaps[j]))
        .expect("the demo's pages change");
    let (a, b) = (&snaps[i], &snaps[j]);
    let at = |k: usize| format!("{file}@{}ms", STEP.as_millis() * k as u128);
    let want = diff(a, b);
    let out = inspector(&["diff", &at(i), &at(j), "--json"]);
    assert_eq!(out.status.code(), Some(1), "B holds more pages");
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let as_rows = |list: &[inspector::model::Entry]| {
        entry_rows(&Snapshot {
            entries: Arc::new(list.to_vec()),
            ..Snapshot::default()
        })
    };
    assert_eq!(rows(&v["added"]), as_rows(&want.added));
    assert_eq!(rows(&v["removed"]), as_rows(&want.removed));
    assert_eq!(v["pages_a"], pages(a));
    assert_eq!(v["pages_b"], pages(b));
    assert_eq!(v["grew"], true);
    let net: i64 = v["by_pid"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["net_pages"].as_i64().unwrap())
        .sum();
    assert_eq!(net, pages(b) as i64 - pages(a) as i64);
    // The other way round: no growth, exit 0; the lists swap.
    let out = inspector(&["diff", &at(j), &at(i), "--json"]);
    assert_eq!(out.status.code(), Some(0));
    let back: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(rows(&back["removed"]), rows(&v["added"]));
    // Snapshot JSON files as written by `snapshot --json` give the same answer.
    let write = |k: usize, name: &str| {
        let out = inspector(&[
            "snapshot",
            "--replay",
            file,
            "--at",
            &format!("{}ms", STEP.as_millis() * k as u128),
            "--json",
        ]);
        let p = dir.path().join(name);
        std::fs::write(&p, &out.stdout).unwrap();
        p.to_str().unwrap().to_string()
    };
    let (ja, jb) = (write(i, "a.json"), write(j, "b.json"));
    let out = inspector(&["diff", &ja, &jb, "--json"]);
    assert_eq!(out.status.code(), Some(1));
    let from_files: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(rows(&from_files["added"]), rows(&v["added"]));
    assert_eq!(rows(&from_files["removed"]), rows(&v["removed"]));
    // Text: totals and tables.
    let out = inspector(&["diff", &ja, &jb]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.starts_with("tracked pages: "), "{text}");
    assert!(
        text.contains("GAINED") && text.contains("added ("),
        "{text}"
    );
    // The same moment twice: nothing, exit 0.
    let out = inspector(&["diff", &ja, &ja]);
    assert_eq!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stdout).contains("no allocation added or removed"));
}

#[test]
fn diff_says_what_it_needs_and_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    let (path, _) = demo_recording(dir.path(), 4);
    let file = path.to_str().unwrap();
    let out = inspector(&["diff", file, &format!("{file}@end")]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("is a recording: say which moment"), "{err}");
    let out = inspector(&["diff", "/nonexistent.json", &format!("{file}@end")]);
    assert_eq!(out.status.code(), Some(2));
    let out = inspector(&["diff", &format!("{file}@soon"), &format!("{file}@end")]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("neither a time"));
}

#[test]
fn frames_between_samples_replay_the_earlier_sample() {
    let dir = tempfile::tempdir().unwrap();
    let (path, snaps) = demo_recording(dir.path(), 10);
    let rec = Arc::new(Recording::open(&path).unwrap());
    let mut p = Player::new(rec);
    for (i, s) in snaps.iter().enumerate() {
        let pos = p.at_time(STEP * i as u32 + STEP / 2);
        assert_eq!(p.state(pos).entries, s.entries, "sample {i}");
        assert_eq!(pos, Pos::frame(pos.frame));
    }
}
