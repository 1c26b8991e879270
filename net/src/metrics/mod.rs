//! etcd's Prometheus metrics: one registry per member with etcd 3.4's names, types, labels,
//! help texts and histogram buckets, served at `/metrics`.
//!
//! Three kinds of source feed it:
//! - the core's counters and gauges ([`stead_core::stats::NodeStats`]), read from the member's
//!   task at each scrape and copied in ([`Metrics::update`]): leader, proposals, key space,
//!   watchers, leases;
//! - durations the runtime measures where the work happens: WAL fsyncs and snapshots in the
//!   driver, peer round trips in the peer transport, slow requests in the services;
//! - the gRPC layer ([`grpc`]): every call on the client port counted by service, method, type
//!   and code, as go-grpc-prometheus counts them for etcd.
//!
//! The process collector adds `process_*` (CPU, memory, file descriptors, start time). Where
//! stead has no equivalent of an etcd metric (bolt internals, the v2 store, Go's runtime), the
//! metric is absent rather than faked; README lists them.

pub mod grpc;

use prometheus::core::Collector;
use prometheus::{
    exponential_buckets, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec,
    IntGauge, IntGaugeVec, Opts, Registry,
};
use std::collections::BTreeMap;
use std::sync::Mutex;
use stead_core::stats::NodeStats;

/// The server version etcd members report (`etcd_server_version`).
pub const SERVER_VERSION: &str = stead_core::node::ETCD_VERSION;
/// The cluster version etcd 3.4 reports (`etcd_cluster_version`).
pub const CLUSTER_VERSION: &str = "3.4";

/// Every metric of one member.
pub struct Metrics {
    registry: Registry,
    /// The core's numbers as last copied in, behind one lock so scrapes do not race.
    copied: Mutex<Copied>,
    server: Server,
    /// Disk latencies.
    pub disk: Disk,
    mvcc: Mvcc,
    lease: LeaseMetrics,
    /// Peer and client traffic.
    pub network: Network,
    /// `grpc_server_*`.
    pub grpc: grpc::GrpcMetrics,
}

/// What [`Metrics::update`] copied last: counters advance by the difference.
#[derive(Default)]
struct Copied {
    stats: NodeStats,
}

struct Server {
    has_leader: IntGauge,
    is_leader: IntGauge,
    is_learner: IntGauge,
    leader_changes: IntCounter,
    committed: IntGauge,
    applied: IntGauge,
    pending: IntGauge,
    failed: IntCounter,
    heartbeat_send_failures: IntCounter,
    slow_apply: IntCounter,
    slow_read_indexes: IntCounter,
    read_indexes_failed: IntCounter,
    quota_backend_bytes: IntGauge,
    id: IntGaugeVec,
    health_success: IntCounter,
    health_failures: IntCounter,
}

/// Disk latency histograms, observed where the work is done.
pub struct Disk {
    /// `etcd_disk_wal_fsync_duration_seconds`: one WAL fdatasync.
    pub wal_fsync: Histogram,
    /// `etcd_disk_backend_commit_duration_seconds`: the applied state made durable, which in
    /// stead is saving the member's own snapshot.
    pub backend_commit: Histogram,
    /// `etcd_debugging_snap_save_total_duration_seconds`: saving the member's own snapshot.
    pub snap_save: Histogram,
    /// `etcd_disk_backend_snapshot_duration_seconds`: a client's backup stream
    /// (Maintenance.Snapshot).
    pub backend_snapshot: Histogram,
    /// `etcd_disk_backend_defrag_duration_seconds`: a Defragment call.
    pub backend_defrag: Histogram,
    /// `etcd_snap_db_save_total_duration_seconds`: a snapshot from the leader installed.
    pub snap_db_save: Histogram,
    /// `etcd_snap_db_fsync_duration_seconds`: that snapshot's write and sync to disk.
    pub snap_db_fsync: Histogram,
}

struct Mvcc {
    db_size: IntGauge,
    db_size_debugging: IntGauge,
    db_in_use: IntGauge,
    puts: [IntCounter; 2],
    deletes: [IntCounter; 2],
    ranges: [IntCounter; 2],
    txns: [IntCounter; 2],
    put_bytes: IntGauge,
    keys: IntGauge,
    current_revision: IntGauge,
    compact_revision: IntGauge,
    watchers: IntGauge,
    slow_watchers: IntGauge,
    events: IntCounter,
    pending_events: IntGauge,
}

