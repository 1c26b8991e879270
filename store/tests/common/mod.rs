//! A member workload over the WAL and snapshot files, with a model of what it has acknowledged,
//! and the check that a recovery is consistent with that model. Shared by the crash-point test
//! and the randomized model test.

#![allow(dead_code)]

use std::path::Path;
use stead_store::disk::{Disk, MemDisk};
use stead_store::snap::Snapshotter;
use stead_store::wal::{Wal, WalConfig, WalPosition};
use stead_store::{recover, Entry, HardState, StoreError};

/// Where the member keeps its WAL and snapshots.
pub const WAL_DIR: &str = "member/wal";
/// See [`WAL_DIR`].
pub const SNAP_DIR: &str = "member/snap";
/// Small segments, so that workloads cut them often.
pub const CONFIG: WalConfig = WalConfig { segment_bytes: 160 };

/// The entry the workload writes at `index` in `term` (its data names both).
pub fn entry(index: u64, term: u64) -> Entry {
    let data = format!("{index}:{term}").into_bytes().into();
    Entry { index, term, data, ..Entry::default() }
}

/// A hard state with a term and commit index.
pub fn hard_state(term: u64, commit: u64) -> HardState {
    HardState { term, commit, ..HardState::default() }
}

/// The log and hard state as the workload believes them after some record.
#[derive(Clone, Debug, PartialEq)]
pub struct ModelState {
    /// `(index, term)` of every entry.
    pub log: Vec<(u64, u64)>,
    /// The latest hard state.
    pub hard_state: HardState,
}

/// One thing the member does.
#[derive(Clone, Debug)]
pub enum Step {
    /// Append these `(index, term)` entries, then the hard state `(term, commit)` if given.
    Append(Vec<(u64, u64)>, Option<(u64, u64)>),
    /// Sync the WAL.
    Sync,
    /// Save a snapshot at this index, write its marker, release old segments, purge snapshots.
    Snapshot(u64),
}

/// What the workload has done and had acknowledged.
#[derive(Clone, Debug)]
pub struct Model {
    /// The state after every record written, in order.
    pub states: Vec<ModelState>,
    /// `states[synced]` and everything before it were acknowledged durable.
    pub synced: usize,
    /// Snapshots whose file and marker were acknowledged, in order.
    pub acknowledged_snapshots: Vec<WalPosition>,
    /// Every snapshot the workload tried to save.
    pub attempted_snapshots: Vec<WalPosition>,
    /// The snapshot the member's log continues from (what it recovered, or last saved).
    pub base: WalPosition,
}

impl Model {
    /// A model starting from `state`, which is durable.
    pub fn starting_at(state: ModelState) -> Model {
        Model {
            states: vec![state],
            synced: 0,
            acknowledged_snapshots: Vec::new(),
            attempted_snapshots: Vec::new(),
            base: WalPosition::default(),
        }
    }

    /// The newest state.
    pub fn last(&self) -> &ModelState {
        self.states.last().expect("a model always has a state")
    }
}

/// A running member: its WAL, its snapshots and its model.
pub struct Member<D: Disk + Clone> {
    /// The WAL.
    pub wal: Wal<D>,
    /// The snapshot files.
    pub snaps: Snapshotter<D>,
    /// What it believes.
    pub model: Model,
}

impl<D: Disk + Clone> Member<D> {
    /// Creates a new member's WAL and snapshot directory.
    pub fn create(disk: D) -> Result<Member<D>, StoreError> {
        let wal = Wal::create(disk.clone(), Path::new(WAL_DIR), b"member", CONFIG)?;
        let snaps = Snapshotter::new(disk, Path::new(SNAP_DIR))?;
        let empty = ModelState { log: Vec::new(), hard_state: HardState::default() };
        Ok(Member { wal, snaps, model: Model::starting_at(empty) })
    }

