//! Choosing the next PID. PID 0 is the kernel and `NO_PID` (`u32::MAX`) names no process; a
//! PID is never handed out while it is still in use (a live process or an unreaped zombie).
//! The counter moves up and wraps past `NO_PID` back to 1, so after 2^32 - 2 processes PIDs are
//! reused, but never the kernel's and never one still in use.

use tracker::abi::{Pid, NO_PID};

/// Takes the next PID from `counter` for which `in_use` is false, skipping 0 and `NO_PID`, and
/// leaves `counter` just past it. At most `max_in_use` PIDs may be in use (the size of the
/// process table); None, with `counter` unchanged, if no free PID turns up among the
/// `max_in_use + 2` candidates that then must contain one (so the caller refuses cleanly).
pub fn next_pid(counter: &mut Pid, max_in_use: usize, in_use: impl Fn(Pid) -> bool) -> Option<Pid> {
    let mut candidate = *counter;
    // 0 and NO_PID are adjacent (NO_PID wraps to 0): at most two reserved values in a row.
    for _ in 0..max_in_use.saturating_add(3) {
        let pid = candidate;
        candidate = candidate.wrapping_add(1);
        if pid != 0 && pid != NO_PID && !in_use(pid) {
            *counter = candidate;
            return Some(pid);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_up_from_one() {
        let mut c = 1;
        let got: Vec<Pid> = (0..5)
            .map(|_| next_pid(&mut c, 64, |_| false).unwrap())
            .collect();
        assert_eq!(got, [1, 2, 3, 4, 5]);
        assert_eq!(c, 6);
    }

    #[test]
    fn wraps_past_no_pid_and_the_kernel_to_one() {
        let mut c = NO_PID - 2;
        let got: Vec<Pid> = (0..4)
            .map(|_| next_pid(&mut c, 64, |_| false).unwrap())
            .collect();
        assert_eq!(got, [NO_PID - 2, NO_PID - 1, 1, 2]);
        let mut c = 0;
        assert_eq!(
            next_pid(&mut c, 64, |_| false),
            Some(1),
            "never the kernel's 0"
        );
        let mut c = NO_PID;
        assert_eq!(next_pid(&mut c, 64, |_| false), Some(1));
    }

    #[test]
    fn skips_pids_still_in_use_after_a_wrap() {
        // The shell (1) and a long-lived process (3) still run when the counter wraps.
        let live = [1, 3, 4];
        let mut c = NO_PID - 1;
        let mut next = || next_pid(&mut c, 64, |p| live.contains(&p)).unwrap();
        assert_eq!(next(), NO_PID - 1);
        assert_eq!(next(), 2);
        assert_eq!(next(), 5);
    }

    #[test]
    fn refuses_cleanly_when_every_candidate_is_in_use() {
        // A full table of 4 holding 5..9 is impossible; 4 in use among 5 candidates always
        // leaves one free.
        let mut c = 5;
        assert_eq!(next_pid(&mut c, 4, |p| (5..9).contains(&p)), Some(9));
        let mut c = 5;
        assert_eq!(next_pid(&mut c, 4, |_| true), None);
        assert_eq!(c, 5, "the counter does not move on a refusal");
        // Around the wrap: NO_PID and 0 are skipped and do not count against the bound.
        let live = [NO_PID - 2, NO_PID - 1, 1, 2];
        let mut c = NO_PID - 2;
        assert_eq!(next_pid(&mut c, 4, |p| live.contains(&p)), Some(3));
    }

    #[test]
    fn never_hands_out_zero_or_no_pid_nor_a_pid_in_use_over_many_wraps() {
        use std::collections::BTreeSet;
        let mut live: BTreeSet<Pid> = BTreeSet::new();
        let mut c = NO_PID - 40;
        let mut rng = 0x1234_5678u64;
        for _ in 0..5000 {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            if live.len() < 64 && !rng.is_multiple_of(3) {
                let p = next_pid(&mut c, 64, |p| live.contains(&p)).unwrap();
                assert!(p != 0 && p != NO_PID && !live.contains(&p), "{p}");
                live.insert(p);
            } else if let Some(&p) = live.iter().nth((rng >> 8) as usize % live.len().max(1)) {
                live.remove(&p);
            }
            if rng.is_multiple_of(97) {
                c = NO_PID - (rng % 70) as u32; // jump near the wrap again
            }
        }
    }
}
