//! Quota and alarms, Status/Hash/HashKV/Defragment, auto-compaction, backups and the
//! corruption check, on a replicated cluster.

mod harness;

use harness::Cluster;
use stead_core::api::*;
use stead_core::node::{AutoCompaction, Node, NodeConfig};
use stead_core::time::{Duration, Instant};

fn maintenance(
    cluster: &mut Cluster,
    to: u64,
    request: MaintenanceRequest,
) -> Result<Response, Error> {
    cluster.call(to, Request::Maintenance(request))
}

fn alarm(
    cluster: &mut Cluster,
    to: u64,
    action: AlarmAction,
    member_id: u64,
    kind: AlarmType,
) -> Vec<AlarmMember> {
    let request = MaintenanceRequest::Alarm(AlarmRequest { action, member_id, alarm: kind });
    match maintenance(cluster, to, request) {
        Ok(Response::Alarm(answer)) => answer.alarms,
        other => panic!("an alarm answer, got {other:?}"),
    }
}

fn status(cluster: &mut Cluster, to: u64) -> StatusResponse {
    match maintenance(cluster, to, MaintenanceRequest::Status) {
        Ok(Response::Status(status)) => status,
        other => panic!("a status, got {other:?}"),
    }
}

fn put(cluster: &mut Cluster, to: u64, key: &str, value: &[u8]) -> Result<Response, Error> {
    let put = PutRequest { key: key.into(), value: value.to_vec(), ..Default::default() };
    cluster.call(to, Request::Put(put))
}

fn value_of(cluster: &mut Cluster, to: u64, key: &str) -> Option<Vec<u8>> {
    let range = RangeRequest { key: key.into(), ..Default::default() };
    match cluster.call(to, Request::Range(range)) {
        Ok(Response::Range(answer)) => answer.kvs.first().map(|kv| kv.value.clone()),
        other => panic!("a range answer, got {other:?}"),
    }
}

/// The quota story: fill to the quota, see NOSPACE and the write error, compact,
/// defragment and disarm, and writes work again with nothing acknowledged lost.
#[test]
fn nospace_then_compact_defragment_disarm() {
    let mut cluster = Cluster::new(3, 41);
    cluster.tweak = |config| config.quota_backend_bytes = 64 * 1024;
    cluster.reconfigure();
    let leader = cluster.elect();
    let follower = *cluster.nodes.keys().find(|&&id| id != leader).unwrap();
    let mut acknowledged = std::collections::BTreeMap::new();
    let mut refused = None;
    for round in 0..200u32 {
        let key = format!("k{}", round % 8);
        let value = vec![b'a' + (round % 26) as u8; 1000];
        match put(&mut cluster, follower, &key, &value) {
            Ok(_) => {
                acknowledged.insert(key, value);
            }
            Err(error) => {
                refused = Some((round, error));
                break;
            }
        }
    }
    let (round, error) = refused.expect("the quota is reached");
    assert!(round > 40, "about 64 KiB fit first, got {round} writes");
    assert_eq!(error, Error::Server(ServerError::NoSpace));
    assert_eq!(error.code(), GrpcCode::ResourceExhausted);
    assert_eq!(error.to_string(), "etcdserver: mvcc: database space exceeded");
    cluster.run_for(Duration::from_millis(500));
    let raised = AlarmMember { member_id: follower, alarm: AlarmType::NoSpace };
    for node in cluster.nodes.values() {
        assert_eq!(node.alarms(), [raised], "member {} agrees", node.id());
    }
    assert_eq!(alarm(&mut cluster, leader, AlarmAction::Get, 0, AlarmType::None), [raised]);
    assert!(status(&mut cluster, leader)
        .errors
        .contains(&format!("memberID:{follower} alarm:NOSPACE ")));
    // With the alarm raised, even a tiny write is refused everywhere; reads and deletes work.
    assert_eq!(put(&mut cluster, leader, "tiny", b"x"), Err(Error::Server(ServerError::NoSpace)));
    let grant = cluster.call(leader, Request::LeaseGrant(LeaseGrantRequest { ttl: 10, id: 0 }));
    assert_eq!(grant, Err(Error::Server(ServerError::NoSpace)));
    assert_eq!(value_of(&mut cluster, leader, "k0"), acknowledged.get("k0").cloned());
    let delete = DeleteRangeRequest { key: b"k7".to_vec(), ..Default::default() };
    assert!(cluster.call(leader, Request::DeleteRange(delete)).is_ok());
    acknowledged.remove("k7");

    let revision = status(&mut cluster, leader).header.revision;
    let compact = CompactionRequest { revision, physical: true };
    assert!(cluster.call(leader, Request::Compact(compact)).is_ok());
    cluster.run_for(Duration::from_millis(200));
    let before = status(&mut cluster, follower);
    assert!(before.db_size_in_use < before.db_size, "compaction frees space in use: {before:?}");
    assert!(matches!(
        maintenance(&mut cluster, follower, MaintenanceRequest::Defragment),
        Ok(Response::Empty(_))
    ));
    let after = status(&mut cluster, follower);
    assert_eq!(after.db_size, after.db_size_in_use, "defragment gives the space back");
    assert_eq!(
        put(&mut cluster, leader, "tiny", b"x"),
        Err(Error::Server(ServerError::NoSpace)),
        "still armed"
    );
    // `etcdctl alarm disarm`: list every alarm, then clear each (the leader refused a write
    // too, so it raised its own).
    let raised_now = alarm(&mut cluster, leader, AlarmAction::Get, 0, AlarmType::None);
    assert!(raised_now.contains(&raised));
    for member in raised_now {
        let cleared =
            alarm(&mut cluster, leader, AlarmAction::Deactivate, member.member_id, member.alarm);
        assert_eq!(cleared, [member]);
    }
    assert!(alarm(&mut cluster, leader, AlarmAction::Get, 0, AlarmType::None).is_empty());
    assert!(put(&mut cluster, leader, "tiny", b"x").is_ok(), "writes work again");
    for (key, value) in &acknowledged {
        assert_eq!(value_of(&mut cluster, follower, key).as_ref(), Some(value), "{key} kept");
    }
}

