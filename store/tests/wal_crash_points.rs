//! Exhaustive crash-point test of the WAL and snapshot files together.
//!
//! A scripted member workload (appends, syncs, segment cuts, a raft overwrite, snapshots with
//! their WAL markers, release and purge) runs on a `MemDisk` that loses power before its N-th
//! mutating operation, for every N. For every crash point, every outcome the disk can produce is
//! tried: which unsynced name changes survive, how many unsynced writes of each file survive,
//! and every length of a torn write. Each is recovered, and then:
//! - recovery never panics, and succeeds whenever the WAL had been created;
//! - the recovered log and hard state equal the workload's state after some record written at
//!   or after the last acknowledged sync: nothing acknowledged is lost, nothing half-written
//!   appears;
//! - the recovered snapshot is one the workload saved, no older than the newest one whose
//!   marker was acknowledged;
//! - the recovered WAL accepts and keeps a new append.

use std::cell::Cell;
use std::io;
use std::path::Path;
use std::rc::Rc;
use stead_store::disk::{Disk, MemDisk};
use stead_store::snap::Snapshotter;
use stead_store::wal::{Wal, WalConfig, WalPosition};
use stead_store::{recover, Entry, HardState, StoreError};

const WAL_DIR: &str = "member/wal";
const SNAP_DIR: &str = "member/snap";
const CONFIG: WalConfig = WalConfig { segment_bytes: 160 };

/// A MemDisk that loses power once its budget of mutating operations is spent: that operation
/// and every later one fail, as if the process had died there.
#[derive(Clone)]
struct PowerCut {
    disk: MemDisk,
    budget: Rc<Cell<usize>>,
}

impl PowerCut {
    fn spend(&self) -> io::Result<()> {
        match self.budget.get() {
            0 => Err(io::Error::other("power lost")),
            left => {
                self.budget.set(left - 1);
                Ok(())
            }
        }
    }
}

impl Disk for PowerCut {
    fn create_dir_all(&mut self, dir: &Path) -> io::Result<()> {
        self.spend()?;
        self.disk.create_dir_all(dir)
    }
    fn list(&mut self, dir: &Path) -> io::Result<Vec<String>> {
        self.disk.list(dir)
    }
    fn create(&mut self, path: &Path) -> io::Result<()> {
        self.spend()?;
        self.disk.create(path)
    }
    fn exists(&mut self, path: &Path) -> io::Result<bool> {
        self.disk.exists(path)
    }
    fn len(&mut self, path: &Path) -> io::Result<u64> {
        self.disk.len(path)
    }
    fn read_at(&mut self, path: &Path, offset: u64, buf: &mut [u8]) -> io::Result<usize> {
        self.disk.read_at(path, offset, buf)
    }
    fn write_at(&mut self, path: &Path, offset: u64, data: &[u8]) -> io::Result<()> {
        self.spend()?;
        self.disk.write_at(path, offset, data)
    }
    fn set_len(&mut self, path: &Path, len: u64) -> io::Result<()> {
        self.spend()?;
        self.disk.set_len(path, len)
    }
    fn allocate(&mut self, path: &Path, len: u64) -> io::Result<()> {
        self.spend()?;
        self.disk.allocate(path, len)
    }
    fn sync(&mut self, path: &Path) -> io::Result<()> {
        self.spend()?;
        self.disk.sync(path)
    }
    fn rename(&mut self, from: &Path, to: &Path) -> io::Result<()> {
        self.spend()?;
        self.disk.rename(from, to)
    }
    fn remove(&mut self, path: &Path) -> io::Result<()> {
        self.spend()?;
        self.disk.remove(path)
    }
    fn sync_dir(&mut self, dir: &Path) -> io::Result<()> {
        self.spend()?;
        self.disk.sync_dir(dir)
    }
}

fn entry(index: u64, term: u64) -> Entry {
    let mut entry = Entry::default();
    (entry.index, entry.term) = (index, term);
    entry.data = format!("{index}:{term}").into_bytes().into();
    entry
}

fn hard_state(term: u64, commit: u64) -> HardState {
    let mut state = HardState::default();
    (state.term, state.commit) = (term, commit);
    state
}