struct LeaseMetrics {
    granted: IntCounter,
    revoked: IntCounter,
    renewed: IntCounter,
    ttl: Histogram,
}

/// Peer and client traffic.
pub struct Network {
    /// `etcd_network_peer_round_trip_time_seconds{To}`.
    pub peer_rtt: HistogramVec,
    /// `etcd_network_peer_sent_bytes_total{To}`.
    pub peer_sent_bytes: IntCounterVec,
    /// `etcd_network_peer_received_bytes_total{From}`.
    pub peer_received_bytes: IntCounterVec,
    /// `etcd_network_peer_sent_failures_total{To}`.
    pub peer_sent_failures: IntCounterVec,
    /// `etcd_network_active_peers{Local,Remote}`.
    pub active_peers: IntGaugeVec,
    /// `etcd_network_disconnected_peers_total{Local,Remote}`.
    pub disconnected_peers: IntCounterVec,
    /// `etcd_network_client_grpc_sent_bytes_total`.
    pub client_sent_bytes: IntCounter,
    /// `etcd_network_client_grpc_received_bytes_total`.
    pub client_received_bytes: IntCounter,
}

/// The disk histograms (fields of [`Disk`], in order): name, help, first bucket, buckets.
const DISK_HISTOGRAMS: [(&str, &str, f64, usize); 7] = [
    (
        "etcd_disk_wal_fsync_duration_seconds",
        "The latency distributions of fsync called by WAL.",
        0.001,
        14,
    ),
    (
        "etcd_disk_backend_commit_duration_seconds",
        "The latency distributions of commit called by backend.",
        0.001,
        14,
    ),
    (
        "etcd_debugging_snap_save_total_duration_seconds",
        "The total latency distributions of save called by snapshot.",
        0.001,
        14,
    ),
    (
        "etcd_disk_backend_snapshot_duration_seconds",
        "The latency distribution of backend snapshots.",
        0.01,
        17,
    ),
    (
        "etcd_disk_backend_defrag_duration_seconds",
        "The latency distribution of backend defragmentation.",
        0.1,
        13,
    ),
    (
        "etcd_snap_db_save_total_duration_seconds",
        "The total latency distributions of v3 snapshot save",
        0.1,
        10,
    ),
    (
        "etcd_snap_db_fsync_duration_seconds",
        "The latency distributions of fsyncing .snap.db file",
        0.001,
        14,
    ),
];

/// Buckets `start * factor^i` for `count` values, as Go's `prometheus.ExponentialBuckets`.
fn buckets(start: f64, factor: f64, count: usize) -> Vec<f64> {
    exponential_buckets(start, factor, count).expect("valid buckets")
}

/// Registers metrics as they are made; a name registered twice is a bug found at start.
struct Maker<'a>(&'a Registry);

impl Maker<'_> {
    fn add<C: Collector + Clone + 'static>(&self, collector: C) -> C {
        self.0.register(Box::new(collector.clone())).expect("metric names are unique");
        collector
    }
    fn counter(&self, name: &str, help: &str) -> IntCounter {
        self.add(IntCounter::with_opts(Opts::new(name, help)).expect("valid counter"))
    }
    fn gauge(&self, name: &str, help: &str) -> IntGauge {
        self.add(IntGauge::with_opts(Opts::new(name, help)).expect("valid gauge"))
    }
    fn histogram(&self, name: &str, help: &str, buckets: Vec<f64>) -> Histogram {
        let opts = HistogramOpts::new(name, help).buckets(buckets);
        self.add(Histogram::with_opts(opts).expect("valid histogram"))
    }
    fn counter_vec(&self, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
        self.add(IntCounterVec::new(Opts::new(name, help), labels).expect("valid counter"))
    }
    fn gauge_vec(&self, name: &str, help: &str, labels: &[&str]) -> IntGaugeVec {
        self.add(IntGaugeVec::new(Opts::new(name, help), labels).expect("valid gauge"))
    }
    fn histogram_vec(
        &self,
        name: &str,
        help: &str,
        labels: &[&str],
        buckets: Vec<f64>,
    ) -> HistogramVec {
        let opts = HistogramOpts::new(name, help).buckets(buckets);
        self.add(HistogramVec::new(opts, labels).expect("valid histogram"))
    }
}

