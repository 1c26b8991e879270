//! Scenario files: what cluster to run, for how long, under which faults, with which workload.
//!
//! A scenario is a TOML file; every field has a default, so a file names only what it changes
//! (unknown fields are refused). A run has a safety phase (faults on, `safety_ms`) and then a
//! liveness phase (`liveness_ms`: faults off, partitions healed, crashed members restarted), in
//! which the cluster must serve a write.

use serde::{Deserialize, Serialize};
use std::path::Path;

/// A named chaos scenario.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct Scenario {
    /// One line saying what the scenario exercises.
    pub description: String,
    /// Cluster size (1, 3 or 5).
    pub nodes: u64,
    /// Length of the safety phase, in simulated milliseconds.
    pub safety_ms: u64,
    /// Length of the liveness phase, in simulated milliseconds.
    pub liveness_ms: u64,
    /// Concurrent clients.
    pub clients: usize,
    /// A client gives up on an operation after this long; the outcome is then unknown.
    pub op_timeout_ms: u64,
    /// Keys the clients use.
    pub keys: usize,
    /// Share of operations that are reads (the rest are puts and deletes).
    pub read_fraction: f64,
    /// Share of reads that are serializable.
    pub serializable_fraction: f64,
    /// Share of reads that read a range of keys instead of one key.
    pub range_fraction: f64,
    /// Share of writes that are deletes.
    pub delete_fraction: f64,
    /// Share of writes that are compare-and-swap transactions.
    pub cas_fraction: f64,
    /// Network faults.
    pub network: Network,
    /// Partitions.
    pub partitions: Partitions,
    /// Power losses.
    pub crashes: Crashes,
    /// Clock offsets, drift and jumps.
    pub clocks: Clocks,
    /// Disk latency and failures.
    pub disk: Disk,
    /// Process pauses.
    pub pauses: Pauses,
    /// Leadership transfers (etcd's MoveLeader) during the safety phase.
    pub leadership: Leadership,
    /// Membership changes during the safety phase.
    pub membership: Membership,
    /// Compactions the world asks for during the safety phase.
    pub compaction: Compaction,
    /// Choose the faults per seed: every fault kind is switched on or off and given a random
    /// rate (swarm testing); the file's own fault settings are replaced.
    pub swarm: bool,
    /// Watch sessions that follow every key and resume elsewhere when their member goes away.
    pub watch: Watch,
    /// Clients that grant leases, attach keys, keep them alive for a while, then revoke them
    /// or let them expire.
    pub leases: Leases,
    /// Applied entries between snapshots.
    pub snapshot_count: u64,
    /// WAL segment size.
    pub wal_segment_bytes: u64,
    /// `--heartbeat-interval` in milliseconds.
    pub heartbeat_ms: u64,
    /// `--election-timeout` in milliseconds (a whole number of heartbeats).
    pub election_timeout_ms: u64,
    /// `--experimental-corrupt-check-time` in milliseconds (0: off); members that restart
    /// from their disk also run the initial check.
    pub corrupt_check_ms: u64,
    /// The space quota and the operator who frees space and disarms NOSPACE.
    pub quota: Quota,
    /// Extra expectations the run must meet besides the usual checks.
    pub checks: Checks,
    /// Apply only these faults (`kind#n`: the n-th occurrence of that kind); the others are
    /// still drawn but skipped. Written by `stead-sim shrink`; absent: apply every fault.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub keep_faults: Option<Vec<String>>,
    /// Test-only: a deliberate bug the members run with (`leader-local-reads`), to prove the
    /// checkers and the shrinker; needs a build with stead-core's `planted-bugs` feature.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub planted_bug: Option<String>,
}

/// The space quota (`[quota]`).
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct Quota {
    /// `--quota-backend-bytes` (0: etcd's 2 GiB).
    pub bytes: i64,
    /// How often an operator compacts, lists the alarms and disarms them (0: never), through
    /// both phases, as someone on call would.
    pub operator_every_ms: u64,
    /// The operator compacts at the newest recorded revision minus this many.
    pub keep_revisions: i64,
}

