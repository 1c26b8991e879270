//! Which permissions a request needs, and whether its caller has them (etcd's `apply_auth.go`
//! and `isOpPermitted`).
//!
//! - Range: read over its range. Put: write on its key, write on every key of the lease it
//!   attaches, read on the key for `prev_kv`. DeleteRange: write over its range, read for
//!   `prev_kv`. Txn: read over every compare, and every op of both branches (nested
//!   transactions too, as etcd 3.5 checks them; 3.4.23 skipped them). LeaseRevoke: write on
//!   every attached key.
//! - Other requests need no key permission here: Auth requests check admin rights themselves,
//!   the node checks admin rights of membership and maintenance requests.

use super::{perm::KeySet, AuthStore, ROOT};
use crate::api::{
    AuthError, AuthInfo, DeleteRangeRequest, LeaseId, PermissionType, PutRequest, Request,
    RequestOp, TxnRequest,
};

/// One permission a request needs: a key range (etcd's `key`/`range_end`) and read or write.
type Need = (Vec<u8>, Vec<u8>, PermissionType);

/// Checks that `caller` may run `request`. `lease_keys` lists the keys attached to a lease.
pub fn check_request(
    store: &AuthStore,
    caller: Option<&AuthInfo>,
    request: &Request,
    lease_keys: impl Fn(LeaseId) -> Vec<Vec<u8>>,
) -> Result<(), AuthError> {
    if !store.is_enabled() {
        return Ok(());
    }
    let mut needs = Vec::new();
    match request {
        Request::Range(range) => {
            needs.push((range.key.clone(), range.range_end.clone(), PermissionType::Read))
        }
        Request::Put(put) => put_needs(put, &lease_keys, &mut needs),
        Request::DeleteRange(delete) => delete_needs(delete, &mut needs),
        Request::Txn(txn) => txn_needs(txn, &lease_keys, &mut needs),
        Request::LeaseRevoke(revoke) => {
            for key in lease_keys(revoke.id) {
                needs.push((key, Vec::new(), PermissionType::Write));
            }
        }
        _ => return Ok(()),
    }
    check_needs(store, caller, &needs)
}

/// Checks that `caller` may read `[key, range_end)` (a watch's creation check).
pub fn check_read(
    store: &AuthStore,
    caller: Option<&AuthInfo>,
    key: &[u8],
    range_end: &[u8],
) -> Result<(), AuthError> {
    if !store.is_enabled() {
        return Ok(());
    }
    check_needs(store, caller, &[(key.to_vec(), range_end.to_vec(), PermissionType::Read)])
}

fn check_needs(
    store: &AuthStore,
    caller: Option<&AuthInfo>,
    needs: &[Need],
) -> Result<(), AuthError> {
    if needs.is_empty() {
        return Ok(());
    }
    let caller = caller.filter(|c| !c.username.is_empty()).ok_or(AuthError::UserEmpty)?;
    if caller.revision < store.revision() {
        return Err(AuthError::OldRevision);
    }
    let user = store.user(&caller.username).ok_or(AuthError::PermissionDenied)?;
    if user.roles.contains(ROOT) {
        return Ok(());
    }
    let perms: Vec<_> = store.permissions_of(user).collect();
    let read = KeySet::from_permissions(perms.iter().copied(), PermissionType::Read);
    let write = KeySet::from_permissions(perms.iter().copied(), PermissionType::Write);
    let allowed = needs.iter().all(|(key, end, kind)| match kind {
        PermissionType::Write => write.covers(key, end),
        _ => read.covers(key, end),
    });
    if allowed {
        Ok(())
    } else {
        Err(AuthError::PermissionDenied)
    }
}

fn put_needs(
    put: &PutRequest,
    lease_keys: &impl Fn(LeaseId) -> Vec<Vec<u8>>,
    needs: &mut Vec<Need>,
) {
    needs.push((put.key.clone(), Vec::new(), PermissionType::Write));
    if put.lease != crate::api::NO_LEASE {
        for key in lease_keys(put.lease) {
            needs.push((key, Vec::new(), PermissionType::Write));
        }
    }
    if put.prev_kv {
        needs.push((put.key.clone(), Vec::new(), PermissionType::Read));
    }
}

fn delete_needs(delete: &DeleteRangeRequest, needs: &mut Vec<Need>) {
    needs.push((delete.key.clone(), delete.range_end.clone(), PermissionType::Write));
    if delete.prev_kv {
        needs.push((delete.key.clone(), delete.range_end.clone(), PermissionType::Read));
    }
}

fn txn_needs(
    txn: &TxnRequest,
    lease_keys: &impl Fn(LeaseId) -> Vec<Vec<u8>>,
    needs: &mut Vec<Need>,
) {
    for compare in &txn.compare {
        needs.push((compare.key.clone(), compare.range_end.clone(), PermissionType::Read));
    }
    for op in txn.success.iter().chain(&txn.failure) {
        match op {
            RequestOp::Range(range) => {
                needs.push((range.key.clone(), range.range_end.clone(), PermissionType::Read))
            }
            RequestOp::Put(put) => put_needs(put, lease_keys, needs),
            RequestOp::DeleteRange(delete) => delete_needs(delete, needs),
            RequestOp::Txn(nested) => txn_needs(nested, lease_keys, needs),
        }
    }
}
