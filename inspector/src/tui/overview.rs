//! The overview's rows (no ratatui): one per PID of the latest snapshot, the kernel (pid 0)
//! always and first, each with its page history. `views::overview` draws them.

use crate::model::{PidSummary, ProcState, Snapshot, KERNEL_PID};

/// One overview row for a PID.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PidRow {
    pub summary: PidSummary,
    /// Pages per sample, oldest first, at most `app::HISTORY_LEN`.
    pub history: Vec<u64>,
}

/// The rows for snapshot `s`; `history_of(pid)` gives a PID's page series.
pub fn overview_rows(s: &Snapshot, history_of: impl Fn(u32) -> Vec<u64>) -> Vec<PidRow> {
    let mut pids = s.pids();
    if pids.first().is_none_or(|p| p.pid != KERNEL_PID) {
        pids.insert(
            0,
            PidSummary {
                pid: KERNEL_PID,
                name: "kernel".into(),
                state: ProcState::Kernel,
                allocs: 0,
                pages: 0,
                tags: Vec::new(),
            },
        );
    }
    pids.into_iter()
        .map(|summary| PidRow {
            history: history_of(summary.pid),
            summary,
        })
        .collect()
}
