//! Each client request takes effect at most once, even if its raft entry is committed twice.
//!
//! Raft does not deduplicate proposals. A follower forwards a client's proposal to the leader as
//! a message, and if the network delivers that message twice the leader appends it twice. (etcd
//! has the same property and relies on TCP never duplicating.) Every entry carries its request
//! header (proposer, boot nonce, sequence), so the state machine remembers which requests it
//! applied and skips a repeat.
//!
//! The memory is bounded and deterministic (part of the replicated state and of snapshots):
//! - Per proposer boot, the sequences applied within the last [`WINDOW`] below the highest.
//!   A sequence older than that counts as applied.
//! - At most [`BOOTS_PER_PROPOSER`] boots per proposer. The one applied longest ago is retired,
//!   and requests from retired boots are refused.
//!
//! Refusing is always safe: a refused request never takes effect, and its client can only see
//! a timeout, which is an unknown outcome. It costs availability only in the rare case where a
//! proposal sits in flight behind a whole window of later ones.

use super::RequestHeader;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// How many sequences below a boot's highest are remembered one by one.
pub const WINDOW: u64 = 4096;
/// How many boots per proposer are remembered before the oldest is retired.
pub const BOOTS_PER_PROPOSER: usize = 4;

/// The requests of one proposer boot that were applied.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
struct Window {
    highest: u64,
    applied: BTreeSet<u64>,
    /// The raft index at which this boot last had a request applied (for retiring).
    last_index: u64,
}

/// Everything one proposer's boots have had applied.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
struct Proposer {
    boots: BTreeMap<u64, Window>,
    retired: BTreeSet<u64>,
}

/// Which client requests were applied.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppliedRequests {
    proposers: BTreeMap<u64, Proposer>,
}

impl AppliedRequests {
    /// Records the request applied at raft `index`; false if it must not apply (it did before,
    /// or it comes from a retired boot or from before the window).
    pub fn admit(&mut self, header: RequestHeader, index: u64) -> bool {
        let proposer = self.proposers.entry(header.proposer).or_default();
        if proposer.retired.contains(&header.boot) {
            return false;
        }
        if !proposer.boots.contains_key(&header.boot) && proposer.boots.len() >= BOOTS_PER_PROPOSER
        {
            let oldest = proposer
                .boots
                .iter()
                .min_by_key(|(boot, w)| (w.last_index, **boot))
                .map(|(b, _)| *b);
            let oldest = oldest.expect("the map is full");
            proposer.boots.remove(&oldest);
            proposer.retired.insert(oldest);
        }
        let window = proposer.boots.entry(header.boot).or_default();
        let floor = window.highest.saturating_sub(WINDOW);
        if header.sequence <= floor || !window.applied.insert(header.sequence) {
            return false;
        }
        window.highest = window.highest.max(header.sequence);
        window.last_index = index;
        let floor = window.highest.saturating_sub(WINDOW);
        window.applied = window.applied.split_off(&(floor + 1));
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(proposer: u64, boot: u64, sequence: u64) -> RequestHeader {
        RequestHeader { proposer, boot, sequence }
    }

    #[test]
    fn a_request_applies_once_in_any_order() {
        let mut applied = AppliedRequests::default();
        assert!(applied.admit(header(1, 7, 2), 10));
        assert!(
            applied.admit(header(1, 7, 1), 11),
            "an earlier sequence arriving late still applies"
        );
        assert!(!applied.admit(header(1, 7, 2), 12), "a repeat is refused");
        assert!(applied.admit(header(2, 7, 2), 13), "another proposer's sequence is its own");
    }

    #[test]
    fn sequences_below_the_window_are_refused() {
        let mut applied = AppliedRequests::default();
        assert!(applied.admit(header(1, 7, WINDOW + 10), 1));
        assert!(!applied.admit(header(1, 7, 5), 2));
        assert!(applied.admit(header(1, 7, 11), 3), "inside the window");
    }

    #[test]
    fn old_boots_retire_and_stay_refused() {
        let mut applied = AppliedRequests::default();
        for boot in 0..=BOOTS_PER_PROPOSER as u64 {
            assert!(applied.admit(header(1, boot, 1), boot + 1));
        }
        assert!(!applied.admit(header(1, 0, 2), 100), "the first boot was retired");
        assert!(applied.admit(header(1, BOOTS_PER_PROPOSER as u64, 2), 101));
    }
}
