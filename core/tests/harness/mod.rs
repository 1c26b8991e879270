//! A deterministic in-process driver for a cluster of `Node`s: the seed of the simulator.
//!
//! Time moves in fixed steps. Each step ticks every running node, delivers the messages due,
//! executes every output (persisting batches at once into each node's in-memory "disk") and
//! checks two invariants: at most one leader per term, and equal key spaces at equal applied
//! indexes. Messages take 1–4 ms, may be dropped at a configured rate, and never cross a cut
//! link. Every output is folded into a trace hash, so two runs can be compared bit for bit.

#![allow(dead_code)]

use protobuf::Message as _;
use raft::prelude::{Entry, HardState, Message, Snapshot};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::collections::{BTreeMap, BTreeSet};
use stead_core::api::{
    Credential, Error, PutRequest, RangeRequest, Request, Response, WatchRequest, WatchResponse,
};
use stead_core::node::{ClientId, Input, Node, NodeConfig, Output, Recovered};
use stead_core::time::{Duration, Instant};
use stead_core::watch::StreamId;

/// One time step of the harness.
pub const STEP: Duration = Duration::from_millis(5);

/// What a node's driver has made durable.
#[derive(Clone, Debug, Default)]
pub struct Disk {
    pub snapshot: Option<Snapshot>,
    pub hard_state: HardState,
    pub entries: Vec<Entry>,
    /// How many snapshots were saved, and how many were installed from a leader.
    pub snapshots_saved: u64,
    pub snapshots_installed: u64,
}

impl Disk {
    fn persist(
        &mut self,
        entries: &[Entry],
        hard_state: Option<&HardState>,
        snapshot: Option<&Snapshot>,
    ) {
        if let Some(snapshot) = snapshot {
            self.snapshot = Some(snapshot.clone());
            self.entries.clear();
            self.snapshots_installed += 1;
        }
        if let Some(first) = entries.first() {
            self.entries.retain(|e| e.index < first.index);
            self.entries.extend_from_slice(entries);
        }
        if let Some(hard_state) = hard_state {
            self.hard_state = hard_state.clone();
        }
    }

    /// What recovery would hand back: the snapshot and the log after it.
    pub fn recovered(&self) -> Recovered {
        let floor = self.snapshot.as_ref().map_or(0, |s| s.get_metadata().index);
        let entries = self.entries.iter().filter(|e| e.index > floor).cloned().collect();
        Recovered { snapshot: self.snapshot.clone(), hard_state: self.hard_state.clone(), entries }
    }
}

pub struct Cluster {
    pub nodes: BTreeMap<u64, Node>,
    pub disks: BTreeMap<u64, Disk>,
    pub voters: Vec<u64>,
    pub now: Instant,
    pub drop_rate: f64,
    pub cut: BTreeSet<(u64, u64)>,
    /// Applied entries between snapshots, and entries kept behind one, for nodes (re)started
    /// from now on.
    pub snapshot_count: u64,
    pub catch_up_entries: u64,
    /// How many snapshot messages leaders sent.
    pub snapshots_sent: u64,
    /// While set, every snapshot message is lost.
    pub drop_snapshots: bool,
    pub responses: BTreeMap<ClientId, Result<Response, Error>>,
    /// Every watch response, by member and stream, in the order they came out.
    pub watch_responses: Vec<(u64, StreamId, WatchResponse)>,
    /// While set, event responses are not reported delivered (the stream fills up).
    pub hold_watch_acks: bool,
    /// Lease checkpoint interval for nodes (re)started from now on.
    pub lease_checkpoint_interval: Option<Duration>,
    /// Applied to every node's config (re)started from now on.
    pub tweak: fn(&mut NodeConfig),
    /// Whether members must hold equal state at equal applied indexes (off only for tests
    /// that corrupt a member on purpose).
    pub check_divergence: bool,
    rng: ChaCha8Rng,
    seed: u64,
    restarts: u64,
    in_flight: BTreeMap<(Instant, u64), (u64, Message)>,
    sequence: u64,
    next_client: ClientId,
    trace: u32,
    leaders: BTreeMap<u64, u64>,
    /// (applied-entry digest, whole-state hash, lease hash) at each applied index.
    hashes: BTreeMap<u64, (u32, u32, u32)>,
}

