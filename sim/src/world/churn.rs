//! Membership churn: the world adds a learner, promotes it, and removes a random voter (the
//! leader included), one step per churn event, through the leader as an operator would
//! (MemberAdd, MemberPromote, MemberRemove). An added learner starts as a new member that joins
//! the running cluster with an empty disk; a removed member's host is stopped for good.

use super::{Clock, Event, World};
use crate::host::Host;
use rand::Rng;
use stead_core::api::{ClusterRequest, Error, Request, Response};
use stead_core::node::Input;
use stead_store::disk::MemDisk;

/// A membership request the world sent, waiting for its answer.
#[derive(Clone, Debug)]
pub(super) enum Admin {
    Add,
    Promote(u64),
    Remove(u64),
    /// The operator's alarm listing.
    AlarmList,
    /// The operator's disarm of one alarm.
    Disarm,
}

impl World {
    /// The running leader, if one believes it leads.
    pub(super) fn leader(&self) -> Option<u64> {
        self.hosts.iter().find_map(|(id, host)| {
            let node = host.as_ref()?.node();
            (node.is_leader() && !node.is_removed()).then_some(*id)
        })
    }

    /// Any current member, chosen at random.
    pub(super) fn any_member(&mut self) -> Option<u64> {
        let members: Vec<u64> = self.members.iter().copied().collect();
        (!members.is_empty()).then(|| members[self.faults.gen_range(0..members.len())])
    }

    /// Stops members that are out of the cluster: those that applied their own removal, and
    /// those whose requested removal the leader applied but that never heard of it (outside the
    /// configuration, no one replicates to them; etcd's peer transport tells such a member it
    /// was removed, and it shuts down). The answer to a removal can be lost, so this does not
    /// rely on it.
    pub(super) fn drop_removed_members(&mut self) {
        let view: Option<Vec<u64>> = self.leader().map(|leader| {
            self.hosts[&leader]
                .as_ref()
                .expect("runs")
                .node()
                .members()
                .iter()
                .map(|m| m.id)
                .collect()
        });
        let removed: Vec<u64> = self
            .members
            .iter()
            .copied()
            .filter(|id| {
                let applied_own = self
                    .hosts
                    .get(id)
                    .and_then(Option::as_ref)
                    .is_some_and(|h| h.node().is_removed());
                let gone = self.removal_requested.contains(id)
                    && view.as_ref().is_some_and(|v| !v.contains(id));
                applied_own || gone
            })
            .collect();
        for id in removed {
            self.hosts.remove(&id);
            self.members.remove(&id);
        }
    }

    /// One step of the cycle add → promote → remove, judged from the leader's membership.
    pub(super) fn churn(&mut self) {
        if !self.faults_on {
            return;
        }
        if let Some(leader) = self.leader() {
            let view = self.hosts[&leader].as_ref().expect("the leader runs").node().members();
            self.learner = view.iter().find(|m| m.is_learner).map(|m| m.id);
            let voters: Vec<u64> = view.iter().filter(|m| !m.is_learner).map(|m| m.id).collect();
            let (admin, request) = match self.learner {
                // A learner whose add was never answered was never started: remove it.
                Some(id) if !self.hosts.contains_key(&id) => {
                    (Admin::Remove(id), ClusterRequest::MemberRemove { id })
                }
                Some(id) => (Admin::Promote(id), ClusterRequest::MemberPromote { id }),
                None if voters.len() as u64 <= self.scenario.nodes => {
                    let n = self.next_admin_number();
                    let peer_urls = vec![format!("http://10.9.{}.{}:2380", n / 250, n % 250 + 1)];
                    (Admin::Add, ClusterRequest::MemberAdd { peer_urls, is_learner: true })
                }
                None => {
                    let id = voters[self.faults.gen_range(0..voters.len())];
                    (Admin::Remove(id), ClusterRequest::MemberRemove { id })
                }
            };
            let Some(label) = self.fault_fires("churn") else {
                return self.schedule_fault(self.scenario.membership.churn_every_ms, Event::Churn);
            };
            self.log_fault(label, format!("{request:?} through leader {leader}"));
            if let Admin::Remove(id) = admin {
                self.removal_requested.insert(id);
            }
            let request_id = self.admin_request_id();
            self.admin.insert(request_id, admin);
            self.input(
                leader,
                Input::Client {
                    id: request_id,
                    credential: None,
                    request: Request::Cluster(request),
                },
            );
        }
        self.schedule_fault(self.scenario.membership.churn_every_ms, Event::Churn);
    }

    /// Acts on the answer to a membership request; a refused one is simply tried again later.
    pub(super) fn admin_answered(&mut self, admin: Admin, result: Result<Response, Error>) {
        if matches!(admin, Admin::AlarmList | Admin::Disarm) {
            return self.operator_answered(admin, result);
        }
        let Ok(Response::Cluster(answer)) = result else { return };
        match admin {
            Admin::Add => {
                let Some(member) = answer.member else { return };
                self.start_joiner(member.id);
            }
            Admin::Promote(id) if self.learner == Some(id) => self.learner = None,
            Admin::Promote(_) => {}
            Admin::AlarmList | Admin::Disarm => unreachable!("answered above"),
            Admin::Remove(id) => {
                self.members.remove(&id);
                self.hosts.remove(&id);
                if self.learner == Some(id) {
                    self.learner = None;
                }
            }
        }
    }

    /// Starts a member that joins the running cluster with an empty disk.
    fn start_joiner(&mut self, id: u64) {
        let max_drift = self.scenario.clocks.max_drift_ppm as i64;
        let clock = Clock {
            offset_ns: self.faults.gen_range(0..=self.scenario.clocks.max_offset_ms * 1_000_000),
            drift_ppm: self.faults.gen_range(-max_drift..=max_drift),
        };
        self.clocks.insert(id, clock);
        self.joined.insert(id);
        let disk = MemDisk::new();
        let config = self.config(id);
        let now = clock.at(self.now);
        match Host::create(config, disk.clone(), self.wal_config(), now) {
            Ok(host) => {
                self.disks.insert(id, disk);
                self.hosts.insert(id, Some(host));
                self.members.insert(id);
                self.learner = Some(id);
            }
            Err(error) => self
                .violations
                .push(crate::check::Violation::new("store", format!("joiner {id}: {error}"))),
        }
    }
}
