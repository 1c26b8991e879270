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

pub mod alarm;
pub mod backup;
pub mod corrupt;
pub mod dedup;
pub mod membership;

use crate::api::{
    AlarmMember, AlarmRequest, AlarmResponse, AlarmType, AuthInfo, ClusterError, ClusterRequest,
    ClusterResponse, Error, Event, HashReportRequest, KvError, LeaseCheckpoint,
    LeaseCheckpointResponse, LeaseGrantResponse, LeaseKeepAliveResponse, LeaseLeasesResponse,
    LeaseRevokeResponse, LeaseTimeToLiveResponse, MaintenanceRequest, Member, Request, Response,
    ResponseHeader, ServerError,
};
use crate::auth::{AuthStore, TokenTable};
use crate::lease::{LeaseRecord, Lessor};
use crate::mvcc::{validate, KvStore};
use crate::stats::Tally;
use crate::time::{Duration, Instant};
use alarm::{Alarms, Quota, LEASE_OVERHEAD};
use corrupt::HashChecks;
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
    /// Who sent it and the auth revision that was checked at (`None`: no user).
    pub auth: Option<AuthInfo>,
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
const SNAPSHOT_FORMAT: u32 = 3;

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
    auth: AuthStore,
    alarms: Alarms,
    hash_checks: HashChecks,
}

/// How this member's state machine is set up: configuration, not replicated state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MachineSettings {
    /// The smallest TTL a lease gets, in seconds.
    pub min_ttl: i64,
    /// How often the leader checkpoints remaining TTLs; `None`: never (etcd's default).
    pub checkpoint_interval: Option<Duration>,
    /// The space quota (`--quota-backend-bytes`).
    pub quota: Quota,
}

impl Default for MachineSettings {
    /// etcd's defaults: a 2 s minimum (from a 1 s election timeout), no checkpoints, 2 GiB.
    fn default() -> Self {
        MachineSettings { min_ttl: 2, checkpoint_interval: None, quota: Quota::default() }
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
    auth: AuthStore,
    alarms: Alarms,
    hash_checks: HashChecks,
    /// Events applied since the node last took them.
    events: Vec<Event>,
    /// Not replicated: this member's tokens (see `auth::token`).
    tokens: TokenTable,
    /// Not replicated: the key space's size as the quota counts it (kept up to date).
    kv_size: u64,
    /// Not replicated: this member's quota.
    quota: Quota,
    /// Not replicated: the corruption-check reports this member owes, for the node to propose.
    reports: Vec<HashReportRequest>,
    /// Not replicated: an applied write went over the quota since the node last asked.
    over_quota: bool,
    /// Not replicated: what this member counted for its metrics (kept across restores).
    tally: Tally,
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
    pub fn new(members: Vec<Member>, settings: MachineSettings) -> Self {
        StateMachine {
            kv: KvStore::new(),
            membership: Membership::new(members),
            applied: 0,
            log_digest: 0,
            requests: dedup::AppliedRequests::default(),
            lessor: Lessor::new(settings.min_ttl, settings.checkpoint_interval),
            auth: AuthStore::default(),
            alarms: Alarms::default(),
            hash_checks: HashChecks::default(),
            events: Vec::new(),
            tokens: TokenTable::default(),
            kv_size: 0,
            quota: settings.quota,
            reports: Vec::new(),
            over_quota: false,
            tally: Tally::default(),
        }
    }

    /// The auth state.
    pub fn auth(&self) -> &AuthStore {
        &self.auth
    }

    /// This member's tokens.
    pub fn tokens_mut(&mut self) -> &mut TokenTable {
        &mut self.tokens
    }

    /// The raised alarms.
    pub fn alarms(&self) -> &Alarms {
        &self.alarms
    }

    /// The state's size as the quota counts it: the key space's versions and the leases.
    pub fn size_bytes(&self) -> u64 {
        self.kv_size + self.lessor.len() as u64 * LEASE_OVERHEAD
    }

    /// Whether a request costing `cost` fits this member's quota now.
    pub fn quota_available(&self, cost: u64) -> bool {
        self.quota.available(self.size_bytes(), cost)
    }

    /// A digest of the whole replicated state (etcd's Hash): the key space, leases, auth,
    /// alarms and membership. Equal on members that applied the same entries, whatever their
    /// applied index.
    pub fn hash(&self) -> u32 {
        let rest = (self.lessor.to_records(), &self.auth, &self.alarms, &self.membership);
        let bytes = postcard::to_allocvec(&rest).expect("the state always encodes");
        crc32c::crc32c_append(self.kv.hash(), &bytes)
    }

    /// Whether an applied write went over the quota since the last call.
    pub fn take_over_quota(&mut self) -> bool {
        std::mem::take(&mut self.over_quota)
    }

    /// The corruption-check reports this member owes since the last call.
    pub fn take_reports(&mut self) -> Vec<HashReportRequest> {
        std::mem::take(&mut self.reports)
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
            auth: self.auth.clone(),
            alarms: self.alarms.clone(),
            hash_checks: self.hash_checks.clone(),
        };
        postcard::to_allocvec(&data).expect("snapshots always encode")
    }

    /// Rebuilds the state from [`StateMachine::snapshot`] bytes, or says why they are not a
    /// valid state. The lessor comes back as a follower's: a leader promotes it again.
    pub fn restore(bytes: &[u8], settings: MachineSettings) -> Result<StateMachine, String> {
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
        let kv_size = kv.size_bytes();
        Ok(StateMachine {
            kv,
            membership: data.membership,
            applied: data.applied,
            log_digest: data.log_digest,
            requests: data.requests,
            lessor,
            auth: data.auth,
            alarms: data.alarms,
            hash_checks: data.hash_checks,
            events: Vec::new(),
            tokens: TokenTable::default(),
            kv_size,
            quota: settings.quota,
            reports: Vec::new(),
            over_quota: false,
            tally: Tally::default(),
        })
    }

