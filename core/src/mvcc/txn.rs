//! Put, DeleteRange and Txn with etcd 3.4's semantics (`applierV3backend`).
//!
//! A transaction is decided before it writes: every compare, nested ones included, is evaluated
//! against the state before the transaction (the *path*: which branch each level takes); then the
//! puts on that path are checked (`ignore_value`/`ignore_lease` need an existing key, leases must
//! exist), then its ranges (revisions neither compacted nor in the future). Only then do the ops
//! run, in order, in one write transaction: later ops see earlier ops' writes, every change gets
//! the next sub-revision, and the whole transaction takes one main revision if it changed anything.

use super::store::{KvStore, WriteTxn};
use super::{validate, KeyRange};
use crate::api::{
    Compare, CompareResult, CompareTarget, DeleteRangeRequest, DeleteRangeResponse, KeyValue,
    KvError, LeaseId, PutRequest, PutResponse, RequestOp, ResponseHeader, ResponseOp, TxnRequest,
    TxnResponse, NO_LEASE,
};
use std::cmp::Ordering;

/// Which branch a transaction takes, and the paths of the nested transactions on that branch.
struct Path {
    succeeded: bool,
    nested: Vec<Path>,
}

impl KvStore {
    /// Writes one key (etcd's Put). `lease_exists` answers whether a lease id is granted.
    pub fn put(
        &mut self,
        request: &PutRequest,
        lease_exists: impl Fn(LeaseId) -> bool,
    ) -> Result<PutResponse, KvError> {
        if request.lease != NO_LEASE && !lease_exists(request.lease) {
            return Err(KvError::LeaseNotFound);
        }
        let mut txn = self.write();
        let response = apply_put(&mut txn, request)?;
        txn.finish();
        Ok(response)
    }

    /// Deletes a key or a range of keys (etcd's DeleteRange).
    pub fn delete_range(&mut self, request: &DeleteRangeRequest) -> DeleteRangeResponse {
        let mut txn = self.write();
        let response = apply_delete(&mut txn, request);
        txn.finish();
        response
    }

    /// Runs a transaction atomically at one revision (etcd's Txn). Callers check the request with
    /// [`validate::check_txn`] first, as etcd's gRPC layer does; the duplicate-key rule that apply
    /// relies on is checked here again, so an unchecked request cannot break the store.
    pub fn txn(
        &mut self,
        request: &TxnRequest,
        lease_exists: impl Fn(LeaseId) -> bool,
    ) -> Result<TxnResponse, KvError> {
        validate::check_txn_intervals(request)?;
        let path = self.compare_path(request);
        if !is_read_only(request) {
            for_each_op_on_path(request, &path, &mut |op| self.check_put(op, &lease_exists))?;
        }
        for_each_op_on_path(request, &path, &mut |op| self.check_range(op))?;
        let mut txn = self.write();
        let mut response = apply_txn(&mut txn, request, &path);
        response.header = ResponseHeader::at(txn.finish());
        Ok(response)
    }

    /// Evaluates every compare of the transaction and of the nested transactions it will run.
    fn compare_path(&self, request: &TxnRequest) -> Path {
        let succeeded = request.compare.iter().all(|compare| self.holds(compare));
        let nested = branch(request, succeeded)
            .iter()
            .filter_map(|op| match op {
                RequestOp::Txn(nested) => Some(self.compare_path(nested)),
                _ => None,
            })
            .collect();
        Path { succeeded, nested }
    }

    /// Whether a compare holds now: for every key of its range, or for an absent key's zero
    /// values when the range is empty (a value compare on no key always fails, as in etcd).
    fn holds(&self, compare: &Compare) -> bool {
        let range = KeyRange::new(&compare.key, &compare.range_end);
        let current = self.current_revision();
        let mut any = false;
        let all = self.visible(range, current).all(|(key, version)| {
            any = true;
            compare_kv(compare, &version.to_key_value(key, true))
        });
        match (any, &compare.target) {
            (true, _) => all,
            (false, CompareTarget::Value(_)) => false,
            (false, _) => compare_kv(compare, &KeyValue::default()),
        }
    }

    /// etcd's `checkRequestPut`: keys that must exist do, and leases are granted.
    fn check_put(&self, op: &RequestOp, lease_exists: &impl Fn(LeaseId) -> bool) -> CheckResult {
        let RequestOp::Put(put) = op else {
            return Ok(());
        };
        if (put.ignore_value || put.ignore_lease) && self.get_live(&put.key).is_none() {
            return Err(KvError::KeyNotFound);
        }
        if put.lease != NO_LEASE && !lease_exists(put.lease) {
            return Err(KvError::LeaseNotFound);
        }
        Ok(())
    }

