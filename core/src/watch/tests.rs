//! Watch hub rules, one test each; `tests/watch_model.rs` checks whole histories.

use super::*;
use crate::api::{DeleteRangeRequest, PutRequest};

/// A store and a hub kept in step, as the node keeps them.
struct Fixture {
    kv: KvStore,
    hub: WatchHub,
}

impl Fixture {
    fn new(capacity: usize) -> Self {
        let settings = WatchSettings { stream_capacity: capacity, ..WatchSettings::default() };
        Fixture { kv: KvStore::new(), hub: WatchHub::new(settings, 1, Instant::ZERO) }
    }

    fn put(&mut self, key: &str, value: &str) {
        let put = PutRequest { key: key.into(), value: value.into(), ..PutRequest::default() };
        self.kv.put(&put, |_| true).unwrap();
        self.notify();
    }

    fn delete(&mut self, key: &str) {
        let delete = DeleteRangeRequest { key: key.into(), ..DeleteRangeRequest::default() };
        self.kv.delete_range(&delete);
        self.notify();
    }

    fn notify(&mut self) {
        let revision = self.kv.current_revision();
        self.hub.notify(revision, &self.kv.events_at(revision));
        self.hub.sync(&self.kv);
    }

    fn watch(&mut self, stream: StreamId, request: WatchCreateRequest) {
        self.hub.create(stream, &request, &self.kv);
        self.hub.sync(&self.kv);
    }

    fn out(&mut self) -> Vec<(StreamId, WatchResponse)> {
        self.hub.take_outputs()
    }
}

fn on(key: &str) -> WatchCreateRequest {
    WatchCreateRequest { key: key.into(), ..WatchCreateRequest::default() }
}

fn from(key: &str, start_revision: i64) -> WatchCreateRequest {
    WatchCreateRequest { start_revision, ..on(key) }
}

/// (watch id, [(key, mod revision)]) of every event response.
fn events(outputs: &[(StreamId, WatchResponse)]) -> Vec<(WatchId, Vec<(String, i64)>)> {
    let event_responses = outputs.iter().filter(|(_, r)| !r.events.is_empty());
    event_responses
        .map(|(_, r)| {
            let events = r
                .events
                .iter()
                .map(|e| (String::from_utf8(e.kv.key.clone()).unwrap(), e.kv.mod_revision));
            (r.watch_id, events.collect())
        })
        .collect()
}

#[test]
fn ids_are_assigned_from_zero_and_checked() {
    let mut f = Fixture::new(8);
    f.watch(1, on("a"));
    f.watch(1, WatchCreateRequest { watch_id: 1, ..on("b") });
    f.watch(1, on("c"));
    f.watch(1, WatchCreateRequest { watch_id: 2, ..on("d") });
    f.watch(2, on("e"));
    let out = f.out();
    let ids: Vec<(StreamId, WatchId, bool)> =
        out.iter().map(|(s, r)| (*s, r.watch_id, r.canceled)).collect();
    assert_eq!(ids, [(1, 0, false), (1, 1, false), (1, 2, false), (1, -1, true), (2, 0, false)]);
    assert_eq!(out[3].1.cancel_reason, DUPLICATE_ID);
    assert!(out.iter().all(|(_, r)| r.created && r.header.revision == 1));
    f.watch(1, WatchCreateRequest { range_end: b"a".to_vec(), ..on("b") });
    assert_eq!(f.out()[0].1.cancel_reason, EMPTY_RANGE);
}

#[test]
fn a_synced_watcher_sees_each_matching_revision_once() {
    let mut f = Fixture::new(8);
    f.watch(1, WatchCreateRequest { range_end: b"b".to_vec(), ..on("a") });
    f.out();
    f.put("a1", "x");
    f.put("b", "y");
    f.delete("a1");
    f.delete("nothing");
    assert_eq!(
        events(&f.out()),
        [(0, vec![("a1".into(), 2)]), (0, vec![("a1".into(), 4)])],
        "only keys in [a, b), the deletion included"
    );
}

#[test]
fn a_past_start_revision_catches_up_from_history() {
    let mut f = Fixture::new(8);
    f.put("k", "1");
    f.put("other", "1");
    f.put("k", "2");
    f.watch(1, from("k", 2));
    f.put("k", "3");
    assert_eq!(
        events(&f.out()),
        [(0, vec![("k".into(), 2), ("k".into(), 4)]), (0, vec![("k".into(), 5)])]
    );
    assert_eq!(f.hub.behind_count(), 0, "caught up and synced");
}

