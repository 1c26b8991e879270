//! The lessor: leases, the keys attached to them, and when they expire (etcd's `lease.lessor`).
//!
//! Every member holds the same leases, because grants, revokes and checkpoints are applied from
//! the log. Only the *primary* lessor (on the leader) tracks expiry times: a follower's leases
//! never expire. When a member becomes leader it *promotes* its lessor, giving every lease its
//! remaining TTL (the checkpointed one, else the full TTL) plus an election timeout from now; when
//! it loses leadership it *demotes*, and its leases stop expiring again. The leader finds expired
//! leases with a min-heap of expiry times and proposes their revocation; a lease found expired is
//! checked again after a retry interval, in case that revoke was lost.
//!
//! Long leases would restart from their full TTL at every leader change, so the leader
//! periodically records remaining TTLs in the log (checkpoints, etcd 3.4's
//! `--experimental-enable-lease-checkpoint`). A renewal clears a lease's checkpoint.
//!
//! Time is the node's logical clock, passed in: a skewed clock moves expiry, which is what the
//! simulator tests. The clock only moves on ticks, and a member that was paused handles the
//! messages that waited for it before its next tick, so the time it knows can lag far behind.
//! Renewing from that stale time would shorten a lease. A grant, renewal or promotion
//! therefore only *requests* a refresh; [`Lessor::advance`] performs it with the next tick's
//! time, which is after the renewal really happened, and every expiry decision runs after it. Attachments follow the key space: the node feeds every applied event to
//! [`Lessor::observe`], which moves keys between leases.

use crate::api::{Event, EventKind, KvError, LeaseCheckpoint, LeaseError, LeaseId, NO_LEASE};
use crate::time::{Duration, Instant};
use serde::{Deserialize, Serialize};
use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap};

/// The largest TTL a grant may ask for, in seconds (etcd's `MaxLeaseTTL`).
pub const MAX_LEASE_TTL: i64 = 9_000_000_000;
/// Leases the leader revokes per second at most (etcd's `leaseRevokeRate`).
pub const LEASE_REVOKE_RATE: usize = 1000;
/// How often the leader looks for expired leases and due checkpoints (etcd: 500 ms).
pub const EXPIRY_CHECK_INTERVAL: Duration = Duration::from_millis(500);
/// How long after finding a lease expired the leader looks at it again (etcd: 3 s).
pub const EXPIRED_RETRY_INTERVAL: Duration = Duration::from_secs(3);
/// The most checkpoints one log entry carries (etcd's `maxLeaseCheckpointBatchSize`).
pub const MAX_CHECKPOINT_BATCH: usize = 1000;
/// etcd's default lease checkpoint interval.
pub const DEFAULT_CHECKPOINT_INTERVAL: Duration = Duration::from_secs(300);

/// One lease.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Lease {
    /// The lease id.
    pub id: LeaseId,
    /// The granted TTL in seconds.
    pub ttl: i64,
    /// The last checkpointed remaining TTL in seconds, or 0 for none.
    pub remaining_ttl: i64,
    /// When the lease expires; `None` (forever) unless this lessor is primary.
    pub expiry: Option<Instant>,
    /// The attached keys.
    pub keys: BTreeSet<Vec<u8>>,
}

impl Lease {
    /// The TTL a promotion starts from: the checkpointed remaining TTL, else the full TTL.
    fn remaining_or_full_ttl(&self) -> i64 {
        if self.remaining_ttl > 0 {
            self.remaining_ttl
        } else {
            self.ttl
        }
    }
}

/// Why a renewal was not done.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RenewError {
    /// This lessor is not the primary: the leader must renew.
    NotPrimary,
    /// No such lease.
    NotFound,
    /// The lease expired and its revocation is under way: wait for it (then it is not found),
    /// or for a demotion.
    Expired,
}

/// A lease as snapshots keep it; attachments are rebuilt from the key space.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaseRecord {
    /// The lease id.
    pub id: LeaseId,
    /// The granted TTL in seconds.
    pub ttl: i64,
    /// The checkpointed remaining TTL in seconds, or 0.
    pub remaining_ttl: i64,
}