impl Metrics {
    /// A member's metrics; `extensive` (`--metrics extensive`) adds
    /// `grpc_server_handling_seconds`.
    pub fn new(extensive: bool) -> Metrics {
        let registry = Registry::new();
        let make = Maker(&registry);
        let server = Server {
            has_leader: make.gauge("etcd_server_has_leader", "Whether or not a leader exists. 1 is existence, 0 is not."),
            is_leader: make.gauge("etcd_server_is_leader", "Whether or not this member is a leader. 1 if is, 0 otherwise."),
            is_learner: make.gauge("etcd_server_is_learner", "Whether or not this member is a learner. 1 if is, 0 otherwise."),
            leader_changes: make.counter("etcd_server_leader_changes_seen_total", "The number of leader changes seen."),
            committed: make.gauge("etcd_server_proposals_committed_total", "The total number of consensus proposals committed."),
            applied: make.gauge("etcd_server_proposals_applied_total", "The total number of consensus proposals applied."),
            pending: make.gauge("etcd_server_proposals_pending", "The current number of pending proposals to commit."),
            failed: make.counter("etcd_server_proposals_failed_total", "The total number of failed proposals seen."),
            heartbeat_send_failures: make.counter("etcd_server_heartbeat_send_failures_total", "The total number of leader heartbeat send failures (likely overloaded from slow disk)."),
            slow_apply: make.counter("etcd_server_slow_apply_total", "The total number of slow apply requests (likely overloaded from slow disk)."),
            slow_read_indexes: make.counter("etcd_server_slow_read_indexes_total", "The total number of pending read indexes not in sync with leader's or timed out read index requests."),
            read_indexes_failed: make.counter("etcd_server_read_indexes_failed_total", "The total number of failed read indexes seen."),
            quota_backend_bytes: make.gauge("etcd_server_quota_backend_bytes", "Current backend storage quota size in bytes."),
            id: make.gauge_vec("etcd_server_id", "Server or member ID in hexadecimal format. 1 for 'server_id' label with current ID.", &["server_id"]),
            health_success: make.counter("etcd_server_health_success", "The total number of successful health checks"),
            health_failures: make.counter("etcd_server_health_failures", "The total number of failed health checks"),
        };
        make.gauge_vec(
            "etcd_server_version",
            "Which version is running. 1 for 'server_version' label with current version.",
            &["server_version"],
        )
        .with_label_values(&[SERVER_VERSION])
        .set(1);
        make.gauge_vec(
            "etcd_cluster_version",
            "Which version is running. 1 for 'cluster_version' label with current cluster version",
            &["cluster_version"],
        )
        .with_label_values(&[CLUSTER_VERSION])
        .set(1);
        let [wal_fsync, backend_commit, snap_save, backend_snapshot, backend_defrag, snap_db_save, snap_db_fsync] =
            DISK_HISTOGRAMS.map(|(name, help, start, count)| {
                make.histogram(name, help, buckets(start, 2.0, count))
            });
        let disk = Disk {
            wal_fsync,
            backend_commit,
            snap_save,
            backend_snapshot,
            backend_defrag,
            snap_db_save,
            snap_db_fsync,
        };
        let pair = |name: &str, help: &str| {
            [
                make.counter(&format!("etcd_mvcc_{name}"), help),
                make.counter(&format!("etcd_debugging_mvcc_{name}"), help),
            ]
        };
        let mvcc = Mvcc {
            db_size: make.gauge(
                "etcd_mvcc_db_total_size_in_bytes",
                "Total size of the underlying database physically allocated in bytes.",
            ),
            db_size_debugging: make.gauge(
                "etcd_debugging_mvcc_db_total_size_in_bytes",
                "Total size of the underlying database physically allocated in bytes.",
            ),
            db_in_use: make.gauge(
                "etcd_mvcc_db_total_size_in_use_in_bytes",
                "Total size of the underlying database logically in use in bytes.",
            ),
            puts: pair("put_total", "Total number of puts seen by this member."),
            deletes: pair("delete_total", "Total number of deletes seen by this member."),
            ranges: pair("range_total", "Total number of ranges seen by this member."),
            txns: pair("txn_total", "Total number of txns seen by this member."),
            put_bytes: make.gauge(
                "etcd_debugging_mvcc_total_put_size_in_bytes",
                "The total size of put kv pairs seen by this member.",
            ),
            keys: make.gauge("etcd_debugging_mvcc_keys_total", "Total number of keys."),
            current_revision: make
                .gauge("etcd_debugging_mvcc_current_revision", "The current revision of store."),
            compact_revision: make.gauge(
                "etcd_debugging_mvcc_compact_revision",
                "The revision of the last compaction in store.",
            ),
            watchers: make.gauge("etcd_debugging_mvcc_watcher_total", "Total number of watchers."),
            slow_watchers: make.gauge(
                "etcd_debugging_mvcc_slow_watcher_total",
                "Total number of unsynced slow watchers.",
            ),
            events: make.counter(
                "etcd_debugging_mvcc_events_total",
                "Total number of events sent by this member.",
            ),
            pending_events: make.gauge(
                "etcd_debugging_mvcc_pending_events_total",
                "Total number of pending events to be sent.",
            ),
        };
        let lease = LeaseMetrics {
            granted: make.counter(
                "etcd_debugging_lease_granted_total",
                "The total number of granted leases.",
            ),
            revoked: make.counter(
                "etcd_debugging_lease_revoked_total",
                "The total number of revoked leases.",
            ),
            renewed: make.counter(
                "etcd_debugging_lease_renewed_total",
                "The number of renewed leases seen by the leader.",
            ),
            ttl: make.histogram(
                "etcd_debugging_lease_ttl_total",
                "Bucketed histogram of lease TTLs.",
                buckets(1.0, 2.0, 24),
            ),
        };
        let network = Network {
            peer_rtt: make.histogram_vec(
                "etcd_network_peer_round_trip_time_seconds",
                "Round-Trip-Time histogram between peers",
                &["To"],
                buckets(0.0001, 2.0, 16),
            ),
            peer_sent_bytes: make.counter_vec(
                "etcd_network_peer_sent_bytes_total",
                "The total number of bytes sent to peers.",
                &["To"],
            ),
            peer_received_bytes: make.counter_vec(
                "etcd_network_peer_received_bytes_total",
                "The total number of bytes received from peers.",
                &["From"],
            ),
            peer_sent_failures: make.counter_vec(
                "etcd_network_peer_sent_failures_total",
                "The total number of send failures from peers.",
                &["To"],
            ),
            active_peers: make.gauge_vec(
                "etcd_network_active_peers",
                "The current number of active peer connections.",
                &["Local", "Remote"],
            ),
            disconnected_peers: make.counter_vec(
                "etcd_network_disconnected_peers_total",
                "The total number of disconnected peers.",
                &["Local", "Remote"],
            ),
            client_sent_bytes: make.counter(
                "etcd_network_client_grpc_sent_bytes_total",
                "The total number of bytes sent to grpc clients.",
            ),
            client_received_bytes: make.counter(
                "etcd_network_client_grpc_received_bytes_total",
                "The total number of bytes received from grpc clients.",
            ),
        };
        let grpc = grpc::GrpcMetrics::new(&make, extensive);
        #[cfg(all(target_os = "linux", not(madsim)))]
        registry
            .register(Box::new(prometheus::process_collector::ProcessCollector::for_self()))
            .expect("process metrics register once");
        Metrics { registry, copied: Mutex::default(), server, disk, mvcc, lease, network, grpc }
    }

