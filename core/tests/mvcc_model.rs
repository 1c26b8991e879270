//! Model-based test of the MVCC store: random sequences of put / delete / range / txn / compact
//! run against `KvStore` and against a naive reference model (a flat list of every event ever
//! written, replayed on every read). Every response must agree, errors and revisions included,
//! and so must reads at every retained revision, the event history and the digests.
//!
//! The model never discards anything: compaction only records a number. So whatever the store
//! drops at compaction must be exactly what no legal read can observe.

use proptest::prelude::*;
use std::collections::BTreeSet;
use stead_core::api::*;
use stead_core::mvcc::{validate, KvHash, KvHasher, KvStore};

/// Leases 1 and 2 exist; any other id does not.
fn lease_exists(id: LeaseId) -> bool {
    id == 1 || id == 2
}

#[derive(Clone, Debug)]
struct ModelEvent {
    main: i64,
    sub: i64,
    key: Vec<u8>,
    /// `None` for a delete.
    put: Option<(Vec<u8>, LeaseId)>,
}

/// The reference: every event, in order.
#[derive(Default)]
struct Model {
    events: Vec<ModelEvent>,
    current: i64,
    compacted: i64,
}

impl Model {
    fn new() -> Self {
        Model { events: Vec::new(), current: 1, compacted: -1 }
    }

    /// The key's state after replaying its events with main revision `<= at` (and, when
    /// `before` is given, only those strictly before that event index).
    fn replay(&self, key: &[u8], at: i64, before: Option<usize>) -> Option<KeyValue> {
        let mut state: Option<KeyValue> = None;
        let end = before.unwrap_or(self.events.len());
        for event in self.events[..end].iter().filter(|e| e.key == key && e.main <= at) {
            state = match &event.put {
                None => None,
                Some((value, lease)) => {
                    let (create, version) = match &state {
                        Some(kv) => (kv.create_revision, kv.version + 1),
                        None => (event.main, 1),
                    };
                    Some(KeyValue {
                        key: key.to_vec(),
                        create_revision: create,
                        mod_revision: event.main,
                        version,
                        value: value.clone(),
                        lease: *lease,
                    })
                }
            };
        }
        state
    }

    fn keys(&self) -> BTreeSet<Vec<u8>> {
        self.events.iter().map(|e| e.key.clone()).collect()
    }

    fn in_range(key: &[u8], start: &[u8], end: &[u8]) -> bool {
        match end {
            [] => key == start,
            [0] => key >= start,
            end => key >= start && key < end,
        }
    }

    fn visible(&self, start: &[u8], end: &[u8], at: i64) -> Vec<KeyValue> {
        let keys = self.keys().into_iter().filter(|k| Model::in_range(k, start, end));
        keys.filter_map(|k| self.replay(&k, at, None)).collect()
    }

