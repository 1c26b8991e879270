//! Authentication and authorization (etcd's `auth` package): users, roles, permissions, the
//! auth revision and tokens.
//!
//! The [`AuthStore`] is replicated state: every Auth request travels through the log and is
//! applied here, so members agree on users, roles and whether auth is enabled. Passwords are
//! stored as bcrypt hashes computed by the member that received the request, before proposing
//! (etcd 3.5's way; 3.4 hashed on every member at apply, with its own random salt each). Every
//! successful change bumps the auth revision; a proposal carries the revision its caller was
//! checked at ([`AuthInfo`]), and a write checked at an older revision is refused when applied
//! (`revision of auth store is old`), so a permission taken away cannot be used by a request
//! already in flight.
//!
//! Permission checks ([`check`]) follow etcd: a user with the `root` role may do anything;
//! otherwise the union of the user's roles' permissions must cover every key a request reads or
//! writes ([`perm`]). Tokens ([`token`]) are etcd's simple tokens, held per member.

pub mod check;
pub mod perm;
pub mod token;

use crate::api::{AuthError, AuthInfo, AuthRequest, AuthResponse, Permission};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

pub use check::check_request;
pub use token::TokenTable;

/// The name of the user and the role that may do anything.
pub const ROOT: &str = "root";
/// etcd's default `--bcrypt-cost`.
pub const DEFAULT_BCRYPT_COST: u32 = 10;

/// A user (etcd's `authpb.User`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    /// The bcrypt hash of the password; empty for a user without one.
    pub password: String,
    /// The user's roles, sorted.
    pub roles: BTreeSet<String>,
    /// The user cannot authenticate with a password.
    pub no_password: bool,
}

/// The replicated auth state.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthStore {
    enabled: bool,
    revision: u64,
    users: BTreeMap<String, User>,
    /// Each role's permissions, sorted by key.
    roles: BTreeMap<String, Vec<Permission>>,
}

impl Default for AuthStore {
    /// Auth disabled, no users or roles, revision 1 (etcd's starting revision).
    fn default() -> Self {
        AuthStore { enabled: false, revision: 1, users: BTreeMap::new(), roles: BTreeMap::new() }
    }
}

/// What applying an Auth request did besides answering.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AuthEffect {
    /// A token to register (Authenticate): the token and its user.
    pub token: Option<(String, String)>,
    /// A user whose tokens are no longer valid (deleted or new password).
    pub revoke_tokens_of: Option<String>,
    /// Every token is invalid (auth was disabled).
    pub revoke_all_tokens: bool,
}

impl AuthStore {
    /// Whether auth is enabled.
    pub fn is_enabled(&self) -> bool {
        self.enabled
    }

    /// The auth revision: bumped by every change to users, roles and permissions.
    pub fn revision(&self) -> u64 {
        self.revision
    }

    /// A user.
    pub fn user(&self, name: &str) -> Option<&User> {
        self.users.get(name)
    }

    /// A role's permissions.
    pub fn role(&self, name: &str) -> Option<&[Permission]> {
        self.roles.get(name).map(Vec::as_slice)
    }

    /// A store from its parts (a restored backup).
    pub fn from_parts(
        enabled: bool,
        revision: u64,
        users: BTreeMap<String, User>,
        roles: BTreeMap<String, Vec<Permission>>,
    ) -> AuthStore {
        let roles = roles
            .into_iter()
            .map(|(name, mut permissions)| {
                permissions.sort();
                (name, permissions)
            })
            .collect();
        AuthStore { enabled, revision, users, roles }
    }

