//! What a member counts for its operators: etcd's metrics, as plain numbers.
//!
//! The node keeps a [`Tally`] of events that only ever count up (operations applied, leases
//! granted, leader changes, failed proposals) and answers [`crate::node::Node::stats`] with it
//! and the gauges of the moment ([`NodeStats`]). Nothing here feeds a decision or an output of
//! the node, and nothing is replicated: each member counts what it saw, as each etcd member
//! does. The driver turns them into Prometheus metrics; durations are the driver's to measure,
//! since the core has no clock of its own.

use crate::api::{Request, Response, ResponseOp, TxnResponse};
use std::collections::BTreeMap;

/// Counters that only go up, from this member's start.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Tally {
    /// Puts applied or served, each op of a transaction counted (etcd's `mvcc_put_total`).
    pub puts: u64,
    /// Deletions, counted as puts are (`mvcc_delete_total`).
    pub deletes: u64,
    /// Ranges, counted as puts are (`mvcc_range_total`).
    pub ranges: u64,
    /// Transactions of more than one op (`mvcc_txn_total`).
    pub txns: u64,
    /// Bytes of key and value over every put (`mvcc_total_put_size_in_bytes`).
    pub put_bytes: u64,
    /// Leases granted (`lease_granted_total`).
    pub leases_granted: u64,
    /// Leases revoked, by request or expiry (`lease_revoked_total`).
    pub leases_revoked: u64,
    /// Renewals the leader granted (`lease_renewed_total`).
    pub leases_renewed: u64,
    /// The TTLs of granted leases: seconds to how many (`lease_ttl_total`).
    pub lease_ttls: BTreeMap<i64, u64>,
    /// Events sent on watch streams (`mvcc_events_total`).
    pub events_sent: u64,
    /// Times this member saw a new leader (`server_leader_changes_seen_total`).
    pub leader_changes: u64,
    /// Proposals that timed out before they applied (`server_proposals_failed_total`).
    pub proposals_failed: u64,
    /// ReadIndex rounds asked again after no answer (`server_slow_read_indexes_total`).
    pub slow_read_indexes: u64,
    /// ReadIndex rounds a leader change abandoned (`server_read_indexes_failed_total`).
    pub read_indexes_failed: u64,
}

impl Tally {
    /// Counts the key-space operations of `request`, which was answered with `response`.
    pub fn count_kv(&mut self, request: &Request, response: &Response) {
        match (request, response) {
            (Request::Range(_), _) => self.ranges += 1,
            (Request::Put(put), _) => {
                self.puts += 1;
                self.put_bytes += (put.key.len() + put.value.len()) as u64;
            }
            (Request::DeleteRange(_), _) => self.deletes += 1,
            (Request::Txn(txn), Response::Txn(answer)) => {
                let before = self.puts + self.deletes + self.ranges;
                self.count_txn(answer, &txn.success, &txn.failure);
                if self.puts + self.deletes + self.ranges - before > 1 {
                    self.txns += 1;
                }
            }
            _ => {}
        }
    }

    /// Counts the ops of the branch of a transaction that ran (nested ones included).
    fn count_txn(
        &mut self,
        answer: &TxnResponse,
        success: &[crate::api::RequestOp],
        failure: &[crate::api::RequestOp],
    ) {
        let branch = if answer.succeeded { success } else { failure };
        for (op, response) in branch.iter().zip(&answer.responses) {
            match (op, response) {
                (crate::api::RequestOp::Put(put), _) => {
                    self.puts += 1;
                    self.put_bytes += (put.key.len() + put.value.len()) as u64;
                }
                (_, ResponseOp::Range(_)) => self.ranges += 1,
                (_, ResponseOp::DeleteRange(_)) => self.deletes += 1,
                (crate::api::RequestOp::Txn(inner), ResponseOp::Txn(answer)) => {
                    self.count_txn(answer, &inner.success, &inner.failure)
                }
                _ => {}
            }
        }
    }

    /// Counts a lease granted with `ttl` seconds.
    pub fn lease_granted(&mut self, ttl: i64) {
        self.leases_granted += 1;
        *self.lease_ttls.entry(ttl).or_default() += 1;
    }
}

