//! The simulated world: hosts, a network, clients, faults and simulated time, in one
//! single-threaded discrete-event loop.
//!
//! Events sit in a queue ordered by (time, sequence); the loop pops the next one, jumps time to
//! it and handles it, so idle time costs nothing. Every member ticks every 25 ms of its own
//! clock, which runs at its own offset and drift from simulated time. Every handled event is
//! folded into the trace hash, and optionally written as a JSON line, so a seed replays bit for
//! bit and two runs can be compared. Raft safety (one leader per term; equal applied-log
//! digests and key spaces at equal applied indexes) is checked as the run goes.

use crate::check::Violation;
use crate::history::{History, Op, OpKind, Outcome};
use crate::host::Host;
use crate::rng::{stream, Stream};
use crate::scenario::Scenario;
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use stead_core::api::{DeleteRangeRequest, Error, PutRequest, RangeRequest, Request, Response};
use stead_core::node::{Input, NodeConfig, Output};
use stead_core::time::{Duration, Instant};
use stead_store::disk::MemDisk;
use stead_store::wal::WalConfig;

const TICK: Duration = Duration::from_millis(25);

/// Something that will happen.
#[derive(Clone, Debug)]
enum Event {
    /// Every running member's clock ticks.
    Tick,
    /// A raft message arrives.
    Deliver { to: u64, message: raft_proto::eraftpb::Message },
    /// A client starts its next operation.
    ClientNext(usize),
    /// A client gives up waiting for operation `op`.
    ClientTimeout(usize),
    /// A member loses power.
    Crash(u64),
    /// A member comes back from its disk.
    Restart(u64),
    /// The network splits.
    Partition,
    /// The network heals.
    Heal,
    /// The safety phase ends: faults stop, everything heals.
    EndSafety,
    /// Clients stop starting operations.
    StopClients,
}

/// A member's clock: simulated time, shifted and stretched.
#[derive(Clone, Copy, Debug)]
struct Clock {
    offset_ns: u64,
    drift_ppm: i64,
}

impl Clock {
    fn at(&self, now: Instant) -> Instant {
        let stretched = now.as_nanos() as i128 * (1_000_000 + self.drift_ppm as i128) / 1_000_000;
        Instant::from_nanos(self.offset_ns + stretched.max(0) as u64)
    }
}

/// What one run produced.
pub struct Outcomes {
    /// The hash of every handled event.
    pub trace_hash: u32,
    /// Every broken guarantee.
    pub violations: Vec<Violation>,
    /// The client history.
    pub history: History,
    /// Simulated time covered.
    pub simulated: Duration,
}

/// The simulated world of one run.
pub struct World {
    scenario: Scenario,
    now: Instant,
    queue: BTreeMap<(Instant, u64), Event>,
    sequence: u64,
    hosts: BTreeMap<u64, Option<Host>>,
    disks: BTreeMap<u64, MemDisk>,
    clocks: BTreeMap<u64, Clock>,
    restarts: u64,
    cut: BTreeSet<(u64, u64)>,
    faults_on: bool,
    clients_on: bool,
    network: ChaCha8Rng,
    workload: ChaCha8Rng,
    faults: ChaCha8Rng,
    disk_choices: ChaCha8Rng,
    node_seeds: ChaCha8Rng,
    history: History,
    in_flight: BTreeMap<usize, usize>,
    next_value: u64,
    trace_hash: u32,
    trace: Option<Box<dyn Write>>,
    violations: Vec<Violation>,
    safety: crate::check::RaftSafety,
    safety_end: Instant,
    acknowledged_after_heal: usize,
}

impl World {
    /// A world for `scenario` seeded with `seed`; `trace` receives one JSON line per event.
    pub fn new(scenario: Scenario, seed: u64, trace: Option<Box<dyn Write>>) -> World {
        let mut clocks_rng = stream(seed, Stream::Clocks);
        let mut world = World {
            now: Instant::ZERO,
            queue: BTreeMap::new(),
            sequence: 0,
            hosts: BTreeMap::new(),
            disks: BTreeMap::new(),
            clocks: BTreeMap::new(),
            restarts: 0,
            cut: BTreeSet::new(),
            faults_on: true,
            clients_on: true,
            network: stream(seed, Stream::Network),
            workload: stream(seed, Stream::Workload),
            faults: stream(seed, Stream::Faults),
            disk_choices: stream(seed, Stream::Disk),
            node_seeds: stream(seed, Stream::Nodes),
            history: History::default(),
            in_flight: BTreeMap::new(),
            next_value: 0,
            trace_hash: 0,
            trace,
            violations: Vec::new(),
            safety: crate::check::RaftSafety::default(),
            safety_end: Instant::ZERO + Duration::from_millis(scenario.safety_ms),
            acknowledged_after_heal: 0,
            scenario,
        };
        for id in 1..=world.scenario.nodes {
            let offset_ns =
                clocks_rng.gen_range(0..=world.scenario.clocks.max_offset_ms * 1_000_000);
            let max_drift = world.scenario.clocks.max_drift_ppm as i64;
            let drift_ppm = clocks_rng.gen_range(-max_drift..=max_drift);
            world.clocks.insert(id, Clock { offset_ns, drift_ppm });
            let disk = MemDisk::new();
            let now = world.clocks[&id].at(world.now);
            let host = Host::create(world.config(id), disk.clone(), world.wal_config(), now)
                .expect("a new host on an empty disk");
            world.disks.insert(id, disk);
            world.hosts.insert(id, Some(host));
        }
        world
    }

