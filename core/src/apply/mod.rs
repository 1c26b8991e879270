//! The apply pipeline: committed raft entries, in order, into the state machine.
//!
//! Every write a client makes travels through raft as an [`InternalRequest`] (postcard-encoded):
//! a header saying who proposed it, and the request. Applying is deterministic and idempotent. The
//! state machine remembers the index of the last entry it applied (etcd's consistent index), and an
//! entry at or below it is skipped, so replaying the log after a restart applies nothing twice.
//! A committed entry that does not decode is skipped by every member alike, so members never
//! diverge, and it is reported. A request whose entry was committed twice takes effect once
//! ([`dedup`]).
//!
//! Leases live here too: grants, revokes, checkpoints and log-borne renewals are applied to the
//! [`Lessor`], and every event a write produces moves keys between leases and is kept for the
//! node to hand to its watchers ([`StateMachine::take_events`]). The few lease decisions that
//! depend on time (a primary's expiry) use the `now` the node passes in.

pub mod dedup;
pub mod membership;

use crate::api::{
    ClusterError, ClusterRequest, ClusterResponse, Error, Event, KvError, LeaseCheckpoint,
    LeaseCheckpointResponse, LeaseGrantResponse, LeaseKeepAliveResponse, LeaseLeasesResponse,
    LeaseRevokeResponse, LeaseTimeToLiveResponse, Member, Request, Response, ResponseHeader,
};
use crate::lease::{LeaseRecord, Lessor};
use crate::mvcc::{validate, KvStore};
use crate::time::{Duration, Instant};
use membership::{ConfChangeContext, MemberChange, Membership};
use serde::{Deserialize, Serialize};

/// Who proposed an entry, so the proposer can answer its client when the entry is applied.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct RequestHeader {
    /// The proposing member's raft id.
    pub proposer: u64,
    /// A random number the proposer drew when it started, so requests from before a restart
    /// never match requests after it.
    pub boot: u64,
    /// The proposer's sequence number for the request.
    pub sequence: u64,
}

/// What a raft entry carries.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct InternalRequest {
    /// Who proposed it.
    pub header: RequestHeader,
    /// The request.
    pub request: Request,
}

impl InternalRequest {
    /// The entry payload.
    pub fn encode(&self) -> Vec<u8> {
        postcard::to_allocvec(self).expect("requests always encode")
    }

    /// Decodes an entry payload.
    pub fn decode(data: &[u8]) -> Result<Self, postcard::Error> {
        postcard::from_bytes(data)
    }
}

/// The format version of state-machine snapshots.
const SNAPSHOT_FORMAT: u32 = 2;

/// A state-machine snapshot as plain data.
#[derive(Serialize, Deserialize)]
struct SnapshotData {
    format: u32,
    applied: u64,
    kv: crate::mvcc::KvSnapshot,
    membership: Membership,
    log_digest: u32,
    requests: dedup::AppliedRequests,
    leases: Vec<LeaseRecord>,
}

/// How the lessor is set up: these are configuration, not replicated state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LeaseSettings {
    /// The smallest TTL a lease gets, in seconds.
    pub min_ttl: i64,
    /// How often the leader checkpoints remaining TTLs; `None`: never (etcd's default).
    pub checkpoint_interval: Option<Duration>,
}

impl Default for LeaseSettings {
    /// etcd's defaults: a 2 s minimum (from a 1 s election timeout), no checkpoints.
    fn default() -> Self {
        LeaseSettings { min_ttl: 2, checkpoint_interval: None }
    }
}

/// The replicated state: the key space, the membership and the index of the last applied entry.
#[derive(Clone, Debug, Default)]
pub struct StateMachine {
    kv: KvStore,
    membership: Membership,
    applied: u64,
    /// CRC-32C over every applied entry's index, term and data, in order.
    log_digest: u32,
    /// Which client requests took effect, so a repeated entry does not take effect twice.
    requests: dedup::AppliedRequests,
    lessor: Lessor,
    /// Events applied since the node last took them.
    events: Vec<Event>,
}

