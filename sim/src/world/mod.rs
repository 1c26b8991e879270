//! The simulated world: hosts, a network, clients, faults and simulated time, in one
//! single-threaded discrete-event loop.
//!
//! Events sit in a queue ordered by (time, sequence); the loop pops the next one, jumps time to
//! it and handles it, so idle time costs nothing. Every member ticks every 25 ms of its own
//! clock, which runs at its own offset and drift from simulated time. Every handled event is
//! folded into the trace hash, and optionally written as a JSON line, so a seed replays bit for
//! bit and two runs can be compared. Raft safety (one leader per term; equal applied-log
//! digests and key spaces at equal applied indexes) is checked as the run goes.

mod churn;
mod clients;
mod faults;
mod leases;
mod operator;
mod watchers;

use crate::check::Violation;
use crate::history::History;
use crate::host::Host;
use crate::rng::{stream, Stream};
use crate::scenario::Scenario;
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::rc::Rc;
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
    /// A member's disk finishes an fsync (after its latency), for one incarnation of it.
    DiskSync(u64, u64),
    /// Some member's next disk write or sync fails with EIO.
    DiskFault,
    /// Some member's disk fills up.
    DiskFull,
    /// Some member's process pauses.
    Pause,
    /// A paused member resumes and handles the inputs that reached it meanwhile, in order (if
    /// the same process is still running: a restart drops what the old one had not handled).
    Resume(u64, u64),
    /// Some member's clock jumps.
    ClockJump,
    /// The operator compacts, lists the alarms and disarms them.
    Operator,
    /// The leader is asked to hand leadership to another member.
    Transfer,
    /// The membership changes by one step: add a learner, promote it, or remove a voter.
    Churn,
    /// The safety phase ends: faults stop, everything heals.
    EndSafety,
    /// Clients stop starting operations.
    StopClients,
    /// A watcher opens a session, from this revision if it resumes.
    WatchStart(usize, Option<i64>),
    /// A watcher acknowledges an event response: (member, incarnation, stream).
    WatchAck(u64, u64, u64),
    /// A watcher asks for progress on its stream.
    WatchProgress(u64),
    /// A watcher leaves its stream for another member.
    WatchHop(u64),
    /// Open watch sessions note their member's revision: they must reach it by the end.
    WatchMark,
    /// A member is asked to compact.
    Compact,
    /// A lease client sends its next request.
    LeaseNext(usize),
    /// A lease client gives up on a request.
    LeaseTimeout(u64),
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

