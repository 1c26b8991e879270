//! Lease workload: clients that hold leases the way a lock service or a registration would.
//!
//! Each client grants a lease, attaches two keys to it, then keeps it alive a random number of
//! times (each time after reading a key at a random point late in its TTL, where an early
//! expiry would show), and finally revokes it or
//! walks away and lets it expire, then starts over. Requests go to random members; a keep-alive
//! that reaches a follower hears `not leader` and is sent again elsewhere (the network layer
//! forwards it in the real binary). Everything a client saw is recorded for `check_lease`.

use super::{Event, World};
use crate::check_lease::{Gone, LeaseLife};
use rand::Rng;
use stead_core::api::{
    ClusterError, Error, KvError, LeaseGrantRequest, LeaseKeepAliveRequest, LeaseRevokeRequest,
    PutRequest, RangeRequest, Request, Response,
};
use stead_core::node::Input;
use stead_core::time::{Duration, Instant};

/// Request ids of lease clients start here: above KV operations, below the world's own.
pub(super) const LEASE_REQUESTS: u64 = 1 << 62;

/// Where a lease client is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Step {
    Grant,
    Put(usize),
    Renew,
    Read,
    Revoke,
    /// Read a key after the revoke was acknowledged: it must be gone.
    ReadRevoked,
}

/// One lease client.
#[derive(Clone, Debug)]
pub(super) struct LeaseClient {
    step: Step,
    /// The index of its current lease in `lease_lives`.
    life: Option<usize>,
    renewals_left: u32,
}

/// A lease request waiting for its answer.
#[derive(Clone, Copy, Debug)]
pub(super) struct Pending {
    client: usize,
    invoke: Instant,
}

impl World {
    /// Creates the lease clients and starts them.
    pub(super) fn lease_clients_start(&mut self) {
        for client in 0..self.scenario.leases.clients {
            let state = LeaseClient { step: Step::Grant, life: None, renewals_left: 0 };
            self.lease_clients.push(state);
            self.at(Duration::from_millis(10 + client as u64), Event::LeaseNext(client));
        }
    }

    /// The client sends the request of its current step.
    pub(super) fn lease_next(&mut self, client: usize) {
        if !self.clients_on {
            return;
        }
        let state = self.lease_clients[client].clone();
        let life = state.life.map(|l| &self.lease_lives[l]);
        let request = match (state.step, life) {
            (Step::Grant, _) => {
                let ttl = self.scenario.leases.ttl_s;
                Request::LeaseGrant(LeaseGrantRequest { ttl, id: 0 })
            }
            (Step::Put(n), Some(life)) => {
                self.next_value += 1;
                Request::Put(PutRequest {
                    key: life.key(n).into_bytes(),
                    value: format!("v{}", self.next_value).into_bytes(),
                    lease: life.id,
                    ..PutRequest::default()
                })
            }
            (Step::Renew, Some(life)) => {
                Request::LeaseKeepAlive(LeaseKeepAliveRequest { id: life.id })
            }
            (Step::Read | Step::ReadRevoked, Some(life)) => Request::Range(RangeRequest {
                key: life.keys.first().cloned().unwrap_or_else(|| life.key(0)).into_bytes(),
                ..RangeRequest::default()
            }),
            (Step::Revoke, Some(life)) => Request::LeaseRevoke(LeaseRevokeRequest { id: life.id }),
            (_, None) => unreachable!("every step after a grant has a lease"),
        };
        let Some(member) = self.workload_member() else {
            return self.at(Duration::from_millis(100), Event::LeaseNext(client));
        };
        self.next_lease_request += 1;
        let id = LEASE_REQUESTS + self.next_lease_request;
        if state.step == Step::Revoke {
            let life = state.life.expect("a lease to revoke");
            self.lease_lives[life].revoke_invoked.get_or_insert(self.now);
        }
        self.lease_pending.insert(id, Pending { client, invoke: self.now });
        self.at(Duration::from_millis(self.scenario.op_timeout_ms), Event::LeaseTimeout(id));
        self.input(member, Input::Client { id, credential: None, request });
    }

    /// A lease request timed out: its effect is unknown; the client moves on.
    pub(super) fn lease_timeout(&mut self, id: u64) {
        if let Some(pending) = self.lease_pending.remove(&id) {
            self.lease_advance(pending, None);
        }
    }

