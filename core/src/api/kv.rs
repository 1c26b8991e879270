//! The KV service's messages: Range, Put, DeleteRange, Txn and Compact (etcd's `etcdserverpb`
//! and `mvccpb`).
//!
//! Field names and meanings follow etcd 3.4's `rpc.proto` and `kv.proto`. Where protobuf needs a
//! pair of fields to express one choice (a compare's `target` enum plus its `target_union`), this
//! module uses one Rust enum; the gRPC layer maps a mismatched pair the way etcd reads it.

use serde::{Deserialize, Serialize};

/// A lease id; `0` means "no lease", as in etcd.
pub type LeaseId = i64;

/// `NO_LEASE`: the lease id of a key attached to no lease.
pub const NO_LEASE: LeaseId = 0;

/// One version of a key (etcd's `mvccpb.KeyValue`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyValue {
    /// The key.
    pub key: Vec<u8>,
    /// The revision of the put that created this generation of the key.
    pub create_revision: i64,
    /// The revision of the last modification of the key.
    pub mod_revision: i64,
    /// How many times the key was put since it was created (1 for a new key).
    pub version: i64,
    /// The value (empty when the request asked for keys only).
    pub value: Vec<u8>,
    /// The lease attached to the key, or [`NO_LEASE`].
    pub lease: LeaseId,
}

/// The header of every response. The MVCC layer sets `revision`; the node fills in the rest.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResponseHeader {
    /// The id of the cluster that answered.
    pub cluster_id: u64,
    /// The id of the member that answered.
    pub member_id: u64,
    /// The key-value store's revision when the request was served.
    pub revision: i64,
    /// The raft term when the request was served.
    pub raft_term: u64,
}

impl ResponseHeader {
    /// A header that carries only a revision, as MVCC produces it.
    pub fn at(revision: i64) -> Self {
        ResponseHeader { revision, ..ResponseHeader::default() }
    }
}

/// How a range orders its results (etcd's `RangeRequest.SortOrder`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum SortOrder {
    /// No sorting requested: results come in ascending key order.
    #[default]
    None,
    /// Lowest target value first.
    Ascend,
    /// Highest target value first.
    Descend,
}

/// What a range sorts by (etcd's `RangeRequest.SortTarget`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum SortTarget {
    /// The key bytes.
    #[default]
    Key,
    /// The key's version.
    Version,
    /// The key's create revision.
    Create,
    /// The key's mod revision.
    Mod,
    /// The value bytes.
    Value,
}

/// Reads keys (etcd's `RangeRequest`).
///
/// `range_end` empty: the single key `key`. `range_end == [0]`: every key `>= key`. Otherwise the
/// half-open interval `[key, range_end)`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RangeRequest {
    /// The first key of the range (must not be empty).
    pub key: Vec<u8>,
    /// The end of the range; see the type's documentation.
    pub range_end: Vec<u8>,
    /// At most this many keys are returned; `<= 0` means no limit.
    pub limit: i64,
    /// Read at this revision; `<= 0` means the current revision.
    pub revision: i64,
    /// The order of the results.
    pub sort_order: SortOrder,
    /// What the results are ordered by.
    pub sort_target: SortTarget,
    /// Serve from the local member without a linearizability round (the node's concern).
    pub serializable: bool,
    /// Return keys without values.
    pub keys_only: bool,
    /// Return only the count.
    pub count_only: bool,
    /// Drop keys whose mod revision is below this (0: no bound).
    pub min_mod_revision: i64,
    /// Drop keys whose mod revision is above this (0: no bound).
    pub max_mod_revision: i64,
    /// Drop keys whose create revision is below this (0: no bound).
    pub min_create_revision: i64,
    /// Drop keys whose create revision is above this (0: no bound).
    pub max_create_revision: i64,
}

/// The answer to a [`RangeRequest`].
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RangeResponse {
    /// `revision` is the store's revision, even for a historical read.
    pub header: ResponseHeader,
    /// The matching keys, after filters, sorting and the limit.
    pub kvs: Vec<KeyValue>,
    /// True when the limit cut off further matching keys.
    pub more: bool,
    /// How many keys are in the range at the read revision, before filters and the limit.
    pub count: i64,
}

/// Writes one key (etcd's `PutRequest`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PutRequest {
    /// The key (must not be empty).
    pub key: Vec<u8>,
    /// The value (must be empty with `ignore_value`).
    pub value: Vec<u8>,
    /// The lease to attach, or [`NO_LEASE`] (must be 0 with `ignore_lease`).
    pub lease: LeaseId,
    /// Return the key's previous version.
    pub prev_kv: bool,
    /// Keep the current value; the key must exist.
    pub ignore_value: bool,
    /// Keep the current lease; the key must exist.
    pub ignore_lease: bool,
}