/// The leases of one member. See the module documentation.
#[derive(Clone, Debug, Default)]
pub struct Lessor {
    leases: BTreeMap<LeaseId, Lease>,
    primary: bool,
    /// The smallest TTL a lease gets, in seconds.
    min_ttl: i64,
    /// `None`: checkpoints are off (etcd's default).
    checkpoint_interval: Option<Duration>,
    /// When to look at each lease next, earliest first. An entry is current only while it
    /// matches `next_check`; older entries are skipped when they surface.
    expiry_heap: BinaryHeap<Reverse<(Instant, LeaseId)>>,
    next_check: BTreeMap<LeaseId, Instant>,
    /// When each lease's next checkpoint is due, earliest first; like the expiry heap, an
    /// entry counts only while it matches `next_checkpoint`.
    checkpoint_heap: BinaryHeap<Reverse<(Instant, LeaseId)>>,
    next_checkpoint: BTreeMap<LeaseId, Instant>,
    /// Leases whose checkpoint this primary proposed and has not seen applied: a renewal must
    /// go through the log after it, or the stale remainder would land after the renewal.
    checkpoints_in_flight: BTreeSet<LeaseId>,
    /// Refreshes requested since the last [`Lessor::advance`]: how long after it each lease
    /// lives.
    pending: BTreeMap<LeaseId, Duration>,
}

/// etcd's minimum lease TTL: one and a half election timeouts, rounded up to whole seconds.
pub fn min_ttl(election_ticks: u64, heartbeat: Duration) -> i64 {
    let nanos = (3 * election_ticks / 2) * heartbeat.as_nanos();
    nanos.div_ceil(1_000_000_000) as i64
}

impl Lessor {
    /// An empty lessor whose leases live at least `min_ttl` seconds, with checkpoints every
    /// `checkpoint_interval` if set.
    pub fn new(min_ttl: i64, checkpoint_interval: Option<Duration>) -> Self {
        Lessor { min_ttl, checkpoint_interval, ..Lessor::default() }
    }

    /// Whether this lessor is the primary (on the leader).
    pub fn is_primary(&self) -> bool {
        self.primary
    }

    /// The smallest TTL a lease gets, in seconds.
    pub fn min_ttl(&self) -> i64 {
        self.min_ttl
    }

    /// Whether lease `id` is granted.
    pub fn exists(&self, id: LeaseId) -> bool {
        self.leases.contains_key(&id)
    }

    /// Lease `id`, if granted.
    pub fn get(&self, id: LeaseId) -> Option<&Lease> {
        self.leases.get(&id)
    }

    /// How many leases are granted.
    pub fn len(&self) -> usize {
        self.leases.len()
    }

    /// Whether no lease is granted.
    pub fn is_empty(&self) -> bool {
        self.leases.is_empty()
    }

    /// Every lease id, in order.
    pub fn ids(&self) -> Vec<LeaseId> {
        self.leases.keys().copied().collect()
    }

    /// Grants lease `id` (applied from the log); returns the TTL it got. A primary starts its
    /// TTL at the next [`Lessor::advance`].
    pub fn grant(&mut self, id: LeaseId, ttl: i64, now: Instant) -> Result<i64, crate::api::Error> {
        if id == NO_LEASE {
            return Err(KvError::LeaseNotFound.into());
        }
        if ttl > MAX_LEASE_TTL {
            return Err(LeaseError::TtlTooLarge.into());
        }
        if self.leases.contains_key(&id) {
            return Err(LeaseError::Exists.into());
        }
        let ttl = ttl.max(self.min_ttl);
        let lease = Lease { id, ttl, remaining_ttl: 0, expiry: None, keys: BTreeSet::new() };
        self.leases.insert(id, lease);
        if self.primary {
            self.pending.insert(id, secs(ttl));
            self.schedule_checkpoint(id, now);
        }
        Ok(ttl)
    }

    /// Removes lease `id` (applied from the log); returns its keys in key order, which the
    /// caller deletes in one revision.
    pub fn revoke(&mut self, id: LeaseId) -> Result<Vec<Vec<u8>>, KvError> {
        let lease = self.leases.remove(&id).ok_or(KvError::LeaseNotFound)?;
        self.next_check.remove(&id);
        self.pending.remove(&id);
        self.next_checkpoint.remove(&id);
        self.checkpoints_in_flight.remove(&id);
        Ok(lease.keys.into_iter().collect())
    }

    /// Records remaining TTLs (applied from the log); a primary schedules the next checkpoint.
    pub fn checkpoint(&mut self, checkpoints: &[LeaseCheckpoint], now: Instant) {
        for checkpoint in checkpoints {
            self.checkpoints_in_flight.remove(&checkpoint.id);
            if let Some(lease) = self.leases.get_mut(&checkpoint.id) {
                lease.remaining_ttl = checkpoint.remaining_ttl;
                if self.primary {
                    self.schedule_checkpoint(checkpoint.id, now);
                }
            }
        }
    }