    /// Runs one step, updating the model with what was written and acknowledged.
    pub fn step(&mut self, step: &Step) -> Result<(), StoreError> {
        match step {
            Step::Append(entries, hard) => {
                let mut state = self.model.last().clone();
                for &(index, term) in entries {
                    state.log.retain(|(i, _)| *i < index);
                    state.log.push((index, term));
                    self.model.states.push(state.clone());
                }
                if let Some((term, commit)) = *hard {
                    state.hard_state = hard_state(term, commit);
                    self.model.states.push(state);
                }
                let entries: Vec<Entry> = entries.iter().map(|&(i, t)| entry(i, t)).collect();
                self.wal.append(hard.map(|(t, c)| hard_state(t, c)).as_ref(), &entries)
            }
            Step::Sync => {
                self.wal.sync()?;
                self.model.synced = self.model.states.len() - 1;
                Ok(())
            }
            Step::Snapshot(index) => {
                let term = self.model.last().log.iter().find(|(i, _)| i == index).map(|(_, t)| *t);
                let position =
                    WalPosition { index: *index, term: term.expect("snapshot of a logged index") };
                self.model.attempted_snapshots.push(position);
                self.snaps.save(position, format!("state@{index}").as_bytes())?;
                self.wal.save_snapshot_marker(position)?;
                self.model.synced = self.model.states.len() - 1;
                self.model.acknowledged_snapshots.push(position);
                self.model.base = position;
                self.wal.release(*index, 2)?;
                self.snaps.purge(2).map(drop)
            }
        }
    }
}

/// How a member came to restart.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Restart {
    /// After a power loss: whatever survived is now durable.
    PowerLoss,
    /// After the process stopped: unsynced data is read back but is still not durable.
    Process,
}

/// Recovers a member from `disk` and checks it against `model`: recovery succeeds, the
/// recovered log and hard state are the model's state after some record at or after the last
/// acknowledged sync, the snapshot is one that was saved and no older than the newest
/// acknowledged one. Returns the member, continuing from the matching state; after a process
/// restart, the states between the durable one and the recovered one stay possible outcomes
/// of a later power loss.
pub fn recover_and_check(
    disk: MemDisk,
    model: &Model,
    restart: Restart,
    label: &str,
) -> Member<MemDisk> {
    let mut snaps = Snapshotter::new(disk.clone(), Path::new(SNAP_DIR))
        .unwrap_or_else(|e| panic!("{label}: {e}"));
    let recovered = recover(disk.clone(), Path::new(WAL_DIR), &mut snaps, CONFIG)
        .unwrap_or_else(|e| panic!("{label}: recovery failed: {e}"));
    let snapshot = recovered.snapshot.as_ref().map_or(WalPosition::default(), |s| s.position);
    if let Some(loaded) = &recovered.snapshot {
        assert!(
            model.attempted_snapshots.contains(&snapshot),
            "{label}: unknown snapshot {snapshot:?}"
        );
        assert_eq!(loaded.data, format!("state@{}", snapshot.index).into_bytes(), "{label}");
    }
    if let Some(newest) = model.acknowledged_snapshots.last() {
        assert!(
            snapshot >= *newest,
            "{label}: snapshot {snapshot:?} older than acknowledged {newest:?}"
        );
    }
    let got: Vec<(u64, u64)> =
        recovered.contents.entries.iter().map(|e| (e.index, e.term)).collect();
    for e in &recovered.contents.entries {
        assert_eq!(e.data, entry(e.index, e.term).data, "{label}: entry {} damaged", e.index);
    }
    let matches = |state: &&ModelState| {
        let after: Vec<(u64, u64)> =
            state.log.iter().copied().filter(|(i, _)| *i > snapshot.index).collect();
        after == got && state.hard_state == recovered.contents.hard_state
    };
    let Some(position) = model.states[model.synced..].iter().position(|state| matches(&state))
    else {
        panic!(
            "{label}: recovered {got:?} / {:?} is no state at or after the last sync",
            recovered.contents.hard_state
        );
    };
    let recovered_at = model.synced + position;
    let mut continued = Model::starting_at(model.states[recovered_at].clone());
    if restart == Restart::Process {
        continued.states = model.states[model.synced..=recovered_at].to_vec();
    }
    continued.acknowledged_snapshots = model.acknowledged_snapshots.clone();
    continued.attempted_snapshots = model.attempted_snapshots.clone();
    continued.base = snapshot;
    Member { wal: recovered.wal, snaps, model: continued }
}