    fn range(&self, request: &RangeRequest, seen: i64) -> Result<RangeResponse, KvError> {
        if request.revision > seen {
            return Err(KvError::FutureRevision);
        }
        let at = if request.revision <= 0 { seen } else { request.revision };
        if at < self.compacted {
            return Err(KvError::Compacted);
        }
        let all = self.visible(&request.key, &request.range_end, at);
        let count = all.len() as i64;
        // etcd's applierV3backend.Range, step by step: how many keys it reads in key order ...
        let bounds = [
            request.min_mod_revision,
            request.max_mod_revision,
            request.min_create_revision,
            request.max_create_revision,
        ];
        let filtered = bounds.iter().any(|&b| b != 0);
        let read = if request.sort_order != SortOrder::None || filtered || request.limit <= 0 {
            all.len()
        } else {
            (request.limit as usize + 1).min(all.len())
        };
        let mut kvs: Vec<KeyValue> =
            if request.count_only { Vec::new() } else { all[..read].to_vec() };
        let within = |v: i64, min: i64, max: i64| (min == 0 || v >= min) && (max == 0 || v <= max);
        kvs.retain(|kv| {
            within(kv.mod_revision, request.min_mod_revision, request.max_mod_revision)
                && within(
                    kv.create_revision,
                    request.min_create_revision,
                    request.max_create_revision,
                )
        });
        let order = match (request.sort_order, request.sort_target) {
            (SortOrder::None, SortTarget::Key) => SortOrder::None,
            (SortOrder::None, _) => SortOrder::Ascend,
            (order, _) => order,
        };
        // ... then it prunes by the filters, sorts what it read, and truncates.
        if order != SortOrder::None {
            let field = |kv: &KeyValue| -> Vec<u8> {
                match request.sort_target {
                    SortTarget::Key => kv.key.clone(),
                    SortTarget::Value => kv.value.clone(),
                    // Big-endian bytes of non-negative numbers sort as the numbers do.
                    SortTarget::Version => kv.version.to_be_bytes().to_vec(),
                    SortTarget::Create => kv.create_revision.to_be_bytes().to_vec(),
                    SortTarget::Mod => kv.mod_revision.to_be_bytes().to_vec(),
                }
            };
            // Ties in key order, whatever the direction.
            if order == SortOrder::Descend {
                kvs.sort_by(|a, b| field(b).cmp(&field(a)).then(a.key.cmp(&b.key)));
            } else {
                kvs.sort_by(|a, b| field(a).cmp(&field(b)).then(a.key.cmp(&b.key)));
            }
        }
        let more = request.limit > 0 && kvs.len() as i64 > request.limit;
        if more {
            kvs.truncate(request.limit as usize);
        }
        if request.keys_only {
            kvs.iter_mut().for_each(|kv| kv.value.clear());
        }
        Ok(RangeResponse { header: ResponseHeader::at(seen), kvs, more, count })
    }

    fn events_since(&self, start: i64) -> Result<Vec<Event>, KvError> {
        if start <= self.compacted {
            return Err(KvError::Compacted);
        }
        let mut out = Vec::new();
        for (index, e) in self.events.iter().enumerate().filter(|(_, e)| e.main >= start) {
            let prev_kv = self.replay(&e.key, i64::MAX, Some(index));
            let (kind, kv) = match self.replay(&e.key, i64::MAX, Some(index + 1)) {
                Some(kv) => (EventKind::Put, kv),
                None => {
                    let kv = KeyValue {
                        key: e.key.clone(),
                        mod_revision: e.main,
                        ..KeyValue::default()
                    };
                    (EventKind::Delete, kv)
                }
            };
            out.push(Event { kind, kv, prev_kv });
        }
        Ok(out)
    }

    /// Hashes the given events of one key (all of the key's events passed in order).
    fn hash_events(&self, hasher: &mut KvHasher, keep: impl Fn(usize, &ModelEvent) -> bool) {
        for key in self.keys() {
            for (index, e) in self.events.iter().enumerate().filter(|(_, e)| e.key == key) {
                if !keep(index, e) {
                    continue;
                }
                let kv = self.replay(&key, i64::MAX, Some(index + 1));
                let put =
                    kv.as_ref().map(|kv| (kv.create_revision, kv.version, kv.lease, &kv.value[..]));
                hasher.add(&key, e.main, e.sub, put);
            }
        }
    }

    /// Whether event `index` is the put visible at revision `at`.
    fn is_visible_put(&self, index: usize, at: i64) -> bool {
        let e = &self.events[index];
        e.put.is_some()
            && e.main <= at
            && !self.events[index + 1..].iter().any(|later| later.key == e.key && later.main <= at)
    }

    fn hash(&self) -> u32 {
        let mut hasher = KvHasher::new();
        let compacted = self.compacted;
        self.hash_events(&mut hasher, |i, e| {
            e.main > compacted || self.is_visible_put(i, compacted)
        });
        hasher.int(self.current);
        hasher.int(self.compacted);
        hasher.finish()
    }

    fn hash_kv(&self, revision: i64) -> Result<KvHash, KvError> {
        if revision > 0 && revision <= self.compacted {
            return Err(KvError::Compacted);
        }
        if revision > self.current {
            return Err(KvError::FutureRevision);
        }
        let at = if revision == 0 { self.current } else { revision };
        let compacted = self.compacted;
        let mut hasher = KvHasher::new();
        self.hash_events(&mut hasher, |i, e| {
            (e.main > compacted && e.main <= at)
                || (e.main <= compacted && self.is_visible_put(i, at))
        });
        Ok(KvHash {
            hash: hasher.finish(),
            current_revision: self.current,
            compact_revision: compacted,
        })
    }

