//! Every text and JSON rendering of the commands' output, in one place: pure functions of the
//! model and the debugger's results, so the formats are unit-tested here. JSON goes through
//! serde (`Serialize` on the model types and on the records below); nothing builds JSON by hand.
//!
//! Contract: `snapshot --json` is an object with `capacity`, `count`, `generation`,
//! `pause_us`, `entries` (each `slot`, `pa`, `npages`, `owner`, `tag`, and where the kernel
//! records them `site` and, for pages a program asked for, `user_site`, each
//! `{function, file, line}`), `pids` (each `pid`, `name`, `state`, `allocs`, `pages`) and
//! `events` (entries' fields, sites included); with `--by`, also `by` and `groups` (each `key`,
//! `allocs`, `pages`); `watch --json-lines` prints one event
//! object per line; `break --json` one hit object per line; `step --json` one line object per
//! visited line; `diff --json` an object with `added` and `removed` entry lists, `by_pid`
//! and `by_tag` page changes.

use crate::debugger::Args;
use crate::model::check::{CheckRun, Finding};
use crate::model::{
    Diff, Entry, Event, EventKind, Group, GroupBy, PidChange, PidSummary, Process, ReadPath,
    Snapshot, TagChange,
};
use serde::Serialize;
use serde_json::Value;
use std::fmt::Write;
use std::time::Duration;

/// The object of `snapshot --json`.
#[derive(Serialize)]
struct SnapshotRecord<'a> {
    /// `gdb` (halted reads through the stub) or `ram` (the RAM file, no halt).
    source: ReadPath,
    capacity: u64,
    count: u64,
    generation: u64,
    high_water: u64,
    pause_us: u64,
    failed_allocs: u64,
    invalid_frees: u64,
    ram_base: u64,
    ram_pages: u64,
    alloc_base: u64,
    free_pages: u64,
    tracked_pages: u64,
    missed_events: u64,
    entries: &'a [Entry],
    pids: Vec<PidSummary>,
    events: &'a [Event],
}

/// The JSON object of `snapshot --json`.
pub fn snapshot_json(s: &Snapshot) -> Value {
    let h = &s.header;
    to_value(&SnapshotRecord {
        source: s.read_path,
        capacity: h.capacity,
        count: h.count,
        generation: h.generation,
        high_water: h.high_water,
        pause_us: s.pause_us,
        failed_allocs: h.failed_allocs,
        invalid_frees: h.invalid_frees,
        ram_base: h.ram_base,
        ram_pages: h.ram_pages,
        alloc_base: h.alloc_base,
        free_pages: h.free_pages,
        tracked_pages: h.tracked_pages,
        missed_events: s.missed_events,
        entries: &s.entries,
        pids: s.pids(),
        events: &s.events,
    })
}

/// The object of `snapshot --by BY --json`: the snapshot's, plus `by` and its `groups`.
pub fn snapshot_groups_json(s: &Snapshot, by: GroupBy) -> Value {
    let mut v = snapshot_json(s);
    v["by"] = to_value(&by);
    v["groups"] = to_value(&s.groups(by));
    v
}

/// The text of `snapshot --by BY`: one line per group, most pages first, like
/// `/proc/allocinfo`, then the total.
pub fn groups_text(s: &Snapshot, by: GroupBy) -> String {
    let groups: Vec<Group> = s.groups(by);
    let what = match by {
        GroupBy::Site => "SITE",
        GroupBy::Tag => "TAG",
        GroupBy::Pid => "PID NAME",
    };
    let mut out = format!("{:>7} {:>7}  {what}\n", "PAGES", "ALLOCS");
    for g in &groups {
        let _ = writeln!(out, "{:>7} {:>7}  {}", g.pages, g.allocs, g.key);
    }
    let _ = writeln!(
        out,
        "{:>7} {:>7}  total ({} groups)",
        groups.iter().map(|g| g.pages).sum::<u64>(),
        groups.iter().map(|g| g.allocs).sum::<u64>(),
        groups.len()
    );
    out
}

/// Serializes a record whose types cannot fail to serialize (no maps with non-string keys).
fn to_value<T: Serialize>(v: &T) -> Value {
    serde_json::to_value(v).expect("plain records serialize")
}

/// One event as a JSON object (also the line format of `watch --json-lines`).
pub fn event_json(e: &Event) -> Value {
    to_value(e)
}

