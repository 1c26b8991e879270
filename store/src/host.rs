//! A host: one member's node over the store, on any [`Disk`]: the simulator's `MemDisk` or the
//! `stead` binary's real disk, so both drivers persist exactly the same way.
//!
//! The host executes the node's persistence outputs exactly as the real runtime will:
//! - `Persist`: install a leader's snapshot (snapshot file, then WAL marker) and append the
//!   entries and hard state to the WAL. The fsync comes later, when the driver calls
//!   [`Host::sync`] (the simulator delays it to model disk latency): one sync covers every batch
//!   appended before it (group commit), and only then is the highest batch reported persisted.
//! - `SaveSnapshot`: write the snapshot file, then its WAL marker, then release WAL segments
//!   and snapshot files the snapshot makes unnecessary (`--max-wals`, `--max-snapshots`).
//!
//! It hands back the outputs that leave the host (messages, client answers). Recovery reads the
//! disk with `stead_store::recover` and restarts the node from the newest snapshot and the WAL
//! after it. A data dir that belongs to another member is refused, unless the driver asks to
//! restart as whichever member the data dir records (the binary, like etcd).

use crate::disk::Disk;
use crate::snap::{Snapshotter, DEFAULT_MAX_SNAPSHOTS};
use crate::wal::{Wal, WalConfig, WalPosition, DEFAULT_MAX_WALS};
use crate::StoreError;
use protobuf::Message as _;
use serde::{Deserialize, Serialize};
use std::path::Path;
use stead_core::node::{Input, Node, NodeConfig, Output, Recovered};
use stead_core::time::Instant;

/// Where the WAL lives, relative to the disk's root.
pub const WAL_DIR: &str = "member/wal";
const SNAP_DIR: &str = "member/snap";

/// What a host's WAL metadata records: whose data dir this is.
#[derive(Debug, PartialEq, Eq, Serialize, Deserialize)]
struct Identity {
    member_id: u64,
    cluster_id: u64,
}

/// Why a host could not start or keep going.
#[derive(Debug, thiserror::Error)]
pub enum HostError {
    /// The disk failed or holds damaged data.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The data dir holds another member's data, or data that is not a valid state.
    #[error("data dir: {0}")]
    DataDir(String),
}

/// A WAL sync handed out by [`Host::begin_sync`]: the file to fdatasync (relative to the disk's
/// root; `None` if it is already durable) before [`Host::finish_sync`].
#[derive(Debug)]
pub struct PendingSync {
    batch: u64,
    /// The WAL segment to sync.
    pub path: Option<std::path::PathBuf>,
}

/// Which snapshot a host is saving, for a [`HostObserver`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SnapshotKind {
    /// The member's own, taken every `--snapshot-count` entries.
    Own,
    /// One the leader sent, being installed.
    Received,
}

/// Told of a host's disk work as it starts and ends, so a driver with a clock can time it
/// (the store has none). Called on the member's thread, in order.
pub trait HostObserver: Send {
    /// A snapshot starts to be written.
    fn snapshot_started(&mut self, kind: SnapshotKind);
    /// The snapshot started last is saved and its WAL marker written (`bytes` long), or the
    /// save failed (`bytes` 0).
    fn snapshot_finished(&mut self, kind: SnapshotKind, bytes: usize);
}

/// One member: its node and its store.
pub struct Host<D: Disk> {
    node: Node,
    wal: Wal<D>,
    snapshots: Snapshotter<D>,
    started_from: Option<u64>,
    /// The highest batch appended but not yet synced.
    unsynced_batch: Option<u64>,
    /// `--max-wals` and `--max-snapshots`: files kept (0: all).
    retention: (usize, usize),
    /// Who hears of disk work (see [`Host::with_observer`]).
    observer: Option<Box<dyn HostObserver>>,
}

impl<D: Disk + Clone> Host<D> {
    /// A member with a fresh data dir on `disk`.
    pub fn create(
        config: NodeConfig,
        disk: D,
        wal_config: WalConfig,
        now: Instant,
    ) -> Result<Host<D>, HostError> {
        let identity = Identity { member_id: config.id, cluster_id: config.cluster_id };
        let metadata = postcard::to_allocvec(&identity).expect("identities encode");
        let wal = Wal::create(disk.clone(), Path::new(WAL_DIR), &metadata, wal_config)?;
        let snapshots = Snapshotter::new(disk, Path::new(SNAP_DIR))?;
        Ok(Host {
            node: Node::new(config, now),
            wal,
            snapshots,
            started_from: None,
            unsynced_batch: None,
            retention: (DEFAULT_MAX_WALS, DEFAULT_MAX_SNAPSHOTS),
            observer: None,
        })
    }

