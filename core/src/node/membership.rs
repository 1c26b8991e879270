//! Membership and leadership requests: member add / remove / update / promote / list, and
//! MoveLeader.
//!
//! - List is answered from the local membership (etcd 3.4 serves it locally).
//! - Add, remove and promote are checked against the local membership for a fast answer, then
//!   proposed as raft conf changes whose context says who asked and what to change. They are
//!   checked again when applied, and that answer is the one the client gets.
//! - Update changes no raft configuration and travels as a normal entry.
//! - Promote is decided by the leader, which alone knows how far the learner has caught up
//!   (etcd's 90% rule); a follower answers `not leader` (etcd forwards to the leader, and the
//!   network layer does the same).
//! - MoveLeader asks raft to transfer leadership and answers once the target leads, or with
//!   etcd's transfer timeout.

use super::client::{Proposal, ProposalKind};
use super::{ClientId, Node};
use crate::api::{ClusterError, ClusterRequest, Member, Request, Response};
use crate::apply::membership::{self, ConfChangeContext, MemberChange};
use crate::apply::RequestHeader;
use protobuf::Message as _;
use raft::prelude::{ConfChange, ConfChangeType, ConfChangeV2, Entry, EntryType};

/// The log a founding member starts with: one committed conf change per initial member (in id
/// order, so every founding member writes the same entries), as etcd's `StartNode` does.
pub(super) fn bootstrap_entries(members: &[Member]) -> Vec<Entry> {
    let mut members = members.to_vec();
    members.sort_by_key(|m| m.id);
    let founder = RequestHeader { proposer: 0, boot: 0, sequence: 0 };
    let entries = members.into_iter().enumerate().map(|(position, member)| {
        let kind = if member.is_learner {
            ConfChangeType::AddLearnerNode
        } else {
            ConfChangeType::AddNode
        };
        let mut conf_change = ConfChangeV2::default();
        conf_change.set_changes(vec![raft_proto::new_conf_change_single(member.id, kind)].into());
        let context = ConfChangeContext { header: founder, change: MemberChange::Add(member) };
        let mut entry = Entry::default();
        entry.set_entry_type(EntryType::EntryConfChangeV2);
        (entry.term, entry.index) = (1, position as u64 + 1);
        entry.data = conf_change.write_to_bytes().expect("conf changes encode").into();
        entry.context = context.encode().into();
        entry
    });
    entries.collect()
}

/// etcd's rule: a learner may be promoted once it holds 90% of the leader's log.
const LEARNER_READY_PERCENT: u64 = 90;

impl Node {
    /// Publishes this member's name and client URLs through the log until the membership it
    /// applied holds them (etcd's `publish`); tried at most once per election timeout.
    pub(super) fn publish_attributes(&mut self) {
        let wanted = &self.config.client_urls;
        let Some(me) = self.machine.membership().member(self.config.id) else { return };
        let name =
            self.config.members.iter().find(|m| m.id == self.config.id).map(|m| m.name.clone());
        let name = name.unwrap_or_else(|| me.name.clone());
        if (me.client_urls == *wanted && me.name == name) || self.leader().is_none() {
            return;
        }
        if self.published_at.is_some_and(|at| self.now.since(at) < self.config.election_timeout) {
            return;
        }
        self.published_at = Some(self.now);
        let publish =
            ClusterRequest::Publish { id: self.config.id, name, client_urls: wanted.clone() };
        self.propose_write(None, Request::Cluster(publish), None);
    }

