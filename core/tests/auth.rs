//! Auth on a replicated cluster: the issue's story through real proposals and tokens, tokens
//! that work on every member, a request racing a permission change, and watch refusal.

mod harness;

use harness::Cluster;
use stead_core::api::*;
use stead_core::time::Duration;

fn auth(
    cluster: &mut Cluster,
    to: u64,
    token: Option<&str>,
    request: AuthRequest,
) -> Result<AuthResponse, Error> {
    match cluster.call_with_token(to, token, Request::Auth(request))? {
        Response::Auth(response) => Ok(response),
        other => panic!("an auth answer, got {other:?}"),
    }
}

fn user_add(name: &str, password: &str) -> AuthRequest {
    AuthRequest::UserAdd {
        name: name.into(),
        password: password.into(),
        hashed_password: String::new(),
        no_password: false,
    }
}

fn login(cluster: &mut Cluster, to: u64, name: &str, password: &str) -> Result<String, Error> {
    let request = AuthRequest::Authenticate {
        name: name.into(),
        password: password.into(),
        token: String::new(),
        checked_revision: 0,
    };
    auth(cluster, to, None, request).map(|response| response.token)
}

fn put(key: &str) -> Request {
    Request::Put(PutRequest { key: key.into(), value: b"v".to_vec(), ..Default::default() })
}

fn get(key: &str) -> Request {
    Request::Range(RangeRequest { key: key.into(), ..Default::default() })
}

/// Sets up root and a reader of `app/` who may also write `app/w/`, and enables auth.
fn secured(cluster: &mut Cluster, to: u64) {
    auth(cluster, to, None, user_add("root", "rootpw")).unwrap();
    let root_role = AuthRequest::UserGrantRole { user: "root".into(), role: "root".into() };
    assert_eq!(
        auth(cluster, to, None, AuthRequest::Enable).unwrap_err(),
        Error::Auth(AuthError::RootRoleNotExist)
    );
    auth(cluster, to, None, root_role).unwrap();
    auth(cluster, to, None, AuthRequest::RoleAdd { name: "app".into() }).unwrap();
    let perm = |perm_type, key: &str, end: &str| AuthRequest::RoleGrantPermission {
        name: "app".into(),
        perm: Permission { perm_type, key: key.into(), range_end: end.into() },
    };
    auth(cluster, to, None, perm(PermissionType::Read, "app/", "app0")).unwrap();
    auth(cluster, to, None, perm(PermissionType::Write, "app/w/", "app/w0")).unwrap();
    auth(cluster, to, None, user_add("alice", "alicepw")).unwrap();
    let grant = AuthRequest::UserGrantRole { user: "alice".into(), role: "app".into() };
    auth(cluster, to, None, grant).unwrap();
    auth(cluster, to, None, AuthRequest::Enable).unwrap();
}

#[test]
fn the_issue_story_on_a_cluster() {
    let mut cluster = Cluster::new(3, 31);
    let leader = cluster.elect();
    let follower = *cluster.nodes.keys().find(|&&id| id != leader).unwrap();
    assert!(cluster.put(follower, "app/x", "1").is_ok(), "anyone writes before auth");
    secured(&mut cluster, follower);

    let alice = login(&mut cluster, follower, "alice", "alicepw").unwrap();
    let (prefix, index) = alice.split_once('.').unwrap();
    assert!(prefix.len() == 16 && index.parse::<u64>().is_ok(), "etcd's simple token: {alice}");
    let read = cluster.call_with_token(follower, Some(&alice), get("app/x"));
    assert!(matches!(read, Ok(Response::Range(ref r)) if r.kvs.len() == 1), "{read:?}");
    assert_eq!(
        cluster.call_with_token(leader, Some(&alice), put("app/x")).unwrap_err(),
        Error::Auth(AuthError::PermissionDenied),
        "read-only on app/"
    );
    assert!(cluster.call_with_token(leader, Some(&alice), put("app/w/1")).is_ok());
    assert_eq!(
        login(&mut cluster, leader, "alice", "wrong").unwrap_err(),
        Error::Auth(AuthError::AuthFailed)
    );
    assert_eq!(
        login(&mut cluster, leader, "mallory", "x").unwrap_err(),
        Error::Auth(AuthError::AuthFailed)
    );
    assert_eq!(
        cluster.call(leader, get("app/x")).unwrap_err(),
        Error::Auth(AuthError::UserEmpty),
        "no token, no user"
    );
    assert_eq!(
        cluster.call_with_token(leader, Some("bogus.1"), get("app/x")).unwrap_err(),
        Error::Auth(AuthError::InvalidAuthToken)
    );
    assert_eq!(
        auth(&mut cluster, leader, Some(&alice), AuthRequest::Disable).unwrap_err(),
        Error::Auth(AuthError::PermissionDenied),
        "only root disables auth"
    );
    let member_add = Request::Cluster(ClusterRequest::MemberAdd {
        peer_urls: vec!["http://127.0.0.1:9999".into()],
        is_learner: true,
    });
    assert_eq!(
        cluster.call_with_token(leader, Some(&alice), member_add).unwrap_err(),
        Error::Auth(AuthError::PermissionDenied),
        "membership changes are for root"
    );
    let root = login(&mut cluster, leader, "root", "rootpw").unwrap();
    auth(&mut cluster, follower, Some(&root), AuthRequest::Disable).unwrap();
    assert!(cluster.put(leader, "app/x", "2").is_ok(), "auth is off again");
    assert!(
        cluster.call_with_token(leader, Some(&alice), get("app/x")).is_ok(),
        "tokens are ignored while auth is off"
    );
}

