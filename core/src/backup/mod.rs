//! Backups in etcd 3.4's format, so that etcd's own tools and etcd itself can read what stead
//! writes, and stead can start from what etcd wrote.
//!
//! A backup file is a bbolt database laid out like etcd's backend ([`bolt`] for the file format,
//! [`schema`] for the buckets) followed by the SHA-256 of the database, which etcd's
//! Maintenance.Snapshot appends and `etcdctl snapshot restore` checks. [`EtcdState`] is the
//! plain data in between: what the state machine converts to and from (`apply/backup.rs`).

pub mod bolt;
pub mod schema;

use crate::api::{AlarmMember, KeyValue, Member, Permission};
use crate::auth::User;
use crate::lease::LeaseRecord;
use sha2::{Digest, Sha256};

/// Bytes of the SHA-256 trailer.
const DIGEST_LEN: usize = 32;

/// One entry of etcd's `key` bucket: a put (the key's version as clients see it) or a deletion.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EtcdRevision {
    /// The revision of the write transaction.
    pub main: i64,
    /// The change's position inside the transaction.
    pub sub: i64,
    /// A deletion (only `kv.key` is meaningful).
    pub tombstone: bool,
    /// The key's version as written.
    pub kv: KeyValue,
}

/// The state an etcd 3.4 backend holds, as plain data.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EtcdState {
    /// Every retained change, in revision order.
    pub revisions: Vec<EtcdRevision>,
    /// The finished compaction's revision (-1: never compacted).
    pub compacted: i64,
    /// A compaction scheduled but maybe not finished (0: none).
    pub scheduled_compaction: i64,
    /// The raft index the state includes.
    pub consistent_index: u64,
    /// The leases.
    pub leases: Vec<LeaseRecord>,
    /// Whether auth is enabled.
    pub auth_enabled: bool,
    /// The auth revision.
    pub auth_revision: u64,
    /// Users by name.
    pub users: Vec<(String, User)>,
    /// Roles by name, with their permissions.
    pub roles: Vec<(String, Vec<Permission>)>,
    /// Raised alarms.
    pub alarms: Vec<AlarmMember>,
    /// The members (written for etcd's tools; a restore replaces them).
    pub members: Vec<Member>,
}

/// A backup file of `state`: the bbolt database and its SHA-256.
pub fn to_file(state: &EtcdState) -> Vec<u8> {
    let mut bytes = bolt::write(&schema::encode(state));
    let digest = Sha256::digest(&bytes);
    bytes.extend_from_slice(&digest);
    bytes
}

/// The database of a backup file, its SHA-256 checked (as `etcdctl snapshot restore` does) unless
/// `skip_hash_check` (then a raw database file, such as `member/snap/db`, is accepted too).
pub fn database(bytes: &[u8], skip_hash_check: bool) -> Result<&[u8], String> {
    // etcd's test for a trailer: a database is a multiple of 512 bytes, the digest 32 more.
    let has_hash = bytes.len() % 512 == DIGEST_LEN;
    if !has_hash {
        return match skip_hash_check {
            true => Ok(bytes),
            false => Err("snapshot missing hash but --skip-hash-check=false".into()),
        };
    }
    let (db, digest) = bytes.split_at(bytes.len() - DIGEST_LEN);
    if !skip_hash_check {
        let expected = Sha256::digest(db);
        if expected.as_slice() != digest {
            return Err(format!("expected sha256 {}, got {}", hex(digest), hex(&expected)));
        }
    }
    Ok(db)
}

/// The state in a backup file (see [`database`] for the hash check).
pub fn from_file(bytes: &[u8], skip_hash_check: bool) -> Result<EtcdState, String> {
    let db = database(bytes, skip_hash_check)?;
    schema::decode(&bolt::read(db)?)
}

/// What `etcdctl snapshot status` reports of a backup.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Status {
    /// CRC-32C over every bucket name, key and value, in order.
    pub hash: u32,
    /// The revision of the last change in the `key` bucket.
    pub revision: i64,
    /// Keys in all buckets.
    pub total_keys: u64,
    /// The database's size in bytes.
    pub total_size: u64,
}

/// The status of a backup file (or a raw database), computed as etcd computes it.
pub fn status(bytes: &[u8]) -> Result<Status, String> {
    let db = database(bytes, true)?;
    let (buckets, size) = bolt::read_sized(db)?;
    let mut status = Status { hash: 0, revision: 0, total_keys: 0, total_size: size as u64 };
    for (name, entries) in &buckets {
        status.hash = crc32c::crc32c_append(status.hash, name);
        for (key, value) in entries {
            status.hash = crc32c::crc32c_append(status.hash, key);
            status.hash = crc32c::crc32c_append(status.hash, value);
            status.total_keys += 1;
            if name.as_slice() == b"key" {
                let (main, _, _) = schema::parse_revision(key)
                    .ok_or_else(|| format!("key bucket: {key:02x?} is not a revision"))?;
                status.revision = main;
            }
        }
    }
    Ok(status)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