/// The text of `snapshot`: header line, per-PID summary, then the entries.
pub fn snapshot_text(s: &Snapshot) -> String {
    let h = &s.header;
    let mut out = String::new();
    if h.bare {
        // The chapter's table alone: no generation, counters or RAM figures to show.
        let _ = writeln!(
            out,
            "tracker: {}/{} slots used (the chapter's table alone: no tracker header), pause {} us",
            h.count, h.capacity, s.pause_us
        );
        let _ = writeln!(out, "pages: tracked {}", h.tracked_pages);
    } else {
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
    }
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
            p.state.to_string(),
            p.allocs,
            p.pages,
            tags.join(" ")
        );
    }
    // The site column only for a kernel that records sites.
    let sites = s.entries.iter().any(|e| e.site.is_some());
    let _ = writeln!(
        out,
        "\n{:>5}  {:<12} {:>6} {:>5}  {}",
        "SLOT",
        "PA",
        "PAGES",
        "OWNER",
        if sites {
            "TAG              SITE"
        } else {
            "TAG"
        }
    );
    for e in s.entries.iter() {
        let _ = write!(
            out,
            "{:>5}  {:#012x} {:>6} {:>5}  ",
            e.slot, e.pa, e.npages, e.owner
        );
        let _ = if sites {
            writeln!(out, "{:<16} {}", e.tag, e.site_label())
        } else {
            writeln!(out, "{}", e.tag)
        };
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
    let site = match (&e.site, &e.user_site) {
        (None, None) => String::new(),
        _ => format!(" site={}", e.site_label()),
    };
    format!(
        "#{:<7} {:<13} pid={:<4} pa={:#x} npages={} tag={}{site}",
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

/// The per-PID summary object of `watch --json-lines --summary`.
pub fn summary_json(s: &Snapshot) -> Value {
    #[derive(Serialize)]
    struct SummaryRecord {
        summary: Vec<PidSummary>,
        count: u64,
    }
    to_value(&SummaryRecord {
        summary: s.pids(),
        count: s.header.count,
    })
}

/// `watch`'s note that the guest rebooted (its boot nonce changed) since the last snapshot.
pub fn rebooted_line(json: bool) -> String {
    if json {
        #[derive(Serialize)]
        struct RebootRecord {
            rebooted: bool,
        }
        to_value(&RebootRecord { rebooted: true }).to_string()
    } else {
        "# the guest rebooted: what follows is the new boot's".to_string()
    }
}

/// `watch`'s note that the ring overran between two snapshots.
pub fn missed_events_line(missed: u64, json: bool) -> String {
    if json {
        #[derive(Serialize)]
        struct MissedRecord {
            missed_events: u64,
        }
        to_value(&MissedRecord {
            missed_events: missed,
        })
        .to_string()
    } else {
        format!("# missed {missed} events (ring overran between snapshots)")
    }
}

/// `watch`'s last line: the share of wall time the guest ran (1 − paused/elapsed).
pub fn running_share_line(paused_us: u64, wall_us: u64, json: bool) -> String {
    let wall_us = wall_us.max(1);
    let share = 100.0 * (1.0 - paused_us as f64 / wall_us as f64);
    if json {
        #[derive(Serialize)]
        struct ShareRecord {
            running_share: f64,
            paused_us: u64,
            wall_us: u64,
        }
        to_value(&ShareRecord {
            running_share: share / 100.0,
            paused_us,
            wall_us,
        })
        .to_string()
    } else {
        format!("# guest running {share:.2}% of wall time ({paused_us} us paused in {wall_us} us)")
    }
}

/// Where a debugger stop is: the function and source position to show.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Place {
    pub function: Option<String>,
    pub file: Option<String>,
    pub line: Option<u32>,
}

/// The arguments of one inlined call at a hit's pc.
#[derive(Serialize)]
struct InlinedRecord<'a> {
    function: &'a str,
    args: &'a Args,
}

/// One `break --json` line.
#[derive(Serialize)]
struct HitRecord<'a> {
    breakpoint: Option<u32>,
    /// The hart that hit it (when the target says).
    #[serde(skip_serializing_if = "Option::is_none")]
    hart: Option<u32>,
    /// The process running on that hart (when the process table says).
    #[serde(skip_serializing_if = "Option::is_none")]
    pid: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    process: Option<&'a str>,
    function: Option<&'a str>,
    file: Option<&'a str>,
    line: Option<u32>,
    args: &'a Args,
    pc: u64,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    inlined_args: Vec<InlinedRecord<'a>>,
}

