//! The node's raft log storage: raft-rs's in-memory log plus the latest state-machine snapshot.
//!
//! raft-rs's `MemStorage` answers `snapshot()` with metadata only. A leader that must send a
//! snapshot to a slow follower needs the data too, so this wrapper keeps the newest snapshot the
//! node took or installed and serves it whole. Everything else goes to `MemStorage`.
//!
//! A stored snapshot cannot serve a member added after it was taken: raft refuses a snapshot
//! whose configuration does not include the receiver. Then the storage answers "temporarily
//! unavailable" and records the wish, and the node takes a fresh snapshot at once; raft's next
//! attempt gets that one.

use raft::prelude::{Entry, Snapshot};
use raft::storage::MemStorage;
use raft::{GetEntriesContext, RaftState, Storage, StorageError};
use std::cell::Cell;

/// The in-memory raft log and the newest snapshot.
pub(super) struct RaftStorage {
    pub(super) log: MemStorage,
    snapshot: Snapshot,
    /// Set when raft asked for a snapshot the stored one cannot serve.
    wanted: Cell<bool>,
}

impl RaftStorage {
    pub(super) fn new(log: MemStorage) -> Self {
        RaftStorage { log, snapshot: Snapshot::default(), wanted: Cell::new(false) }
    }

    /// Keeps `snapshot` as the one to send to followers that fell behind.
    pub(super) fn set_snapshot(&mut self, snapshot: Snapshot) {
        self.snapshot = snapshot;
    }

    /// Whether raft asked for a newer snapshot since the last call; clears the wish.
    pub(super) fn take_wanted(&self) -> bool {
        self.wanted.replace(false)
    }

    /// The index of the newest snapshot (0: none).
    pub(super) fn snapshot_index(&self) -> u64 {
        self.snapshot.get_metadata().index
    }
}

impl Storage for RaftStorage {
    fn initial_state(&self) -> raft::Result<RaftState> {
        self.log.initial_state()
    }

    fn entries(
        &self,
        low: u64,
        high: u64,
        max_size: impl Into<Option<u64>>,
        context: GetEntriesContext,
    ) -> raft::Result<Vec<Entry>> {
        self.log.entries(low, high, max_size, context)
    }

    fn term(&self, index: u64) -> raft::Result<u64> {
        let metadata = self.snapshot.get_metadata();
        if index == metadata.index && index != 0 {
            return Ok(metadata.term);
        }
        self.log.term(index)
    }

    fn first_index(&self) -> raft::Result<u64> {
        self.log.first_index()
    }

    fn last_index(&self) -> raft::Result<u64> {
        self.log.last_index()
    }

    fn snapshot(&self, request_index: u64, to: u64) -> raft::Result<Snapshot> {
        let metadata = self.snapshot.get_metadata();
        let conf = metadata.get_conf_state();
        let includes_receiver = conf.voters.contains(&to) || conf.learners.contains(&to);
        if metadata.index == 0 || metadata.index < request_index || !includes_receiver {
            self.wanted.set(true);
            return Err(raft::Error::Store(StorageError::SnapshotTemporarilyUnavailable));
        }
        Ok(self.snapshot.clone())
    }
}
