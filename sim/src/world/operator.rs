//! The operator on call: with a space quota, someone must free space and disarm NOSPACE, or
//! the cluster refuses writes for good. Every `[quota] operator_every_ms`, through both phases,
//! the operator compacts (keeping the newest `keep_revisions` recorded revisions), lists the
//! alarms, and disarms each one it finds, as `etcdctl alarm disarm` does. Defragmenting is not
//! needed: stead's quota counts what compaction freed.
//!
//! At the end, CORRUPT alarms are violations in every scenario (the simulator never corrupts
//! data behind the checksums, so one is a false positive of the corruption check), and a
//! scenario that expects NOSPACE fails if it never got there.

use super::churn::Admin;
use super::{Event, World};
use crate::check::Violation;
use stead_core::api::{
    AlarmAction, AlarmRequest, AlarmType, Error, MaintenanceRequest, Request, Response,
};
use stead_core::node::{Input, Node};
use stead_core::time::Duration;

impl World {
    /// One round of the operator's work.
    pub(super) fn operate(&mut self) {
        let every = Duration::from_millis(self.scenario.quota.operator_every_ms);
        self.at(every, Event::Operator);
        let Some(member) = self.workload_member() else { return };
        let revision = self.logged_revision - self.scenario.quota.keep_revisions;
        if revision > self.compacted.max(1) {
            self.compact_at(member, revision);
        }
        let list = AlarmRequest { action: AlarmAction::Get, member_id: 0, alarm: AlarmType::None };
        self.operator_send(member, Admin::AlarmList, list);
    }

    fn operator_send(&mut self, member: u64, admin: Admin, alarm: AlarmRequest) {
        let id = self.admin_request_id();
        self.admin.insert(id, admin);
        let request = Request::Maintenance(MaintenanceRequest::Alarm(alarm));
        self.input(member, Input::Client { id, credential: None, request });
    }

    /// Disarms every alarm a listing found; records what a disarm cleared.
    pub(super) fn operator_answered(&mut self, admin: Admin, result: Result<Response, Error>) {
        let Ok(Response::Alarm(answer)) = result else { return };
        match admin {
            Admin::AlarmList => {
                let Some(member) = self.workload_member() else { return };
                for alarm in answer.alarms {
                    let disarm = AlarmRequest {
                        action: AlarmAction::Deactivate,
                        member_id: alarm.member_id,
                        alarm: alarm.alarm,
                    };
                    self.operator_send(member, Admin::Disarm, disarm);
                }
            }
            _ => self.disarmed.extend(answer.alarms),
        }
    }

    /// The end-of-run alarm checks.
    pub(super) fn alarm_violations(&self, nodes: &[&Node]) -> Vec<Violation> {
        let mut violations = Vec::new();
        for node in nodes {
            let corrupt: Vec<_> =
                node.alarms().into_iter().filter(|a| a.alarm == AlarmType::Corrupt).collect();
            if !corrupt.is_empty() {
                let detail = format!("member {} holds CORRUPT alarms {corrupt:?}", node.id());
                violations.push(Violation::new("corruption", detail));
            }
        }
        if self.scenario.checks.expect_nospace {
            let disarmed = self.disarmed.iter().any(|a| a.alarm == AlarmType::NoSpace);
            if self.nospace_refusals == 0 || !disarmed {
                let detail = format!(
                    "the quota was never exercised: {} writes refused, NOSPACE disarmed: \
                     {disarmed}",
                    self.nospace_refusals
                );
                violations.push(Violation::new("scenario", detail));
            }
        }
        violations
    }
}
