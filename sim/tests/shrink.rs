//! The issue's proof for the shrinker: a deliberate bug (stead-core's test-only `planted-bugs`
//! feature, switched on by the scenario) is found by `run` and reduced by `shrink` to a few
//! faults, and the result replays deterministically with the same failure.

use stead_sim::run_seed;
use stead_sim::scenario::Scenario;
use stead_sim::shrink::{shrink, to_scenario_file};

/// Many kinds of faults, the leader cut off again and again; the planted bug lets the leader
/// serve linearizable reads without confirming it still leads.
const PLANTED: &str = r#"
description = "Planted bug: the leader serves linearizable reads without a ReadIndex round"
nodes = 3
safety_ms = 15000
liveness_ms = 6000
planted_bug = "leader-local-reads"

[partitions]
every_ms = 3000
duration_ms = 2000
target = "leader"

[crashes]
every_ms = 5000
down_ms = 1000

[pauses]
every_ms = 3000
duration_ms = 500

[clocks]
jump_every_ms = 3000
max_jump_ms = 300

[leadership]
transfer_every_ms = 2500

[compaction]
every_ms = 2000
"#;

#[test]
fn run_finds_a_planted_bug_and_shrink_reduces_it() {
    const { assert!(stead_core::node::PLANTED_BUGS_COMPILED, "tests build core with the feature") };
    let scenario = Scenario::parse(PLANTED).expect("a valid scenario");
    let failing = (0..30u64)
        .map(|seed| (seed, run_seed(&scenario, seed, None)))
        .find(|(_, result)| !result.violations.is_empty());
    let (seed, original) = failing.expect("run finds the planted bug within 30 seeds");
    assert_eq!(original.violations[0].check, "linearizability", "{:?}", original.violations[0]);
    let mut healthy = scenario.clone();
    healthy.planted_bug = None;
    assert!(
        run_seed(&healthy, seed, None).violations.is_empty(),
        "without the bug, seed {seed} passes: the bug is what was found"
    );

    let mut steps = 0;
    let mut progress = |_: &str| steps += 1;
    let shrunk = shrink(&scenario, seed, 150, &mut progress).expect("shrinks");
    assert_eq!(shrunk.check, "linearizability");
    assert!(shrunk.faults_before >= 10, "the original run had many faults");
    assert!(
        shrunk.faults_after.len() * 3 <= shrunk.faults_before,
        "{} of {} faults kept",
        shrunk.faults_after.len(),
        shrunk.faults_before
    );

    // The printed file parses back, fails the same check, and replays bit for bit.
    let file = to_scenario_file(&shrunk, "planted.toml", seed).expect("prints");
    let reparsed = Scenario::parse(&file).expect("the shrunk file is a valid scenario");
    let first = run_seed(&reparsed, seed, None);
    let second = run_seed(&reparsed, seed, None);
    assert!(first.violations.iter().any(|v| v.check == "linearizability"));
    assert_eq!(first.trace_hash, second.trace_hash, "deterministic");
    assert_eq!(first.faults, shrunk.faults_after, "it applies exactly the faults it lists");
    assert!(file.contains(&format!("--seed {seed}")), "it says how to replay it");
}

#[test]
fn shrink_refuses_a_passing_seed() {
    let scenario =
        Scenario::parse("description = \"calm\"\nsafety_ms = 2000\nliveness_ms = 5000\n")
            .expect("a valid scenario");
    let error = shrink(&scenario, 1, 10, &mut |_| {}).err().expect("nothing to shrink");
    assert!(error.contains("passes"), "{error}");
}
