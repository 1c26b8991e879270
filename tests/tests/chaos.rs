//! CI's bounded tier of the real-process chaos suite: a few seeds of faults against a
//! 3-member cluster of the release `stead` binary, and one seed against etcd 3.4 as the
//! control (the harness must find nothing there either). Seeds: 1, 2 and 6 (whose first fault
//! is membership churn, with a promotion through a follower), plus one derived from
//! the commit (`STEAD_SIM_COMMIT`, as the scenario test does) so each commit explores a new
//! one. Longer soaks: `stead-chaos --seeds A..B --duration S` (see README).
//! Needs root, iproute2 and iptables, and the release binary (scripts/test.sh builds it).

use std::time::Duration;
use stead_tests::member::Flavor;
use stead_tests::run::{run, Report, Settings};

/// Seconds of faults per seed.
const FAULT_SECONDS: u64 = 20;

/// One cluster at a time: the tests of this file would otherwise run side by side and share
/// the two cores.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn settings(flavor: Flavor, seed: u64) -> Settings {
    Settings {
        flavor,
        seed,
        duration: Duration::from_secs(FAULT_SECONDS),
        kv_clients: 6,
        lease_clients: 3,
        root: std::env::temp_dir().join(format!("stead-chaos-{}", std::process::id())),
        keep: false,
    }
}

fn commit_seed() -> Option<u64> {
    let commit = std::env::var("STEAD_SIM_COMMIT").ok()?;
    let hex: String = commit.chars().filter(char::is_ascii_hexdigit).take(8).collect();
    u64::from_str_radix(&hex, 16).ok().map(|n| 1000 + n % 1_000_000)
}

fn assert_clean(report: &Report) {
    println!("{}", report.verdict());
    let found: Vec<String> =
        report.violations.iter().map(|v| format!("{}: {}", v.check, v.detail)).collect();
    assert!(report.violations.is_empty(), "{}\n{}", report.verdict(), found.join("\n"));
    assert!(report.ops.0 > 1000, "the workload hardly ran: {}", report.verdict());
    assert!(report.faults.iter().map(|(_, n)| n).sum::<usize>() > 0, "no fault was injected");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stead_keeps_etcds_guarantees_under_real_faults() {
    let _turn = ONE_AT_A_TIME.lock().await;
    let stead = Flavor::stead().expect("the release binary");
    let seeds = [1, 2, 6].into_iter().chain(commit_seed());
    for seed in seeds {
        let report = run(&settings(stead.clone(), seed)).await.expect("the run completes");
        assert_clean(&report);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_harness_finds_nothing_wrong_with_etcd() {
    let _turn = ONE_AT_A_TIME.lock().await;
    let report = run(&settings(Flavor::Etcd, 1)).await.expect("the run completes");
    assert_clean(&report);
}
