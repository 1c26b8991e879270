//! The store's errors: each says what failed, where, and what an operator can do about it.

use std::io;
use std::path::PathBuf;

/// Everything the WAL and the snapshot files can fail with.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The disk refused an operation.
    #[error("{op} {path}: {source}")]
    Io {
        /// The operation (create, write, sync, …).
        op: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The disk's error.
        source: io::Error,
    },
    /// A WAL segment holds damage that a crash cannot explain: stead refuses to guess.
    #[error("wal: {segment}: corrupt at byte {offset}: {reason}; the data dir needs repair or replacement from a healthy member")]
    Corrupt {
        /// The segment file.
        segment: PathBuf,
        /// Where the damaged record starts.
        offset: u64,
        /// What is wrong.
        reason: String,
    },
    /// The WAL directory's segments do not form one sequence.
    #[error("wal: {0}")]
    BadLayout(String),
    /// No WAL exists where one was expected.
    #[error("wal: no WAL segments in {0}")]
    NotFound(PathBuf),
    /// A WAL already exists where a new one was to be created.
    #[error("wal: {0} already holds a WAL")]
    AlreadyExists(PathBuf),
    /// The WAL has no marker for the snapshot recovery starts from.
    #[error("wal: no snapshot marker at index {index} term {term}")]
    SnapshotNotFound {
        /// The snapshot's index.
        index: u64,
        /// The snapshot's term.
        term: u64,
    },
    /// An earlier write or sync failed, so the WAL's state on disk is unknown: restart and
    /// recover from disk.
    #[error("wal: unusable after an earlier failure ({0}); restart to recover")]
    Poisoned(String),
    /// A snapshot file is damaged.
    #[error("snap: {path}: {reason}")]
    BadSnapshot {
        /// The snapshot file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
}

impl StoreError {
    /// Wraps a disk error with the operation and path.
    pub(crate) fn io(
        op: &'static str,
        path: impl Into<PathBuf>,
    ) -> impl FnOnce(io::Error) -> StoreError {
        let path = path.into();
        move |source| StoreError::Io { op, path, source }
    }

    /// Whether the disk refused for want of room (ENOSPC).
    pub fn is_storage_full(&self) -> bool {
        matches!(self, StoreError::Io { source, .. } if source.kind() == io::ErrorKind::StorageFull)
    }
}
