//! Rule-by-rule tests of the request handlers, each named for the etcd rule it pins.
//! (`tests/mvcc_model.rs` checks random sequences against a reference model.)

use super::*;
use crate::api::*;

fn put(store: &mut KvStore, key: &str, value: &str) -> PutResponse {
    let request = PutRequest { key: key.into(), value: value.into(), ..PutRequest::default() };
    store.put(&request, |_| true).unwrap()
}

fn range_request(key: &str, end: &str) -> RangeRequest {
    RangeRequest { key: key.into(), range_end: end.into(), ..RangeRequest::default() }
}

fn keys(response: &RangeResponse) -> Vec<String> {
    response.kvs.iter().map(|kv| String::from_utf8(kv.key.clone()).unwrap()).collect()
}

fn delete(store: &mut KvStore, key: &str, end: &str) -> DeleteRangeResponse {
    let request = DeleteRangeRequest { key: key.into(), range_end: end.into(), prev_kv: true };
    store.delete_range(&request)
}

/// a=1 (rev 2), b=2 (rev 3), c=3 (rev 4), a=11 (rev 5), d=4 (rev 6), b deleted (rev 7).
fn sample() -> KvStore {
    let mut store = KvStore::new();
    for (key, value) in [("a", "1"), ("b", "2"), ("c", "3"), ("a", "11"), ("d", "4")] {
        put(&mut store, key, value);
    }
    delete(&mut store, "b", "");
    store.check_invariants();
    store
}

#[test]
fn a_fresh_store_is_at_revision_one_and_the_first_put_gets_two() {
    let mut store = KvStore::new();
    assert_eq!(store.range(&range_request("a", "")).unwrap().header.revision, 1);
    assert_eq!(put(&mut store, "a", "1").header.revision, 2);
    let kv = &store.range(&range_request("a", "")).unwrap().kvs[0];
    assert_eq!((kv.create_revision, kv.mod_revision, kv.version), (2, 2, 1));
}

#[test]
fn versions_count_puts_within_a_generation_and_restart_after_delete() {
    let mut store = sample();
    let a = &store.range(&range_request("a", "")).unwrap().kvs[0];
    assert_eq!((a.create_revision, a.mod_revision, a.version, &a.value[..]), (2, 5, 2, &b"11"[..]));
    put(&mut store, "b", "again");
    let b = &store.range(&range_request("b", "")).unwrap().kvs[0];
    assert_eq!((b.create_revision, b.mod_revision, b.version), (8, 8, 1));
}

#[test]
fn range_forms_single_span_prefix_from_key_and_all() {
    let store = sample();
    assert_eq!(keys(&store.range(&range_request("a", "")).unwrap()), ["a"]);
    assert_eq!(keys(&store.range(&range_request("a", "d")).unwrap()), ["a", "c"]);
    assert_eq!(keys(&store.range(&range_request("c", "\0")).unwrap()), ["c", "d"]);
    assert_eq!(keys(&store.range(&range_request("\0", "\0")).unwrap()), ["a", "c", "d"]);
    assert_eq!(keys(&store.range(&range_request("d", "a")).unwrap()), Vec::<String>::new());
    assert!(store.range(&range_request("b", "")).unwrap().kvs.is_empty(), "deleted key");
}

#[test]
fn limit_sets_more_and_count_covers_the_whole_range() {
    let store = sample();
    let mut request = range_request("\0", "\0");
    request.limit = 2;
    let response = store.range(&request).unwrap();
    assert_eq!(
        (keys(&response), response.more, response.count),
        (vec!["a".into(), "c".into()], true, 3)
    );
    request.limit = 3;
    assert!(!store.range(&request).unwrap().more);
    request.limit = -1;
    assert_eq!(store.range(&request).unwrap().kvs.len(), 3, "a negative limit is no limit");
}

#[test]
fn historical_reads_see_the_past_and_the_header_the_present() {
    let store = sample();
    let mut request = range_request("\0", "\0");
    request.revision = 4;
    let response = store.range(&request).unwrap();
    assert_eq!(keys(&response), ["a", "b", "c"]);
    assert_eq!(response.kvs[0].value, b"1");
    assert_eq!(response.header.revision, 7);
    request.revision = 8;
    assert_eq!(store.range(&request), Err(KvError::FutureRevision));
}