    fn config(&mut self, id: u64) -> NodeConfig {
        let members: Vec<u64> = (1..=self.scenario.nodes).collect();
        let mut config = NodeConfig::new(id, members, self.node_seeds.gen());
        config.snapshot_count = self.scenario.snapshot_count;
        config.snapshot_catch_up_entries = self.scenario.snapshot_count / 2;
        config
    }

    fn wal_config(&self) -> WalConfig {
        WalConfig { segment_bytes: self.scenario.wal_segment_bytes }
    }

    fn at(&mut self, after: Duration, event: Event) {
        self.sequence += 1;
        self.queue.insert((self.now + after, self.sequence), event);
    }

    /// Runs the whole scenario: the safety phase, then the liveness phase; then checks.
    pub fn run(mut self) -> Outcomes {
        let scenario = self.scenario.clone();
        let end = self.safety_end + Duration::from_millis(scenario.liveness_ms);
        self.at(Duration::ZERO, Event::Tick);
        for client in 0..scenario.clients {
            self.at(Duration::from_millis(client as u64), Event::ClientNext(client));
        }
        if scenario.partitions.every_ms > 0 {
            let first = self.faults.gen_range(0..=scenario.partitions.every_ms);
            self.at(Duration::from_millis(first), Event::Partition);
        }
        if scenario.crashes.every_ms > 0 {
            let first = self.faults.gen_range(0..=scenario.crashes.every_ms);
            let victim = self.faults.gen_range(1..=scenario.nodes);
            self.at(Duration::from_millis(first), Event::Crash(victim));
        }
        self.at(Duration::from_millis(scenario.safety_ms), Event::EndSafety);
        let quiet = Duration::from_millis(
            scenario.liveness_ms.saturating_sub(3_000).max(scenario.liveness_ms / 2),
        );
        self.at(Duration::from_millis(scenario.safety_ms) + quiet, Event::StopClients);
        while let Some((&(time, sequence), _)) = self.queue.first_key_value() {
            if time > end {
                break;
            }
            let event = self.queue.remove(&(time, sequence)).expect("present");
            self.now = time;
            self.record(&event);
            self.handle(event);
        }
        self.finish(end)
    }

    fn handle(&mut self, event: Event) {
        match event {
            Event::Tick => {
                for id in self.hosts.keys().copied().collect::<Vec<_>>() {
                    let now = self.clocks[&id].at(self.now);
                    self.input(id, Input::Tick { now });
                }
                self.check_raft_safety();
                self.at(TICK, Event::Tick);
            }
            Event::Deliver { to, message } => self.input(to, Input::Message(message)),
            Event::ClientNext(client) => self.client_next(client),
            Event::ClientTimeout(op) => self.client_timeout(op),
            Event::Crash(id) => self.crash(id),
            Event::Restart(id) => self.restart(id),
            Event::Partition => self.partition(),
            Event::Heal => self.cut.clear(),
            Event::EndSafety => self.end_safety(),
            Event::StopClients => self.clients_on = false,
        }
    }

    /// Feeds a running member an input and routes what leaves it.
    fn input(&mut self, id: u64, input: Input) {
        let Some(Some(host)) = self.hosts.get_mut(&id) else { return };
        let outputs = match host.handle(input) {
            Ok(outputs) => outputs,
            Err(error) => {
                self.violations.push(Violation::new("store", format!("member {id}: {error}")));
                self.hosts.insert(id, None);
                return;
            }
        };
        for output in outputs {
            match output {
                Output::Send { to, message } => self.transmit(id, to, message),
                Output::Respond { id: op, result } => self.answer(op as usize, result),
                Output::Persist { .. } | Output::SaveSnapshot { .. } => {
                    unreachable!("the host persists")
                }
            }
        }
    }

