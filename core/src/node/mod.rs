//! The replicated node: raft (tikv/raft-rs) plus the apply pipeline, behind a sans-IO interface.
//!
//! A driver owns time and IO. It feeds the node [`Input`]s through [`Node::handle`], then drains
//! [`Output`]s with [`Node::poll_output`] until it returns `None`, and wakes the node again at
//! [`Node::poll_timeout`] (waking it early is harmless). Outputs must be executed in the order
//! they come:
//! - [`Output::Persist`] carries a numbered batch of raft state (entries, hard state) that must be
//!   durable before the driver reports [`Input::Persisted`] with that number. Batches are
//!   persisted in order, and a report covers every batch up to its number.
//! - [`Output::Send`] carries a raft message for a peer. A message that depends on a batch (a
//!   vote, an append acknowledgement) is only emitted after that batch is reported persisted, so
//!   a driver cannot send it too early.
//! - [`Output::Respond`] answers a client request. Writes are answered once applied, which
//!   implies committed on a quorum and persisted here. Linearizable reads are answered after a
//!   ReadIndex round confirms leadership and the state machine has applied up to that index.
//! - [`Output::Watch`] carries a response for a watch stream; the driver reports delivered event
//!   responses with [`Input::WatchSent`], which is the streams' flow control.
//!
//! All randomness comes from the seeded ChaCha RNG in the config: raft-rs's own election-timeout
//! draw (from `thread_rng`) is overridden whenever raft resets it, so a seed replays bit for bit.

mod auth;
mod client;
mod lease;
mod maintenance;
mod membership;
mod ready;
mod restore;
mod storage;
mod watch;

use crate::api::{Credential, Error, Member, Request, Response, WatchRequest, WatchResponse};
use crate::apply::{MachineSettings, StateMachine};
use crate::mvcc::KvStore;
use crate::time::{Duration, Instant};
use crate::watch::{StreamId, WatchHub, WatchSettings};
pub use maintenance::{AutoCompaction, Compactor, ETCD_VERSION};
use raft::prelude::{Entry, HardState, Message, Snapshot};
use raft::storage::MemStorage;
use raft::{RawNode, StateRole};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::collections::{BTreeMap, VecDeque};
use storage::RaftStorage;

/// A client request's id, chosen by the driver; the response carries it back.
pub type ClientId = u64;

/// A node's settings. Defaults follow etcd's flags.
#[derive(Clone, Debug)]
pub struct NodeConfig {
    /// This member's raft id (non-zero).
    pub id: u64,
    /// The members the cluster started with (`--initial-cluster`), this one included.
    pub members: Vec<Member>,
    /// `--initial-cluster-token`, part of every member id etcd derives.
    pub cluster_token: String,
    /// `--initial-cluster-state existing`: join a running cluster and learn everything from
    /// its leader, instead of founding a new cluster of `members`.
    pub join_existing: bool,
    /// The cluster id responses carry (derived from the initial member ids, as etcd does).
    pub cluster_id: u64,
    /// `--heartbeat-interval`: one raft tick (etcd: 100 ms).
    pub heartbeat_interval: Duration,
    /// `--election-timeout` (etcd: 1000 ms); a whole number of heartbeat intervals.
    pub election_timeout: Duration,
    /// `--max-request-bytes` (etcd: 1.5 MiB).
    pub max_request_bytes: usize,
    /// `--max-txn-ops` (etcd: 128).
    pub max_txn_ops: usize,
    /// `--snapshot-count`: applied entries between state-machine snapshots (etcd: 100000).
    pub snapshot_count: u64,
    /// Entries kept in the raft log behind a snapshot for slow followers (etcd: 5000).
    pub snapshot_catch_up_entries: u64,
    /// `--experimental-lease-checkpoint-interval` when checkpoints are enabled
    /// (`--experimental-enable-lease-checkpoint`); `None`: off, etcd's default.
    pub lease_checkpoint_interval: Option<Duration>,
    /// `--experimental-watch-progress-notify-interval` (etcd: 10 min).
    pub watch_progress_interval: Duration,
    /// Event responses a watch stream may have outstanding before its watchers wait (etcd: 128).
    pub watch_stream_capacity: usize,
    /// `--quota-backend-bytes` (etcd: 0, the 2 GiB default; negative: no quota).
    pub quota_backend_bytes: i64,
    /// `--bcrypt-cost` (etcd: 10; 4 to 31).
    pub bcrypt_cost: u32,
    /// `--auto-compaction-mode` and `--auto-compaction-retention` (etcd: off).
    pub auto_compaction: Option<AutoCompaction>,
    /// `--experimental-corrupt-check-time` (etcd: off).
    pub corrupt_check_interval: Option<Duration>,
    /// `--experimental-initial-corrupt-check` (etcd: off).
    pub initial_corrupt_check: bool,
    /// `--advertise-client-urls`: published through the log once the member runs, so every
    /// member lists them (empty: nothing to publish).
    pub client_urls: Vec<String>,
    /// The seed of every random choice this node makes.
    pub seed: u64,
    /// Test-only: a deliberate bug to switch on. It does anything only when the crate is built
    /// with the `planted-bugs` feature (tests of the simulator and shrinker); no flag of the
    /// `stead` binary sets it.
    pub planted_bug: Option<PlantedBug>,
}

