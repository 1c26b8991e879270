//! stead-sim: the deterministic simulator.
//!
//! A run places a cluster of [`host`]s (each a `stead_core::Node` over the real `stead_store` on
//! a crashable `MemDisk`) in a single-threaded discrete-event [`world`] driven by one seed split
//! into independent [`rng`] streams. A [`scenario`] file sets the cluster, the workload and the
//! faults: message delay, reordering, loss and duplication; partitions (both ways or one way);
//! power losses with whatever the disk keeps; per-member clock offsets and drift. Clients record
//! a [`history`]; the [`check`]ers hold it and the cluster to etcd's guarantees. The same binary,
//! scenario and seed always give the same trace hash.

pub mod check;
pub mod check_lease;
pub mod check_watch;
pub mod history;
pub mod host;
pub mod rng;
pub mod scenario;
pub mod shrink;
pub mod world;

use std::cell::RefCell;
use std::io::Write;
use std::rc::Rc;

/// One fault a run applied: its label (`kind#occurrence`, what a shrunk scenario's
/// `keep_faults` names), when, and what it did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FaultRecord {
    /// `kind#n`: the n-th occurrence of this kind of fault in the run (counting from 0).
    pub label: String,
    /// Simulated milliseconds since the start.
    pub at_ms: u64,
    /// What it did, for people.
    pub what: String,
}

/// The result of one seed.
pub struct SeedResult {
    /// The hash of every event of the run.
    pub trace_hash: u32,
    /// Every broken guarantee (empty: the seed passed).
    pub violations: Vec<check::Violation>,
    /// Operations (acknowledged, failed, unknown).
    pub ops: (usize, usize, usize),
    /// Simulated time covered, in seconds.
    pub simulated_seconds: f64,
    /// Every fault the run applied (also when it crashed).
    pub faults: Vec<FaultRecord>,
}

/// Runs `scenario` with `seed`, writing the event trace to `trace` if given. A panic anywhere in
/// the run (a node, raft, the store) fails the seed with a `crash` violation instead of ending
/// the whole run.
pub fn run_seed(
    scenario: &scenario::Scenario,
    seed: u64,
    trace: Option<Box<dyn Write>>,
) -> SeedResult {
    let faults = Rc::new(RefCell::new(Vec::new()));
    let sink = faults.clone();
    let run = std::panic::AssertUnwindSafe(|| {
        world::World::new(scenario.clone(), seed, trace).with_fault_log(sink).run()
    });
    let result = std::panic::catch_unwind(run);
    let faults = faults.borrow().clone();
    match result {
        Ok(outcomes) => SeedResult {
            trace_hash: outcomes.trace_hash,
            violations: outcomes.violations,
            ops: outcomes.history.tally(),
            simulated_seconds: outcomes.simulated.as_nanos() as f64 / 1e9,
            faults,
        },
        Err(payload) => {
            let message = payload
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "a panic without a message".into());
            SeedResult {
                trace_hash: 0,
                violations: vec![check::Violation::new("crash", message)],
                ops: (0, 0, 0),
                simulated_seconds: 0.0,
                faults,
            }
        }
    }
}