    fn transmit(&mut self, from: u64, to: u64, message: raft_proto::eraftpb::Message) {
        let network = self.scenario.network.clone();
        let (drop_rate, duplicate_rate) =
            if self.faults_on { (network.drop_rate, network.duplicate_rate) } else { (0.0, 0.0) };
        if self.cut.contains(&(from, to)) || self.network.gen_bool(drop_rate) {
            return;
        }
        let copies = if self.network.gen_bool(duplicate_rate) { 2 } else { 1 };
        for _ in 0..copies {
            let delay = self.network.gen_range(network.delay_ms_min..=network.delay_ms_max);
            self.at(Duration::from_millis(delay), Event::Deliver { to, message: message.clone() });
        }
    }

    /// A client picks its next operation and a member to send it to.
    fn client_next(&mut self, client: usize) {
        if !self.clients_on {
            return;
        }
        let scenario = &self.scenario;
        let key = format!("key{}", self.workload.gen_range(0..scenario.keys));
        let kind = if self.workload.gen_bool(scenario.read_fraction) {
            OpKind::Get {
                key,
                serializable: self.workload.gen_bool(scenario.serializable_fraction),
            }
        } else if self.workload.gen_bool(scenario.delete_fraction) {
            OpKind::Delete { key }
        } else {
            self.next_value += 1;
            OpKind::Put { key, value: format!("v{}", self.next_value) }
        };
        let target = self.workload.gen_range(1..=scenario.nodes);
        let op = self.history.ops.len();
        self.history.ops.push(Op {
            client,
            kind: kind.clone(),
            invoke: self.now,
            complete: None,
            outcome: Outcome::Pending,
        });
        if !matches!(self.hosts.get(&target), Some(Some(_))) {
            // Connection refused: nothing was sent.
            return self.finish_op(op, Outcome::Failed("connection refused".into()));
        }
        self.in_flight.insert(op, target as usize);
        self.at(Duration::from_millis(self.scenario.op_timeout_ms), Event::ClientTimeout(op));
        let request = match kind {
            OpKind::Put { key, value } => Request::Put(PutRequest {
                key: key.into_bytes(),
                value: value.into_bytes(),
                ..Default::default()
            }),
            OpKind::Delete { key } => Request::DeleteRange(DeleteRangeRequest {
                key: key.into_bytes(),
                ..Default::default()
            }),
            OpKind::Get { key, serializable } => Request::Range(RangeRequest {
                key: key.into_bytes(),
                serializable,
                ..Default::default()
            }),
        };
        self.input(target, Input::Client { id: op as u64, request });
    }

    fn answer(&mut self, op: usize, result: Result<Response, Error>) {
        if self.in_flight.remove(&op).is_none() {
            return; // The client gave up on it already.
        }
        let outcome = match (&self.history.ops[op].kind, result) {
            (_, Ok(Response::Put(put))) => Outcome::Put { revision: put.header.revision },
            (_, Ok(Response::DeleteRange(d))) => {
                Outcome::Delete { revision: d.header.revision, deleted: d.deleted }
            }
            (_, Ok(Response::Range(range))) => {
                let value =
                    range.kvs.first().map(|kv| String::from_utf8_lossy(&kv.value).into_owned());
                Outcome::Get { revision: range.header.revision, value }
            }
            (OpKind::Get { .. }, Err(error)) => Outcome::Failed(error.to_string()),
            // A write the server gave up on (timeout, leader change) may still commit.
            (_, Err(Error::Server(_))) => Outcome::Unknown,
            (_, Err(error)) => Outcome::Failed(error.to_string()),
            (_, Ok(other)) => Outcome::Failed(format!("unexpected answer {other:?}")),
        };
        if self.now >= self.safety_end && !matches!(outcome, Outcome::Failed(_) | Outcome::Unknown)
        {
            self.acknowledged_after_heal += 1;
        }
        self.finish_op(op, outcome);
    }

    fn client_timeout(&mut self, op: usize) {
        if self.in_flight.remove(&op).is_some() {
            let outcome = match self.history.ops[op].kind {
                OpKind::Get { .. } => Outcome::Failed("client timeout".into()),
                _ => Outcome::Unknown,
            };
            self.finish_op(op, outcome);
        }
    }

    fn finish_op(&mut self, op: usize, outcome: Outcome) {
        let entry = &mut self.history.ops[op];
        entry.outcome = outcome;
        entry.complete = Some(self.now);
        let client = entry.client;
        let think = Duration::from_millis(self.workload.gen_range(0..=5));
        self.at(think, Event::ClientNext(client));
    }

    fn crash(&mut self, id: u64) {
        if !self.faults_on {
            return;
        }
        if matches!(self.hosts.get(&id), Some(Some(_))) {
            self.hosts.insert(id, None);
            let choices = &mut self.disk_choices;
            self.disks[&id].crash(&mut |options| choices.gen_range(0..options));
            self.at(Duration::from_millis(self.scenario.crashes.down_ms), Event::Restart(id));
        }
        let next = self
            .faults
            .gen_range(self.scenario.crashes.every_ms / 2..=self.scenario.crashes.every_ms * 3 / 2);
        let victim = self.faults.gen_range(1..=self.scenario.nodes);
        self.at(Duration::from_millis(next.max(1)), Event::Crash(victim));
    }