impl Cluster {
    /// A new cluster of `size` voters (ids 1..=size), all seeded from `seed`.
    pub fn new(size: u64, seed: u64) -> Cluster {
        let voters: Vec<u64> = (1..=size).collect();
        let mut cluster = Cluster {
            nodes: BTreeMap::new(),
            disks: BTreeMap::new(),
            voters: voters.clone(),
            now: Instant::ZERO,
            drop_rate: 0.0,
            cut: BTreeSet::new(),
            snapshot_count: 100_000,
            catch_up_entries: 5000,
            snapshots_sent: 0,
            drop_snapshots: false,
            responses: BTreeMap::new(),
            watch_responses: Vec::new(),
            hold_watch_acks: false,
            lease_checkpoint_interval: None,
            tweak: |_| {},
            check_divergence: true,
            rng: ChaCha8Rng::seed_from_u64(seed),
            seed,
            restarts: 0,
            in_flight: BTreeMap::new(),
            sequence: 0,
            next_client: 0,
            trace: 0,
            leaders: BTreeMap::new(),
            hashes: BTreeMap::new(),
        };
        for id in voters {
            let node = Node::new(cluster.config(id), cluster.now);
            cluster.nodes.insert(id, node);
            cluster.disks.insert(id, Disk::default());
        }
        cluster
    }

    fn config(&mut self, id: u64) -> NodeConfig {
        let seed = self.seed * 1000 + id + 100 * self.restarts;
        let mut config = NodeConfig::new(id, self.voters.clone(), seed);
        config.snapshot_count = self.snapshot_count;
        config.snapshot_catch_up_entries = self.catch_up_entries;
        config.lease_checkpoint_interval = self.lease_checkpoint_interval;
        // bcrypt's cheapest cost keeps auth tests fast.
        config.bcrypt_cost = 4;
        (self.tweak)(&mut config);
        config
    }

    /// Replaces every node with one using the current snapshot settings (before any traffic).
    pub fn reconfigure(&mut self) {
        for id in self.voters.clone() {
            let node = Node::new(self.config(id), self.now);
            self.nodes.insert(id, node);
        }
    }

    /// The trace hash of every output so far.
    pub fn trace_hash(&self) -> u32 {
        self.trace
    }

    /// Cuts every link to and from `id`.
    pub fn isolate(&mut self, id: u64) {
        for &other in &self.voters {
            if other != id {
                self.cut.insert((id, other));
                self.cut.insert((other, id));
            }
        }
    }

    /// Restores every link.
    pub fn heal(&mut self) {
        self.cut.clear();
    }

    /// Stops a node: its unpersisted state is lost, messages to it are dropped.
    pub fn crash(&mut self, id: u64) {
        self.nodes.remove(&id);
    }

    /// Starts a new member that joins the running cluster (`--initial-cluster-state existing`)
    /// and learns everything from the leader.
    pub fn join(&mut self, id: u64) {
        let cluster_id = self.nodes.values().next().expect("a running member").cluster_id();
        let mut config = self.config(id);
        (config.join_existing, config.members, config.cluster_id) = (true, Vec::new(), cluster_id);
        self.voters.push(id);
        self.disks.insert(id, Disk::default());
        let node = Node::new(config, self.now);
        self.nodes.insert(id, node);
        self.drain(id);
    }

    /// Restarts a crashed node from its disk.
    pub fn restart(&mut self, id: u64) {
        self.restarts += 1;
        let recovered = self.disks[&id].recovered();
        let config = self.config(id);
        let node =
            Node::restart(config, self.now, recovered).expect("a node restarts from its disk");
        self.nodes.insert(id, node);
    }

    /// The current leader, if exactly one running node believes it leads in the highest term.
    pub fn leader(&self) -> Option<u64> {
        let leaders: Vec<&Node> =
            self.nodes.values().filter(|n| n.is_leader() && !n.is_removed()).collect();
        let top = leaders.iter().map(|n| n.term()).max()?;
        let mut at_top = leaders.iter().filter(|n| n.term() == top);
        let leader = at_top.next()?;
        at_top.next().is_none().then_some(leader.id())
    }

    /// Sends a request to node `to`; returns its client id.
    pub fn request(&mut self, to: u64, request: Request) -> ClientId {
        self.request_with_token(to, None, request)
    }

    /// Sends a request carrying an auth token to node `to`; returns its client id.
    pub fn request_with_token(
        &mut self,
        to: u64,
        token: Option<&str>,
        request: Request,
    ) -> ClientId {
        let credential = token.map(|t| Credential::Token(t.to_string()));
        self.request_with_credential(to, credential, request)
    }

