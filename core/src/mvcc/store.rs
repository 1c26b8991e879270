//! The key space's state: every key's history, the change log, and the current and compacted
//! revisions; plus the write transaction that all mutations go through.

use super::history::{KeyHistory, Version};
use super::{KeyRange, Revision};
use crate::api::{
    CompactionResponse, Event, EventKind, KeyValue, KvError, LeaseId, ResponseHeader,
};
use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;

/// The revision of an empty store, as in etcd: the first write gets revision 2.
pub const INITIAL_REVISION: i64 = 1;

/// What one version costs against the quota besides its key and value (etcd's `kvOverhead`).
pub const VERSION_OVERHEAD: u64 = 256;

/// What a version of a `key_len`-byte key with a `value_len`-byte value costs against the quota.
pub fn version_cost(key_len: usize, value_len: usize) -> u64 {
    VERSION_OVERHEAD + key_len as u64 + value_len as u64
}

/// The in-memory MVCC key space.
///
/// Reads take `&self`; every mutation runs in a [`WriteTxn`] (see [`KvStore::write`]) that takes
/// the next main revision and numbers its changes with sub-revisions; the request handlers in
/// `txn.rs` and `range.rs` build etcd's semantics on top.
#[derive(Clone, Debug)]
pub struct KvStore {
    /// Every key that has a retained version, in key order.
    keys: BTreeMap<Arc<[u8]>, KeyHistory>,
    /// Every change with a main revision above `compacted`, in revision order. It drives
    /// compaction (only keys changed since the last compaction can have anything to drop) and
    /// event reads for watches.
    changes: VecDeque<(Revision, Arc<[u8]>)>,
    /// The main revision of the last write transaction that changed something.
    current: i64,
    /// The revision of the last compaction, or -1 when there was none (as in etcd).
    compacted: i64,
    /// How many keys are live (their latest version is a put): etcd's `keys_total`.
    live: usize,
}

impl Default for KvStore {
    fn default() -> Self {
        KvStore::new()
    }
}

impl KvStore {
    /// An empty store at revision 1.
    pub fn new() -> Self {
        KvStore {
            keys: BTreeMap::new(),
            changes: VecDeque::new(),
            current: INITIAL_REVISION,
            compacted: -1,
            live: 0,
        }
    }

    /// A store from its parts (verify it before use).
    pub(crate) fn from_parts(
        keys: BTreeMap<Arc<[u8]>, KeyHistory>,
        changes: VecDeque<(Revision, Arc<[u8]>)>,
        current: i64,
        compacted: i64,
    ) -> Self {
        let live = keys.values().filter(|history| history.live().is_some()).count();
        KvStore { keys, changes, current, compacted, live }
    }

    /// The revision of the last write.
    pub fn current_revision(&self) -> i64 {
        self.current
    }

    /// The revision of the last compaction, or -1 when there was none.
    pub fn compacted_revision(&self) -> i64 {
        self.compacted
    }

    /// How many keys are live (etcd's `keys_total`).
    pub fn live_key_count(&self) -> usize {
        self.live
    }

    /// How many keys have retained history (live or not yet compacted away).
    pub fn indexed_key_count(&self) -> usize {
        self.keys.len()
    }

    /// The bytes the retained history takes, as the quota counts them: every version costs
    /// [`VERSION_OVERHEAD`] plus its key and value. Walks the whole store; the state machine
    /// keeps a running total and calls this only after compactions and restores.
    pub fn size_bytes(&self) -> u64 {
        self.keys
            .iter()
            .flat_map(|(key, history)| {
                history.versions().iter().map(move |version| {
                    let value = version.put().map_or(0, |put| put.value.len());
                    version_cost(key.len(), value)
                })
            })
            .sum()
    }

