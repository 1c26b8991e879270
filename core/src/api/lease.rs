//! The Lease service's messages (etcd's `LeaseGrant`, `LeaseRevoke`, `LeaseKeepAlive`,
//! `LeaseTimeToLive`, `LeaseLeases`), plus the checkpoint request the leader proposes itself.
//!
//! Field names follow etcd 3.4's `rpc.proto`. A keep-alive is one request/response pair of the
//! gRPC stream; the stream itself belongs to the network layer.

use super::kv::{LeaseId, ResponseHeader};
use serde::{Deserialize, Serialize};

/// Grants a lease (`LeaseGrantRequest`). `id` 0 lets the server choose one.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaseGrantRequest {
    /// The requested time to live in seconds (raised to the minimum TTL when below it).
    pub ttl: i64,
    /// The requested id, or 0.
    pub id: LeaseId,
}

/// The granted lease (`LeaseGrantResponse`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaseGrantResponse {
    /// `revision` is the current revision.
    pub header: ResponseHeader,
    /// The lease id.
    pub id: LeaseId,
    /// The granted TTL in seconds.
    pub ttl: i64,
}

/// Revokes a lease and deletes its keys (`LeaseRevokeRequest`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaseRevokeRequest {
    /// The lease to revoke.
    pub id: LeaseId,
}

/// The answer to a revoke (`LeaseRevokeResponse`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaseRevokeResponse {
    /// `revision` is the revision after the deletions.
    pub header: ResponseHeader,
}

/// One keep-alive on a `LeaseKeepAlive` stream.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaseKeepAliveRequest {
    /// The lease to renew.
    pub id: LeaseId,
}

/// The answer to one keep-alive; `ttl` 0 means the lease does not exist (as etcd answers).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaseKeepAliveResponse {
    /// `revision` is the current revision.
    pub header: ResponseHeader,
    /// The lease id.
    pub id: LeaseId,
    /// The renewed TTL in seconds, or 0 when the lease is gone.
    pub ttl: i64,
}

/// Asks how long a lease has left (`LeaseTimeToLiveRequest`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaseTimeToLiveRequest {
    /// The lease.
    pub id: LeaseId,
    /// Also list the attached keys.
    pub keys: bool,
}

/// How long a lease has left (`LeaseTimeToLiveResponse`); `ttl` -1 when it does not exist.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaseTimeToLiveResponse {
    /// `revision` is the current revision.
    pub header: ResponseHeader,
    /// The lease id.
    pub id: LeaseId,
    /// Whole seconds left, or -1 when the lease does not exist.
    pub ttl: i64,
    /// The TTL the lease was granted with.
    pub granted_ttl: i64,
    /// The attached keys in key order, when asked for.
    pub keys: Vec<Vec<u8>>,
}

/// Lists every lease (`LeaseLeasesRequest`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaseLeasesRequest {}

/// Every lease (`LeaseLeasesResponse`), in id order.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaseLeasesResponse {
    /// `revision` is the current revision.
    pub header: ResponseHeader,
    /// The lease ids.
    pub leases: Vec<LeaseId>,
}

/// One lease's remaining TTL as the leader saw it (`LeaseCheckpoint`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaseCheckpoint {
    /// The lease.
    pub id: LeaseId,
    /// Seconds left; 0 clears the checkpoint (the full TTL applies again).
    pub remaining_ttl: i64,
}

/// Records remaining TTLs in the log so a new leader does not reset long leases
/// (`LeaseCheckpointRequest`); proposed by the leader, never by clients.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaseCheckpointRequest {
    /// The checkpoints.
    pub checkpoints: Vec<LeaseCheckpoint>,
    /// The term of the leader that measured them: they apply only from an entry of that term
    /// (0: always), so a later leader never applies another leader's stale remainders.
    pub term: u64,
}

/// Revokes a lease the leader of `term` found expired; proposed by that leader, never by
/// clients. It takes effect only from an entry of that term: the same proposal forwarded to a
/// later leader (which may have renewed the lease since) does nothing.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaseExpireRequest {
    /// The lease.
    pub id: LeaseId,
    /// The term of the leader that found it expired.
    pub term: u64,
}

/// The answer to a checkpoint.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaseCheckpointResponse {
    /// `revision` is the current revision.
    pub header: ResponseHeader,
}