/// What `break` shows of one hit.
pub struct Hit<'a> {
    /// 1 for the first hit.
    pub n: u64,
    pub breakpoint: Option<u32>,
    /// The hart that stopped, when the target says.
    pub hart: Option<u32>,
    /// The process running on that hart, when the process table says (None: the hart was
    /// idle, or the kernel does not record harts).
    pub process: Option<&'a Process>,
    pub place: &'a Place,
    pub pc: u64,
    pub args: &'a Args,
    /// Arguments of the inlined calls at the pc, innermost first.
    pub inlined: &'a [(String, Args)],
}

/// One hit of `break`: a JSON object, or the text line `hit N [hart H NAME(PID)]: function
/// (file:line) pc=… args` (`[hart H]` when the target names the hart that stopped, with the
/// process it was running when known; JSON: `hart`, `pid`, `process`).
/// `inlined` (innermost first) is shown only when the pc is in inlined code whose calls have
/// arguments.
pub fn hit_line(hit: &Hit, json: bool) -> String {
    let &Hit {
        n,
        breakpoint,
        hart,
        process,
        place,
        pc,
        args,
        inlined,
    } = hit;
    if json {
        return to_value(&HitRecord {
            breakpoint,
            hart,
            pid: process.map(|p| p.pid),
            process: process.map(|p| p.name.as_str()),
            function: place.function.as_deref(),
            file: place.file.as_deref(),
            line: place.line,
            args,
            pc,
            inlined_args: inlined
                .iter()
                .map(|(f, a)| InlinedRecord {
                    function: f,
                    args: a,
                })
                .collect(),
        })
        .to_string();
    }
    let inl: String = inlined
        .iter()
        .map(|(f, a)| format!(" | in {f}: {}", a.text()))
        .collect();
    let on = match (hart, process) {
        (Some(h), Some(p)) => format!(" [hart {h} {}]", p.label()),
        (Some(h), None) => format!(" [hart {h}]"),
        (None, _) => String::new(),
    };
    format!(
        "hit {n}{on}: {} ({}:{}) pc={:#x} {}{inl}",
        place.function.as_deref().unwrap_or("??"),
        place.file.as_deref().unwrap_or("??"),
        place.line.unwrap_or(0),
        pc,
        args.text()
    )
}

/// One line `step` visited.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct StepLine {
    pub file: Option<String>,
    pub line: Option<u32>,
    pub function: Option<String>,
    /// The source text of the line ("" when the file cannot be read).
    pub text: String,
    pub pc: u64,
}

/// The first `step --json` object: the stop, with the location asked for and the arguments.
#[derive(Serialize)]
struct FirstStepRecord<'a> {
    #[serde(flatten)]
    line: &'a StepLine,
    stopped: &'a str,
    args: &'a Args,
}

/// The last `step --json` object when the function returned.
#[derive(Serialize)]
struct ReturnedRecord<'a> {
    #[serde(flatten)]
    line: &'a StepLine,
    returned: bool,
}

/// The first line of `step`: where the breakpoint stopped (text: a `stopped in …` line, then
/// the line itself).
pub fn step_first_line(l: &StepLine, from: &str, args: &Args, json: bool) -> String {
    if json {
        to_value(&FirstStepRecord {
            line: l,
            stopped: from,
            args,
        })
        .to_string()
    } else {
        format!("stopped in {from} {}\n{}", args.text(), step_line(l, false))
    }
}

/// One visited line of `step`: JSON, or `file:line  function | source text`.
pub fn step_line(l: &StepLine, json: bool) -> String {
    if json {
        return to_value(l).to_string();
    }
    let at = format!(
        "{}:{}",
        l.file.as_deref().unwrap_or("??"),
        l.line.unwrap_or(0)
    );
    format!(
        "{at:<48} {:<40} | {}",
        l.function.as_deref().unwrap_or("??"),
        l.text
    )
}