    /// The keys of `range` with the version of each visible at main revision `at`, in key order.
    pub(crate) fn visible(
        &self,
        range: KeyRange<'_>,
        at: i64,
    ) -> impl DoubleEndedIterator<Item = (&[u8], &Version)> + '_ {
        let entries = range.bounds().map(|bounds| self.keys.range::<[u8], _>(bounds));
        entries
            .into_iter()
            .flatten()
            .filter_map(move |(key, history)| history.live_at(at).map(|v| (&**key, v)))
    }

    /// The key's current version as a `KeyValue`, if it exists.
    pub(crate) fn get_live(&self, key: &[u8]) -> Option<KeyValue> {
        let version = self.keys.get(key)?.live()?;
        Some(version.to_key_value(key, true))
    }

    /// Every key's history, in key order; for hashing and invariant checks.
    pub(crate) fn histories(&self) -> impl Iterator<Item = (&[u8], &KeyHistory)> + '_ {
        self.keys.iter().map(|(key, history)| (&**key, history))
    }

    /// Checks that a read at `revision` (0 or less: the current one) can be served, given that
    /// the reader sees revision `current`; returns the revision to read at.
    pub(crate) fn read_revision(&self, revision: i64, current: i64) -> Result<i64, KvError> {
        if revision > current {
            return Err(KvError::FutureRevision);
        }
        let revision = if revision <= 0 { current } else { revision };
        if revision < self.compacted {
            return Err(KvError::Compacted);
        }
        Ok(revision)
    }

    /// Starts a write transaction at the next main revision.
    pub(crate) fn write(&mut self) -> WriteTxn<'_> {
        let main = self.current + 1;
        WriteTxn { store: self, main, sub: 0 }
    }

    /// Discards every version superseded at or before `revision` (etcd's Compact). Reads and
    /// watches below `revision` fail with [`KvError::Compacted`] from now on.
    pub fn compact(&mut self, revision: i64) -> Result<CompactionResponse, KvError> {
        if revision <= self.compacted {
            return Err(KvError::Compacted);
        }
        if revision > self.current {
            return Err(KvError::FutureRevision);
        }
        // Only keys changed since the last compaction can hold a superseded version: every other
        // key already holds just its visible put at or below the last compaction point.
        let touched = self.changes_up_to(revision);
        // One ordered pass beats a lookup per change once changes are many.
        let full_scan = touched.len() > self.keys.len() / 4;
        self.compact_keys(touched, revision, full_scan);
        if self.changes.capacity() > 4 * self.changes.len() {
            self.changes.shrink_to(2 * self.changes.len());
        }
        self.compacted = revision;
        Ok(CompactionResponse { header: ResponseHeader::at(self.current) })
    }

    /// Removes and returns the keys of every change at or below main revision `revision`.
    pub(crate) fn changes_up_to(&mut self, revision: i64) -> Vec<Arc<[u8]>> {
        let split = self.changes.partition_point(|(rev, _)| rev.main <= revision);
        self.changes.drain(..split).map(|(_, key)| key).collect()
    }

    /// Compacts the histories of `touched` keys at `revision`, either by looking each one up or
    /// by one pass over every key (compacting an untouched key is a no-op). Both strategies leave
    /// the same store; a test checks that.
    pub(crate) fn compact_keys(&mut self, touched: Vec<Arc<[u8]>>, revision: i64, full_scan: bool) {
        if full_scan {
            self.keys.retain(|_, history| {
                history.compact(revision);
                !history.is_empty()
            });
            return;
        }
        for key in touched {
            if let Some(history) = self.keys.get_mut(&key) {
                history.compact(revision);
                if history.is_empty() {
                    self.keys.remove(&key);
                }
            }
        }
    }

    /// Every event with a main revision at or after `start`, in revision order, with the
    /// previous version of each key. Fails with [`KvError::Compacted`] when `start` is at or
    /// below the compacted revision (that history is incomplete); a future `start` gives none.
    pub fn events_since(&self, start: i64) -> Result<Vec<Event>, KvError> {
        self.events_between(start, i64::MAX)
    }

    /// Like [`KvStore::events_since`], but only events with a main revision below `end`.
    pub fn events_between(&self, start: i64, end: i64) -> Result<Vec<Event>, KvError> {
        if start <= self.compacted {
            return Err(KvError::Compacted);
        }
        let first = self.changes.partition_point(|(rev, _)| rev.main < start);
        let changes = self.changes.range(first..).take_while(|(rev, _)| rev.main < end);
        Ok(changes.map(|(rev, key)| self.event(*rev, key)).collect())
    }

    /// The events of main revision `revision` only (a write's changes, in sub-revision order);
    /// none when it is compacted or no write produced it.
    pub fn events_at(&self, revision: i64) -> Vec<Event> {
        if revision <= self.compacted {
            return Vec::new();
        }
        let first = self.changes.partition_point(|(rev, _)| rev.main < revision);
        let changes = self.changes.range(first..).take_while(|(rev, _)| rev.main == revision);
        changes.map(|(rev, key)| self.event(*rev, key)).collect()
    }

    /// Every live key attached to a lease, with its lease, in key order.
    pub fn leased_keys(&self) -> impl Iterator<Item = (Vec<u8>, LeaseId)> + '_ {
        self.keys.iter().filter_map(|(key, history)| {
            let lease = history.live()?.put()?.lease;
            (lease != crate::api::NO_LEASE).then(|| (key.to_vec(), lease))
        })
    }

    /// Deletes `keys` (those that are live) in one write, as a lease revoke does; returns the
    /// revision after it.
    pub fn delete_keys(&mut self, keys: &[Vec<u8>]) -> i64 {
        let mut txn = self.write();
        for key in keys {
            txn.delete_range(KeyRange::new(key, &[]));
        }
        txn.finish()
    }

    /// The event at `rev` on `key`; both are known to be in the history.
    fn event(&self, rev: Revision, key: &[u8]) -> Event {
        let history = &self.keys[key];
        let (version, previous) = history.exact(rev).expect("the change log names a version");
        let kind = if version.put().is_some() { EventKind::Put } else { EventKind::Delete };
        Event {
            kind,
            kv: version.to_key_value(key, true),
            prev_kv: previous.filter(|p| p.put().is_some()).map(|p| p.to_key_value(key, true)),
        }
    }

    /// Checks every invariant of the store; a restored snapshot must pass this.
    pub fn verify(&self) -> Result<(), String> {
        if self.current < INITIAL_REVISION || self.compacted > self.current {
            return Err(format!(
                "revisions out of order: current {}, compacted {}",
                self.current, self.compacted
            ));
        }
        for (key, history) in &self.keys {
            history.verify(self.compacted).map_err(|e| format!("key {key:?}: {e}"))?;
            let last = history.versions().last().expect("verified non-empty").rev.main;
            if last > self.current {
                return Err(format!("key {key:?}: a version from the future"));
            }
        }
        let live = self.keys.values().filter(|history| history.live().is_some()).count();
        if live != self.live {
            return Err(format!("{} live keys counted, {live} in the histories", self.live));
        }
        let revisions: Vec<Revision> = self.changes.iter().map(|(rev, _)| *rev).collect();
        if !revisions.windows(2).all(|pair| pair[0] < pair[1]) {
            return Err("change log out of order".into());
        }
        if revisions.first().is_some_and(|rev| rev.main <= self.compacted) {
            return Err("change log reaches below the compaction".into());
        }
        for (rev, key) in &self.changes {
            if self.keys.get(key).and_then(|h| h.exact(*rev)).is_none() {
                return Err(format!("change {rev} of {key:?} has no version"));
            }
        }
        Ok(())
    }

    /// Panics if the store breaks an invariant; for tests and debug checks.
    pub fn check_invariants(&self) {
        if let Err(violation) = self.verify() {
            panic!("{violation}");
        }
    }
}