    /// Every user, by name.
    pub fn users(&self) -> impl Iterator<Item = (&str, &User)> + '_ {
        self.users.iter().map(|(name, user)| (name.as_str(), user))
    }

    /// Every role, by name, with its permissions.
    pub fn roles(&self) -> impl Iterator<Item = (&str, &[Permission])> + '_ {
        self.roles.iter().map(|(name, permissions)| (name.as_str(), permissions.as_slice()))
    }

    /// Whether `name` may administer the cluster (etcd's `IsAdminPermitted`): anyone while
    /// auth is disabled, else a user with the root role.
    pub fn is_admin(&self, caller: Option<&AuthInfo>) -> Result<(), AuthError> {
        if !self.enabled {
            return Ok(());
        }
        let name = caller.map(|c| c.username.as_str()).unwrap_or_default();
        if name.is_empty() {
            return Err(AuthError::UserEmpty);
        }
        let user = self.users.get(name).ok_or(AuthError::UserNotFound)?;
        if user.roles.contains(ROOT) {
            Ok(())
        } else {
            Err(AuthError::PermissionDenied)
        }
    }

    /// Checks a password at the receiving member, before proposing an Authenticate (etcd's
    /// `CheckPassword`). bcrypt is slow by design; this is the only place it is verified.
    pub fn check_password(&self, name: &str, password: &str) -> Result<(), AuthError> {
        if !self.enabled {
            return Err(AuthError::AuthNotEnabled);
        }
        let user = self.users.get(name).ok_or(AuthError::AuthFailed)?;
        if user.no_password {
            return Err(AuthError::NoPasswordUser);
        }
        match bcrypt::verify(password, &user.password) {
            Ok(true) => Ok(()),
            _ => Err(AuthError::AuthFailed),
        }
    }

    /// Applies an Auth request from `caller`, proposed as log entry `index`.
    pub fn apply(
        &mut self,
        request: &AuthRequest,
        caller: Option<&AuthInfo>,
        index: u64,
    ) -> Result<(AuthResponse, AuthEffect), AuthError> {
        use AuthRequest as R;
        let admin_only =
            !matches!(request, R::Authenticate { .. } | R::UserGet { .. } | R::RoleGet { .. });
        if admin_only {
            self.is_admin(caller)?;
        }
        let mut response = AuthResponse::default();
        let mut effect = AuthEffect::default();
        let mut bump = true;
        match request {
            R::Enable => {
                bump = false;
                if !self.enabled {
                    let root = self.users.get(ROOT).ok_or(AuthError::RootUserNotExist)?;
                    if !root.roles.contains(ROOT) {
                        return Err(AuthError::RootRoleNotExist);
                    }
                    self.enabled = true;
                }
            }
            R::Disable => {
                bump = self.enabled;
                self.enabled = false;
                effect.revoke_all_tokens = true;
            }
            R::Authenticate { name, token, checked_revision, .. } => {
                bump = false;
                if !self.enabled {
                    return Err(AuthError::AuthNotEnabled);
                }
                // The password was checked against an older state: it may have changed, or the
                // user been deleted and added again, since. etcd checks again; the client does.
                if *checked_revision != self.revision {
                    return Err(AuthError::OldRevision);
                }
                let user = self.users.get(name).ok_or(AuthError::AuthFailed)?;
                if user.no_password {
                    return Err(AuthError::AuthFailed);
                }
                response.token = format!("{token}.{index}");
                effect.token = Some((response.token.clone(), name.clone()));
            }
            R::UserAdd { name, hashed_password, no_password, .. } => {
                if name.is_empty() {
                    return Err(AuthError::UserEmpty);
                }
                if self.users.contains_key(name) {
                    return Err(AuthError::UserAlreadyExist);
                }
                let password = if *no_password { String::new() } else { hashed_password.clone() };
                let user = User { password, roles: BTreeSet::new(), no_password: *no_password };
                self.users.insert(name.clone(), user);
            }
            R::UserGet { name } => {
                bump = false;
                let is_self = caller.is_some_and(|c| &c.username == name);
                if !is_self {
                    self.is_admin(caller)?;
                }
                let user = self.users.get(name).ok_or(AuthError::UserNotFound)?;
                response.roles = user.roles.iter().cloned().collect();
            }
            R::UserList => {
                bump = false;
                response.users = self.users.keys().cloned().collect();
            }
            R::UserDelete { name } => {
                if self.enabled && name == ROOT {
                    return Err(AuthError::InvalidAuthMgmt);
                }
                self.users.remove(name).ok_or(AuthError::UserNotFound)?;
                effect.revoke_tokens_of = Some(name.clone());
            }
            R::UserChangePassword { name, hashed_password, .. } => {
                let user = self.users.get_mut(name).ok_or(AuthError::UserNotFound)?;
                if !user.no_password {
                    user.password = hashed_password.clone();
                }
                effect.revoke_tokens_of = Some(name.clone());
            }
            R::UserGrantRole { user, role } => {
                if !self.users.contains_key(user) {
                    return Err(AuthError::UserNotFound);
                }
                if role != ROOT && !self.roles.contains_key(role) {
                    return Err(AuthError::RoleNotFound);
                }
                let user = self.users.get_mut(user).expect("checked");
                bump = user.roles.insert(role.clone());
            }
            R::UserRevokeRole { name, role } => {
                if self.enabled && name == ROOT && role == ROOT {
                    return Err(AuthError::InvalidAuthMgmt);
                }
                let user = self.users.get_mut(name).ok_or(AuthError::UserNotFound)?;
                if !user.roles.remove(role) {
                    return Err(AuthError::RoleNotGranted);
                }
            }
            R::RoleAdd { name } => {
                if name.is_empty() {
                    return Err(AuthError::RoleEmpty);
                }
                if self.roles.contains_key(name) {
                    return Err(AuthError::RoleAlreadyExist);
                }
                self.roles.insert(name.clone(), Vec::new());
            }
            R::RoleGet { role } => {
                bump = false;
                let holds = caller
                    .and_then(|c| self.users.get(&c.username))
                    .is_some_and(|user| user.roles.contains(role));
                if !holds {
                    self.is_admin(caller)?;
                }
                response.perms = self.roles.get(role).ok_or(AuthError::RoleNotFound)?.clone();
            }
            R::RoleList => {
                bump = false;
                response.roles = self.roles.keys().cloned().collect();
            }
            R::RoleDelete { role } => {
                if self.enabled && role == ROOT {
                    return Err(AuthError::InvalidAuthMgmt);
                }
                self.roles.remove(role).ok_or(AuthError::RoleNotFound)?;
                for user in self.users.values_mut() {
                    user.roles.remove(role);
                }
            }
            R::RoleGrantPermission { name, perm } => {
                if !valid_permission(perm) {
                    return Err(AuthError::InvalidAuthMgmt);
                }
                let perms = self.roles.get_mut(name).ok_or(AuthError::RoleNotFound)?;
                match perms.iter_mut().find(|p| p.key == perm.key && p.range_end == perm.range_end)
                {
                    Some(existing) => existing.perm_type = perm.perm_type,
                    None => {
                        perms.push(perm.clone());
                        perms.sort_by(|a, b| (&a.key, &a.range_end).cmp(&(&b.key, &b.range_end)));
                    }
                }
            }
            R::RoleRevokePermission { role, key, range_end } => {
                let perms = self.roles.get_mut(role).ok_or(AuthError::RoleNotFound)?;
                let before = perms.len();
                perms.retain(|p| !(&p.key == key && &p.range_end == range_end));
                if perms.len() == before {
                    return Err(AuthError::PermissionNotGranted);
                }
            }
        }
        if bump {
            self.revision += 1;
        }
        Ok((response, effect))
    }

    /// The permissions of every role `user` has, for [`perm::KeySet`].
    pub fn permissions_of<'a>(&'a self, user: &'a User) -> impl Iterator<Item = &'a Permission> {
        user.roles.iter().filter_map(|role| self.roles.get(role)).flatten()
    }
}

/// etcd 3.5's check of a granted permission: a key, and a range end that is empty, `"\0"` or
/// after the key.
fn valid_permission(perm: &Permission) -> bool {
    !perm.key.is_empty()
        && (perm.range_end.is_empty() || perm.range_end == [0] || perm.key < perm.range_end)
}

/// The bcrypt hash of `password` with a salt from the caller's seeded RNG.
pub fn hash_password(password: &str, cost: u32, salt: [u8; 16]) -> String {
    let cost = if (4..=31).contains(&cost) { cost } else { DEFAULT_BCRYPT_COST };
    bcrypt::hash_with_salt(password, cost, salt)
        .map(|parts| parts.format_for_version(bcrypt::Version::TwoA))
        // Only an out-of-range cost fails, and the cost was checked.
        .expect("bcrypt hashes any password at a valid cost")
}

#[cfg(test)]
mod tests;