/// A member's counters and gauges at one moment, as [`crate::node::Node::stats`] reports them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NodeStats {
    /// The counters.
    pub tally: Tally,
    /// This member's id.
    pub id: u64,
    /// Whether the member knows a leader.
    pub has_leader: bool,
    /// Whether the member leads.
    pub is_leader: bool,
    /// Whether the member is a learner.
    pub is_learner: bool,
    /// The highest index known committed.
    pub committed_index: u64,
    /// The highest index applied.
    pub applied_index: u64,
    /// Writes proposed and not yet applied or failed.
    pub proposals_pending: u64,
    /// Live keys.
    pub keys: u64,
    /// The key space's current revision.
    pub current_revision: i64,
    /// The revision of the last compaction (0 when there was none, as etcd reports it).
    pub compact_revision: i64,
    /// Watchers on every stream.
    pub watchers: u64,
    /// Watchers behind the current revision (catching up, or waiting for room).
    pub slow_watchers: u64,
    /// Events waiting to be sent to watchers behind.
    pub pending_events: u64,
    /// Leases that exist.
    pub leases: u64,
    /// The state's size as allocated (Status's `dbSize`).
    pub db_size: u64,
    /// The state's size in use (Status's `dbSizeInUse`).
    pub db_size_in_use: u64,
    /// The quota in bytes (`--quota-backend-bytes`, its default for 0; negative: none).
    pub quota_bytes: i64,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{
        Compare, CompareResult, CompareTarget, DeleteRangeRequest, PutRequest, RangeRequest,
        RequestOp, TxnRequest,
    };

    fn put(key: &str, value: &str) -> RequestOp {
        RequestOp::Put(PutRequest { key: key.into(), value: value.into(), ..Default::default() })
    }

    fn answered(txn: &TxnRequest, succeeded: bool) -> Response {
        let branch = if succeeded { &txn.success } else { &txn.failure };
        let responses = branch
            .iter()
            .map(|op| match op {
                RequestOp::Put(_) => ResponseOp::Put(Default::default()),
                RequestOp::Range(_) => ResponseOp::Range(Default::default()),
                RequestOp::DeleteRange(_) => ResponseOp::DeleteRange(Default::default()),
                RequestOp::Txn(inner) => match answered(inner, true) {
                    Response::Txn(answer) => ResponseOp::Txn(answer),
                    _ => unreachable!(),
                },
            })
            .collect();
        Response::Txn(TxnResponse { succeeded, responses, ..Default::default() })
    }

    #[test]
    fn single_ops_count_once_and_are_no_transaction() {
        let mut tally = Tally::default();
        let request = Request::Put(PutRequest {
            key: b"k".to_vec(),
            value: b"vv".to_vec(),
            ..Default::default()
        });
        tally.count_kv(&request, &Response::Put(Default::default()));
        tally.count_kv(
            &Request::Range(RangeRequest::default()),
            &Response::Range(Default::default()),
        );
        let delete = Request::DeleteRange(DeleteRangeRequest::default());
        tally.count_kv(&delete, &Response::DeleteRange(Default::default()));
        assert_eq!((tally.puts, tally.ranges, tally.deletes, tally.txns), (1, 1, 1, 0));
        assert_eq!(tally.put_bytes, 3);
    }

    #[test]
    fn a_transaction_counts_the_ops_of_the_branch_that_ran() {
        let compare = Compare {
            key: b"a".to_vec(),
            range_end: Vec::new(),
            result: CompareResult::Equal,
            target: CompareTarget::Version(0),
        };
        let nested = TxnRequest {
            compare: vec![],
            success: vec![put("n", "1"), put("m", "2")],
            failure: vec![],
        };
        let txn = TxnRequest {
            compare: vec![compare],
            success: vec![put("a", "1"), RequestOp::Txn(nested)],
            failure: vec![RequestOp::Range(RangeRequest::default())],
        };
        let mut tally = Tally::default();
        tally.count_kv(&Request::Txn(txn.clone()), &answered(&txn, true));
        assert_eq!((tally.puts, tally.ranges, tally.txns), (3, 0, 1));
        // The failure branch holds one op: not a transaction in etcd's count.
        tally.count_kv(&Request::Txn(txn.clone()), &answered(&txn, false));
        assert_eq!((tally.puts, tally.ranges, tally.txns), (3, 1, 1));
    }

    #[test]
    fn lease_ttls_are_bucketed_by_value() {
        let mut tally = Tally::default();
        tally.lease_granted(10);
        tally.lease_granted(10);
        tally.lease_granted(60);
        assert_eq!(tally.leases_granted, 3);
        assert_eq!(tally.lease_ttls, BTreeMap::from([(10, 2), (60, 1)]));
    }
}
