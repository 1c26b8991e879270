//! Model-based test of watches: random puts, deletes, transactions, compactions and lease
//! grants/revokes run through the state machine, while watchers on a few streams are created at
//! random start revisions, canceled, and starved of room (so they become victims). A naive model
//! of the key space computes the expected events of every revision itself.
//!
//! Checked for every watcher: the events it received are exactly the model's history filtered by
//! its range, filters and start revision (with prev_kv shaped as asked), in order, with no gap or
//! duplicate; a watcher canceled for compaction received a prefix and was told a compaction
//! revision past what it received; a canceled watcher received a prefix. Every revision's events
//! arrive in one response. A progress notification at revision r comes only when every watcher on
//! its stream has received every matching event at or below r.

use proptest::prelude::*;
use std::collections::BTreeMap;
use stead_core::api::*;
use stead_core::apply::{InternalRequest, MachineSettings, RequestHeader, StateMachine};
use stead_core::time::{Duration, Instant};
use stead_core::watch::{StreamId, WatchHub, WatchSettings};

const KEYS: [&str; 5] = ["a", "b", "c", "d", "e"];
const STREAMS: u64 = 3;

#[derive(Clone, Debug)]
enum Op {
    Put {
        key: usize,
        lease: Option<i64>,
    },
    Delete {
        key: usize,
    },
    DeleteFrom {
        key: usize,
    },
    Txn {
        first: usize,
        second: usize,
    },
    Compact {
        back: i64,
    },
    /// Ten minutes pass: idle watchers that asked for it hear the revision.
    Tick,
    Grant {
        id: i64,
    },
    Revoke {
        id: i64,
    },
    Watch {
        stream: u64,
        key: usize,
        range: u8,
        back: i64,
        filter: u8,
        prev_kv: bool,
        fragment: bool,
        progress_notify: bool,
    },
    Cancel {
        stream: u64,
        pick: usize,
    },
    Sent {
        stream: u64,
        count: usize,
    },
    Progress {
        stream: u64,
    },
}

fn op() -> impl Strategy<Value = Op> {
    let keys = 0..KEYS.len();
    let put =
        (keys.clone(), prop::option::of(1..4i64)).prop_map(|(key, lease)| Op::Put { key, lease });
    let txn = (keys.clone(), keys.clone()).prop_map(|(first, second)| Op::Txn { first, second });
    let shape = (0..3u8, -2..12i64, 0..3u8, any::<bool>(), any::<bool>(), any::<bool>());
    let watch = (0..STREAMS, keys.clone(), shape).prop_map(
        |(stream, key, (range, back, filter, prev_kv, fragment, progress_notify))| Op::Watch {
            stream,
            key,
            range,
            back,
            filter,
            prev_kv,
            fragment,
            progress_notify,
        },
    );
    prop_oneof![
        6 => put,
        2 => keys.clone().prop_map(|key| Op::Delete { key }),
        1 => keys.prop_map(|key| Op::DeleteFrom { key }),
        2 => txn,
        1 => (0..6i64).prop_map(|back| Op::Compact { back }),
        1 => (1..4i64).prop_map(|id| Op::Grant { id }),
        1 => (1..4i64).prop_map(|id| Op::Revoke { id }),
        3 => watch,
        1 => (0..STREAMS, 0..8usize).prop_map(|(stream, pick)| Op::Cancel { stream, pick }),
        4 => (0..STREAMS, 1..4usize).prop_map(|(stream, count)| Op::Sent { stream, count }),
        1 => (0..STREAMS).prop_map(|stream| Op::Progress { stream }),
        1 => Just(Op::Tick),
    ]
}

/// The naive key space: each key's live value, create revision, version and lease.
#[derive(Default)]
struct Model {
    live: BTreeMap<Vec<u8>, KeyValue>,
    leases: BTreeMap<i64, ()>,
    revision: i64,
    /// Every event ever, in order (the model never compacts).
    history: Vec<Event>,
}

