//! Request checks that etcd runs in its gRPC layer, before a request is proposed to raft.
//!
//! They look only at the request, never at the store, so a member can refuse a malformed request
//! without a round through raft. Texts and codes are etcd's ([`KvError`]).
//!
//! One deliberate difference from etcd 3.4: in the duplicate-key rule, etcd reads a from-key
//! delete (`range_end == "\0"`) as the empty interval `[key, "\0")`, so a txn may delete a range
//! from a key and put a key inside it. Combined with `ignore_value` this makes etcd panic while
//! applying the entry on every member. Here a from-key delete covers every key from `key` on, and
//! such a txn is refused with `duplicate key given in txn request`.

use crate::api::{DeleteRangeRequest, KvError, PutRequest, RangeRequest, RequestOp, TxnRequest};
use std::collections::BTreeSet;

/// etcd's default `--max-txn-ops`: the most compares, or ops per branch, one txn may have.
pub const DEFAULT_MAX_TXN_OPS: usize = 128;

/// Checks a Range request: the key must be given.
pub fn check_range(request: &RangeRequest) -> Result<(), KvError> {
    non_empty(&request.key)
}

/// Checks a Put request: a key; no value with `ignore_value`; no lease with `ignore_lease`.
pub fn check_put(request: &PutRequest) -> Result<(), KvError> {
    non_empty(&request.key)?;
    if request.ignore_value && !request.value.is_empty() {
        return Err(KvError::ValueProvided);
    }
    if request.ignore_lease && request.lease != 0 {
        return Err(KvError::LeaseProvided);
    }
    Ok(())
}

/// Checks a DeleteRange request: the key must be given.
pub fn check_delete_range(request: &DeleteRangeRequest) -> Result<(), KvError> {
    non_empty(&request.key)
}

/// Checks a Txn request: at most `max_ops` compares and ops per branch (nested transactions get
/// what their parent leaves), every key given, every op well-formed, and no branch writing a key
/// twice ([`check_txn_intervals`]).
pub fn check_txn(request: &TxnRequest, max_ops: usize) -> Result<(), KvError> {
    check_txn_shape(request, max_ops as i64)?;
    check_txn_intervals(request)
}

/// etcd's `checkTxnRequest`.
fn check_txn_shape(request: &TxnRequest, max_ops: i64) -> Result<(), KvError> {
    let ops = request.compare.len().max(request.success.len()).max(request.failure.len()) as i64;
    if ops > max_ops {
        return Err(KvError::TooManyOps);
    }
    for compare in &request.compare {
        non_empty(&compare.key)?;
    }
    for op in request.success.iter().chain(&request.failure) {
        match op {
            RequestOp::Range(range) => check_range(range)?,
            RequestOp::Put(put) => check_put(put)?,
            RequestOp::DeleteRange(delete) => check_delete_range(delete)?,
            RequestOp::Txn(nested) => check_txn_shape(nested, max_ops - ops)?,
        }
    }
    Ok(())
}

/// The duplicate-key rule: within a branch, no key is put twice and no put falls inside a
/// deleted range. A nested transaction's two branches may each put the same key (only one runs).
pub fn check_txn_intervals(request: &TxnRequest) -> Result<(), KvError> {
    check_branch(&request.success)?;
    check_branch(&request.failure)?;
    Ok(())
}

/// A deleted interval `[start, end)`; `end == None` reaches past every key.
struct Deleted {
    start: Vec<u8>,
    end: Option<Vec<u8>>,
}

impl Deleted {
    fn of(request: &DeleteRangeRequest) -> Self {
        let start = request.key.clone();
        let end = match request.range_end.as_slice() {
            [] => Some([&request.key[..], &[0]].concat()),
            [0] => None,
            end => Some(end.to_vec()),
        };
        Deleted { start, end }
    }

    fn covers(&self, key: &[u8]) -> bool {
        self.start.as_slice() <= key && self.end.as_deref().is_none_or(|end| key < end)
    }
}

/// The keys a branch puts and the intervals it deletes, or the duplicate-key error (etcd's
/// `checkIntervals`, with the from-key difference the module documentation describes).
fn check_branch(ops: &[RequestOp]) -> Result<(BTreeSet<&[u8]>, Vec<Deleted>), KvError> {
    let mut deleted: Vec<Deleted> = ops
        .iter()
        .filter_map(|op| match op {
            RequestOp::DeleteRange(delete) => Some(Deleted::of(delete)),
            _ => None,
        })
        .collect();
    let is_deleted = |deleted: &[Deleted], key: &[u8]| deleted.iter().any(|d| d.covers(key));
    let mut puts = BTreeSet::new();
    for op in ops {
        let RequestOp::Txn(nested) = op else { continue };
        let (puts_then, deleted_then) = check_branch(&nested.success)?;
        let (puts_else, deleted_else) = check_branch(&nested.failure)?;
        for key in &puts_then {
            if puts.contains(key) || is_deleted(&deleted, key) {
                return Err(KvError::DuplicateKey);
            }
            puts.insert(*key);
        }
        for key in &puts_else {
            let put_by_other_op = puts.contains(key) && !puts_then.contains(key);
            if put_by_other_op || is_deleted(&deleted, key) {
                return Err(KvError::DuplicateKey);
            }
            puts.insert(*key);
        }
        deleted.extend(deleted_then);
        deleted.extend(deleted_else);
    }
    for op in ops {
        let RequestOp::Put(put) = op else { continue };
        if !puts.insert(put.key.as_slice()) || is_deleted(&deleted, &put.key) {
            return Err(KvError::DuplicateKey);
        }
    }
    Ok((puts, deleted))
}