/// The line of `step` when the function returned (to `l`).
pub fn step_returned_line(l: &StepLine, from: &str, json: bool) -> String {
    if json {
        return to_value(&ReturnedRecord {
            line: l,
            returned: true,
        })
        .to_string();
    }
    let to = match (&l.file, l.line) {
        (Some(f), Some(n)) => format!("{f}:{n}"),
        _ => format!("{:#x}", l.pc),
    };
    format!("{from} returned to {to}")
}

/// The report of `check`: one line per finding and a `check:` summary line, or one JSON
/// object `{"findings": [...], "ok", "snapshots", "duration_ms", "missed_events"}`.
pub fn check_report(findings: &[Finding], run: &CheckRun, took: Duration, json: bool) -> String {
    if json {
        #[derive(Serialize)]
        struct CheckRecord<'a> {
            findings: &'a [Finding],
            ok: bool,
            snapshots: u64,
            duration_ms: u64,
            missed_events: u64,
        }
        let mut text = serde_json::to_string_pretty(&CheckRecord {
            findings,
            ok: findings.is_empty(),
            snapshots: run.snapshots(),
            duration_ms: took.as_millis() as u64,
            missed_events: run.missed_events(),
        })
        .expect("plain records serialize");
        text.push('\n');
        return text;
    }
    let mut out = String::new();
    for f in findings {
        let who = match (f.pid, &f.name) {
            (Some(pid), Some(name)) => format!(" pid={pid} ({name})"),
            (Some(pid), None) => format!(" pid={pid}"),
            _ => String::new(),
        };
        let tags = if f.tags.is_empty() {
            String::new()
        } else {
            format!(" tags={}", f.tags.join(","))
        };
        let _ = writeln!(
            out,
            "{}{who} pages={} allocs={}{tags}: {}",
            f.kind.as_str(),
            f.pages,
            f.allocs,
            f.detail
        );
    }
    let verdict = match findings.len() {
        0 => "ok, nothing wrong".to_string(),
        1 => "1 finding".to_string(),
        n => format!("{n} findings"),
    };
    let missed = match run.missed_events() {
        0 => String::new(),
        n => format!("; {n} events overwritten before they were read"),
    };
    let _ = writeln!(
        out,
        "check: {verdict} in {} snapshot{} over {:.1} s{missed}",
        run.snapshots(),
        if run.snapshots() == 1 { "" } else { "s" },
        took.as_secs_f64()
    );
    out
}

/// What `diff` reports: the two moments (as given), their tracked pages, and what changed.
pub struct DiffReport<'a> {
    pub a: &'a str,
    pub b: &'a str,
    pub pages_a: u64,
    pub pages_b: u64,
    pub diff: &'a Diff,
    pub by_pid: Vec<PidChange>,
    pub by_tag: Vec<TagChange>,
}

/// The object of `diff --json`.
pub fn diff_json(r: &DiffReport) -> Value {
    #[derive(Serialize)]
    struct DiffRecord<'a> {
        a: &'a str,
        b: &'a str,
        pages_a: u64,
        pages_b: u64,
        grew: bool,
        added: &'a [Entry],
        removed: &'a [Entry],
        by_pid: &'a [PidChange],
        by_tag: &'a [TagChange],
    }
    to_value(&DiffRecord {
        a: r.a,
        b: r.b,
        pages_a: r.pages_a,
        pages_b: r.pages_b,
        grew: r.pages_b > r.pages_a,
        added: &r.diff.added,
        removed: &r.diff.removed,
        by_pid: &r.by_pid,
        by_tag: &r.by_tag,
    })
}