impl Model {
    /// Applies one revision's changes: `None` deletes. Returns nothing; records the events.
    fn write(&mut self, changes: Vec<(Vec<u8>, Option<i64>)>) {
        let revision = self.revision + 1;
        let mut changed = false;
        for (key, put) in changes {
            let previous = self.live.get(&key).cloned();
            match put {
                Some(lease) => {
                    let kv = KeyValue {
                        key: key.clone(),
                        create_revision: previous.as_ref().map_or(revision, |p| p.create_revision),
                        mod_revision: revision,
                        version: previous.as_ref().map_or(1, |p| p.version + 1),
                        value: format!("v{revision}").into_bytes(),
                        lease,
                    };
                    self.live.insert(key, kv.clone());
                    self.history.push(Event { kind: EventKind::Put, kv, prev_kv: previous });
                }
                None => {
                    let Some(previous) = self.live.remove(&key) else { continue };
                    let kv = KeyValue { key, mod_revision: revision, ..KeyValue::default() };
                    self.history.push(Event {
                        kind: EventKind::Delete,
                        kv,
                        prev_kv: Some(previous),
                    });
                }
            }
            changed = true;
        }
        if changed {
            self.revision = revision;
        }
    }
}

/// What one watcher asked for and what it got.
#[derive(Debug)]
struct Seen {
    request: WatchCreateRequest,
    /// The first revision it must report.
    start: i64,
    events: Vec<Event>,
    /// Revisions already seen in a finished response (for atomicity).
    responses: Vec<Vec<i64>>,
    fragment_open: bool,
    canceled: bool,
    compacted_at: Option<i64>,
}

impl Seen {
    fn expected(&self, history: &[Event]) -> Vec<Event> {
        let range = stead_core::mvcc::KeyRange::new(&self.request.key, &self.request.range_end);
        history
            .iter()
            .filter(|e| e.kv.mod_revision >= self.start && range.contains(&e.kv.key))
            .filter(|e| {
                !(self.request.filters.contains(&WatchFilter::NoPut) && e.kind == EventKind::Put)
            })
            .filter(|e| {
                !(self.request.filters.contains(&WatchFilter::NoDelete)
                    && e.kind == EventKind::Delete)
            })
            .map(|e| {
                let mut e = e.clone();
                if !self.request.prev_kv {
                    e.prev_kv = None;
                }
                e
            })
            .collect()
    }
}

struct Run {
    machine: StateMachine,
    hub: WatchHub,
    model: Model,
    index: u64,
    /// The revision of the last compaction that succeeded.
    compacted: i64,
    /// The hub's clock.
    clock: Instant,
    watchers: BTreeMap<(StreamId, WatchId), Seen>,
    /// Create requests waiting for their created response, per stream, in order.
    pending_creates: BTreeMap<StreamId, Vec<(WatchCreateRequest, i64)>>,
}

impl Run {
    fn apply(&mut self, request: Request) -> Result<Response, Error> {
        self.index += 1;
        let header = RequestHeader { proposer: 1, boot: 1, sequence: self.index };
        let data = InternalRequest { header, request, auth: None }.encode();
        let (_, result) = self.machine.apply(self.index, 1, &data, Instant::ZERO).expect("applies");
        let events = self.machine.take_events();
        for revision in events.chunk_by(|a, b| a.kv.mod_revision == b.kv.mod_revision) {
            self.hub.notify(revision[0].kv.mod_revision, revision);
        }
        self.hub.sync(self.machine.kv());
        result
    }

