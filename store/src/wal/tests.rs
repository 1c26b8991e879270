//! WAL behaviour on `MemDisk`: round trips, overwrites, cuts, releases, markers, tears,
//! corruption and failures. (Exhaustive crash points live in `tests/wal_crash_points.rs`.)

use super::*;
use crate::disk::{FaultKind, MemDisk};

fn dir() -> &'static Path {
    Path::new("member/wal")
}

fn entry(index: u64, term: u64) -> Entry {
    let data = format!("entry {index} of term {term}").into_bytes().into();
    Entry { index, term, data, ..Entry::default() }
}

fn hard_state(term: u64, commit: u64) -> HardState {
    HardState { term, commit, ..HardState::default() }
}

fn small() -> WalConfig {
    WalConfig { segment_bytes: 256 }
}

fn indexes(contents: &WalContents) -> Vec<(u64, u64)> {
    contents.entries.iter().map(|e| (e.index, e.term)).collect()
}

fn reopen(disk: &MemDisk, from: WalPosition) -> Result<(Wal<MemDisk>, WalContents), StoreError> {
    Wal::open(disk.clone(), dir(), from, small())
}

#[test]
fn appended_and_synced_records_come_back() {
    let disk = MemDisk::new();
    let mut wal = Wal::create(disk.clone(), dir(), b"member 1", WalConfig::default()).unwrap();
    wal.append(Some(&hard_state(1, 0)), &[entry(1, 1), entry(2, 1)]).unwrap();
    wal.append(Some(&hard_state(1, 2)), &[entry(3, 1)]).unwrap();
    wal.sync().unwrap();
    let (wal, contents) = reopen(&disk, WalPosition::default()).unwrap();
    assert_eq!(contents.metadata, b"member 1");
    assert_eq!(indexes(&contents), [(1, 1), (2, 1), (3, 1)]);
    assert_eq!(contents.hard_state, hard_state(1, 2));
    assert_eq!(contents.entries[1].data, entry(2, 1).data);
    assert_eq!(wal.last_index(), 3);
}

#[test]
fn a_new_wal_refuses_an_existing_one_and_open_needs_one() {
    let disk = MemDisk::new();
    Wal::create(disk.clone(), dir(), b"", small()).unwrap();
    assert!(matches!(
        Wal::create(disk.clone(), dir(), b"", small()),
        Err(StoreError::AlreadyExists(_))
    ));
    let empty = MemDisk::new();
    let mut probe = empty.clone();
    probe.create_dir_all(dir()).unwrap();
    assert!(matches!(reopen(&empty, WalPosition::default()), Err(StoreError::NotFound(_))));
    assert!(!Wal::exists(&mut probe, dir()).unwrap());
    // A directory is not a file: the check lists the directory (MemDisk's `exists` is for
    // files only, and a restarted member must still find its WAL).
    let mut created = disk.clone();
    assert!(Wal::exists(&mut created, dir()).unwrap());
}

#[test]
fn a_later_entry_replaces_the_log_from_its_index() {
    let disk = MemDisk::new();
    let mut wal = Wal::create(disk.clone(), dir(), b"", WalConfig::default()).unwrap();
    wal.append(None, &[entry(1, 1), entry(2, 1), entry(3, 1), entry(4, 1)]).unwrap();
    wal.append(None, &[entry(3, 2)]).unwrap();
    wal.sync().unwrap();
    let (_, contents) = reopen(&disk, WalPosition::default()).unwrap();
    assert_eq!(indexes(&contents), [(1, 1), (2, 1), (3, 2)]);
}

#[test]
fn an_overwrite_below_the_snapshot_still_cuts_the_stale_tail() {
    let disk = MemDisk::new();
    let mut wal = Wal::create(disk.clone(), dir(), b"", WalConfig::default()).unwrap();
    wal.append(None, &(1..=6).map(|i| entry(i, 1)).collect::<Vec<_>>()).unwrap();
    wal.append(None, &[entry(3, 2), entry(4, 2)]).unwrap();
    wal.save_snapshot_marker(WalPosition { index: 4, term: 2 }).unwrap();
    let (_, contents) = reopen(&disk, WalPosition { index: 4, term: 2 }).unwrap();
    assert!(contents.entries.is_empty(), "entries 5 and 6 of term 1 were overwritten");
}

#[test]
fn segments_are_cut_and_the_chain_spans_them() {
    let disk = MemDisk::new();
    let mut wal = Wal::create(disk.clone(), dir(), b"meta", small()).unwrap();
    for index in 1..=20 {
        wal.append(Some(&hard_state(1, index - 1)), &[entry(index, 1)]).unwrap();
    }
    wal.sync().unwrap();
    let segments = wal.segment_paths();
    assert!(segments.len() >= 5, "{segments:?}");
    let (_, contents) = reopen(&disk, WalPosition::default()).unwrap();
    assert_eq!(contents.entries.len(), 20);
    assert_eq!(contents.hard_state, hard_state(1, 19));
    // Splice: replace a middle segment with a copy of another; the chain must notice.
    let mut spliced = disk.clone();
    let copy = disk::read_all(&mut spliced, &segments[1]).unwrap();
    spliced.write_at(&segments[2], 0, &copy).unwrap();
    spliced.set_len(&segments[2], copy.len() as u64).unwrap();
    assert!(matches!(reopen(&disk, WalPosition::default()), Err(StoreError::Corrupt { .. })));
}