    /// Renews lease `id` on the primary (its full TTL restarts at the next
    /// [`Lessor::advance`]); returns its TTL. A lease that had expired by `now`, the time of the last expiry check,
    /// is being revoked and is not renewed. The caller clears a checkpointed remaining TTL
    /// through the log first (see [`Lessor::needs_checkpoint_clear`]).
    pub fn renew(&mut self, id: LeaseId, now: Instant) -> Result<i64, RenewError> {
        if !self.primary {
            return Err(RenewError::NotPrimary);
        }
        let lease = self.leases.get(&id).ok_or(RenewError::NotFound)?;
        let renewed = self.pending.contains_key(&id);
        if !renewed && lease.expiry.is_some_and(|expiry| expiry <= now) {
            return Err(RenewError::Expired);
        }
        let ttl = lease.ttl;
        let span = self.pending.entry(id).or_default();
        *span = (*span).max(secs(ttl));
        Ok(ttl)
    }

    /// Performs the refreshes requested since the last call, from `now`: call it with each
    /// tick's time, before any expiry decision.
    pub fn advance(&mut self, now: Instant) {
        for (id, span) in std::mem::take(&mut self.pending) {
            if let Some(lease) = self.leases.get_mut(&id) {
                let expiry = now + span;
                lease.expiry = Some(expiry);
                self.next_check.insert(id, expiry);
                self.expiry_heap.push(Reverse((expiry, id)));
            }
        }
    }

    /// Whether renewing `id` must first clear a checkpointed remaining TTL through the log, so
    /// a later leader does not start the lease from that stale remainder: when one is recorded
    /// (whatever this member's own checkpoint setting) or one is on its way.
    pub fn needs_checkpoint_clear(&self, id: LeaseId) -> bool {
        self.checkpoints_in_flight.contains(&id)
            || self.leases.get(&id).is_some_and(|lease| lease.remaining_ttl > 0)
    }

    /// Becomes primary: every lease will expire its remaining TTL plus `extend` after the next
    /// [`Lessor::advance`].
    pub fn promote(&mut self, now: Instant, extend: Duration) {
        self.primary = true;
        self.expiry_heap.clear();
        self.next_check.clear();
        self.checkpoint_heap.clear();
        self.next_checkpoint.clear();
        let ids: Vec<LeaseId> = self.leases.keys().copied().collect();
        for id in ids {
            let span = secs(self.leases[&id].remaining_or_full_ttl()) + extend;
            self.pending.insert(id, span);
            self.schedule_checkpoint(id, now);
        }
    }

    /// Stops being primary: leases no longer expire here.
    pub fn demote(&mut self) {
        self.primary = false;
        for lease in self.leases.values_mut() {
            lease.expiry = None;
        }
        self.expiry_heap.clear();
        self.next_check.clear();
        self.checkpoint_heap.clear();
        self.next_checkpoint.clear();
        self.checkpoints_in_flight.clear();
        self.pending.clear();
    }

    /// Up to `limit` leases that have expired by `now`, to revoke; each is looked at again after
    /// [`EXPIRED_RETRY_INTERVAL`] in case its revoke does not happen. Only a primary finds any.
    pub fn expired(&mut self, now: Instant, limit: usize) -> Vec<LeaseId> {
        self.advance(now);
        let mut expired = Vec::new();
        while expired.len() < limit && self.primary {
            let Some(&Reverse((at, id))) = self.expiry_heap.peek() else { break };
            if self.next_check.get(&id) != Some(&at) {
                self.expiry_heap.pop();
                continue;
            }
            if at > now {
                break;
            }
            self.expiry_heap.pop();
            let retry = now + EXPIRED_RETRY_INTERVAL;
            self.next_check.insert(id, retry);
            self.expiry_heap.push(Reverse((retry, id)));
            let lease = &self.leases[&id];
            if lease.expiry.is_some_and(|expiry| expiry <= now) {
                expired.push(id);
            }
        }
        expired
    }