/// The outcome of applying a membership conf change.
pub struct MemberChangeApplied {
    /// Who proposed it (`None` for a conf change without a context, which raft made itself).
    pub header: Option<RequestHeader>,
    /// The answer for the proposer.
    pub result: Result<Response, Error>,
    /// Whether raft's configuration must change too (false when the change was refused).
    pub apply_to_raft: bool,
}

impl StateMachine {
    /// A state machine that has applied nothing, for a cluster of `members`.
    pub fn new(members: Vec<Member>, settings: LeaseSettings) -> Self {
        StateMachine {
            kv: KvStore::new(),
            membership: Membership::new(members),
            applied: 0,
            log_digest: 0,
            requests: dedup::AppliedRequests::default(),
            lessor: Lessor::new(settings.min_ttl, settings.checkpoint_interval),
            events: Vec::new(),
        }
    }

    /// The leases.
    pub fn lessor(&self) -> &Lessor {
        &self.lessor
    }

    /// The leases, for the leader's expiry work and renewals (which are not replicated).
    pub fn lessor_mut(&mut self) -> &mut Lessor {
        &mut self.lessor
    }

    /// The events applied since the last call, in revision order.
    pub fn take_events(&mut self) -> Vec<Event> {
        std::mem::take(&mut self.events)
    }

    /// The digest of every entry applied so far: equal on members that applied the same log.
    pub fn log_digest(&self) -> u32 {
        self.log_digest
    }

    /// Folds an entry into the log digest, once: call it before applying the entry.
    pub fn fold_entry(&mut self, index: u64, term: u64, data: &[u8]) {
        if index <= self.applied {
            return;
        }
        let mut digest = crc32c::crc32c_append(self.log_digest, &index.to_le_bytes());
        digest = crc32c::crc32c_append(digest, &term.to_le_bytes());
        self.log_digest = crc32c::crc32c_append(digest, data);
    }

    /// The membership.
    pub fn membership(&self) -> &Membership {
        &self.membership
    }

    /// Applies the membership conf change at `index`, whose entry context is `context`.
    /// Returns `None` if the entry was applied before.
    pub fn apply_member_change(
        &mut self,
        index: u64,
        context: &[u8],
    ) -> Option<MemberChangeApplied> {
        if index <= self.applied {
            return None;
        }
        self.applied = index;
        if context.is_empty() {
            let result = Ok(self.members_response(None));
            return Some(MemberChangeApplied { header: None, result, apply_to_raft: true });
        }
        let context = match ConfChangeContext::decode(context) {
            Ok(context) => context,
            Err(error) => {
                tracing::error!(index, %error, "apply: skipping a conf change whose context does not decode");
                let result = Err(ClusterError::MemberNotFound.into());
                return Some(MemberChangeApplied { header: None, result, apply_to_raft: false });
            }
        };
        let header = Some(context.header);
        if let Err(error) = self.membership.validate(&context.change) {
            return Some(MemberChangeApplied {
                header,
                result: Err(error.into()),
                apply_to_raft: false,
            });
        }
        self.membership.apply(&context.change);
        let added = match &context.change {
            MemberChange::Add(member) => Some(member.clone()),
            _ => None,
        };
        Some(MemberChangeApplied {
            header,
            result: Ok(self.members_response(added)),
            apply_to_raft: true,
        })
    }

    /// A cluster answer listing every member.
    pub fn members_response(&self, member: Option<Member>) -> Response {
        Response::Cluster(ClusterResponse {
            member,
            members: self.membership.members(),
            ..Default::default()
        })
    }

    /// The whole state as bytes (postcard), for a raft snapshot at the applied index.
    pub fn snapshot(&self) -> Vec<u8> {
        let data = SnapshotData {
            format: SNAPSHOT_FORMAT,
            applied: self.applied,
            kv: self.kv.to_snapshot(),
            membership: self.membership.clone(),
            log_digest: self.log_digest,
            requests: self.requests.clone(),
            leases: self.lessor.to_records(),
        };
        postcard::to_allocvec(&data).expect("snapshots always encode")
    }

