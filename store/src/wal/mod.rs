//! The raft write-ahead log: CRC-chained records in preallocated segment files, with group commit.
//!
//! Layout (etcd's design, in our encoding): a directory of segments named
//! `{sequence:016x}-{first_index:016x}.wal`. Each segment opens with a `Crc` record, which carries
//! the running CRC over to the new file, then the metadata and the latest hard state, then entries,
//! hard states and snapshot markers as they are appended. A segment is preallocated to
//! `segment_bytes`; when writing passes that size, the segment is synced, trimmed to its records,
//! and a new one is prepared under a temporary name and renamed into place (*cut*).
//!
//! Group commit: [`Wal::append`] writes records without syncing, and [`Wal::sync`] makes durable
//! everything appended before it, so one fsync covers many proposals. After any failed write or
//! sync, the WAL refuses further work ([`StoreError::Poisoned`]): what reached the disk is
//! unknown, and only a restart that re-reads the disk is safe.
//!
//! Opening ([`Wal::open`]) replays the segments from a snapshot marker. A torn tail in the last
//! segment is repaired; any other damage is refused with a clear error (see `record.rs`).

mod read;
mod record;

use crate::disk::{self, Disk};
use crate::{Entry, HardState, StoreError};
use protobuf::Message;
use record::Kind;
use std::path::{Path, PathBuf};

/// etcd's `--max-wals` default: WAL segments kept once snapshots cover them.
pub const DEFAULT_MAX_WALS: usize = 5;

/// WAL settings.
#[derive(Clone, Copy, Debug)]
pub struct WalConfig {
    /// A segment is cut once it holds this many bytes (etcd: 64 MiB).
    pub segment_bytes: u64,
}

impl Default for WalConfig {
    fn default() -> Self {
        WalConfig { segment_bytes: 64 << 20 }
    }
}

/// A point in the raft log: the snapshot a replay starts from.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct WalPosition {
    /// The raft index.
    pub index: u64,
    /// The raft term of that index.
    pub term: u64,
}

/// What a WAL holds after a snapshot position.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct WalContents {
    /// The metadata the WAL was created with.
    pub metadata: Vec<u8>,
    /// The latest hard state.
    pub hard_state: HardState,
    /// The log after the snapshot, with overwritten entries already replaced.
    pub entries: Vec<Entry>,
    /// Every snapshot marker in the replayed segments, in order.
    pub snapshots: Vec<WalPosition>,
}

/// One segment file.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Segment {
    sequence: u64,
    first_index: u64,
    path: PathBuf,
}

impl Segment {
    fn new(dir: &Path, sequence: u64, first_index: u64) -> Segment {
        let path = dir.join(format!("{sequence:016x}-{first_index:016x}.wal"));
        Segment { sequence, first_index, path }
    }

    /// Parses a segment file name; `None` for any other file.
    fn parse(dir: &Path, name: &str) -> Option<Segment> {
        let stem = name.strip_suffix(".wal")?;
        let (sequence, first_index) = stem.split_once('-')?;
        if sequence.len() != 16 || first_index.len() != 16 {
            return None;
        }
        let sequence = u64::from_str_radix(sequence, 16).ok()?;
        let first_index = u64::from_str_radix(first_index, 16).ok()?;
        Some(Segment::new(dir, sequence, first_index))
    }
}

/// An open WAL, appending to its last segment.
pub struct Wal<D: Disk> {
    disk: D,
    dir: PathBuf,
    config: WalConfig,
    /// Every live segment, oldest first; the last one is written to.
    segments: Vec<Segment>,
    /// Where the next record goes in the last segment.
    offset: u64,
    /// The running CRC after the last record.
    crc: u32,
    /// The index of the last entry appended.
    last_index: u64,
    metadata: Vec<u8>,
    hard_state: HardState,
    unsynced: bool,
    poisoned: Option<String>,
}

impl<D: Disk> Wal<D> {
    /// Creates a new WAL in `dir` with a first segment and a snapshot marker at index 0.
    pub fn create(
        mut disk: D,
        dir: &Path,
        metadata: &[u8],
        config: WalConfig,
    ) -> Result<Self, StoreError> {
        disk.create_dir_all(dir).map_err(StoreError::io("create dir", dir))?;
        if !list_segments(&mut disk, dir)?.is_empty() {
            return Err(StoreError::AlreadyExists(dir.to_path_buf()));
        }
        let mut wal = Wal {
            disk,
            dir: dir.to_path_buf(),
            config,
            segments: Vec::new(),
            offset: 0,
            crc: 0,
            last_index: 0,
            metadata: metadata.to_vec(),
            hard_state: HardState::default(),
            unsynced: false,
            poisoned: None,
        };
        wal.start_segment(Segment::new(dir, 0, 0))?;
        wal.save_snapshot_marker(WalPosition::default())?;
        Ok(wal)
    }

