//! The Maintenance service on a member, the quota's API-layer check, raising alarms, the
//! corruption check's schedule and reports, and auto-compaction.
//!
//! - Alarm requests go through the log (GET too, as in etcd), so every member agrees on them.
//!   Raising and clearing need admin rights while auth is enabled.
//! - Status is served by any member from its own state; Hash, HashKV, Defragment and Snapshot
//!   too, for admins only.
//! - A Put, Txn or LeaseGrant that would exceed the quota is refused before it is proposed, and
//!   the member raises NOSPACE for itself (etcd's `quotaKVServer`). A write that went over the
//!   quota while being applied (another member's proposal, or the state grew meanwhile) is
//!   answered with the same error, and raises the alarm too.
//! - With `corrupt_check_interval` set, the leader proposes a corruption check that often; with
//!   `initial_corrupt_check`, a member that restarted from its data proposes one as soon as it
//!   knows a leader. Each member proposes its report for every check it applies (see
//!   `apply::corrupt`).
//! - Auto-compaction (see `compactor`) runs on the leader only.

use super::{ClientId, Node};
use crate::api::{
    AlarmAction, AlarmMember, AlarmRequest, AlarmType, AuthInfo, CompactionRequest, Error,
    HashKvResponse, HashResponse, MaintenanceRequest, Request, Response, ResponseHeader,
    ServerError, SnapshotResponse, StatusResponse,
};
use crate::time::Instant;

/// The etcd version whose API stead speaks, as Status reports it.
pub const ETCD_VERSION: &str = "3.4.23";

impl Node {
    /// Serves a Maintenance request from `caller`.
    pub(super) fn maintenance_request(
        &mut self,
        client: ClientId,
        caller: Option<AuthInfo>,
        request: MaintenanceRequest,
    ) {
        let admin_only = match &request {
            MaintenanceRequest::Status => false,
            MaintenanceRequest::Alarm(alarm) => alarm.action != AlarmAction::Get,
            _ => true,
        };
        if admin_only {
            if let Err(error) = self.require_admin(caller.as_ref()) {
                return self.respond(client, Err(error));
            }
        }
        let header = ResponseHeader::at(self.machine.kv().current_revision());
        let result = match request {
            MaintenanceRequest::Alarm(_) => {
                let request = Request::Maintenance(request);
                return self.propose_write(Some(client), request, caller);
            }
            MaintenanceRequest::Status => Ok(Response::Status(self.status(header))),
            MaintenanceRequest::Hash => {
                Ok(Response::Hash(HashResponse { header, hash: self.machine.hash() }))
            }
            MaintenanceRequest::HashKv { revision } => {
                self.machine.kv().hash_kv(revision).map_err(Error::from).map(|digest| {
                    Response::HashKv(HashKvResponse {
                        header,
                        hash: digest.hash,
                        compact_revision: digest.compact_revision,
                    })
                })
            }
            MaintenanceRequest::Defragment => {
                self.allocated_bytes = self.machine.size_bytes();
                Ok(Response::Empty(header))
            }
            MaintenanceRequest::Snapshot => {
                Ok(Response::Snapshot(SnapshotResponse { header, blob: self.machine.backup() }))
            }
        };
        self.respond(client, result);
    }

    /// This member's status (etcd's `StatusResponse`).
    fn status(&mut self, header: ResponseHeader) -> StatusResponse {
        let in_use = self.machine.size_bytes();
        self.allocated_bytes = self.allocated_bytes.max(in_use);
        let leader = self.leader().unwrap_or(0);
        let mut errors = Vec::new();
        if leader == 0 {
            errors.push(ServerError::NoLeader.message().to_string());
        }
        errors.extend(self.machine.alarms().all().iter().map(AlarmMember::describe));
        StatusResponse {
            header,
            version: ETCD_VERSION.into(),
            db_size: self.allocated_bytes as i64,
            leader,
            raft_index: self.raw.raft.raft_log.committed,
            raft_term: self.raw.raft.term,
            raft_applied_index: self.machine.applied(),
            errors,
            db_size_in_use: in_use as i64,
            is_learner: self.is_learner(),
        }
    }