/// How long past its end a run may go on for the members to finish applying what is in flight.
const CONVERGENCE_GRACE: Duration = Duration::from_millis(3000);

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
    /// Every watch session.
    pub watch_sessions: Vec<crate::check_watch::WatchSession>,
    /// Every lease the lease clients held.
    pub lease_lives: Vec<crate::check_lease::LeaseLife>,
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
    /// What each client last saw each key hold (what its compare-and-swaps expect).
    seen: BTreeMap<(usize, String), Option<String>>,
    next_value: u64,
    trace_hash: u32,
    trace: Option<Box<dyn Write>>,
    violations: Vec<Violation>,
    safety: crate::check::RaftSafety,
    safety_end: Instant,
    acknowledged_after_heal: usize,
    /// Members with a disk sync scheduled.
    syncing: BTreeSet<u64>,
    /// Members paused until the given time.
    paused_until: BTreeMap<u64, Instant>,
    /// Inputs that reached a paused member, in arrival order.
    deferred: BTreeMap<u64, std::collections::VecDeque<Input>>,
    /// Members whose disk was made to fail, so a store error there is expected.
    disk_trouble: BTreeSet<u64>,
    /// Numbers the world's own requests (transfers, membership changes) and new members' URLs.
    admin_requests: u64,
    /// Current members (running or down), removed ones excluded.
    members: BTreeSet<u64>,
    /// Members that joined the running cluster (they restart as joiners).
    joined: BTreeSet<u64>,
    /// The learner waiting for promotion, if any.
    learner: Option<u64>,
    /// Membership requests in flight, by request id.
    admin: BTreeMap<u64, churn::Admin>,
    /// Members the world asked to remove.
    removal_requested: BTreeSet<u64>,
    /// How many times each member's process was started again.
    incarnations: BTreeMap<u64, u64>,
    /// Every watch session so far.
    watch_sessions: Vec<crate::check_watch::WatchSession>,
    /// Watch streams by id.
    streams: BTreeMap<u64, watchers::Stream>,
    next_stream: u64,
    /// Reads to retry, by client.
    read_retries: BTreeMap<usize, crate::history::OpKind>,
    /// Watchers whose next session starts over from an old revision.
    watch_restarts: BTreeSet<usize>,
    lease_clients: Vec<leases::LeaseClient>,
    /// Every lease a lease client was granted.
    lease_lives: Vec<crate::check_lease::LeaseLife>,
    lease_pending: BTreeMap<u64, leases::Pending>,
    next_lease_request: u64,
    /// Every forward clock jump, for the lease checker's skew bound.
    clock_jumps: Vec<(Instant, Duration)>,
    /// Every event the cluster applied, in revision order, recorded as members applied them
    /// (compaction later removes history from the members, not from here).
    log: Vec<stead_core::api::Event>,
    /// The highest revision in `log`.
    logged_revision: i64,
    /// The highest revision the world asked a member to compact at.
    compacted: i64,
    /// Each member's applied index at the last tick, and its key-space hash there if taken.
    kv_hashes: BTreeMap<u64, (u64, Option<u32>)>,
    /// Ticks so far.
    ticks: u64,
    /// Writes refused with `database space exceeded`.
    nospace_refusals: u64,
    /// Alarms the operator disarmed.
    disarmed: Vec<stead_core::api::AlarmMember>,
    /// Occurrences of each fault kind so far (applied or not).
    fault_counts: BTreeMap<&'static str, u32>,
    /// Every fault applied, in order (shared, so it survives a panicking run).
    fault_log: Rc<RefCell<Vec<crate::FaultRecord>>>,
}

