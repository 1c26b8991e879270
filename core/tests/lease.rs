//! Leases on a replicated cluster, against the harness's logical clock: expiry time, keys deleted
//! in one revision, keep-alives, promotion on a leader change, and checkpoints that survive one.

mod harness;

use harness::Cluster;
use stead_core::api::*;
use stead_core::time::{Duration, Instant};

fn grant(cluster: &mut Cluster, to: u64, ttl: i64) -> LeaseId {
    match cluster.call(to, Request::LeaseGrant(LeaseGrantRequest { ttl, id: 0 })) {
        Ok(Response::LeaseGrant(granted)) => {
            assert_eq!(granted.ttl, ttl.max(2));
            granted.id
        }
        other => panic!("a grant, got {other:?}"),
    }
}

fn put_on(cluster: &mut Cluster, to: u64, key: &str, lease: LeaseId) -> Result<Response, Error> {
    let put = PutRequest { key: key.into(), value: b"v".to_vec(), lease, ..Default::default() };
    cluster.call(to, Request::Put(put))
}

fn keep_alive(cluster: &mut Cluster, to: u64, id: LeaseId) -> Result<i64, Error> {
    match cluster.call(to, Request::LeaseKeepAlive(LeaseKeepAliveRequest { id }))? {
        Response::LeaseKeepAlive(answer) => Ok(answer.ttl),
        other => panic!("a keep-alive answer, got {other:?}"),
    }
}

/// Whether every member has applied the deletion of `key`.
fn gone_everywhere(cluster: &Cluster, key: &str) -> bool {
    let range = RangeRequest { key: key.into(), ..RangeRequest::default() };
    cluster.nodes.values().all(|n| n.kv().range(&range).unwrap().kvs.is_empty())
}

fn secs(from: Instant, to: Instant) -> f64 {
    to.since(from).as_millis() as f64 / 1000.0
}

#[test]
fn an_expired_lease_takes_its_keys_in_one_revision() {
    let mut cluster = Cluster::new(3, 11);
    let leader = cluster.elect();
    let follower = *cluster.nodes.keys().find(|&&id| id != leader).unwrap();
    let id = grant(&mut cluster, follower, 5);
    let granted_at = cluster.now;
    for key in ["a", "b", "c"] {
        put_on(&mut cluster, follower, key, id).unwrap();
    }
    let watch =
        WatchCreateRequest { key: b"a".to_vec(), range_end: b"d".to_vec(), ..Default::default() };
    cluster.watch(follower, 1, WatchRequest::Create(watch));
    assert!(cluster.run_until(Duration::from_secs(20), |c| gone_everywhere(c, "a")));
    let after = secs(granted_at, cluster.now);
    assert!((5.0..6.5).contains(&after), "expired {after} s after the grant");
    let deletes: Vec<(i64, Vec<u8>)> = cluster
        .watch_responses
        .iter()
        .filter(|(node, stream, _)| (*node, *stream) == (follower, 1))
        .flat_map(|(_, _, r)| r.events.iter())
        .filter(|e| e.kind == EventKind::Delete)
        .map(|e| (e.kv.mod_revision, e.kv.key.clone()))
        .collect();
    let revision = deletes[0].0;
    assert_eq!(
        deletes,
        [(revision, b"a".to_vec()), (revision, b"b".to_vec()), (revision, b"c".to_vec())]
    );
    assert!(cluster.nodes.values().all(|n| !n.lessor().exists(id)));
    assert_eq!(put_on(&mut cluster, leader, "d", id), Err(KvError::LeaseNotFound.into()));
}

#[test]
fn keep_alives_hold_a_lease_and_only_the_leader_renews() {
    let mut cluster = Cluster::new(3, 12);
    let leader = cluster.elect();
    let follower = *cluster.nodes.keys().find(|&&id| id != leader).unwrap();
    let id = grant(&mut cluster, leader, 3);
    put_on(&mut cluster, leader, "k", id).unwrap();
    assert_eq!(keep_alive(&mut cluster, follower, id), Err(ClusterError::NotLeader.into()));
    for _ in 0..10 {
        cluster.run_for(Duration::from_secs(1));
        assert_eq!(keep_alive(&mut cluster, leader, id), Ok(3));
    }
    assert!(!gone_everywhere(&cluster, "k"), "kept alive for 10 s on a 3 s lease");
    let question = LeaseTimeToLiveRequest { id, keys: true };
    match cluster.call(leader, Request::LeaseTimeToLive(question.clone())) {
        Ok(Response::LeaseTimeToLive(answer)) => {
            assert_eq!((answer.granted_ttl, &answer.keys), (3, &vec![b"k".to_vec()]));
            assert!((1..=3).contains(&answer.ttl), "{answer:?}");
        }
        other => panic!("{other:?}"),
    }
    let asked_follower = cluster.call(follower, Request::LeaseTimeToLive(question.clone()));
    assert_eq!(asked_follower, Err(ClusterError::NotLeader.into()));
    match cluster.call(follower, Request::LeaseLeases(LeaseLeasesRequest {})) {
        Ok(Response::LeaseLeases(list)) => assert_eq!(list.leases, vec![id]),
        other => panic!("{other:?}"),
    }
    match cluster.call(leader, Request::LeaseRevoke(LeaseRevokeRequest { id })) {
        Ok(Response::LeaseRevoke(_)) => {}
        other => panic!("{other:?}"),
    }
    assert!(cluster.run_until(Duration::from_secs(1), |c| gone_everywhere(c, "k")));
    assert_eq!(keep_alive(&mut cluster, leader, id), Ok(0), "a revoked lease renews to 0");
    match cluster.call(leader, Request::LeaseTimeToLive(question)) {
        Ok(Response::LeaseTimeToLive(answer)) => assert_eq!(answer.ttl, -1),
        other => panic!("{other:?}"),
    }
    let again = cluster.call(leader, Request::LeaseRevoke(LeaseRevokeRequest { id }));
    assert_eq!(again, Err(KvError::LeaseNotFound.into()));
    let taken = Request::LeaseGrant(LeaseGrantRequest { ttl: 10, id: 77 });
    assert!(cluster.call(follower, taken.clone()).is_ok(), "a chosen id");
    assert_eq!(cluster.call(follower, taken), Err(LeaseError::Exists.into()));
}

