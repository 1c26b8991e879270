//! The key space as plain data, for state-machine snapshots.
//!
//! A snapshot holds the current and compacted revisions and every key's retained versions. The
//! change log is not stored: it is exactly the versions above the compaction point in revision
//! order, so restoring rebuilds it. A restored store is verified before use. A snapshot comes
//! from a peer or a disk, and a bad one is refused with an error, never a panic.

use super::history::{Body, KeyHistory, PutBody, Version};
use super::store::KvStore;
use super::Revision;
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// One retained version: its revision, and `(create, version, lease, value)` for a put.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct VersionRecord {
    /// The version's revision.
    pub revision: Revision,
    /// `None` for a tombstone.
    pub put: Option<(i64, i64, i64, Vec<u8>)>,
}

/// The whole key space as plain data.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KvSnapshot {
    /// The store's current revision.
    pub current: i64,
    /// The store's compaction point (-1: never compacted).
    pub compacted: i64,
    /// Every key with its retained versions, in key order.
    pub keys: Vec<(Vec<u8>, Vec<VersionRecord>)>,
}

impl KvStore {
    /// The store as plain data.
    pub fn to_snapshot(&self) -> KvSnapshot {
        let keys = self
            .histories()
            .map(|(key, history)| {
                let versions = history.versions().iter().map(record).collect();
                (key.to_vec(), versions)
            })
            .collect();
        KvSnapshot { current: self.current_revision(), compacted: self.compacted_revision(), keys }
    }

    /// Rebuilds a store from a snapshot, or says why the snapshot is not a valid store.
    pub fn from_snapshot(snapshot: KvSnapshot) -> Result<KvStore, String> {
        let mut keys = Vec::with_capacity(snapshot.keys.len());
        let mut changes = Vec::new();
        for (key, records) in snapshot.keys {
            let key: Arc<[u8]> = Arc::from(key);
            let versions: Vec<Version> = records.into_iter().map(version).collect();
            for v in versions.iter().filter(|v| v.rev.main > snapshot.compacted) {
                changes.push((v.rev, Arc::clone(&key)));
            }
            keys.push((key, KeyHistory::from_versions(versions)));
        }
        if !keys.windows(2).all(|pair| pair[0].0 < pair[1].0) {
            return Err("keys out of order or repeated".into());
        }
        changes.sort_by_key(|(rev, _)| *rev);
        let store = KvStore::from_parts(
            keys.into_iter().collect(),
            changes.into(),
            snapshot.current,
            snapshot.compacted,
        );
        store.verify()?;
        Ok(store)
    }
}

fn record(version: &Version) -> VersionRecord {
    let put = version.put().map(|p| (p.create, p.version, p.lease, p.value.to_vec()));
    VersionRecord { revision: version.rev, put }
}

fn version(record: VersionRecord) -> Version {
    let body = match record.put {
        Some((create, version, lease, value)) => {
            Body::Put(PutBody { create, version, lease, value: value.into() })
        }
        None => Body::Tombstone,
    };
    Version { rev: record.revision, body }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{DeleteRangeRequest, PutRequest};

    fn sample() -> KvStore {
        let mut store = KvStore::new();
        for (key, value) in [("a", "1"), ("b", "2"), ("a", "3"), ("c", "4")] {
            let put = PutRequest { key: key.into(), value: value.into(), ..PutRequest::default() };
            store.put(&put, |_| true).unwrap();
        }
        store.delete_range(&DeleteRangeRequest {
            key: b"b".to_vec(),
            ..DeleteRangeRequest::default()
        });
        store.compact(3).unwrap();
        store
    }

    #[test]
    fn a_store_survives_the_round_trip_exactly() {
        let store = sample();
        let restored = KvStore::from_snapshot(store.to_snapshot()).unwrap();
        assert_eq!(restored.hash(), store.hash());
        assert_eq!(restored.events_since(4), store.events_since(4), "the change log is rebuilt");
        assert_eq!(restored.hash_kv(0), store.hash_kv(0));
        let bytes = postcard::to_allocvec(&store.to_snapshot()).unwrap();
        let decoded: KvSnapshot = postcard::from_bytes(&bytes).unwrap();
        assert_eq!(KvStore::from_snapshot(decoded).unwrap().hash(), store.hash());
    }

    #[test]
    fn an_invalid_snapshot_is_refused_with_a_reason() {
        let mut future = sample().to_snapshot();
        future.current = 5;
        assert!(KvStore::from_snapshot(future).unwrap_err().contains("future"));
        let mut unordered = sample().to_snapshot();
        unordered.keys.swap(0, 1);
        assert!(KvStore::from_snapshot(unordered).is_err());
        let mut tombstone_first = sample().to_snapshot();
        tombstone_first.keys[0].1[0].put = None;
        assert!(KvStore::from_snapshot(tombstone_first).is_err());
        let mut empty_history = sample().to_snapshot();
        empty_history.keys[0].1.clear();
        assert!(KvStore::from_snapshot(empty_history).is_err());
    }
}
