//! Regression: lease calls sent to the followers of fresh clusters are all answered (the
//! first run of the chaos suite saw `etcdserver: not leader`; see `stead_tests::leases`).
//! Needs root and the release binary, as CI has (scripts/test.sh builds it).

use std::time::Duration;
use stead_tests::leases::fresh_cluster;
use stead_tests::member::Flavor;

/// Fresh clusters per run, and calls per client in each (16 clients).
const CLUSTERS: usize = 3;
const CALLS: usize = 1000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn followers_of_fresh_clusters_answer_every_lease_call() {
    let flavor = Flavor::stead().expect("the release binary");
    let dir = std::env::temp_dir().join(format!("stead-lease-regression-{}", std::process::id()));
    for round in 0..CLUSTERS {
        let started = std::time::Instant::now();
        let tally = fresh_cluster(flavor.clone(), &dir.join(round.to_string()), CALLS)
            .await
            .expect("a fresh cluster");
        println!(
            "cluster {round}: {} calls in {:?}, errors {:?}",
            tally.calls,
            started.elapsed(),
            tally.errors
        );
        assert_eq!(tally.calls, 16 * CALLS);
        assert!(tally.errors.is_empty(), "cluster {round}: {:?}", tally.errors);
        assert!(started.elapsed() < Duration::from_secs(120));
    }
    let _ = std::fs::remove_dir_all(&dir);
}