#[test]
fn a_new_leader_extends_leases_and_the_old_one_cannot_expire_them() {
    let mut cluster = Cluster::new(3, 13);
    let old = cluster.elect();
    let id = grant(&mut cluster, old, 5);
    let granted_at = cluster.now;
    put_on(&mut cluster, old, "k", id).unwrap();
    cluster.run_for(Duration::from_secs(3));
    cluster.isolate(old);
    assert!(cluster.run_until(Duration::from_secs(10), |c| c.leader().is_some_and(|l| l != old)));
    let elected_at = cluster.now;
    assert!(cluster.run_until(Duration::from_secs(20), |c| c.nodes.iter().any(|(&n, node)| n
        != old
        && node
            .kv()
            .range(&RangeRequest { key: b"k".to_vec(), ..Default::default() })
            .unwrap()
            .kvs
            .is_empty())));
    let expired = secs(granted_at, cluster.now);
    let since_election = secs(elected_at, cluster.now);
    assert!(expired > 5.5, "a full TTL again from the new leader: {expired} s");
    assert!(since_election >= 5.0, "TTL plus the election timeout: {since_election} s");
    let range = RangeRequest { key: b"k".to_vec(), ..Default::default() };
    assert_eq!(cluster.nodes[&old].kv().range(&range).unwrap().kvs.len(), 1, "isolated: no revoke");
}

#[test]
fn checkpoints_keep_a_long_lease_from_restarting_at_a_leader_change() {
    for (checkpoints, expect_gone_by) in [(true, 27.0), (false, f64::MAX)] {
        let mut cluster = Cluster::new(3, 14);
        cluster.lease_checkpoint_interval = checkpoints.then(|| Duration::from_secs(2));
        cluster.reconfigure();
        let old = cluster.elect();
        let id = grant(&mut cluster, old, 20);
        let granted_at = cluster.now;
        put_on(&mut cluster, old, "k", id).unwrap();
        cluster.run_for(Duration::from_secs(11));
        if checkpoints {
            let remaining: Vec<i64> =
                cluster.nodes.values().map(|n| n.lessor().get(id).unwrap().remaining_ttl).collect();
            assert!(remaining.iter().all(|&r| (8..=12).contains(&r)), "{remaining:?}");
        }
        cluster.isolate(old);
        let gone = cluster.run_until(Duration::from_secs(19), |c| {
            c.nodes.iter().any(|(&n, node)| {
                let range = RangeRequest { key: b"k".to_vec(), ..Default::default() };
                n != old && node.kv().range(&range).unwrap().kvs.is_empty()
            })
        });
        let after = secs(granted_at, cluster.now);
        if checkpoints {
            assert!(gone && (20.0..expect_gone_by).contains(&after), "gone after {after} s");
        } else {
            assert!(!gone, "without checkpoints the new leader restarts the full 20 s");
        }
    }
}

#[test]
fn a_renewal_clears_the_checkpoint_through_the_log() {
    let mut cluster = Cluster::new(3, 15);
    cluster.lease_checkpoint_interval = Some(Duration::from_secs(2));
    cluster.reconfigure();
    let leader = cluster.elect();
    let id = grant(&mut cluster, leader, 30);
    cluster.run_for(Duration::from_secs(5));
    assert!(cluster.nodes.values().all(|n| n.lessor().get(id).unwrap().remaining_ttl > 0));
    assert_eq!(keep_alive(&mut cluster, leader, id), Ok(30));
    cluster.run_for(Duration::from_millis(100));
    let remaining: Vec<i64> =
        cluster.nodes.values().map(|n| n.lessor().get(id).unwrap().remaining_ttl).collect();
    assert_eq!(remaining, [0, 0, 0], "every member forgot the stale remainder");
    let question = LeaseTimeToLiveRequest { id, keys: false };
    match cluster.call(leader, Request::LeaseTimeToLive(question)) {
        Ok(Response::LeaseTimeToLive(answer)) => {
            assert!(answer.ttl >= 29, "the renewal restarted the full 30 s: {answer:?}")
        }
        other => panic!("{other:?}"),
    }
}