/// The log and hard state as the workload believes them, after some record.
#[derive(Clone, Debug, PartialEq)]
struct ModelState {
    log: Vec<(u64, u64)>,
    hard_state: HardState,
}

enum Step {
    Append(Vec<(u64, u64)>, Option<(u64, u64)>),
    Sync,
    Snapshot(u64),
}

fn script() -> Vec<Step> {
    use Step::*;
    vec![
        Append(vec![(1, 1), (2, 1)], Some((1, 0))),
        Sync,
        Append(vec![(3, 1)], Some((1, 2))),
        Append(vec![(4, 1), (5, 1)], None),
        Sync,
        Append(vec![(4, 2), (5, 2), (6, 2)], Some((2, 3))),
        Sync,
        Snapshot(4),
        Append(vec![(7, 2)], Some((2, 6))),
        Append(vec![(8, 2)], None),
        Sync,
        Snapshot(7),
        Append(vec![(9, 2)], None),
        Sync,
    ]
}

/// What the workload did and believes before the power cut.
struct Outcome {
    created: bool,
    /// The state after every record, in order; `states[0]` is the empty start.
    states: Vec<ModelState>,
    /// `states[synced]` and everything before it were acknowledged durable.
    synced: usize,
    /// Snapshots saved (with their marker acknowledged) in order.
    acknowledged_snapshots: Vec<WalPosition>,
    /// Every snapshot the workload tried to save.
    attempted_snapshots: Vec<WalPosition>,
}

fn term_of(state: &ModelState, index: u64) -> u64 {
    state
        .log
        .iter()
        .find(|(i, _)| *i == index)
        .map(|(_, t)| *t)
        .expect("snapshot of a logged index")
}

/// Runs the script until it ends or the disk loses power.
fn run(disk: PowerCut) -> Outcome {
    let mut outcome = Outcome {
        created: false,
        states: vec![ModelState { log: Vec::new(), hard_state: HardState::default() }],
        synced: 0,
        acknowledged_snapshots: Vec::new(),
        attempted_snapshots: Vec::new(),
    };
    let Ok(mut wal) = Wal::create(disk.clone(), Path::new(WAL_DIR), b"member", CONFIG) else {
        return outcome;
    };
    outcome.created = true;
    let Ok(mut snaps) = Snapshotter::new(disk, Path::new(SNAP_DIR)) else { return outcome };
    for step in script() {
        let result = match step {
            Step::Append(entries, hard) => {
                let mut state = outcome.states.last().unwrap().clone();
                for &(index, term) in &entries {
                    state.log.retain(|(i, _)| *i < index);
                    state.log.push((index, term));
                    outcome.states.push(state.clone());
                }
                if let Some((term, commit)) = hard {
                    state.hard_state = hard_state(term, commit);
                    outcome.states.push(state);
                }
                let entries: Vec<Entry> = entries.iter().map(|&(i, t)| entry(i, t)).collect();
                wal.append(hard.map(|(t, c)| hard_state(t, c)).as_ref(), &entries)
            }
            Step::Sync => wal.sync().map(|()| outcome.synced = outcome.states.len() - 1),
            Step::Snapshot(index) => {
                let position =
                    WalPosition { index, term: term_of(outcome.states.last().unwrap(), index) };
                outcome.attempted_snapshots.push(position);
                snaps
                    .save(position, format!("state@{index}").as_bytes())
                    .and_then(|_| wal.save_snapshot_marker(position))
                    .map(|()| {
                        outcome.synced = outcome.states.len() - 1;
                        outcome.acknowledged_snapshots.push(position);
                    })
                    .and_then(|()| wal.release(index, 2).map(drop))
                    .and_then(|()| snaps.purge(2).map(drop))
            }
        };
        if result.is_err() {
            break;
        }
    }
    outcome
}

/// Enumerates every sequence of crash choices, odometer style.
struct Choices {
    path: Vec<usize>,
    options: Vec<usize>,
}

impl Choices {
    fn chooser(&mut self) -> impl FnMut(usize) -> usize + '_ {
        self.options.clear();
        let mut step = 0;
        move |count| {
            if step == self.path.len() {
                self.path.push(0);
            }
            let choice = self.path[step];
            self.options.push(count);
            step += 1;
            choice
        }
    }

    /// Moves to the next combination; false when all were tried.
    fn advance(&mut self) -> bool {
        self.path.truncate(self.options.len());
        while let Some(last) = self.path.pop() {
            let count = self.options[self.path.len()];
            if last + 1 < count {
                self.path.push(last + 1);
                return true;
            }
        }
        false
    }
}