    /// Serves a membership or leadership request.
    pub(super) fn cluster_request(&mut self, client: ClientId, request: ClusterRequest) {
        let result = match request {
            ClusterRequest::MemberList => {
                return self.respond(client, Ok(self.machine.members_response(None)))
            }
            ClusterRequest::MoveLeader { target } => return self.move_leader(client, target),
            ClusterRequest::Publish { .. } => {
                return self.respond(client, Err(crate::api::ServerError::InternalOnly.into()))
            }
            ClusterRequest::MemberAdd { peer_urls, is_learner } => {
                self.add_member(peer_urls, is_learner)
            }
            ClusterRequest::MemberRemove { id } => Ok(MemberChange::Remove(id)),
            ClusterRequest::MemberPromote { id } => self.promotion(id),
            ClusterRequest::MemberUpdate { id, peer_urls } => {
                let checked = membership::check_peer_urls(&peer_urls).and_then(|()| {
                    let change = MemberChange::Update { id, peer_urls: peer_urls.clone() };
                    self.machine.membership().validate(&change)
                });
                return match checked {
                    Ok(()) => self.propose_write(
                        Some(client),
                        Request::Cluster(ClusterRequest::MemberUpdate { id, peer_urls }),
                        None,
                    ),
                    Err(error) => self.respond(client, Err(error.into())),
                };
            }
        };
        let change = match result
            .and_then(|change| self.machine.membership().validate(&change).map(|()| change))
        {
            Ok(change) => change,
            Err(error) => return self.respond(client, Err(error.into())),
        };
        self.propose_member_change(client, change);
    }

    /// A new member with etcd's derived id (peer URLs, cluster token, and the time now).
    fn add_member(
        &self,
        peer_urls: Vec<String>,
        is_learner: bool,
    ) -> Result<MemberChange, ClusterError> {
        membership::check_peer_urls(&peer_urls)?;
        let seconds = self.now.as_nanos() / 1_000_000_000;
        let id = membership::member_id(&peer_urls, &self.config.cluster_token, Some(seconds));
        Ok(MemberChange::Add(Member {
            id,
            name: String::new(),
            peer_urls,
            client_urls: Vec::new(),
            is_learner,
        }))
    }

    /// Checks that this member leads and that the learner has caught up (etcd's
    /// `isLearnerReady`).
    fn promotion(&self, id: u64) -> Result<MemberChange, ClusterError> {
        if !self.is_leader() {
            return Err(ClusterError::NotLeader);
        }
        let progress = self.raw.raft.prs();
        let leader = progress.get(self.config.id).map_or(0, |p| p.matched);
        if let Some(learner) = progress.get(id) {
            if learner.matched * 100 < leader * LEARNER_READY_PERCENT {
                return Err(ClusterError::LearnerNotReady);
            }
        }
        Ok(MemberChange::Promote(id))
    }

    /// Proposes a membership change as a raft conf change.
    fn propose_member_change(&mut self, client: ClientId, change: MemberChange) {
        let (node, kind) = match &change {
            MemberChange::Add(member) if member.is_learner => {
                (member.id, ConfChangeType::AddLearnerNode)
            }
            MemberChange::Add(member) => (member.id, ConfChangeType::AddNode),
            MemberChange::Promote(id) => (*id, ConfChangeType::AddNode),
            MemberChange::Remove(id) => (*id, ConfChangeType::RemoveNode),
            MemberChange::Update { .. } => unreachable!("updates travel as normal entries"),
        };
        let mut conf_change = ConfChangeV2::default();
        conf_change.set_changes(vec![raft_proto::new_conf_change_single(node, kind)].into());
        let sequence = self.requests.next_sequence();
        let header = RequestHeader { proposer: self.config.id, boot: self.boot, sequence };
        let context = ConfChangeContext { header, change }.encode();
        let deadline = self.now + self.config.request_timeout();
        let kind = ProposalKind::ConfChange(conf_change);
        self.requests.insert(sequence, Proposal::new(Some(client), deadline, context, kind));
        self.propose(sequence);
    }