    /// Sends a request from whoever `credential` names to node `to`; returns its client id.
    pub fn request_with_credential(
        &mut self,
        to: u64,
        credential: Option<Credential>,
        request: Request,
    ) -> ClientId {
        self.next_client += 1;
        let id = self.next_client;
        if let Some(node) = self.nodes.get_mut(&to) {
            node.handle(Input::Client { id, credential, request });
            self.drain(to);
        }
        id
    }

    /// Sends `request` with `token` to `to` and waits for the answer.
    pub fn call_with_token(
        &mut self,
        to: u64,
        token: Option<&str>,
        request: Request,
    ) -> Result<Response, Error> {
        let client = self.request_with_token(to, token, request);
        self.answer(client, Duration::from_secs(20)).expect("a request is answered")
    }

    /// Sends `request` from whoever `credential` names to `to` and waits for the answer.
    pub fn call_with_credential(
        &mut self,
        to: u64,
        credential: Credential,
        request: Request,
    ) -> Result<Response, Error> {
        let client = self.request_with_credential(to, Some(credential), request);
        self.answer(client, Duration::from_secs(20)).expect("a request is answered")
    }

    /// Opens watch stream `stream` on `to` with `token`.
    pub fn watch_with_token(
        &mut self,
        to: u64,
        stream: StreamId,
        token: Option<&str>,
        request: WatchRequest,
    ) {
        if let Some(node) = self.nodes.get_mut(&to) {
            let credential = token.map(|t| Credential::Token(t.to_string()));
            node.handle(Input::Watch { stream, credential, request });
            self.drain(to);
        }
    }

    /// Sends a message on watch stream `stream` of node `to`.
    pub fn watch(&mut self, to: u64, stream: StreamId, request: WatchRequest) {
        if let Some(node) = self.nodes.get_mut(&to) {
            node.handle(Input::Watch { stream, credential: None, request });
            self.drain(to);
        }
    }

    /// Sends `request` to `to` and waits for the answer.
    pub fn call(&mut self, to: u64, request: Request) -> Result<Response, Error> {
        let client = self.request(to, request);
        self.answer(client, Duration::from_secs(20)).expect("a request is answered")
    }

    /// Runs until `done` holds or `limit` passes; returns whether it held.
    pub fn run_until(&mut self, limit: Duration, mut done: impl FnMut(&Cluster) -> bool) -> bool {
        let end = self.now + limit;
        while self.now < end {
            if done(self) {
                return true;
            }
            self.step();
        }
        done(self)
    }

    /// Runs for `span`.
    pub fn run_for(&mut self, span: Duration) {
        self.run_until(span, |_| false);
    }

    /// Waits for the answer to `client`.
    pub fn answer(&mut self, client: ClientId, limit: Duration) -> Option<Result<Response, Error>> {
        self.run_until(limit, |c| c.responses.contains_key(&client));
        self.responses.remove(&client)
    }

    /// Runs until some node leads; returns it.
    pub fn elect(&mut self) -> u64 {
        assert!(
            self.run_until(Duration::from_secs(10), |c| c.leader().is_some()),
            "a leader is elected"
        );
        self.leader().expect("checked")
    }

    /// Puts `key = value` through `to` and waits for the answer.
    pub fn put(&mut self, to: u64, key: &str, value: &str) -> Result<Response, Error> {
        let put = PutRequest { key: key.into(), value: value.into(), ..PutRequest::default() };
        let client = self.request(to, Request::Put(put));
        self.answer(client, Duration::from_secs(10)).expect("a put is answered")
    }

    /// Reads `key` through `to`; `None` if the key does not exist.
    pub fn get(&mut self, to: u64, key: &str, serializable: bool) -> Result<Option<String>, Error> {
        let range = RangeRequest { key: key.into(), serializable, ..RangeRequest::default() };
        let client = self.request(to, Request::Range(range));
        match self.answer(client, Duration::from_secs(10)).expect("a read is answered")? {
            Response::Range(range) => {
                Ok(range.kvs.first().map(|kv| String::from_utf8(kv.value.clone()).unwrap()))
            }
            other => panic!("a range answer, got {other:?}"),
        }
    }