impl Default for Quota {
    fn default() -> Self {
        Quota { bytes: 0, operator_every_ms: 0, keep_revisions: 20 }
    }
}

/// Expectations a scenario adds (`[checks]`): a run that never reaches the situation it
/// exists for proves nothing, so it fails.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct Checks {
    /// Some write must be refused with `database space exceeded`, and the operator must
    /// disarm a NOSPACE alarm.
    pub expect_nospace: bool,
}

/// Message delay, loss and duplication.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct Network {
    /// Fastest delivery.
    pub delay_ms_min: u64,
    /// Slowest delivery (messages overtake each other between the two).
    pub delay_ms_max: u64,
    /// Chance a message is lost.
    pub drop_rate: f64,
    /// Chance a message arrives twice.
    pub duplicate_rate: f64,
}

/// Network partitions during the safety phase.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct Partitions {
    /// Mean time between partitions (0: none).
    pub every_ms: u64,
    /// How long one lasts.
    pub duration_ms: u64,
    /// Cut links one way only (messages from the isolated side still flow).
    pub one_way: bool,
    /// Cut a random half of the links instead of splitting the members into two sides: members
    /// may then reach each other only through a third.
    pub partial: bool,
    /// Whom a split isolates: a random minority, or the leader alone.
    pub target: Target,
}

/// Whom a fault hits.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Target {
    /// A member (or minority) chosen at random.
    #[default]
    Random,
    /// The current leader (a random member when there is none).
    Leader,
    /// Every member at once (power loss of the whole cluster).
    All,
}

/// Power losses during the safety phase.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct Crashes {
    /// Mean time between power losses (0: none).
    pub every_ms: u64,
    /// How long a member stays down.
    pub down_ms: u64,
    /// Whom a power loss hits: a random member, the leader, or every member at once.
    pub target: Target,
}

/// Per-member clocks.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct Clocks {
    /// Largest offset between a member's clock and simulated time.
    pub max_offset_ms: u64,
    /// Largest drift, in parts per million.
    pub max_drift_ppm: u64,
    /// Mean time between clock jumps of a random member (0: none).
    pub jump_every_ms: u64,
    /// Largest jump, forward or backward.
    pub max_jump_ms: u64,
}

/// Disk latency and failures.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct Disk {
    /// Fastest fsync.
    pub latency_ms_min: u64,
    /// Slowest fsync.
    pub latency_ms_max: u64,
    /// Mean time between an EIO on some member's next write or sync (0: none).
    pub eio_every_ms: u64,
    /// Mean time between some member's disk filling up (0: none).
    pub enospc_every_ms: u64,
    /// How long a member whose disk failed stays down before it restarts.
    pub down_ms: u64,
}

/// Process pauses (a stop-the-world pause, a VM freeze).
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct Pauses {
    /// Mean time between pauses of a random member (0: none).
    pub every_ms: u64,
    /// How long a pause lasts.
    pub duration_ms: u64,
}

/// Membership changes: each one advances the cycle add a learner → promote it → remove a
/// random voter (the leader included), so the cluster keeps between `nodes` and `nodes + 1`
/// voters.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct Membership {
    /// Mean time between changes (0: none).
    pub churn_every_ms: u64,
}

/// Leadership transfers.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct Leadership {
    /// Mean time between transfers to a random other voter (0: none).
    pub transfer_every_ms: u64,
}

/// Compactions (`[compaction]`).
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct Compaction {
    /// How often a member is asked to compact (0: never).
    pub every_ms: u64,
    /// Compact at the newest recorded revision minus this many.
    pub keep_revisions: i64,
}

impl Default for Compaction {
    fn default() -> Self {
        Compaction { every_ms: 0, keep_revisions: 20 }
    }
}

