//! Table tests of every auth rule against etcd 3.4's texts (see `api::error` for the codes).

use super::*;
use crate::api::{
    AuthError as E, DeleteRangeRequest, PermissionType, PutRequest, RangeRequest, Request,
    RequestOp, TxnRequest,
};

fn as_user(name: &str, store: &AuthStore) -> AuthInfo {
    AuthInfo { username: name.into(), revision: store.revision() }
}

fn user_add(name: &str, password: &str) -> AuthRequest {
    AuthRequest::UserAdd {
        name: name.into(),
        password: String::new(),
        hashed_password: hash_password(password, 4, [7; 16]),
        no_password: false,
    }
}

fn grant(role: &str, perm_type: PermissionType, key: &str, end: &str) -> AuthRequest {
    let perm = Permission { perm_type, key: key.into(), range_end: end.into() };
    AuthRequest::RoleGrantPermission { name: role.into(), perm }
}

fn apply(
    store: &mut AuthStore,
    request: AuthRequest,
    caller: Option<&AuthInfo>,
) -> Result<AuthResponse, E> {
    store.apply(&request, caller, 10).map(|(response, _)| response)
}

/// Adds the `root` user with the `root` role.
fn add_root(store: &mut AuthStore) {
    apply(store, user_add("root", "pw"), None).unwrap();
    let role = AuthRequest::UserGrantRole { user: "root".into(), role: "root".into() };
    apply(store, role, None).unwrap();
}

/// Auth enabled, with `root` and a user `u` whose role `w` may write `[key, end)`.
fn enabled_with_writer(key: &str, end: &str) -> AuthStore {
    let mut store = AuthStore::default();
    add_root(&mut store);
    apply(&mut store, AuthRequest::RoleAdd { name: "w".into() }, None).unwrap();
    apply(&mut store, grant("w", PermissionType::Write, key, end), None).unwrap();
    apply(&mut store, user_add("u", "pw"), None).unwrap();
    let role = AuthRequest::UserGrantRole { user: "u".into(), role: "w".into() };
    apply(&mut store, role, None).unwrap();
    apply(&mut store, AuthRequest::Enable, None).unwrap();
    store
}

fn range(key: &str, end: &str) -> Request {
    Request::Range(RangeRequest { key: key.into(), range_end: end.into(), ..Default::default() })
}

fn put(key: &str) -> Request {
    Request::Put(PutRequest { key: key.into(), ..Default::default() })
}

fn no_leases(_: i64) -> Vec<Vec<u8>> {
    Vec::new()
}

/// The issue's sequence: root, a role with a prefix permission, a user, enable, an allowed
/// read, a denied write, a wrong password, no user, and disabling as root.
#[test]
fn the_whole_story() {
    let mut store = AuthStore::default();
    assert_eq!(apply(&mut store, AuthRequest::Enable, None), Err(E::RootUserNotExist));
    apply(&mut store, user_add("root", "rootpw"), None).unwrap();
    assert_eq!(apply(&mut store, AuthRequest::Enable, None), Err(E::RootRoleNotExist));
    let root_role = AuthRequest::UserGrantRole { user: "root".into(), role: "root".into() };
    apply(&mut store, root_role, None).expect("root may be granted without a root role object");
    apply(&mut store, AuthRequest::RoleAdd { name: "reader".into() }, None).unwrap();
    apply(&mut store, grant("reader", PermissionType::Read, "app/", "app0"), None).unwrap();
    apply(&mut store, user_add("alice", "alicepw"), None).unwrap();
    let grant_role = AuthRequest::UserGrantRole { user: "alice".into(), role: "reader".into() };
    apply(&mut store, grant_role, None).unwrap();
    let revision = store.revision();
    apply(&mut store, AuthRequest::Enable, None).unwrap();
    assert!(store.is_enabled());
    assert_eq!(store.revision(), revision, "enabling does not bump the revision");

    let alice = as_user("alice", &store);
    assert_eq!(check_request(&store, Some(&alice), &range("app/x", ""), no_leases), Ok(()));
    assert_eq!(check_request(&store, Some(&alice), &range("app/", "app0"), no_leases), Ok(()));
    assert_eq!(
        check_request(&store, Some(&alice), &range("app/", "\0"), no_leases),
        Err(E::PermissionDenied),
        "from-key reaches past the prefix"
    );
    assert_eq!(
        check_request(&store, Some(&alice), &put("app/x"), no_leases),
        Err(E::PermissionDenied)
    );
    assert_eq!(store.check_password("alice", "alicepw"), Ok(()));
    assert_eq!(store.check_password("alice", "wrong"), Err(E::AuthFailed));
    assert_eq!(store.check_password("nobody", "alicepw"), Err(E::AuthFailed));
    assert_eq!(check_request(&store, None, &range("app/x", ""), no_leases), Err(E::UserEmpty));
    assert_eq!(apply(&mut store, AuthRequest::Disable, Some(&alice)), Err(E::PermissionDenied));
    assert_eq!(apply(&mut store, AuthRequest::Disable, None), Err(E::UserEmpty));
    let root = as_user("root", &store);
    assert_eq!(check_request(&store, Some(&root), &put("anything"), no_leases), Ok(()));
    let (_, effect) = store.apply(&AuthRequest::Disable, Some(&root), 11).unwrap();
    assert!(effect.revoke_all_tokens && !store.is_enabled());
    assert_eq!(check_request(&store, None, &put("app/x"), no_leases), Ok(()), "auth is off");
}