    /// One time step.
    pub fn step(&mut self) {
        self.now = self.now + STEP;
        let ids: Vec<u64> = self.nodes.keys().copied().collect();
        for &id in &ids {
            self.nodes.get_mut(&id).expect("running").handle(Input::Tick { now: self.now });
            self.drain(id);
        }
        let due: Vec<(Instant, u64)> =
            self.in_flight.range(..=(self.now, u64::MAX)).map(|(k, _)| *k).collect();
        for key in due {
            let (from, message) = self.in_flight.remove(&key).expect("listed");
            let to = message.to;
            if let Some(node) = self.nodes.get_mut(&to) {
                let _ = from;
                node.handle(Input::Message(message));
                self.drain(to);
            }
        }
        self.check_invariants();
    }

    /// Executes every output of node `id`.
    fn drain(&mut self, id: u64) {
        loop {
            let mut persisted = None;
            while let Some(output) = self.nodes.get_mut(&id).and_then(Node::poll_output) {
                self.fold(id, &output);
                match output {
                    Output::Send { to, message } => self.transmit(id, to, message),
                    Output::Persist { batch, entries, hard_state, snapshot } => {
                        let disk = self.disks.get_mut(&id).expect("a disk");
                        disk.persist(&entries, hard_state.as_ref(), snapshot.as_ref());
                        persisted = Some(batch);
                    }
                    Output::SaveSnapshot { snapshot } => {
                        let disk = self.disks.get_mut(&id).expect("a disk");
                        disk.snapshot = Some(snapshot);
                        disk.snapshots_saved += 1;
                    }
                    Output::Respond { id: client, result } => {
                        self.responses.insert(client, result);
                    }
                    Output::Watch { stream, response } => {
                        let events = !response.events.is_empty();
                        self.watch_responses.push((id, stream, response));
                        if events && !self.hold_watch_acks {
                            let node = self.nodes.get_mut(&id).expect("running");
                            node.handle(Input::WatchSent { stream, count: 1 });
                        }
                    }
                    Output::WatchEnded { stream, error } => {
                        panic!("member {id} ended watch stream {stream}: {error}")
                    }
                }
            }
            let Some(batch) = persisted else { return };
            self.nodes.get_mut(&id).expect("running").handle(Input::Persisted { batch });
        }
    }

    fn transmit(&mut self, from: u64, to: u64, message: Message) {
        if message.get_msg_type() == raft::prelude::MessageType::MsgSnapshot {
            self.snapshots_sent += 1;
            if self.drop_snapshots {
                return;
            }
        }
        if self.cut.contains(&(from, to)) || self.rng.gen::<f64>() < self.drop_rate {
            return;
        }
        let latency = Duration::from_millis(self.rng.gen_range(1..=4));
        self.sequence += 1;
        self.in_flight.insert((self.now + latency, self.sequence), (from, message));
    }

    fn fold(&mut self, id: u64, output: &Output) {
        let bytes = match output {
            Output::Send { to, message } => {
                [vec![0, *to as u8], message.write_to_bytes().unwrap()].concat()
            }
            other => format!("{other:?}").into_bytes(),
        };
        self.trace = crc32c::crc32c_append(self.trace, &[id as u8]);
        self.trace = crc32c::crc32c_append(self.trace, &bytes);
    }

    fn check_invariants(&mut self) {
        for node in self.nodes.values() {
            if node.is_leader() {
                let leader = *self.leaders.entry(node.term()).or_insert(node.id());
                assert_eq!(leader, node.id(), "two leaders in term {}", node.term());
            }
            if !self.check_divergence {
                continue;
            }
            let state = (node.applied_digest(), node.state_hash(), lease_hash(node));
            let known = *self.hashes.entry(node.applied_index()).or_insert(state);
            assert_eq!(
                known,
                state,
                "node {} diverged at applied index {}",
                node.id(),
                node.applied_index()
            );
        }
    }
}

/// A hash of the replicated lease state: ids, TTLs, checkpoints and attached keys.
fn lease_hash(node: &Node) -> u32 {
    let lessor = node.lessor();
    lessor.ids().into_iter().fold(0, |hash, id| {
        let lease = lessor.get(id).expect("listed");
        let mut hash = crc32c::crc32c_append(hash, &id.to_le_bytes());
        hash = crc32c::crc32c_append(hash, &lease.ttl.to_le_bytes());
        hash = crc32c::crc32c_append(hash, &lease.remaining_ttl.to_le_bytes());
        lease.keys.iter().fold(hash, |hash, key| crc32c::crc32c_append(hash, key))
    })
}
