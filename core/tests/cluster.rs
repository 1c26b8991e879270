//! The replicated node, driven by the deterministic in-process harness: elections, replication,
//! forwarding, linearizable reads across a leader change, message loss, crashes and restarts,
//! and determinism. The harness checks, after every step, that no term has two leaders and that
//! members agree on the key space at every applied index.

mod harness;

use harness::Cluster;
use stead_core::api::{Error, Request, Response, ServerError};
use stead_core::time::Duration;

fn revision(result: &Result<Response, Error>) -> i64 {
    match result {
        Ok(Response::Put(put)) => put.header.revision,
        other => panic!("a successful put, got {other:?}"),
    }
}

#[test]
fn a_single_member_serves_writes_and_reads() {
    let mut cluster = Cluster::new(1, 1);
    let leader = cluster.elect();
    assert_eq!(revision(&cluster.put(leader, "k", "v1")), 2);
    assert_eq!(cluster.get(leader, "k", false), Ok(Some("v1".into())));
    assert_eq!(cluster.get(leader, "k", true), Ok(Some("v1".into())));
}

#[test]
fn three_members_elect_one_leader_and_replicate_in_order() {
    let mut cluster = Cluster::new(3, 2);
    let leader = cluster.elect();
    for n in 0..20 {
        assert_eq!(revision(&cluster.put(leader, &format!("k{n}"), "v")), n + 2);
    }
    cluster.run_for(Duration::from_millis(500));
    let applied: Vec<u64> = cluster.nodes.values().map(|n| n.applied_index()).collect();
    assert!(applied.iter().all(|&a| a == applied[0]), "all caught up: {applied:?}");
    let hashes: Vec<u32> = cluster.nodes.values().map(|n| n.kv().hash()).collect();
    assert!(hashes.iter().all(|&h| h == hashes[0]));
}

#[test]
fn a_follower_forwards_writes_and_serves_linearizable_reads() {
    let mut cluster = Cluster::new(3, 3);
    let leader = cluster.elect();
    let follower = *cluster.voters.iter().find(|&&id| id != leader).unwrap();
    assert_eq!(revision(&cluster.put(follower, "k", "from a follower")), 2);
    assert_eq!(cluster.get(follower, "k", false), Ok(Some("from a follower".into())));
    let response = cluster.put(follower, "k", "again").unwrap();
    let header = match response {
        Response::Put(put) => put.header,
        _ => unreachable!(),
    };
    assert_eq!((header.member_id, header.revision), (follower, 3), "the member that answered");
    assert!(header.raft_term >= 1 && header.cluster_id != 0);
}

#[test]
fn an_isolated_old_leader_never_serves_a_stale_linearizable_read() {
    let mut cluster = Cluster::new(3, 4);
    let old = cluster.elect();
    cluster.put(old, "k", "v1").unwrap();
    cluster.run_for(Duration::from_millis(200));
    cluster.isolate(old);
    assert!(
        cluster.run_until(Duration::from_secs(10), |c| c.leader().is_some_and(|l| l != old)),
        "the majority elects a new leader"
    );
    let new = cluster.leader().unwrap();
    cluster.put(new, "k", "v2").unwrap();
    // The write v2 is acknowledged; a linearizable read anywhere must not return v1.
    let stale = cluster.get(old, "k", false);
    assert!(
        matches!(stale, Err(Error::Server(ServerError::Timeout | ServerError::LeaderChanged))),
        "{stale:?}"
    );
    let other = *cluster.voters.iter().find(|&&id| id != old && id != new).unwrap();
    assert_eq!(cluster.get(other, "k", false), Ok(Some("v2".into())));
    // A serializable read on the isolated member may be stale, but it is a state that existed.
    assert_eq!(cluster.get(old, "k", true), Ok(Some("v1".into())));
    cluster.heal();
    assert!(cluster.run_until(Duration::from_secs(10), |c| c.nodes[&old].kv().hash()
        == c.nodes[&new].kv().hash()));
    assert_eq!(cluster.get(old, "k", false), Ok(Some("v2".into())));
}