    /// Opens the WAL in `dir` and replays it from the snapshot at `from` (index 0: from the
    /// start), repairing a torn tail. The marker for `from` must be in the WAL.
    pub fn open(
        mut disk: D,
        dir: &Path,
        from: WalPosition,
        config: WalConfig,
    ) -> Result<(Self, WalContents), StoreError> {
        let segments = list_segments(&mut disk, dir)?;
        if segments.is_empty() {
            return Err(StoreError::NotFound(dir.to_path_buf()));
        }
        let replayed = read::replay(&mut disk, &segments, from)?;
        let wal = Wal {
            disk,
            dir: dir.to_path_buf(),
            config,
            segments,
            offset: replayed.end_offset,
            crc: replayed.crc,
            last_index: replayed.last_index,
            metadata: replayed.contents.metadata.clone(),
            hard_state: replayed.contents.hard_state.clone(),
            // After a process restart the tail may hold records that were written but never
            // synced (read back from the page cache): the first sync must really sync.
            unsynced: true,
            poisoned: None,
        };
        Ok((wal, replayed.contents))
    }

    /// Every snapshot marker in the WAL in `dir`, oldest first: the snapshots a replay can start
    /// from. Reads every segment; changes nothing.
    pub fn snapshot_markers(disk: &mut D, dir: &Path) -> Result<Vec<WalPosition>, StoreError> {
        let segments = list_segments(disk, dir)?;
        if segments.is_empty() {
            return Err(StoreError::NotFound(dir.to_path_buf()));
        }
        read::markers(disk, &segments)
    }

    /// Whether `dir` holds any WAL segment (a missing `dir` holds none). Changes nothing.
    pub fn exists(disk: &mut D, dir: &Path) -> Result<bool, StoreError> {
        match disk.list(dir) {
            Ok(names) => Ok(names.iter().any(|name| Segment::parse(dir, name).is_some())),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(error) => Err(StoreError::io("list", dir)(error)),
        }
    }

    /// Appends entries, then the hard state if given, in one write; nothing is durable until
    /// [`Wal::sync`]. An entry at or below the last index replaces the log from that index on.
    pub fn append(
        &mut self,
        hard_state: Option<&HardState>,
        entries: &[Entry],
    ) -> Result<(), StoreError> {
        self.usable()?;
        let mut buffer = Vec::with_capacity(entries.iter().map(|e| e.data.len() + 64).sum());
        for entry in entries {
            let bytes = entry.write_to_bytes().map_err(|e| self.poison(e.to_string()))?;
            record::encode(&mut buffer, &mut self.crc, Kind::Entry, &bytes);
            self.last_index = entry.index;
        }
        if let Some(hard_state) = hard_state {
            let bytes = hard_state.write_to_bytes().map_err(|e| self.poison(e.to_string()))?;
            record::encode(&mut buffer, &mut self.crc, Kind::HardState, &bytes);
            self.hard_state = hard_state.clone();
        }
        self.write(&buffer)?;
        if self.offset >= self.config.segment_bytes {
            self.cut()?;
        }
        Ok(())
    }

    /// Makes every record appended so far durable (one fsync for all of them).
    pub fn sync(&mut self) -> Result<(), StoreError> {
        self.usable()?;
        if self.unsynced {
            let path = self.tail().path.clone();
            self.disk.sync(&path).map_err(|e| self.poison_io("sync", &path, e))?;
            self.unsynced = false;
        }
        Ok(())
    }

    /// Hands the sync of everything appended so far to the caller: returns the path of the
    /// segment to fdatasync (relative to the disk's root), or `None` if nothing waits. The WAL
    /// counts those records durable from now on, so the caller must sync the file before it
    /// reports them persisted, and must stop the member if that sync fails. A later cut to a
    /// new segment still syncs the old one itself.
    pub fn begin_sync(&mut self) -> Result<Option<PathBuf>, StoreError> {
        self.usable()?;
        if !self.unsynced {
            return Ok(None);
        }
        self.unsynced = false;
        Ok(Some(self.tail().path.clone()))
    }

    /// Appends and syncs a snapshot marker: replays may start from `position` from now on.
    pub fn save_snapshot_marker(&mut self, position: WalPosition) -> Result<(), StoreError> {
        self.usable()?;
        let mut data = position.index.to_le_bytes().to_vec();
        data.extend_from_slice(&position.term.to_le_bytes());
        let mut buffer = Vec::new();
        record::encode(&mut buffer, &mut self.crc, Kind::Snapshot, &data);
        self.write(&buffer)?;
        self.sync()
    }

