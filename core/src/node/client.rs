//! Client requests: admission, proposals, linearizable reads and timeouts.
//!
//! Writes follow etcd's path. Validate; refuse when more than 5000 committed entries wait to be
//! applied (`too many requests`) or the encoded request exceeds `--max-request-bytes`; propose
//! (raft forwards a follower's proposal to the leader); answer when the entry is applied. A
//! proposal that raft drops at once (no leader known) is retried on each tick. A write that is
//! accepted is never proposed again, so it cannot apply twice. A membership change a follower
//! forwarded is proposed again every election timeout until it applies: the leader drops a
//! forwarded conf change silently while another is pending, and a copy that applies after the
//! first is refused at apply (the member exists, or is gone), so it changes nothing.
//!
//! Linearizable reads are batched as in etcd's `linearizableReadLoop`. Every read that arrives
//! while no ReadIndex round is in flight joins the next round. One round confirms leadership for
//! all of them, and they are served once the state machine has applied up to the confirmed index.
//! raft-rs drops a ReadIndex request silently when it cannot serve it, so a round with no answer
//! after a retry interval is started again with a new context (never reusing an index). A leader
//! change answers the reads of the round in flight with `leader changed`, as etcd does.
//! Serializable reads are served locally at once. Everything times out after etcd's request
//! timeout. Lease KeepAlive and TimeToLive ride the same rounds on the leader (see `lease.rs`);
//! a lease listing is served locally.

use super::auth::Caller;
use super::{ClientId, Node};
use crate::api::{
    AuthInfo, AuthRequest, ClusterError, ClusterRequest, Credential, Error, Request, RequestOp,
    Response, ServerError,
};
use crate::apply::{self, InternalRequest, RequestHeader};
use crate::mvcc::is_read_only;
use crate::time::Instant;
use raft::ReadState;
use std::collections::BTreeMap;

/// etcd's limit on committed but unapplied entries before writes are refused.
const UNAPPLIED_ENTRIES_MAX: u64 = 5000;
/// Heartbeat intervals to wait for a ReadIndex answer before asking again (etcd 3.5: 500 ms).
const READ_RETRY_HEARTBEATS: u64 = 5;

/// What a proposal asks raft for.
pub(super) enum ProposalKind {
    /// A normal entry; the proposal's data is an `InternalRequest`.
    Entry,
    /// A membership conf change; the proposal's data is its context.
    ConfChange(raft::prelude::ConfChangeV2),
}

/// A write waiting to be applied.
pub(super) struct Proposal {
    /// The client to answer; `None` for the node's own proposals (lease revokes, checkpoints).
    client: Option<ClientId>,
    deadline: Instant,
    data: Vec<u8>,
    kind: ProposalKind,
    /// When raft accepted it (`None`: not yet, or to be proposed again).
    proposed_at: Option<Instant>,
}

impl Proposal {
    /// A proposal not yet handed to raft.
    pub(super) fn new(
        client: Option<ClientId>,
        deadline: Instant,
        data: Vec<u8>,
        kind: ProposalKind,
    ) -> Self {
        Proposal { client, deadline, data, kind, proposed_at: None }
    }
}

/// A linearizable read waiting for its ReadIndex round.
struct WaitingRead {
    client: ClientId,
    request: Request,
    caller: Option<AuthInfo>,
    deadline: Instant,
}

/// A ReadIndex round raft has been asked for.
struct ReadRound {
    context: Vec<u8>,
    started: Instant,
    reads: Vec<WaitingRead>,
}

/// Every client request the node is still working on.
#[derive(Default)]
pub(super) struct Requests {
    next_sequence: u64,
    proposals: BTreeMap<u64, Proposal>,
    waiting_reads: Vec<WaitingRead>,
    round: Option<ReadRound>,
    /// Rounds confirmed at a read index, waiting for the state machine to catch up.
    confirmed: Vec<(u64, Vec<WaitingRead>)>,
    /// Reads to answer with `leader changed` at the next chance.
    abandoned: Vec<WaitingRead>,
}

impl Requests {
    /// A sequence number no request of this boot used before.
    pub(super) fn next_sequence(&mut self) -> u64 {
        self.next_sequence += 1;
        self.next_sequence
    }