    /// Rebuilds the state from [`StateMachine::snapshot`] bytes, or says why they are not a
    /// valid state. The lessor comes back as a follower's: a leader promotes it again.
    pub fn restore(bytes: &[u8], settings: LeaseSettings) -> Result<StateMachine, String> {
        let data: SnapshotData =
            postcard::from_bytes(bytes).map_err(|e| format!("snapshot does not decode: {e}"))?;
        if data.format != SNAPSHOT_FORMAT {
            return Err(format!("unknown snapshot format {}", data.format));
        }
        let kv = KvStore::from_snapshot(data.kv)?;
        let lessor = Lessor::from_records(
            settings.min_ttl,
            settings.checkpoint_interval,
            data.leases,
            kv.leased_keys(),
        )?;
        Ok(StateMachine {
            kv,
            membership: data.membership,
            applied: data.applied,
            log_digest: data.log_digest,
            requests: data.requests,
            lessor,
            events: Vec::new(),
        })
    }

    /// The key space.
    pub fn kv(&self) -> &KvStore {
        &self.kv
    }

    /// The key space, for serving requests that do not change it (read-only transactions).
    pub fn kv_mut(&mut self) -> &mut KvStore {
        &mut self.kv
    }

    /// The index of the last applied entry.
    pub fn applied(&self) -> u64 {
        self.applied
    }

    /// Records that an entry carrying no request (a leader's empty entry, a conf change) was
    /// applied.
    pub fn skip(&mut self, index: u64) {
        if index > self.applied {
            self.applied = index;
        }
    }

    /// Applies the normal entry at `index` of raft term `term` at time `now`. Returns its
    /// header and result, or `None` if it was applied before or carries nothing.
    pub fn apply(
        &mut self,
        index: u64,
        term: u64,
        data: &[u8],
        now: Instant,
    ) -> Option<(RequestHeader, Result<Response, Error>)> {
        if index <= self.applied {
            return None;
        }
        self.applied = index;
        if data.is_empty() {
            return None;
        }
        let request = match InternalRequest::decode(data) {
            Ok(request) => request,
            Err(error) => {
                tracing::error!(index, %error, "apply: skipping an entry that does not decode");
                return None;
            }
        };
        if !self.requests.admit(request.header, index) {
            tracing::debug!(index, header = ?request.header, "apply: skipping a repeated request");
            return None;
        }
        let before = self.kv.current_revision();
        let result = self.execute(&request.request, term, now);
        let after = self.kv.current_revision();
        if after > before {
            let events = self.kv.events_at(after);
            self.lessor.observe(&events);
            self.events.extend(events);
        }
        Some((request.header, result))
    }

    /// Runs a request against the key space and the leases.
    fn execute(&mut self, request: &Request, term: u64, now: Instant) -> Result<Response, Error> {
        let lessor = &self.lessor;
        let exists = |id| lessor.exists(id);
        let current = |kv: &KvStore| ResponseHeader::at(kv.current_revision());
        Ok(match request {
            Request::Range(range) => Response::Range(self.kv.range(range)?),
            Request::Put(put) => Response::Put(self.kv.put(put, exists)?),
            Request::DeleteRange(delete) => Response::DeleteRange(self.kv.delete_range(delete)),
            Request::Txn(txn) => Response::Txn(self.kv.txn(txn, exists)?),
            Request::LeaseGrant(grant) => {
                let ttl = self.lessor.grant(grant.id, grant.ttl, now)?;
                let header = current(&self.kv);
                Response::LeaseGrant(LeaseGrantResponse { header, id: grant.id, ttl })
            }
            Request::LeaseRevoke(revoke) => self.revoke_lease(revoke.id)?,
            Request::LeaseCheckpoint(checkpoint) => {
                if checkpoint.term == 0 || checkpoint.term == term {
                    self.lessor.checkpoint(&checkpoint.checkpoints, now);
                }
                Response::LeaseCheckpoint(LeaseCheckpointResponse { header: current(&self.kv) })
            }
            Request::LeaseExpire(expire) if expire.term != term => {
                tracing::debug!(id = expire.id, "apply: an expiry from another term does nothing");
                Response::LeaseRevoke(LeaseRevokeResponse { header: current(&self.kv) })
            }
            Request::LeaseExpire(expire) => self.revoke_lease(expire.id)?,
            Request::LeaseKeepAlive(keep_alive) => {
                Response::LeaseKeepAlive(self.renew_from_log(keep_alive.id, now))
            }
            Request::LeaseTimeToLive(_) | Request::LeaseLeases(_) => {
                self.serve_lease_read(request, now)?
            }
            Request::Compact(compact) => Response::Compact(self.kv.compact(compact.revision)?),
            Request::Cluster(ClusterRequest::MemberUpdate { id, peer_urls }) => {
                let change = MemberChange::Update { id: *id, peer_urls: peer_urls.clone() };
                self.membership.validate(&change)?;
                self.membership.apply(&change);
                self.members_response(None)
            }
            // Other membership changes travel as conf changes, never as normal entries.
            Request::Cluster(_) => return Err(ClusterError::MemberNotFound.into()),
        })
    }

