//! The corruption check's tally: which members' key-space digests disagree with a majority.
//!
//! The leader periodically proposes a check entry (and a restarted member proposes one when
//! `initial_corrupt_check` is on). Every member that applies it hashes its key space right
//! there, at the same point of the log, so healthy members produce equal digests, and proposes
//! its report. Reports are applied like any entry, so every member tallies the same reports in
//! the same order and reaches the same verdict: once a majority of voters reported one digest,
//! every member that reported another gets a CORRUPT alarm. (etcd's leader asks its peers over
//! HTTP instead; going through the log needs no extra transport and keeps the verdict
//! replicated.)

use crate::api::HashReportRequest;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Checks whose reports are still tallied; older ones are forgotten.
const CHECKS_KEPT: usize = 8;

/// What a member reported: digest, revision and compacted revision.
type Digest = (u32, i64, i64);

/// One check's reports, and the majority's digest once there is one.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
struct Tally {
    reports: BTreeMap<u64, Digest>,
    majority: Option<Digest>,
}

/// The reports of recent checks, by check (the index of its entry).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HashChecks {
    checks: BTreeMap<u64, Tally>,
}

impl HashChecks {
    /// Starts tallying the check whose entry applied at `index`.
    pub fn start(&mut self, index: u64) {
        self.checks.entry(index).or_default();
        while self.checks.len() > CHECKS_KEPT {
            self.checks.pop_first();
        }
    }

    /// Records a report; returns the members found to disagree with a majority of `voters`,
    /// each once per check: when the majority forms, every member that reported otherwise;
    /// after that, a member whose first report disagrees. A repeated report (a member replaying
    /// its log) changes nothing, so a disarmed alarm stays disarmed.
    pub fn record(&mut self, report: &HashReportRequest, voters: &[u64]) -> Vec<u64> {
        let Some(tally) = self.checks.get_mut(&report.check) else { return Vec::new() };
        if tally.reports.contains_key(&report.member_id) {
            return Vec::new();
        }
        let digest = (report.hash, report.revision, report.compact_revision);
        tally.reports.insert(report.member_id, digest);
        if let Some(majority) = tally.majority {
            return if digest == majority { Vec::new() } else { vec![report.member_id] };
        }
        let quorum = voters.len() / 2 + 1;
        let mut counts: BTreeMap<Digest, usize> = BTreeMap::new();
        for (member, digest) in &tally.reports {
            if voters.contains(member) {
                *counts.entry(*digest).or_default() += 1;
            }
        }
        let Some(majority) = counts.into_iter().find(|(_, n)| *n >= quorum).map(|(d, _)| d) else {
            return Vec::new();
        };
        tally.majority = Some(majority);
        tally.reports.iter().filter(|(_, d)| **d != majority).map(|(m, _)| *m).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(check: u64, member_id: u64, hash: u32) -> HashReportRequest {
        HashReportRequest { check, member_id, hash, revision: 9, compact_revision: -1 }
    }

    #[test]
    fn the_minority_is_corrupt_once_a_majority_agrees() {
        let mut checks = HashChecks::default();
        let voters = [1, 2, 3];
        checks.start(5);
        assert!(checks.record(&report(5, 2, 0xbad), &voters).is_empty(), "no majority yet");
        assert!(checks.record(&report(5, 1, 0x600d), &voters).is_empty(), "one each");
        assert_eq!(checks.record(&report(5, 3, 0x600d), &voters), [2]);
        // Found in review: a replayed report raised a disarmed alarm again.
        assert!(checks.record(&report(5, 2, 0x600d), &voters).is_empty(), "decided once");
        assert!(checks.record(&report(5, 3, 0x600d), &voters).is_empty(), "decided once");
        assert!(checks.record(&report(4, 2, 0xbad), &voters).is_empty(), "unknown check");
        let mut revision_differs = report(5, 4, 0x600d);
        revision_differs.revision = 8;
        assert_eq!(checks.record(&revision_differs, &voters), [4], "a late learner is corrupt");
        assert!(checks.record(&revision_differs, &voters).is_empty());
    }

    #[test]
    fn old_checks_are_forgotten() {
        let mut checks = HashChecks::default();
        for index in 0..20 {
            checks.start(index);
        }
        assert!(checks.record(&report(3, 1, 1), &[1]).is_empty());
        assert_eq!(checks.checks.len(), CHECKS_KEPT);
    }
}
