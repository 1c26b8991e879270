//! The apply pipeline: committed raft entries, in order, into the state machine.
//!
//! Every write a client makes travels through raft as an [`InternalRequest`] (postcard-encoded):
//! a header saying who proposed it, and the request. Applying is deterministic and idempotent. The
//! state machine remembers the index of the last entry it applied (etcd's consistent index), and an
//! entry at or below it is skipped, so replaying the log after a restart applies nothing twice.
//! A committed entry that does not decode is skipped by every member alike, so members never
//! diverge, and it is reported. A request whose entry was committed twice takes effect once
//! ([`dedup`]).

pub mod dedup;
pub mod membership;

use crate::api::{
    ClusterError, ClusterRequest, ClusterResponse, Error, KvError, Member, Request, Response,
};
use crate::mvcc::{validate, KvStore};
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
const SNAPSHOT_FORMAT: u32 = 1;

/// A state-machine snapshot as plain data.
#[derive(Serialize, Deserialize)]
struct SnapshotData {
    format: u32,
    applied: u64,
    kv: crate::mvcc::KvSnapshot,
    membership: Membership,
    log_digest: u32,
    requests: dedup::AppliedRequests,
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
    pub fn new(members: Vec<Member>) -> Self {
        StateMachine {
            kv: KvStore::new(),
            membership: Membership::new(members),
            applied: 0,
            log_digest: 0,
            requests: dedup::AppliedRequests::default(),
        }
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
        };
        postcard::to_allocvec(&data).expect("snapshots always encode")
    }

    /// Rebuilds the state from [`StateMachine::snapshot`] bytes, or says why they are not a
    /// valid state.
    pub fn restore(bytes: &[u8]) -> Result<StateMachine, String> {
        let data: SnapshotData =
            postcard::from_bytes(bytes).map_err(|e| format!("snapshot does not decode: {e}"))?;
        if data.format != SNAPSHOT_FORMAT {
            return Err(format!("unknown snapshot format {}", data.format));
        }
        let kv = KvStore::from_snapshot(data.kv)?;
        Ok(StateMachine {
            kv,
            membership: data.membership,
            applied: data.applied,
            log_digest: data.log_digest,
            requests: data.requests,
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

    /// Applies the normal entry at `index`. Returns its header and result, or `None` if it was
    /// applied before or carries nothing.
    pub fn apply(
        &mut self,
        index: u64,
        data: &[u8],
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
        Some((request.header, self.execute(&request.request)))
    }

    /// Runs a request against the key space. There is no lessor yet, so every lease id other
    /// than 0 is unknown.
    fn execute(&mut self, request: &Request) -> Result<Response, Error> {
        let no_leases = |_| false;
        Ok(match request {
            Request::Range(range) => Response::Range(self.kv.range(range)?),
            Request::Put(put) => Response::Put(self.kv.put(put, no_leases)?),
            Request::DeleteRange(delete) => Response::DeleteRange(self.kv.delete_range(delete)),
            Request::Txn(txn) => Response::Txn(self.kv.txn(txn, no_leases)?),
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
}

/// Checks a request as etcd's gRPC layer does, before it is proposed or served.
pub fn validate(request: &Request, max_txn_ops: usize) -> Result<(), KvError> {
    match request {
        Request::Range(range) => validate::check_range(range),
        Request::Put(put) => validate::check_put(put),
        Request::DeleteRange(delete) => validate::check_delete_range(delete),
        Request::Txn(txn) => validate::check_txn(txn, max_txn_ops),
        Request::Compact(_) | Request::Cluster(_) => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::PutRequest;

    fn put_entry(sequence: u64, key: &str) -> Vec<u8> {
        let header = RequestHeader { proposer: 1, boot: 7, sequence };
        let put = PutRequest { key: key.into(), value: b"v".to_vec(), ..PutRequest::default() };
        InternalRequest { header, request: Request::Put(put) }.encode()
    }

    #[test]
    fn entries_apply_once_in_order() {
        let mut machine = StateMachine::new(Vec::new());
        let (header, result) = machine.apply(3, &put_entry(1, "a")).unwrap();
        assert_eq!((header.sequence, machine.applied()), (1, 3));
        assert!(matches!(result, Ok(Response::Put(_))));
        assert!(machine.apply(3, &put_entry(1, "a")).is_none(), "replayed entries are skipped");
        assert!(machine.apply(2, &put_entry(2, "b")).is_none());
        assert_eq!(machine.kv().current_revision(), 2, "one write applied");
        machine.skip(4);
        assert!(machine.apply(5, b"").is_none());
        assert_eq!(machine.applied(), 5);
    }

    #[test]
    fn a_snapshot_restores_the_same_state() {
        let mut machine = StateMachine::new(Vec::new());
        for (index, key) in ["a", "b", "a"].iter().enumerate() {
            machine.apply(index as u64 + 1, &put_entry(index as u64, key));
        }
        let restored = StateMachine::restore(&machine.snapshot()).unwrap();
        assert_eq!((restored.applied(), restored.kv().hash()), (3, machine.kv().hash()));
        assert!(StateMachine::restore(b"garbage").is_err());
        let mut truncated = machine.snapshot();
        truncated.truncate(truncated.len() / 2);
        assert!(StateMachine::restore(&truncated).is_err());
    }

    /// Found by the simulator: a duplicated forwarded proposal commits twice; it must apply once.
    #[test]
    fn a_request_committed_twice_takes_effect_once() {
        let mut machine = StateMachine::new(Vec::new());
        assert!(machine.apply(1, &put_entry(1, "a")).is_some());
        assert!(machine.apply(2, &put_entry(1, "a")).is_none(), "the repeat is skipped");
        assert_eq!((machine.applied(), machine.kv().current_revision()), (2, 2));
        let restored = StateMachine::restore(&machine.snapshot()).unwrap();
        let mut restored = restored;
        assert!(
            restored.apply(3, &put_entry(1, "a")).is_none(),
            "snapshots remember applied requests"
        );
    }

    #[test]
    fn an_undecodable_entry_is_skipped_but_counted() {
        let mut machine = StateMachine::new(Vec::new());
        assert!(machine.apply(1, b"\xff\xff\xff").is_none());
        assert_eq!((machine.applied(), machine.kv().current_revision()), (1, 1));
    }

    #[test]
    fn leases_are_unknown_until_there_is_a_lessor() {
        let mut machine = StateMachine::new(Vec::new());
        let header = RequestHeader { proposer: 1, boot: 1, sequence: 1 };
        let put = PutRequest { key: b"k".to_vec(), lease: 5, ..PutRequest::default() };
        let data = InternalRequest { header, request: Request::Put(put) }.encode();
        let (_, result) = machine.apply(1, &data).unwrap();
        assert_eq!(result, Err(Error::Kv(KvError::LeaseNotFound)));
    }
}
