//! The KV workload: clients that put, delete, compare-and-swap and read (linearizable and
//! serializable) a small key space on random members, and record every operation with its
//! invocation and completion for the linearizability checker.
//!
//! Like etcd's client, a client whose chosen member is down sends to another running one, and
//! a read that failed because leadership changed (`leader changed`, `no leader`, a timeout) is
//! retried at once as a new operation. Writes are not retried: a retried write may apply twice.

use super::{leases, Event, World};
use crate::history::{OpKind, Outcome};
use rand::Rng;
use stead_core::api::{
    CompactionRequest, Compare, CompareResult, CompareTarget, DeleteRangeRequest, Error,
    PutRequest, RangeRequest, Request, RequestOp, Response, ResponseOp, ServerError, TxnRequest,
};
use stead_core::node::Input;
use stead_core::time::Duration;

impl World {
    /// A client picks its next operation and a member to send it to.
    pub(super) fn client_next(&mut self, client: usize) {
        if !self.clients_on {
            return;
        }
        let scenario = &self.scenario;
        let key = format!("key{}", self.workload.gen_range(0..scenario.keys));
        let kind = if let Some(retry) = self.read_retries.remove(&client) {
            retry
        } else if self.workload.gen_bool(scenario.read_fraction) {
            let serializable = self.workload.gen_bool(scenario.serializable_fraction);
            if self.workload.gen_bool(scenario.range_fraction) {
                let first = self.workload.gen_range(0..scenario.keys);
                let last = self.workload.gen_range(first + 1..=scenario.keys);
                let end = if last == scenario.keys { "kez".into() } else { format!("key{last}") };
                OpKind::Range { start: format!("key{first}"), end, serializable }
            } else {
                OpKind::Get { key, serializable }
            }
        } else if self.workload.gen_bool(scenario.delete_fraction) {
            OpKind::Delete { key }
        } else if self.workload.gen_bool(scenario.cas_fraction) {
            self.next_value += 1;
            let expected = self.seen.get(&(client, key.clone())).cloned().flatten();
            OpKind::Cas { key, expected, value: format!("v{}", self.next_value) }
        } else {
            self.next_value += 1;
            OpKind::Put { key, value: format!("v{}", self.next_value) }
        };
        let members: Vec<u64> = self.members.iter().copied().collect();
        let mut target = members[self.workload.gen_range(0..members.len())];
        if !matches!(self.hosts.get(&target), Some(Some(_))) {
            let running: Vec<u64> =
                self.running_members().into_iter().filter(|m| self.members.contains(m)).collect();
            if !running.is_empty() {
                target = running[self.workload.gen_range(0..running.len())];
            }
        }
        let op = self.history.invoke(client, kind.clone(), self.now);
        if !matches!(self.hosts.get(&target), Some(Some(_))) {
            // Connection refused: nothing was sent.
            return self.finish_op(op, Outcome::Failed("connection refused".into()));
        }
        self.in_flight.insert(op, target as usize);
        self.at(Duration::from_millis(self.scenario.op_timeout_ms), Event::ClientTimeout(op));
        let request = match kind {
            OpKind::Put { key, value } => Request::Put(PutRequest {
                key: key.into_bytes(),
                value: value.into_bytes(),
                ..Default::default()
            }),
            OpKind::Delete { key } => Request::DeleteRange(DeleteRangeRequest {
                key: key.into_bytes(),
                ..Default::default()
            }),
            OpKind::Get { key, serializable } => Request::Range(RangeRequest {
                key: key.into_bytes(),
                serializable,
                ..Default::default()
            }),
            OpKind::Range { start, end, serializable } => Request::Range(RangeRequest {
                key: start.into_bytes(),
                range_end: end.into_bytes(),
                serializable,
                ..Default::default()
            }),
            OpKind::Cas { key, expected, value } => {
                let target = match expected {
                    Some(expected) => CompareTarget::Value(expected.into_bytes()),
                    None => CompareTarget::Version(0),
                };
                let key = key.into_bytes();
                let compare = Compare {
                    result: CompareResult::Equal,
                    target,
                    key: key.clone(),
                    range_end: Vec::new(),
                };
                let put = PutRequest {
                    key: key.clone(),
                    value: value.into_bytes(),
                    ..Default::default()
                };
                let read = RangeRequest { key, ..Default::default() };
                Request::Txn(TxnRequest {
                    compare: vec![compare],
                    success: vec![RequestOp::Put(put)],
                    failure: vec![RequestOp::Range(read)],
                })
            }
        };
        self.input(target, Input::Client { id: op as u64, credential: None, request });
    }

