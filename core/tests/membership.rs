//! Membership and leadership changes through the replicated node: a learner joins, catches up
//! and is promoted; the leader is removed and the rest carry on; leadership moves on request;
//! and every refusal carries etcd's error.

mod harness;

use harness::Cluster;
use stead_core::api::{ClusterError, ClusterRequest, ClusterResponse, Error, Response};
use stead_core::time::Duration;

fn cluster_request(
    cluster: &mut Cluster,
    to: u64,
    request: ClusterRequest,
) -> Result<ClusterResponse, Error> {
    let client = cluster.request(to, stead_core::api::Request::Cluster(request));
    match cluster.answer(client, Duration::from_secs(10)).expect("answered")? {
        Response::Cluster(response) => Ok(response),
        other => panic!("a cluster answer, got {other:?}"),
    }
}

fn add_learner(cluster: &mut Cluster, to: u64, url: &str) -> Result<ClusterResponse, Error> {
    let request = ClusterRequest::MemberAdd { peer_urls: vec![url.into()], is_learner: true };
    cluster_request(cluster, to, request)
}

#[test]
fn a_learner_joins_catches_up_and_is_promoted() {
    let mut cluster = Cluster::new(3, 21);
    let leader = cluster.elect();
    for n in 0..10 {
        cluster.put(leader, &format!("k{n}"), "v").unwrap();
    }
    let follower = *cluster.voters.iter().find(|&&id| id != leader).unwrap();
    let added = add_learner(&mut cluster, follower, "http://10.0.0.9:2380").unwrap();
    let learner = added.member.clone().expect("the new member");
    assert!(learner.is_learner && learner.peer_urls == ["http://10.0.0.9:2380"]);
    assert_eq!(added.members.len(), 4);
    let listed = cluster_request(&mut cluster, leader, ClusterRequest::MemberList).unwrap();
    assert!(listed.members.iter().any(|m| m.id == learner.id && m.is_learner));

    // Before the learner has started, it is not in sync: promotion is refused.
    let early =
        cluster_request(&mut cluster, leader, ClusterRequest::MemberPromote { id: learner.id });
    assert_eq!(
        early.unwrap_err().to_string(),
        "etcdserver: can only promote a learner member which is in sync with leader"
    );
    cluster.join(learner.id);
    let caught_up = |c: &Cluster| c.nodes[&learner.id].kv().hash() == c.nodes[&leader].kv().hash();
    assert!(cluster.run_until(Duration::from_secs(10), caught_up), "the learner replays the log");
    // The leader judges readiness by the acknowledgements it has received.
    cluster.run_for(Duration::from_millis(300));
    assert_eq!(cluster.nodes[&learner.id].members().len(), 4, "membership rebuilt from the log");
    // A learner serves serializable reads only.
    assert_eq!(cluster.get(learner.id, "k9", true), Ok(Some("v".into())));
    let refused = cluster.get(learner.id, "k9", false).unwrap_err();
    assert_eq!(refused.to_string(), "etcdserver: rpc not supported for learner");
    assert_eq!(cluster.put(learner.id, "k", "v").unwrap_err(), refused);

    let on_follower =
        cluster_request(&mut cluster, follower, ClusterRequest::MemberPromote { id: learner.id });
    assert_eq!(on_follower.unwrap_err().to_string(), "etcdserver: not leader");
    let promoted =
        cluster_request(&mut cluster, leader, ClusterRequest::MemberPromote { id: learner.id })
            .unwrap();
    assert!(promoted.members.iter().all(|m| !m.is_learner));
    assert!(cluster.run_until(Duration::from_secs(2), |c| !c.nodes[&learner.id].is_learner()));
    assert_eq!(cluster.get(learner.id, "k9", false), Ok(Some("v".into())), "a voter now");
    cluster.put(leader, "after", "promotion").unwrap();
}

#[test]
fn removing_the_leader_leaves_a_working_cluster() {
    let mut cluster = Cluster::new(3, 22);
    let leader = cluster.elect();
    cluster.put(leader, "before", "removal").unwrap();
    let removed =
        cluster_request(&mut cluster, leader, ClusterRequest::MemberRemove { id: leader }).unwrap();
    assert_eq!(removed.members.len(), 2);
    assert!(cluster.run_until(Duration::from_secs(10), |c| c.leader().is_some_and(|l| l != leader)));
    assert!(cluster.nodes[&leader].is_removed());
    let new = cluster.leader().unwrap();
    cluster.put(new, "after", "removal").unwrap();
    assert_eq!(cluster.get(new, "before", false), Ok(Some("removal".into())));
    let stopped =
        cluster.request(leader, stead_core::api::Request::Cluster(ClusterRequest::MemberList));
    let answer = cluster.answer(stopped, Duration::from_secs(1)).unwrap();
    assert_eq!(answer.unwrap_err().to_string(), "etcdserver: server stopped");
    let again = cluster_request(&mut cluster, new, ClusterRequest::MemberRemove { id: leader });
    assert_eq!(again.unwrap_err(), Error::Cluster(ClusterError::MemberNotFound));
}