    fn compact(&mut self, revision: i64) -> Result<CompactionResponse, KvError> {
        if revision <= self.compacted {
            return Err(KvError::Compacted);
        }
        if revision > self.current {
            return Err(KvError::FutureRevision);
        }
        self.compacted = revision;
        Ok(CompactionResponse { header: ResponseHeader::at(self.current) })
    }
}

/// The model's write transaction.
struct ModelTxn<'a> {
    model: &'a mut Model,
    main: i64,
    sub: i64,
}

impl ModelTxn<'_> {
    fn seen(&self) -> i64 {
        if self.sub > 0 {
            self.main
        } else {
            self.main - 1
        }
    }

    fn write(&mut self, key: &[u8], put: Option<(Vec<u8>, LeaseId)>) {
        let event = ModelEvent { main: self.main, sub: self.sub, key: key.to_vec(), put };
        self.model.events.push(event);
        self.sub += 1;
    }

    fn put(&mut self, request: &PutRequest) -> Result<PutResponse, KvError> {
        let previous = self.model.replay(&request.key, i64::MAX, None);
        if (request.ignore_value || request.ignore_lease) && previous.is_none() {
            return Err(KvError::KeyNotFound);
        }
        let value = if request.ignore_value {
            previous.clone().unwrap().value
        } else {
            request.value.clone()
        };
        let lease =
            if request.ignore_lease { previous.clone().unwrap().lease } else { request.lease };
        self.write(&request.key, Some((value, lease)));
        let prev_kv = if request.prev_kv { previous } else { None };
        Ok(PutResponse { header: ResponseHeader::at(self.seen()), prev_kv })
    }

    fn delete(&mut self, request: &DeleteRangeRequest) -> DeleteRangeResponse {
        let doomed = self.model.visible(&request.key, &request.range_end, i64::MAX);
        for kv in &doomed {
            self.write(&kv.key, None);
        }
        let deleted = doomed.len() as i64;
        let prev_kvs = if request.prev_kv { doomed } else { Vec::new() };
        DeleteRangeResponse { header: ResponseHeader::at(self.seen()), deleted, prev_kvs }
    }

    fn finish(self) -> i64 {
        let revision = self.seen();
        self.model.current = revision;
        revision
    }
}

