//! One key's history: its versions in revision order, with generations split by tombstones.
//!
//! etcd's `keyIndex` keeps a list of generations, each starting at a put that created the key and
//! ending at a tombstone. Here the same information is one flat, revision-ordered list of versions:
//! a generation is the run of puts after a tombstone (or from the start), and every put carries
//! its create revision and version, so reading a key at a revision is one binary search.

use super::Revision;
use crate::api::{KeyValue, LeaseId};

/// What a version holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Body {
    /// The key was written.
    Put(PutBody),
    /// The key was deleted; this ends its generation.
    Tombstone,
}

/// The data of one put.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct PutBody {
    /// The main revision of the first put of this generation.
    pub(crate) create: i64,
    /// 1 for the put that created the generation, then one more per put.
    pub(crate) version: i64,
    /// The attached lease.
    pub(crate) lease: LeaseId,
    /// The value.
    pub(crate) value: Box<[u8]>,
}

/// One entry of a key's history.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Version {
    /// When this version was written.
    pub(crate) rev: Revision,
    /// What it holds.
    pub(crate) body: Body,
}

impl Version {
    /// The put data, unless this is a tombstone.
    pub(crate) fn put(&self) -> Option<&PutBody> {
        match &self.body {
            Body::Put(put) => Some(put),
            Body::Tombstone => None,
        }
    }

    /// This version as etcd's `KeyValue`. A tombstone gives only the key and mod revision, as
    /// etcd's delete events do.
    pub(crate) fn to_key_value(&self, key: &[u8], with_value: bool) -> KeyValue {
        match &self.body {
            Body::Put(put) => KeyValue {
                key: key.to_vec(),
                create_revision: put.create,
                mod_revision: self.rev.main,
                version: put.version,
                value: if with_value { put.value.to_vec() } else { Vec::new() },
                lease: put.lease,
            },
            Body::Tombstone => {
                KeyValue { key: key.to_vec(), mod_revision: self.rev.main, ..KeyValue::default() }
            }
        }
    }
}

/// Every retained version of one key, oldest first.
///
/// Invariants (checked by [`KeyHistory::check_invariants`]): revisions strictly increase; a
/// tombstone never follows a tombstone, and a history never starts with one unless compaction
/// has not reached it yet; within a generation, versions count up by one from the create put.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct KeyHistory {
    versions: Vec<Version>,
}

impl KeyHistory {
    /// A history holding `versions` as given (verify it before use).
    pub(crate) fn from_versions(versions: Vec<Version>) -> Self {
        KeyHistory { versions }
    }

    /// The retained versions, oldest first.
    pub(crate) fn versions(&self) -> &[Version] {
        &self.versions
    }

    /// True when nothing is retained (compaction removed all of it).
    pub(crate) fn is_empty(&self) -> bool {
        self.versions.is_empty()
    }

    /// The last version written at or before main revision `main`, tombstones included.
    pub(crate) fn at(&self, main: i64) -> Option<&Version> {
        let after = self.versions.partition_point(|v| v.rev.main <= main);
        after.checked_sub(1).map(|index| &self.versions[index])
    }

    /// The key's value at main revision `main`, if it existed then.
    pub(crate) fn live_at(&self, main: i64) -> Option<&Version> {
        self.at(main).filter(|v| v.put().is_some())
    }

    /// The newest version if it is a put (the key exists now).
    pub(crate) fn live(&self) -> Option<&Version> {
        self.versions.last().filter(|v| v.put().is_some())
    }

    /// The version written at exactly `rev` and the version before it, if retained.
    pub(crate) fn exact(&self, rev: Revision) -> Option<(&Version, Option<&Version>)> {
        let index = self.versions.binary_search_by(|v| v.rev.cmp(&rev)).ok()?;
        let previous = index.checked_sub(1).map(|p| &self.versions[p]);
        Some((&self.versions[index], previous))
    }

    /// Appends a put at `rev`, continuing the live generation or starting a new one.
    pub(crate) fn push_put(&mut self, rev: Revision, value: Box<[u8]>, lease: LeaseId) {
        debug_assert!(self.versions.last().is_none_or(|v| v.rev < rev));
        let (create, version) = match self.live().and_then(Version::put) {
            Some(current) => (current.create, current.version + 1),
            None => (rev.main, 1),
        };
        let body = Body::Put(PutBody { create, version, lease, value });
        self.push(Version { rev, body });
    }

    /// Appends a tombstone at `rev`. The key must exist.
    pub(crate) fn push_tombstone(&mut self, rev: Revision) {
        debug_assert!(self.live().is_some(), "tombstone on a deleted key");
        debug_assert!(self.versions.last().is_none_or(|v| v.rev < rev));
        self.push(Version { rev, body: Body::Tombstone });
    }

