//! State-machine snapshot files: written atomically, CRC-checked on load, newest valid one wins.
//!
//! A snapshot file is named `{term:016x}-{index:016x}.snap` and holds a 44-byte header (magic,
//! format version, index, term, data length, CRC-32C of the data, CRC-32C of the header) and
//! then the data. Saving writes a temporary file, syncs it, renames it into place and syncs the
//! directory, so after a crash a snapshot is either whole or absent. Loading tries files newest
//! first. A damaged file is renamed to `*.broken` (kept for inspection, never retried) and the
//! next older one is tried. The caller hears about every skipped file.

use crate::disk::{self, Disk};
use crate::wal::WalPosition;
use crate::StoreError;
use std::path::{Path, PathBuf};

/// etcd's `--max-snapshots` default: snapshot files kept.
pub const DEFAULT_MAX_SNAPSHOTS: usize = 5;

const MAGIC: &[u8; 8] = b"STEADSNP";
const FORMAT_VERSION: u32 = 1;
const HEADER_BYTES: usize = 44;

/// A snapshot that was loaded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LoadedSnapshot {
    /// The raft index and term the snapshot was taken at.
    pub position: WalPosition,
    /// The state machine's bytes.
    pub data: Vec<u8>,
    /// Newer snapshot files that were damaged and set aside, with the reason for each.
    pub skipped: Vec<(PathBuf, String)>,
}

/// Saves, lists, loads and purges the snapshot files of one directory.
pub struct Snapshotter<D: Disk> {
    disk: D,
    dir: PathBuf,
}

impl<D: Disk> Snapshotter<D> {
    /// Snapshot files in `dir` (created if missing).
    pub fn new(mut disk: D, dir: &Path) -> Result<Self, StoreError> {
        disk.create_dir_all(dir).map_err(StoreError::io("create dir", dir))?;
        Ok(Snapshotter { disk, dir: dir.to_path_buf() })
    }

    /// Writes a snapshot of `data` taken at `position`, atomically and durably.
    pub fn save(&mut self, position: WalPosition, data: &[u8]) -> Result<PathBuf, StoreError> {
        let path = self.path(position);
        let mut file = Vec::with_capacity(HEADER_BYTES + data.len());
        file.extend_from_slice(MAGIC);
        file.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
        file.extend_from_slice(&position.index.to_le_bytes());
        file.extend_from_slice(&position.term.to_le_bytes());
        file.extend_from_slice(&(data.len() as u64).to_le_bytes());
        file.extend_from_slice(&crc32c::crc32c(data).to_le_bytes());
        let header_crc = crc32c::crc32c(&file);
        file.extend_from_slice(&header_crc.to_le_bytes());
        file.extend_from_slice(data);
        disk::write_atomically(&mut self.disk, &path, &file)
            .map_err(StoreError::io("save snapshot", &path))?;
        Ok(path)
    }

    /// The positions of the snapshot files present, newest first (by term, then index).
    pub fn list(&mut self) -> Result<Vec<WalPosition>, StoreError> {
        let names = self.disk.list(&self.dir).map_err(StoreError::io("list", &self.dir))?;
        let mut positions: Vec<WalPosition> =
            names.iter().filter_map(|name| parse_name(name)).collect();
        positions.sort_by_key(|p| std::cmp::Reverse((p.term, p.index)));
        Ok(positions)
    }

    /// Loads the newest valid snapshot that `usable` accepts (recovery passes "has a marker in
    /// the WAL"). Damaged files are set aside as `*.broken` and reported in `skipped`.
    pub fn load_newest(
        &mut self,
        usable: impl Fn(WalPosition) -> bool,
    ) -> Result<Option<LoadedSnapshot>, StoreError> {
        let mut skipped = Vec::new();
        for position in self.list()?.into_iter().filter(|p| usable(*p)) {
            let path = self.path(position);
            match self.load(position) {
                Ok(data) => return Ok(Some(LoadedSnapshot { position, data, skipped })),
                Err(StoreError::BadSnapshot { reason, .. }) => {
                    tracing::warn!(snapshot = %path.display(), %reason, "snap: skipping a damaged snapshot");
                    let mut broken = path.clone().into_os_string();
                    broken.push(".broken");
                    self.disk
                        .rename(&path, Path::new(&broken))
                        .map_err(StoreError::io("rename", &path))?;
                    skipped.push((path, reason));
                }
                Err(other) => return Err(other),
            }
        }
        Ok(None)
    }

