//! Randomized model test of the WAL and snapshot files: interleavings of appends (with raft
//! overwrites), syncs, segment cuts, snapshots with release and purge, injected write and sync
//! failures, power losses with random crash outcomes, and clean restarts. After every restart the
//! recovered state must match the model (see `common::recover_and_check`), and the member goes on
//! from there.

mod common;

use common::{recover_and_check, Member, Restart, Step};
use proptest::prelude::*;
use stead_store::disk::{FaultKind, MemDisk};

#[derive(Clone, Debug)]
enum Op {
    /// Append `count` entries starting `back` entries before the end (an overwrite when > 0).
    Append {
        back: u64,
        count: u64,
        with_hard_state: bool,
    },
    Sync,
    /// Snapshot at one of the entries at or after the newest snapshot.
    Snapshot {
        pick: usize,
    },
    Fault(FaultKind),
    /// Power loss; crash decisions drawn from these numbers, cycled.
    Crash(Vec<usize>),
    /// Clean restart: recover from the disk as it is.
    Restart,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        8 => (0u64..3, 1u64..4, any::<bool>())
            .prop_map(|(back, count, with_hard_state)| Op::Append { back, count, with_hard_state }),
        4 => Just(Op::Sync),
        1 => any::<usize>().prop_map(|pick| Op::Snapshot { pick }),
        1 => prop::sample::select(&[FaultKind::Write, FaultKind::Sync][..]).prop_map(Op::Fault),
        2 => prop::collection::vec(any::<usize>(), 1..8).prop_map(Op::Crash),
        1 => Just(Op::Restart),
    ]
}

/// Turns a generated op into a member step, given what the member has written.
fn resolve(member: &Member<MemDisk>, op: &Op) -> Option<Step> {
    let state = member.model.last();
    // The member's log continues from the snapshot it runs on; entries below it are history.
    let snapshot = member.model.base.index;
    let last = state.log.last().map_or(snapshot, |(i, _)| *i).max(snapshot);
    let term =
        state.log.iter().map(|(_, t)| *t).max().unwrap_or(1).max(state.hard_state.term).max(1);
    match *op {
        Op::Append { back, count, with_hard_state } => {
            // Raft never rewrites what a snapshot covers, and an overwrite comes with a new term.
            let start = (last + 1).saturating_sub(back).max(snapshot + 1);
            let term = if start <= last { term + 1 } else { term };
            let entries = (start..start + count).map(|index| (index, term)).collect();
            Some(Step::Append(entries, with_hard_state.then_some((term, start - 1))))
        }
        Op::Sync => Some(Step::Sync),
        Op::Snapshot { pick } => {
            let candidates: Vec<u64> =
                state.log.iter().map(|(i, _)| *i).filter(|&i| i >= snapshot).collect();
            (!candidates.is_empty()).then(|| Step::Snapshot(candidates[pick % candidates.len()]))
        }
        _ => None,
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1024, ..ProptestConfig::default() })]

    #[test]
    fn wal_recovers_what_the_model_allows(ops in prop::collection::vec(op(), 1..60)) {
        let disk = MemDisk::new();
        let mut member = Member::create(disk.clone()).expect("create");
        let mut failed = false;
        for (number, op) in ops.iter().enumerate() {
            let label = format!("op {number} {op:?}");
            match op {
                Op::Crash(choices) => {
                    let mut choices = choices.iter().cycle();
                    disk.crash(&mut |options| choices.next().expect("cycled") % options);
                    disk.clear_faults();
                    member = recover_and_check(disk.clone(), &member.model, Restart::PowerLoss, &label);
                    failed = false;
                }
                Op::Restart => {
                    disk.clear_faults();
                    member = recover_and_check(disk.clone(), &member.model, Restart::Process, &label);
                    failed = false;
                }
                Op::Fault(kind) => disk.inject(*kind),
                _ if failed => {}
                _ => {
                    if let Some(step) = resolve(&member, op) {
                        // A failed step leaves the member unusable until it restarts.
                        failed = member.step(&step).is_err();
                    }
                }
            }
        }
        disk.clear_faults();
        recover_and_check(disk.clone(), &member.model, Restart::Process, "final restart");
    }
}