    /// Copies in the core's numbers: gauges are set, counters advance by what they gained.
    pub fn update(&self, stats: &NodeStats) {
        let Ok(mut copied) = self.copied.lock() else { return };
        let (old, new) = (&copied.stats.tally, &stats.tally);
        let advance =
            |counter: &IntCounter, old: u64, new: u64| counter.inc_by(new.saturating_sub(old));
        let gauge =
            |gauge: &IntGauge, value: u64| gauge.set(i64::try_from(value).unwrap_or(i64::MAX));
        let s = &self.server;
        gauge(&s.has_leader, u64::from(stats.has_leader));
        gauge(&s.is_leader, u64::from(stats.is_leader));
        gauge(&s.is_learner, u64::from(stats.is_learner));
        advance(&s.leader_changes, old.leader_changes, new.leader_changes);
        gauge(&s.committed, stats.committed_index);
        gauge(&s.applied, stats.applied_index);
        gauge(&s.pending, stats.proposals_pending);
        advance(&s.failed, old.proposals_failed, new.proposals_failed);
        advance(&s.slow_read_indexes, old.slow_read_indexes, new.slow_read_indexes);
        advance(&s.read_indexes_failed, old.read_indexes_failed, new.read_indexes_failed);
        s.quota_backend_bytes.set(stats.quota_bytes);
        if stats.id != copied.stats.id {
            s.id.reset();
            s.id.with_label_values(&[&format!("{:x}", stats.id)]).set(1);
        }
        let m = &self.mvcc;
        gauge(&m.db_size, stats.db_size);
        gauge(&m.db_size_debugging, stats.db_size);
        gauge(&m.db_in_use, stats.db_size_in_use);
        for counter in &m.puts {
            advance(counter, old.puts, new.puts);
        }
        for counter in &m.deletes {
            advance(counter, old.deletes, new.deletes);
        }
        for counter in &m.ranges {
            advance(counter, old.ranges, new.ranges);
        }
        for counter in &m.txns {
            advance(counter, old.txns, new.txns);
        }
        gauge(&m.put_bytes, new.put_bytes);
        gauge(&m.keys, stats.keys);
        m.current_revision.set(stats.current_revision);
        m.compact_revision.set(stats.compact_revision);
        gauge(&m.watchers, stats.watchers);
        gauge(&m.slow_watchers, stats.slow_watchers);
        advance(&m.events, old.events_sent, new.events_sent);
        gauge(&m.pending_events, stats.pending_events);
        let l = &self.lease;
        advance(&l.granted, old.leases_granted, new.leases_granted);
        advance(&l.revoked, old.leases_revoked, new.leases_revoked);
        advance(&l.renewed, old.leases_renewed, new.leases_renewed);
        observe_new_ttls(&l.ttl, &old.lease_ttls, &new.lease_ttls);
        copied.stats = stats.clone();
    }

