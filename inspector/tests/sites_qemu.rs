//! Allocation sites against the real kernel in QEMU: every live entry names the kernel line
//! that called `alloc_pages` (checked against the source file at that line), `leak`'s pages
//! also name `leak`'s own `alloc_pages` call line, `snapshot --by site` adds up to the per-PID
//! totals, and `watch` names the sites of the pages an exit reclaims. Each test boots its own
//! QEMU (killed by pid on drop) with timeouts.

mod common;

use common::cli::BIN;
use common::qemu::{kernel_elf, Qemu};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

const T: Duration = Duration::from_secs(20);

/// The workspace root: files in sites are relative to it.
fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// Line `line` (1-based) of `file`, relative to the workspace root.
fn source_line(file: &str, line: u64) -> String {
    let path = workspace().join(file);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("site file {} unreadable: {e}", path.display()));
    text.lines()
        .nth(line.checked_sub(1).expect("line 0") as usize)
        .unwrap_or_else(|| panic!("{file} has no line {line}"))
        .to_string()
}

/// The line of `leak.rs` that calls `alloc_pages` (the only one).
fn leak_alloc_line() -> u64 {
    let text = std::fs::read_to_string(workspace().join("kernel/user/src/bin/leak.rs")).unwrap();
    let lines: Vec<usize> = text
        .lines()
        .enumerate()
        .filter(|(_, l)| l.contains("alloc_pages(") && !l.trim_start().starts_with("//"))
        .map(|(i, _)| i + 1)
        .collect();
    assert_eq!(lines.len(), 1, "leak.rs calls alloc_pages once: {lines:?}");
    lines[0] as u64
}

fn inspector(q: &Qemu, args: &[&str]) -> Command {
    let mut c = Command::new(BIN);
    c.args(args)
        .arg("--elf")
        .arg(kernel_elf())
        .args(["--gdb", &format!("127.0.0.1:{}", q.gdb_port())])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    c
}

fn json(out: std::process::Output) -> Value {
    assert!(
        out.status.success(),
        "inspector failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// `leak: pid=P allocated N pages in A allocations` → (P, N, A).
fn leak_said(said: &str) -> (u64, u64, u64) {
    let line = said
        .lines()
        .find(|l| l.contains("leak: pid="))
        .unwrap_or_else(|| panic!("no leak line in:\n{said}"));
    let nums: Vec<u64> = line
        .split(|c: char| !c.is_ascii_digit())
        .filter_map(|w| w.parse().ok())
        .collect();
    (nums[0], nums[1], nums[2])
}

fn site_of(v: &Value) -> (String, u64, String) {
    (
        v["file"].as_str().unwrap().to_string(),
        v["line"].as_u64().unwrap(),
        v["function"].as_str().unwrap().to_string(),
    )
}

#[test]
#[ignore = "boots QEMU: run with make test"]
fn every_entry_names_an_alloc_pages_call_line_and_leaks_name_their_own() {
    let mut q = Qemu::boot();
    q.send_line("leak 20 60 &");
    let said = q.expect("allocations", T);
    let (pid, pages, allocs) = leak_said(&said);
    assert_eq!(pages, 20);

    let v = json(
        inspector(&q, &["snapshot", "--json", "--by", "site"])
            .output()
            .unwrap(),
    );
    let entries = v["entries"].as_array().unwrap();
    assert!(entries.len() > 10, "{v}");
    let leak_line = leak_alloc_line();
    let (mut leak_allocs, mut leak_pages) = (0, 0);
    for e in entries {
        let site = e
            .get("site")
            .unwrap_or_else(|| panic!("entry without a site: {e}"));
        let (file, line, function) = site_of(site);
        assert!(
            !file.starts_with('/') && file.starts_with("kernel/src/"),
            "a kernel site is a kernel source file, relative to the workspace: {e}"
        );
        assert!(!function.is_empty() && function != "?", "{e}");
        let text = source_line(&file, line);
        assert!(
            text.contains("alloc_pages"),
            "{file}:{line} is not an alloc_pages call: `{text}` ({e})"
        );
        let from_program = e["tag"] == "alloc_pages" && e["owner"].as_u64() != Some(0);
        match e.get("user_site") {
            Some(u) => {
                assert!(
                    from_program,
                    "only a program's request has a user site: {e}"
                );
                if e["owner"] == pid {
                    assert_eq!(
                        site_of(u),
                        (
                            "kernel/user/src/bin/leak.rs".to_string(),
                            leak_line,
                            "main".to_string()
                        ),
                        "{e}"
                    );
                    leak_allocs += 1;
                    leak_pages += e["npages"].as_u64().unwrap();
                }
            }
            None => assert!(!from_program, "a program's pages without a user site: {e}"),
        }
    }
    assert_eq!((leak_allocs, leak_pages), (allocs, 20));

    // Grouped by site: the groups add up to the per-PID totals, and leak's line holds its pages.
    let groups = v["groups"].as_array().unwrap();
    let sum = |arr: &[Value], k: &str| arr.iter().map(|g| g[k].as_u64().unwrap()).sum::<u64>();
    let pids = v["pids"].as_array().unwrap();
    assert_eq!(sum(groups, "pages"), sum(pids, "pages"), "{v}");
    assert_eq!(sum(groups, "allocs"), sum(pids, "allocs"), "{v}");
    assert_eq!(sum(groups, "pages"), v["tracked_pages"].as_u64().unwrap());
    let key = format!("kernel/user/src/bin/leak.rs:{leak_line} main");
    let leak_group = groups
        .iter()
        .find(|g| g["key"] == key.as_str())
        .unwrap_or_else(|| panic!("no group {key}: {groups:?}"));
    assert_eq!(
        (leak_group["allocs"].as_u64(), leak_group["pages"].as_u64()),
        (Some(allocs), Some(20))
    );

    // The text form says the same, one line per group.
    let out = inspector(&q, &["snapshot", "--by", "site"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.lines().any(|l| l.ends_with(&key)
            && l.split_whitespace().take(2).collect::<Vec<_>>() == ["20", &allocs.to_string()]),
        "{text}"
    );
}

#[test]
#[ignore = "boots QEMU: run with make test"]
fn watch_names_the_sites_of_the_pages_an_exit_reclaims() {
    let mut q = Qemu::boot();
    let child = inspector(
        &q,
        &[
            "watch",
            "--json-lines",
            "--interval",
            "50ms",
            "--duration",
            "5s",
        ],
    )
    .spawn()
    .unwrap();
    std::thread::sleep(Duration::from_millis(1000));
    q.send_line("leak 9 1");
    let said = q.expect("$ ", T);
    let (pid, pages, allocs) = leak_said(&said);
    assert_eq!(pages, 9);
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let events: Vec<Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let reclaimed: Vec<&Value> = events
        .iter()
        .filter(|e| e["kind"] == "exit_reclaim" && e["owner"] == pid)
        .collect();
    assert_eq!(reclaimed.len() as u64, allocs, "{events:?}");
    let leak_line = leak_alloc_line();
    for e in reclaimed {
        assert_eq!(
            site_of(&e["user_site"]),
            (
                "kernel/user/src/bin/leak.rs".to_string(),
                leak_line,
                "main".to_string()
            ),
            "{e}"
        );
        let (file, line, _) = site_of(&e["site"]);
        assert!(source_line(&file, line).contains("alloc_pages"), "{e}");
    }
}