/// A deliberate bug (see [`NodeConfig::planted_bug`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PlantedBug {
    /// The leader serves linearizable reads from its own state without confirming it still
    /// leads (no ReadIndex round): a leader cut off from the others answers stale reads until
    /// it notices.
    LeaderLocalReads,
}

/// Whether this build can run planted bugs at all (the `planted-bugs` feature).
pub const PLANTED_BUGS_COMPILED: bool = cfg!(feature = "planted-bugs");

impl NodeConfig {
    /// A member of a cluster of `voters` (test and simulation ids; each gets a loopback peer
    /// URL), with etcd's defaults.
    pub fn new(id: u64, voters: Vec<u64>, seed: u64) -> NodeConfig {
        let members = voters
            .iter()
            .map(|&voter| Member {
                id: voter,
                name: format!("member-{voter}"),
                peer_urls: vec![format!("http://127.0.0.1:{}", 20000 + voter % 40000)],
                client_urls: Vec::new(),
                is_learner: false,
            })
            .collect();
        NodeConfig::with_members(id, members, seed)
    }

    /// A member of a cluster that starts with `members`, with etcd's defaults.
    pub fn with_members(id: u64, members: Vec<Member>, seed: u64) -> NodeConfig {
        let cluster_id = crate::apply::membership::cluster_id(members.iter().map(|m| m.id));
        NodeConfig {
            id,
            members,
            cluster_token: "etcd-cluster".into(),
            join_existing: false,
            cluster_id,
            heartbeat_interval: Duration::from_millis(100),
            election_timeout: Duration::from_millis(1000),
            max_request_bytes: 1536 * 1024,
            max_txn_ops: crate::mvcc::validate::DEFAULT_MAX_TXN_OPS,
            snapshot_count: 100_000,
            snapshot_catch_up_entries: 5000,
            lease_checkpoint_interval: None,
            watch_progress_interval: Duration::from_secs(600),
            watch_stream_capacity: 128,
            quota_backend_bytes: 0,
            bcrypt_cost: crate::auth::DEFAULT_BCRYPT_COST,
            auto_compaction: None,
            corrupt_check_interval: None,
            initial_corrupt_check: false,
            client_urls: Vec::new(),
            seed,
            planted_bug: None,
        }
    }

    /// Election timeout in raft ticks (at least 2 heartbeats).
    fn election_ticks(&self) -> usize {
        let ticks = self.election_timeout.as_nanos() / self.heartbeat_interval.as_nanos().max(1);
        (ticks as usize).max(2)
    }

    /// The state machine's settings: etcd's minimum lease TTL from the election timeout,
    /// lease checkpoints, and the quota.
    pub fn machine_settings(&self) -> MachineSettings {
        let min_ttl = crate::lease::min_ttl(self.election_ticks() as u64, self.heartbeat_interval);
        let quota = crate::apply::alarm::Quota::from_flag(self.quota_backend_bytes);
        MachineSettings { min_ttl, checkpoint_interval: self.lease_checkpoint_interval, quota }
    }