    /// etcd's `checkRequestRange`: an explicit revision is neither future nor compacted. (Like
    /// etcd, a negative revision counts as compacted here, while a plain Range reads it as 0.)
    fn check_range(&self, op: &RequestOp) -> CheckResult {
        let RequestOp::Range(range) = op else {
            return Ok(());
        };
        match range.revision {
            0 => Ok(()),
            revision if revision > self.current_revision() => Err(KvError::FutureRevision),
            revision if revision < self.compacted_revision() => Err(KvError::Compacted),
            _ => Ok(()),
        }
    }
}

type CheckResult = Result<(), KvError>;

/// The ops a transaction runs for its compare outcome.
fn branch(request: &TxnRequest, succeeded: bool) -> &[RequestOp] {
    if succeeded {
        &request.success
    } else {
        &request.failure
    }
}

/// etcd's `isTxnReadonly`: no branch holds anything but ranges.
pub fn is_read_only(request: &TxnRequest) -> bool {
    let only_ranges = |ops: &[RequestOp]| ops.iter().all(|op| matches!(op, RequestOp::Range(_)));
    only_ranges(&request.success) && only_ranges(&request.failure)
}

/// Calls `check` on every non-transaction op the path will run, depth first, in order.
fn for_each_op_on_path(
    request: &TxnRequest,
    path: &Path,
    check: &mut dyn FnMut(&RequestOp) -> CheckResult,
) -> CheckResult {
    let mut nested_paths = path.nested.iter();
    for op in branch(request, path.succeeded) {
        match op {
            RequestOp::Txn(nested) => {
                let nested_path = nested_paths.next().expect("a path per nested txn");
                for_each_op_on_path(nested, nested_path, check)?;
            }
            other => check(other)?,
        }
    }
    Ok(())
}

/// Runs the branch the path chose. Every check that could fail already passed, so the ops
/// cannot fail; the `expect`s state that invariant.
fn apply_txn(txn: &mut WriteTxn<'_>, request: &TxnRequest, path: &Path) -> TxnResponse {
    let mut nested_paths = path.nested.iter();
    let mut responses = Vec::new();
    for op in branch(request, path.succeeded) {
        let response = match op {
            RequestOp::Range(range) => ResponseOp::Range(
                txn.store().range_seen_at(range, txn.revision()).expect("range checked"),
            ),
            RequestOp::Put(put) => ResponseOp::Put(apply_put(txn, put).expect("put checked")),
            RequestOp::DeleteRange(delete) => ResponseOp::DeleteRange(apply_delete(txn, delete)),
            RequestOp::Txn(nested) => {
                let nested_path = nested_paths.next().expect("a path per nested txn");
                ResponseOp::Txn(apply_txn(txn, nested, nested_path))
            }
        };
        responses.push(response);
    }
    // A nested transaction's header stays empty; only the outermost one gets the revision.
    TxnResponse { header: ResponseHeader::default(), succeeded: path.succeeded, responses }
}

/// Writes one key inside a write transaction.
fn apply_put(txn: &mut WriteTxn<'_>, request: &PutRequest) -> Result<PutResponse, KvError> {
    let needs_previous = request.prev_kv || request.ignore_value || request.ignore_lease;
    let previous = if needs_previous { txn.store().get_live(&request.key) } else { None };
    let (value, lease) = match &previous {
        None if request.ignore_value || request.ignore_lease => return Err(KvError::KeyNotFound),
        Some(previous) => (
            if request.ignore_value { &previous.value } else { &request.value },
            if request.ignore_lease { previous.lease } else { request.lease },
        ),
        None => (&request.value, request.lease),
    };
    txn.put(&request.key, value.as_slice().into(), lease);
    Ok(PutResponse {
        header: ResponseHeader::at(txn.revision()),
        prev_kv: previous.filter(|_| request.prev_kv),
    })
}

/// Deletes a range inside a write transaction.
fn apply_delete(txn: &mut WriteTxn<'_>, request: &DeleteRangeRequest) -> DeleteRangeResponse {
    let deleted = txn.delete_range(KeyRange::new(&request.key, &request.range_end));
    DeleteRangeResponse {
        header: ResponseHeader::at(txn.revision()),
        deleted: deleted.len() as i64,
        prev_kvs: if request.prev_kv { deleted } else { Vec::new() },
    }
}

/// etcd's `compareKV`: the key's field against the compare's operand.
fn compare_kv(compare: &Compare, kv: &KeyValue) -> bool {
    let ordering = match &compare.target {
        CompareTarget::Value(value) => kv.value.as_slice().cmp(value.as_slice()),
        CompareTarget::Create(revision) => kv.create_revision.cmp(revision),
        CompareTarget::Mod(revision) => kv.mod_revision.cmp(revision),
        CompareTarget::Version(version) => kv.version.cmp(version),
        CompareTarget::Lease(lease) => kv.lease.cmp(lease),
    };
    match compare.result {
        CompareResult::Equal => ordering == Ordering::Equal,
        CompareResult::NotEqual => ordering != Ordering::Equal,
        CompareResult::Greater => ordering == Ordering::Greater,
        CompareResult::Less => ordering == Ordering::Less,
    }
}