#[test]
fn sort_by_every_target_in_both_orders() {
    let mut store = KvStore::new();
    for (key, value) in [("a", "z"), ("b", "y"), ("c", "x"), ("b", "w")] {
        put(&mut store, key, value);
    }
    let sorted = |target, order| {
        let mut request = range_request("\0", "\0");
        (request.sort_target, request.sort_order) = (target, order);
        keys(&store.range(&request).unwrap()).concat()
    };
    use SortOrder::*;
    assert_eq!(sorted(SortTarget::Key, Descend), "cba");
    assert_eq!(sorted(SortTarget::Value, None), "bca", "a non-key target sorts ascending");
    assert_eq!(sorted(SortTarget::Value, Descend), "acb");
    assert_eq!(sorted(SortTarget::Version, Descend), "bac", "ties stay in key order");
    assert_eq!(sorted(SortTarget::Create, Ascend), "abc");
    assert_eq!(sorted(SortTarget::Mod, Descend), "bca");
    let mut limited = range_request("\0", "\0");
    (limited.sort_target, limited.sort_order, limited.limit) = (SortTarget::Mod, Descend, 1);
    let response = store.range(&limited).unwrap();
    assert_eq!((keys(&response), response.more), (vec!["b".into()], true));
}

#[test]
fn keys_only_count_only_and_revision_filters() {
    let store = sample();
    let mut request = range_request("\0", "\0");
    request.keys_only = true;
    assert!(store.range(&request).unwrap().kvs.iter().all(|kv| kv.value.is_empty()));
    request.count_only = true;
    let response = store.range(&request).unwrap();
    assert_eq!((response.kvs.len(), response.count), (0, 3));
    let mut filtered = range_request("\0", "\0");
    filtered.min_mod_revision = 5;
    assert_eq!(keys(&store.range(&filtered).unwrap()), ["a", "d"]);
    filtered.max_create_revision = 4;
    let response = store.range(&filtered).unwrap();
    assert_eq!((keys(&response), response.count), (vec!["a".into()], 3), "count ignores filters");
    let mut created = range_request("\0", "\0");
    (created.min_create_revision, created.max_mod_revision) = (3, 4);
    assert_eq!(keys(&store.range(&created).unwrap()), ["c"]);
}

#[test]
fn put_prev_kv_ignore_value_and_ignore_lease() {
    let mut store = KvStore::new();
    let mut request =
        PutRequest { key: b"k".to_vec(), ignore_value: true, ..PutRequest::default() };
    assert_eq!(store.put(&request, |_| true), Err(KvError::KeyNotFound));
    assert_eq!(store.current_revision(), 1, "a refused put changes nothing");
    let first =
        PutRequest { key: b"k".to_vec(), value: b"v".to_vec(), lease: 7, ..PutRequest::default() };
    store.put(&first, |_| true).unwrap();
    request.prev_kv = true;
    let response = store.put(&request, |_| true).unwrap();
    assert_eq!(response.prev_kv.unwrap().value, b"v");
    let kv = store.get_live(b"k").unwrap();
    assert_eq!((&kv.value[..], kv.lease, kv.version), (&b"v"[..], 0, 2), "ignore_value only");
    let keep_lease = PutRequest {
        key: b"k".to_vec(),
        value: b"w".to_vec(),
        ignore_lease: true,
        ..PutRequest::default()
    };
    store.put(&first, |_| true).unwrap();
    store.put(&keep_lease, |_| true).unwrap();
    let kv = store.get_live(b"k").unwrap();
    assert_eq!((&kv.value[..], kv.lease), (&b"w"[..], 7));
}

#[test]
fn put_with_an_unknown_lease_is_refused_before_anything_else() {
    let mut store = KvStore::new();
    let request =
        PutRequest { key: b"k".to_vec(), lease: 9, ignore_value: true, ..PutRequest::default() };
    assert_eq!(store.put(&request, |id| id != 9), Err(KvError::LeaseNotFound));
}

