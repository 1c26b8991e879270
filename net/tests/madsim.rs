//! Tier 2: the real runtime (gRPC services and streams, the peer transport, joining, restart
//! from a data dir) under madsim. Three members of `stead_net::server::serve` run on simulated
//! hosts, each on a crashable `MemDisk`; clients go through the real gRPC client path; the leader
//! is killed and restarted (losing whatever its disk had not synced), partitioned, the network
//! drops packets, and a member is replaced by a new one that joins with
//! `--initial-cluster-state existing`. The history is checked with the tier-1 simulator's
//! linearizability checker (shared code, `stead_sim::check`), and the members must converge.
//!
//! Build and run (its own target dir, so normal builds are untouched):
//! `RUSTFLAGS="--cfg madsim" CARGO_TARGET_DIR=target/sim cargo test -p stead-net --test madsim`
//! with `MADSIM_TEST_SEED=<n>` (and `MADSIM_TEST_NUM=<count>` for a range of seeds).

#![cfg(madsim)]

mod tier2;

use tier2::{scenario, Summary};

/// The fault scenario over `MADSIM_TEST_SEED` (and the seeds after it, `MADSIM_TEST_NUM`).
#[madsim::test]
async fn the_real_runtime_keeps_its_guarantees_under_faults() {
    let summary = scenario().await;
    summary.assert_clean();
}

/// Regression (found by the real-process suite, `tests/tests/leases.rs`): lease calls sent to
/// the followers of a fresh cluster are all answered, none with `not leader`.
#[madsim::test]
async fn followers_of_a_fresh_cluster_answer_lease_calls() {
    let (calls, failures) = tier2::leases::fresh_cluster_lease_calls().await;
    assert!(failures.is_empty(), "{} of {calls} lease calls failed: {failures:?}", failures.len());
}

/// Same seed, same outcome: the trace hash (history, final log, fault times) of two runs.
#[test]
fn a_seed_replays_bit_exactly() {
    let seed = std::env::var("MADSIM_TEST_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(1);
    let run = || -> Summary {
        let runtime = madsim::runtime::Runtime::with_seed_and_config(seed, Default::default());
        runtime.block_on(scenario())
    };
    let (first, second) = (run(), run());
    first.assert_clean();
    assert_eq!(first.trace_hash, second.trace_hash, "seed {seed} is not deterministic");
}