fn non_empty(key: &[u8]) -> Result<(), KvError> {
    if key.is_empty() {
        Err(KvError::EmptyKey)
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::Compare;

    fn put(key: &str) -> RequestOp {
        RequestOp::Put(PutRequest { key: key.into(), ..PutRequest::default() })
    }

    fn delete(key: &str, end: &str) -> RequestOp {
        let request = DeleteRangeRequest { key: key.into(), range_end: end.into(), prev_kv: false };
        RequestOp::DeleteRange(request)
    }

    fn txn(success: Vec<RequestOp>, failure: Vec<RequestOp>) -> TxnRequest {
        TxnRequest { compare: Vec::new(), success, failure }
    }

    fn check(request: &TxnRequest) -> Result<(), KvError> {
        check_txn(request, DEFAULT_MAX_TXN_OPS)
    }

    #[test]
    fn single_requests() {
        assert_eq!(check_range(&RangeRequest::default()), Err(KvError::EmptyKey));
        assert_eq!(check_delete_range(&DeleteRangeRequest::default()), Err(KvError::EmptyKey));
        let mut request = PutRequest { key: b"k".to_vec(), ..PutRequest::default() };
        assert_eq!(check_put(&request), Ok(()));
        request.ignore_value = true;
        request.value = b"v".to_vec();
        assert_eq!(check_put(&request), Err(KvError::ValueProvided));
        request.value.clear();
        request.ignore_lease = true;
        request.lease = 7;
        assert_eq!(check_put(&request), Err(KvError::LeaseProvided));
    }

    #[test]
    fn duplicate_puts_and_overlapping_deletes_are_refused() {
        assert_eq!(check(&txn(vec![put("a"), put("a")], vec![])), Err(KvError::DuplicateKey));
        assert_eq!(
            check(&txn(vec![delete("a", "c"), put("b")], vec![])),
            Err(KvError::DuplicateKey)
        );
        assert_eq!(
            check(&txn(vec![put("b"), delete("b", "")], vec![])),
            Err(KvError::DuplicateKey)
        );
        assert_eq!(check(&txn(vec![delete("a", "c"), put("c")], vec![])), Ok(()));
        assert_eq!(check(&txn(vec![delete("a", "c"), delete("b", "d")], vec![])), Ok(()));
        // The branches are separate: one runs.
        assert_eq!(check(&txn(vec![put("a")], vec![put("a")])), Ok(()));
    }

    #[test]
    fn from_key_delete_covers_every_later_key() {
        // etcd 3.4 accepts this one (see the module documentation); stead refuses it.
        let request = txn(vec![delete("a", "\0"), put("zz")], vec![]);
        assert_eq!(check(&request), Err(KvError::DuplicateKey));
        assert_eq!(check(&txn(vec![delete("b", "\0"), put("a")], vec![])), Ok(()));
    }

    #[test]
    fn nested_transactions() {
        let nested = |success, failure| RequestOp::Txn(txn(success, failure));
        // Both branches of one nested txn may put the same key.
        let ok = txn(vec![nested(vec![put("a")], vec![put("a")])], vec![]);
        assert_eq!(check(&ok), Ok(()));
        // A nested put against the parent's put or delete is a duplicate.
        let twice = txn(vec![put("a"), nested(vec![put("a")], vec![])], vec![]);
        assert_eq!(check(&twice), Err(KvError::DuplicateKey));
        let under_delete = txn(vec![delete("a", "b"), nested(vec![], vec![put("a")])], vec![]);
        assert_eq!(check(&under_delete), Err(KvError::DuplicateKey));
        // A nested delete counts against the parent's puts.
        let nested_delete = txn(vec![nested(vec![delete("a", "")], vec![]), put("a")], vec![]);
        assert_eq!(check(&nested_delete), Err(KvError::DuplicateKey));
        // The else-branch put of one nested txn against another nested txn's put.
        let siblings =
            txn(vec![nested(vec![put("a")], vec![]), nested(vec![], vec![put("a")])], vec![]);
        assert_eq!(check(&siblings), Err(KvError::DuplicateKey));
    }

    #[test]
    fn op_limits_shrink_for_nested_transactions() {
        let ops = |n: usize| (0..n).map(|i| put(&format!("k{i}"))).collect::<Vec<_>>();
        assert_eq!(check_txn(&txn(ops(3), vec![]), 3), Ok(()));
        assert_eq!(check_txn(&txn(ops(4), vec![]), 3), Err(KvError::TooManyOps));
        // The parent uses 2 of 3; the nested txn may use 1.
        let nested = |n| RequestOp::Txn(txn(ops(n), vec![]));
        let fits = txn(vec![put("x"), nested(1)], vec![]);
        assert_eq!(check_txn(&fits, 3), Ok(()));
        let too_big = txn(vec![put("x"), nested(2)], vec![]);
        assert_eq!(check_txn(&too_big, 3), Err(KvError::TooManyOps));
    }

    #[test]
    fn compare_keys_must_be_given() {
        let mut request = txn(vec![], vec![]);
        request.compare.push(Compare::default());
        assert_eq!(check(&request), Err(KvError::EmptyKey));
        let empty_put = txn(vec![], vec![RequestOp::Put(PutRequest::default())]);
        assert_eq!(check(&empty_put), Err(KvError::EmptyKey));
    }
}