/// The answer to a [`PutRequest`].
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PutResponse {
    /// `revision` is the revision of this put.
    pub header: ResponseHeader,
    /// The previous version, when asked for and the key existed.
    pub prev_kv: Option<KeyValue>,
}

/// Deletes a key or a range of keys (etcd's `DeleteRangeRequest`); ranges as in [`RangeRequest`].
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeleteRangeRequest {
    /// The first key of the range (must not be empty).
    pub key: Vec<u8>,
    /// The end of the range, as in [`RangeRequest`].
    pub range_end: Vec<u8>,
    /// Return the deleted versions.
    pub prev_kv: bool,
}

/// The answer to a [`DeleteRangeRequest`].
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeleteRangeResponse {
    /// `revision` is the deletion's revision, or the current one when nothing was deleted.
    pub header: ResponseHeader,
    /// How many keys were deleted.
    pub deleted: i64,
    /// The deleted versions, when asked for.
    pub prev_kvs: Vec<KeyValue>,
}

/// How a compare relates the key's field to the given operand (etcd's `Compare.CompareResult`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum CompareResult {
    /// Field equals operand.
    #[default]
    Equal,
    /// Field is greater than operand.
    Greater,
    /// Field is less than operand.
    Less,
    /// Field differs from operand.
    NotEqual,
}

/// The field a compare reads and the operand it compares it with (etcd's `target` and
/// `target_union`, as one value).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum CompareTarget {
    /// The key's version.
    Version(i64),
    /// The key's create revision.
    Create(i64),
    /// The key's mod revision.
    Mod(i64),
    /// The key's value.
    Value(Vec<u8>),
    /// The key's lease.
    Lease(LeaseId),
}

impl Default for CompareTarget {
    fn default() -> Self {
        CompareTarget::Version(0)
    }
}

/// One condition of a transaction (etcd's `Compare`). Over a range, every key must satisfy it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Compare {
    /// The relation that must hold.
    pub result: CompareResult,
    /// The field and operand.
    pub target: CompareTarget,
    /// The key (must not be empty).
    pub key: Vec<u8>,
    /// The end of the range, as in [`RangeRequest`].
    pub range_end: Vec<u8>,
}

/// One operation of a transaction branch (etcd's `RequestOp`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum RequestOp {
    /// A read.
    Range(RangeRequest),
    /// A write of one key.
    Put(PutRequest),
    /// A deletion.
    DeleteRange(DeleteRangeRequest),
    /// A nested transaction.
    Txn(TxnRequest),
}

/// The answer to one [`RequestOp`] (etcd's `ResponseOp`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ResponseOp {
    /// Answer to a read.
    Range(RangeResponse),
    /// Answer to a put.
    Put(PutResponse),
    /// Answer to a deletion.
    DeleteRange(DeleteRangeResponse),
    /// Answer to a nested transaction.
    Txn(TxnResponse),
}

/// A conditional multi-operation request, applied atomically at one revision (etcd's
/// `TxnRequest`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TxnRequest {
    /// All must hold for `success` to run; otherwise `failure` runs.
    pub compare: Vec<Compare>,
    /// Operations run when every compare holds.
    pub success: Vec<RequestOp>,
    /// Operations run otherwise.
    pub failure: Vec<RequestOp>,
}

/// The answer to a [`TxnRequest`].
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TxnResponse {
    /// `revision` is the transaction's revision (the current one if it changed nothing).
    pub header: ResponseHeader,
    /// Whether the compares held.
    pub succeeded: bool,
    /// One answer per operation of the branch that ran.
    pub responses: Vec<ResponseOp>,
}

/// Discards history below a revision (etcd's `CompactionRequest`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CompactionRequest {
    /// Every version superseded at or before this revision is discarded.
    pub revision: i64,
    /// Wait until the compaction is physically done (always true here: it is immediate).
    pub physical: bool,
}

/// The answer to a [`CompactionRequest`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CompactionResponse {
    /// `revision` is the current revision.
    pub header: ResponseHeader,
}

/// What happened to a key at one revision (etcd's `mvccpb.Event`), as the history keeps it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    /// Put or delete.
    pub kind: EventKind,
    /// The new version; for a delete, only `key` and `mod_revision` are set.
    pub kv: KeyValue,
    /// The version this event replaced, if the key existed.
    pub prev_kv: Option<KeyValue>,
}

/// The kind of an [`Event`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum EventKind {
    /// The key was written.
    Put,
    /// The key was deleted.
    Delete,
}