#[test]
fn catch_up_goes_in_bounded_batches_of_whole_revisions() {
    let mut f = Fixture::new(4096);
    for i in 0..2500 {
        f.put("k", &i.to_string());
    }
    f.watch(1, from("k", 1));
    f.hub.sync(&f.kv);
    f.hub.sync(&f.kv);
    let out = f.out();
    let batches: Vec<usize> = out.iter().skip(1).map(|(_, r)| r.events.len()).collect();
    assert_eq!(batches, [999, 1000, 501], "revision 1 has no event; 1000 revisions a batch");
}

#[test]
fn a_compacted_start_revision_cancels_with_the_compact_revision() {
    let mut f = Fixture::new(8);
    f.put("k", "1");
    f.put("k", "2");
    f.kv.compact(3).unwrap();
    f.watch(1, from("k", 3));
    let out = f.out();
    assert_eq!(out.len(), 2);
    assert!(out[1].1.canceled && out[1].1.compact_revision == 3, "{out:?}");
    f.watch(1, from("k", 4));
    assert_eq!(f.out().len(), 1, "after the compaction point: created, nothing to report");
    assert_eq!(f.hub.watcher_count(), 1);
}

#[test]
fn a_slow_stream_makes_victims_that_lose_nothing() {
    let mut f = Fixture::new(1);
    f.watch(1, on("k"));
    f.watch(1, on("j"));
    f.out();
    f.put("k", "1");
    f.put("k", "2");
    f.put("j", "1");
    f.put("k", "3");
    assert_eq!(events(&f.out()), [(0, vec![("k".into(), 2)])], "room for one response");
    assert_eq!(f.hub.behind_count(), 2, "both watchers wait");
    for _ in 0..10 {
        f.hub.sent(1, 1);
        f.hub.sync(&f.kv);
    }
    let rest = events(&f.out());
    let mut per_watcher: BTreeMap<WatchId, Vec<i64>> = BTreeMap::new();
    for (id, evs) in rest {
        per_watcher.entry(id).or_default().extend(evs.iter().map(|(_, rev)| *rev));
    }
    assert_eq!(per_watcher[&0], [3, 5], "in order, no gap, no duplicate");
    assert_eq!(per_watcher[&1], [4]);
    assert_eq!(f.hub.behind_count(), 0);
}

#[test]
fn filters_and_prev_kv_shape_events() {
    let mut f = Fixture::new(8);
    let no_put = WatchCreateRequest { filters: vec![WatchFilter::NoPut], prev_kv: true, ..on("k") };
    f.watch(1, no_put);
    f.watch(1, WatchCreateRequest { filters: vec![WatchFilter::NoDelete], ..on("k") });
    f.out();
    f.put("k", "1");
    f.delete("k");
    let out = f.out();
    assert_eq!(events(&out), [(1, vec![("k".into(), 2)]), (0, vec![("k".into(), 3)])]);
    let deletion = &out[1].1.events[0];
    assert_eq!(deletion.prev_kv.as_ref().map(|p| p.value.clone()), Some(b"1".to_vec()));
    assert!(out[0].1.events[0].prev_kv.is_none(), "prev_kv only when asked");
}

#[test]
fn a_future_start_revision_waits_for_it() {
    let mut f = Fixture::new(8);
    f.watch(1, from("k", 4));
    f.put("k", "1");
    f.put("k", "2");
    f.put("k", "3");
    assert_eq!(events(&f.out()), [(0, vec![("k".into(), 4)])]);
}

#[test]
fn progress_requests_wait_until_the_stream_is_synced() {
    let mut f = Fixture::new(1);
    f.watch(1, on("k"));
    f.out();
    f.put("k", "1");
    f.put("k", "2");
    assert_eq!(events(&f.out()), [(0, vec![("k".into(), 2)])]);
    f.hub.request_progress(1);
    assert!(f.out().is_empty(), "a victim holds revision 3: no progress yet");
    f.hub.sent(1, 1);
    f.hub.sync(&f.kv);
    let out = f.out();
    assert_eq!(events(&out), [(0, vec![("k".into(), 3)])]);
    let progress = &out.last().unwrap().1;
    assert!(progress.is_progress_notify() && progress.watch_id == -1);
    assert_eq!(progress.header.revision, 3);
    f.hub.request_progress(2);
    assert_eq!(f.out()[0].1.header.revision, 3, "a stream without watchers: at once");
}

