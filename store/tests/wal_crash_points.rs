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

mod common;

use common::{recover_and_check, Member, Model, Restart, Step, CONFIG, SNAP_DIR, WAL_DIR};
use std::cell::Cell;
use std::io;
use std::path::Path;
use std::rc::Rc;
use stead_store::disk::{Disk, MemDisk};
use stead_store::snap::Snapshotter;
use stead_store::{recover, StoreError};

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

/// Runs the script until it ends or the disk loses power; returns the model (`None` when the
/// WAL was never created).
fn run(disk: PowerCut) -> Option<Model> {
    let mut member = Member::create(disk).ok()?;
    for step in script() {
        if member.step(&step).is_err() {
            break;
        }
    }
    Some(member.model)
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

/// Recovers one crashed disk, checks it against the model, and checks that the recovered WAL
/// accepts and keeps a new append. Without a created WAL, recovery may only fail cleanly.
fn check(disk: MemDisk, model: Option<&Model>, label: &str) {
    let Some(model) = model else {
        let mut snaps = Snapshotter::new(disk.clone(), Path::new(SNAP_DIR)).expect("snapshot dir");
        match recover(disk, Path::new(WAL_DIR), &mut snaps, CONFIG) {
            Ok(recovered) => assert!(recovered.contents.entries.is_empty(), "{label}"),
            Err(StoreError::NotFound(_) | StoreError::SnapshotNotFound { .. }) => {}
            Err(StoreError::Io { source, .. }) if source.kind() == io::ErrorKind::NotFound => {}
            Err(error) => panic!("{label}: recovery of an unfinished create failed: {error}"),
        }
        return;
    };
    let mut member = recover_and_check(disk.clone(), model, Restart::PowerLoss, label);
    let snapshot = member.model.acknowledged_snapshots.last().map_or(0, |s| s.index);
    let next = member.model.last().log.last().map_or(snapshot, |(i, _)| *i).max(snapshot) + 1;
    let append = Step::Append(vec![(next, 9)], None);
    member.step(&append).and_then(|()| member.step(&Step::Sync)).expect("a recovered WAL appends");
    let model = member.model.clone();
    drop(member);
    let again = recover_and_check(disk, &model, Restart::Process, label);
    assert_eq!(again.model.last().log.last(), Some(&(next, 9)), "{label}");
}

#[test]
fn every_crash_point_and_every_crash_outcome_recovers() {
    let full = PowerCut { disk: MemDisk::new(), budget: Rc::new(Cell::new(usize::MAX)) };
    let complete = run(full.clone()).expect("the WAL is created");
    assert_eq!(complete.acknowledged_snapshots.len(), 2, "the script runs whole");
    let total_ops = usize::MAX - full.budget.get();
    let mut outcomes_checked = 0;
    for budget in 0..=total_ops {
        let disk = PowerCut { disk: MemDisk::new(), budget: Rc::new(Cell::new(budget)) };
        let model = run(disk.clone());
        let mut choices = Choices { path: Vec::new(), options: Vec::new() };
        loop {
            let crashed = disk.disk.fork();
            crashed.crash(&mut choices.chooser());
            let label = format!("power cut before op {budget}, choices {:?}", choices.path);
            check(crashed, model.as_ref(), &label);
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