#[test]
fn status_hash_and_hashkv_agree_across_members() {
    let mut cluster = Cluster::new(3, 42);
    let leader = cluster.elect();
    for i in 0..20 {
        put(&mut cluster, leader, &format!("key{}", i % 7), format!("v{i}").as_bytes()).unwrap();
    }
    cluster.run_for(Duration::from_millis(300));
    let statuses: Vec<StatusResponse> = (1..=3).map(|id| status(&mut cluster, id)).collect();
    for (id, status) in (1..=3).zip(&statuses) {
        assert_eq!((status.leader, status.version.as_str()), (leader, "3.4.23"));
        assert_eq!(status.header.member_id, id);
        assert!(status.raft_applied_index >= 20 && status.raft_index >= status.raft_applied_index);
        assert!(status.errors.is_empty() && !status.is_learner);
        assert!(status.db_size_in_use > 20 * 256);
    }
    let hashes: Vec<(u32, u32)> = (1..=3)
        .map(|id| {
            let Ok(Response::Hash(hash)) = maintenance(&mut cluster, id, MaintenanceRequest::Hash)
            else {
                panic!("a hash")
            };
            let Ok(Response::HashKv(kv)) =
                maintenance(&mut cluster, id, MaintenanceRequest::HashKv { revision: 10 })
            else {
                panic!("a hashkv")
            };
            assert_eq!((kv.compact_revision, kv.header.revision), (-1, 21));
            (hash.hash, kv.hash)
        })
        .collect();
    assert!(hashes.windows(2).all(|w| w[0] == w[1]), "{hashes:?}");
    // The whole-state hash covers leases too, not just keys.
    let grant = Request::LeaseGrant(LeaseGrantRequest { ttl: 60, id: 5 });
    assert!(cluster.call(leader, grant).is_ok());
    cluster.run_for(Duration::from_millis(100));
    let Ok(Response::Hash(after)) = maintenance(&mut cluster, 1, MaintenanceRequest::Hash) else {
        panic!("a hash")
    };
    assert_ne!(after.hash, hashes[0].0, "a lease changes the hash");
    let future = maintenance(&mut cluster, 1, MaintenanceRequest::HashKv { revision: 99 });
    assert_eq!(future, Err(Error::Kv(KvError::FutureRevision)));
}

