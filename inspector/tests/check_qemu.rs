//! `inspector check` against the real kernel in QEMU: a freshly booted kernel passes (exit 0);
//! a `leak` that exits during the observation is reported as a `leak` finding with its PID and
//! exactly the pages it leaked (exit 1); the kernel keeps running afterwards. Each test boots its
//! own QEMU (killed by pid on drop) with timeouts.

mod common;

use common::cli::BIN;
use common::qemu::{kernel_elf, Qemu};
use serde_json::Value;
use std::process::{Command, Stdio};
use std::time::Duration;

const T: Duration = Duration::from_secs(20);

fn check_cmd(q: &Qemu, args: &[&str]) -> Command {
    let mut c = Command::new(BIN);
    c.args(["check", "--json", "--elf"])
        .arg(kernel_elf())
        .args(["--gdb", &format!("127.0.0.1:{}", q.gdb_port())])
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    c
}

#[test]
#[ignore = "boots QEMU: run with make test"]
fn a_clean_kernel_passes_and_a_leak_during_the_check_is_found() {
    let mut q = Qemu::boot();
    let out = check_cmd(&q, &[]).output().unwrap();
    let v: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    assert_eq!(
        out.status.code(),
        Some(0),
        "a freshly booted kernel has nothing wrong: {v} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(v["ok"], true);

    // Observe while a leaker allocates 7 pages, holds them 1 s and exits without freeing.
    let child = check_cmd(&q, &["--duration", "6s", "--interval", "100ms"])
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(800));
    q.send_line("leak 7 1");
    let said = q.expect("$ ", T);
    let pid: u64 = said
        .split("pid=")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no pid in the leak's output:\n{said}"));
    let out = child.wait_with_output().unwrap();
    let v: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{v} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let leaks: Vec<&Value> = v["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["kind"] == "leak")
        .collect();
    assert_eq!(leaks.len(), 1, "{v}");
    assert_eq!(leaks[0]["pid"].as_u64(), Some(pid), "{v}");
    assert_eq!(leaks[0]["pages"].as_u64(), Some(7), "{v}");
    assert_eq!(leaks[0]["name"], "leak", "{v}");
    // Allowed leaks pass; and the kernel still runs.
    q.run("mem", T);
}