    /// The watch hub's settings.
    pub fn watch_settings(&self) -> WatchSettings {
        WatchSettings {
            max_request_bytes: self.max_request_bytes,
            progress_interval: self.watch_progress_interval,
            stream_capacity: self.watch_stream_capacity,
        }
    }

    /// etcd's request timeout: 5 s plus two election timeouts.
    pub fn request_timeout(&self) -> Duration {
        Duration::from_secs(5) + self.election_timeout.times(2)
    }
}

/// Something that happened to the node.
#[derive(Clone, Debug)]
pub enum Input {
    /// Time passed; `now` is this node's clock.
    Tick {
        /// The node's current time.
        now: Instant,
    },
    /// A raft message from a peer.
    Message(Message),
    /// A client request.
    Client {
        /// The driver's id for the request.
        id: ClientId,
        /// Who the client says it is (a token or a certificate's name), if anyone.
        credential: Option<Credential>,
        /// The request.
        request: Request,
    },
    /// Every persistence batch up to and including `batch` is durable.
    Persisted {
        /// The highest durable batch.
        batch: u64,
    },
    /// A client's message on a watch stream (the stream opens with its first message).
    Watch {
        /// The driver's id for the stream.
        stream: StreamId,
        /// Who the stream's client says it is, if anyone.
        credential: Option<Credential>,
        /// The message.
        request: WatchRequest,
    },
    /// The driver delivered `count` event responses of a watch stream.
    WatchSent {
        /// The stream.
        stream: StreamId,
        /// How many event responses went out.
        count: usize,
    },
    /// The client closed a watch stream.
    WatchClosed {
        /// The stream.
        stream: StreamId,
    },
}

/// Something the node needs done.
#[derive(Clone, Debug, PartialEq)]
pub enum Output {
    /// Send a raft message to a peer.
    Send {
        /// The peer's raft id.
        to: u64,
        /// The message.
        message: Message,
    },
    /// Make raft state durable, then report [`Input::Persisted`] with `batch`.
    Persist {
        /// The batch number.
        batch: u64,
        /// Entries to append (they may replace entries from their index on).
        entries: Vec<Entry>,
        /// The hard state to record, if it changed.
        hard_state: Option<HardState>,
        /// A snapshot to install, if the leader sent one.
        snapshot: Option<Snapshot>,
    },
    /// Save this state-machine snapshot (taken every `snapshot_count` applied entries), then
    /// record its position in the WAL; older WAL segments and snapshots may then be released.
    SaveSnapshot {
        /// The snapshot: metadata (index, term, membership) and the state machine's bytes.
        snapshot: Snapshot,
    },
    /// Answer a client.
    Respond {
        /// The driver's id for the request.
        id: ClientId,
        /// The answer.
        result: Result<Response, Error>,
    },
    /// Send a response on a watch stream. Event responses count against the stream's room
    /// until reported with [`Input::WatchSent`].
    Watch {
        /// The stream.
        stream: StreamId,
        /// The response.
        response: WatchResponse,
    },
    /// End a watch stream with an error (a learner or a removed member serves none).
    WatchEnded {
        /// The stream.
        stream: StreamId,
        /// Why.
        error: Error,
    },
}

/// What a member persisted, as recovery hands it back.
#[derive(Clone, Debug, Default)]
pub struct Recovered {
    /// The newest snapshot the log continues from, if any.
    pub snapshot: Option<Snapshot>,
    /// The latest hard state.
    pub hard_state: HardState,
    /// The log after the snapshot.
    pub entries: Vec<Entry>,
}