    pub(super) fn answer(&mut self, op: usize, result: Result<Response, Error>) {
        if let Some(admin) = self.admin.remove(&(op as u64)) {
            return self.admin_answered(admin, result);
        }
        if op as u64 >= leases::LEASE_REQUESTS {
            return self.lease_answered(op as u64, result);
        }
        if self.in_flight.remove(&op).is_none() {
            return; // The client gave up on it already.
        }
        if result == Err(Error::Server(ServerError::NoSpace)) {
            self.nospace_refusals += 1;
        }
        let outcome = match (&self.history.ops[op].kind, result) {
            (_, Ok(Response::Put(put))) => Outcome::Put { revision: put.header.revision },
            (_, Ok(Response::DeleteRange(d))) => {
                Outcome::Delete { revision: d.header.revision, deleted: d.deleted }
            }
            (OpKind::Range { .. }, Ok(Response::Range(range))) => {
                let text = |bytes: &[u8]| String::from_utf8_lossy(bytes).into_owned();
                let kvs = range.kvs.iter().map(|kv| (text(&kv.key), text(&kv.value))).collect();
                Outcome::Range { revision: range.header.revision, kvs }
            }
            (_, Ok(Response::Range(range))) => {
                let value =
                    range.kvs.first().map(|kv| String::from_utf8_lossy(&kv.value).into_owned());
                Outcome::Get { revision: range.header.revision, value }
            }
            (_, Ok(Response::Txn(txn))) => {
                let value = match txn.responses.first() {
                    Some(ResponseOp::Range(range)) => {
                        range.kvs.first().map(|kv| String::from_utf8_lossy(&kv.value).into_owned())
                    }
                    _ => None,
                };
                Outcome::Cas { revision: txn.header.revision, succeeded: txn.succeeded, value }
            }
            (OpKind::Get { .. } | OpKind::Range { .. }, Err(error)) => {
                Outcome::Failed(error.to_string())
            }
            // Refused outright: the request never took effect.
            (
                _,
                Err(Error::Server(
                    refusal @ (ServerError::NotSupportedForLearner
                    | ServerError::Stopped
                    | ServerError::TooManyRequests
                    | ServerError::RequestTooLarge),
                )),
            ) => Outcome::Failed(refusal.message().into()),
            // A write the server gave up on (timeout, leader change) may still commit.
            (_, Err(Error::Server(_))) => Outcome::Unknown,
            (_, Err(error)) => Outcome::Failed(error.to_string()),
            (_, Ok(other)) => Outcome::Failed(format!("unexpected answer {other:?}")),
        };
        let wrote = matches!(
            outcome,
            Outcome::Put { .. } | Outcome::Cas { succeeded: true, .. } | Outcome::Delete { .. }
        );
        if self.now >= self.safety_end && wrote {
            self.acknowledged_after_heal += 1;
        }
        self.finish_op(op, outcome);
    }

    /// Asks a random running member to compact, keeping the newest recorded revisions (the
    /// world has recorded everything below, so the checkers keep the whole history).
    pub(super) fn compact(&mut self) {
        if !self.faults_on {
            return;
        }
        let revision = self.logged_revision - self.scenario.compaction.keep_revisions;
        if revision <= self.compacted.max(1) {
            return self.schedule_fault(self.scenario.compaction.every_ms, Event::Compact);
        }
        if let Some(member) = self.workload_member() {
            if let Some(label) = self.fault_fires("compact") {
                self.compact_at(member, revision);
                self.log_fault(label, format!("member {member} compacts at revision {revision}"));
            }
        }
        self.schedule_fault(self.scenario.compaction.every_ms, Event::Compact);
    }

    /// Asks `member` to compact at `revision` (below what the world has recorded).
    pub(super) fn compact_at(&mut self, member: u64, revision: i64) {
        self.compacted = revision;
        let id = self.admin_request_id();
        let request = Request::Compact(CompactionRequest { revision, physical: true });
        self.input(member, Input::Client { id, credential: None, request });
    }

    pub(super) fn client_timeout(&mut self, op: usize) {
        if self.in_flight.remove(&op).is_some() {
            let outcome = match self.history.ops[op].kind {
                OpKind::Get { .. } | OpKind::Range { .. } => {
                    Outcome::Failed("client timeout".into())
                }
                _ => Outcome::Unknown,
            };
            self.finish_op(op, outcome);
        }
    }

    pub(super) fn finish_op(&mut self, op: usize, outcome: Outcome) {
        let learned = match (&self.history.ops[op].kind, &outcome) {
            (OpKind::Get { key, .. }, Outcome::Get { value, .. }) => {
                Some((key.clone(), value.clone()))
            }
            (OpKind::Put { key, value }, Outcome::Put { .. }) => {
                Some((key.clone(), Some(value.clone())))
            }
            (OpKind::Cas { key, value, .. }, Outcome::Cas { succeeded: true, .. }) => {
                Some((key.clone(), Some(value.clone())))
            }
            (OpKind::Cas { key, .. }, Outcome::Cas { value, .. }) => {
                Some((key.clone(), value.clone()))
            }
            (OpKind::Delete { key }, Outcome::Delete { .. }) => Some((key.clone(), None)),
            _ => None,
        };
        let client = self.history.ops[op].client;
        if let Some((key, value)) = learned {
            self.seen.insert((client, key), value);
        }
        let read = matches!(self.history.ops[op].kind, OpKind::Get { .. } | OpKind::Range { .. });
        let unavailable = [ServerError::LeaderChanged, ServerError::NoLeader, ServerError::Timeout]
            .iter()
            .any(|e| matches!(&outcome, Outcome::Failed(reason) if reason == e.message()));
        if read && unavailable {
            self.read_retries.insert(client, self.history.ops[op].kind.clone());
        }
        self.history.complete(op, outcome, self.now);
        let client = self.history.ops[op].client;
        let think = Duration::from_millis(self.workload.gen_range(0..=5));
        self.at(think, Event::ClientNext(client));
    }
}
