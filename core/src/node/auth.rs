//! The node's auth work at the API layer: who sent a request, admin checks that etcd makes
//! before proposing, passwords hashed (and checked, for Authenticate) before anything reaches
//! the log, and requests whose token comes from an Authenticate entry this member has not
//! applied yet, which wait for it as etcd's do.
//!
//! Tokens only matter while auth is enabled; otherwise they are ignored (etcd 3.4.28 and later).
//! A request without a token while auth is enabled runs as nobody: whatever needs a user is
//! refused with `user name is empty` where it is checked (at apply for writes, here for reads).

use super::{ClientId, Node};
use crate::api::{AuthInfo, AuthRequest, Credential, Error, Request};
use crate::auth::token::TokenLookup;
use crate::auth::{hash_password, TokenTable};
use crate::time::Instant;
use rand::Rng;

/// A request waiting for the Authenticate entry its token names.
pub(super) struct Parked {
    client: ClientId,
    token: String,
    request: Request,
    deadline: Instant,
}

/// Who a request comes from.
pub(super) enum Caller {
    /// Known: a user, or nobody (no credential, or auth disabled).
    Known(Option<AuthInfo>),
    /// The entry of this token is not applied here yet.
    NotYet(String),
}

impl Node {
    /// Resolves the request's credential into its caller, or says why it cannot. A
    /// certificate's Common Name is taken as the user it names, as etcd takes it; whether that
    /// user exists and may do the request is checked where permissions are.
    pub(super) fn caller(&mut self, credential: Option<&Credential>) -> Result<Caller, Error> {
        let auth = self.machine.auth();
        if !auth.is_enabled() {
            return Ok(Caller::Known(None));
        }
        let revision = auth.revision();
        let token = match credential {
            Some(Credential::Token(token)) if !token.is_empty() => token,
            Some(Credential::CommonName(name)) if !name.is_empty() => {
                return Ok(Caller::Known(Some(AuthInfo { username: name.clone(), revision })));
            }
            _ => return Ok(Caller::Known(None)),
        };
        let applied = self.machine.applied();
        let now = self.now;
        match self.machine.tokens_mut().lookup(token, applied, now) {
            TokenLookup::User(username) => Ok(Caller::Known(Some(AuthInfo { username, revision }))),
            TokenLookup::NotYetApplied(_) => Ok(Caller::NotYet(token.clone())),
            TokenLookup::Invalid => Err(crate::api::AuthError::InvalidAuthToken.into()),
        }
    }

    /// Holds a request until its token's entry is applied or it times out.
    pub(super) fn park(&mut self, client: ClientId, token: String, request: Request) {
        let deadline = self.now + self.config.request_timeout();
        self.parked.push(Parked { client, token, request, deadline });
    }

    /// Admits parked requests whose token can now be resolved, and times out the rest.
    pub(super) fn unpark(&mut self) {
        if self.parked.is_empty() {
            return;
        }
        let applied = self.machine.applied();
        let now = self.now;
        let parked = std::mem::take(&mut self.parked);
        for request in parked {
            let ready = TokenTable::entry_index(&request.token);
            if ready.is_some_and(|index| index <= applied) {
                let credential = Some(Credential::Token(request.token));
                self.client_request(request.client, credential, request.request);
            } else if request.deadline <= now {
                self.respond(request.client, Err(crate::api::ServerError::Timeout.into()));
            } else {
                self.parked.push(request);
            }
        }
    }

    /// Fails unless the caller may administer the cluster.
    pub(super) fn require_admin(&self, caller: Option<&AuthInfo>) -> Result<(), Error> {
        Ok(self.machine.auth().is_admin(caller)?)
    }

    /// Replaces passwords with their bcrypt hashes before an Auth request is proposed. bcrypt
    /// is slow by design, so the caller must be an admin first (checked again at apply).
    pub(super) fn hash_passwords(
        &mut self,
        request: AuthRequest,
        caller: Option<&AuthInfo>,
    ) -> Result<AuthRequest, Error> {
        if matches!(request, AuthRequest::UserAdd { .. } | AuthRequest::UserChangePassword { .. }) {
            self.require_admin(caller)?;
        }
        let cost = self.config.bcrypt_cost;
        match request {
            AuthRequest::UserAdd { name, password, no_password, .. } => {
                let hashed_password = if no_password {
                    String::new()
                } else {
                    hash_password(&password, cost, self.rng.gen())
                };
                Ok(AuthRequest::UserAdd {
                    name,
                    password: String::new(),
                    hashed_password,
                    no_password,
                })
            }
            AuthRequest::UserChangePassword { name, password, .. } => {
                let hashed_password = hash_password(&password, cost, self.rng.gen());
                let password = String::new();
                Ok(AuthRequest::UserChangePassword { name, password, hashed_password })
            }
            other => Ok(other),
        }
    }

    /// Checks an Authenticate's password (once this member is up to date, so a user just
    /// added is known) and proposes it with a fresh token prefix; the password stays here.
    pub(super) fn authenticate(&mut self, client: ClientId, request: &Request) {
        let Request::Auth(AuthRequest::Authenticate { name, password, .. }) = request else {
            unreachable!("only Authenticate is served here")
        };
        if let Err(error) = self.machine.auth().check_password(name, password) {
            return self.respond(client, Err(error.into()));
        }
        let token = TokenTable::new_prefix(&mut self.rng);
        let authenticate = AuthRequest::Authenticate {
            name: name.clone(),
            password: String::new(),
            token,
            checked_revision: self.machine.auth().revision(),
        };
        self.propose_write(Some(client), Request::Auth(authenticate), None);
    }
}