    /// A member with a fresh data dir on `disk` that starts from `node` (a cluster restored
    /// from a backup, see `Node::from_backup`); [`Host::flush`] writes its starting point.
    pub fn create_from(node: Node, disk: D, wal_config: WalConfig) -> Result<Host<D>, HostError> {
        let identity = Identity { member_id: node.id(), cluster_id: node.cluster_id() };
        let metadata = postcard::to_allocvec(&identity).expect("identities encode");
        let wal = Wal::create(disk.clone(), Path::new(WAL_DIR), &metadata, wal_config)?;
        let snapshots = Snapshotter::new(disk, Path::new(SNAP_DIR))?;
        Ok(Host {
            node,
            wal,
            snapshots,
            started_from: None,
            unsynced_batch: None,
            retention: (DEFAULT_MAX_WALS, DEFAULT_MAX_SNAPSHOTS),
            observer: None,
        })
    }

    /// Executes the outputs the node has ready and syncs until nothing waits; returns those
    /// that leave the host.
    pub fn flush(&mut self) -> Result<Vec<Output>, HostError> {
        let mut leaving = self.drain()?;
        while self.unsynced() {
            leaving.extend(self.sync()?);
        }
        Ok(leaving)
    }

    /// A member restarting from the data dir on `disk`; refuses a data dir recorded for a
    /// member other than `config.id`.
    pub fn recover(
        config: NodeConfig,
        disk: D,
        wal_config: WalConfig,
        now: Instant,
    ) -> Result<Host<D>, HostError> {
        Host::recover_with(config, disk, wal_config, now, false)
    }

    /// A member restarting from the data dir on `disk` as the member the data dir records,
    /// whatever `config` says its id and cluster are (the binary: etcd ignores the
    /// `--initial-*` flags on restart, and a member that joined a running cluster cannot derive
    /// its id from them). One that is not among `config.members` restarts as a joiner.
    pub fn recover_recorded(
        config: NodeConfig,
        disk: D,
        wal_config: WalConfig,
        now: Instant,
    ) -> Result<Host<D>, HostError> {
        Host::recover_with(config, disk, wal_config, now, true)
    }

    fn recover_with(
        mut config: NodeConfig,
        disk: D,
        wal_config: WalConfig,
        now: Instant,
        adopt: bool,
    ) -> Result<Host<D>, HostError> {
        let mut snapshots = Snapshotter::new(disk.clone(), Path::new(SNAP_DIR))?;
        let recovered = crate::recover(disk, Path::new(WAL_DIR), &mut snapshots, wal_config)?;
        let identity: Identity = postcard::from_bytes(&recovered.contents.metadata)
            .map_err(|e| HostError::DataDir(format!("unreadable WAL metadata: {e}")))?;
        if adopt {
            config.id = identity.member_id;
            config.cluster_id = identity.cluster_id;
            config.join_existing |= !config.members.iter().any(|m| m.id == config.id);
        }
        if identity.member_id != config.id {
            let found = identity.member_id;
            return Err(HostError::DataDir(format!(
                "belongs to member {found:x}, not {:x}",
                config.id
            )));
        }
        let snapshot = match recovered.snapshot {
            Some(loaded) => Some(
                raft_proto::eraftpb::Snapshot::parse_from_bytes(&loaded.data)
                    .map_err(|e| HostError::DataDir(format!("snapshot does not decode: {e}")))?,
            ),
            None => None,
        };
        let started_from = snapshot.as_ref().map(|s| s.get_metadata().index);
        let state = Recovered {
            snapshot,
            hard_state: recovered.contents.hard_state,
            entries: recovered.contents.entries,
        };
        let node = Node::restart(config, now, state).map_err(HostError::DataDir)?;
        Ok(Host {
            node,
            wal: recovered.wal,
            snapshots,
            started_from,
            unsynced_batch: None,
            retention: (DEFAULT_MAX_WALS, DEFAULT_MAX_SNAPSHOTS),
            observer: None,
        })
    }

    /// Keeps at most `max_wals` WAL segments and `max_snapshots` snapshot files that a newer
    /// snapshot makes unnecessary (etcd's `--max-wals`, `--max-snapshots`; 0: keep all).
    pub fn with_retention(mut self, max_wals: usize, max_snapshots: usize) -> Self {
        self.retention = (max_wals, max_snapshots);
        self
    }

    /// Tells `observer` of snapshots as they are saved.
    pub fn with_observer(mut self, observer: Box<dyn HostObserver>) -> Self {
        self.observer = Some(observer);
        self
    }

    /// The node.
    pub fn node(&self) -> &Node {
        &self.node
    }

