//! The errors the core answers with, and their mapping to etcd's gRPC status codes and texts.
//!
//! Texts are the ones etcd 3.4 puts on the wire (`rpctypes/error.go`), so `etcdctl` prints the
//! same line for stead as for etcd. The mapping lives here and nowhere else: a new error gets its
//! code and text in this file, with a test pinning them.

use serde::{Deserialize, Serialize};
use std::fmt;

/// The gRPC status codes etcd answers with (numbering from the gRPC specification).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[repr(u8)]
pub enum GrpcCode {
    /// 1: the operation was cancelled.
    Canceled = 1,
    /// 2: an error etcd does not map to a status (it answers Unknown).
    Unknown = 2,
    /// 3: the client sent a malformed request.
    InvalidArgument = 3,
    /// 4: the deadline passed.
    DeadlineExceeded = 4,
    /// 5: something named does not exist.
    NotFound = 5,
    /// 7: the caller may not do this.
    PermissionDenied = 7,
    /// 8: a quota or rate limit is exhausted.
    ResourceExhausted = 8,
    /// 9: the system is not in a state that allows the request.
    FailedPrecondition = 9,
    /// 11: a revision or TTL out of the valid range.
    OutOfRange = 11,
    /// 12: no such method on the service.
    Unimplemented = 12,
    /// 13: an internal invariant failed.
    Internal = 13,
    /// 14: try again, perhaps on another member.
    Unavailable = 14,
    /// 15: data was lost or corrupted.
    DataLoss = 15,
    /// 16: the request's credentials are invalid.
    Unauthenticated = 16,
}

/// An error of a KV request (Range, Put, DeleteRange, Txn, Compact).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum KvError {
    /// A request or compare had an empty key.
    EmptyKey,
    /// `ignore_value`/`ignore_lease` on a key that does not exist, or an empty transaction op.
    KeyNotFound,
    /// `ignore_value` together with a value.
    ValueProvided,
    /// `ignore_lease` together with a lease.
    LeaseProvided,
    /// A transaction with more compares or ops than `--max-txn-ops`.
    TooManyOps,
    /// A transaction branch that writes one key twice (put/put or put/delete overlap).
    DuplicateKey,
    /// A revision at or below the compacted revision.
    Compacted,
    /// A revision above the current revision.
    FutureRevision,
    /// A put attaching a lease that does not exist.
    LeaseNotFound,
}

impl KvError {
    /// The gRPC status code etcd answers with.
    pub fn code(self) -> GrpcCode {
        match self {
            KvError::EmptyKey
            | KvError::KeyNotFound
            | KvError::ValueProvided
            | KvError::LeaseProvided
            | KvError::TooManyOps
            | KvError::DuplicateKey => GrpcCode::InvalidArgument,
            KvError::Compacted | KvError::FutureRevision => GrpcCode::OutOfRange,
            KvError::LeaseNotFound => GrpcCode::NotFound,
        }
    }

    /// The status message etcd puts on the wire.
    pub fn message(self) -> &'static str {
        match self {
            KvError::EmptyKey => "etcdserver: key is not provided",
            KvError::KeyNotFound => "etcdserver: key not found",
            KvError::ValueProvided => "etcdserver: value is provided",
            KvError::LeaseProvided => "etcdserver: lease is provided",
            KvError::TooManyOps => "etcdserver: too many operations in txn request",
            KvError::DuplicateKey => "etcdserver: duplicate key given in txn request",
            KvError::Compacted => "etcdserver: mvcc: required revision has been compacted",
            KvError::FutureRevision => "etcdserver: mvcc: required revision is a future revision",
            KvError::LeaseNotFound => "etcdserver: requested lease not found",
        }
    }
}

/// An error of the server around the key space: admission, replication and timeouts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ServerError {
    /// Too many committed entries wait to be applied (etcd's limit is 5000).
    TooManyRequests,
    /// The request exceeds `--max-request-bytes`.
    RequestTooLarge,
    /// The request was not served within the request timeout.
    Timeout,
    /// The leader changed while the request waited.
    LeaderChanged,
    /// The member knows no leader.
    NoLeader,
    /// The member is shutting down.
    Stopped,
    /// A learner serves only serializable reads.
    NotSupportedForLearner,
    /// A request only the server itself makes (lease expiry and checkpoints); no client API
    /// carries it.
    InternalOnly,
}

impl ServerError {
    /// The gRPC status code etcd answers with.
    pub fn code(self) -> GrpcCode {
        match self {
            ServerError::TooManyRequests => GrpcCode::ResourceExhausted,
            ServerError::InternalOnly => GrpcCode::Unimplemented,
            ServerError::RequestTooLarge => GrpcCode::InvalidArgument,
            ServerError::Timeout
            | ServerError::LeaderChanged
            | ServerError::NoLeader
            | ServerError::Stopped
            | ServerError::NotSupportedForLearner => GrpcCode::Unavailable,
        }
    }

