//! What the driver notices about its member and reports as etcd does: leader elected, lost or
//! changed (raft's own log lines), a leader's heartbeat that went out late, a WAL fdatasync
//! slower than a second, a compaction finished, and how long snapshots took to save. Each is
//! logged with etcd's wording and fields and counted in the member's [`Metrics`].
//!
//! The core decides and counts; it has no clock. These are the measurements only a driver
//! with a clock can make, and the log lines that go with them. Time is tokio's, so under the
//! tier-2 simulation it is the simulation's.

use crate::log::GoDuration;
use crate::metrics::Metrics;
use raft_proto::eraftpb::{Message, MessageType};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use stead_core::node::Node;
use stead_store::host::{HostObserver, SnapshotKind};
use tokio::time::Instant;

/// etcd's `warnSyncDuration`: a WAL fdatasync slower than this is logged.
pub const SLOW_SYNC: Duration = Duration::from_secs(1);

/// The member's state as last seen, to notice changes.
pub struct Notices {
    metrics: Arc<Metrics>,
    id: u64,
    heartbeat: Duration,
    /// Leader and term after the last input.
    leader: (u64, u64),
    /// Compacted revision after the last input.
    compacted: i64,
    /// When the leader last sent each follower a heartbeat (reset on taking the lead).
    heartbeats: BTreeMap<u64, Instant>,
}

impl Notices {
    /// Notices for `node`, counting in `metrics`.
    pub fn new(node: &Node, heartbeat: Duration, metrics: Arc<Metrics>) -> Notices {
        Notices {
            metrics,
            id: node.id(),
            heartbeat,
            leader: (0, node.term()),
            compacted: node.kv().compacted_revision(),
            heartbeats: BTreeMap::new(),
        }
    }

    /// After an input that took `took` to handle: logs a leader change or a finished
    /// compaction.
    pub fn after_input(&mut self, node: &Node, took: Duration) {
        let leader = (node.leader().unwrap_or(0), node.term());
        if leader.0 != self.leader.0 {
            let (id, (old, _), (new, term)) = (self.id, self.leader, leader);
            match (old, new) {
                (0, new) => {
                    tracing::info!("raft.node: {id:x} elected leader {new:x} at term {term}")
                }
                (old, 0) => tracing::info!("raft.node: {id:x} lost leader {old:x} at term {term}"),
                (old, new) => {
                    tracing::info!(
                        "raft.node: {id:x} changed leader from {old:x} to {new:x} at term {term}"
                    )
                }
            }
            self.heartbeats.clear();
        }
        self.leader = leader;
        let compacted = node.kv().compacted_revision();
        if compacted > self.compacted {
            tracing::info!(
                "compact-revision" = compacted,
                "took" = %GoDuration(took),
                "finished scheduled compaction"
            );
        }
        self.compacted = compacted;
    }

    /// A raft message leaves: a leader's heartbeat more than two heartbeat intervals after the
    /// last one to the same follower is late (etcd's timeout detector).
    pub fn sending(&mut self, message: &Message) {
        if message.get_msg_type() != MessageType::MsgHeartbeat {
            return;
        }
        let now = Instant::now();
        let expected = self.heartbeat * 2;
        if let Some(last) = self.heartbeats.insert(message.to, now) {
            let took = now.duration_since(last);
            if took > expected {
                tracing::warn!(
                    "to" = %format_args!("{:x}", message.to),
                    "heartbeat-interval" = %GoDuration(self.heartbeat),
                    "expected-duration" = %GoDuration(expected),
                    "exceeded-duration" = %GoDuration(took - expected),
                    "leader failed to send out heartbeat on time; took too long, leader is overloaded likely from slow disk"
                );
                self.metrics.heartbeat_late();
            }
        }
    }

    /// A WAL fdatasync finished after `took`.
    pub fn synced(&self, took: Duration) {
        if took > SLOW_SYNC {
            tracing::warn!(
                "took" = %GoDuration(took),
                "expected-duration" = %GoDuration(SLOW_SYNC),
                "slow fdatasync"
            );
        }
        self.metrics.disk.wal_fsync.observe(took.as_secs_f64());
    }
}

/// Times snapshot saves for the host (it has no clock).
pub struct SnapshotTimer {
    metrics: Arc<Metrics>,
    started: Option<Instant>,
}

impl SnapshotTimer {
    /// A timer observing into `metrics`.
    pub fn new(metrics: Arc<Metrics>) -> SnapshotTimer {
        SnapshotTimer { metrics, started: None }
    }
}

impl HostObserver for SnapshotTimer {
    fn snapshot_started(&mut self, _kind: SnapshotKind) {
        self.started = Some(Instant::now());
    }

    fn snapshot_finished(&mut self, kind: SnapshotKind, bytes: usize) {
        let Some(started) = self.started.take() else { return };
        let took = started.elapsed();
        if bytes == 0 {
            return;
        }
        let disk = &self.metrics.disk;
        let (histograms, what) = match kind {
            SnapshotKind::Own => ([&disk.snap_save, &disk.backend_commit], "saved snapshot"),
            SnapshotKind::Received => {
                ([&disk.snap_db_save, &disk.snap_db_fsync], "saved snapshot from the leader")
            }
        };
        for histogram in histograms {
            histogram.observe(took.as_secs_f64());
        }
        tracing::info!("bytes" = bytes, "took" = %GoDuration(took), "{what}");
    }
}