    /// The index of the snapshot this host recovered from (`None`: created fresh, or recovered
    /// from the WAL alone).
    pub fn started_from(&self) -> Option<u64> {
        self.started_from
    }

    /// How many WAL segments are on disk.
    pub fn wal_segments(&self) -> usize {
        self.wal.segment_paths().len()
    }

    /// Feeds the node an input and executes its outputs: persistence work is appended (see
    /// [`Host::sync`]); returns the outputs that leave the host (messages to peers, answers to
    /// clients), in order.
    pub fn handle(&mut self, input: Input) -> Result<Vec<Output>, HostError> {
        self.node.handle(input);
        self.drain()
    }

    /// Whether appended batches wait for [`Host::sync`].
    pub fn unsynced(&self) -> bool {
        self.unsynced_batch.is_some()
    }

    /// Syncs the WAL once for every batch appended so far, reports them persisted, and returns
    /// the outputs that leave the host as a result (messages that waited for the batch).
    pub fn sync(&mut self) -> Result<Vec<Output>, HostError> {
        let Some(batch) = self.unsynced_batch.take() else { return Ok(Vec::new()) };
        self.wal.sync()?;
        self.node.handle(Input::Persisted { batch });
        self.drain()
    }

    /// Starts a sync to run off the member's thread, for a driver that keeps handling inputs
    /// while the disk syncs (the real runtime): every batch appended so far is covered once the
    /// returned file is synced; then [`Host::finish_sync`] reports them persisted. `None` if
    /// nothing waits.
    pub fn begin_sync(&mut self) -> Result<Option<PendingSync>, HostError> {
        let Some(batch) = self.unsynced_batch.take() else { return Ok(None) };
        // No path: a cut or a snapshot marker already synced the batch.
        let path = self.wal.begin_sync()?;
        Ok(Some(PendingSync { batch, path }))
    }

    /// Reports the batches a [`PendingSync`] covered persisted, once its file is synced;
    /// returns the outputs that leave the host as a result.
    pub fn finish_sync(&mut self, sync: PendingSync) -> Result<Vec<Output>, HostError> {
        self.node.handle(Input::Persisted { batch: sync.batch });
        self.drain()
    }

    /// Handles an input and syncs until nothing waits: persistence without disk latency.
    pub fn handle_synced(&mut self, input: Input) -> Result<Vec<Output>, HostError> {
        let mut leaving = self.handle(input)?;
        while self.unsynced() {
            leaving.extend(self.sync()?);
        }
        Ok(leaving)
    }

    fn drain(&mut self) -> Result<Vec<Output>, HostError> {
        let mut leaving = Vec::new();
        while let Some(output) = self.node.poll_output() {
            match output {
                Output::Persist { batch, entries, hard_state, snapshot } => {
                    if let Some(snapshot) = &snapshot {
                        self.save_snapshot(snapshot, SnapshotKind::Received)?;
                    }
                    self.wal.append(hard_state.as_ref(), &entries)?;
                    self.unsynced_batch = Some(batch);
                }
                Output::SaveSnapshot { snapshot } => {
                    match self.save_snapshot(&snapshot, SnapshotKind::Own) {
                        Ok(index) => {
                            let (max_wals, max_snapshots) = self.retention;
                            self.wal.release(index, max_wals)?;
                            self.snapshots.purge(max_snapshots)?;
                        }
                        // The member's own snapshot only shortens its recovery: on a full disk it
                        // is skipped (nothing is released, so the WAL still holds every entry
                        // since the last snapshot saved) and the next one is tried in its turn.
                        Err(HostError::Store(error)) if error.is_storage_full() => {
                            tracing::warn!(%error, "skipped a snapshot: the disk is full");
                        }
                        Err(error) => return Err(error),
                    }
                }
                other => leaving.push(other),
            }
        }
        Ok(leaving)
    }

    /// Writes a snapshot file, then its WAL marker; returns its index.
    fn save_snapshot(
        &mut self,
        snapshot: &raft_proto::eraftpb::Snapshot,
        kind: SnapshotKind,
    ) -> Result<u64, HostError> {
        if let Some(observer) = &mut self.observer {
            observer.snapshot_started(kind);
        }
        let metadata = snapshot.get_metadata();
        let position = WalPosition { index: metadata.index, term: metadata.term };
        let bytes = snapshot.write_to_bytes().expect("snapshots encode");
        let saved = self.snapshots.save(position, &bytes).map_err(HostError::from);
        let saved = saved.and_then(|_| Ok(self.wal.save_snapshot_marker(position)?));
        if let Some(observer) = &mut self.observer {
            observer.snapshot_finished(kind, if saved.is_ok() { bytes.len() } else { 0 });
        }
        saved.map(|()| position.index)
    }
}