    /// Tracks a proposal until it is applied or times out.
    pub(super) fn insert(&mut self, sequence: u64, proposal: Proposal) {
        self.proposals.insert(sequence, proposal);
    }

    /// The client waiting for the proposal `sequence`, which was just applied.
    pub(super) fn proposal_applied(&mut self, sequence: u64) -> Option<ClientId> {
        self.proposals.remove(&sequence).and_then(|proposal| proposal.client)
    }

    /// A ReadIndex round came back: its reads may be served once `index` is applied.
    pub(super) fn read_index_confirmed(&mut self, state: ReadState) {
        if self.round.as_ref().is_some_and(|round| round.context == state.request_ctx) {
            let round = self.round.take().expect("checked");
            self.confirmed.push((state.index, round.reads));
        }
    }

    /// The leader changed: the round in flight can no longer be trusted.
    /// Returns whether a round was abandoned.
    pub(super) fn leader_changed(&mut self) -> bool {
        let round = self.round.take();
        let abandoned = round.is_some();
        if let Some(round) = round {
            self.abandoned.extend(round.reads);
        }
        abandoned
    }

    /// Proposals not yet applied or failed.
    pub(super) fn pending_proposals(&self) -> usize {
        self.proposals.len()
    }
}

/// Whether a read may be served locally without a ReadIndex round.
fn is_serializable(request: &Request) -> bool {
    match request {
        Request::Range(range) => range.serializable,
        Request::Txn(txn) => txn.success.iter().chain(&txn.failure).all(|op| match op {
            RequestOp::Range(range) => range.serializable,
            _ => false,
        }),
        _ => false,
    }
}

impl Node {
    /// Admits a client request from whoever `credential` names.
    pub(super) fn client_request(
        &mut self,
        client: ClientId,
        credential: Option<Credential>,
        request: Request,
    ) {
        if request.is_internal() {
            return self.respond(client, Err(ServerError::InternalOnly.into()));
        }
        if let Err(error) = apply::validate(&request, self.config.max_txn_ops) {
            return self.respond(client, Err(error.into()));
        }
        // etcd's interceptor: a learner serves only serializable ranges and Status.
        let learner_may_serve = match &request {
            Request::Range(range) => range.serializable,
            Request::Maintenance(crate::api::MaintenanceRequest::Status) => true,
            _ => false,
        };
        if self.is_learner() && !learner_may_serve {
            return self.respond(client, Err(ServerError::NotSupportedForLearner.into()));
        }
        let caller = match self.caller(credential.as_ref()) {
            Ok(Caller::Known(caller)) => caller,
            Ok(Caller::NotYet(token)) => return self.park(client, token, request),
            Err(error) => return self.respond(client, Err(error)),
        };
        let request = match request {
            Request::Cluster(cluster) => {
                if !matches!(cluster, ClusterRequest::MemberList) {
                    if let Err(error) = self.require_admin(caller.as_ref()) {
                        return self.respond(client, Err(error));
                    }
                }
                return self.cluster_request(client, cluster);
            }
            Request::Maintenance(maintenance) => {
                return self.maintenance_request(client, caller, maintenance)
            }
            Request::LeaseLeases(_) => {
                let result = self.machine.serve_lease_read(&request, self.now);
                return self.respond(client, result);
            }
            Request::LeaseKeepAlive(_) | Request::LeaseTimeToLive(_) if !self.is_leader() => {
                return self.respond(client, Err(ClusterError::NotLeader.into()));
            }
            Request::LeaseGrant(mut grant) if grant.id == 0 => {
                grant.id = self.choose_lease_id();
                Request::LeaseGrant(grant)
            }
            Request::Auth(auth) => match self.hash_passwords(auth, caller.as_ref()) {
                Ok(auth) => Request::Auth(auth),
                Err(error) => return self.respond(client, Err(error)),
            },
            other => other,
        };
        let is_read = match &request {
            Request::Range(_) | Request::LeaseKeepAlive(_) | Request::LeaseTimeToLive(_) => true,
            // etcd checks the password once this member is up to date (a ReadIndex round).
            Request::Auth(AuthRequest::Authenticate { .. }) => true,
            Request::Txn(txn) => is_read_only(txn),
            _ => false,
        };
        let deadline = self.now + self.config.request_timeout();
        let planted_stale_read = self.planted(super::PlantedBug::LeaderLocalReads)
            && self.is_leader()
            && matches!(request, Request::Range(_));
        if is_read && (is_serializable(&request) || planted_stale_read) {
            let result = self.serve_read(&request, caller.as_ref());
            return self.respond(client, result);
        }
        if is_read {
            self.requests.waiting_reads.push(WaitingRead { client, request, caller, deadline });
            return self.start_read_round();
        }
        if let Err(error) = self.check_quota(&request) {
            return self.respond(client, Err(error));
        }
        self.propose_write(Some(client), request, caller);
    }