#[test]
fn authenticate_issues_index_tokens_only_while_enabled() {
    let mut store = AuthStore::default();
    let authenticate = |name: &str, checked_revision| AuthRequest::Authenticate {
        name: name.into(),
        password: String::new(),
        token: "abcdefghijklmnop".into(),
        checked_revision,
    };
    assert_eq!(apply(&mut store, authenticate("root", 1), None), Err(E::AuthNotEnabled));
    add_root(&mut store);
    let no_password = AuthRequest::UserAdd {
        name: "svc".into(),
        password: String::new(),
        hashed_password: String::new(),
        no_password: true,
    };
    apply(&mut store, no_password, None).unwrap();
    apply(&mut store, AuthRequest::Enable, None).unwrap();
    let now = store.revision();
    let (response, effect) = store.apply(&authenticate("root", now), None, 42).unwrap();
    assert_eq!(response.token, "abcdefghijklmnop.42");
    assert_eq!(effect.token, Some(("abcdefghijklmnop.42".into(), "root".into())));
    assert_eq!(apply(&mut store, authenticate("ghost", now), None), Err(E::AuthFailed));
    assert_eq!(apply(&mut store, authenticate("svc", now), None), Err(E::AuthFailed));
    // Found in review: a password checked before a change of the auth state (a new password,
    // the user deleted and added again) must not get a token.
    assert_eq!(
        apply(&mut store, authenticate("root", now - 1), None),
        Err(E::OldRevision),
        "checked at an older revision"
    );
    assert_eq!(store.check_password("svc", "x"), Err(E::NoPasswordUser));
}

