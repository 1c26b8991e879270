//! Fault injection: when and where partitions, power losses, disk failures, pauses, clock
//! jumps and leadership transfers strike during the safety phase. Each fault recurs at random
//! intervals around its scenario's mean and stops when the safety phase ends.

use super::{Event, World};
use crate::scenario::Target;
use rand::Rng;
use std::collections::BTreeSet;
use stead_core::api::Request;
use stead_core::node::Input;
use stead_core::time::Duration;

impl World {
    /// Counts an occurrence of fault `kind` and says whether to apply it: always, unless the
    /// scenario keeps only some faults (a shrunk scenario), then only those it names. The
    /// random choices of an occurrence are drawn either way, so the faults that remain keep
    /// their times and targets as far as the run allows.
    pub(super) fn fault_fires(&mut self, kind: &'static str) -> Option<String> {
        let count = self.fault_counts.entry(kind).or_default();
        let label = format!("{kind}#{count}");
        *count += 1;
        let kept = self.scenario.keep_faults.as_ref().is_none_or(|keep| keep.contains(&label));
        kept.then_some(label)
    }

    /// Records an applied fault for the shrinker and the trace.
    pub(super) fn log_fault(&mut self, label: String, what: String) {
        let record = crate::FaultRecord { label, at_ms: self.now.as_nanos() / 1_000_000, what };
        self.fault_log.borrow_mut().push(record);
    }

    /// Schedules the next occurrence of a fault that recurs every `every_ms` on average.
    pub(super) fn schedule_fault(&mut self, every_ms: u64, event: Event) {
        if every_ms > 0 {
            let after = self.faults.gen_range(every_ms / 2..=every_ms * 3 / 2).max(1);
            self.at(Duration::from_millis(after), event);
        }
    }

    /// A running member, chosen at random.
    pub(super) fn running_member(&mut self) -> Option<u64> {
        let running = self.running_members();
        (!running.is_empty()).then(|| running[self.faults.gen_range(0..running.len())])
    }

    /// A running member for a client, chosen at random from the workload's stream.
    pub(super) fn workload_member(&mut self) -> Option<u64> {
        let running = self.running_members();
        (!running.is_empty()).then(|| running[self.workload.gen_range(0..running.len())])
    }

    /// Every member whose process runs, in id order.
    pub(super) fn running_members(&self) -> Vec<u64> {
        self.hosts.iter().filter(|(_, h)| h.is_some()).map(|(id, _)| *id).collect()
    }

    pub(super) fn disk_fault(&mut self) {
        if !self.faults_on {
            return;
        }
        if let Some(id) = self.running_member() {
            let kind = if self.faults.gen_bool(0.5) {
                stead_store::FaultKind::Write
            } else {
                stead_store::FaultKind::Sync
            };
            if let Some(label) = self.fault_fires("disk-error") {
                self.disks[&id].inject(kind);
                self.disk_trouble.insert(id);
                self.log_fault(label, format!("member {id}'s next disk {kind:?} fails (EIO)"));
            }
        }
        self.schedule_fault(self.scenario.disk.eio_every_ms, Event::DiskFault);
    }

    pub(super) fn disk_full(&mut self) {
        if !self.faults_on {
            return;
        }
        if let Some(id) = self.running_member() {
            if let Some(label) = self.fault_fires("disk-full") {
                let disk = &self.disks[&id];
                disk.set_capacity(Some(disk.used_bytes() + 1024));
                self.disk_trouble.insert(id);
                self.log_fault(label, format!("member {id}'s disk fills up (ENOSPC)"));
            }
        }
        self.schedule_fault(self.scenario.disk.enospc_every_ms, Event::DiskFull);
    }

    pub(super) fn pause(&mut self) {
        if !self.faults_on {
            return;
        }
        if let Some(id) = self.running_member() {
            if let Some(label) = self.fault_fires("pause") {
                let duration = self.scenario.pauses.duration_ms;
                self.paused_until.insert(id, self.now + Duration::from_millis(duration));
                self.log_fault(label, format!("member {id} pauses for {duration} ms"));
            }
        }
        self.schedule_fault(self.scenario.pauses.every_ms, Event::Pause);
    }

    pub(super) fn clock_jump(&mut self) {
        if !self.faults_on {
            return;
        }
        let Some(id) = self.any_member() else { return };
        let max = self.scenario.clocks.max_jump_ms as i64 * 1_000_000;
        let jump = self.faults.gen_range(-max..=max);
        if let Some(label) = self.fault_fires("clock-jump") {
            if jump > 0 {
                self.clock_jumps.push((self.now, Duration::from_nanos(jump as u64)));
            }
            let clock = self.clocks.get_mut(&id).expect("every member has a clock");
            clock.offset_ns = (clock.offset_ns as i64 + jump).max(0) as u64;
            let what = format!("member {id}'s clock jumps {} ms", jump / 1_000_000);
            self.log_fault(label, what);
        }
        self.schedule_fault(self.scenario.clocks.jump_every_ms, Event::ClockJump);
    }

