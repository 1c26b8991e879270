//! Digests of the key space that members compare to detect divergence (etcd's Hash and HashKV).
//!
//! Both are CRC-32C over a canonical encoding of versions in key order, then revision order.
//! Equal histories give equal digests on every member; the encoding is stead's own, so the values
//! differ from etcd's (which hashes bolt pages), but the rules for what HashKV covers are etcd's:
//! every version in `(compacted, rev]`, plus each key's put visible at `rev` if it is older than
//! the compaction (what a compaction at `rev` would keep); revision 0 means the current one and a
//! negative one covers nothing. One difference: when no key at all is live at `rev`, etcd 3.4
//! also covers every version kept by the last compaction (its `len(keep) > 0` check); here the
//! rule stays the same in that case, so a digest never depends on whether some unrelated key is
//! live.

use super::history::{Body, Version};
use super::store::KvStore;
use crate::api::KvError;

/// The answer to HashKV.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KvHash {
    /// The digest.
    pub hash: u32,
    /// The store's current revision.
    pub current_revision: i64,
    /// The store's compacted revision (-1 if never compacted).
    pub compact_revision: i64,
}

/// Accumulates the digest of a sequence of versions.
#[derive(Clone, Debug, Default)]
pub struct KvHasher {
    crc: u32,
}

impl KvHasher {
    /// A hasher that has seen nothing.
    pub fn new() -> Self {
        KvHasher::default()
    }

    /// Adds one version of `key`: written at revision `{main, sub}`, a tombstone when `put` is
    /// `None`, otherwise `(create_revision, version, lease, value)`.
    pub fn add(&mut self, key: &[u8], main: i64, sub: i64, put: Option<(i64, i64, i64, &[u8])>) {
        self.bytes(key);
        self.int(main);
        self.int(sub);
        match put {
            None => self.crc = crc32c::crc32c_append(self.crc, &[0]),
            Some((create, version, lease, value)) => {
                self.crc = crc32c::crc32c_append(self.crc, &[1]);
                self.int(create);
                self.int(version);
                self.int(lease);
                self.bytes(value);
            }
        }
    }

    /// Adds a bare number (used for revisions that are part of the state).
    pub fn int(&mut self, value: i64) {
        self.crc = crc32c::crc32c_append(self.crc, &value.to_le_bytes());
    }

    /// The digest so far.
    pub fn finish(&self) -> u32 {
        self.crc
    }

    fn bytes(&mut self, bytes: &[u8]) {
        self.int(bytes.len() as i64);
        self.crc = crc32c::crc32c_append(self.crc, bytes);
    }

    fn version(&mut self, key: &[u8], version: &Version) {
        let put = match &version.body {
            Body::Put(put) => Some((put.create, put.version, put.lease, &put.value[..])),
            Body::Tombstone => None,
        };
        self.add(key, version.rev.main, version.rev.sub, put);
    }
}

impl KvStore {
    /// The digest of the whole key space: every retained version plus the current and compacted
    /// revisions (etcd's Hash).
    pub fn hash(&self) -> u32 {
        let mut hasher = KvHasher::new();
        for (key, history) in self.histories() {
            history.versions().iter().for_each(|version| hasher.version(key, version));
        }
        hasher.int(self.current_revision());
        hasher.int(self.compacted_revision());
        hasher.finish()
    }

    /// The digest of the history up to `revision` (0: the current one), as etcd's HashKV
    /// defines it. Fails for a revision at or below the compaction, or in the future.
    pub fn hash_kv(&self, revision: i64) -> Result<KvHash, KvError> {
        let compacted = self.compacted_revision();
        if revision > 0 && revision <= compacted {
            return Err(KvError::Compacted);
        }
        if revision > self.current_revision() {
            return Err(KvError::FutureRevision);
        }
        // As in etcd, 0 means the current revision and a negative one covers nothing.
        let revision = if revision == 0 { self.current_revision() } else { revision };
        let mut hasher = KvHasher::new();
        for (key, history) in self.histories() {
            let kept = history.live_at(revision).filter(|v| v.rev.main <= compacted);
            let newer = history
                .versions()
                .iter()
                .filter(|v| v.rev.main > compacted && v.rev.main <= revision);
            kept.into_iter().chain(newer).for_each(|version| hasher.version(key, version));
        }
        Ok(KvHash {
            hash: hasher.finish(),
            current_revision: self.current_revision(),
            compact_revision: compacted,
        })
    }
}
