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

impl GrpcCode {
    /// The code's name as gRPC's Go status prints it (`rpc error: code = <name> desc = ...`).
    pub fn name(self) -> &'static str {
        match self {
            GrpcCode::Canceled => "Canceled",
            GrpcCode::Unknown => "Unknown",
            GrpcCode::InvalidArgument => "InvalidArgument",
            GrpcCode::DeadlineExceeded => "DeadlineExceeded",
            GrpcCode::NotFound => "NotFound",
            GrpcCode::PermissionDenied => "PermissionDenied",
            GrpcCode::ResourceExhausted => "ResourceExhausted",
            GrpcCode::FailedPrecondition => "FailedPrecondition",
            GrpcCode::OutOfRange => "OutOfRange",
            GrpcCode::Unimplemented => "Unimplemented",
            GrpcCode::Internal => "Internal",
            GrpcCode::Unavailable => "Unavailable",
            GrpcCode::DataLoss => "DataLoss",
            GrpcCode::Unauthenticated => "Unauthenticated",
        }
    }
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
    /// A NOSPACE alarm is raised, or the write would exceed the quota.
    NoSpace,
    /// A CORRUPT alarm is raised.
    Corrupt,
}

impl ServerError {
    /// The gRPC status code etcd answers with.
    pub fn code(self) -> GrpcCode {
        match self {
            ServerError::TooManyRequests => GrpcCode::ResourceExhausted,
            ServerError::InternalOnly => GrpcCode::Unimplemented,
            ServerError::NoSpace => GrpcCode::ResourceExhausted,
            ServerError::Corrupt => GrpcCode::DataLoss,
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
            ServerError::NoSpace => "etcdserver: mvcc: database space exceeded",
            ServerError::Corrupt => "etcdserver: corrupt cluster",
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

/// An error of authentication or authorization (etcd's `auth.Err*`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum AuthError {
    /// AuthEnable without a `root` user.
    RootUserNotExist,
    /// AuthEnable while `root` lacks the `root` role.
    RootRoleNotExist,
    /// UserAdd of an existing user.
    UserAlreadyExist,
    /// An empty user name, or no user at all (no token) while auth is enabled.
    UserEmpty,
    /// No such user.
    UserNotFound,
    /// RoleAdd of an existing role.
    RoleAlreadyExist,
    /// No such role.
    RoleNotFound,
    /// An empty role name.
    RoleEmpty,
    /// Wrong user or password.
    AuthFailed,
    /// A password was given for a user without one.
    NoPasswordUser,
    /// The caller's roles do not allow the request.
    PermissionDenied,
    /// UserRevokeRole of a role the user does not have.
    RoleNotGranted,
    /// RoleRevokePermission of a permission the role does not have.
    PermissionNotGranted,
    /// Authenticate while auth is disabled.
    AuthNotEnabled,
    /// The caller was checked at an older auth revision.
    OldRevision,
    /// The token is unknown or expired.
    InvalidAuthToken,
    /// Removing what auth needs while it is enabled (the root user or role), or a malformed
    /// permission.
    InvalidAuthMgmt,
    /// RoleGrantPermission without a permission.
    PermissionNotGiven,
}

impl AuthError {
    /// The gRPC status code etcd answers with.
    pub fn code(self) -> GrpcCode {
        use AuthError as E;
        match self {
            E::UserEmpty
            | E::RoleEmpty
            | E::AuthFailed
            | E::OldRevision
            | E::InvalidAuthMgmt
            | E::PermissionNotGiven => GrpcCode::InvalidArgument,
            E::PermissionDenied => GrpcCode::PermissionDenied,
            E::InvalidAuthToken => GrpcCode::Unauthenticated,
            // etcd has no gRPC mapping for it, so it goes out as Unknown with its Go text.
            E::NoPasswordUser => GrpcCode::Unknown,
            E::RootUserNotExist
            | E::RootRoleNotExist
            | E::UserAlreadyExist
            | E::UserNotFound
            | E::RoleAlreadyExist
            | E::RoleNotFound
            | E::RoleNotGranted
            | E::PermissionNotGranted
            | E::AuthNotEnabled => GrpcCode::FailedPrecondition,
        }
    }

    /// The status message etcd puts on the wire.
    pub fn message(self) -> &'static str {
        use AuthError as E;
        match self {
            E::RootUserNotExist => "etcdserver: root user does not exist",
            E::RootRoleNotExist => "etcdserver: root user does not have root role",
            E::UserAlreadyExist => "etcdserver: user name already exists",
            E::UserEmpty => "etcdserver: user name is empty",
            E::UserNotFound => "etcdserver: user name not found",
            E::RoleAlreadyExist => "etcdserver: role name already exists",
            E::RoleNotFound => "etcdserver: role name not found",
            E::RoleEmpty => "etcdserver: role name is empty",
            E::AuthFailed => "etcdserver: authentication failed, invalid user ID or password",
            E::NoPasswordUser => {
                "auth: authentication failed, password was given for no password user"
            }
            E::PermissionDenied => "etcdserver: permission denied",
            E::RoleNotGranted => "etcdserver: role is not granted to the user",
            E::PermissionNotGranted => "etcdserver: permission is not granted to the role",
            E::AuthNotEnabled => "etcdserver: authentication is not enabled",
            E::OldRevision => "etcdserver: revision of auth store is old",
            E::InvalidAuthToken => "etcdserver: invalid auth token",
            E::InvalidAuthMgmt => "etcdserver: invalid auth management",
            E::PermissionNotGiven => "etcdserver: permission not given",
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
    /// From authentication or authorization.
    Auth(AuthError),
}

impl Error {
    /// The gRPC status code etcd answers with.
    pub fn code(self) -> GrpcCode {
        match self {
            Error::Kv(error) => error.code(),
            Error::Server(error) => error.code(),
            Error::Cluster(error) => error.code(),
            Error::Lease(error) => error.code(),
            Error::Auth(error) => error.code(),
        }
    }

    /// The status message etcd puts on the wire.
    pub fn message(self) -> &'static str {
        match self {
            Error::Kv(error) => error.message(),
            Error::Server(error) => error.message(),
            Error::Cluster(error) => error.message(),
            Error::Lease(error) => error.message(),
            Error::Auth(error) => error.message(),
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

impl From<AuthError> for Error {
    fn from(error: AuthError) -> Self {
        Error::Auth(error)
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
            (ServerError::NoSpace, 8, "etcdserver: mvcc: database space exceeded"),
            (ServerError::Corrupt, 15, "etcdserver: corrupt cluster"),
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

    /// Pins the auth errors against etcd 3.4's `rpctypes/error.go` and `v3rpc/util.go`.
    #[test]
    fn auth_codes_and_texts_match_etcd() {
        use AuthError as E;
        let table = [
            (E::RootUserNotExist, 9, "etcdserver: root user does not exist"),
            (E::RootRoleNotExist, 9, "etcdserver: root user does not have root role"),
            (E::UserAlreadyExist, 9, "etcdserver: user name already exists"),
            (E::UserEmpty, 3, "etcdserver: user name is empty"),
            (E::UserNotFound, 9, "etcdserver: user name not found"),
            (E::RoleAlreadyExist, 9, "etcdserver: role name already exists"),
            (E::RoleNotFound, 9, "etcdserver: role name not found"),
            (E::RoleEmpty, 3, "etcdserver: role name is empty"),
            (E::AuthFailed, 3, "etcdserver: authentication failed, invalid user ID or password"),
            (
                E::NoPasswordUser,
                2,
                "auth: authentication failed, password was given for no password user",
            ),
            (E::PermissionDenied, 7, "etcdserver: permission denied"),
            (E::RoleNotGranted, 9, "etcdserver: role is not granted to the user"),
            (E::PermissionNotGranted, 9, "etcdserver: permission is not granted to the role"),
            (E::AuthNotEnabled, 9, "etcdserver: authentication is not enabled"),
            (E::OldRevision, 3, "etcdserver: revision of auth store is old"),
            (E::InvalidAuthToken, 16, "etcdserver: invalid auth token"),
            (E::InvalidAuthMgmt, 3, "etcdserver: invalid auth management"),
            (E::PermissionNotGiven, 3, "etcdserver: permission not given"),
        ];
        for (error, code, text) in table {
            assert_eq!(Error::from(error).code() as u8, code, "{error:?}");
            assert_eq!(Error::from(error).to_string(), text, "{error:?}");
        }
    }
}