#[test]
fn a_token_works_on_every_member_and_dies_with_its_user() {
    let mut cluster = Cluster::new(3, 32);
    let leader = cluster.elect();
    secured(&mut cluster, leader);
    let alice = login(&mut cluster, leader, "alice", "alicepw").unwrap();
    for member in [1, 2, 3] {
        let read = cluster.call_with_token(member, Some(&alice), get("app/x"));
        assert!(read.is_ok(), "member {member}: {read:?}");
    }
    let root = login(&mut cluster, leader, "root", "rootpw").unwrap();
    let change = AuthRequest::UserChangePassword {
        name: "alice".into(),
        password: "new".into(),
        hashed_password: String::new(),
    };
    auth(&mut cluster, leader, Some(&root), change).unwrap();
    cluster.run_for(stead_core::time::Duration::from_millis(200));
    for member in [1, 2, 3] {
        assert_eq!(
            cluster.call_with_token(member, Some(&alice), get("app/x")).unwrap_err(),
            Error::Auth(AuthError::InvalidAuthToken),
            "member {member}: a new password ends the old tokens"
        );
    }
    assert!(login(&mut cluster, 2, "alice", "alicepw").is_err());
    assert!(login(&mut cluster, 2, "alice", "new").is_ok());
    let list = auth(&mut cluster, 3, Some(&root), AuthRequest::UserList).unwrap();
    assert_eq!(list.users, ["alice", "root"]);
}

#[test]
fn a_write_checked_before_a_revoke_is_refused_when_applied() {
    let mut cluster = Cluster::new(3, 33);
    let leader = cluster.elect();
    secured(&mut cluster, leader);
    let alice = login(&mut cluster, leader, "alice", "alicepw").unwrap();
    let root = login(&mut cluster, leader, "root", "rootpw").unwrap();
    // Both go in before either is applied: the write was checked at the old auth revision.
    let revoke =
        Request::Auth(AuthRequest::UserRevokeRole { name: "alice".into(), role: "app".into() });
    let revoked = cluster.request_with_token(leader, Some(&root), revoke);
    let write = cluster.request_with_token(leader, Some(&alice), put("app/w/late"));
    let limit = stead_core::time::Duration::from_secs(10);
    assert!(cluster.answer(revoked, limit).unwrap().is_ok());
    assert_eq!(
        cluster.answer(write, limit).unwrap().unwrap_err(),
        Error::Auth(AuthError::OldRevision)
    );
    assert_eq!(
        cluster.call_with_token(leader, Some(&alice), put("app/w/late")).unwrap_err(),
        Error::Auth(AuthError::PermissionDenied)
    );
}

#[test]
fn a_watch_outside_the_users_permissions_is_refused() {
    let mut cluster = Cluster::new(3, 34);
    let leader = cluster.elect();
    secured(&mut cluster, leader);
    let alice = login(&mut cluster, leader, "alice", "alicepw").unwrap();
    let create = |key: &str, end: &str| {
        WatchRequest::Create(WatchCreateRequest {
            key: key.into(),
            range_end: end.into(),
            ..Default::default()
        })
    };
    cluster.watch_with_token(leader, 1, Some(&alice), create("app/", "app0"));
    cluster.watch_with_token(leader, 2, Some(&alice), create("app/", "\0"));
    cluster.watch_with_token(leader, 3, None, create("app/", "app0"));
    cluster.run_for(stead_core::time::Duration::from_millis(50));
    let first = |stream| {
        cluster.watch_responses.iter().find(|(_, s, _)| *s == stream).map(|(_, _, r)| r.clone())
    };
    let allowed = first(1).expect("created");
    assert!(allowed.created && !allowed.canceled && allowed.watch_id >= 0);
    let refused = first(2).expect("answered");
    assert!(refused.created && refused.canceled && refused.watch_id == -1);
    assert_eq!(
        refused.cancel_reason,
        "rpc error: code = PermissionDenied desc = etcdserver: permission denied",
        "a from-key watch reaches past the prefix"
    );
    assert_eq!(
        first(3).expect("answered").cancel_reason,
        "rpc error: code = InvalidArgument desc = etcdserver: user name is empty"
    );
}

#[test]
fn a_certificate_name_acts_as_its_user() {
    let mut cluster = Cluster::new(3, 37);
    let leader = cluster.elect();
    let follower = *cluster.nodes.keys().find(|&&id| id != leader).unwrap();
    secured(&mut cluster, leader);
    // Who the caller is gets decided on arrival, so let the follower apply auth enable first.
    cluster.run_for(Duration::from_secs(1));
    let alice = || Credential::CommonName("alice".into());
    let read = cluster.call_with_credential(follower, alice(), get("app/x"));
    assert!(matches!(read, Ok(Response::Range(_))), "{read:?}");
    assert!(cluster.call_with_credential(leader, alice(), put("app/w/1")).is_ok());
    assert_eq!(
        cluster.call_with_credential(follower, alice(), put("app/x")).unwrap_err(),
        Error::Auth(AuthError::PermissionDenied),
        "only alice's permissions"
    );
    let stranger = Credential::CommonName("mallory".into());
    assert_eq!(
        cluster.call_with_credential(leader, stranger, get("app/x")).unwrap_err(),
        Error::Auth(AuthError::PermissionDenied),
        "a name that is no user gets nothing"
    );
    let root = Credential::CommonName("root".into());
    auth_as(&mut cluster, leader, root, AuthRequest::Disable).unwrap();
    assert!(cluster.put(leader, "app/x", "2").is_ok(), "root's certificate disabled auth");
}

fn auth_as(
    cluster: &mut Cluster,
    to: u64,
    credential: Credential,
    request: AuthRequest,
) -> Result<AuthResponse, Error> {
    match cluster.call_with_credential(to, credential, Request::Auth(request))? {
        Response::Auth(response) => Ok(response),
        other => panic!("an auth answer, got {other:?}"),
    }
}
