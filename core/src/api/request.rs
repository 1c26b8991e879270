//! The requests a node serves and their answers, one enum each over the KV service's messages.

use super::auth::{AuthRequest, AuthResponse};
use super::cluster::{ClusterRequest, ClusterResponse};
use super::kv::*;
use super::lease::*;
use super::maintenance::*;
use serde::{Deserialize, Serialize};

/// A client request.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Request {
    /// Read keys.
    Range(RangeRequest),
    /// Write a key.
    Put(PutRequest),
    /// Delete keys.
    DeleteRange(DeleteRangeRequest),
    /// A transaction.
    Txn(TxnRequest),
    /// Discard history.
    Compact(CompactionRequest),
    /// Change or list the membership, or move the leader.
    Cluster(ClusterRequest),
    /// Grant a lease.
    LeaseGrant(LeaseGrantRequest),
    /// Revoke a lease and delete its keys.
    LeaseRevoke(LeaseRevokeRequest),
    /// Renew a lease (one message of a keep-alive stream).
    LeaseKeepAlive(LeaseKeepAliveRequest),
    /// How long a lease has left.
    LeaseTimeToLive(LeaseTimeToLiveRequest),
    /// List the leases.
    LeaseLeases(LeaseLeasesRequest),
    /// Record remaining TTLs; the leader proposes these itself, clients cannot.
    LeaseCheckpoint(LeaseCheckpointRequest),
    /// Revoke an expired lease; the leader proposes these itself, clients cannot.
    LeaseExpire(LeaseExpireRequest),
    /// Users, roles, permissions, tokens.
    Auth(AuthRequest),
    /// Alarms, status, digests, defragmentation and backups.
    Maintenance(MaintenanceRequest),
    /// Start a corruption check; the leader proposes these itself, clients cannot.
    HashCheck,
    /// A member's answer to a corruption check; members propose these, clients cannot.
    HashReport(HashReportRequest),
}

impl Request {
    /// Whether only the server makes this request (clients that send it are refused).
    pub fn is_internal(&self) -> bool {
        matches!(
            self,
            Request::LeaseExpire(_)
                | Request::LeaseCheckpoint(_)
                | Request::HashCheck
                | Request::HashReport(_)
                | Request::Cluster(super::ClusterRequest::Publish { .. })
        )
    }
}

/// The answer to a [`Request`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Response {
    /// Answer to a read.
    Range(RangeResponse),
    /// Answer to a put.
    Put(PutResponse),
    /// Answer to a deletion.
    DeleteRange(DeleteRangeResponse),
    /// Answer to a transaction.
    Txn(TxnResponse),
    /// Answer to a compaction.
    Compact(CompactionResponse),
    /// Answer to a cluster request.
    Cluster(ClusterResponse),
    /// Answer to a grant.
    LeaseGrant(LeaseGrantResponse),
    /// Answer to a revoke.
    LeaseRevoke(LeaseRevokeResponse),
    /// Answer to a keep-alive.
    LeaseKeepAlive(LeaseKeepAliveResponse),
    /// Answer to a time-to-live question.
    LeaseTimeToLive(LeaseTimeToLiveResponse),
    /// Answer to a lease listing.
    LeaseLeases(LeaseLeasesResponse),
    /// Answer to a checkpoint.
    LeaseCheckpoint(LeaseCheckpointResponse),
    /// Answer to an Auth request.
    Auth(AuthResponse),
    /// Answer to an alarm request.
    Alarm(AlarmResponse),
    /// Answer to Status.
    Status(StatusResponse),
    /// Answer to Hash.
    Hash(HashResponse),
    /// Answer to HashKV.
    HashKv(HashKvResponse),
    /// Answer to Snapshot.
    Snapshot(SnapshotResponse),
    /// Answer carrying only a header (Defragment, and the corruption check's entries).
    Empty(ResponseHeader),
}

impl Response {
    /// The response's header, to fill in the member's identity and term.
    pub fn header_mut(&mut self) -> &mut ResponseHeader {
        match self {
            Response::Range(r) => &mut r.header,
            Response::Put(r) => &mut r.header,
            Response::DeleteRange(r) => &mut r.header,
            Response::Txn(r) => &mut r.header,
            Response::Compact(r) => &mut r.header,
            Response::Cluster(r) => &mut r.header,
            Response::LeaseGrant(r) => &mut r.header,
            Response::LeaseRevoke(r) => &mut r.header,
            Response::LeaseKeepAlive(r) => &mut r.header,
            Response::LeaseTimeToLive(r) => &mut r.header,
            Response::LeaseLeases(r) => &mut r.header,
            Response::LeaseCheckpoint(r) => &mut r.header,
            Response::Auth(r) => &mut r.header,
            Response::Alarm(r) => &mut r.header,
            Response::Status(r) => &mut r.header,
            Response::Hash(r) => &mut r.header,
            Response::HashKv(r) => &mut r.header,
            Response::Snapshot(r) => &mut r.header,
            Response::Empty(header) => header,
        }
    }
}
