//! The tier-2 scenario: a cluster of the real runtime on madsim hosts, clients through gRPC,
//! faults on a schedule, then the checks.

mod clients;
mod cluster;
pub mod leases;

use clients::Recorder;
use cluster::Cluster;
use madsim::net::NetSim;
use madsim::time::{sleep, Instant};
use std::hash::{Hash, Hasher};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use stead_sim::check::{linearizability, Violation};

/// How long clients run; faults happen in the first part of it.
const LOAD: Duration = Duration::from_secs(30);
/// Quiet time after the load, before the final reads.
const SETTLE: Duration = Duration::from_secs(3);
/// Concurrent clients.
const CLIENTS: usize = 4;

/// What a run found.
#[derive(Debug)]
pub struct Summary {
    /// The run's seed.
    pub seed: u64,
    /// The checkers' findings (none expected).
    pub violations: Vec<Violation>,
    /// Operations (acknowledged, failed, unknown).
    pub tally: (usize, usize, usize),
    /// The faults injected, with their simulated times.
    pub faults: Vec<String>,
    /// A hash of the history, the final log and the faults: equal for equal seeds.
    pub trace_hash: u64,
}

impl Summary {
    /// Panics with the findings unless the run kept every guarantee and made progress.
    pub fn assert_clean(&self) {
        let seed = self.seed;
        assert!(
            self.violations.is_empty(),
            "seed {seed}: {} violations, first: {:?}\nfaults: {:#?}",
            self.violations.len(),
            self.violations.first(),
            self.faults
        );
        assert!(
            self.tally.0 >= 100,
            "too little progress: {:?}, faults {:#?}",
            self.tally,
            self.faults
        );
        eprintln!(
            "tier-2 seed {seed}: ops acknowledged/failed/unknown {:?}, trace hash {:016x}",
            self.tally, self.trace_hash
        );
    }
}

/// Runs the scenario in the current madsim runtime.
pub async fn scenario() -> Summary {
    let filter = tracing_subscriber::EnvFilter::try_from_env("STEAD_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("off"));
    let _ =
        tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).try_init();
    let start = Instant::now();
    let mut faults = Vec::new();
    let mut note =
        |what: String| faults.push(format!("{:>6} ms: {what}", start.elapsed().as_millis()));
    let mut cluster = Cluster::start().await;
    let recorder = Arc::new(Mutex::new(Recorder::new(start)));
    let until = Instant::now() + LOAD;
    let workers: Vec<_> = (0..CLIENTS)
        .map(|id| {
            cluster.spawn_client(clients::run(id, cluster.endpoints(), recorder.clone(), until))
        })
        .collect();

    sleep(Duration::from_secs(3)).await;
    let leader = cluster.leader().await;
    note(format!("kill leader {} and lose its unsynced writes", cluster.name(leader)));
    cluster.crash_and_restart(leader, Duration::from_secs(1)).await;

    sleep(Duration::from_secs(4)).await;
    let leader = cluster.leader().await;
    note(format!("partition leader {} for 3 s", cluster.name(leader)));
    let node = cluster.node_id(leader);
    NetSim::current().clog_node(node);
    sleep(Duration::from_secs(3)).await;
    NetSim::current().unclog_node(node);

    sleep(Duration::from_secs(3)).await;
    note("drop 5% of packets for 3 s".into());
    NetSim::current().update_config(|config| config.packet_loss_rate = 0.05);
    sleep(Duration::from_secs(3)).await;
    NetSim::current().update_config(|config| config.packet_loss_rate = 0.0);

    sleep(Duration::from_secs(2)).await;
    let leader = cluster.leader().await;
    let victim = (0..cluster.len()).find(|&i| i != leader && cluster.alive(i)).expect("a follower");
    note(format!("replace follower {} with a new member", cluster.name(victim)));
    let joined = cluster.replace(victim).await;
    note(format!("{joined} joined"));

    for worker in workers {
        worker.await.expect("a client task");
    }
    sleep(SETTLE).await;
    let (events, hashes) = cluster.final_log().await;
    let history = recorder.lock().expect("the recorder").history.clone();
    let mut violations = linearizability(&history, &events);
    if hashes.windows(2).any(|pair| pair[0] != pair[1]) {
        violations
            .push(Violation::new("convergence", format!("members' HashKV differ: {hashes:?}")));
    }
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    format!("{:?}", history.ops).hash(&mut hasher);
    format!("{events:?}").hash(&mut hasher);
    faults.hash(&mut hasher);
    let seed = madsim::runtime::Handle::current().seed();
    Summary { seed, violations, tally: history.tally(), faults, trace_hash: hasher.finish() }
}