    /// The status message etcd puts on the wire.
    pub fn message(self) -> &'static str {
        match self {
            ServerError::TooManyRequests => "etcdserver: too many requests",
            ServerError::RequestTooLarge => "etcdserver: request is too large",
            ServerError::Timeout => "etcdserver: request timed out",
            ServerError::LeaderChanged => "etcdserver: leader changed",
            ServerError::NoLeader => "etcdserver: no leader",
            ServerError::Stopped => "etcdserver: server stopped",
            ServerError::NotSupportedForLearner => "etcdserver: rpc not supported for learner",
            ServerError::InternalOnly => "etcdserver: request is internal to the server",
        }
    }
}

/// An error of a lease request (a missing lease is [`KvError::LeaseNotFound`], as a put with an
/// unknown lease gets the same answer).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum LeaseError {
    /// A grant named an id that is already granted.
    Exists,
    /// A grant asked for a TTL above etcd's maximum (9,000,000,000 s).
    TtlTooLarge,
}

impl LeaseError {
    /// The gRPC status code etcd answers with.
    pub fn code(self) -> GrpcCode {
        match self {
            LeaseError::Exists => GrpcCode::FailedPrecondition,
            LeaseError::TtlTooLarge => GrpcCode::OutOfRange,
        }
    }

    /// The status message etcd puts on the wire.
    pub fn message(self) -> &'static str {
        match self {
            LeaseError::Exists => "etcdserver: lease already exists",
            LeaseError::TtlTooLarge => "etcdserver: too large lease TTL",
        }
    }
}

/// An error of a membership or leadership request.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ClusterError {
    /// A member with that id exists.
    MemberExist,
    /// Another member uses one of the peer URLs.
    PeerUrlExist,
    /// No member with that id (or it was removed).
    MemberNotFound,
    /// Only a learner can be promoted.
    MemberNotLearner,
    /// The learner has not caught up with the leader (90% of its log).
    LearnerNotReady,
    /// The cluster already has its one learner (etcd 3.4's limit).
    TooManyLearners,
    /// Peer URLs missing or malformed.
    MemberBadUrls,
    /// Only the leader can do this.
    NotLeader,
    /// The transfer target is not a voting member.
    BadLeaderTransferee,
    /// The leadership transfer did not finish in time.
    LeaderTransferTimeout,
}

impl ClusterError {
    /// The gRPC status code etcd answers with.
    pub fn code(self) -> GrpcCode {
        match self {
            ClusterError::MemberNotFound => GrpcCode::NotFound,
            ClusterError::MemberBadUrls => GrpcCode::InvalidArgument,
            ClusterError::LeaderTransferTimeout => GrpcCode::Unknown,
            _ => GrpcCode::FailedPrecondition,
        }
    }

    /// The status message etcd puts on the wire.
    pub fn message(self) -> &'static str {
        match self {
            ClusterError::MemberExist => "etcdserver: member ID already exist",
            ClusterError::PeerUrlExist => "etcdserver: Peer URLs already exists",
            ClusterError::MemberNotFound => "etcdserver: member not found",
            ClusterError::MemberNotLearner => "etcdserver: can only promote a learner member",
            ClusterError::LearnerNotReady => {
                "etcdserver: can only promote a learner member which is in sync with leader"
            }
            ClusterError::TooManyLearners => "etcdserver: too many learner members in cluster",
            ClusterError::MemberBadUrls => "etcdserver: given member URLs are invalid",
            ClusterError::NotLeader => "etcdserver: not leader",
            ClusterError::BadLeaderTransferee => "etcdserver: bad leader transferee",
            ClusterError::LeaderTransferTimeout => {
                "etcdserver: request timed out, leader transfer took too long"
            }
        }
    }
}

/// Any error a client request can get.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Error {
    /// From the key space.
    Kv(KvError),
    /// From the server around it.
    Server(ServerError),
    /// From a membership or leadership request.
    Cluster(ClusterError),
    /// From a lease request.
    Lease(LeaseError),
}

impl Error {
    /// The gRPC status code etcd answers with.
    pub fn code(self) -> GrpcCode {
        match self {
            Error::Kv(error) => error.code(),
            Error::Server(error) => error.code(),
            Error::Cluster(error) => error.code(),
            Error::Lease(error) => error.code(),
        }
    }

    /// The status message etcd puts on the wire.
    pub fn message(self) -> &'static str {
        match self {
            Error::Kv(error) => error.message(),
            Error::Server(error) => error.message(),
            Error::Cluster(error) => error.message(),
            Error::Lease(error) => error.message(),
        }
    }
}

impl From<KvError> for Error {
    fn from(error: KvError) -> Self {
        Error::Kv(error)
    }
}