/// Recovers one crashed disk and checks everything the module documentation promises.
fn check(disk: MemDisk, outcome: &Outcome, label: &str) {
    let mut snaps = match Snapshotter::new(disk.clone(), Path::new(SNAP_DIR)) {
        Ok(snaps) => snaps,
        Err(error) => panic!("{label}: snapshot dir: {error}"),
    };
    let recovered = match recover(disk.clone(), Path::new(WAL_DIR), &mut snaps, CONFIG) {
        Ok(recovered) => recovered,
        Err(StoreError::NotFound(_) | StoreError::SnapshotNotFound { .. }) if !outcome.created => {
            return
        }
        Err(StoreError::Io { source, .. })
            if !outcome.created && source.kind() == io::ErrorKind::NotFound =>
        {
            return
        }
        Err(error) => panic!("{label}: recovery failed: {error}"),
    };
    let snapshot = recovered.snapshot.as_ref().map_or(WalPosition::default(), |s| s.position);
    if let Some(loaded) = &recovered.snapshot {
        assert!(
            outcome.attempted_snapshots.contains(&snapshot),
            "{label}: unknown snapshot {snapshot:?}"
        );
        assert_eq!(loaded.data, format!("state@{}", snapshot.index).into_bytes(), "{label}");
    }
    if let Some(newest) = outcome.acknowledged_snapshots.last() {
        assert!(
            snapshot >= *newest,
            "{label}: snapshot {snapshot:?} older than acknowledged {newest:?}"
        );
    }
    let got_log: Vec<(u64, u64)> =
        recovered.contents.entries.iter().map(|e| (e.index, e.term)).collect();
    for e in &recovered.contents.entries {
        assert_eq!(e.data, entry(e.index, e.term).data, "{label}: entry {} damaged", e.index);
    }
    let matches = |state: &ModelState| {
        let after: Vec<(u64, u64)> =
            state.log.iter().copied().filter(|(i, _)| *i > snapshot.index).collect();
        after == got_log && state.hard_state == recovered.contents.hard_state
    };
    assert!(
        outcome.states[outcome.synced..].iter().any(matches),
        "{label}: recovered log {got_log:?} / {:?} is no state at or after the last sync",
        recovered.contents.hard_state
    );
    let mut wal = recovered.wal;
    let next = got_log.last().map_or(snapshot.index, |(i, _)| *i) + 1;
    wal.append(None, &[entry(next, 9)]).and_then(|()| wal.sync()).expect("a recovered WAL appends");
    let (_, contents) =
        Wal::open(wal.into_disk(), Path::new(WAL_DIR), snapshot, CONFIG).expect("reopens");
    assert_eq!(contents.entries.last().map(|e| (e.index, e.term)), Some((next, 9)), "{label}");
}

#[test]
fn every_crash_point_and_every_crash_outcome_recovers() {
    let full = PowerCut { disk: MemDisk::new(), budget: Rc::new(Cell::new(usize::MAX)) };
    let complete = run(full.clone());
    assert!(
        complete.created && complete.acknowledged_snapshots.len() == 2,
        "the script runs whole"
    );
    let total_ops = usize::MAX - full.budget.get();
    let mut outcomes_checked = 0;
    for budget in 0..=total_ops {
        let disk = PowerCut { disk: MemDisk::new(), budget: Rc::new(Cell::new(budget)) };
        let outcome = run(disk.clone());
        let mut choices = Choices { path: Vec::new(), options: Vec::new() };
        loop {
            let crashed = disk.disk.fork();
            crashed.crash(&mut choices.chooser());
            check(
                crashed,
                &outcome,
                &format!("power cut before op {budget}, choices {:?}", choices.path),
            );
            outcomes_checked += 1;
            if !choices.advance() {
                break;
            }
        }
    }
    println!(
        "{} crash points, {outcomes_checked} crash outcomes recovered and checked",
        total_ops + 1
    );
    assert!(outcomes_checked > total_ops * 4, "tears and partial keeps were explored");
}