    /// Refuses a write that would exceed the quota, raising NOSPACE.
    pub(super) fn check_quota(&mut self, request: &Request) -> Result<(), Error> {
        if self.machine.quota_available(crate::apply::alarm::cost(request)) {
            return Ok(());
        }
        self.raise_alarm(AlarmType::NoSpace);
        Err(ServerError::NoSpace.into())
    }

    /// Proposes this member's alarm of `kind`, unless it is raised or was just proposed.
    pub(super) fn raise_alarm(&mut self, kind: AlarmType) {
        let member = AlarmMember { member_id: self.config.id, alarm: kind };
        let recently = self
            .alarm_proposed
            .is_some_and(|at| self.now.since(at) < self.config.request_timeout());
        if self.machine.alarms().contains(&member) || recently {
            return;
        }
        tracing::warn!(member = self.config.id, ?kind, "raising an alarm");
        self.alarm_proposed = Some(self.now);
        let raise = AlarmRequest {
            action: AlarmAction::Activate,
            member_id: member.member_id,
            alarm: kind,
        };
        self.propose_write(None, Request::Maintenance(MaintenanceRequest::Alarm(raise)), None);
    }

    /// After applying: raise NOSPACE if a write went over the quota, propose the corruption
    /// reports this member owes, and track the allocated size.
    pub(super) fn after_apply(&mut self) {
        self.allocated_bytes = self.allocated_bytes.max(self.machine.size_bytes());
        if self.machine.take_over_quota() {
            self.raise_alarm(AlarmType::NoSpace);
        }
        for mut report in self.machine.take_reports() {
            report.member_id = self.config.id;
            self.propose_write(None, Request::HashReport(report), None);
        }
    }

    /// On a tick: the leader's periodic corruption check and auto-compaction, a restarted
    /// member's initial check, and expired tokens.
    pub(super) fn maintenance_work(&mut self) {
        self.machine.tokens_mut().sweep(self.now);
        if self.initial_check_due && self.leader().is_some() {
            self.initial_check_due = false;
            self.propose_write(None, Request::HashCheck, None);
        }
        let leader = self.is_leader();
        if let Some(interval) = self.config.corrupt_check_interval {
            let due = self.next_corrupt_check.get_or_insert(self.now + interval);
            if leader && self.now >= *due {
                *due = self.now + interval;
                self.propose_write(None, Request::HashCheck, None);
            }
        }
        let revision = self.machine.kv().current_revision();
        if let Some(target) = self.compactor.tick(self.now, revision, leader) {
            let compact = CompactionRequest { revision: target, physical: false };
            self.propose_write(None, Request::Compact(compact), None);
        }
    }
}

/// When the leader compacts by itself (`--auto-compaction-mode` and `-retention`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AutoCompaction {
    /// Keep this much history by time (periodic mode).
    Periodic(crate::time::Duration),
    /// Keep this many revisions (revision mode).
    Revision(i64),
}

/// etcd 3.4's compactors, on the node's clock. Periodic with retention P samples the revision
/// every min(P, 1 h)/10 on every member and, on the leader, compacts to the revision sampled P
/// ago, first at least P after start and then every min(P, 1 h). Revision mode compacts to the
/// current revision minus the retention every 5 minutes, when that moved.
#[derive(Clone, Debug, Default)]
pub struct Compactor {
    mode: Option<AutoCompaction>,
    samples: std::collections::VecDeque<i64>,
    next: Option<Instant>,
    last: Option<Instant>,
    compacted_once: bool,
    previous: i64,
}

impl Compactor {
    /// A compactor for the configured mode (`None`: off).
    pub fn new(mode: Option<AutoCompaction>) -> Compactor {
        Compactor { mode, ..Compactor::default() }
    }