    /// Removes the oldest segments that a snapshot at `snapshot_index` makes unnecessary, while
    /// more than `max_segments` remain (0 keeps all, like etcd's `--max-wals 0`). The segment a
    /// replay from that snapshot starts in, and every later one, always stay. Returns how many
    /// were removed.
    pub fn release(
        &mut self,
        snapshot_index: u64,
        max_segments: usize,
    ) -> Result<usize, StoreError> {
        self.usable()?;
        let start = read::start_segment(&self.segments, snapshot_index);
        let mut removed = 0;
        while removed < start && max_segments > 0 && self.segments.len() - removed > max_segments {
            let path = self.segments[removed].path.clone();
            self.disk.remove(&path).map_err(StoreError::io("remove", &path))?;
            removed += 1;
        }
        if removed > 0 {
            self.segments.drain(..removed);
            self.disk.sync_dir(&self.dir).map_err(StoreError::io("sync dir", &self.dir))?;
        }
        Ok(removed)
    }

    /// The index of the last entry appended.
    pub fn last_index(&self) -> u64 {
        self.last_index
    }

    /// The names of the live segment files, oldest first.
    pub fn segment_paths(&self) -> Vec<PathBuf> {
        self.segments.iter().map(|s| s.path.clone()).collect()
    }

    /// Gives the disk back (for a simulated crash and reopen).
    pub fn into_disk(self) -> D {
        self.disk
    }

    fn tail(&self) -> &Segment {
        self.segments.last().expect("a WAL always has a segment")
    }

    fn usable(&self) -> Result<(), StoreError> {
        match &self.poisoned {
            Some(reason) => Err(StoreError::Poisoned(reason.clone())),
            None => Ok(()),
        }
    }

    fn poison(&mut self, reason: String) -> StoreError {
        self.poisoned = Some(reason.clone());
        StoreError::Poisoned(reason)
    }

    fn poison_io(&mut self, op: &'static str, path: &Path, error: std::io::Error) -> StoreError {
        let error = StoreError::io(op, path)(error);
        self.poisoned = Some(error.to_string());
        error
    }

    /// Writes records at the end of the last segment.
    fn write(&mut self, buffer: &[u8]) -> Result<(), StoreError> {
        let path = self.tail().path.clone();
        self.disk
            .write_at(&path, self.offset, buffer)
            .map_err(|e| self.poison_io("write", &path, e))?;
        self.offset += buffer.len() as u64;
        self.unsynced = true;
        Ok(())
    }

    /// Seals the last segment (synced, trimmed to its records) and starts the next one.
    fn cut(&mut self) -> Result<(), StoreError> {
        let path = self.tail().path.clone();
        self.disk.set_len(&path, self.offset).map_err(|e| self.poison_io("trim", &path, e))?;
        self.unsynced = true;
        self.sync()?;
        let next = Segment::new(&self.dir, self.tail().sequence + 1, self.last_index + 1);
        self.start_segment(next)
    }

    /// Writes a new segment's opening records under a temporary name, syncs it, renames it into
    /// place and syncs the directory, so the segment appears whole or not at all.
    fn start_segment(&mut self, segment: Segment) -> Result<(), StoreError> {
        let mut buffer = Vec::new();
        let carried = self.crc.to_le_bytes();
        record::encode(&mut buffer, &mut self.crc, Kind::Crc, &carried);
        record::encode(&mut buffer, &mut self.crc, Kind::Metadata, &self.metadata);
        let hard_state =
            self.hard_state.write_to_bytes().map_err(|e| self.poison(e.to_string()))?;
        record::encode(&mut buffer, &mut self.crc, Kind::HardState, &hard_state);
        let temporary = disk::temporary_path(&segment.path);
        let result = (|| {
            if self.disk.exists(&temporary)? {
                self.disk.remove(&temporary)?;
            }
            self.disk.create(&temporary)?;
            self.disk.allocate(&temporary, self.config.segment_bytes)?;
            self.disk.write_at(&temporary, 0, &buffer)?;
            self.disk.sync(&temporary)?;
            self.disk.rename(&temporary, &segment.path)?;
            self.disk.sync_dir(&self.dir)
        })();
        result.map_err(|e| self.poison_io("start segment", &segment.path, e))?;
        self.segments.push(segment);
        self.offset = buffer.len() as u64;
        self.unsynced = false;
        Ok(())
    }
}

/// The segments in `dir`, in sequence order, after removing leftovers of interrupted cuts.
/// Fails if the sequence has a gap.
fn list_segments(disk: &mut dyn Disk, dir: &Path) -> Result<Vec<Segment>, StoreError> {
    let names = disk.list(dir).map_err(StoreError::io("list", dir))?;
    let mut segments = Vec::new();
    for name in &names {
        if let Some(segment) = Segment::parse(dir, name) {
            segments.push(segment);
        } else if name.ends_with(".wal.tmp") {
            let path = dir.join(name);
            disk.remove(&path).map_err(StoreError::io("remove", &path))?;
        }
    }
    segments.sort_by_key(|s| s.sequence);
    for pair in segments.windows(2) {
        if pair[1].sequence != pair[0].sequence + 1 {
            let (a, b) = (&pair[0].path, &pair[1].path);
            return Err(StoreError::BadLayout(format!(
                "segments missing between {} and {}",
                a.display(),
                b.display()
            )));
        }
    }
    Ok(segments)
}

#[cfg(test)]
mod tests;