impl Model {
    fn write(&mut self) -> ModelTxn<'_> {
        let main = self.current + 1;
        ModelTxn { model: self, main, sub: 0 }
    }

    fn put(&mut self, request: &PutRequest) -> Result<PutResponse, KvError> {
        if request.lease != 0 && !lease_exists(request.lease) {
            return Err(KvError::LeaseNotFound);
        }
        let mut txn = self.write();
        let response = txn.put(request)?;
        txn.finish();
        Ok(response)
    }

    fn delete(&mut self, request: &DeleteRangeRequest) -> DeleteRangeResponse {
        let mut txn = self.write();
        let response = txn.delete(request);
        txn.finish();
        response
    }

    fn holds(&self, compare: &Compare) -> bool {
        let kvs = self.visible(&compare.key, &compare.range_end, self.current);
        let check = |kv: &KeyValue| {
            let ordering = match &compare.target {
                CompareTarget::Value(v) => kv.value.cmp(v),
                CompareTarget::Version(v) => kv.version.cmp(v),
                CompareTarget::Create(v) => kv.create_revision.cmp(v),
                CompareTarget::Mod(v) => kv.mod_revision.cmp(v),
                CompareTarget::Lease(v) => kv.lease.cmp(v),
            };
            match compare.result {
                CompareResult::Equal => ordering.is_eq(),
                CompareResult::NotEqual => ordering.is_ne(),
                CompareResult::Greater => ordering.is_gt(),
                CompareResult::Less => ordering.is_lt(),
            }
        };
        if kvs.is_empty() {
            return !matches!(compare.target, CompareTarget::Value(_))
                && check(&KeyValue::default());
        }
        kvs.iter().all(check)
    }

    /// The ops the txn will run, flattened depth first, with each nested txn's outcome decided
    /// now (before any write); `Err` carries the first failing check, as etcd orders them.
    fn txn(&mut self, request: &TxnRequest) -> Result<TxnResponse, KvError> {
        let decided = self.decide(request);
        let flat = flatten(&decided);
        let writes = [&request.success, &request.failure]
            .iter()
            .any(|ops| ops.iter().any(|op| !matches!(op, RequestOp::Range(_))));
        if writes {
            for op in &flat {
                if let RequestOp::Put(put) = op {
                    let exists = self.replay(&put.key, i64::MAX, None).is_some();
                    if (put.ignore_value || put.ignore_lease) && !exists {
                        return Err(KvError::KeyNotFound);
                    }
                    if put.lease != 0 && !lease_exists(put.lease) {
                        return Err(KvError::LeaseNotFound);
                    }
                }
            }
        }
        for op in &flat {
            if let RequestOp::Range(range) = op {
                if range.revision != 0 && range.revision > self.current {
                    return Err(KvError::FutureRevision);
                }
                if range.revision != 0 && range.revision < self.compacted {
                    return Err(KvError::Compacted);
                }
            }
        }
        let mut txn = self.write();
        let mut response = run(&mut txn, &decided);
        response.header = ResponseHeader::at(txn.finish());
        Ok(response)
    }

    fn decide(&self, request: &TxnRequest) -> Decided {
        let succeeded = request.compare.iter().all(|c| self.holds(c));
        let ops = if succeeded { &request.success } else { &request.failure };
        let ops = ops
            .iter()
            .map(|op| match op {
                RequestOp::Txn(nested) => DecidedOp::Txn(self.decide(nested)),
                other => DecidedOp::Plain(other.clone()),
            })
            .collect();
        Decided { succeeded, ops }
    }
}

struct Decided {
    succeeded: bool,
    ops: Vec<DecidedOp>,
}

enum DecidedOp {
    Plain(RequestOp),
    Txn(Decided),
}

fn flatten(decided: &Decided) -> Vec<RequestOp> {
    let mut out = Vec::new();
    for op in &decided.ops {
        match op {
            DecidedOp::Plain(op) => out.push(op.clone()),
            DecidedOp::Txn(nested) => out.extend(flatten(nested)),
        }
    }
    out
}

fn run(txn: &mut ModelTxn<'_>, decided: &Decided) -> TxnResponse {
    let mut responses = Vec::new();
    for op in &decided.ops {
        responses.push(match op {
            DecidedOp::Plain(RequestOp::Range(r)) => {
                ResponseOp::Range(txn.model.range(r, txn.seen()).unwrap())
            }
            DecidedOp::Plain(RequestOp::Put(p)) => ResponseOp::Put(txn.put(p).unwrap()),
            DecidedOp::Plain(RequestOp::DeleteRange(d)) => ResponseOp::DeleteRange(txn.delete(d)),
            DecidedOp::Plain(RequestOp::Txn(_)) => unreachable!("nested txns are decided"),
            DecidedOp::Txn(nested) => ResponseOp::Txn(run(txn, nested)),
        });
    }
    TxnResponse { header: ResponseHeader::default(), succeeded: decided.succeeded, responses }
}

// ---- generators ----

const KEYS: [&str; 6] = ["a", "b", "ba", "bb", "c", "d"];

fn key() -> impl Strategy<Value = Vec<u8>> {
    prop::sample::select(&KEYS[..]).prop_map(|k| k.as_bytes().to_vec())
}

fn range_end() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        3 => Just(Vec::new()),
        1 => Just(vec![0]),
        2 => key(),
        1 => Just(b"c".to_vec()),
    ]
}

/// A revision inside a txn's range op: absolute, since the txn is generated before the store's
/// revision is known; small, so that compacted, valid and future revisions all occur.
fn revision() -> impl Strategy<Value = i64> {
    prop_oneof![3 => Just(0i64), 2 => -1i64..25]
}

