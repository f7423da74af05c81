//! Text and JSON renderings of snapshots and events for the headless commands (`snapshot`,
//! `watch`). Pure functions of the model, so the output formats are unit-tested here.
//!
//! Contract (issue 3): `snapshot --json` is an object with `capacity`, `count`, `generation`,
//! `pause_us`, `entries` (each `slot`, `pa`, `npages`, `owner`, `tag`), `pids` (each `pid`,
//! `name`, `state`, `allocs`, `pages`) and `events`.

use crate::model::{Entry, Event, EventKind, PidSummary, Snapshot};
use serde_json::{json, Value};
use std::fmt::Write;

/// The JSON object of `snapshot --json`.
pub fn snapshot_json(s: &Snapshot) -> Value {
    let h = &s.header;
    json!({
        "capacity": h.capacity,
        "count": h.count,
        "generation": h.generation,
        "high_water": h.high_water,
        "pause_us": s.pause_us,
        "failed_allocs": h.failed_allocs,
        "invalid_frees": h.invalid_frees,
        "ram_base": h.ram_base,
        "ram_pages": h.ram_pages,
        "alloc_base": h.alloc_base,
        "free_pages": h.free_pages,
        "tracked_pages": h.tracked_pages,
        "missed_events": s.missed_events,
        "entries": s.entries.iter().map(entry_json).collect::<Vec<_>>(),
        "pids": s.pids().iter().map(pid_json).collect::<Vec<_>>(),
        "events": s.events.iter().map(event_json).collect::<Vec<_>>(),
    })
}

fn entry_json(e: &Entry) -> Value {
    json!({ "slot": e.slot, "pa": e.pa, "npages": e.npages, "owner": e.owner, "tag": e.tag, "time": e.time })
}

fn pid_json(p: &PidSummary) -> Value {
    json!({ "pid": p.pid, "name": p.name, "state": p.state, "allocs": p.allocs, "pages": p.pages })
}

/// One event as a JSON object (also the line format of `watch --json-lines`).
pub fn event_json(e: &Event) -> Value {
    json!({
        "seq": e.seq, "kind": e.kind, "owner": e.owner, "slot": e.slot, "pa": e.pa,
        "npages": e.npages, "tag": e.tag, "time": e.time,
    })
}

/// The text of `snapshot`: header line, per-PID summary, then the entries.
pub fn snapshot_text(s: &Snapshot) -> String {
    let h = &s.header;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "tracker: {}/{} slots used, generation {}, high-water {}, pause {} us",
        h.count, h.capacity, h.generation, h.high_water, s.pause_us
    );
    let _ = writeln!(
        out,
        "pages: ram {} free {} tracked {}; failed allocs {}, invalid frees {}",
        h.ram_pages, h.free_pages, h.tracked_pages, h.failed_allocs, h.invalid_frees
    );
    let _ = writeln!(
        out,
        "\n{:>5}  {:<16} {:<9} {:>7} {:>7}  top tags",
        "PID", "NAME", "STATE", "ALLOCS", "PAGES"
    );
    for p in s.pids() {
        let tags: Vec<String> = p
            .tags
            .iter()
            .take(3)
            .map(|(t, n)| format!("{t}:{n}"))
            .collect();
        let _ = writeln!(
            out,
            "{:>5}  {:<16} {:<9} {:>7} {:>7}  {}",
            p.pid,
            p.name,
            p.state,
            p.allocs,
            p.pages,
            tags.join(" ")
        );
    }
    let _ = writeln!(
        out,
        "\n{:>5}  {:<12} {:>6} {:>5}  TAG",
        "SLOT", "PA", "PAGES", "OWNER"
    );
    for e in &s.entries {
        let _ = writeln!(
            out,
            "{:>5}  {:#012x} {:>6} {:>5}  {}",
            e.slot, e.pa, e.npages, e.owner, e.tag
        );
    }
    out
}

/// One line of `watch` for an event.
pub fn event_line(e: &Event) -> String {
    let what = match &e.kind {
        EventKind::Alloc => "alloc",
        EventKind::Free => "free",
        EventKind::ExitReclaim => "exit-reclaim",
        EventKind::AllocFailed => "alloc-failed",
        EventKind::InvalidFree => "invalid-free",
        EventKind::Other(name) => name.as_str(),
    };
    format!(
        "#{:<7} {:<13} pid={:<4} pa={:#x} npages={} tag={}",
        e.seq, what, e.owner, e.pa, e.npages, e.tag
    )
}

/// The per-PID summary line of `watch --summary`.
pub fn summary_line(s: &Snapshot) -> String {
    let pids: Vec<String> = s
        .pids()
        .iter()
        .map(|p| format!("{}({})={}p/{}a", p.pid, p.name, p.pages, p.allocs))
        .collect();
    format!(
        "summary: count={} free={} {}",
        s.header.count,
        s.header.free_pages,
        pids.join(" ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::tests::sample;

    #[test]
    fn json_has_the_contract_fields() {
        let mut s = sample();
        s.pause_us = 412;
        let v = snapshot_json(&s);
        for k in [
            "capacity",
            "count",
            "generation",
            "pause_us",
            "entries",
            "pids",
            "events",
        ] {
            assert!(v.get(k).is_some(), "missing {k}");
        }
        assert_eq!(v["capacity"], 8192);
        assert_eq!(v["pause_us"], 412);
        let e = &v["entries"][2];
        assert_eq!(
            (e["slot"].as_u64(), e["pa"].as_u64()),
            (Some(2), Some(0x8030_5000))
        );
        assert_eq!(
            (e["npages"].as_u64(), e["owner"].as_u64(), e["tag"].as_str()),
            (Some(2), Some(7), Some("heap"))
        );
        let leak = v["pids"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["pid"] == 7)
            .unwrap();
        assert_eq!(
            (
                leak["name"].as_str(),
                leak["allocs"].as_u64(),
                leak["pages"].as_u64()
            ),
            (Some("leak"), Some(3), Some(7))
        );
    }

    #[test]
    fn text_lists_pids_and_entries() {
        let t = snapshot_text(&sample());
        assert!(t.contains("tracker: 5/8192 slots used"), "{t}");
        assert!(
            t.lines()
                .any(|l| l.trim_start().starts_with("7  leak") && l.contains("heap:5")),
            "{t}"
        );
        assert!(
            t.lines()
                .any(|l| l.contains("0x0080305000") && l.ends_with("heap")),
            "{t}"
        );
    }

    #[test]
    fn event_lines_name_kind_pid_and_tag() {
        let e = Event {
            seq: 12,
            kind: EventKind::ExitReclaim,
            owner: 7,
            slot: None,
            pa: 0x8030_5000,
            npages: 2,
            tag: "heap".into(),
            time: 0,
        };
        let line = event_line(&e);
        assert!(
            line.contains("exit-reclaim") && line.contains("pid=7") && line.contains("tag=heap"),
            "{line}"
        );
        assert_eq!(event_json(&e)["kind"], "exit_reclaim");
    }
}