    /// Loads and checks the snapshot at `position`.
    pub fn load(&mut self, position: WalPosition) -> Result<Vec<u8>, StoreError> {
        let path = self.path(position);
        let file = disk::read_all(&mut self.disk, &path)
            .map_err(StoreError::io("read snapshot", &path))?;
        let bad = |reason: &str| StoreError::BadSnapshot {
            path: path.clone(),
            reason: reason.to_string(),
        };
        if file.len() < HEADER_BYTES || &file[..8] != MAGIC {
            return Err(bad("not a stead snapshot file"));
        }
        let word32 = |at: usize| u32::from_le_bytes(file[at..at + 4].try_into().expect("4 bytes"));
        let word64 = |at: usize| u64::from_le_bytes(file[at..at + 8].try_into().expect("8 bytes"));
        if word32(40) != crc32c::crc32c(&file[..40]) {
            return Err(bad("header checksum mismatch"));
        }
        if word32(8) != FORMAT_VERSION {
            return Err(bad(&format!("unknown format version {}", word32(8))));
        }
        if (word64(12), word64(20)) != (position.index, position.term) {
            return Err(bad("header disagrees with the file name"));
        }
        let data = &file[HEADER_BYTES..];
        if word64(28) != data.len() as u64 {
            return Err(bad(&format!(
                "holds {} data bytes, header says {}",
                data.len(),
                word64(28)
            )));
        }
        if word32(36) != crc32c::crc32c(data) {
            return Err(bad("data checksum mismatch"));
        }
        Ok(data.to_vec())
    }

    /// Removes the oldest snapshot files beyond the newest `keep` (0 keeps all, like etcd's
    /// `--max-snapshots 0`), and any leftover temporary file. Returns how many were removed.
    pub fn purge(&mut self, keep: usize) -> Result<usize, StoreError> {
        let mut removed = 0;
        for name in self.disk.list(&self.dir).map_err(StoreError::io("list", &self.dir))? {
            if name.ends_with(".snap.tmp") {
                self.remove(&self.dir.join(name))?;
            }
        }
        if keep > 0 {
            for position in self.list()?.into_iter().skip(keep) {
                self.remove(&self.path(position))?;
                removed += 1;
            }
        }
        self.disk.sync_dir(&self.dir).map_err(StoreError::io("sync dir", &self.dir))?;
        Ok(removed)
    }

    fn remove(&mut self, path: &Path) -> Result<(), StoreError> {
        self.disk.remove(path).map_err(StoreError::io("remove", path))
    }

    fn path(&self, position: WalPosition) -> PathBuf {
        self.dir.join(format!("{:016x}-{:016x}.snap", position.term, position.index))
    }
}