    /// Applies a committed conf-change entry: to the membership, then (if accepted) to raft.
    pub(super) fn apply_conf_change_entry(&mut self, entry: &Entry) {
        let conf_change = if entry.get_entry_type() == EntryType::EntryConfChangeV2 {
            ConfChangeV2::parse_from_bytes(&entry.data)
        } else {
            ConfChange::parse_from_bytes(&entry.data).map(raft_proto::ConfChangeI::into_v2)
        };
        let conf_change = match conf_change {
            Ok(conf_change) => conf_change,
            Err(error) => {
                tracing::error!(index = entry.index, %error, "raft: conf change does not decode");
                return self.machine.skip(entry.index);
            }
        };
        let before = self.machine.membership().members();
        let Some(applied) = self.machine.apply_member_change(entry.index, &entry.context) else {
            return;
        };
        self.log_member_changes(&before);
        if applied.apply_to_raft {
            match self.raw.apply_conf_change(&conf_change) {
                Ok(conf_state) => self.raw.mut_store().log.wl().set_conf_state(conf_state),
                Err(error) => {
                    tracing::warn!(index = entry.index, %error, "raft: conf change refused")
                }
            }
        }
        if self.machine.membership().is_removed(self.config.id) {
            self.removed = true;
        }
        if let Some(header) =
            applied.header.filter(|h| h.proposer == self.config.id && h.boot == self.boot)
        {
            if let Some(client) = self.requests.proposal_applied(header.sequence) {
                self.respond(client, applied.result);
            }
        }
    }

    /// Logs what a conf change did to the membership, as etcd's cluster logs it.
    fn log_member_changes(&self, before: &[Member]) {
        let after = self.machine.membership().members();
        let (cluster, local) = (self.config.cluster_id, self.config.id);
        let cluster = format!("{cluster:x}");
        let local = format!("{local:x}");
        for member in &after {
            match before.iter().find(|m| m.id == member.id) {
                None => tracing::info!(
                    "cluster-id" = %cluster,
                    "local-member-id" = %local,
                    "added-peer-id" = %format_args!("{:x}", member.id),
                    "added-peer-peer-urls" = ?member.peer_urls,
                    "added member"
                ),
                Some(old) if old.is_learner && !member.is_learner => tracing::info!(
                    "cluster-id" = %cluster,
                    "local-member-id" = %local,
                    "promoted-member-id" = %format_args!("{:x}", member.id),
                    "promote member"
                ),
                Some(_) => {}
            }
        }
        for member in before.iter().filter(|m| after.iter().all(|a| a.id != m.id)) {
            tracing::info!(
                "cluster-id" = %cluster,
                "local-member-id" = %local,
                "removed-remote-peer-id" = %format_args!("{:x}", member.id),
                "removed-remote-peer-urls" = ?member.peer_urls,
                "removed member"
            );
        }
    }

    /// Starts a leadership transfer (etcd's MoveLeader).
    fn move_leader(&mut self, client: ClientId, target: u64) {
        if !self.is_leader() {
            return self.respond(client, Err(ClusterError::NotLeader.into()));
        }
        if !self.machine.membership().is_voter(target) {
            return self.respond(client, Err(ClusterError::BadLeaderTransferee.into()));
        }
        if target != self.config.id {
            self.raw.transfer_leader(target);
        }
        let deadline = self.now + self.config.request_timeout();
        self.transfers.push((client, target, deadline));
        self.finish_transfers();
    }

    /// Answers transfers whose target now leads.
    pub(super) fn finish_transfers(&mut self) {
        let leader = self.raw.raft.leader_id;
        let (done, waiting): (Vec<_>, Vec<_>) =
            self.transfers.drain(..).partition(|(_, target, _)| *target == leader);
        self.transfers = waiting;
        for (client, _, _) in done {
            self.respond(client, Ok(Response::Cluster(Default::default())));
        }
    }

    /// Answers transfers that did not finish in time.
    pub(super) fn expire_transfers(&mut self) {
        let now = self.now;
        let (late, waiting): (Vec<_>, Vec<_>) =
            self.transfers.drain(..).partition(|(_, _, deadline)| *deadline <= now);
        self.transfers = waiting;
        for (client, _, _) in late {
            self.respond(client, Err(ClusterError::LeaderTransferTimeout.into()));
        }
    }
}