#[test]
fn user_and_role_management_rules() {
    let mut store = AuthStore::default();
    assert_eq!(apply(&mut store, user_add("", "pw"), None), Err(E::UserEmpty));
    apply(&mut store, user_add("u", "pw"), None).unwrap();
    assert_eq!(apply(&mut store, user_add("u", "pw"), None), Err(E::UserAlreadyExist));
    assert_eq!(
        apply(&mut store, AuthRequest::RoleAdd { name: "".into() }, None),
        Err(E::RoleEmpty)
    );
    apply(&mut store, AuthRequest::RoleAdd { name: "r".into() }, None).unwrap();
    assert_eq!(
        apply(&mut store, AuthRequest::RoleAdd { name: "r".into() }, None),
        Err(E::RoleAlreadyExist)
    );
    let grant_role = |user: &str, role: &str| AuthRequest::UserGrantRole {
        user: user.into(),
        role: role.into(),
    };
    assert_eq!(apply(&mut store, grant_role("x", "r"), None), Err(E::UserNotFound));
    assert_eq!(apply(&mut store, grant_role("u", "nope"), None), Err(E::RoleNotFound));
    apply(&mut store, grant_role("u", "r"), None).unwrap();
    let revision = store.revision();
    apply(&mut store, grant_role("u", "r"), None).unwrap();
    assert_eq!(store.revision(), revision, "granting a held role changes nothing");
    let revoke = |role: &str| AuthRequest::UserRevokeRole { name: "u".into(), role: role.into() };
    assert_eq!(apply(&mut store, revoke("other"), None), Err(E::RoleNotGranted));
    apply(&mut store, grant("r", PermissionType::Read, "k", ""), None).unwrap();
    apply(&mut store, grant("r", PermissionType::Write, "a", "c"), None).unwrap();
    apply(&mut store, grant("r", PermissionType::ReadWrite, "k", ""), None).unwrap();
    let perms = apply(&mut store, AuthRequest::RoleGet { role: "r".into() }, None).unwrap().perms;
    let summary: Vec<_> = perms.iter().map(|p| (p.perm_type, p.key.clone())).collect();
    assert_eq!(
        summary,
        [(PermissionType::Write, b"a".to_vec()), (PermissionType::ReadWrite, b"k".to_vec())],
        "a re-grant of the same range replaces its type; sorted by key"
    );
    assert_eq!(
        apply(&mut store, grant("r", PermissionType::Read, "", ""), None),
        Err(E::InvalidAuthMgmt),
        "an empty key is not a permission"
    );
    assert_eq!(
        apply(&mut store, grant("r", PermissionType::Read, "b", "a"), None),
        Err(E::InvalidAuthMgmt),
        "an inverted range is not a permission"
    );
    let revoke_perm = |key: &str, end: &str| AuthRequest::RoleRevokePermission {
        role: "r".into(),
        key: key.into(),
        range_end: end.into(),
    };
    assert_eq!(apply(&mut store, revoke_perm("a", ""), None), Err(E::PermissionNotGranted));
    apply(&mut store, revoke_perm("a", "c"), None).unwrap();
    let users = apply(&mut store, AuthRequest::UserGet { name: "u".into() }, None).unwrap();
    assert_eq!(users.roles, ["r"]);
    apply(&mut store, AuthRequest::RoleDelete { role: "r".into() }, None).unwrap();
    let users = apply(&mut store, AuthRequest::UserGet { name: "u".into() }, None).unwrap();
    assert!(users.roles.is_empty(), "deleting a role takes it from its users");
    assert_eq!(
        apply(&mut store, AuthRequest::RoleGet { role: "r".into() }, None),
        Err(E::RoleNotFound)
    );
    apply(&mut store, user_add("b", "pw"), None).unwrap();
    let list = apply(&mut store, AuthRequest::UserList, None).unwrap();
    assert_eq!(list.users, ["b", "u"]);
    let (_, effect) = store.apply(&AuthRequest::UserDelete { name: "u".into() }, None, 3).unwrap();
    assert_eq!(effect.revoke_tokens_of.as_deref(), Some("u"));
    assert_eq!(
        apply(&mut store, AuthRequest::UserDelete { name: "u".into() }, None),
        Err(E::UserNotFound)
    );
}