    /// A lease request was answered.
    pub(super) fn lease_answered(&mut self, id: u64, result: Result<Response, Error>) {
        if let Some(pending) = self.lease_pending.remove(&id) {
            self.lease_advance(pending, Some(result));
        }
    }

    /// Records what the answer (`None`: no answer) says and picks the client's next step.
    fn lease_advance(&mut self, pending: Pending, result: Option<Result<Response, Error>>) {
        let Pending { client, invoke } = pending;
        let now = self.now;
        let state = self.lease_clients[client].clone();
        let gone = Gone { invoke, complete: now };
        let mut next = state.step;
        let mut delay = Duration::from_millis(self.workload.gen_range(1..=20));
        // Reads probe the lease late in its TTL, where an early expiry would show.
        let ttl_ms = self.scenario.leases.ttl_s as u64 * 1000;
        let probe =
            Duration::from_millis(self.workload.gen_range(ttl_ms * 3 / 10..=ttl_ms * 97 / 100));
        match (state.step, result) {
            (Step::Grant, Some(Ok(Response::LeaseGrant(granted)))) => {
                let life = self.lease_lives.len();
                self.lease_lives.push(LeaseLife::new(
                    client,
                    life,
                    granted.id,
                    granted.ttl,
                    invoke,
                ));
                let state = &mut self.lease_clients[client];
                state.life = Some(life);
                state.renewals_left =
                    self.workload.gen_range(0..=self.scenario.leases.max_keepalives);
                next = Step::Put(0);
            }
            (Step::Grant, _) => delay = Duration::from_millis(200),
            (Step::Put(n), answer) => {
                let life = &mut self.lease_lives[state.life.expect("granted")];
                match answer {
                    Some(Ok(_)) => life.keys.push(life.key(n)),
                    Some(Err(Error::Kv(KvError::LeaseNotFound))) => life.gone.push(gone),
                    _ => life.maybe_keys.push(life.key(n)),
                }
                if n == 0 {
                    next = Step::Put(1);
                } else {
                    next = Step::Read;
                    delay = probe;
                }
            }
            (Step::Renew, Some(Err(Error::Cluster(ClusterError::NotLeader)))) => {}
            (Step::Renew, answer) => {
                let life = &mut self.lease_lives[state.life.expect("granted")];
                match answer {
                    Some(Ok(Response::LeaseKeepAlive(renewed))) if renewed.ttl > 0 => {
                        life.renewals.push((invoke, now))
                    }
                    Some(Ok(Response::LeaseKeepAlive(_))) => life.gone.push(gone),
                    _ => {}
                }
                next = Step::Read;
                delay = probe;
            }
            (Step::Read, answer) => {
                let life = &mut self.lease_lives[state.life.expect("granted")];
                if let Some(Ok(Response::Range(range))) = answer {
                    if range.kvs.is_empty() && !life.keys.is_empty() {
                        life.gone.push(gone);
                    }
                }
                let left = &mut self.lease_clients[client].renewals_left;
                if *left > 0 {
                    *left -= 1;
                    next = Step::Renew;
                } else if self.workload.gen_bool(self.scenario.leases.revoke_fraction) {
                    next = Step::Revoke;
                } else {
                    let life = &mut self.lease_lives[state.life.expect("granted")];
                    life.abandoned = Some(now);
                    next = Step::Grant;
                }
            }
            (Step::Revoke, answer) => {
                let life = &mut self.lease_lives[state.life.expect("granted")];
                match answer {
                    Some(Ok(Response::LeaseRevoke(revoked))) => {
                        life.revoke_acked = Some((now, revoked.header.revision));
                        next = Step::ReadRevoked;
                    }
                    Some(Err(Error::Kv(KvError::LeaseNotFound))) => {
                        life.gone.push(gone);
                        next = Step::Grant;
                    }
                    _ => next = Step::Grant,
                }
            }
            (Step::ReadRevoked, answer) => {
                let life = &mut self.lease_lives[state.life.expect("granted")];
                if let Some(Ok(Response::Range(range))) = answer {
                    if !range.kvs.is_empty() {
                        life.outlived.push(invoke);
                    }
                }
                next = Step::Grant;
            }
        }
        if next == Step::Grant {
            self.lease_clients[client].life = None;
        }
        self.lease_clients[client].step = next;
        self.at(delay, Event::LeaseNext(client));
    }
}