#[test]
fn leadership_moves_on_request() {
    let mut cluster = Cluster::new(3, 23);
    let leader = cluster.elect();
    let target = *cluster.voters.iter().find(|&&id| id != leader).unwrap();
    let on_follower = cluster_request(&mut cluster, target, ClusterRequest::MoveLeader { target });
    assert_eq!(on_follower.unwrap_err().to_string(), "etcdserver: not leader");
    cluster_request(&mut cluster, leader, ClusterRequest::MoveLeader { target }).unwrap();
    assert_eq!(cluster.leader(), Some(target));
    let unknown = cluster_request(&mut cluster, target, ClusterRequest::MoveLeader { target: 99 });
    assert_eq!(unknown.unwrap_err().to_string(), "etcdserver: bad leader transferee");
    add_learner(&mut cluster, target, "http://10.0.0.9:2380").unwrap();
    let learner = cluster.nodes[&target].members().into_iter().find(|m| m.is_learner).unwrap().id;
    let to_learner =
        cluster_request(&mut cluster, target, ClusterRequest::MoveLeader { target: learner });
    assert_eq!(to_learner.unwrap_err(), Error::Cluster(ClusterError::BadLeaderTransferee));
}

#[test]
fn membership_refusals_carry_etcds_errors() {
    let mut cluster = Cluster::new(3, 24);
    let leader = cluster.elect();
    let own_url = cluster.nodes[&leader].members()[0].peer_urls[0].clone();
    let clash = cluster_request(
        &mut cluster,
        leader,
        ClusterRequest::MemberAdd { peer_urls: vec![own_url], is_learner: false },
    );
    assert_eq!(clash.unwrap_err().to_string(), "etcdserver: Peer URLs already exists");
    let bad = cluster_request(
        &mut cluster,
        leader,
        ClusterRequest::MemberAdd { peer_urls: vec!["not a url".into()], is_learner: false },
    );
    assert_eq!(bad.unwrap_err().to_string(), "etcdserver: given member URLs are invalid");
    add_learner(&mut cluster, leader, "http://10.0.0.8:2380").unwrap();
    let second = add_learner(&mut cluster, leader, "http://10.0.0.9:2380");
    assert_eq!(second.unwrap_err().to_string(), "etcdserver: too many learner members in cluster");
    let voter = cluster_request(&mut cluster, leader, ClusterRequest::MemberPromote { id: leader });
    assert_eq!(voter.unwrap_err().to_string(), "etcdserver: can only promote a learner member");
    let unknown = cluster_request(&mut cluster, leader, ClusterRequest::MemberRemove { id: 4242 });
    assert_eq!(unknown.unwrap_err().to_string(), "etcdserver: member not found");
    let update =
        ClusterRequest::MemberUpdate { id: leader, peer_urls: vec!["http://10.1.1.1:2380".into()] };
    let updated = cluster_request(&mut cluster, leader, update).unwrap();
    assert!(updated
        .members
        .iter()
        .any(|m| m.id == leader && m.peer_urls == ["http://10.1.1.1:2380"]));
    assert!(cluster.run_until(Duration::from_secs(2), |c| c
        .nodes
        .values()
        .all(|n| n.members() == c.nodes[&leader].members())));
}

/// Found by the simulator: after log compaction, a learner added later needs a snapshot that
/// includes it (raft refuses one whose configuration lacks the receiver); the leader's stored
/// snapshot predates the learner, so the node must take a fresh one when raft asks.
#[test]
fn a_learner_added_after_compaction_catches_up_from_a_fresh_snapshot() {
    let mut cluster = Cluster::new(3, 25);
    (cluster.snapshot_count, cluster.catch_up_entries) = (10, 5);
    cluster.reconfigure();
    let leader = cluster.elect();
    for n in 0..40 {
        cluster.put(leader, &format!("k{n}"), "v").unwrap();
    }
    let learner =
        add_learner(&mut cluster, leader, "http://10.0.0.9:2380").unwrap().member.unwrap().id;
    cluster.join(learner);
    let caught_up = |c: &Cluster| c.nodes[&learner].kv().hash() == c.nodes[&leader].kv().hash();
    assert!(cluster.run_until(Duration::from_secs(10), caught_up), "the learner catches up");
    assert!(cluster.disks[&learner].snapshots_installed >= 1, "through a snapshot");
}

#[test]
fn membership_changes_forwarded_together_by_a_follower_all_apply() {
    let mut cluster = Cluster::new(3, 24);
    let leader = cluster.elect();
    let follower = *cluster.voters.iter().find(|&&id| id != leader).unwrap();
    // Both reach the leader while the first is pending: raft drops the second silently, and the
    // follower forwards it again instead of letting it time out.
    let add = |url: &str, is_learner: bool| {
        stead_core::api::Request::Cluster(ClusterRequest::MemberAdd {
            peer_urls: vec![url.into()],
            is_learner,
        })
    };
    let first = cluster.request(follower, add("http://10.0.0.8:2380", true));
    let second = cluster.request(follower, add("http://10.0.0.9:2380", false));
    for client in [first, second] {
        let answer = cluster.answer(client, Duration::from_secs(5)).expect("answered in time");
        assert!(answer.is_ok(), "{answer:?}");
    }
    let listed = cluster_request(&mut cluster, leader, ClusterRequest::MemberList).unwrap();
    assert_eq!(listed.members.len(), 5, "each added exactly once: {:?}", listed.members);
}