    /// Up to `limit` checkpoints due by `now` (remaining TTLs rounded up to whole seconds), for
    /// leases that have run down at least a second.
    pub fn due_checkpoints(&mut self, now: Instant, limit: usize) -> Vec<LeaseCheckpoint> {
        self.advance(now);
        let mut due = Vec::new();
        while due.len() < limit && self.primary {
            let Some(&Reverse((at, id))) = self.checkpoint_heap.peek() else { break };
            if at > now {
                break;
            }
            self.checkpoint_heap.pop();
            if self.next_checkpoint.get(&id) != Some(&at) {
                continue;
            }
            self.next_checkpoint.remove(&id);
            let Some(lease) = self.leases.get(&id) else { continue };
            let Some(expiry) = lease.expiry.filter(|&expiry| expiry > now) else { continue };
            let remaining_ttl = expiry.since(now).as_nanos().div_ceil(1_000_000_000) as i64;
            if remaining_ttl < lease.ttl {
                self.checkpoints_in_flight.insert(id);
                due.push(LeaseCheckpoint { id, remaining_ttl });
            }
        }
        due
    }

    /// Whole seconds lease `id` has left (negative once expired, as etcd truncates), if it is
    /// granted; `None` for the remaining time when this lessor is not primary.
    pub fn remaining_secs(&self, id: LeaseId, now: Instant) -> Option<Option<i64>> {
        let lease = self.leases.get(&id)?;
        if let Some(span) = self.pending.get(&id) {
            // A moment has passed since the refresh was asked for; etcd truncates the same way.
            let whole = (span.as_nanos() / 1_000_000_000) as i64;
            return Some(Some(whole.saturating_sub(1).max(0)));
        }
        Some(lease.expiry.map(|expiry| {
            let ahead = expiry.since(now).as_nanos() as i128;
            let behind = now.since(expiry).as_nanos() as i128;
            ((ahead - behind) / 1_000_000_000) as i64
        }))
    }

    /// Moves keys between leases as applied events say: a key leaves the lease of its previous
    /// version and joins the lease of its new one.
    pub fn observe(&mut self, events: &[Event]) {
        for event in events {
            let key = &event.kv.key;
            if let Some(previous) = event.prev_kv.as_ref().filter(|p| p.lease != NO_LEASE) {
                if let Some(lease) = self.leases.get_mut(&previous.lease) {
                    lease.keys.remove(key);
                }
            }
            if event.kind == EventKind::Put && event.kv.lease != NO_LEASE {
                if let Some(lease) = self.leases.get_mut(&event.kv.lease) {
                    lease.keys.insert(key.clone());
                }
            }
        }
    }

    /// The leases as snapshots keep them.
    pub fn to_records(&self) -> Vec<LeaseRecord> {
        let leases = self.leases.values();
        leases
            .map(|l| LeaseRecord { id: l.id, ttl: l.ttl, remaining_ttl: l.remaining_ttl })
            .collect()
    }

    /// A (non-primary) lessor from snapshot records and the live keys with a lease; fails if a
    /// key names a lease that does not exist.
    pub fn from_records(
        min_ttl: i64,
        checkpoint_interval: Option<Duration>,
        records: Vec<LeaseRecord>,
        attached: impl IntoIterator<Item = (Vec<u8>, LeaseId)>,
    ) -> Result<Self, String> {
        let mut lessor = Lessor::new(min_ttl, checkpoint_interval);
        for record in records {
            let lease = Lease {
                id: record.id,
                ttl: record.ttl,
                remaining_ttl: record.remaining_ttl,
                expiry: None,
                keys: BTreeSet::new(),
            };
            if record.id == NO_LEASE || lessor.leases.insert(record.id, lease).is_some() {
                return Err(format!("lease {} recorded twice or invalid", record.id));
            }
        }
        for (key, id) in attached {
            let lease =
                lessor.leases.get_mut(&id).ok_or_else(|| format!("key on unknown lease {id}"))?;
            lease.keys.insert(key);
        }
        Ok(lessor)
    }

    /// Schedules a checkpoint of lease `id` one interval from now, if checkpoints are on and the
    /// lease outlives the interval.
    fn schedule_checkpoint(&mut self, id: LeaseId, now: Instant) {
        let Some(interval) = self.checkpoint_interval else { return };
        let lease = &self.leases[&id];
        let interval_secs = (interval.as_nanos() / 1_000_000_000) as i64;
        if lease.remaining_or_full_ttl() > interval_secs {
            let at = now + interval;
            self.next_checkpoint.insert(id, at);
            self.checkpoint_heap.push(Reverse((at, id)));
        }
    }
}

/// `seconds` as a duration (negative counts as zero).
fn secs(seconds: i64) -> Duration {
    Duration::from_secs(seconds.max(0) as u64)
}

#[cfg(test)]
mod tests;
