//! The Auth service's messages (etcd's `Auth*Request`/`Auth*Response` and `authpb`).
//!
//! One request enum covers the sixteen Auth RPCs; their answers differ only in which list or
//! token they carry, so one response struct serves them all, as [`super::ClusterResponse`] does
//! for the Cluster service.

use super::kv::ResponseHeader;
use serde::{Deserialize, Serialize};

/// What a permission allows (etcd's `authpb.Permission.Type`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum PermissionType {
    /// Range and watch.
    #[default]
    Read,
    /// Put and delete.
    Write,
    /// Both.
    ReadWrite,
}

impl PermissionType {
    /// Whether a permission of this type allows `wanted` (which is `Read` or `Write`).
    pub fn allows(self, wanted: PermissionType) -> bool {
        self == PermissionType::ReadWrite || self == wanted
    }
}

/// A role's permission over one key (`range_end` empty), a range `[key, range_end)`, or every
/// key from `key` on (`range_end` `"\0"`); etcd's `authpb.Permission`.
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Permission {
    /// What it allows.
    pub perm_type: PermissionType,
    /// The first key.
    pub key: Vec<u8>,
    /// The end of the range (exclusive); empty for one key, `"\0"` for every key from `key`.
    pub range_end: Vec<u8>,
}

/// A request of the Auth service.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum AuthRequest {
    /// Turn authentication on (needs the root user with the root role).
    Enable,
    /// Turn authentication off.
    Disable,
    /// Exchange a name and password for a token.
    Authenticate {
        /// The user.
        name: String,
        /// The password.
        password: String,
        /// The token the member chose (filled in before proposing; clients leave it empty).
        token: String,
        /// The auth revision the member checked the password at (filled in before proposing).
        checked_revision: u64,
    },
    /// Add a user.
    UserAdd {
        /// The user's name.
        name: String,
        /// The password as the client sent it (cleared before proposing).
        password: String,
        /// The bcrypt hash the member computed (filled in before proposing).
        hashed_password: String,
        /// The user cannot authenticate with a password.
        no_password: bool,
    },
    /// A user's roles.
    UserGet {
        /// The user.
        name: String,
    },
    /// Every user's name.
    UserList,
    /// Remove a user.
    UserDelete {
        /// The user.
        name: String,
    },
    /// Change a user's password.
    UserChangePassword {
        /// The user.
        name: String,
        /// The new password as the client sent it (cleared before proposing).
        password: String,
        /// Its bcrypt hash (filled in before proposing).
        hashed_password: String,
    },
    /// Give a user a role.
    UserGrantRole {
        /// The user.
        user: String,
        /// The role.
        role: String,
    },
    /// Take a role from a user.
    UserRevokeRole {
        /// The user.
        name: String,
        /// The role.
        role: String,
    },
    /// Add a role.
    RoleAdd {
        /// The role's name.
        name: String,
    },
    /// A role's permissions.
    RoleGet {
        /// The role.
        role: String,
    },
    /// Every role's name.
    RoleList,
    /// Remove a role (and take it from every user).
    RoleDelete {
        /// The role.
        role: String,
    },
    /// Add a permission to a role.
    RoleGrantPermission {
        /// The role.
        name: String,
        /// The permission.
        perm: Permission,
    },
    /// Remove a role's permission over exactly `[key, range_end)`.
    RoleRevokePermission {
        /// The role.
        role: String,
        /// The permission's key.
        key: Vec<u8>,
        /// The permission's range end.
        range_end: Vec<u8>,
    },
}

/// The answer to an [`AuthRequest`]; fields a request does not produce stay empty.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthResponse {
    /// The usual header.
    pub header: ResponseHeader,
    /// Authenticate: the token to send with later requests.
    pub token: String,
    /// UserGet: the user's roles; RoleList: every role.
    pub roles: Vec<String>,
    /// UserList: every user.
    pub users: Vec<String>,
    /// RoleGet: the role's permissions.
    pub perms: Vec<Permission>,
}

/// Who sent a request, as a proposal carries it: the user and the auth revision its token
/// was checked at (etcd's `AuthInfo`).
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct AuthInfo {
    /// The user.
    pub username: String,
    /// The auth store's revision when the member checked the caller.
    pub revision: u64,
}

/// Who a client request says it comes from, as etcd decides it: the token the client sent
/// (gRPC metadata `token`) if any, otherwise the Common Name of the verified TLS client
/// certificate it connected with (`--client-cert-auth`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Credential {
    /// A token from Authenticate.
    Token(String),
    /// The Common Name of a client certificate the member verified.
    CommonName(String),
}