/// Watch sessions (`[watch]`).
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct Watch {
    /// How many watchers follow the whole key space (0: none).
    pub watchers: usize,
    /// Event responses are acknowledged after up to this long, so streams fill up and
    /// watchers become victims.
    pub ack_delay_ms_max: u64,
    /// How often each watcher asks for a progress notification (0: never).
    pub progress_every_ms: u64,
    /// Event responses a member lets a stream have outstanding (etcd: 128); small values
    /// make watchers victims often.
    pub stream_capacity: usize,
}

impl Default for Watch {
    fn default() -> Self {
        Watch { watchers: 0, ack_delay_ms_max: 20, progress_every_ms: 700, stream_capacity: 128 }
    }
}

/// Lease clients (`[leases]`).
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct Leases {
    /// How many lease clients run (0: none).
    pub clients: usize,
    /// The TTL they ask for, in seconds.
    pub ttl_s: i64,
    /// Each lease is kept alive up to this many times (every third of its TTL).
    pub max_keepalives: u32,
    /// How often a client revokes its lease instead of letting it expire.
    pub revoke_fraction: f64,
}

impl Default for Leases {
    fn default() -> Self {
        Leases { clients: 0, ttl_s: 3, max_keepalives: 6, revoke_fraction: 0.5 }
    }
}

impl Default for Scenario {
    fn default() -> Self {
        Scenario {
            description: String::new(),
            nodes: 3,
            safety_ms: 20_000,
            liveness_ms: 15_000,
            clients: 4,
            op_timeout_ms: 3_000,
            keys: 8,
            read_fraction: 0.4,
            serializable_fraction: 0.25,
            range_fraction: 0.25,
            delete_fraction: 0.1,
            cas_fraction: 0.2,
            network: Network::default(),
            partitions: Partitions::default(),
            crashes: Crashes::default(),
            clocks: Clocks::default(),
            disk: Disk::default(),
            pauses: Pauses::default(),
            leadership: Leadership::default(),
            membership: Membership::default(),
            compaction: Compaction::default(),
            swarm: false,
            watch: Watch::default(),
            leases: Leases::default(),
            snapshot_count: 500,
            wal_segment_bytes: 64 * 1024,
            heartbeat_ms: 100,
            election_timeout_ms: 1000,
            corrupt_check_ms: 0,
            quota: Quota::default(),
            checks: Checks::default(),
            keep_faults: None,
            planted_bug: None,
        }
    }
}

impl Default for Network {
    fn default() -> Self {
        Network { delay_ms_min: 1, delay_ms_max: 10, drop_rate: 0.0, duplicate_rate: 0.0 }
    }
}

impl Scenario {
    /// A `swarm` scenario's fault mix for one seed: each fault kind on with even odds, at a
    /// random rate; the same seed always gives the same mix.
    pub fn swarm_mix(&self, rng: &mut impl rand::Rng) -> Scenario {
        let mut mix = self.clone();
        let every = |rng: &mut dyn rand::RngCore, low: u64, high: u64| {
            if rand::Rng::gen_bool(rng, 0.5) {
                rand::Rng::gen_range(rng, low..=high)
            } else {
                0
            }
        };
        mix.network.drop_rate = if rng.gen_bool(0.5) { rng.gen_range(0.0..0.1) } else { 0.0 };
        mix.network.duplicate_rate = if rng.gen_bool(0.5) { rng.gen_range(0.0..0.05) } else { 0.0 };
        mix.network.delay_ms_max = rng.gen_range(2..=60);
        mix.partitions.every_ms = every(rng, 1_000, 8_000);
        mix.partitions.duration_ms = rng.gen_range(300..=3_000);
        mix.partitions.one_way = rng.gen_bool(0.3);
        mix.partitions.partial = rng.gen_bool(0.3);
        mix.partitions.target = if rng.gen_bool(0.3) { Target::Leader } else { Target::Random };
        mix.crashes.every_ms = every(rng, 2_000, 10_000);
        mix.crashes.down_ms = rng.gen_range(300..=3_000);
        mix.crashes.target = match rng.gen_range(0..10) {
            0 => Target::All,
            1..=3 => Target::Leader,
            _ => Target::Random,
        };
        mix.clocks.max_offset_ms = rng.gen_range(0..=1_000);
        mix.clocks.max_drift_ppm = rng.gen_range(0..=300);
        mix.clocks.jump_every_ms = every(rng, 2_000, 10_000);
        mix.clocks.max_jump_ms = rng.gen_range(0..=1_500);
        mix.disk.latency_ms_max = rng.gen_range(mix.disk.latency_ms_min..=40);
        mix.disk.eio_every_ms = every(rng, 3_000, 15_000);
        mix.disk.enospc_every_ms = every(rng, 5_000, 20_000);
        mix.disk.down_ms = rng.gen_range(300..=2_000);
        mix.pauses.every_ms = every(rng, 2_000, 10_000);
        mix.pauses.duration_ms = rng.gen_range(100..=2_000);
        mix.leadership.transfer_every_ms = every(rng, 500, 8_000);
        mix.membership.churn_every_ms = every(rng, 3_000, 10_000);
        mix.compaction.every_ms = every(rng, 1_000, 6_000);
        mix
    }