/// One member's replicated state machine. See the module documentation for how to drive it.
pub struct Node {
    config: NodeConfig,
    raw: RawNode<RaftStorage>,
    rng: ChaCha8Rng,
    machine: StateMachine,
    boot: u64,
    now: Instant,
    last_tick: Instant,
    outputs: VecDeque<Output>,
    /// Messages waiting for their persistence batch, by batch number.
    held_messages: BTreeMap<u64, Vec<Message>>,
    /// Term, role and leader when the election timeout was last drawn.
    last_role: (u64, StateRole, u64),
    /// When a snapshot was last sent to each peer still catching up from it.
    snapshots_sent: BTreeMap<u64, Instant>,
    /// Leadership transfers waiting to finish: (client, target, deadline).
    transfers: Vec<(ClientId, u64, Instant)>,
    /// Set once this member's own removal is applied: it takes no further part.
    removed: bool,
    requests: client::Requests,
    hub: WatchHub,
    /// Renewals of expired leases waiting for the revoke.
    held_renewals: Vec<lease::HeldRenewal>,
    /// When the leader next looks for expired leases and due checkpoints.
    next_lease_check: Instant,
    /// Counts up to make lease ids; starts at a seeded random value.
    lease_counter: u64,
    /// The persistence batch carrying a snapshot raft installed, until it is durable.
    snapshot_in_flight: Option<u64>,
    /// Requests waiting for the Authenticate entry their token names.
    parked: Vec<auth::Parked>,
    /// The state's size as allocated: its peak since the last defragment (Status's db size).
    allocated_bytes: u64,
    /// When this member last proposed an alarm of its own.
    alarm_proposed: Option<Instant>,
    /// A restarted member's initial corruption check is still to be proposed.
    initial_check_due: bool,
    /// When the leader next proposes a corruption check.
    next_corrupt_check: Option<Instant>,
    /// The auto-compaction schedule.
    compactor: Compactor,
    /// When this member last proposed its attributes.
    published_at: Option<Instant>,
}

impl Node {
    /// A fresh member of a new cluster (no persisted state), at time `now`.
    ///
    /// A founding member's log starts with one conf-change entry per initial member (term 1,
    /// committed), as etcd's does: the membership lives in the log, so a member that joins
    /// later rebuilds it from the log or a snapshot. The first output persists those entries.
    pub fn new(config: NodeConfig, now: Instant) -> Node {
        if config.join_existing {
            return Node::restart(config, now, Recovered::default())
                .expect("a joining member starts");
        }
        let entries = membership::bootstrap_entries(&config.members);
        let hard_state =
            HardState { term: 1, commit: entries.len() as u64, ..HardState::default() };
        let recovered =
            Recovered { snapshot: None, hard_state: hard_state.clone(), entries: entries.clone() };
        let mut node = Node::restart(config, now, recovered).expect("a founding member starts");
        node.initial_check_due = false;
        let bootstrap =
            Output::Persist { batch: 0, entries, hard_state: Some(hard_state), snapshot: None };
        node.outputs.push_front(bootstrap);
        node
    }