/// A revision for a top-level op, chosen relative to the store's revision when the op runs.
#[derive(Clone, Copy, Debug)]
enum RevisionPick {
    /// Exactly this revision.
    Absolute(i64),
    /// This many revisions before the current one (negative: in the future).
    Behind(i64),
}

impl RevisionPick {
    fn resolve(self, current: i64) -> i64 {
        match self {
            RevisionPick::Absolute(revision) => revision,
            RevisionPick::Behind(back) => current - back,
        }
    }
}

fn revision_pick() -> impl Strategy<Value = RevisionPick> {
    prop_oneof![
        1 => (-1i64..3).prop_map(RevisionPick::Absolute),
        4 => (-1i64..12).prop_map(RevisionPick::Behind),
    ]
}

fn put_request() -> impl Strategy<Value = PutRequest> {
    let value = prop::sample::select(&["", "x", "y", "zz"][..]);
    let lease = prop_oneof![6 => Just(0i64), 3 => 1i64..3, 1 => Just(3i64)];
    (key(), value, lease, any::<bool>(), prop::bool::weighted(0.1), prop::bool::weighted(0.1))
        .prop_map(|(key, value, lease, prev_kv, ignore_value, ignore_lease)| PutRequest {
            key,
            value: if ignore_value { Vec::new() } else { value.as_bytes().to_vec() },
            lease: if ignore_lease { 0 } else { lease },
            prev_kv,
            ignore_value,
            ignore_lease,
        })
}

fn delete_request() -> impl Strategy<Value = DeleteRangeRequest> {
    (key(), range_end(), any::<bool>()).prop_map(|(key, range_end, prev_kv)| DeleteRangeRequest {
        key,
        range_end,
        prev_kv,
    })
}

fn range_request() -> impl Strategy<Value = RangeRequest> {
    let sort_order =
        prop::sample::select(&[SortOrder::None, SortOrder::Ascend, SortOrder::Descend][..]);
    const TARGETS: [SortTarget; 5] = [
        SortTarget::Key,
        SortTarget::Version,
        SortTarget::Create,
        SortTarget::Mod,
        SortTarget::Value,
    ];
    let filter = prop_oneof![3 => Just(0i64), 1 => 1i64..30];
    (
        (key(), range_end(), -1i64..4, revision(), sort_order, prop::sample::select(&TARGETS[..])),
        (prop::bool::weighted(0.2), prop::bool::weighted(0.1)),
        (filter.clone(), filter.clone(), filter.clone(), filter),
    )
        .prop_map(
            |(
                (key, range_end, limit, revision, sort_order, sort_target),
                (keys_only, count_only),
                f,
            )| {
                RangeRequest {
                    key,
                    range_end,
                    limit,
                    revision,
                    sort_order,
                    sort_target,
                    serializable: false,
                    keys_only,
                    count_only,
                    min_mod_revision: f.0,
                    max_mod_revision: f.1,
                    min_create_revision: f.2,
                    max_create_revision: f.3,
                }
            },
        )
}

fn compare() -> impl Strategy<Value = Compare> {
    let value = prop::sample::select(&["", "x", "y", "zz"][..]).prop_map(|v| v.as_bytes().to_vec());
    let target = prop_oneof![
        (0i64..4).prop_map(CompareTarget::Version),
        (0i64..30).prop_map(CompareTarget::Create),
        (0i64..30).prop_map(CompareTarget::Mod),
        value.prop_map(CompareTarget::Value),
        (0i64..3).prop_map(CompareTarget::Lease),
    ];
    let result = prop::sample::select(
        &[
            CompareResult::Equal,
            CompareResult::Greater,
            CompareResult::Less,
            CompareResult::NotEqual,
        ][..],
    );
    (result, target, key(), prop_oneof![3 => Just(Vec::new()), 1 => range_end()])
        .prop_map(|(result, target, key, range_end)| Compare { result, target, key, range_end })
}