#[test]
fn writes_commit_through_message_loss() {
    let mut cluster = Cluster::new(5, 5);
    cluster.drop_rate = 0.2;
    let mut revisions = Vec::new();
    for n in 0..30 {
        let leader = cluster.elect();
        if let Ok(response) = cluster.put(leader, &format!("k{n}"), "v") {
            revisions.push(revision(&Ok(response)));
        }
    }
    assert!(revisions.len() >= 25, "most writes succeed despite 20% loss: {}", revisions.len());
    assert!(
        revisions.windows(2).all(|w| w[0] < w[1]),
        "acknowledged writes are ordered: {revisions:?}"
    );
    cluster.drop_rate = 0.0;
    cluster.run_for(Duration::from_secs(2));
    let hashes: BTreeSet<u32> = cluster.nodes.values().map(|n| n.kv().hash()).collect();
    assert_eq!(hashes.len(), 1, "all members converge");
}

use std::collections::BTreeSet;

#[test]
fn crashed_members_restart_from_their_disk_and_apply_nothing_twice() {
    let mut cluster = Cluster::new(3, 6);
    let leader = cluster.elect();
    for n in 0..10 {
        cluster.put(leader, &format!("k{n}"), "v").unwrap();
    }
    let follower = *cluster.voters.iter().find(|&&id| id != leader).unwrap();
    cluster.crash(follower);
    for n in 10..15 {
        cluster.put(leader, &format!("k{n}"), "v").unwrap();
    }
    cluster.restart(follower);
    assert!(cluster
        .run_until(Duration::from_secs(5), |c| c.nodes[&follower].kv().current_revision() == 16));
    // Now crash the leader: the others elect a new one and keep every acknowledged write.
    cluster.crash(leader);
    let new = cluster.elect();
    assert_ne!(new, leader);
    assert_eq!(revision(&cluster.put(new, "after", "crash")), 17);
    cluster.restart(leader);
    assert!(cluster
        .run_until(Duration::from_secs(5), |c| c.nodes[&leader].kv().current_revision() == 17));
    for n in 0..15 {
        assert_eq!(cluster.get(leader, &format!("k{n}"), false), Ok(Some("v".into())), "k{n}");
    }
}

#[test]
fn requests_without_a_quorum_time_out_with_etcds_error() {
    let mut cluster = Cluster::new(3, 7);
    let leader = cluster.elect();
    let others: Vec<u64> = cluster.voters.iter().copied().filter(|&id| id != leader).collect();
    for id in others {
        cluster.crash(id);
    }
    let put = stead_core::api::PutRequest { key: b"k".to_vec(), ..Default::default() };
    let client = cluster.request(leader, Request::Put(put));
    let answer = cluster.answer(client, Duration::from_secs(10));
    assert_eq!(answer, Some(Err(Error::Server(ServerError::Timeout))));
    assert_eq!(answer.unwrap().unwrap_err().to_string(), "etcdserver: request timed out");
}

#[test]
fn malformed_and_oversized_requests_get_etcds_errors() {
    let mut cluster = Cluster::new(1, 8);
    let leader = cluster.elect();
    let empty = stead_core::api::PutRequest::default();
    let client = cluster.request(leader, Request::Put(empty));
    let answer = cluster.answer(client, Duration::from_secs(1)).unwrap();
    assert_eq!(answer.unwrap_err().to_string(), "etcdserver: key is not provided");
    let huge = stead_core::api::PutRequest {
        key: b"k".to_vec(),
        value: vec![0; 2 << 20],
        ..Default::default()
    };
    let client = cluster.request(leader, Request::Put(huge));
    let answer = cluster.answer(client, Duration::from_secs(1)).unwrap();
    assert_eq!(answer.unwrap_err().to_string(), "etcdserver: request is too large");
}

/// Runs a fixed workload with faults; returns the trace hash.
fn scripted_run(seed: u64) -> u32 {
    let mut cluster = Cluster::new(3, seed);
    cluster.drop_rate = 0.1;
    let leader = cluster.elect();
    for n in 0..10 {
        let _ = cluster.put(leader, &format!("k{n}"), "v");
    }
    cluster.isolate(leader);
    cluster.run_for(Duration::from_secs(3));
    cluster.heal();
    let leader = cluster.elect();
    let _ = cluster.get(leader, "k1", false);
    cluster.trace_hash()
}

#[test]
fn the_same_seed_replays_bit_for_bit() {
    let first = scripted_run(42);
    assert_eq!(first, scripted_run(42), "same seed, same trace");
    assert_ne!(first, scripted_run(43), "another seed, another trace");
}