    /// Appends a version. Most keys hold one version, so the first gets an exact allocation
    /// rather than `Vec`'s default of four.
    fn push(&mut self, version: Version) {
        if self.versions.capacity() == 0 {
            self.versions.reserve_exact(1);
        }
        self.versions.push(version);
    }

    /// Drops every version superseded at or before main revision `at`: what remains is every
    /// version after `at` plus the version visible at `at` if it is a put (etcd's compaction).
    pub(crate) fn compact(&mut self, at: i64) {
        let after = self.versions.partition_point(|v| v.rev.main <= at);
        let keep_from = match after.checked_sub(1) {
            Some(visible) if self.versions[visible].put().is_some() => visible,
            _ => after,
        };
        self.versions.drain(..keep_from);
        if self.versions.capacity() > 2 * self.versions.len() {
            self.versions.shrink_to_fit();
        }
    }

    /// Checks the history's invariants; `compacted` is the store's compaction point.
    pub(crate) fn verify(&self, compacted: i64) -> Result<(), String> {
        let Some(first) = self.versions.first() else { return Err("an empty history".into()) };
        if first.put().is_none() {
            return Err("a history that starts with a tombstone".into());
        }
        let old = self.versions.iter().filter(|v| v.rev.main <= compacted).count();
        if old > 1 {
            return Err(format!("{old} versions at or below the compaction point"));
        }
        for pair in self.versions.windows(2) {
            if pair[0].rev >= pair[1].rev {
                return Err("revisions must increase".into());
            }
            match (&pair[0].body, &pair[1].body) {
                (Body::Tombstone, Body::Tombstone) => return Err("two tombstones in a row".into()),
                (Body::Tombstone, Body::Put(put))
                    if (put.create, put.version) != (pair[1].rev.main, 1) =>
                {
                    return Err("a new generation must start at version 1".into());
                }
                (Body::Put(before), Body::Put(put))
                    if put.create != before.create || put.version != before.version + 1 =>
                {
                    return Err("versions must count up within a generation".into());
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// Panics if the history breaks its invariants; for tests.
    #[cfg(test)]
    pub(crate) fn check_invariants(&self) {
        if let Err(violation) = self.verify(-1) {
            panic!("{violation}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rev(main: i64) -> Revision {
        Revision::new(main, 0)
    }

    fn history(ops: &[(i64, Option<&str>)]) -> KeyHistory {
        let mut history = KeyHistory::default();
        for &(main, value) in ops {
            match value {
                Some(value) => history.push_put(rev(main), value.as_bytes().into(), 0),
                None => history.push_tombstone(rev(main)),
            }
        }
        history.check_invariants();
        history
    }

    fn mains(history: &KeyHistory) -> Vec<i64> {
        history.versions().iter().map(|v| v.rev.main).collect()
    }

    #[test]
    fn generations_restart_create_and_version() {
        let h = history(&[(2, Some("a")), (3, Some("b")), (5, None), (7, Some("c"))]);
        let v3 = h.live_at(4).and_then(Version::put).unwrap();
        assert_eq!((v3.create, v3.version, &*v3.value), (2, 2, &b"b"[..]));
        assert!(h.live_at(5).is_none() && h.live_at(6).is_none() && h.live_at(1).is_none());
        let v7 = h.live().and_then(Version::put).unwrap();
        assert_eq!((v7.create, v7.version), (7, 1));
    }

    #[test]
    fn compaction_keeps_the_visible_put_and_everything_after() {
        let mut h = history(&[(2, Some("a")), (3, Some("b")), (5, None), (7, Some("c"))]);
        h.compact(4);
        assert_eq!(mains(&h), [3, 5, 7]);
        h.compact(5);
        assert_eq!(mains(&h), [7], "a tombstone visible at the compaction point goes");
        h.compact(9);
        assert_eq!(mains(&h), [7], "the live version survives any compaction");
    }

    #[test]
    fn compaction_of_a_deleted_key_empties_it() {
        let mut h = history(&[(2, Some("a")), (4, None)]);
        h.compact(3);
        assert_eq!(mains(&h), [2, 4]);
        h.compact(4);
        assert!(h.is_empty());
    }

    #[test]
    fn exact_finds_the_version_and_its_predecessor() {
        let h = history(&[(2, Some("a")), (5, None)]);
        let (deleted, previous) = h.exact(rev(5)).unwrap();
        assert_eq!(deleted.body, Body::Tombstone);
        assert_eq!(previous.unwrap().rev, rev(2));
        assert!(h.exact(rev(3)).is_none());
        let tomb = deleted.to_key_value(b"k", true);
        assert_eq!((tomb.mod_revision, tomb.version, tomb.create_revision), (5, 0, 0));
    }
}