    /// A member restarting from what it persisted (as recovery hands it back): the state
    /// machine comes from the snapshot, and committed entries after it are applied again.
    /// Fails if the snapshot does not hold a valid state.
    pub fn restart(config: NodeConfig, now: Instant, recovered: Recovered) -> Result<Node, String> {
        let founding = config.members.iter().any(|m| m.id == config.id);
        assert!(
            config.id != 0 && (founding || config.join_existing),
            "a member with a non-zero id"
        );
        // etcd's initial check runs only on a member that restarts from its data.
        let had_state = recovered.snapshot.is_some() || recovered.hard_state.commit > 0;
        let (log, machine) = match &recovered.snapshot {
            Some(snapshot) => {
                let machine = StateMachine::restore(&snapshot.data, config.machine_settings())?;
                let index = snapshot.get_metadata().index;
                if machine.applied() != index {
                    return Err(format!(
                        "the snapshot at index {index} holds a state applied to {}",
                        machine.applied()
                    ));
                }
                let log = MemStorage::new();
                log.wl().apply_snapshot(snapshot.clone()).map_err(|e| e.to_string())?;
                (log, machine)
            }
            // Membership and raft's configuration come from the log (bootstrap entries) or a
            // leader, never from the configuration.
            None => (MemStorage::new(), StateMachine::new(Vec::new(), config.machine_settings())),
        };
        {
            let mut core = log.wl();
            core.append(&recovered.entries).map_err(|e| format!("persisted log: {e}"))?;
            core.set_hardstate(recovered.hard_state);
        }
        let mut storage = RaftStorage::new(log);
        if let Some(snapshot) = recovered.snapshot {
            storage.set_snapshot(snapshot);
        }
        let raft_config = raft::Config {
            id: config.id,
            election_tick: config.election_ticks(),
            heartbeat_tick: 1,
            max_size_per_msg: 1024 * 1024,
            max_inflight_msgs: 256,
            check_quorum: true,
            pre_vote: true,
            read_only_option: raft::ReadOnlyOption::Safe,
            applied: machine.applied(),
            ..raft::Config::default()
        };
        let logger = slog::Logger::root(slog::Discard, slog::o!());
        let raw = RawNode::new(&raft_config, storage, &logger).map_err(|e| e.to_string())?;
        let mut rng = ChaCha8Rng::seed_from_u64(config.seed);
        // The boot nonce tells this incarnation's requests from earlier ones. Drivers give each
        // start its own seed; mixing in what was recovered keeps the nonce fresh even when one
        // does not (a restart that recovered more state than the last one cannot repeat it).
        let recovered_state = {
            let log = raw.raft.raft_log.last_index();
            let hard = raw.raft.hard_state();
            [log, hard.term, hard.commit, hard.vote].iter().fold(0u64, |acc, v| mix(acc ^ v))
        };
        let boot = rng.gen::<u64>() ^ recovered_state;
        let lease_counter = rng.gen::<u64>() & 0xffff_ffff;
        let hub = WatchHub::new(config.watch_settings(), machine.kv().current_revision(), now);
        let initial_check_due = config.initial_corrupt_check && had_state;
        let compactor = Compactor::new(config.auto_compaction);
        let mut node = Node {
            config,
            raw,
            rng,
            machine,
            boot,
            now,
            last_tick: now,
            outputs: VecDeque::new(),
            held_messages: BTreeMap::new(),
            last_role: (0, StateRole::Follower, 0),
            snapshots_sent: BTreeMap::new(),
            transfers: Vec::new(),
            removed: false,
            requests: client::Requests::default(),
            hub,
            held_renewals: Vec::new(),
            next_lease_check: now,
            lease_counter,
            snapshot_in_flight: None,
            parked: Vec::new(),
            allocated_bytes: 0,
            alarm_proposed: None,
            initial_check_due,
            next_corrupt_check: None,
            compactor,
            published_at: None,
        };
        node.redraw_election_timeout();
        node.update_watch_identity();
        Ok(node)
    }

    /// Handles one input; then drain [`Node::poll_output`].
    pub fn handle(&mut self, input: Input) {
        if self.removed {
            // A removed member stops, as etcd's does; clients hear that it stopped.
            let stopped = crate::api::ServerError::Stopped.into();
            match input {
                Input::Client { id, .. } => self.respond(id, Err(stopped)),
                Input::Watch { stream, .. } => self.end_watch_stream(stream, stopped),
                _ => {}
            }
            return;
        }
        match input {
            Input::Tick { now } => self.tick(now),
            // Until an installed snapshot is durable, raft-rs cannot campaign (see `tick`); a
            // leader's hand-over request then fails and the leader tries again later.
            Input::Message(message)
                if self.snapshot_in_flight.is_some()
                    && message.get_msg_type() == raft::prelude::MessageType::MsgTimeoutNow => {}
            Input::Message(message) => {
                // A message from a peer that no longer exists or a stale term is not an error
                // worth surfacing; raft ignores what it must.
                let _ = self.raw.step(message);
            }
            Input::Client { id, credential, request } => {
                self.client_request(id, credential, request)
            }
            Input::Persisted { batch } => self.persisted(batch),
            Input::Watch { stream, credential, request } => {
                self.watch_request(stream, credential, request)
            }
            Input::WatchSent { stream, count } => self.hub.sent(stream, count),
            Input::WatchClosed { stream } => self.hub.close(stream),
        }
        self.after_raft_call();
    }