    /// Reads and checks a scenario file.
    pub fn from_file(path: &Path) -> Result<Scenario, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        Scenario::parse(&text).map_err(|e| format!("{}: {e}", path.display()))
    }

    /// Parses and checks scenario text.
    pub fn parse(text: &str) -> Result<Scenario, String> {
        let scenario: Scenario = toml::from_str(text).map_err(|e| e.to_string())?;
        scenario.check()?;
        Ok(scenario)
    }

    /// Checks the scenario's values against each other.
    pub fn check(&self) -> Result<(), String> {
        let fractions = [
            self.read_fraction,
            self.serializable_fraction,
            self.range_fraction,
            self.delete_fraction,
            self.cas_fraction,
            self.leases.revoke_fraction,
        ];
        let rates = [self.network.drop_rate, self.network.duplicate_rate];
        if !(1..=7).contains(&self.nodes) {
            return Err(format!("nodes must be 1 to 7, not {}", self.nodes));
        }
        if fractions.iter().chain(&rates).any(|f| !(0.0..=1.0).contains(f)) {
            return Err("fractions and rates must lie in [0, 1]".into());
        }
        if self.leases.clients > 0 && self.leases.ttl_s < 1 {
            return Err("leases need ttl_s >= 1".into());
        }
        if let Some(bug) = &self.planted_bug {
            if bug != "leader-local-reads" {
                return Err(format!("unknown planted bug {bug:?}"));
            }
            if !stead_core::node::PLANTED_BUGS_COMPILED {
                return Err("planted bugs need stead-core's `planted-bugs` feature".into());
            }
        }
        if self.heartbeat_ms == 0 || self.election_timeout_ms < 2 * self.heartbeat_ms {
            return Err("need heartbeat_ms > 0 and election_timeout_ms >= 2 heartbeats".into());
        }
        if self.checks.expect_nospace
            && (self.quota.bytes <= 0 || self.quota.operator_every_ms == 0)
        {
            return Err("expect_nospace needs [quota] bytes and operator_every_ms".into());
        }
        if self.disk.latency_ms_min > self.disk.latency_ms_max {
            return Err("need latency_ms_min <= latency_ms_max".into());
        }
        if self.network.delay_ms_min > self.network.delay_ms_max
            || self.clients == 0
            || self.keys == 0
        {
            return Err("need delay_ms_min <= delay_ms_max, at least one client and one key".into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_names_only_what_it_changes() {
        let scenario = Scenario::parse("nodes = 5\n[network]\ndrop_rate = 0.1\n").unwrap();
        assert_eq!((scenario.nodes, scenario.network.drop_rate, scenario.clients), (5, 0.1, 4));
    }

    #[test]
    fn mistakes_are_refused_with_a_reason() {
        assert!(Scenario::parse("nodez = 3").unwrap_err().contains("unknown field"));
        assert!(Scenario::parse("nodes = 0").unwrap_err().contains("nodes must be"));
        assert!(Scenario::parse("[network]\ndrop_rate = 2.0").unwrap_err().contains("[0, 1]"));
    }
}