    fn step(&mut self, op: Op) -> Result<(), TestCaseError> {
        let key = |k: usize| KEYS[k].as_bytes().to_vec();
        match op {
            Op::Put { key: k, lease } => {
                let lease = lease.unwrap_or(0);
                let put = PutRequest {
                    key: key(k),
                    value: format!("v{}", self.model.revision + 1).into_bytes(),
                    lease,
                    ..Default::default()
                };
                let ok = self.apply(Request::Put(put)).is_ok();
                prop_assert_eq!(ok, lease == 0 || self.model.leases.contains_key(&lease));
                if ok {
                    self.model.write(vec![(key(k), Some(lease))]);
                }
            }
            Op::Delete { key: k } => {
                self.apply(Request::DeleteRange(DeleteRangeRequest {
                    key: key(k),
                    ..Default::default()
                }))
                .unwrap();
                self.model.write(vec![(key(k), None)]);
            }
            Op::DeleteFrom { key: k } => {
                let delete =
                    DeleteRangeRequest { key: key(k), range_end: vec![0], ..Default::default() };
                self.apply(Request::DeleteRange(delete)).unwrap();
                let doomed: Vec<_> =
                    self.model.live.range(key(k)..).map(|(k, _)| (k.clone(), None)).collect();
                self.model.write(doomed);
            }
            Op::Txn { first, second } if first != second => {
                let put = |k: usize| {
                    RequestOp::Put(PutRequest {
                        key: key(k),
                        value: format!("v{}", self.model.revision + 1).into_bytes(),
                        ..Default::default()
                    })
                };
                let txn =
                    TxnRequest { success: vec![put(first), put(second)], ..Default::default() };
                self.apply(Request::Txn(txn)).unwrap();
                self.model.write(vec![(key(first), Some(0)), (key(second), Some(0))]);
            }
            Op::Txn { .. } => {}
            Op::Compact { back } => {
                let revision = self.model.revision - back;
                let request = Request::Compact(CompactionRequest { revision, physical: true });
                if self.apply(request).is_ok() {
                    self.compacted = revision;
                }
            }
            Op::Tick => {
                self.clock = self.clock + Duration::from_secs(600);
                self.hub.tick(self.clock);
            }
            Op::Grant { id } => {
                let ok = self.apply(Request::LeaseGrant(LeaseGrantRequest { ttl: 10, id })).is_ok();
                prop_assert_eq!(ok, !self.model.leases.contains_key(&id));
                self.model.leases.insert(id, ());
            }
            Op::Revoke { id } => {
                let ok = self.apply(Request::LeaseRevoke(LeaseRevokeRequest { id })).is_ok();
                prop_assert_eq!(ok, self.model.leases.remove(&id).is_some());
                let doomed: Vec<_> = self
                    .model
                    .live
                    .iter()
                    .filter(|(_, kv)| kv.lease == id)
                    .map(|(k, _)| (k.clone(), None))
                    .collect();
                self.model.write(doomed);
            }
            Op::Watch {
                stream,
                key: k,
                range,
                back,
                filter,
                prev_kv,
                fragment,
                progress_notify,
            } => {
                let range_end = match range {
                    0 => Vec::new(),
                    1 => vec![0],
                    _ => KEYS.get(k + 2).unwrap_or(&"f").as_bytes().to_vec(),
                };
                let filters = match filter {
                    1 => vec![WatchFilter::NoPut],
                    2 => vec![WatchFilter::NoDelete],
                    _ => Vec::new(),
                };
                let start_revision = if back < 0 { 0 } else { (self.model.revision - back).max(1) };
                let request = WatchCreateRequest {
                    key: key(k),
                    range_end,
                    start_revision,
                    filters,
                    prev_kv,
                    fragment,
                    progress_notify,
                    ..Default::default()
                };
                let start =
                    if start_revision == 0 { self.model.revision + 1 } else { start_revision };
                self.pending_creates.entry(stream).or_default().push((request.clone(), start));
                self.hub.create(stream, &request, self.machine.kv());
                self.hub.sync(self.machine.kv());
            }
            Op::Cancel { stream, pick } => {
                let live: Vec<WatchId> = self
                    .watchers
                    .iter()
                    .filter(|((s, _), w)| *s == stream && !w.canceled)
                    .map(|((_, id), _)| *id)
                    .collect();
                if let Some(&id) = live.get(pick % live.len().max(1)) {
                    self.hub.cancel(stream, id);
                }
            }
            Op::Sent { stream, count } => {
                self.hub.sent(stream, count);
                self.hub.sync(self.machine.kv());
            }
            Op::Progress { stream } => self.hub.request_progress(stream),
        }
        self.collect()
    }

