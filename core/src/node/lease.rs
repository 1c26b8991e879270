//! The node's lease work that does not go through the log: choosing lease ids, renewals on the
//! leader, the leader's expiry and checkpoint proposals, and promotion and demotion of the lessor.
//!
//! - A grant without an id gets one here: the member id's low 16 bits, then a counter that
//!   starts at a seeded random value, so members never pick the same id.
//! - KeepAlive and TimeToLive are the leader's business (a follower answers `not leader`, which
//!   the network layer turns into forwarding, as etcd's `LeaseRenew` does). Both first join a
//!   ReadIndex round: that confirms leadership and waits until everything committed before them
//!   is applied (etcd's `waitAppliedIndex`), so a grant that was just acknowledged is known.
//! - A renewal of a lease that carries a checkpointed remaining TTL goes through the log, which
//!   clears the checkpoint on every member before the client hears the new TTL; otherwise a
//!   later leader could restart the lease from the stale remainder.
//! - A renewal of an expired lease waits until its revoke is applied (then TTL 0), leadership is
//!   lost (`not leader`), or the request times out, as etcd's `Renew` waits.
//! - Every [`EXPIRY_CHECK_INTERVAL`] the leader proposes revokes for expired leases (at most
//!   half of [`LEASE_REVOKE_RATE`] each time) and one entry of due checkpoints. Both carry the
//!   leader's term and take effect only from an entry of that term: if leadership changes
//!   first, the proposal may still be forwarded to the new leader and committed, but the new
//!   leader may have renewed the lease meanwhile, so it does nothing. (etcd 3.4 proposes a
//!   plain revoke, which can then revoke a lease the new leader just renewed.)
//! - The lessor is promoted when the leader applies the empty entry of its term (everything
//!   from earlier terms is applied by then), extended by one election timeout; it is demoted as
//!   soon as this member stops leading.

use super::{ClientId, Node};
use crate::api::{
    ClusterError, LeaseCheckpointRequest, LeaseExpireRequest, LeaseId, LeaseKeepAliveRequest,
    LeaseKeepAliveResponse, Request, Response, ResponseHeader, ServerError,
};
use crate::lease::{RenewError, EXPIRY_CHECK_INTERVAL, LEASE_REVOKE_RATE, MAX_CHECKPOINT_BATCH};
use crate::time::Instant;

/// A renewal of an expired lease, waiting for its revoke.
pub(super) struct HeldRenewal {
    client: ClientId,
    id: LeaseId,
    deadline: Instant,
}

impl Node {
    /// An unused lease id for a grant that named none.
    pub(super) fn choose_lease_id(&mut self) -> LeaseId {
        loop {
            self.lease_counter = self.lease_counter.wrapping_add(1);
            let suffix = self.lease_counter & 0xffff_ffff_ffff;
            let id = (((self.config.id & 0x7fff) << 48) | suffix) as LeaseId;
            if id != 0 && !self.machine.lessor().exists(id) {
                return id;
            }
        }
    }

    /// Renews lease `id` for `client` once a ReadIndex round confirmed this leader.
    pub(super) fn keep_alive(&mut self, client: ClientId, id: LeaseId, deadline: Instant) {
        if !self.is_leader() {
            return self.respond(client, Err(ClusterError::NotLeader.into()));
        }
        if self.machine.lessor().needs_checkpoint_clear(id) {
            let renewal = Request::LeaseKeepAlive(LeaseKeepAliveRequest { id });
            return self.propose_write(Some(client), renewal, None);
        }
        let now = self.now;
        match self.machine.lessor_mut().renew(id, now) {
            Ok(ttl) => {
                self.machine.tally_mut().leases_renewed += 1;
                self.answer_keep_alive(client, id, ttl)
            }
            Err(RenewError::NotFound) => self.answer_keep_alive(client, id, 0),
            Err(RenewError::NotPrimary) => {
                self.respond(client, Err(ClusterError::NotLeader.into()))
            }
            Err(RenewError::Expired) => {
                self.held_renewals.push(HeldRenewal { client, id, deadline })
            }
        }
    }

    fn answer_keep_alive(&mut self, client: ClientId, id: LeaseId, ttl: i64) {
        let header = ResponseHeader::at(self.machine.kv().current_revision());
        let response = LeaseKeepAliveResponse { header, id, ttl };
        self.respond(client, Ok(Response::LeaseKeepAlive(response)));
    }

    /// Answers held renewals whose lease is gone, whose leadership is lost, or whose time is up.
    pub(super) fn settle_held_renewals(&mut self) {
        if self.held_renewals.is_empty() {
            return;
        }
        let primary = self.is_leader() && self.machine.lessor().is_primary();
        for held in std::mem::take(&mut self.held_renewals) {
            if !self.machine.lessor().exists(held.id) {
                self.answer_keep_alive(held.client, held.id, 0);
            } else if !primary {
                self.respond(held.client, Err(ClusterError::NotLeader.into()));
            } else if held.deadline <= self.now {
                self.respond(held.client, Err(ServerError::Timeout.into()));
            } else {
                self.held_renewals.push(held);
            }
        }
    }

    /// On a tick: a primary proposes revokes for expired leases and due checkpoints.
    pub(super) fn lease_work(&mut self) {
        if self.now < self.next_lease_check {
            return;
        }
        self.next_lease_check = self.now + EXPIRY_CHECK_INTERVAL;
        if !self.is_leader() || !self.machine.lessor().is_primary() {
            return;
        }
        let now = self.now;
        let term = self.raw.raft.term;
        let expired = self.machine.lessor_mut().expired(now, LEASE_REVOKE_RATE / 2);
        for id in expired {
            tracing::debug!(id, "lease expired: proposing its revoke");
            self.propose_write(None, Request::LeaseExpire(LeaseExpireRequest { id, term }), None);
        }
        let checkpoints = self.machine.lessor_mut().due_checkpoints(now, MAX_CHECKPOINT_BATCH);
        if !checkpoints.is_empty() {
            let request = Request::LeaseCheckpoint(LeaseCheckpointRequest { checkpoints, term });
            self.propose_write(None, request, None);
        }
    }

    /// The leader applied the empty entry of its own term: its lessor becomes primary.
    pub(super) fn maybe_promote_lessor(&mut self, entry_term: u64) {
        let leading_this_term = self.is_leader() && entry_term == self.raw.raft.term;
        if leading_this_term && !self.machine.lessor().is_primary() {
            let (now, extend) = (self.now, self.config.election_timeout);
            self.machine.lessor_mut().promote(now, extend);
        }
    }

    /// This member stopped leading: its leases stop expiring, and held renewals hear so.
    pub(super) fn maybe_demote_lessor(&mut self) {
        if !self.is_leader() && self.machine.lessor().is_primary() {
            self.machine.lessor_mut().demote();
            self.settle_held_renewals();
        }
    }
}