    /// Advances to `now` with the store at `revision`; returns a revision to compact to, if the
    /// leader should now.
    pub fn tick(&mut self, now: Instant, revision: i64, leader: bool) -> Option<i64> {
        use crate::time::Duration;
        let hour = Duration::from_secs(3600);
        match self.mode? {
            AutoCompaction::Periodic(period) => {
                let interval = if period < hour { period } else { hour };
                let retry = Duration::from_nanos((interval.as_nanos() / 10).max(1));
                let keep = (period.as_nanos() / retry.as_nanos()) as usize + 1;
                let next = *self.next.get_or_insert(now);
                let last = *self.last.get_or_insert(now);
                if now < next {
                    return None;
                }
                self.next = Some(now + retry);
                self.samples.push_back(revision);
                while self.samples.len() > keep {
                    self.samples.pop_front();
                }
                let wait = if self.compacted_once { interval } else { period };
                if !leader || now.since(last) < wait {
                    return None;
                }
                self.compacted_once = true;
                self.last = Some(now);
                self.samples.front().copied().filter(|&rev| rev > 0)
            }
            AutoCompaction::Revision(retention) => {
                let next = *self.next.get_or_insert(now + Duration::from_secs(300));
                if now < next {
                    return None;
                }
                self.next = Some(now + Duration::from_secs(300));
                let target = revision - retention;
                if !leader || target <= 0 || target == self.previous {
                    return None;
                }
                self.previous = target;
                Some(target)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::Duration;

    fn at(secs: u64) -> Instant {
        Instant::ZERO + Duration::from_secs(secs)
    }

    #[test]
    fn periodic_compacts_to_the_revision_sampled_a_period_ago() {
        let mut compactor =
            Compactor::new(Some(AutoCompaction::Periodic(Duration::from_secs(100))));
        let mut compactions = Vec::new();
        // One write a second; samples every 10 s; the first compaction at 100 s, then every 100 s.
        for second in 0..=300 {
            if let Some(revision) = compactor.tick(at(second), 1000 + second as i64, true) {
                compactions.push((second, revision));
            }
        }
        assert_eq!(compactions, [(100, 1000), (200, 1100), (300, 1200)]);
        let mut follower = Compactor::new(Some(AutoCompaction::Periodic(Duration::from_secs(100))));
        assert!((0..=300).all(|s| follower.tick(at(s), s as i64, false).is_none()));
    }

    #[test]
    fn periodic_over_an_hour_compacts_hourly() {
        let day = Duration::from_secs(24 * 3600);
        let mut compactor = Compactor::new(Some(AutoCompaction::Periodic(day)));
        let mut compactions = Vec::new();
        for minute in 0..=(26 * 60) {
            if let Some(revision) = compactor.tick(at(minute * 60), 1000 + minute as i64, true) {
                compactions.push((minute / 60, revision));
            }
        }
        // Samples every 6 minutes, 241 kept: the first compaction a day in, to the revision of
        // the first sample; then hourly, each to the revision sampled a day before.
        assert_eq!(compactions, [(24, 1000), (25, 1060), (26, 1120)]);
    }

    #[test]
    fn revision_mode_keeps_the_retention_every_five_minutes() {
        let mut compactor = Compactor::new(Some(AutoCompaction::Revision(100)));
        assert_eq!(compactor.tick(at(0), 50, true), None);
        assert_eq!(compactor.tick(at(299), 500, true), None, "not yet five minutes");
        assert_eq!(compactor.tick(at(300), 500, true), Some(400));
        assert_eq!(compactor.tick(at(600), 500, true), None, "nothing new to compact");
        assert_eq!(compactor.tick(at(900), 50, true), None, "not enough history");
        assert_eq!(compactor.tick(at(1200), 700, false), None, "followers do not compact");
        assert_eq!(compactor.tick(at(1500), 700, true), Some(600));
    }
}