impl World {
    /// A world for `scenario` seeded with `seed`; `trace` receives one JSON line per event.
    pub fn new(scenario: Scenario, seed: u64, trace: Option<Box<dyn Write>>) -> World {
        let scenario = if scenario.swarm {
            scenario.swarm_mix(&mut stream(seed, Stream::Swarm))
        } else {
            scenario
        };
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
            seen: BTreeMap::new(),
            next_value: 0,
            trace_hash: 0,
            trace,
            violations: Vec::new(),
            safety: crate::check::RaftSafety::default(),
            safety_end: Instant::ZERO + Duration::from_millis(scenario.safety_ms),
            acknowledged_after_heal: 0,
            syncing: BTreeSet::new(),
            paused_until: BTreeMap::new(),
            deferred: BTreeMap::new(),
            disk_trouble: BTreeSet::new(),
            admin_requests: 0,
            members: BTreeSet::new(),
            joined: BTreeSet::new(),
            learner: None,
            admin: BTreeMap::new(),
            removal_requested: BTreeSet::new(),
            incarnations: BTreeMap::new(),
            watch_sessions: Vec::new(),
            streams: BTreeMap::new(),
            next_stream: 0,
            watch_restarts: BTreeSet::new(),
            read_retries: BTreeMap::new(),
            lease_clients: Vec::new(),
            lease_lives: Vec::new(),
            lease_pending: BTreeMap::new(),
            next_lease_request: 0,
            clock_jumps: Vec::new(),
            log: Vec::new(),
            logged_revision: 1,
            compacted: 0,
            kv_hashes: BTreeMap::new(),
            ticks: 0,
            nospace_refusals: 0,
            disarmed: Vec::new(),
            fault_counts: BTreeMap::new(),
            fault_log: Rc::new(RefCell::new(Vec::new())),
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
            world.members.insert(id);
        }
        world
    }

    /// Records every applied fault into `log` as well.
    pub fn with_fault_log(mut self, log: Rc<RefCell<Vec<crate::FaultRecord>>>) -> World {
        self.fault_log = log;
        self
    }

    fn config(&mut self, id: u64) -> NodeConfig {
        let members: Vec<u64> = (1..=self.scenario.nodes).collect();
        let mut config = NodeConfig::new(id, members, self.node_seeds.gen());
        config.snapshot_count = self.scenario.snapshot_count;
        config.snapshot_catch_up_entries = self.scenario.snapshot_count / 2;
        config.join_existing = self.joined.contains(&id);
        config.watch_stream_capacity = self.scenario.watch.stream_capacity.max(1);
        config.heartbeat_interval = Duration::from_millis(self.scenario.heartbeat_ms);
        config.election_timeout = Duration::from_millis(self.scenario.election_timeout_ms);
        config.quota_backend_bytes = self.scenario.quota.bytes;
        config.bcrypt_cost = 4;
        if self.scenario.planted_bug.is_some() {
            config.planted_bug = Some(stead_core::node::PlantedBug::LeaderLocalReads);
        }
        if self.scenario.corrupt_check_ms > 0 {
            config.corrupt_check_interval =
                Some(Duration::from_millis(self.scenario.corrupt_check_ms));
            config.initial_corrupt_check = true;
        }
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
        for watcher in 0..scenario.watch.watchers {
            self.at(
                Duration::from_millis(5 + watcher as u64 * 7),
                Event::WatchStart(watcher, None),
            );
        }
        self.lease_clients_start();
        if scenario.partitions.every_ms > 0 {
            let first = self.faults.gen_range(0..=scenario.partitions.every_ms);
            self.at(Duration::from_millis(first), Event::Partition);
        }
        if scenario.crashes.every_ms > 0 {
            let first = self.faults.gen_range(0..=scenario.crashes.every_ms);
            let victim = self.faults.gen_range(1..=scenario.nodes);
            self.at(Duration::from_millis(first), Event::Crash(victim));
        }
        let faults = [
            (scenario.disk.eio_every_ms, Event::DiskFault),
            (scenario.disk.enospc_every_ms, Event::DiskFull),
            (scenario.pauses.every_ms, Event::Pause),
            (scenario.clocks.jump_every_ms, Event::ClockJump),
            (scenario.leadership.transfer_every_ms, Event::Transfer),
            (scenario.membership.churn_every_ms, Event::Churn),
            (scenario.compaction.every_ms, Event::Compact),
            (scenario.quota.operator_every_ms, Event::Operator),
        ];
        for (every_ms, event) in faults {
            self.schedule_fault(every_ms, event);
        }
        self.at(Duration::from_millis(scenario.safety_ms), Event::EndSafety);
        // Clients stop early enough for the last writes to settle everywhere, including the
        // revokes of leases their clients walked away from.
        let settle_ms = if scenario.leases.clients > 0 {
            3_000 + 2_000 + scenario.leases.ttl_s as u64 * 1000
        } else {
            3_000
        };
        let quiet = Duration::from_millis(
            scenario.liveness_ms.saturating_sub(settle_ms).max(scenario.liveness_ms / 2),
        );
        self.at(Duration::from_millis(scenario.safety_ms) + quiet, Event::StopClients);
        let mark = scenario.safety_ms + scenario.liveness_ms.saturating_sub(1000);
        self.at(Duration::from_millis(mark), Event::WatchMark);
        self.run_until(end, |_| false);
        // The members' own periodic proposals (corruption checks, lease work) may be in flight
        // at the end; give them a moment to settle, never more than the grace.
        self.run_until(end + CONVERGENCE_GRACE, World::applied_alike);
        self.finish(end)
    }

    /// Handles events in time order until `end`, or until `done` holds between two events.
    fn run_until(&mut self, end: Instant, done: fn(&World) -> bool) {
        while let Some((&(time, sequence), _)) = self.queue.first_key_value() {
            if time > end || done(self) {
                break;
            }
            let event = self.queue.remove(&(time, sequence)).expect("present");
            self.now = time;
            self.record(&event);
            self.handle(event);
        }
    }

    /// Whether every running member has applied the same number of entries.
    fn applied_alike(&self) -> bool {
        let mut applied = self.hosts.values().flatten().map(|h| h.node().applied_index());
        let first = applied.next();
        applied.all(|index| Some(index) == first)
    }

    fn handle(&mut self, event: Event) {
        match event {
            Event::Tick => {
                for id in self.hosts.keys().copied().collect::<Vec<_>>() {
                    let now = self.clocks[&id].at(self.now);
                    self.input(id, Input::Tick { now });
                }
                self.check_raft_safety();
                self.drop_removed_members();
                self.watch_check_streams();
                self.at(TICK, Event::Tick);
            }
            Event::Deliver { to, message } => self.input(to, Input::Message(message)),
            Event::ClientNext(client) => self.client_next(client),
            Event::ClientTimeout(op) => self.client_timeout(op),
            Event::Crash(id) => self.crash(id),
            Event::Restart(id) => self.restart(id),
            Event::Partition => self.partition(),
            Event::Heal => self.cut.clear(),
            Event::DiskSync(id, incarnation) => self.disk_sync(id, incarnation),
            Event::DiskFault => self.disk_fault(),
            Event::DiskFull => self.disk_full(),
            Event::Pause => self.pause(),
            Event::Resume(id, incarnation) => self.resume(id, incarnation),
            Event::ClockJump => self.clock_jump(),
            Event::Transfer => self.transfer(),
            Event::Churn => self.churn(),
            Event::EndSafety => self.end_safety(),
            Event::StopClients => self.clients_on = false,
            Event::WatchStart(watcher, from) => self.watch_start(watcher, from),
            Event::WatchAck(member, incarnation, stream) => {
                self.watch_ack(member, incarnation, stream)
            }
            Event::WatchProgress(stream) => self.watch_progress(stream),
            Event::WatchHop(stream) => self.watch_hop(stream),
            Event::WatchMark => self.watch_mark_open_sessions(),
            Event::LeaseNext(client) => self.lease_next(client),
            Event::Compact => self.compact(),
            Event::Operator => self.operate(),
            Event::LeaseTimeout(id) => self.lease_timeout(id),
        }
    }

    /// Feeds a running member an input and routes what leaves it. A paused member queues the
    /// input and handles the queue, in order, when it resumes (ticks are simply missed); a
    /// stream's messages therefore never overtake each other.
    fn input(&mut self, id: u64, input: Input) {
        if let Some(&until) = self.paused_until.get(&id).filter(|until| **until > self.now) {
            if !matches!(input, Input::Tick { .. }) {
                let queue = self.deferred.entry(id).or_default();
                if queue.is_empty() {
                    let incarnation = self.incarnation(id);
                    self.sequence += 1;
                    self.queue.insert((until, self.sequence), Event::Resume(id, incarnation));
                }
                self.deferred.entry(id).or_default().push_back(input);
            }
            return;
        }
        self.handle_deferred(id);
        self.deliver(id, input);
    }

    /// A paused member's pause ended (or was extended: then it waits again).
    fn resume(&mut self, id: u64, incarnation: u64) {
        if self.incarnation(id) != incarnation {
            return;
        }
        if let Some(&until) = self.paused_until.get(&id).filter(|until| **until > self.now) {
            self.sequence += 1;
            self.queue.insert((until, self.sequence), Event::Resume(id, incarnation));
            return;
        }
        self.handle_deferred(id);
    }

    /// Handles the inputs a member queued while paused, oldest first.
    fn handle_deferred(&mut self, id: u64) {
        while let Some(input) = self.deferred.get_mut(&id).and_then(|queue| queue.pop_front()) {
            self.deliver(id, input);
        }
    }

    fn deliver(&mut self, id: u64, input: Input) {
        let Some(Some(host)) = self.hosts.get_mut(&id) else { return };
        let result = host.handle(input);
        self.after_host(id, result);
    }

    /// Routes what a host produced, schedules its next fsync, or stops it if its store failed.
    fn after_host(&mut self, id: u64, result: Result<Vec<Output>, crate::host::HostError>) {
        let outputs = match result {
            Ok(outputs) => outputs,
            Err(error) => return self.host_failed(id, error),
        };
        self.record_applied(id);
        let unsynced = self.hosts.get(&id).and_then(Option::as_ref).is_some_and(|h| h.unsynced());
        if unsynced && self.syncing.insert(id) {
            let disk = &self.scenario.disk;
            let latency = self.faults.gen_range(disk.latency_ms_min..=disk.latency_ms_max);
            let incarnation = self.incarnation(id);
            self.at(Duration::from_millis(latency), Event::DiskSync(id, incarnation));
        }
        for output in outputs {
            match output {
                Output::Send { to, message } => self.transmit(id, to, message),
                Output::Respond { id: op, result } => self.answer(op as usize, result),
                Output::Persist { .. } | Output::SaveSnapshot { .. } => {
                    unreachable!("the host persists")
                }
                Output::Watch { stream, response } => self.watch_response(id, stream, response),
                Output::WatchEnded { stream, .. } => self.watch_end(stream),
            }
        }
    }

    /// A store error stops the member, as a WAL failure stops etcd. Expected where a disk
    /// fault was injected (the member restarts later); anywhere else it is a violation.
    fn host_failed(&mut self, id: u64, error: crate::host::HostError) {
        self.hosts.insert(id, None);
        self.syncing.remove(&id);
        use stead_store::StoreError;
        let injected = matches!(
            error,
            crate::host::HostError::Store(StoreError::Io { .. } | StoreError::Poisoned(_))
        );
        if injected && self.disk_trouble.contains(&id) {
            self.at(Duration::from_millis(self.scenario.disk.down_ms.max(1)), Event::Restart(id));
        } else {
            self.violations.push(Violation::new("store", format!("member {id}: {error}")));
        }
    }

    fn disk_sync(&mut self, id: u64, incarnation: u64) {
        if self.incarnation(id) != incarnation {
            return; // Scheduled for a process that has since died.
        }
        self.syncing.remove(&id);
        if let Some(&until) = self.paused_until.get(&id).filter(|until| **until > self.now) {
            self.syncing.insert(id);
            self.sequence += 1;
            self.queue.insert((until, self.sequence), Event::DiskSync(id, incarnation));
            return;
        }
        let Some(Some(host)) = self.hosts.get_mut(&id) else { return };
        let result = host.sync();
        self.after_host(id, result);
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

    /// The next number of the world's own sequence (request ids, new members' URLs).
    fn next_admin_number(&mut self) -> u64 {
        self.admin_requests += 1;
        self.admin_requests
    }

    /// A request id for the world's own requests, from the top of the id space, where client
    /// operations (numbered from 0) never reach.
    fn admin_request_id(&mut self) -> u64 {
        u64::MAX - self.next_admin_number()
    }

    /// How many times the member's process was started again.
    fn incarnation(&self, id: u64) -> u64 {
        self.incarnations.get(&id).copied().unwrap_or(0)
    }

    fn restart(&mut self, id: u64) {
        if matches!(self.hosts.get(&id), Some(Some(_))) || !self.members.contains(&id) {
            return;
        }
        self.restarts += 1;
        *self.incarnations.entry(id).or_default() += 1;
        self.syncing.remove(&id);
        self.paused_until.remove(&id);
        self.deferred.remove(&id);
        self.kv_hashes.remove(&id);
        self.disk_trouble.remove(&id);
        self.disks[&id].clear_faults();
        self.disks[&id].set_capacity(None);
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

    fn end_safety(&mut self) {
        self.faults_on = false;
        self.cut.clear();
        self.paused_until.clear();
        self.disk_trouble.clear();
        for disk in self.disks.values() {
            disk.clear_faults();
            disk.set_capacity(None);
        }
        for id in self.members.clone() {
            self.restart(id);
        }
    }

    /// One leader per term; equal applied-log digests and key spaces at equal applied indexes.
    /// Hashing the whole key space every tick dominated the run time, so a member's key space
    /// is hashed once per applied index at most: when that index stood still since the last tick
    /// (members at rest are compared) or on every eighth tick. Applied-log digests are compared
    /// every tick.
    fn check_raft_safety(&mut self) {
        self.ticks += 1;
        let sample = self.ticks % 8 == 0;
        for (&id, host) in &self.hosts {
            let Some(host) = host else { continue };
            let node = host.node();
            let applied_index = node.applied_index();
            let kv_hash = match self.kv_hashes.get(&id) {
                Some(&(index, Some(hash))) if index == applied_index => Some(hash),
                Some(&(index, None)) if index == applied_index => Some(node.kv().hash()),
                _ => sample.then(|| node.kv().hash()),
            };
            self.kv_hashes.insert(id, (applied_index, kv_hash));
            let view = crate::check::MemberView {
                id: node.id(),
                term: node.term(),
                leading: node.is_leader() && !node.is_removed(),
                applied_index,
                applied_digest: node.applied_digest(),
                kv_hash,
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
            Event::Resume(id, incarnation) => format!("resume {id}.{incarnation}"),
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

    /// Records the events member `id` applied beyond what is recorded. Members agree on every
    /// revision (raft safety checks that), so whichever applies a revision first records it.
    fn record_applied(&mut self, id: u64) {
        let Some(Some(host)) = self.hosts.get(&id) else { return };
        let kv = host.node().kv();
        let current = kv.current_revision();
        if current > self.logged_revision {
            if let Ok(events) = kv.events_between(self.logged_revision + 1, current + 1) {
                self.log.extend(events);
                self.logged_revision = current;
            }
        }
    }

    /// The final checks: convergence, liveness, and the history against the final log.
    fn finish(mut self, end: Instant) -> Outcomes {
        let nodes: Vec<_> = self.hosts.values().flatten().map(|h| h.node()).collect();
        if nodes.len() != self.members.len() {
            self.violations.push(Violation::new(
                "liveness",
                format!(
                    "only {} of {} members running at the end",
                    nodes.len(),
                    self.members.len()
                ),
            ));
        }
        let states: BTreeSet<(u64, u32)> =
            nodes.iter().map(|n| (n.applied_index(), n.state_hash())).collect();
        if states.len() > 1 {
            self.violations.push(Violation::new(
                "convergence",
                format!("members differ at the end: {states:?}"),
            ));
        }
        let alarms = self.alarm_violations(&nodes);
        self.violations.extend(alarms);
        if self.acknowledged_after_heal == 0 {
            self.violations
                .push(Violation::new("liveness", "no write succeeded after the faults healed"));
        }
        if let Some(node) = nodes.iter().max_by_key(|n| n.applied_index()) {
            let compacted = node.kv().compacted_revision();
            let recorded = self.log.iter().filter(|e| e.kv.mod_revision > compacted);
            let recorded: Vec<_> = recorded.cloned().collect();
            match node.kv().events_since(compacted + 1) {
                Ok(tail) if tail != recorded => self.violations.push(Violation::new(
                    "history",
                    format!(
                        "the recorded history ({} events) and the final log ({} since revision \
                         {compacted}) differ",
                        recorded.len(),
                        tail.len()
                    ),
                )),
                Ok(_) => {}
                Err(error) => self.violations.push(Violation::new("history", error.to_string())),
            }
            let revisions: BTreeSet<i64> = self.log.iter().map(|e| e.kv.mod_revision).collect();
            let last = node.kv().current_revision();
            if revisions.len() as i64 != last - 1 {
                let detail = format!("recorded {} of {} revisions", revisions.len(), last - 1);
                self.violations.push(Violation::new("history", detail));
            }
            let events = std::mem::take(&mut self.log);
            // The KV workload's keys; lease clients' keys have their own checker.
            let kv_events: Vec<_> =
                events.iter().filter(|e| e.kv.key.starts_with(b"key")).cloned().collect();
            let history = &self.history;
            self.violations.extend(crate::check::linearizability(history, &kv_events));
            let sessions = &self.watch_sessions;
            self.violations.extend(crate::check_watch::check(sessions, &events));
            let leader = nodes.iter().find(|n| n.is_leader()).unwrap_or(node);
            let final_state = crate::check_lease::Final {
                end,
                faults_stopped: self.safety_end,
                election_timeout: Duration::from_millis(self.scenario.election_timeout_ms),
                events: &events,
                leases: leader.lessor().ids(),
            };
            let skew = crate::check_lease::Skew {
                max_drift_ppm: self.scenario.clocks.max_drift_ppm,
                jumps: self.clock_jumps.clone(),
            };
            let lives = &self.lease_lives;
            self.violations.extend(crate::check_lease::check(lives, &skew, &final_state));
        }
        Outcomes {
            trace_hash: self.trace_hash,
            violations: self.violations,
            history: self.history,
            simulated: end - Instant::ZERO,
            watch_sessions: self.watch_sessions,
            lease_lives: self.lease_lives,
        }
    }
}