fn txn_request() -> impl Strategy<Value = TxnRequest> {
    let leaf = prop_oneof![
        range_request().prop_map(RequestOp::Range),
        put_request().prop_map(RequestOp::Put),
        delete_request().prop_map(RequestOp::DeleteRange),
    ];
    let op = leaf.prop_recursive(2, 8, 3, |inner| {
        (
            prop::collection::vec(compare(), 0..2),
            prop::collection::vec(inner.clone(), 0..3),
            prop::collection::vec(inner, 0..3),
        )
            .prop_map(|(compare, success, failure)| {
                RequestOp::Txn(TxnRequest { compare, success, failure })
            })
    });
    (
        prop::collection::vec(compare(), 0..3),
        prop::collection::vec(op.clone(), 0..4),
        prop::collection::vec(op, 0..4),
    )
        .prop_map(|(compare, success, failure)| TxnRequest { compare, success, failure })
}

#[derive(Clone, Debug)]
enum Op {
    Put(PutRequest),
    Delete(DeleteRangeRequest),
    Range(RangeRequest, RevisionPick),
    Txn(TxnRequest),
    Compact(RevisionPick),
    Events(RevisionPick),
    HashKv(RevisionPick),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => put_request().prop_map(Op::Put),
        2 => delete_request().prop_map(Op::Delete),
        3 => (range_request(), prop_oneof![Just(None), revision_pick().prop_map(Some)]).prop_map(
            |(request, pick)| Op::Range(request, pick.unwrap_or(RevisionPick::Absolute(0)))
        ),
        4 => txn_request().prop_map(Op::Txn),
        1 => revision_pick().prop_map(Op::Compact),
        1 => revision_pick().prop_map(Op::Events),
        1 => revision_pick().prop_map(Op::HashKv),
    ]
}

/// Runs one op on both sides and compares the answers. Requests that validation refuses run on
/// neither side, as a member would refuse them before proposing.
fn step(store: &mut KvStore, model: &mut Model, op: &Op) -> Result<(), TestCaseError> {
    let current = model.current;
    match op {
        Op::Put(request) => {
            if validate::check_put(request).is_ok() {
                prop_assert_eq!(store.put(request, lease_exists), model.put(request));
            }
        }
        Op::Delete(request) => prop_assert_eq!(store.delete_range(request), model.delete(request)),
        Op::Range(request, pick) => {
            let request = RangeRequest { revision: pick.resolve(current), ..request.clone() };
            prop_assert_eq!(store.range(&request), model.range(&request, current));
        }
        Op::Txn(request) => {
            if validate::check_txn(request, validate::DEFAULT_MAX_TXN_OPS).is_ok() {
                prop_assert_eq!(store.txn(request, lease_exists), model.txn(request));
            }
        }
        Op::Compact(pick) => {
            let revision = pick.resolve(current);
            prop_assert_eq!(store.compact(revision), model.compact(revision));
        }
        Op::Events(pick) => {
            let start = pick.resolve(current);
            prop_assert_eq!(store.events_since(start), model.events_since(start));
        }
        Op::HashKv(pick) => {
            let revision = pick.resolve(current);
            prop_assert_eq!(store.hash_kv(revision), model.hash_kv(revision));
        }
    }
    store.check_invariants();
    prop_assert_eq!(store.current_revision(), model.current);
    prop_assert_eq!(store.compacted_revision(), model.compacted);
    Ok(())
}

/// After a run: every retained revision reads the same, and history and digests agree.
fn final_agreement(store: &KvStore, model: &Model) -> Result<(), TestCaseError> {
    let first = model.compacted.max(1);
    for revision in first..=model.current {
        let request =
            RangeRequest { key: vec![0], range_end: vec![0], revision, ..RangeRequest::default() };
        prop_assert_eq!(
            store.range(&request),
            model.range(&request, model.current),
            "at {}",
            revision
        );
        prop_assert_eq!(
            store.hash_kv(revision),
            model.hash_kv(revision),
            "hash_kv at {}",
            revision
        );
    }
    let start = (model.compacted + 1).max(1);
    prop_assert_eq!(store.events_since(start), model.events_since(start));
    prop_assert_eq!(store.hash(), model.hash());
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn store_agrees_with_the_reference_model(ops in prop::collection::vec(op(), 1..120)) {
        let mut store = KvStore::new();
        let mut model = Model::new();
        for op in &ops {
            step(&mut store, &mut model, op)?;
        }
        final_agreement(&store, &model)?;
    }
}