#[test]
fn delete_counts_returns_prev_kvs_and_takes_one_revision_with_sub_revisions() {
    let mut store = sample();
    let response = delete(&mut store, "a", "\0");
    assert_eq!((response.deleted, response.header.revision), (3, 8));
    assert_eq!(response.prev_kvs.iter().map(|kv| kv.key[0]).collect::<Vec<_>>(), b"acd");
    let events = store.events_since(8).unwrap();
    assert!(events.iter().all(|e| e.kind == EventKind::Delete && e.kv.mod_revision == 8));
    assert_eq!(events[2].prev_kv.as_ref().unwrap().value, b"4");
    let nothing = delete(&mut store, "a", "\0");
    assert_eq!((nothing.deleted, nothing.header.revision), (0, 8), "no change, no revision");
}

fn compare(key: &str, target: CompareTarget, result: CompareResult) -> Compare {
    Compare { result, target, key: key.into(), range_end: Vec::new() }
}

fn txn(store: &mut KvStore, compares: Vec<Compare>, success: Vec<RequestOp>) -> TxnResponse {
    let failure = vec![RequestOp::Range(range_request("a", ""))];
    let request = TxnRequest { compare: compares, success, failure };
    validate::check_txn(&request, validate::DEFAULT_MAX_TXN_OPS).unwrap();
    store.txn(&request, |_| true).unwrap()
}

#[test]
fn compares_on_every_target_and_relation() {
    let mut store = sample();
    use CompareResult::*;
    let holds = |store: &mut KvStore, c: Compare| txn(store, vec![c], vec![]).succeeded;
    assert!(holds(&mut store, compare("a", CompareTarget::Value(b"11".to_vec()), Equal)));
    assert!(holds(&mut store, compare("a", CompareTarget::Value(b"2".to_vec()), Less)));
    assert!(holds(&mut store, compare("a", CompareTarget::Version(1), Greater)));
    assert!(holds(&mut store, compare("a", CompareTarget::Create(2), Equal)));
    assert!(holds(&mut store, compare("a", CompareTarget::Mod(5), Equal)));
    assert!(holds(&mut store, compare("a", CompareTarget::Lease(0), Equal)));
    assert!(!holds(&mut store, compare("a", CompareTarget::Mod(5), NotEqual)));
    // An absent key compares as zero values, except that a value compare always fails.
    assert!(holds(&mut store, compare("b", CompareTarget::Version(0), Equal)));
    assert!(holds(&mut store, compare("zz", CompareTarget::Create(0), Equal)));
    assert!(!holds(&mut store, compare("zz", CompareTarget::Value(Vec::new()), Equal)));
    assert!(!holds(&mut store, compare("zz", CompareTarget::Value(Vec::new()), NotEqual)));
    // Over a range, every key must satisfy the compare.
    let mut all = compare("a", CompareTarget::Mod(4), Greater);
    all.range_end = b"\0".to_vec();
    assert!(!holds(&mut store, all.clone()));
    all.target = CompareTarget::Mod(1);
    assert!(holds(&mut store, all));
}

#[test]
fn a_txn_takes_one_revision_and_later_ops_see_earlier_writes() {
    let mut store = sample();
    let ops = vec![
        RequestOp::Put(PutRequest {
            key: b"x".to_vec(),
            value: b"1".to_vec(),
            ..PutRequest::default()
        }),
        RequestOp::Range(range_request("x", "")),
        RequestOp::DeleteRange(DeleteRangeRequest {
            key: b"c".to_vec(),
            ..DeleteRangeRequest::default()
        }),
        RequestOp::Put(PutRequest { key: b"y".to_vec(), ..PutRequest::default() }),
    ];
    let response = txn(&mut store, vec![], ops);
    assert!(response.succeeded);
    assert_eq!(response.header.revision, 8);
    let ResponseOp::Range(seen) = &response.responses[1] else { panic!("range response") };
    assert_eq!((keys(seen), seen.header.revision), (vec!["x".into()], 8));
    let subs: Vec<_> = store.events_since(8).unwrap().iter().map(|e| e.kv.key.clone()).collect();
    assert_eq!(subs, [b"x".to_vec(), b"c".to_vec(), b"y".to_vec()]);
    store.check_invariants();
}