/// A write transaction: every change it makes gets revision `{main, sub}` with `sub` counting up.
/// Reads through the store see the changes already made, like etcd's write transactions.
/// [`WriteTxn::finish`] publishes the revision if anything changed.
pub(crate) struct WriteTxn<'a> {
    store: &'a mut KvStore,
    main: i64,
    sub: i64,
}

impl WriteTxn<'_> {
    /// The store as this transaction sees it.
    pub(crate) fn store(&self) -> &KvStore {
        self.store
    }

    /// The revision a read inside this transaction sees: the transaction's own revision once it
    /// changed something, the revision before it otherwise.
    pub(crate) fn revision(&self) -> i64 {
        if self.sub > 0 {
            self.main
        } else {
            self.main - 1
        }
    }

    /// Writes `key`, continuing its generation or starting a new one.
    pub(crate) fn put(&mut self, key: &[u8], value: Box<[u8]>, lease: LeaseId) {
        let rev = self.next_revision();
        let key = match self.store.keys.get_key_value(key) {
            Some((shared, _)) => Arc::clone(shared),
            None => Arc::from(key),
        };
        let history = self.store.keys.entry(Arc::clone(&key)).or_default();
        if history.live().is_none() {
            self.store.live += 1;
        }
        history.push_put(rev, value, lease);
        self.store.changes.push_back((rev, key));
    }

    /// Deletes every live key of `range`; returns the deleted keys' previous versions.
    pub(crate) fn delete_range(&mut self, range: KeyRange<'_>) -> Vec<KeyValue> {
        let at = self.revision();
        let doomed: Vec<KeyValue> =
            self.store.visible(range, at).map(|(key, v)| v.to_key_value(key, true)).collect();
        for kv in &doomed {
            let rev = self.next_revision();
            let (key, history) =
                self.store.keys.get_key_value_mut(&kv.key[..]).expect("visible key is indexed");
            history.push_tombstone(rev);
            self.store.live -= 1;
            self.store.changes.push_back((rev, Arc::clone(key)));
        }
        doomed
    }

    /// Ends the transaction; returns the revision it produced (the previous one if it changed
    /// nothing).
    pub(crate) fn finish(self) -> i64 {
        let revision = self.revision();
        self.store.current = revision;
        revision
    }

    fn next_revision(&mut self) -> Revision {
        let rev = Revision::new(self.main, self.sub);
        self.sub += 1;
        rev
    }
}

/// Extension to fetch a map entry mutably together with its shared key.
trait GetKeyValueMut<V> {
    fn get_key_value_mut(&mut self, key: &[u8]) -> Option<(&Arc<[u8]>, &mut V)>;
}

impl<V> GetKeyValueMut<V> for BTreeMap<Arc<[u8]>, V> {
    fn get_key_value_mut(&mut self, key: &[u8]) -> Option<(&Arc<[u8]>, &mut V)> {
        self.range_mut::<[u8], _>((std::ops::Bound::Included(key), std::ops::Bound::Included(key)))
            .next()
    }
}