    /// The next output to execute, in order.
    #[must_use]
    pub fn poll_output(&mut self) -> Option<Output> {
        self.outputs.pop_front()
    }

    /// When the node next needs a [`Input::Tick`].
    #[must_use]
    pub fn poll_timeout(&self) -> Instant {
        self.last_tick + self.config.heartbeat_interval
    }

    /// This member's raft id.
    pub fn id(&self) -> u64 {
        self.config.id
    }

    /// The current raft term.
    pub fn term(&self) -> u64 {
        self.raw.raft.term
    }

    /// How long a client request may take before it is answered `request timed out`
    /// (etcd's `ReqTimeout`: 5 s plus two election timeouts).
    pub fn request_timeout(&self) -> Duration {
        self.config.request_timeout()
    }

    /// The leader this member knows of, if any.
    pub fn leader(&self) -> Option<u64> {
        Some(self.raw.raft.leader_id).filter(|&id| id != 0)
    }

    /// The cluster id responses carry.
    pub fn cluster_id(&self) -> u64 {
        self.config.cluster_id
    }

    /// Whether this member is a learner (receives the log, does not vote).
    pub fn is_learner(&self) -> bool {
        self.machine.membership().member(self.config.id).is_some_and(|m| m.is_learner)
    }

    /// Whether this member was removed from the cluster.
    pub fn is_removed(&self) -> bool {
        self.removed
    }

    /// The cluster's members, as this member has applied them.
    pub fn members(&self) -> Vec<Member> {
        self.machine.membership().members()
    }

    /// Whether this member is the leader.
    pub fn is_leader(&self) -> bool {
        self.raw.raft.state == StateRole::Leader
    }

    /// The index of the last applied entry.
    pub fn applied_index(&self) -> u64 {
        self.machine.applied()
    }

    /// A digest of every entry applied so far (index, term, data): members that applied the
    /// same sequence have the same digest at the same applied index.
    pub fn applied_digest(&self) -> u32 {
        self.machine.log_digest()
    }

    /// A digest of the whole replicated state (key space, leases, auth, alarms, membership).
    pub fn state_hash(&self) -> u32 {
        self.machine.hash()
    }

    /// The raised alarms, as applied so far.
    pub fn alarms(&self) -> Vec<crate::api::AlarmMember> {
        self.machine.alarms().all()
    }

    /// This member's counters and gauges of the moment, for its metrics.
    pub fn stats(&self) -> crate::stats::NodeStats {
        let kv = self.machine.kv();
        let in_use = self.machine.size_bytes();
        crate::stats::NodeStats {
            tally: self.machine.tally().clone(),
            id: self.config.id,
            has_leader: self.raw.raft.leader_id != 0,
            is_leader: self.is_leader(),
            is_learner: self.is_learner(),
            committed_index: self.raw.raft.raft_log.committed,
            applied_index: self.machine.applied(),
            proposals_pending: self.requests.pending_proposals() as u64,
            keys: kv.live_key_count() as u64,
            current_revision: kv.current_revision(),
            compact_revision: kv.compacted_revision().max(0),
            watchers: self.hub.watcher_count() as u64,
            slow_watchers: self.hub.behind_count() as u64,
            pending_events: self.hub.caught_up_events(),
            leases: self.machine.lessor().len() as u64,
            db_size: self.allocated_bytes.max(in_use),
            db_size_in_use: in_use,
            quota_bytes: match self.config.quota_backend_bytes {
                0 => crate::apply::alarm::DEFAULT_QUOTA_BYTES as i64,
                bytes => bytes,
            },
        }
    }

    /// The key space as applied so far.
    pub fn kv(&self) -> &KvStore {
        self.machine.kv()
    }

    /// The leases as applied so far.
    pub fn lessor(&self) -> &crate::lease::Lessor {
        self.machine.lessor()
    }

