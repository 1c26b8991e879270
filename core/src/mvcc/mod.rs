//! The MVCC key space: every key's versions by revision, exactly as etcd v3 serves them.
//!
//! The store ([`KvStore`]) keeps the whole state in memory, ZooKeeper-style: an ordered map from
//! key to that key's [`history`] (its versions, grouped into generations by tombstones) and a
//! revision-ordered change log used for compaction and, later, watches. Every write transaction
//! takes the next main revision and numbers its changes with sub-revisions. On top of the store
//! sit the request handlers with etcd's exact semantics: [`range`](KvStore::range),
//! [`put`](KvStore::put), [`delete_range`](KvStore::delete_range), [`txn`](KvStore::txn) and
//! [`compact`](KvStore::compact); requests are checked first with [`validate`], as etcd's gRPC
//! layer does before proposing; [`hash`] computes the digests members compare to detect
//! corruption. Nothing here touches the clock, IO or randomness.

pub mod hash;
mod history;
mod key_range;
mod range;
mod revision;
pub mod snapshot;
mod store;
mod txn;
pub mod validate;

pub use hash::{KvHash, KvHasher};
pub use key_range::KeyRange;
pub use revision::Revision;
pub use snapshot::KvSnapshot;
pub use store::{version_cost, KvStore, VERSION_OVERHEAD};
pub use txn::is_read_only;

#[cfg(test)]
mod tests;
