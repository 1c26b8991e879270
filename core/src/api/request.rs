//! The requests a node serves and their answers, one enum each over the KV service's messages.

use super::cluster::{ClusterRequest, ClusterResponse};
use super::kv::*;
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
        }
    }
}