#[test]
fn release_keeps_what_a_replay_from_the_snapshot_needs() {
    let disk = MemDisk::new();
    let mut wal = Wal::create(disk.clone(), dir(), b"", small()).unwrap();
    for index in 1..=30 {
        wal.append(None, &[entry(index, 1)]).unwrap();
    }
    wal.save_snapshot_marker(WalPosition { index: 25, term: 1 }).unwrap();
    let before = wal.segment_paths().len();
    assert_eq!(wal.release(25, 0).unwrap(), 0, "max 0 keeps everything");
    let removed = wal.release(25, 2).unwrap();
    assert!(removed > 0 && wal.segment_paths().len() < before);
    let (_, contents) = reopen(&disk, WalPosition { index: 25, term: 1 }).unwrap();
    assert_eq!(indexes(&contents), (26..=30).map(|i| (i, 1)).collect::<Vec<_>>());
    assert!(reopen(&disk, WalPosition::default()).is_err(), "the start of the log is gone");
}

#[test]
fn replay_needs_the_snapshot_marker_with_its_term() {
    let disk = MemDisk::new();
    let mut wal = Wal::create(disk.clone(), dir(), b"", small()).unwrap();
    wal.append(None, &[entry(1, 1), entry(2, 1)]).unwrap();
    wal.save_snapshot_marker(WalPosition { index: 2, term: 1 }).unwrap();
    let missing = reopen(&disk, WalPosition { index: 1, term: 1 });
    assert!(matches!(missing, Err(StoreError::SnapshotNotFound { index: 1, term: 1 })));
    let wrong_term = reopen(&disk, WalPosition { index: 2, term: 7 }).err().unwrap();
    assert!(wrong_term.to_string().contains("has term 1, not 7"), "{wrong_term}");
    let (_, contents) = reopen(&disk, WalPosition { index: 2, term: 1 }).unwrap();
    assert_eq!(contents.snapshots, [WalPosition::default(), WalPosition { index: 2, term: 1 }]);
}

#[test]
fn a_torn_tail_is_cut_off_and_the_wal_continues() {
    let disk = MemDisk::new();
    let mut wal = Wal::create(disk.clone(), dir(), b"", WalConfig::default()).unwrap();
    wal.append(None, &[entry(1, 1)]).unwrap();
    wal.sync().unwrap();
    wal.append(None, &[entry(2, 1), entry(3, 1)]).unwrap();
    // Keep every earlier change, then 30 bytes of the unsynced write.
    let mut choices = [0, 0, 30].into_iter();
    disk.crash(&mut |_| choices.next().unwrap());
    let (mut wal, contents) = reopen(&disk, WalPosition::default()).unwrap();
    assert_eq!(indexes(&contents), [(1, 1)]);
    wal.append(None, &[entry(2, 2)]).unwrap();
    wal.sync().unwrap();
    let (_, contents) = reopen(&disk, WalPosition::default()).unwrap();
    assert_eq!(indexes(&contents), [(1, 1), (2, 2)]);
}

#[test]
fn corruption_in_the_middle_is_refused_with_its_place() {
    let disk = MemDisk::new();
    let mut wal = Wal::create(disk.clone(), dir(), b"", WalConfig::default()).unwrap();
    wal.append(None, &[entry(1, 1), entry(2, 1), entry(3, 1)]).unwrap();
    wal.sync().unwrap();
    let segment = wal.segment_paths()[0].clone();
    let mut raw = disk.clone();
    let content = disk::read_all(&mut raw, &segment).unwrap();
    let middle = content.iter().rposition(|&b| b != 0).unwrap() / 2;
    raw.write_at(&segment, middle as u64, &[content[middle] ^ 0x10]).unwrap();
    let error = reopen(&disk, WalPosition::default()).err().unwrap();
    assert!(matches!(error, StoreError::Corrupt { .. }), "{error}");
    assert!(error.to_string().contains("corrupt at byte"), "{error}");
}

#[test]
fn a_failed_write_or_sync_poisons_the_wal() {
    let disk = MemDisk::new();
    let mut wal = Wal::create(disk.clone(), dir(), b"", WalConfig::default()).unwrap();
    disk.inject(FaultKind::Sync);
    wal.append(None, &[entry(1, 1)]).unwrap();
    assert!(matches!(wal.sync(), Err(StoreError::Io { op: "sync", .. })));
    assert!(matches!(wal.append(None, &[entry(2, 1)]), Err(StoreError::Poisoned(_))));
    assert!(matches!(wal.sync(), Err(StoreError::Poisoned(_))));
    let mut wal = Wal::create(MemDisk::new(), dir(), b"", WalConfig::default()).unwrap();
    let other = MemDisk::new();
    let mut failing = Wal::create(other.clone(), dir(), b"", WalConfig::default()).unwrap();
    other.inject(FaultKind::Write);
    assert!(failing.append(None, &[entry(1, 1)]).is_err());
    assert!(matches!(failing.sync(), Err(StoreError::Poisoned(_))));
    wal.append(None, &[entry(1, 1)]).unwrap();
}