    /// Admits and proposes a write from `auth` as a normal entry; the client (if any) is
    /// answered when it is applied.
    pub(super) fn propose_write(
        &mut self,
        client: Option<ClientId>,
        request: Request,
        auth: Option<AuthInfo>,
    ) {
        let deadline = self.now + self.config.request_timeout();
        if self.raw.raft.raft_log.committed.saturating_sub(self.machine.applied())
            > UNAPPLIED_ENTRIES_MAX
        {
            return self.respond_to(client, Err(ServerError::TooManyRequests.into()));
        }
        let sequence = self.requests.next_sequence();
        let header = RequestHeader { proposer: self.config.id, boot: self.boot, sequence };
        let data = InternalRequest { header, request, auth }.encode();
        if data.len() > self.config.max_request_bytes {
            return self.respond_to(client, Err(ServerError::RequestTooLarge.into()));
        }
        self.requests.insert(sequence, Proposal::new(client, deadline, data, ProposalKind::Entry));
        self.propose(sequence);
    }

    /// Hands a proposal to raft; raft refuses at once when it knows no leader.
    pub(super) fn propose(&mut self, sequence: u64) {
        let Some(proposal) = self.requests.proposals.get_mut(&sequence) else { return };
        if proposal.proposed_at.is_some() || self.raw.raft.leader_id == 0 {
            return;
        }
        // raft-rs silently turns a conf change into an empty entry while another is pending
        // (its propose still returns Ok), and a new leader counts its whole unapplied log as
        // pending. The leader therefore holds conf changes back until none is pending; a
        // follower's forwarded one can still be dropped, so the follower forwards it again
        // (see `retry_requests`) where etcd lets it time out.
        let conf_change_pending =
            self.raw.raft.state == raft::StateRole::Leader && self.raw.raft.has_pending_conf();
        if matches!(proposal.kind, ProposalKind::ConfChange(_)) && conf_change_pending {
            return;
        }
        let accepted = match &proposal.kind {
            ProposalKind::Entry => self.raw.propose(Vec::new(), proposal.data.clone()),
            ProposalKind::ConfChange(change) => {
                self.raw.propose_conf_change(proposal.data.clone(), change.clone())
            }
        };
        proposal.proposed_at = accepted.is_ok().then_some(self.now);
    }

    /// Asks raft for a ReadIndex round if reads wait and none is in flight.
    fn start_read_round(&mut self) {
        if self.requests.round.is_some() || self.requests.waiting_reads.is_empty() {
            return;
        }
        if self.raw.raft.leader_id == 0 {
            return;
        }
        let sequence = self.requests.next_sequence();
        let mut context = self.boot.to_le_bytes().to_vec();
        context.extend_from_slice(&sequence.to_le_bytes());
        let reads = std::mem::take(&mut self.requests.waiting_reads);
        self.requests.round =
            Some(ReadRound { context: context.clone(), started: self.now, reads });
        self.raw.read_index(context);
    }