impl From<ClusterError> for Error {
    fn from(error: ClusterError) -> Self {
        Error::Cluster(error)
    }
}

impl From<LeaseError> for Error {
    fn from(error: LeaseError) -> Self {
        Error::Lease(error)
    }
}

impl From<ServerError> for Error {
    fn from(error: ServerError) -> Self {
        Error::Server(error)
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.message())
    }
}

impl std::error::Error for Error {}

impl fmt::Display for KvError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.message())
    }
}

impl std::error::Error for KvError {}

#[cfg(test)]
mod tests {
    use super::*;

    /// Pins every code and text against etcd 3.4's `rpctypes/error.go`.
    #[test]
    fn codes_and_texts_match_etcd() {
        let table = [
            (KvError::EmptyKey, 3, "etcdserver: key is not provided"),
            (KvError::KeyNotFound, 3, "etcdserver: key not found"),
            (KvError::ValueProvided, 3, "etcdserver: value is provided"),
            (KvError::LeaseProvided, 3, "etcdserver: lease is provided"),
            (KvError::TooManyOps, 3, "etcdserver: too many operations in txn request"),
            (KvError::DuplicateKey, 3, "etcdserver: duplicate key given in txn request"),
            (KvError::Compacted, 11, "etcdserver: mvcc: required revision has been compacted"),
            (
                KvError::FutureRevision,
                11,
                "etcdserver: mvcc: required revision is a future revision",
            ),
            (KvError::LeaseNotFound, 5, "etcdserver: requested lease not found"),
        ];
        for (error, code, text) in table {
            assert_eq!(error.code() as u8, code, "{error:?}");
            assert_eq!(error.to_string(), text, "{error:?}");
            assert_eq!(Error::from(error).to_string(), text);
        }
    }

    /// Pins the cluster errors against etcd 3.4's `rpctypes/error.go` and `v3rpc/util.go`.
    #[test]
    fn cluster_codes_and_texts_match_etcd() {
        let table = [
            (ClusterError::MemberExist, 9, "etcdserver: member ID already exist"),
            (ClusterError::PeerUrlExist, 9, "etcdserver: Peer URLs already exists"),
            (ClusterError::MemberNotFound, 5, "etcdserver: member not found"),
            (ClusterError::MemberNotLearner, 9, "etcdserver: can only promote a learner member"),
            (
                ClusterError::LearnerNotReady,
                9,
                "etcdserver: can only promote a learner member which is in sync with leader",
            ),
            (ClusterError::TooManyLearners, 9, "etcdserver: too many learner members in cluster"),
            (ClusterError::MemberBadUrls, 3, "etcdserver: given member URLs are invalid"),
            (ClusterError::NotLeader, 9, "etcdserver: not leader"),
            (ClusterError::BadLeaderTransferee, 9, "etcdserver: bad leader transferee"),
            (
                ClusterError::LeaderTransferTimeout,
                2,
                "etcdserver: request timed out, leader transfer took too long",
            ),
        ];
        for (error, code, text) in table {
            assert_eq!(Error::from(error).code() as u8, code, "{error:?}");
            assert_eq!(Error::from(error).to_string(), text, "{error:?}");
        }
    }

    /// Pins the server errors against etcd 3.4's `rpctypes/error.go`.
    #[test]
    fn server_codes_and_texts_match_etcd() {
        let table = [
            (ServerError::TooManyRequests, 8, "etcdserver: too many requests"),
            (ServerError::RequestTooLarge, 3, "etcdserver: request is too large"),
            (ServerError::Timeout, 14, "etcdserver: request timed out"),
            (ServerError::LeaderChanged, 14, "etcdserver: leader changed"),
            (ServerError::NoLeader, 14, "etcdserver: no leader"),
            (ServerError::Stopped, 14, "etcdserver: server stopped"),
            (ServerError::NotSupportedForLearner, 14, "etcdserver: rpc not supported for learner"),
            (ServerError::InternalOnly, 12, "etcdserver: request is internal to the server"),
        ];
        for (error, code, text) in table {
            assert_eq!(Error::from(error).code() as u8, code, "{error:?}");
            assert_eq!(Error::from(error).to_string(), text, "{error:?}");
        }
    }

    /// Pins the lease errors against etcd 3.4's `rpctypes/error.go`.
    #[test]
    fn lease_codes_and_texts_match_etcd() {
        let table = [
            (LeaseError::Exists, 9, "etcdserver: lease already exists"),
            (LeaseError::TtlTooLarge, 11, "etcdserver: too large lease TTL"),
        ];
        for (error, code, text) in table {
            assert_eq!(Error::from(error).code() as u8, code, "{error:?}");
            assert_eq!(Error::from(error).to_string(), text, "{error:?}");
        }
    }
}