fn parse_name(name: &str) -> Option<WalPosition> {
    let (term, index) = name.strip_suffix(".snap")?.split_once('-')?;
    if term.len() != 16 || index.len() != 16 {
        return None;
    }
    let term = u64::from_str_radix(term, 16).ok()?;
    let index = u64::from_str_radix(index, 16).ok()?;
    Some(WalPosition { index, term })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::disk::MemDisk;

    fn at(index: u64, term: u64) -> WalPosition {
        WalPosition { index, term }
    }

    fn snapshotter(disk: &MemDisk) -> Snapshotter<MemDisk> {
        Snapshotter::new(disk.clone(), Path::new("member/snap")).unwrap()
    }

    #[test]
    fn the_newest_valid_snapshot_wins() {
        let disk = MemDisk::new();
        let mut snaps = snapshotter(&disk);
        snaps.save(at(10, 1), b"state at 10").unwrap();
        snaps.save(at(20, 2), b"state at 20").unwrap();
        snaps.save(at(30, 2), b"state at 30").unwrap();
        assert_eq!(snaps.list().unwrap(), [at(30, 2), at(20, 2), at(10, 1)]);
        let loaded = snaps.load_newest(|_| true).unwrap().unwrap();
        assert_eq!((loaded.position, &loaded.data[..]), (at(30, 2), &b"state at 30"[..]));
        let older = snaps.load_newest(|p| p.index < 30).unwrap().unwrap();
        assert_eq!(older.position, at(20, 2), "recovery may only use snapshots the WAL knows");
    }

    #[test]
    fn a_damaged_snapshot_falls_back_to_the_previous_and_says_so() {
        let disk = MemDisk::new();
        let mut snaps = snapshotter(&disk);
        snaps.save(at(10, 1), b"older state").unwrap();
        let newest = snaps.save(at(20, 1), b"newest state").unwrap();
        let mut raw = disk.clone();
        let len = raw.len(&newest).unwrap();
        raw.write_at(&newest, len - 3, b"X").unwrap();
        let loaded = snaps.load_newest(|_| true).unwrap().unwrap();
        assert_eq!(loaded.position, at(10, 1));
        assert_eq!(loaded.skipped.len(), 1);
        assert!(loaded.skipped[0].1.contains("data checksum mismatch"), "{:?}", loaded.skipped);
        assert_eq!(snaps.list().unwrap(), [at(10, 1)], "the damaged file is set aside");
    }

    #[test]
    fn every_truncation_and_header_damage_is_detected() {
        let disk = MemDisk::new();
        let mut snaps = snapshotter(&disk);
        let path = snaps.save(at(5, 1), b"0123456789").unwrap();
        let mut raw = disk.clone();
        let whole = disk::read_all(&mut raw, &path).unwrap();
        for cut in 0..whole.len() {
            raw.set_len(&path, cut as u64).unwrap();
            assert!(
                matches!(snaps.load(at(5, 1)), Err(StoreError::BadSnapshot { .. })),
                "cut {cut}"
            );
        }
        for byte in 0..whole.len() {
            let mut damaged = whole.clone();
            damaged[byte] ^= 0x01;
            raw.write_at(&path, 0, &damaged).unwrap();
            assert!(
                matches!(snaps.load(at(5, 1)), Err(StoreError::BadSnapshot { .. })),
                "byte {byte}"
            );
        }
    }

    #[test]
    fn purge_keeps_the_newest_and_clears_leftovers() {
        let disk = MemDisk::new();
        let mut snaps = snapshotter(&disk);
        for index in 1..=7 {
            snaps.save(at(index, 1), b"s").unwrap();
        }
        let mut raw = disk.clone();
        raw.create(Path::new("member/snap/0000000000000001-0000000000000009.snap.tmp")).unwrap();
        assert_eq!(snaps.purge(0).unwrap(), 0);
        assert_eq!(snaps.purge(5).unwrap(), 2);
        assert_eq!(snaps.list().unwrap().len(), 5);
        assert_eq!(raw.list(Path::new("member/snap")).unwrap().len(), 5);
    }

    #[test]
    fn a_crash_during_save_leaves_the_old_snapshots_intact() {
        let disk = MemDisk::new();
        let mut snaps = snapshotter(&disk);
        snaps.save(at(1, 1), b"first").unwrap();
        // Fail the new snapshot's sync, then lose everything unsynced.
        disk.inject(crate::FaultKind::Sync);
        assert!(snaps.save(at(2, 1), b"second").is_err());
        disk.crash(&mut |_| 0);
        let mut snaps = snapshotter(&disk);
        snaps.purge(0).unwrap();
        assert_eq!(snaps.load_newest(|_| true).unwrap().unwrap().position, at(1, 1));
    }
}