/// The text of `diff`: the totals, per-PID and per-tag tables, then the entries added and
/// removed.
pub fn diff_text(r: &DiffReport) -> String {
    let mut out = String::new();
    let net = r.pages_b as i64 - r.pages_a as i64;
    let _ = writeln!(
        out,
        "tracked pages: {} ({}) → {} ({}): {net:+}",
        r.pages_a, r.a, r.pages_b, r.b
    );
    if r.diff.added.is_empty() && r.diff.removed.is_empty() {
        let _ = writeln!(out, "no allocation added or removed");
        return out;
    }
    let _ = writeln!(
        out,
        "\n{:>5}  {:<16} {:>7} {:>7} {:>7}",
        "PID", "NAME", "GAINED", "LOST", "NET"
    );
    for p in &r.by_pid {
        let _ = writeln!(
            out,
            "{:>5}  {:<16} {:>7} {:>7} {:>+7}",
            p.pid, p.name, p.gained_pages, p.lost_pages, p.net_pages
        );
    }
    let _ = writeln!(
        out,
        "\n{:<24} {:>7} {:>7} {:>7}",
        "TAG", "GAINED", "LOST", "NET"
    );
    for t in &r.by_tag {
        let _ = writeln!(
            out,
            "{:<24} {:>7} {:>7} {:>+7}",
            t.tag, t.gained_pages, t.lost_pages, t.net_pages
        );
    }
    for (what, list) in [("added", &r.diff.added), ("removed", &r.diff.removed)] {
        let _ = writeln!(out, "\n{what} ({}):", list.len());
        for e in list {
            let _ = writeln!(
                out,
                "{:>5}  {:#012x} {:>6} {:>5}  {}",
                e.slot, e.pa, e.npages, e.owner, e.tag
            );
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::tests::sample;

    #[test]
    fn a_hit_names_the_process_on_the_hart_that_stopped() {
        let place = Place {
            function: Some("track_alloc".into()),
            file: Some("kernel/src/mm/tracker.rs".into()),
            line: Some(85),
        };
        let args = Args::default();
        let mut churn = crate::model::tests::process(7, "churn", "running");
        churn.hart = Some(1);
        let mut hit = Hit {
            n: 2,
            breakpoint: Some(1),
            hart: Some(1),
            process: Some(&churn),
            place: &place,
            pc: 0x8020_4210,
            args: &args,
            inlined: &[],
        };
        let text = hit_line(&hit, false);
        assert!(
            text.starts_with("hit 2 [hart 1 churn(7)]: track_alloc"),
            "{text}"
        );
        let v: Value = serde_json::from_str(&hit_line(&hit, true)).unwrap();
        assert_eq!((v["hart"].as_u64(), v["pid"].as_u64()), (Some(1), Some(7)));
        assert_eq!(v["process"], "churn");
        // An idle hart (or a kernel without harts in its table): the hart alone.
        hit.process = None;
        assert!(hit_line(&hit, false).starts_with("hit 2 [hart 1]: "));
        let v: Value = serde_json::from_str(&hit_line(&hit, true)).unwrap();
        assert!(v.get("pid").is_none() && v.get("process").is_none(), "{v}");
    }

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
    fn a_bare_table_shows_no_counters_it_does_not_have() {
        let mut s = sample();
        s.header.bare = true;
        let t = snapshot_text(&s);
        assert!(
            t.contains("slots used (the chapter's table alone: no tracker header)"),
            "{t}"
        );
        assert!(!t.contains("generation") && !t.contains("free "), "{t}");
        assert!(!snapshot_text(&sample()).contains("table alone"));
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
            site: None,
            user_site: None,
        };
        let line = event_line(&e);
        assert!(
            line.contains("exit-reclaim") && line.contains("pid=7") && line.contains("tag=heap"),
            "{line}"
        );
        assert_eq!(event_json(&e)["kind"], "exit_reclaim");
    }

    #[test]
    fn check_report_text_and_json() {
        use crate::model::check::{CheckRun, FindingKind};
        let mut run = CheckRun::new();
        run.observe(sample());
        let f = Finding {
            kind: FindingKind::Leak,
            pid: Some(8),
            name: Some("leak".into()),
            pages: 6,
            allocs: 3,
            tags: vec!["alloc_pages:4".into(), "user_stack:2".into()],
            detail: "exited still owning 6 pages".into(),
        };
        let took = Duration::from_millis(1500);
        let text = check_report(std::slice::from_ref(&f), &run, took, false);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines,
            [
                "leak pid=8 (leak) pages=6 allocs=3 tags=alloc_pages:4,user_stack:2: exited \
                 still owning 6 pages",
                "check: 1 finding in 1 snapshot over 1.5 s"
            ]
        );
        assert_eq!(
            check_report(&[], &run, took, false),
            "check: ok, nothing wrong in 1 snapshot over 1.5 s\n"
        );
        let v: Value = serde_json::from_str(&check_report(&[f], &run, took, true)).unwrap();
        assert_eq!(
            (v["ok"].as_bool(), v["snapshots"].as_u64()),
            (Some(false), Some(1))
        );
        assert_eq!(v["findings"][0]["kind"], "leak");
        assert_eq!(v["duration_ms"], 1500);
    }
}