#[test]
fn root_is_protected_while_enabled_and_users_see_themselves() {
    let mut store = AuthStore::default();
    add_root(&mut store);
    apply(&mut store, AuthRequest::RoleAdd { name: "root".into() }, None).unwrap();
    apply(&mut store, AuthRequest::RoleAdd { name: "dev".into() }, None).unwrap();
    apply(&mut store, user_add("bob", "pw"), None).unwrap();
    apply(&mut store, AuthRequest::UserGrantRole { user: "bob".into(), role: "dev".into() }, None)
        .unwrap();
    apply(&mut store, AuthRequest::Enable, None).unwrap();
    let root = as_user("root", &store);
    let bob = as_user("bob", &store);
    for request in [
        AuthRequest::UserDelete { name: "root".into() },
        AuthRequest::RoleDelete { role: "root".into() },
        AuthRequest::UserRevokeRole { name: "root".into(), role: "root".into() },
    ] {
        assert_eq!(apply(&mut store, request, Some(&root)), Err(E::InvalidAuthMgmt));
    }
    assert!(apply(&mut store, AuthRequest::UserGet { name: "bob".into() }, Some(&bob)).is_ok());
    assert_eq!(
        apply(&mut store, AuthRequest::UserGet { name: "root".into() }, Some(&bob)),
        Err(E::PermissionDenied)
    );
    assert!(apply(&mut store, AuthRequest::RoleGet { role: "dev".into() }, Some(&bob)).is_ok());
    assert_eq!(
        apply(&mut store, AuthRequest::RoleGet { role: "root".into() }, Some(&bob)),
        Err(E::PermissionDenied)
    );
    assert_eq!(apply(&mut store, AuthRequest::UserList, Some(&bob)), Err(E::PermissionDenied));
    let ghost = AuthInfo { username: "ghost".into(), revision: store.revision() };
    assert_eq!(apply(&mut store, AuthRequest::RoleList, Some(&ghost)), Err(E::UserNotFound));
}

#[test]
fn a_caller_checked_before_a_change_is_refused() {
    let mut store = enabled_with_writer("k", "\0");
    let stale = as_user("u", &store);
    assert_eq!(check_request(&store, Some(&stale), &put("k1"), no_leases), Ok(()));
    let root = as_user("root", &store);
    let revoke = AuthRequest::RoleRevokePermission {
        role: "w".into(),
        key: b"k".to_vec(),
        range_end: b"\0".to_vec(),
    };
    apply(&mut store, revoke, Some(&root)).unwrap();
    assert_eq!(check_request(&store, Some(&stale), &put("k1"), no_leases), Err(E::OldRevision));
    let fresh = as_user("u", &store);
    assert_eq!(
        check_request(&store, Some(&fresh), &put("k1"), no_leases),
        Err(E::PermissionDenied)
    );
}

#[test]
fn every_key_a_write_touches_needs_permission() {
    let store = enabled_with_writer("a", "m");
    let u = as_user("u", &store);
    let leases = |id: i64| if id == 5 { vec![b"z".to_vec()] } else { vec![b"b".to_vec()] };
    let check = |request: &Request| check_request(&store, Some(&u), request, leases);
    let put_with = |lease, prev_kv| {
        Request::Put(PutRequest { key: b"b".to_vec(), lease, prev_kv, ..Default::default() })
    };
    assert_eq!(check(&put_with(6, false)), Ok(()));
    assert_eq!(check(&put_with(5, false)), Err(E::PermissionDenied), "the lease holds key z");
    assert_eq!(check(&put_with(0, true)), Err(E::PermissionDenied), "prev_kv reads");
    let delete = |end: &str| {
        Request::DeleteRange(DeleteRangeRequest {
            key: b"a".to_vec(),
            range_end: end.into(),
            prev_kv: false,
        })
    };
    assert_eq!(check(&delete("m")), Ok(()));
    assert_eq!(check(&delete("n")), Err(E::PermissionDenied));
    let nested = TxnRequest {
        compare: Vec::new(),
        success: vec![RequestOp::Put(PutRequest { key: b"z".to_vec(), ..Default::default() })],
        failure: Vec::new(),
    };
    let txn = TxnRequest {
        compare: Vec::new(),
        success: vec![RequestOp::Put(PutRequest { key: b"b".to_vec(), ..Default::default() })],
        failure: vec![RequestOp::Txn(nested)],
    };
    assert_eq!(
        check(&Request::Txn(txn)),
        Err(E::PermissionDenied),
        "both branches and nested transactions are checked"
    );
    let revoke = |id| Request::LeaseRevoke(crate::api::LeaseRevokeRequest { id });
    assert_eq!(check(&revoke(6)), Ok(()));
    assert_eq!(check(&revoke(5)), Err(E::PermissionDenied));
}