#[test]
fn periodic_auto_compaction_keeps_the_retention() {
    let mut cluster = Cluster::new(3, 43);
    cluster.tweak =
        |config| config.auto_compaction = Some(AutoCompaction::Periodic(Duration::from_secs(10)));
    cluster.reconfigure();
    let leader = cluster.elect();
    let start = cluster.now;
    let mut revisions = Vec::new();
    while cluster.now.since(start) < Duration::from_secs(25) {
        let Ok(Response::Put(answer)) = put(&mut cluster, leader, "ticker", b"t") else {
            panic!("a put")
        };
        revisions.push((cluster.now, answer.header.revision));
        cluster.run_for(Duration::from_millis(250));
    }
    let compacted = cluster.nodes[&leader].kv().compacted_revision();
    assert!(compacted > 0, "compacted by itself");
    // The compaction target was sampled about 10 s before the compaction.
    let sampled_at = revisions.iter().find(|(_, rev)| *rev >= compacted).unwrap().0;
    let age = cluster.now.since(sampled_at);
    assert!(age >= Duration::from_secs(10), "kept {} ms of history", age.as_millis());
    for node in cluster.nodes.values() {
        assert_eq!(node.kv().compacted_revision(), compacted, "every member compacted");
    }
}

#[test]
fn a_backup_restores_into_a_new_cluster() {
    let mut cluster = Cluster::new(3, 44);
    let leader = cluster.elect();
    let follower = *cluster.nodes.keys().find(|&&id| id != leader).unwrap();
    for i in 0..10 {
        put(&mut cluster, leader, &format!("key{i}"), format!("value{i}").as_bytes()).unwrap();
    }
    let Ok(Response::LeaseGrant(lease)) =
        cluster.call(leader, Request::LeaseGrant(LeaseGrantRequest { ttl: 600, id: 0 }))
    else {
        panic!("a grant")
    };
    cluster.run_for(Duration::from_millis(200));
    let Ok(Response::Snapshot(backup)) =
        maintenance(&mut cluster, follower, MaintenanceRequest::Snapshot)
    else {
        panic!("a backup")
    };
    let source_kv_hash = cluster.nodes[&follower].kv().hash();

    let config = NodeConfig::new(7, vec![7], 7);
    let mut corrupted = backup.blob.clone();
    let middle = corrupted.len() / 2;
    corrupted[middle] ^= 1;
    let error =
        Node::from_backup(config.clone(), Instant::ZERO, &corrupted, false).err().expect("refused");
    assert!(error.starts_with("expected sha256 "), "{error}");
    let unhashed = &backup.blob[..backup.blob.len() - 32];
    let error = Node::from_backup(config.clone(), Instant::ZERO, unhashed, false).err().unwrap();
    assert_eq!(error, "snapshot missing hash but --skip-hash-check=false");
    assert!(Node::from_backup(config.clone(), Instant::ZERO, b"STEADBK1", true).is_err());

    let mut restored =
        Node::from_backup(config, Instant::ZERO, &backup.blob, false).expect("restores");
    let source = cluster.nodes[&follower].kv().to_snapshot();
    let got = restored.kv().to_snapshot();
    assert_eq!((got.current, got.compacted), (source.current, source.compacted));
    for (a, b) in got.keys.iter().zip(&source.keys) {
        assert_eq!(a, b);
    }
    assert_eq!(restored.kv().hash(), source_kv_hash, "the same key space");
    assert!(restored.lessor().exists(lease.id), "leases come along");
    assert_eq!(restored.members().iter().map(|m| m.id).collect::<Vec<_>>(), [7]);
    // Drive the single member until it leads and serves a linearizable read.
    let mut now = Instant::ZERO;
    let mut answered = None;
    for step in 0..2000 {
        now = now + Duration::from_millis(5);
        restored.handle(stead_core::node::Input::Tick { now });
        if step == 600 {
            let range = RangeRequest { key: b"key3".to_vec(), ..Default::default() };
            restored.handle(stead_core::node::Input::Client {
                id: 1,
                credential: None,
                request: Request::Range(range),
            });
        }
        while let Some(output) = restored.poll_output() {
            match output {
                stead_core::node::Output::Persist { batch, .. } => {
                    restored.handle(stead_core::node::Input::Persisted { batch })
                }
                stead_core::node::Output::Respond { id: 1, result } => answered = Some(result),
                _ => {}
            }
        }
    }
    assert!(restored.is_leader());
    let Some(Ok(Response::Range(range))) = answered else { panic!("{answered:?}") };
    assert_eq!(range.kvs[0].value, b"value3");
}