    /// Advances raft's logical clock by the heartbeat intervals that passed. A clock jump far
    /// ahead counts as at most two election timeouts, so one call stays bounded.
    fn tick(&mut self, now: Instant) {
        self.now = self.now.max(now);
        // Renewals handled since the last tick took effect by now (see `lease`).
        self.machine.lessor_mut().advance(self.now);
        let interval = self.config.heartbeat_interval;
        let max_ticks = 2 * self.config.election_ticks();
        let mut ticks = 0;
        while self.last_tick + interval <= self.now && ticks < max_ticks {
            // While an installed snapshot is not yet durable, raft-rs's applied index sits below
            // the log's first entry, and a campaign would read entries the snapshot replaced
            // (raft-rs panics). The election clock waits for the snapshot instead.
            if self.snapshot_in_flight.is_none() {
                self.raw.tick();
            }
            self.after_raft_call();
            self.last_tick = self.last_tick + interval;
            ticks += 1;
        }
        if self.last_tick + interval <= self.now {
            self.last_tick = self.now;
        }
        self.expire_requests();
        self.settle_held_renewals();
        self.lease_work();
        self.hub.tick(self.now);
        self.retry_requests();
        self.retry_stuck_snapshots();
        self.expire_transfers();
        self.maintenance_work();
        if !self.config.client_urls.is_empty() {
            self.publish_attributes();
        }
        // Raft may have asked for a snapshot the stored one cannot serve (see storage.rs).
        self.maybe_snapshot();
    }

    /// Runs after anything that may have changed raft's state: redraws the election timeout on
    /// a role change, and processes what raft has ready.
    fn after_raft_call(&mut self) {
        debug_assert!(
            self.snapshot_in_flight.is_some() || self.raft_applied_within_log(),
            "raft's applied index fell below the log"
        );
        let role = (self.raw.raft.term, self.raw.raft.state, self.raw.raft.leader_id);
        if role != self.last_role {
            if role.2 != self.last_role.2 {
                if self.requests.leader_changed() {
                    self.machine.tally_mut().read_indexes_failed += 1;
                }
                // etcd counts a change to a known leader, not the loss of one.
                if role.2 != 0 {
                    self.machine.tally_mut().leader_changes += 1;
                }
                self.finish_transfers();
            }
            self.maybe_demote_lessor();
            self.update_watch_identity();
            self.redraw_election_timeout();
        }
        self.process_ready();
    }

    /// Whether raft-rs's applied index still points into the log (or a snapshot is on its way):
    /// raft-rs reads the entries after it when campaigning.
    fn raft_applied_within_log(&self) -> bool {
        use raft::Storage as _;
        let log = &self.raw.raft.raft_log;
        let first = self.raw.store().first_index().unwrap_or(0);
        log.unstable.snapshot.is_some() || log.applied + 1 >= first
    }

    /// Draws the randomized election timeout from our RNG, replacing raft-rs's `thread_rng` draw.
    fn redraw_election_timeout(&mut self) {
        let ticks = self.config.election_ticks();
        let timeout = self.rng.gen_range(ticks..2 * ticks);
        self.raw.raft.set_randomized_election_timeout(timeout);
        self.last_role = (self.raw.raft.term, self.raw.raft.state, self.raw.raft.leader_id);
    }

    /// Answers `client`, if there is one (the node's own proposals have none).
    fn respond_to(&mut self, client: Option<ClientId>, result: Result<Response, Error>) {
        if let Some(client) = client {
            self.respond(client, result);
        }
    }

    /// Whether the planted bug `bug` is on (only in builds with the `planted-bugs` feature).
    fn planted(&self, bug: PlantedBug) -> bool {
        PLANTED_BUGS_COMPILED && self.config.planted_bug == Some(bug)
    }

    /// Fills in the header of a response with this member's identity and term.
    fn respond(&mut self, id: ClientId, mut result: Result<Response, Error>) {
        if let Ok(response) = &mut result {
            let header = response.header_mut();
            header.cluster_id = self.config.cluster_id;
            header.member_id = self.config.id;
            header.raft_term = self.raw.raft.term;
        }
        self.outputs.push_back(Output::Respond { id, result });
    }
}

/// splitmix64's finalizer: spreads every input bit over the whole word.
fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

#[cfg(test)]
mod tests;