#[test]
fn a_txn_that_writes_nothing_keeps_the_revision() {
    let mut store = sample();
    let response = txn(
        &mut store,
        vec![compare("a", CompareTarget::Version(9), CompareResult::Equal)],
        vec![],
    );
    assert!(!response.succeeded);
    assert_eq!((response.header.revision, store.current_revision()), (7, 7));
    let ResponseOp::Range(failure) = &response.responses[0] else { panic!("range response") };
    assert_eq!(keys(failure), ["a"]);
    let delete_nothing = vec![RequestOp::DeleteRange(DeleteRangeRequest {
        key: b"nope".to_vec(),
        ..DeleteRangeRequest::default()
    })];
    assert_eq!(txn(&mut store, vec![], delete_nothing).header.revision, 7);
}

#[test]
fn nested_compares_are_decided_before_any_write() {
    let mut store = KvStore::new();
    // The outer success puts k; the nested compare "k does not exist" still sees the old state.
    let nested = TxnRequest {
        compare: vec![compare("k", CompareTarget::Version(0), CompareResult::Equal)],
        success: vec![RequestOp::Range(range_request("k", ""))],
        failure: vec![],
    };
    let ops = vec![
        RequestOp::Put(PutRequest { key: b"k".to_vec(), ..PutRequest::default() }),
        RequestOp::Txn(nested),
    ];
    let response = txn(&mut store, vec![], ops);
    let ResponseOp::Txn(inner) = &response.responses[1] else { panic!("txn response") };
    assert!(inner.succeeded, "decided against the state before the txn");
    assert_eq!(inner.header, ResponseHeader::default(), "nested headers stay empty");
    let ResponseOp::Range(seen) = &inner.responses[0] else { panic!("range response") };
    assert_eq!(seen.kvs.len(), 1, "but its ops run after the outer put");
}

#[test]
fn a_failing_txn_check_changes_nothing() {
    let mut store = sample();
    let ops = vec![
        RequestOp::Put(PutRequest { key: b"new".to_vec(), ..PutRequest::default() }),
        RequestOp::Put(PutRequest {
            key: b"zz".to_vec(),
            ignore_value: true,
            ..PutRequest::default()
        }),
    ];
    let request = TxnRequest { compare: vec![], success: ops, failure: vec![] };
    assert_eq!(store.txn(&request, |_| true), Err(KvError::KeyNotFound));
    let mut future = range_request("a", "");
    future.revision = 99;
    let request = TxnRequest { success: vec![RequestOp::Range(future)], ..TxnRequest::default() };
    assert_eq!(store.txn(&request, |_| true), Err(KvError::FutureRevision));
    let leased = PutRequest { key: b"l".to_vec(), lease: 5, ..PutRequest::default() };
    let request = TxnRequest { success: vec![RequestOp::Put(leased)], ..TxnRequest::default() };
    assert_eq!(store.txn(&request, |_| false), Err(KvError::LeaseNotFound));
    assert_eq!((store.current_revision(), store.hash()), (7, sample().hash()));
}

#[test]
fn compaction_keeps_what_reads_at_or_after_it_need() {
    let mut store = sample();
    assert_eq!(store.compact(8), Err(KvError::FutureRevision));
    assert_eq!(store.compact(5).unwrap().header.revision, 7);
    assert_eq!(store.compact(5), Err(KvError::Compacted));
    assert_eq!(store.compact(4), Err(KvError::Compacted));
    let mut at = range_request("\0", "\0");
    at.revision = 5;
    let response = store.range(&at).unwrap();
    assert_eq!(keys(&response), ["a", "b", "c"], "a read at the compaction point still works");
    at.revision = 4;
    assert_eq!(store.range(&at), Err(KvError::Compacted));
    assert_eq!(store.events_since(5).unwrap_err(), KvError::Compacted);
    assert_eq!(store.events_since(6).unwrap().len(), 2);
    store.compact(7).unwrap();
    assert_eq!(store.indexed_key_count(), 3, "b's tombstone is gone");
    store.check_invariants();
}