    /// On a tick: retries refused proposals and unanswered read rounds.
    pub(super) fn retry_requests(&mut self) {
        let follower = self.raw.raft.state != raft::StateRole::Leader;
        let forward_again = |p: &Proposal| {
            matches!(p.kind, ProposalKind::ConfChange(_))
                && follower
                && p.proposed_at
                    .is_some_and(|at| self.now.since(at) >= self.config.election_timeout)
        };
        let unproposed: Vec<u64> = self
            .requests
            .proposals
            .iter()
            .filter(|(_, p)| p.proposed_at.is_none() || forward_again(p))
            .map(|(s, _)| *s)
            .collect();
        for sequence in unproposed {
            if let Some(proposal) = self.requests.proposals.get_mut(&sequence) {
                proposal.proposed_at = None;
            }
            self.propose(sequence);
        }
        let retry_after = self.config.heartbeat_interval.times(READ_RETRY_HEARTBEATS);
        if let Some(round) = &self.requests.round {
            if self.now.since(round.started) >= retry_after {
                let round = self.requests.round.take().expect("checked");
                self.requests.waiting_reads.splice(0..0, round.reads);
                self.machine.tally_mut().slow_read_indexes += 1;
            }
        }
        self.start_read_round();
    }

    /// Answers every request whose deadline passed with `request timed out`.
    pub(super) fn expire_requests(&mut self) {
        let now = self.now;
        let expired: Vec<u64> = self
            .requests
            .proposals
            .iter()
            .filter(|(_, p)| p.deadline <= now)
            .map(|(s, _)| *s)
            .collect();
        for sequence in expired {
            let proposal = self.requests.proposals.remove(&sequence).expect("listed");
            self.machine.tally_mut().proposals_failed += 1;
            if let Some(client) = proposal.client {
                self.respond(client, Err(ServerError::Timeout.into()));
            }
        }
        let mut timed_out = Vec::new();
        self.requests.waiting_reads.retain(|read| {
            let keep = read.deadline > now;
            if !keep {
                timed_out.push(read.client);
            }
            keep
        });
        for (_, reads) in &mut self.requests.confirmed {
            reads.retain(|read| {
                let keep = read.deadline > now;
                if !keep {
                    timed_out.push(read.client);
                }
                keep
            });
        }
        for client in timed_out {
            self.respond(client, Err(ServerError::Timeout.into()));
        }
    }

    /// Serves every confirmed read whose index the state machine has reached, and answers
    /// abandoned reads.
    pub(super) fn serve_confirmed_reads(&mut self) {
        for read in std::mem::take(&mut self.requests.abandoned) {
            self.respond(read.client, Err(ServerError::LeaderChanged.into()));
        }
        let applied = self.machine.applied();
        let (ready, waiting): (Vec<_>, Vec<_>) = std::mem::take(&mut self.requests.confirmed)
            .into_iter()
            .partition(|(index, _)| *index <= applied);
        self.requests.confirmed = waiting;
        for read in ready.into_iter().flat_map(|(_, reads)| reads) {
            match &read.request {
                Request::LeaseKeepAlive(keep_alive) => {
                    self.keep_alive(read.client, keep_alive.id, read.deadline)
                }
                Request::LeaseTimeToLive(_) if !self.is_leader() => {
                    self.respond(read.client, Err(ClusterError::NotLeader.into()))
                }
                Request::LeaseTimeToLive(_) => {
                    let result = self.machine.serve_lease_read(&read.request, self.now);
                    self.respond(read.client, result)
                }
                Request::Auth(_) => self.authenticate(read.client, &read.request),
                _ => {
                    let result = self.serve_read(&read.request, read.caller.as_ref());
                    self.respond(read.client, result);
                }
            }
        }
        self.start_read_round();
    }

    /// Serves a read from the local state machine, if `caller` may read it.
    fn serve_read(
        &mut self,
        request: &Request,
        caller: Option<&AuthInfo>,
    ) -> Result<Response, Error> {
        crate::auth::check_request(self.machine.auth(), caller, request, |_| Vec::new())?;
        // A read-only transaction attaches nothing, so lease existence is never asked.
        let no_puts = |_| true;
        let response = match request {
            Request::Range(range) => Response::Range(self.machine.kv().range(range)?),
            Request::Txn(txn) => Response::Txn(self.machine.kv_mut().txn(txn, no_puts)?),
            _ => unreachable!("only reads are served locally"),
        };
        self.machine.tally_mut().count_kv(request, &response);
        Ok(response)
    }
}