#[test]
fn periodic_progress_goes_to_idle_synced_watchers() {
    let mut f = Fixture::new(8);
    f.watch(1, WatchCreateRequest { progress_notify: true, ..on("k") });
    f.watch(1, WatchCreateRequest { progress_notify: true, ..on("busy") });
    f.watch(1, on("quiet"));
    f.out();
    f.put("busy", "1");
    f.out();
    f.hub.tick(Instant::ZERO + Duration::from_secs(599));
    assert!(f.out().is_empty());
    f.hub.tick(Instant::ZERO + Duration::from_secs(600));
    let out = f.out();
    assert_eq!(out.len(), 1, "only the idle watcher that asked");
    assert_eq!((out[0].1.watch_id, out[0].1.header.revision), (0, 2));
}

#[test]
fn cancel_and_close_remove_watchers() {
    let mut f = Fixture::new(8);
    f.watch(1, on("k"));
    f.watch(1, from("k", 1));
    f.watch(2, from("k", 1));
    f.hub.cancel(1, 0);
    f.hub.cancel(1, 42);
    let out = f.out();
    assert!(out.last().unwrap().1.canceled && out.last().unwrap().1.watch_id == 0);
    f.hub.close(2);
    assert_eq!(f.hub.watcher_count(), 1);
    f.put("k", "1");
    assert_eq!(events(&f.out()), [(1, vec![("k".into(), 2)])]);
}

#[test]
fn a_restored_store_resyncs_every_watcher() {
    let mut f = Fixture::new(8);
    f.watch(1, on("k"));
    f.out();
    f.kv.put(&PutRequest { key: b"k".to_vec(), ..PutRequest::default() }, |_| true).unwrap();
    f.hub.restored(&f.kv);
    assert_eq!(f.hub.behind_count(), 1);
    f.hub.sync(&f.kv);
    assert_eq!(events(&f.out()), [(0, vec![("k".into(), 2)])]);
}

/// Review finding: catch-up always took the first 512 watchers behind, so a stream that never
/// acknowledged starved every stream after it.
#[test]
fn a_stalled_stream_does_not_starve_the_others() {
    let mut f = Fixture::new(1);
    for _ in 0..3 {
        f.put("k", "v");
    }
    for _ in 0..600 {
        f.hub.create(1, &from("k", 2), &f.kv);
    }
    f.hub.create(2, &from("k", 2), &f.kv);
    for _ in 0..3 {
        f.hub.sync(&f.kv);
    }
    let out = f.out();
    let served = out.iter().filter(|(stream, r)| *stream == 2 && !r.events.is_empty()).count();
    assert_eq!(served, 1, "stream 2 caught up although stream 1 has no room");
    f.hub.request_progress(2);
    assert!(f.out().iter().any(|(stream, r)| *stream == 2 && r.watch_id == -1));
}

/// Each fragment takes a unit of the stream's room, as each is a response the driver sends.
#[test]
fn fragments_take_room_each() {
    let settings =
        WatchSettings { stream_capacity: 8, max_request_bytes: 64, ..WatchSettings::default() };
    let mut f = Fixture { kv: KvStore::new(), hub: WatchHub::new(settings, 1, Instant::ZERO) };
    f.watch(1, WatchCreateRequest { fragment: true, range_end: vec![0], ..on("a") });
    f.watch(1, on("zz"));
    f.out();
    let txn = crate::api::TxnRequest {
        success: ["a", "b", "c", "d"]
            .iter()
            .map(|k| {
                let put = PutRequest {
                    key: k.as_bytes().into(),
                    value: vec![1; 40],
                    ..PutRequest::default()
                };
                crate::api::RequestOp::Put(put)
            })
            .collect(),
        ..crate::api::TxnRequest::default()
    };
    f.kv.txn(&txn, |_| true).unwrap();
    f.notify();
    let pieces = f.out().len();
    assert!(pieces >= 4, "{pieces} fragments");
    assert_eq!(f.hub.streams[&1].room, 8 - pieces);
}