#[test]
fn hash_kv_covers_history_up_to_a_revision() {
    let mut store = sample();
    let at_six = store.hash_kv(6).unwrap();
    put(&mut store, "e", "later");
    assert_eq!(store.hash_kv(6).unwrap().hash, at_six.hash, "later writes do not matter");
    assert_ne!(store.hash_kv(0).unwrap().hash, at_six.hash);
    assert_eq!(store.hash_kv(9), Err(KvError::FutureRevision));
    store.compact(4).unwrap();
    assert_eq!(store.hash_kv(4), Err(KvError::Compacted));
    assert_eq!(store.hash_kv(6).unwrap().compact_revision, 4);
    let mut other = sample();
    put(&mut other, "e", "later");
    other.compact(4).unwrap();
    assert_eq!(store.hash(), other.hash());
    put(&mut other, "e", "different");
    assert_ne!(store.hash(), other.hash());
}

/// Found by the model test: keys_only must not empty the values before a sort by value.
#[test]
fn keys_only_sorts_by_value_before_dropping_values() {
    let mut store = KvStore::new();
    put(&mut store, "a", "");
    put(&mut store, "c", "x");
    let mut request = range_request("\0", "\0");
    (request.keys_only, request.sort_target, request.sort_order) =
        (true, SortTarget::Value, SortOrder::Descend);
    let response = store.range(&request).unwrap();
    assert_eq!(keys(&response), ["c", "a"]);
    assert!(response.kvs.iter().all(|kv| kv.value.is_empty()));
}

proptest::proptest! {
    /// Compaction by per-key lookups and by a full scan leave identical stores, on keyspaces
    /// large enough for both to matter (the model test mostly reaches the full scan).
    #[test]
    fn both_compaction_strategies_agree(
        writes in proptest::collection::vec((0u8..40, proptest::bool::weighted(0.2)), 1..200),
        back in 0i64..200,
    ) {
        let mut store = KvStore::new();
        for (key, is_delete) in writes {
            let key = format!("k{key:02}");
            if is_delete {
                delete(&mut store, &key, "");
            } else {
                put(&mut store, &key, "v");
            }
        }
        let revision = (store.current_revision() - back).max(1);
        let (mut by_lookup, mut by_scan) = (store.clone(), store.clone());
        for (copy, full_scan) in [(&mut by_lookup, false), (&mut by_scan, true)] {
            let touched = copy.changes_up_to(revision);
            copy.compact_keys(touched, revision, full_scan);
            copy.check_invariants();
        }
        proptest::prop_assert_eq!(by_lookup.hash(), by_scan.hash());
        proptest::prop_assert_eq!(by_lookup.indexed_key_count(), by_scan.indexed_key_count());
    }
}

/// Found in review against etcd 3.4.23: with a non-key sort target, no sort order and a limit,
/// etcd reads `limit + 1` keys in key order and sorts only those.
#[test]
fn unordered_non_key_sort_with_a_limit_sorts_only_the_first_keys() {
    let mut store = KvStore::new();
    for (key, value) in [("a", "1"), ("a", "2"), ("a", "3"), ("b", "1"), ("b", "2"), ("c", "1")] {
        put(&mut store, key, value);
    }
    let mut request = range_request("a", "\0");
    (request.sort_target, request.limit) = (SortTarget::Version, 1);
    let response = store.range(&request).unwrap();
    assert_eq!((keys(&response), response.more, response.count), (vec!["b".into()], true, 3));
    request.sort_order = SortOrder::Ascend;
    assert_eq!(keys(&store.range(&request).unwrap()), ["c"], "an explicit order reads all keys");
}

/// Found in review against etcd 3.4.23: a negative HashKV revision covers nothing.
#[test]
fn hash_kv_of_a_negative_revision_covers_nothing() {
    let mut store = KvStore::new();
    let empty = store.hash_kv(-1).unwrap().hash;
    put(&mut store, "a", "1");
    assert_eq!(store.hash_kv(-5).unwrap().hash, empty);
    assert_ne!(store.hash_kv(0).unwrap().hash, empty);
}