    fn restart(&mut self, id: u64) {
        if matches!(self.hosts.get(&id), Some(Some(_))) {
            return;
        }
        self.restarts += 1;
        let config = self.config(id);
        let now = self.clocks[&id].at(self.now);
        match Host::recover(config, self.disks[&id].clone(), self.wal_config(), now) {
            Ok(host) => {
                self.hosts.insert(id, Some(host));
            }
            Err(error) => {
                self.violations.push(Violation::new("recovery", format!("member {id}: {error}")))
            }
        }
    }

    /// Isolates a random minority from the rest, both ways or one way.
    fn partition(&mut self) {
        if !self.faults_on {
            return;
        }
        let nodes: Vec<u64> = (1..=self.scenario.nodes).collect();
        let size = self.faults.gen_range(1..=(nodes.len() as u64 / 2).max(1));
        let mut isolated = BTreeSet::new();
        while (isolated.len() as u64) < size {
            isolated.insert(nodes[self.faults.gen_range(0..nodes.len())]);
        }
        for &inside in &isolated {
            for &outside in nodes.iter().filter(|n| !isolated.contains(n)) {
                self.cut.insert((outside, inside));
                if !self.scenario.partitions.one_way {
                    self.cut.insert((inside, outside));
                }
            }
        }
        self.at(Duration::from_millis(self.scenario.partitions.duration_ms), Event::Heal);
        let every = self.scenario.partitions.every_ms;
        let next =
            self.faults.gen_range(every / 2..=every * 3 / 2) + self.scenario.partitions.duration_ms;
        self.at(Duration::from_millis(next), Event::Partition);
    }

    fn end_safety(&mut self) {
        self.faults_on = false;
        self.cut.clear();
        for id in 1..=self.scenario.nodes {
            self.restart(id);
        }
    }

    /// One leader per term; equal applied-log digests and key spaces at equal applied indexes.
    fn check_raft_safety(&mut self) {
        for host in self.hosts.values().flatten() {
            let node = host.node();
            let view = crate::check::MemberView {
                id: node.id(),
                term: node.term(),
                leading: node.is_leader() && !node.is_removed(),
                applied_index: node.applied_index(),
                applied_digest: node.applied_digest(),
                kv_hash: node.kv().hash(),
            };
            self.violations.extend(self.safety.observe(view));
        }
    }

    fn record(&mut self, event: &Event) {
        let text = match event {
            Event::Deliver { to, message } => format!(
                "deliver {:?} {}->{to} term {}",
                message.get_msg_type(),
                message.from,
                message.term
            ),
            other => format!("{other:?}"),
        };
        self.trace_hash =
            crc32c::crc32c_append(self.trace_hash, &self.now.as_nanos().to_le_bytes());
        self.trace_hash = crc32c::crc32c_append(self.trace_hash, text.as_bytes());
        if let Some(trace) = &mut self.trace {
            let node = match event {
                Event::Deliver { to, .. } => Some(*to),
                Event::Crash(id) | Event::Restart(id) => Some(*id),
                _ => None,
            };
            let line =
                serde_json::json!({ "t_ns": self.now.as_nanos(), "node": node, "event": text });
            let _ = writeln!(trace, "{line}");
        }
    }

    /// The final checks: convergence, liveness, and the history against the final log.
    fn finish(mut self, end: Instant) -> Outcomes {
        let nodes: Vec<_> = self.hosts.values().flatten().map(|h| h.node()).collect();
        if nodes.len() as u64 != self.scenario.nodes {
            self.violations.push(Violation::new(
                "liveness",
                format!(
                    "only {} of {} members running at the end",
                    nodes.len(),
                    self.scenario.nodes
                ),
            ));
        }
        let states: BTreeSet<(u64, u32)> =
            nodes.iter().map(|n| (n.applied_index(), n.kv().hash())).collect();
        if states.len() > 1 {
            self.violations.push(Violation::new(
                "convergence",
                format!("members differ at the end: {states:?}"),
            ));
        }
        if self.acknowledged_after_heal == 0 {
            self.violations
                .push(Violation::new("liveness", "no operation succeeded after the faults healed"));
        }
        if let Some(node) = nodes.iter().max_by_key(|n| n.applied_index()) {
            match node.kv().events_since(1) {
                Ok(events) => {
                    self.violations.extend(crate::check::linearizability(&self.history, &events))
                }
                Err(error) => self
                    .violations
                    .push(Violation::new("history", format!("no full history: {error}"))),
            }
        }
        Outcomes {
            trace_hash: self.trace_hash,
            violations: self.violations,
            history: self.history,
            simulated: end - Instant::ZERO,
        }
    }
}