    /// What this member counted for its metrics.
    pub fn tally(&self) -> &Tally {
        &self.tally
    }

    /// The counters, to count what the node serves itself (and to carry them over a restore).
    pub fn tally_mut(&mut self) -> &mut Tally {
        &mut self.tally
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
        let compacted = self.kv.compacted_revision();
        let fits = self.quota_available(alarm::cost(&request.request));
        let caller = request.auth.as_ref();
        let mut result = self.execute(index, &request.request, caller, term, now);
        if let Ok(response) = &result {
            self.tally.count_kv(&request.request, response);
        }
        let after = self.kv.current_revision();
        if after > before {
            let events = self.kv.events_at(after);
            self.kv_size += events
                .iter()
                .map(|e| crate::mvcc::version_cost(e.kv.key.len(), e.kv.value.len()))
                .sum::<u64>();
            self.lessor.observe(&events);
            self.events.extend(events);
        }
        if self.kv.compacted_revision() != compacted {
            self.kv_size = self.kv.size_bytes();
        }
        // etcd's quota applier: the write is applied, but answered as over the quota, and the
        // member raises the NOSPACE alarm.
        if !fits && result.is_ok() {
            self.over_quota = true;
            result = Err(ServerError::NoSpace.into());
        }
        Some((request.header, result))
    }

    /// Refuses what a raised alarm or the caller's permissions forbid (etcd's corrupt, capped
    /// and auth appliers, in that order).
    fn admit(&self, request: &Request, caller: Option<&AuthInfo>) -> Result<(), Error> {
        let kv_or_lease = matches!(
            request,
            Request::Put(_)
                | Request::Range(_)
                | Request::DeleteRange(_)
                | Request::Txn(_)
                | Request::Compact(_)
                | Request::LeaseGrant(_)
                | Request::LeaseRevoke(_)
                | Request::LeaseExpire(_)
        );
        if kv_or_lease && self.alarms.is_raised(AlarmType::Corrupt) {
            return Err(ServerError::Corrupt.into());
        }
        if alarm::cost(request) > 0 && self.alarms.is_raised(AlarmType::NoSpace) {
            return Err(ServerError::NoSpace.into());
        }
        let lease_keys =
            |id| self.lessor.get(id).map(|l| l.keys.iter().cloned().collect()).unwrap_or_default();
        crate::auth::check_request(&self.auth, caller, request, lease_keys)?;
        Ok(())
    }

    /// Runs a request against the key space and the leases.
    fn execute(
        &mut self,
        index: u64,
        request: &Request,
        caller: Option<&AuthInfo>,
        term: u64,
        now: Instant,
    ) -> Result<Response, Error> {
        self.admit(request, caller)?;
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
                self.tally.lease_granted(ttl);
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
            Request::Cluster(ClusterRequest::Publish { id, name, client_urls }) => {
                self.membership.publish(*id, name, client_urls);
                self.members_response(None)
            }
            // Other membership changes travel as conf changes, never as normal entries.
            Request::Cluster(_) => return Err(ClusterError::MemberNotFound.into()),
            Request::Auth(auth) => {
                let (mut response, effect) = self.auth.apply(auth, caller, index)?;
                if let Some((token, user)) = effect.token {
                    self.tokens.assign(token, user, now);
                }
                if let Some(user) = effect.revoke_tokens_of {
                    self.tokens.revoke_user(&user);
                }
                if effect.revoke_all_tokens {
                    self.tokens.clear();
                }
                response.header = current(&self.kv);
                Response::Auth(response)
            }
            Request::Maintenance(MaintenanceRequest::Alarm(alarm)) => {
                let alarms = self.alarms.apply(alarm);
                Response::Alarm(AlarmResponse { header: current(&self.kv), alarms })
            }
            // The rest of Maintenance is served by each member on its own.
            Request::Maintenance(_) => return Err(ServerError::InternalOnly.into()),
            Request::HashCheck => {
                self.hash_checks.start(index);
                let digest = self.kv.hash_kv(0).expect("the current revision always hashes");
                self.reports.push(HashReportRequest {
                    check: index,
                    member_id: 0,
                    hash: digest.hash,
                    revision: digest.current_revision,
                    compact_revision: digest.compact_revision,
                });
                Response::Empty(current(&self.kv))
            }
            Request::HashReport(report) => {
                let voters = self.membership.voter_ids();
                for member_id in self.hash_checks.record(report, &voters) {
                    let corrupt = AlarmMember { member_id, alarm: AlarmType::Corrupt };
                    if !self.alarms.contains(&corrupt) {
                        tracing::error!(
                            member_id,
                            "corruption check: digest differs from the majority's"
                        );
                        let action = crate::api::AlarmAction::Activate;
                        self.alarms.apply(&AlarmRequest {
                            action,
                            member_id,
                            alarm: corrupt.alarm,
                        });
                    }
                }
                Response::Empty(current(&self.kv))
            }
        })
    }

    /// Removes a lease and deletes its keys in one revision.
    fn revoke_lease(&mut self, id: crate::api::LeaseId) -> Result<Response, Error> {
        let keys = self.lessor.revoke(id)?;
        self.tally.leases_revoked += 1;
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
        if ttl > 0 && self.lessor.is_primary() {
            self.tally.leases_renewed += 1;
        }
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
mod tests;