    /// Removes a lease and deletes its keys in one revision.
    fn revoke_lease(&mut self, id: crate::api::LeaseId) -> Result<Response, Error> {
        let keys = self.lessor.revoke(id)?;
        let revision = self.kv.delete_keys(&keys);
        Ok(Response::LeaseRevoke(LeaseRevokeResponse { header: ResponseHeader::at(revision) }))
    }

    /// A renewal that travels through the log because the lease had a checkpointed remaining
    /// TTL: the checkpoint is cleared on every member, and a primary renews from `now`. A lease
    /// that is gone, or expired on the primary (its revoke is under way), answers TTL 0.
    fn renew_from_log(&mut self, id: crate::api::LeaseId, now: Instant) -> LeaseKeepAliveResponse {
        self.lessor.checkpoint(&[LeaseCheckpoint { id, remaining_ttl: 0 }], now);
        let ttl = match self.lessor.get(id) {
            None => 0,
            Some(lease) if !self.lessor.is_primary() => lease.ttl,
            Some(_) => self.lessor.renew(id, now).unwrap_or(0),
        };
        let header = ResponseHeader::at(self.kv.current_revision());
        LeaseKeepAliveResponse { header, id, ttl }
    }

    /// Serves TimeToLive and Leases from the local lessor. TimeToLive is only meaningful on the
    /// primary (a follower's leases have no expiry); a missing lease answers TTL -1, as etcd.
    pub fn serve_lease_read(&self, request: &Request, now: Instant) -> Result<Response, Error> {
        let header = ResponseHeader::at(self.kv.current_revision());
        Ok(match request {
            Request::LeaseTimeToLive(question) => {
                let id = question.id;
                let answer = match (self.lessor.get(id), self.lessor.remaining_secs(id, now)) {
                    (Some(lease), Some(remaining)) => LeaseTimeToLiveResponse {
                        header,
                        id,
                        ttl: remaining.unwrap_or(lease.ttl),
                        granted_ttl: lease.ttl,
                        keys: if question.keys {
                            lease.keys.iter().cloned().collect()
                        } else {
                            Vec::new()
                        },
                    },
                    _ => LeaseTimeToLiveResponse { header, id, ttl: -1, ..Default::default() },
                };
                Response::LeaseTimeToLive(answer)
            }
            Request::LeaseLeases(_) => {
                Response::LeaseLeases(LeaseLeasesResponse { header, leases: self.lessor.ids() })
            }
            _ => return Err(KvError::KeyNotFound.into()),
        })
    }
}

