//! Every scenario in `scenarios/` over a fixed range of seeds, plus a few seeds derived from the
//! commit under test (`STEAD_SIM_COMMIT`, which CI sets), so every commit also explores new
//! seeds; plus a determinism check. What CI runs through `cargo test`. A failure names the seed
//! and the replay command.

use std::path::PathBuf;
use stead_sim::run_seed;
use stead_sim::scenario::Scenario;

/// Seeds per scenario in CI: 0..8 (`STEAD_SIM_SEEDS` raises it locally), then 2 seeds from a
/// range derived from `STEAD_SIM_COMMIT` when it is set.
fn seeds() -> Vec<u64> {
    let fixed = std::env::var("STEAD_SIM_SEEDS").ok().and_then(|s| s.parse().ok()).unwrap_or(8);
    let mut seeds: Vec<u64> = (0..fixed).collect();
    if let Ok(commit) = std::env::var("STEAD_SIM_COMMIT") {
        let base = 1_000_000 + u64::from(crc32c::crc32c(commit.trim().as_bytes())) * 2;
        seeds.extend(base..base + 2);
    }
    seeds
}

fn scenario_files() -> Vec<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../scenarios");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("the scenarios directory")
        .map(|entry| entry.expect("an entry").path())
        .filter(|path| path.extension().is_some_and(|e| e == "toml"))
        .collect();
    files.sort();
    files
}

fn scenario_file(name: &str) -> PathBuf {
    scenario_files().into_iter().find(|f| f.ends_with(name)).expect("the scenario exists")
}

#[test]
fn every_scenario_passes_its_seeds() {
    let files = scenario_files();
    assert!(files.len() >= 2, "scenarios found: {files:?}");
    let mut failures = Vec::new();
    for file in &files {
        let scenario = Scenario::from_file(file).expect("a valid scenario");
        for seed in seeds() {
            let result = run_seed(&scenario, seed, None);
            if let Some(first) = result.violations.first() {
                failures.push(format!(
                    "seed={seed} check={}: {}\n  replay: stead-sim replay {} --seed {seed}",
                    first.check,
                    first.detail,
                    file.display()
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn the_same_seed_gives_the_same_trace() {
    let file = scenario_file("mixed-faults.toml");
    let scenario = Scenario::from_file(&file).unwrap();
    let first = run_seed(&scenario, 3, None);
    assert_eq!(first.trace_hash, run_seed(&scenario, 3, None).trace_hash);
    assert_ne!(first.trace_hash, run_seed(&scenario, 4, None).trace_hash);
    assert!(first.ops.0 > 100, "the workload ran: {:?}", first.ops);
}

/// The workload exercises every kind of operation and outcome the checkers judge.
#[test]
fn the_workload_covers_every_operation_kind() {
    use stead_sim::history::{OpKind, Outcome};
    let file = scenario_file("mixed-faults.toml");
    let outcomes = stead_sim::world::World::new(Scenario::from_file(&file).unwrap(), 5, None).run();
    let count = |pred: &dyn Fn(&OpKind, &Outcome) -> bool| {
        outcomes.history.ops.iter().filter(|op| pred(&op.kind, &op.outcome)).count()
    };
    let cas_won = count(&|_, o| matches!(o, Outcome::Cas { succeeded: true, .. }));
    let cas_lost = count(&|_, o| matches!(o, Outcome::Cas { succeeded: false, .. }));
    let deleted = count(&|_, o| matches!(o, Outcome::Delete { deleted: 1, .. }));
    let linearizable_reads = count(&|k, o| {
        matches!((k, o), (OpKind::Get { serializable: false, .. }, Outcome::Get { .. }))
    });
    let serializable_reads = count(&|k, o| {
        matches!((k, o), (OpKind::Get { serializable: true, .. }, Outcome::Get { .. }))
    });
    let unknown = count(&|_, o| matches!(o, Outcome::Unknown));
    let ranges = count(&|_, o| matches!(o, Outcome::Range { kvs, .. } if kvs.len() > 1));
    let counts =
        [cas_won, cas_lost, deleted, linearizable_reads, serializable_reads, unknown, ranges];
    assert!(
        counts.iter().all(|&n| n > 0),
        "cas won/lost, deletes, lin/ser reads, unknown, ranges: {counts:?}"
    );
    assert!(outcomes.violations.is_empty(), "{:?}", outcomes.violations);
}

/// Watchers and lease clients do what their checkers judge: sessions resume, progress comes,
/// leases are renewed, revoked and left to expire.
#[test]
fn the_watch_and_lease_workloads_run() {
    let file = scenario_file("mixed-faults.toml");
    let scenario = Scenario::from_file(&file).unwrap();
    assert!(scenario.watch.watchers > 0 && scenario.leases.clients > 0);
    let (mut sessions, mut events, mut progress, mut open, mut compacted) = (0, 0, 0, 0, 0);
    let (mut leases, mut renewals, mut revoked, mut abandoned) = (0, 0, 0, 0);
    for seed in 5..8 {
        let outcomes = stead_sim::world::World::new(scenario.clone(), seed, None).run();
        assert!(outcomes.violations.is_empty(), "{:?}", outcomes.violations);
        sessions += outcomes.watch_sessions.len() - scenario.watch.watchers;
        for session in &outcomes.watch_sessions {
            events += session.events.len();
            progress += session.progress.len();
            open += usize::from(session.open_at.is_some());
            compacted += usize::from(session.compacted.is_some());
        }
        for life in &outcomes.lease_lives {
            leases += 1;
            renewals += life.renewals.len();
            revoked += usize::from(life.revoke_acked.is_some());
            abandoned += usize::from(life.abandoned.is_some());
        }
    }
    let watch = [sessions, events, progress, open, compacted];
    assert!(watch.iter().all(|&n| n > 0), "resumed, events, progress, open, compacted: {watch:?}");
    let lease = [leases, renewals, revoked, abandoned];
    assert!(lease.iter().all(|&n| n > 2), "leases, renewals, revoked, abandoned: {lease:?}");
}
