//! Recovery: what a member reads from disk when it starts.
//!
//! The order follows etcd 3.5: collect the snapshot markers the WAL holds; load the newest valid
//! snapshot file that has a marker (a snapshot saved just before a crash, whose marker never
//! reached the WAL, is not used); replay the WAL from that marker. So a crash at any point of
//! "save snapshot file, then write its marker, then release old segments" leaves a startable
//! member.

use crate::disk::Disk;
use crate::snap::{LoadedSnapshot, Snapshotter};
use crate::wal::{Wal, WalConfig, WalContents, WalPosition};
use crate::StoreError;
use std::path::Path;

/// A member's durable state, ready to continue.
pub struct Recovered<D: Disk> {
    /// The WAL, open for appending after its last valid record.
    pub wal: Wal<D>,
    /// The log and hard state after the snapshot.
    pub contents: WalContents,
    /// The snapshot the log continues from, if any.
    pub snapshot: Option<LoadedSnapshot>,
}

/// Recovers from the WAL in `wal_dir` and the snapshots of `snapshotter`.
pub fn recover<D: Disk, S: Disk>(
    mut wal_disk: D,
    wal_dir: &Path,
    snapshotter: &mut Snapshotter<S>,
    config: WalConfig,
) -> Result<Recovered<D>, StoreError> {
    let markers = Wal::snapshot_markers(&mut wal_disk, wal_dir)?;
    let snapshot = snapshotter.load_newest(|position| markers.contains(&position))?;
    let from = snapshot.as_ref().map_or(WalPosition::default(), |s| s.position);
    let (wal, contents) = Wal::open(wal_disk, wal_dir, from, config)?;
    Ok(Recovered { wal, contents, snapshot })
}