/// Checks a request as etcd's gRPC layer does, before it is proposed or served.
pub fn validate(request: &Request, max_txn_ops: usize) -> Result<(), KvError> {
    match request {
        Request::Range(range) => validate::check_range(range),
        Request::Put(put) => validate::check_put(put),
        Request::DeleteRange(delete) => validate::check_delete_range(delete),
        Request::Txn(txn) => validate::check_txn(txn, max_txn_ops),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{
        LeaseCheckpointRequest, LeaseExpireRequest, LeaseGrantRequest, LeaseRevokeRequest,
        PutRequest,
    };

    fn put_entry(sequence: u64, key: &str) -> Vec<u8> {
        let header = RequestHeader { proposer: 1, boot: 7, sequence };
        let put = PutRequest { key: key.into(), value: b"v".to_vec(), ..PutRequest::default() };
        InternalRequest { header, request: Request::Put(put) }.encode()
    }

    #[test]
    fn entries_apply_once_in_order() {
        let mut machine = StateMachine::new(Vec::new(), LeaseSettings::default());
        let (header, result) = machine.apply(3, 1, &put_entry(1, "a"), Instant::ZERO).unwrap();
        assert_eq!((header.sequence, machine.applied()), (1, 3));
        assert!(matches!(result, Ok(Response::Put(_))));
        assert!(
            machine.apply(3, 1, &put_entry(1, "a"), Instant::ZERO).is_none(),
            "replayed entries are skipped"
        );
        assert!(machine.apply(2, 1, &put_entry(2, "b"), Instant::ZERO).is_none());
        assert_eq!(machine.kv().current_revision(), 2, "one write applied");
        machine.skip(4);
        assert!(machine.apply(5, 1, b"", Instant::ZERO).is_none());
        assert_eq!(machine.applied(), 5);
    }

    #[test]
    fn a_snapshot_restores_the_same_state() {
        let mut machine = StateMachine::new(Vec::new(), LeaseSettings::default());
        for (index, key) in ["a", "b", "a"].iter().enumerate() {
            machine.apply(index as u64 + 1, 1, &put_entry(index as u64, key), Instant::ZERO);
        }
        let restored =
            StateMachine::restore(&machine.snapshot(), LeaseSettings::default()).unwrap();
        assert_eq!((restored.applied(), restored.kv().hash()), (3, machine.kv().hash()));
        assert!(StateMachine::restore(b"garbage", LeaseSettings::default()).is_err());
        let mut truncated = machine.snapshot();
        truncated.truncate(truncated.len() / 2);
        assert!(StateMachine::restore(&truncated, LeaseSettings::default()).is_err());
    }

    /// Found by the simulator: a duplicated forwarded proposal commits twice; it must apply once.
    #[test]
    fn a_request_committed_twice_takes_effect_once() {
        let mut machine = StateMachine::new(Vec::new(), LeaseSettings::default());
        assert!(machine.apply(1, 1, &put_entry(1, "a"), Instant::ZERO).is_some());
        assert!(
            machine.apply(2, 1, &put_entry(1, "a"), Instant::ZERO).is_none(),
            "the repeat is skipped"
        );
        assert_eq!((machine.applied(), machine.kv().current_revision()), (2, 2));
        let restored =
            StateMachine::restore(&machine.snapshot(), LeaseSettings::default()).unwrap();
        let mut restored = restored;
        assert!(
            restored.apply(3, 1, &put_entry(1, "a"), Instant::ZERO).is_none(),
            "snapshots remember applied requests"
        );
    }

    #[test]
    fn an_undecodable_entry_is_skipped_but_counted() {
        let mut machine = StateMachine::new(Vec::new(), LeaseSettings::default());
        assert!(machine.apply(1, 1, b"\xff\xff\xff", Instant::ZERO).is_none());
        assert_eq!((machine.applied(), machine.kv().current_revision()), (1, 1));
    }

    fn entry(sequence: u64, request: Request) -> Vec<u8> {
        InternalRequest { header: RequestHeader { proposer: 1, boot: 1, sequence }, request }
            .encode()
    }

    #[test]
    fn a_put_on_an_unknown_lease_fails() {
        let mut machine = StateMachine::new(Vec::new(), LeaseSettings::default());
        let put = PutRequest { key: b"k".to_vec(), lease: 5, ..PutRequest::default() };
        let (_, result) = machine.apply(1, 1, &entry(1, Request::Put(put)), Instant::ZERO).unwrap();
        assert_eq!(result, Err(Error::Kv(KvError::LeaseNotFound)));
    }

    #[test]
    fn revoke_deletes_the_attached_keys_in_one_revision() {
        let mut machine = StateMachine::new(Vec::new(), LeaseSettings::default());
        let now = Instant::ZERO;
        let grant = Request::LeaseGrant(LeaseGrantRequest { ttl: 1, id: 9 });
        let (_, granted) = machine.apply(1, 1, &entry(1, grant), now).unwrap();
        let Ok(Response::LeaseGrant(granted)) = granted else { panic!("{granted:?}") };
        assert_eq!((granted.id, granted.ttl), (9, 2), "raised to the minimum TTL");
        for (sequence, key) in [(2, "b"), (3, "a"), (4, "plain")] {
            let lease = if key == "plain" { 0 } else { 9 };
            let put = PutRequest { key: key.into(), lease, ..PutRequest::default() };
            let (_, put) =
                machine.apply(sequence + 1, 1, &entry(sequence, Request::Put(put)), now).unwrap();
            assert!(put.is_ok());
        }
        assert_eq!(machine.take_events().len(), 3, "every write's events are kept");
        let restored = StateMachine::restore(&machine.snapshot(), LeaseSettings::default());
        let mut restored = restored.unwrap();
        assert_eq!(restored.lessor().get(9).unwrap().keys.len(), 2, "attachments rebuilt");
        let revoke = Request::LeaseRevoke(LeaseRevokeRequest { id: 9 });
        let (_, revoked) = restored.apply(6, 1, &entry(6, revoke), now).unwrap();
        let Ok(Response::LeaseRevoke(revoked)) = revoked else { panic!("{revoked:?}") };
        assert_eq!(revoked.header.revision, 5, "both keys go in one revision");
        let events = restored.take_events();
        let keys: Vec<&[u8]> = events.iter().map(|e| &e.kv.key[..]).collect();
        assert_eq!(keys, [&b"a"[..], b"b"], "deleted in key order");
        assert!(restored.kv().get_live(b"plain").is_some());
        let again = Request::LeaseRevoke(LeaseRevokeRequest { id: 9 });
        let (_, again) = restored.apply(7, 1, &entry(7, again), now).unwrap();
        assert_eq!(again, Err(Error::Kv(KvError::LeaseNotFound)));
    }

    /// Found by the simulator: an old leader's expiry, forwarded to the next leader after that
    /// one had renewed the lease, revoked a lease a client had just kept alive.
    #[test]
    fn an_expiry_applies_only_in_the_term_that_decided_it() {
        let mut machine = StateMachine::new(Vec::new(), LeaseSettings::default());
        let now = Instant::ZERO;
        let grant = Request::LeaseGrant(LeaseGrantRequest { ttl: 5, id: 9 });
        let (_, result) = machine.apply(1, 1, &entry(1, grant), now).unwrap();
        assert!(result.is_ok(), "{result:?}");
        let expire = |term| Request::LeaseExpire(LeaseExpireRequest { id: 9, term });
        let (_, result) = machine.apply(2, 3, &entry(2, expire(2)), now).unwrap();
        assert!(result.is_ok(), "{result:?}");
        assert!(machine.lessor().exists(9), "decided in term 2, committed in term 3: ignored");
        let stale = LeaseCheckpoint { id: 9, remaining_ttl: 1 };
        let checkpoint = LeaseCheckpointRequest { checkpoints: vec![stale], term: 2 };
        let (_, result) =
            machine.apply(3, 3, &entry(3, Request::LeaseCheckpoint(checkpoint)), now).unwrap();
        assert!(result.is_ok(), "{result:?}");
        assert_eq!(machine.lessor().get(9).unwrap().remaining_ttl, 0, "stale remainder ignored");
        let (_, result) = machine.apply(4, 3, &entry(4, expire(3)), now).unwrap();
        assert!(result.is_ok(), "{result:?}");
        assert!(!machine.lessor().exists(9), "decided and committed in term 3");
    }
}