/// A member whose snapshot rots on disk restarts with a different key space; the corruption
/// check finds it and every member raises CORRUPT for it.
#[test]
fn a_corrupted_member_is_found_by_the_corruption_check() {
    let mut cluster = Cluster::new(3, 45);
    cluster.snapshot_count = 10;
    cluster.tweak = |config| {
        config.corrupt_check_interval = Some(Duration::from_secs(2));
        config.initial_corrupt_check = true;
    };
    cluster.reconfigure();
    let leader = cluster.elect();
    put(&mut cluster, leader, "victim", b"AAAAAAAAAAAAAAAA").unwrap();
    for i in 0..30 {
        put(&mut cluster, leader, &format!("filler{i}"), b"f").unwrap();
    }
    cluster.run_for(Duration::from_secs(5));
    assert!(cluster.nodes.values().all(|n| n.alarms().is_empty()), "healthy members agree");

    let victim = *cluster.nodes.keys().find(|&&id| id != leader).unwrap();
    cluster.crash(victim);
    let snapshot = cluster.disks.get_mut(&victim).unwrap().snapshot.as_mut().expect("a snapshot");
    let data = snapshot.data.to_vec();
    assert_eq!(data.windows(16).filter(|w| *w == b"AAAAAAAAAAAAAAAA").count(), 1);
    let at = data.windows(16).position(|w| w == b"AAAAAAAAAAAAAAAA").expect("the value is in it");
    let mut rotten = data.clone();
    rotten[at..at + 16].copy_from_slice(b"AAAAAAAABAAAAAAA");
    snapshot.data = rotten.into();
    cluster.check_divergence = false;
    cluster.restart(victim);
    let corrupt = AlarmMember { member_id: victim, alarm: AlarmType::Corrupt };
    assert!(
        cluster.run_until(Duration::from_secs(10), |c| c
            .nodes
            .values()
            .all(|n| n.alarms() == [corrupt])),
        "every member raises CORRUPT for member {victim}"
    );
    assert_eq!(put(&mut cluster, leader, "after", b"x"), Err(Error::Server(ServerError::Corrupt)));
    assert_eq!(
        value_of(&mut cluster, leader, "victim").as_deref(),
        Some(&b"AAAAAAAAAAAAAAAA"[..]),
        "reads still work"
    );
    assert_eq!(
        alarm(&mut cluster, leader, AlarmAction::Deactivate, victim, AlarmType::Corrupt),
        [corrupt]
    );
    // The operator repairs the member (its good snapshot back) and it restarts; then another
    // member restarts and replays old checks. Found in review: a replayed report raised the
    // disarmed alarm again.
    cluster.crash(victim);
    let snapshot = cluster.disks.get_mut(&victim).unwrap().snapshot.as_mut().unwrap();
    let mut repaired = snapshot.data.to_vec();
    let at = repaired.windows(16).position(|w| w == b"AAAAAAAABAAAAAAA").expect("still rotten");
    repaired[at..at + 16].copy_from_slice(b"AAAAAAAAAAAAAAAA");
    snapshot.data = repaired.into();
    cluster.restart(victim);
    cluster.run_for(Duration::from_secs(3));
    let other = *cluster.nodes.keys().find(|&&id| id != victim && id != leader).unwrap();
    cluster.crash(other);
    cluster.restart(other);
    cluster.run_for(Duration::from_secs(5));
    for node in cluster.nodes.values() {
        assert!(node.alarms().is_empty(), "member {}: {:?}", node.id(), node.alarms());
    }
    assert!(put(&mut cluster, leader, "after", b"x").is_ok(), "writes work again");
}