/// A cluster that snapshots every 10 entries and keeps only 5 behind each snapshot.
fn snapshotting_cluster(seed: u64) -> Cluster {
    let mut cluster = Cluster::new(3, seed);
    (cluster.snapshot_count, cluster.catch_up_entries) = (10, 5);
    cluster.reconfigure();
    cluster
}

#[test]
fn a_follower_that_fell_behind_the_log_catches_up_from_a_snapshot() {
    let mut cluster = snapshotting_cluster(9);
    let leader = cluster.elect();
    let follower = *cluster.voters.iter().find(|&&id| id != leader).unwrap();
    cluster.crash(follower);
    for n in 0..60 {
        cluster.put(leader, &format!("k{n}"), &format!("v{n}")).unwrap();
    }
    assert!(cluster.disks[&leader].snapshots_saved >= 5, "the leader snapshots every 10 entries");
    cluster.restart(follower);
    assert!(
        cluster.run_until(Duration::from_secs(10), |c| c.nodes[&follower].kv().hash()
            == c.nodes[&leader].kv().hash()),
        "the follower catches up"
    );
    assert!(cluster.disks[&follower].snapshots_installed >= 1, "through a snapshot, not the log");
    assert_eq!(cluster.get(follower, "k59", false), Ok(Some("v59".into())));
}

/// Found by the simulator: after installing a leader's snapshot, raft-rs still believed the
/// follower had applied only what it applied before, below the snapshot; when that follower
/// then campaigned, raft-rs read entries the snapshot had replaced and panicked.
#[test]
fn a_member_that_installed_a_snapshot_can_campaign() {
    let mut cluster = snapshotting_cluster(11);
    let leader = cluster.elect();
    let follower = *cluster.voters.iter().find(|&&id| id != leader).unwrap();
    cluster.isolate(follower);
    for n in 0..60 {
        cluster.put(leader, &format!("k{n}"), "v").unwrap();
    }
    cluster.heal();
    assert!(cluster.run_until(Duration::from_secs(10), |c| c.nodes[&follower].kv().hash()
        == c.nodes[&leader].kv().hash()));
    assert!(cluster.disks[&follower].snapshots_installed >= 1, "through a snapshot");
    // The leader goes away; the follower that installed the snapshot must be able to campaign.
    cluster.isolate(leader);
    let others = |c: &Cluster| c.leader().is_some_and(|l| l != leader);
    assert!(cluster.run_until(Duration::from_secs(10), others), "a new leader without panics");
}

#[test]
fn members_restart_from_their_own_snapshots() {
    let mut cluster = snapshotting_cluster(10);
    let leader = cluster.elect();
    for n in 0..35 {
        cluster.put(leader, &format!("k{n}"), "v").unwrap();
    }
    cluster.run_for(Duration::from_millis(500));
    for id in cluster.voters.clone() {
        assert!(cluster.disks[&id].snapshot.is_some(), "member {id} saved a snapshot");
        cluster.crash(id);
    }
    for id in cluster.voters.clone() {
        cluster.restart(id);
    }
    let leader = cluster.elect();
    assert_eq!(revision(&cluster.put(leader, "after", "restart")), 37);
    assert_eq!(cluster.get(leader, "k0", false), Ok(Some("v".into())));
}

#[test]
fn a_lost_snapshot_is_sent_again() {
    let mut cluster = snapshotting_cluster(11);
    let leader = cluster.elect();
    let follower = *cluster.voters.iter().find(|&&id| id != leader).unwrap();
    cluster.crash(follower);
    for n in 0..40 {
        cluster.put(leader, &format!("k{n}"), "v").unwrap();
    }
    // The follower is back and answering, but the snapshot it needs is lost in transit.
    cluster.drop_snapshots = true;
    cluster.restart(follower);
    assert!(
        cluster.run_until(Duration::from_secs(5), |c| c.snapshots_sent >= 1),
        "a snapshot is sent"
    );
    cluster.drop_snapshots = false;
    let caught_up = |c: &Cluster| c.nodes[&follower].kv().hash() == c.nodes[&leader].kv().hash();
    assert!(cluster.run_until(Duration::from_secs(15), caught_up), "the follower catches up");
    assert!(cluster.snapshots_sent >= 2, "the lost snapshot was sent again");
}