#[test]
fn a_full_disk_fails_the_cut_cleanly() {
    let disk = MemDisk::new();
    let mut wal = Wal::create(disk.clone(), dir(), b"", small()).unwrap();
    disk.set_capacity(Some(600));
    let mut result = Ok(());
    for index in 1..=20 {
        result = wal.append(None, &[entry(index, 1)]);
        if result.is_err() {
            break;
        }
    }
    let error = result.expect_err("the disk fills up");
    assert!(error.to_string().contains("No space left on device"), "{error}");
    assert!(matches!(wal.sync(), Err(StoreError::Poisoned(_))));
    disk.set_capacity(None);
    let (_, contents) = reopen(&disk, WalPosition::default()).unwrap();
    assert!(!contents.entries.is_empty(), "what was written before stays readable");
}

#[test]
fn leftovers_of_an_interrupted_cut_are_removed_and_gaps_refused() {
    let disk = MemDisk::new();
    let mut wal = Wal::create(disk.clone(), dir(), b"", small()).unwrap();
    for index in 1..=20 {
        wal.append(None, &[entry(index, 1)]).unwrap();
    }
    wal.sync().unwrap();
    assert!(wal.segment_paths().len() >= 3, "a middle segment to remove");
    let mut raw = disk.clone();
    let leftover = dir().join("00000000000000ff-0000000000000099.wal.tmp");
    raw.create(&leftover).unwrap();
    reopen(&disk, WalPosition::default()).unwrap();
    assert!(!raw.exists(&leftover).unwrap());
    let segments = wal.segment_paths();
    raw.remove(&segments[1]).unwrap();
    let error = reopen(&disk, WalPosition::default()).err().unwrap();
    assert!(matches!(error, StoreError::BadLayout(_)), "{error}");
}

/// Found by the model test: after a process restart, records written but never synced are read
/// back from the page cache; the first sync after reopening must make them durable.
#[test]
fn the_first_sync_after_reopening_makes_earlier_unsynced_records_durable() {
    let disk = MemDisk::new();
    let mut wal = Wal::create(disk.clone(), dir(), b"", WalConfig::default()).unwrap();
    wal.append(None, &[entry(1, 1)]).unwrap();
    drop(wal);
    let (mut wal, contents) = reopen(&disk, WalPosition::default()).unwrap();
    assert_eq!(indexes(&contents), [(1, 1)]);
    wal.sync().unwrap();
    disk.crash(&mut |_| 0);
    let (_, contents) = reopen(&disk, WalPosition::default()).unwrap();
    assert_eq!(indexes(&contents), [(1, 1)], "acknowledged by the sync after reopening");
}

#[test]
fn a_handed_out_sync_covers_what_was_appended_before_it() {
    let disk = MemDisk::new();
    let mut wal = Wal::create(disk.clone(), dir(), b"", WalConfig::default()).unwrap();
    assert_eq!(wal.begin_sync().unwrap(), None, "nothing appended: nothing to sync");
    wal.append(Some(&hard_state(1, 0)), &[entry(1, 1)]).unwrap();
    let path = wal.begin_sync().unwrap().expect("the tail waits for a sync");
    assert_eq!(wal.begin_sync().unwrap(), None, "handed out once");
    // Appended while the handed-out sync is in flight: needs a sync of its own.
    wal.append(None, &[entry(2, 1)]).unwrap();
    let mut syncer = disk.clone();
    syncer.sync(&path).unwrap();
    assert_eq!(wal.begin_sync().unwrap(), Some(path.clone()));
    // The caller's sync ran after entry 2 was written, so both are durable.
    disk.crash(&mut |_| 0);
    let (_, contents) = reopen(&disk, WalPosition::default()).unwrap();
    assert_eq!(indexes(&contents), [(1, 1), (2, 1)]);
}

#[test]
fn records_whose_sync_was_handed_out_are_lost_if_the_caller_never_syncs() {
    let disk = MemDisk::new();
    let mut wal = Wal::create(disk.clone(), dir(), b"", WalConfig::default()).unwrap();
    wal.append(Some(&hard_state(1, 0)), &[entry(1, 1)]).unwrap();
    wal.sync().unwrap();
    wal.append(None, &[entry(2, 1)]).unwrap();
    assert!(wal.begin_sync().unwrap().is_some());
    disk.crash(&mut |_| 0);
    let (_, contents) = reopen(&disk, WalPosition::default()).unwrap();
    assert_eq!(indexes(&contents), [(1, 1)], "the contract: the caller syncs the file");
}