    /// Takes the hub's responses in order and checks each against what was expected so far.
    fn collect(&mut self) -> Result<(), TestCaseError> {
        for (stream, response) in self.hub.take_outputs() {
            if response.created {
                let (request, start) = self.pending_creates.get_mut(&stream).unwrap().remove(0);
                prop_assert!(!response.canceled, "valid creates succeed: {:?}", response);
                let seen = Seen {
                    request,
                    start,
                    events: Vec::new(),
                    responses: Vec::new(),
                    fragment_open: false,
                    canceled: false,
                    compacted_at: None,
                };
                prop_assert!(self.watchers.insert((stream, response.watch_id), seen).is_none());
                continue;
            }
            if response.is_progress_notify() {
                let r = response.header.revision;
                prop_assert!(r <= self.model.revision);
                // -1 speaks for the whole stream; a watcher's own notification for itself.
                for ((s, id), seen) in &self.watchers {
                    let covered = response.watch_id == -1 || response.watch_id == *id;
                    if *s != stream || seen.canceled || !covered {
                        continue;
                    }
                    let due: Vec<Event> = seen
                        .expected(&self.model.history)
                        .into_iter()
                        .filter(|e| e.kv.mod_revision <= r)
                        .collect();
                    prop_assert!(
                        seen.events.len() >= due.len() && seen.events[..due.len()] == due[..],
                        "progress at {} before delivery",
                        r
                    );
                }
                continue;
            }
            let seen =
                self.watchers.get_mut(&(stream, response.watch_id)).expect("a known watcher");
            prop_assert!(!seen.canceled, "nothing after a cancel");
            if response.canceled {
                seen.canceled = true;
                if response.compact_revision != 0 {
                    prop_assert_eq!(response.compact_revision, self.compacted, "the compaction");
                    seen.compacted_at = Some(response.compact_revision);
                }
                continue;
            }
            let revisions: Vec<i64> = response.events.iter().map(|e| e.kv.mod_revision).collect();
            if seen.fragment_open {
                seen.responses.last_mut().unwrap().extend(revisions);
            } else {
                seen.responses.push(revisions);
            }
            seen.fragment_open = response.fragment;
            seen.events.extend(response.events);
        }
        Ok(())
    }

    /// Gives every stream room until nothing is behind, then checks every watcher.
    fn finish(mut self) -> Result<(), TestCaseError> {
        for _ in 0..10_000 {
            if self.hub.behind_count() == 0 {
                break;
            }
            for stream in 0..STREAMS {
                self.hub.sent(stream, 1000);
            }
            self.hub.sync(self.machine.kv());
            self.collect()?;
        }
        prop_assert_eq!(self.hub.behind_count(), 0);
        for ((stream, id), seen) in &self.watchers {
            let expected = seen.expected(&self.model.history);
            let got = &seen.events;
            let prefix = got.len() <= expected.len() && expected[..got.len()] == got[..];
            prop_assert!(
                prefix,
                "watcher {}/{}: events are not the history\n got {:?}\nwant {:?}",
                stream,
                id,
                got,
                expected
            );
            match (seen.canceled, seen.compacted_at) {
                (false, _) => prop_assert_eq!(
                    got.len(),
                    expected.len(),
                    "watcher {}/{} missed events",
                    stream,
                    id
                ),
                (true, Some(compacted)) => {
                    let last = got.last().map_or(seen.start - 1, |e| e.kv.mod_revision);
                    prop_assert!(
                        compacted > last && compacted >= seen.start,
                        "canceled at {} after {}",
                        compacted,
                        last
                    );
                }
                (true, None) => {}
            }
            let mut all: Vec<i64> = seen
                .responses
                .iter()
                .flat_map(|r| {
                    let mut r = r.clone();
                    r.dedup();
                    r
                })
                .collect();
            let count = all.len();
            all.dedup();
            prop_assert_eq!(count, all.len(), "a revision split across responses");
        }
        Ok(())
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]
    #[test]
    fn watchers_see_exactly_the_history(
        ops in prop::collection::vec(op(), 1..120),
        capacity in 1..4usize,
    ) {
        let settings = WatchSettings {
            stream_capacity: capacity,
            max_request_bytes: 200,
            ..WatchSettings::default()
        };
        let machine = StateMachine::new(Vec::new(), MachineSettings::default());
        let mut run = Run {
            hub: WatchHub::new(settings, machine.kv().current_revision(), Instant::ZERO),
            machine,
            model: Model { revision: 1, ..Model::default() },
            index: 0,
            compacted: 0,
            clock: Instant::ZERO,
            watchers: BTreeMap::new(),
            pending_creates: BTreeMap::new(),
        };
        for op in ops {
            run.step(op)?;
        }
        run.finish()?;
    }
}
