//! Watches on a replicated cluster: a follower's watchers report exactly what the leader wrote,
//! across a snapshot install that replaces the follower's whole key space, and a progress request
//! answers with a revision the stream has fully delivered.

mod harness;

use harness::Cluster;
use stead_core::api::*;
use stead_core::time::Duration;

/// The (key, mod revision) of every event member `node` sent on `stream`, in order.
fn events(cluster: &Cluster, node: u64, stream: u64) -> Vec<(String, i64)> {
    let responses = cluster.watch_responses.iter().filter(|(n, s, _)| (*n, *s) == (node, stream));
    responses
        .flat_map(|(_, _, r)| r.events.iter())
        .map(|e| (String::from_utf8(e.kv.key.clone()).unwrap(), e.kv.mod_revision))
        .collect()
}

fn every_key() -> WatchCreateRequest {
    WatchCreateRequest { key: vec![0], range_end: vec![0], ..Default::default() }
}

#[test]
fn a_follower_watch_survives_a_snapshot_install_without_a_gap() {
    let mut cluster = Cluster::new(3, 21);
    (cluster.snapshot_count, cluster.catch_up_entries) = (10, 2);
    cluster.reconfigure();
    let leader = cluster.elect();
    let follower = *cluster.nodes.keys().find(|&&id| id != leader).unwrap();
    for n in 0..5 {
        cluster.put(leader, &format!("early{n}"), "v").unwrap();
    }
    cluster.run_for(Duration::from_millis(200));
    // From revision 3: the first early write is history the follower replays.
    cluster.watch(
        follower,
        7,
        WatchRequest::Create(WatchCreateRequest { start_revision: 3, ..every_key() }),
    );
    cluster.isolate(follower);
    for n in 0..40 {
        cluster.put(leader, &format!("k{n}"), "v").unwrap();
    }
    let before = cluster.snapshots_sent;
    cluster.heal();
    let caught_up = cluster.run_until(Duration::from_secs(10), |c| {
        c.nodes[&follower].kv().current_revision() == c.nodes[&leader].kv().current_revision()
    });
    assert!(caught_up && cluster.snapshots_sent > before, "the follower needed a snapshot");
    cluster.put(leader, "last", "v").unwrap();
    cluster.run_for(Duration::from_millis(200));
    let got = events(&cluster, follower, 7);
    let revisions: Vec<i64> = got.iter().map(|(_, r)| *r).collect();
    assert_eq!(revisions, (3..=47).collect::<Vec<_>>(), "every revision once, in order");
    assert_eq!(got.last().unwrap().0, "last");
}

#[test]
fn progress_on_a_follower_covers_what_it_delivered() {
    let mut cluster = Cluster::new(3, 22);
    let leader = cluster.elect();
    let follower = *cluster.nodes.keys().find(|&&id| id != leader).unwrap();
    cluster.watch(follower, 1, WatchRequest::Create(every_key()));
    for n in 0..5 {
        cluster.put(leader, &format!("k{n}"), "v").unwrap();
    }
    cluster.run_for(Duration::from_millis(100));
    cluster.watch(follower, 1, WatchRequest::Progress);
    let progress = cluster
        .watch_responses
        .iter()
        .rev()
        .find(|(n, s, r)| (*n, *s) == (follower, 1) && r.is_progress_notify())
        .map(|(_, _, r)| r.clone())
        .expect("a progress notification");
    assert_eq!((progress.watch_id, progress.header.revision), (-1, 6));
    assert_eq!(progress.header.member_id, follower, "the node fills in the header");
    assert_eq!(events(&cluster, follower, 1).len(), 5);
    cluster.watch(follower, 1, WatchRequest::Cancel { watch_id: 0 });
    cluster.put(leader, "after", "v").unwrap();
    cluster.run_for(Duration::from_millis(100));
    assert_eq!(events(&cluster, follower, 1).len(), 5, "nothing after the cancel");
}