    /// Asks the leader to hand leadership to a random other member; the answer is not checked.
    pub(super) fn transfer(&mut self) {
        if !self.faults_on {
            return;
        }
        let voters: Vec<u64> =
            self.members.iter().copied().filter(|id| Some(*id) != self.learner).collect();
        if let Some(leader) = self.leader().filter(|_| voters.len() > 1) {
            let others: Vec<u64> = voters.into_iter().filter(|id| *id != leader).collect();
            let target = others[self.faults.gen_range(0..others.len())];
            if let Some(label) = self.fault_fires("transfer") {
                let id = self.admin_request_id();
                let request =
                    Request::Cluster(stead_core::api::ClusterRequest::MoveLeader { target });
                self.input(leader, Input::Client { id, credential: None, request });
                self.log_fault(label, format!("leader {leader} is asked to hand over to {target}"));
            }
        }
        self.schedule_fault(self.scenario.leadership.transfer_every_ms, Event::Transfer);
    }

    /// A power loss: hits the member chosen when it was scheduled, the leader, or everyone,
    /// as the scenario says; then schedules the next one.
    pub(super) fn crash(&mut self, chosen: u64) {
        if !self.faults_on {
            return;
        }
        let victims: Vec<u64> = match self.scenario.crashes.target {
            Target::Random => vec![chosen],
            Target::Leader => vec![self.leader().unwrap_or(chosen)],
            Target::All => self.members.iter().copied().collect(),
        };
        if let Some(label) = self.fault_fires("crash") {
            self.log_fault(label, format!("power loss of {victims:?}"));
            for id in victims {
                self.power_loss(id);
            }
        }
        let next = self
            .faults
            .gen_range(self.scenario.crashes.every_ms / 2..=self.scenario.crashes.every_ms * 3 / 2);
        if let Some(victim) = self.any_member() {
            self.at(Duration::from_millis(next.max(1)), Event::Crash(victim));
        }
    }

    /// Member `id` loses power: its process stops, its disk keeps what the chooser allows, and
    /// it restarts after the scenario's down time.
    fn power_loss(&mut self, id: u64) {
        match self.hosts.get(&id) {
            Some(Some(_)) => {
                self.hosts.insert(id, None);
                self.syncing.remove(&id);
                let choices = &mut self.disk_choices;
                self.disks[&id].crash(&mut |options| choices.gen_range(0..options));
                self.at(Duration::from_millis(self.scenario.crashes.down_ms), Event::Restart(id));
            }
            // Already stopped (a disk fault): the power loss still takes unsynced data with it.
            Some(None) => {
                let choices = &mut self.disk_choices;
                self.disks[&id].crash(&mut |options| choices.gen_range(0..options));
            }
            None => {}
        }
    }

    /// Isolates a random minority from the rest, both ways or one way.
    pub(super) fn partition(&mut self) {
        if !self.faults_on {
            return;
        }
        let nodes: Vec<u64> = self.members.iter().copied().collect();
        let links = if self.scenario.partitions.partial {
            self.partial_partition(&nodes)
        } else {
            self.split(&nodes)
        };
        if let Some(label) = self.fault_fires("partition") {
            let duration = self.scenario.partitions.duration_ms;
            self.log_fault(label, format!("links {links:?} cut for {duration} ms"));
            self.cut.extend(links);
        }
        self.at(Duration::from_millis(self.scenario.partitions.duration_ms), Event::Heal);
        let every = self.scenario.partitions.every_ms;
        let next =
            self.faults.gen_range(every / 2..=every * 3 / 2) + self.scenario.partitions.duration_ms;
        self.at(Duration::from_millis(next), Event::Partition);
    }

    /// Chooses each link with even odds (each direction alone when partitions are one-way).
    fn partial_partition(&mut self, nodes: &[u64]) -> BTreeSet<(u64, u64)> {
        let mut links = BTreeSet::new();
        for (position, &a) in nodes.iter().enumerate() {
            for &b in &nodes[position + 1..] {
                if self.faults.gen_bool(0.5) {
                    links.insert((a, b));
                    if !self.scenario.partitions.one_way {
                        links.insert((b, a));
                    }
                }
            }
        }
        links
    }

    /// The links that isolate a random minority (or the leader) from the rest.
    fn split(&mut self, nodes: &[u64]) -> BTreeSet<(u64, u64)> {
        let mut links = BTreeSet::new();
        let mut isolated = BTreeSet::new();
        let leader = self.leader().filter(|_| self.scenario.partitions.target == Target::Leader);
        if let Some(leader) = leader {
            isolated.insert(leader);
        } else {
            let size = self.faults.gen_range(1..=(nodes.len() as u64 / 2).max(1));
            while (isolated.len() as u64) < size {
                isolated.insert(nodes[self.faults.gen_range(0..nodes.len())]);
            }
        }
        for &inside in &isolated {
            for &outside in nodes.iter().filter(|n| !isolated.contains(n)) {
                links.insert((outside, inside));
                if !self.scenario.partitions.one_way {
                    links.insert((inside, outside));
                }
            }
        }
        links
    }
}