    /// A health check answered (`etcd_server_health_success` / `_failures`).
    pub fn health_checked(&self, healthy: bool) {
        if healthy {
            self.server.health_success.inc();
        } else {
            self.server.health_failures.inc();
        }
    }

    /// A leader's heartbeat went out late (`etcd_server_heartbeat_send_failures_total`).
    pub fn heartbeat_late(&self) {
        self.server.heartbeat_send_failures.inc();
    }

    /// A request took longer than etcd's warning threshold (`etcd_server_slow_apply_total`).
    pub fn slow_request(&self) {
        self.server.slow_apply.inc();
    }

    /// Everything, in Prometheus's text format.
    pub fn render(&self) -> String {
        let families = self.registry.gather();
        prometheus::TextEncoder::new().encode_to_string(&families).unwrap_or_default()
    }
}

/// Observes each TTL granted since `old` was counted.
fn observe_new_ttls(histogram: &Histogram, old: &BTreeMap<i64, u64>, new: &BTreeMap<i64, u64>) {
    for (ttl, count) in new {
        let seen = old.get(ttl).copied().unwrap_or(0);
        for _ in seen..*count {
            histogram.observe(*ttl as f64);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_advance_by_what_the_core_gained() {
        let metrics = Metrics::new(false);
        let mut stats = NodeStats { id: 0xabc, ..NodeStats::default() };
        stats.tally.puts = 5;
        stats.tally.lease_granted(10);
        metrics.update(&stats);
        stats.tally.puts = 7;
        stats.tally.lease_granted(10);
        stats.tally.lease_granted(60);
        metrics.update(&stats);
        metrics.update(&stats);
        assert_eq!(metrics.mvcc.puts[0].get(), 7);
        assert_eq!(metrics.mvcc.puts[1].get(), 7);
        assert_eq!(metrics.lease.ttl.get_sample_count(), 3);
        assert_eq!(metrics.lease.ttl.get_sample_sum(), 80.0);
        let text = metrics.render();
        assert!(text.contains("etcd_server_id{server_id=\"abc\"} 1"), "{text}");
        assert!(text.contains("etcd_server_version{server_version=\"3.4.23\"} 1"), "{text}");
    }
}
