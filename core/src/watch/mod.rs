//! Watches: streams of watchers, each reporting the events of a key range from a start revision
//! (etcd's `watchableStore` and `serverWatchStream`).
//!
//! Every member serves watches from the events it applies. A watcher is in one of three states:
//! - *synced*: it has seen every revision up to the store's; each newly applied revision's
//!   matching events go out at once, as one response.
//! - *unsynced*: its next revision is behind (a past start revision, a restored snapshot, a
//!   flushed victim). [`WatchHub::sync`] catches such watchers up from the history in bounded
//!   batches ([`SYNC_WATCHERS_MAX`] watchers, [`BATCH_REVISIONS_MAX`] revisions each), whole
//!   revisions at a time, and moves them to synced once current. A watcher whose next revision
//!   was compacted away gets a cancel carrying `compact_revision`.
//! - *victim*: its stream had no room for a response, so the events wait with the watcher and go
//!   out first when the stream has room again; nothing is lost or reordered.
//!
//! Room is flow control with the driver: each stream may have [`WatchSettings::stream_capacity`]
//! event responses outstanding, and the driver returns room with [`WatchHub::sent`] as its
//! transport delivers them. Notices (created, canceled, progress) are small and always go out.
//!
//! A progress notification at revision `r` promises that every matching event at or below `r`
//! was delivered on that stream: a stream-wide request is answered only once every watcher on the
//! stream is synced (etcd 3.4 answers at once, which can break that promise); periodic ones
//! (`progress_notify`) go to synced watchers that sent nothing for an interval.

mod fragment;

use crate::api::{
    Event, EventKind, ResponseHeader, WatchCreateRequest, WatchFilter, WatchId, WatchResponse,
};
use crate::mvcc::{KeyRange, KvStore};
use crate::time::{Duration, Instant};
use std::collections::{BTreeMap, BTreeSet};
use std::ops::Bound;

/// A watch stream's id, chosen by the driver.
pub type StreamId = u64;

/// Most unsynced watchers caught up per [`WatchHub::sync`] (etcd's `maxWatchersPerSync`).
pub const SYNC_WATCHERS_MAX: usize = 512;
/// Most revisions one catch-up response covers (etcd's `watchBatchMaxRevs`).
pub const BATCH_REVISIONS_MAX: i64 = 1000;

/// etcd's `mvcc: watcher range is empty`.
pub const EMPTY_RANGE: &str = "mvcc: watcher range is empty";
/// etcd's `mvcc: duplicate watch ID provided on the WatchStream`.
pub const DUPLICATE_ID: &str = "mvcc: duplicate watch ID provided on the WatchStream";

/// How watches behave; configuration, not replicated state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WatchSettings {
    /// Responses larger than this are split when the watcher asked for fragments.
    pub max_request_bytes: usize,
    /// How often idle watchers with `progress_notify` hear the current revision (etcd: 10 min).
    pub progress_interval: Duration,
    /// Event responses a stream may have outstanding (etcd's channel buffer: 128).
    pub stream_capacity: usize,
}

impl Default for WatchSettings {
    fn default() -> Self {
        WatchSettings {
            max_request_bytes: 1536 * 1024,
            progress_interval: Duration::from_secs(600),
            stream_capacity: 128,
        }
    }
}

/// Where a watcher stands.
#[derive(Clone, Debug, PartialEq, Eq)]
enum State {
    Synced,
    Unsynced,
    /// Waiting for room, with the responses it could not send, oldest first.
    Victim(Vec<WatchResponse>),
}

#[derive(Clone, Debug)]
struct Watcher {
    key: Vec<u8>,
    range_end: Vec<u8>,
    /// The first revision not yet reported.
    next_revision: i64,
    no_put: bool,
    no_delete: bool,
    prev_kv: bool,
    progress_notify: bool,
    fragment: bool,
    state: State,
    /// Whether events went out since the last periodic progress check.
    sent_since_progress: bool,
}

impl Watcher {
    fn matches(&self, key: &[u8]) -> bool {
        KeyRange::new(&self.key, &self.range_end).contains(key)
    }

    /// The events of `events` this watcher reports, shaped as it asked.
    fn select(&self, events: &[Event]) -> Vec<Event> {
        let wanted = |event: &&Event| {
            self.matches(&event.kv.key)
                && !(self.no_put && event.kind == EventKind::Put)
                && !(self.no_delete && event.kind == EventKind::Delete)
        };
        let shape = |event: &Event| {
            let mut event = event.clone();
            if !self.prev_kv {
                event.prev_kv = None;
            }
            event
        };
        events.iter().filter(wanted).map(shape).collect()
    }
}

#[derive(Clone, Debug, Default)]
struct Stream {
    watchers: BTreeMap<WatchId, Watcher>,
    next_id: WatchId,
    /// Event responses this stream may still emit.
    room: usize,
    /// A stream-wide progress request waits for every watcher to be synced.
    progress_requested: bool,
}

/// Every watch stream of a member. See the module documentation.
#[derive(Clone, Debug, Default)]
pub struct WatchHub {
    settings: WatchSettings,
    streams: BTreeMap<StreamId, Stream>,
    /// The store revision every synced watcher has seen.
    revision: i64,
    /// Watchers that are not synced (unsynced or victims), in the order they are served.
    behind: BTreeSet<(StreamId, WatchId)>,
    last_progress: Instant,
    outputs: Vec<(StreamId, WatchResponse)>,
    /// The member's identity and term, for response headers (set by the node).
    identity: ResponseHeader,
    /// The last watcher [`WatchHub::sync`] served: the next pass starts after it, so one
    /// stalled stream cannot starve the others.
    sync_cursor: (StreamId, WatchId),
    /// Events read from the history for watchers behind, from the start (etcd's
    /// `pending_events_total`).
    caught_up_events: u64,
}

impl WatchHub {
    /// A hub with no streams, at the store's `revision`.
    pub fn new(settings: WatchSettings, revision: i64, now: Instant) -> Self {
        WatchHub { settings, revision, last_progress: now, ..WatchHub::default() }
    }

    /// Sets the cluster id, member id and raft term that response headers carry.
    pub fn set_identity(&mut self, cluster_id: u64, member_id: u64, raft_term: u64) {
        self.identity = ResponseHeader { cluster_id, member_id, raft_term, revision: 0 };
    }

    fn header(&self, revision: i64) -> ResponseHeader {
        ResponseHeader { revision, ..self.identity }
    }

    /// The responses produced since the last call, in the order they must be sent.
    pub fn take_outputs(&mut self) -> Vec<(StreamId, WatchResponse)> {
        std::mem::take(&mut self.outputs)
    }

    /// How many watchers exist on every stream.
    pub fn watcher_count(&self) -> usize {
        self.streams.values().map(|s| s.watchers.len()).sum()
    }

    /// How many events watchers behind were sent from the history, from the start.
    pub fn caught_up_events(&self) -> u64 {
        self.caught_up_events
    }

    /// How many watchers are not synced.
    pub fn behind_count(&self) -> usize {
        self.behind.len()
    }

    /// Creates a watcher on `stream` (opening the stream on first use) and answers the request.
    pub fn create(&mut self, stream_id: StreamId, request: &WatchCreateRequest, store: &KvStore) {
        self.revision = store.current_revision();
        let header = self.header(self.revision);
        let capacity = self.settings.stream_capacity;
        let stream = self
            .streams
            .entry(stream_id)
            .or_insert_with(|| Stream { room: capacity, ..Stream::default() });
        let refuse = |watch_id, reason: &str| WatchResponse {
            header,
            watch_id,
            created: true,
            canceled: true,
            cancel_reason: reason.to_string(),
            ..WatchResponse::default()
        };
        // etcd reads an empty key as "\0", the smallest key.
        let key = if request.key.is_empty() { vec![0] } else { request.key.clone() };
        let range_end = request.range_end.clone();
        if !matches!(&range_end[..], [] | [0]) && key >= range_end {
            return self.outputs.push((stream_id, refuse(-1, EMPTY_RANGE)));
        }
        let watch_id = if request.watch_id == 0 {
            while stream.watchers.contains_key(&stream.next_id) {
                stream.next_id += 1;
            }
            stream.next_id += 1;
            stream.next_id - 1
        } else if stream.watchers.contains_key(&request.watch_id) {
            return self.outputs.push((stream_id, refuse(-1, DUPLICATE_ID)));
        } else {
            request.watch_id
        };
        let current = self.revision;
        let start = match request.start_revision {
            0 => current + 1,
            start => start.max(1),
        };
        let synced = start > current;
        let watcher = Watcher {
            key,
            range_end,
            next_revision: start,
            no_put: request.filters.contains(&WatchFilter::NoPut),
            no_delete: request.filters.contains(&WatchFilter::NoDelete),
            prev_kv: request.prev_kv,
            progress_notify: request.progress_notify,
            fragment: request.fragment,
            state: if synced { State::Synced } else { State::Unsynced },
            sent_since_progress: false,
        };
        stream.watchers.insert(watch_id, watcher);
        if !synced {
            self.behind.insert((stream_id, watch_id));
        }
        let created = WatchResponse { header, watch_id, created: true, ..Default::default() };
        self.outputs.push((stream_id, created));
    }

    /// Cancels a watcher; an unknown one is ignored, as etcd does.
    pub fn cancel(&mut self, stream_id: StreamId, watch_id: WatchId) {
        let Some(stream) = self.streams.get_mut(&stream_id) else { return };
        if stream.watchers.remove(&watch_id).is_none() {
            return;
        }
        self.behind.remove(&(stream_id, watch_id));
        let header = self.header(self.revision);
        let canceled = WatchResponse { header, watch_id, canceled: true, ..Default::default() };
        self.outputs.push((stream_id, canceled));
        self.answer_progress_requests();
    }

    /// Asks for a progress notification on the whole stream (`watch_id` -1), answered once
    /// every watcher on it is synced.
    pub fn request_progress(&mut self, stream_id: StreamId) {
        let capacity = self.settings.stream_capacity;
        let stream = self
            .streams
            .entry(stream_id)
            .or_insert_with(|| Stream { room: capacity, ..Stream::default() });
        stream.progress_requested = true;
        self.answer_progress_requests();
    }

    /// Drops a stream and its watchers.
    pub fn close(&mut self, stream_id: StreamId) {
        self.streams.remove(&stream_id);
        let gone = self.behind.range((stream_id, WatchId::MIN)..=(stream_id, WatchId::MAX));
        let gone: Vec<_> = gone.copied().collect();
        for watcher in gone {
            self.behind.remove(&watcher);
        }
    }

    /// The driver delivered `count` event responses of `stream`: that much room is back.
    pub fn sent(&mut self, stream_id: StreamId, count: usize) {
        if let Some(stream) = self.streams.get_mut(&stream_id) {
            stream.room = (stream.room + count).min(self.settings.stream_capacity);
        }
    }

    /// Reports the events of one newly applied revision to synced watchers. `events` are all
    /// the events of revision `revision`, which follows every revision reported before.
    pub fn notify(&mut self, revision: i64, events: &[Event]) {
        self.revision = revision;
        let header = self.header(revision);
        let mut became_victims = Vec::new();
        for (&stream_id, stream) in &mut self.streams {
            for (&watch_id, watcher) in &mut stream.watchers {
                // A watcher that starts in the future skips revisions before its start.
                if watcher.state != State::Synced || revision < watcher.next_revision {
                    continue;
                }
                watcher.next_revision = revision + 1;
                let events = watcher.select(events);
                if events.is_empty() {
                    continue;
                }
                let response = WatchResponse { header, watch_id, events, ..Default::default() };
                if stream.room > 0 {
                    let out = &mut self.outputs;
                    send(out, &self.settings, stream_id, &mut stream.room, watcher, response);
                } else {
                    watcher.state = State::Victim(vec![response]);
                    became_victims.push((stream_id, watch_id));
                }
            }
        }
        self.behind.extend(became_victims);
    }

    /// The store jumped to a snapshot: every synced watcher must catch up from its history.
    pub fn restored(&mut self, store: &KvStore) {
        self.revision = store.current_revision();
        for (&stream_id, stream) in &mut self.streams {
            for (&watch_id, watcher) in &mut stream.watchers {
                if watcher.state == State::Synced {
                    watcher.state = State::Unsynced;
                    self.behind.insert((stream_id, watch_id));
                }
            }
        }
    }

    /// Delivers what waiting victims hold and catches unsynced watchers up from `store`'s
    /// history, as room allows; then answers progress requests that became answerable.
    pub fn sync(&mut self, store: &KvStore) {
        self.revision = store.current_revision();
        if !self.behind.is_empty() {
            let cursor = self.sync_cursor;
            let after = self.behind.range((Bound::Excluded(cursor), Bound::Unbounded));
            let from_start = self.behind.range(..=cursor);
            let batch: Vec<_> = after
                .chain(from_start)
                .copied()
                .filter(|&(stream, watch)| self.can_progress(stream, watch))
                .take(SYNC_WATCHERS_MAX)
                .collect();
            for (stream_id, watch_id) in batch {
                self.sync_one(stream_id, watch_id, store);
                self.sync_cursor = (stream_id, watch_id);
            }
        }
        self.answer_progress_requests();
    }

    /// Sends periodic progress notifications when an interval has passed since the last ones.
    pub fn tick(&mut self, now: Instant) {
        if now.since(self.last_progress) < self.settings.progress_interval {
            return;
        }
        self.last_progress = now;
        let header = self.header(self.revision);
        for (&stream_id, stream) in &mut self.streams {
            for (&watch_id, watcher) in &mut stream.watchers {
                let idle = !std::mem::take(&mut watcher.sent_since_progress);
                if watcher.progress_notify && watcher.state == State::Synced && idle {
                    let progress = WatchResponse { header, watch_id, ..Default::default() };
                    self.outputs.push((stream_id, progress));
                }
            }
        }
    }

    /// Whether a watcher that is behind can move now: its stream has room, or it only needs to
    /// be marked synced.
    fn can_progress(&self, stream_id: StreamId, watch_id: WatchId) -> bool {
        let stream = &self.streams[&stream_id];
        let watcher = &stream.watchers[&watch_id];
        stream.room > 0
            || (watcher.state == State::Unsynced && watcher.next_revision > self.revision)
    }

    fn sync_one(&mut self, stream_id: StreamId, watch_id: WatchId, store: &KvStore) {
        let revision = self.revision;
        let (header, cancel_header) = (self.header(revision), self.header(0));
        let stream = self.streams.get_mut(&stream_id).expect("behind watchers have a stream");
        let watcher = stream.watchers.get_mut(&watch_id).expect("behind watchers exist");
        if let State::Victim(held) = std::mem::replace(&mut watcher.state, State::Unsynced) {
            let mut held = held.into_iter();
            while stream.room > 0 {
                let Some(response) = held.next() else { break };
                let out = &mut self.outputs;
                send(out, &self.settings, stream_id, &mut stream.room, watcher, response);
            }
            let rest: Vec<WatchResponse> = held.collect();
            if !rest.is_empty() {
                watcher.state = State::Victim(rest);
                return;
            }
        }
        if watcher.next_revision > revision {
            watcher.state = State::Synced;
            self.behind.remove(&(stream_id, watch_id));
            return;
        }
        if stream.room == 0 {
            return;
        }
        let end = watcher.next_revision.saturating_add(BATCH_REVISIONS_MAX).min(revision + 1);
        match store.events_between(watcher.next_revision, end) {
            // Only compaction makes the history unreadable.
            Err(_) => {
                let compacted = WatchResponse {
                    // etcd 3.4 leaves the revision of a compaction cancel at 0.
                    header: cancel_header,
                    watch_id,
                    canceled: true,
                    compact_revision: store.compacted_revision(),
                    ..Default::default()
                };
                stream.watchers.remove(&watch_id);
                self.behind.remove(&(stream_id, watch_id));
                self.outputs.push((stream_id, compacted));
            }
            Ok(events) => {
                watcher.next_revision = end;
                let events = watcher.select(&events);
                self.caught_up_events += events.len() as u64;
                if !events.is_empty() {
                    let response = WatchResponse { header, watch_id, events, ..Default::default() };
                    let out = &mut self.outputs;
                    send(out, &self.settings, stream_id, &mut stream.room, watcher, response);
                }
                if watcher.next_revision > revision {
                    watcher.state = State::Synced;
                    self.behind.remove(&(stream_id, watch_id));
                }
            }
        }
    }

    /// Answers every stream-wide progress request whose stream is wholly synced.
    fn answer_progress_requests(&mut self) {
        let header = self.header(self.revision);
        for (&stream_id, stream) in &mut self.streams {
            let all_synced = stream.watchers.values().all(|w| w.state == State::Synced);
            if stream.progress_requested && all_synced {
                stream.progress_requested = false;
                let progress = WatchResponse { header, watch_id: -1, ..Default::default() };
                self.outputs.push((stream_id, progress));
            }
        }
    }
}

/// Emits a watcher's event response (the stream has room), in fragments if it asked for them
/// and it is too large; each response that goes out takes a unit of the stream's `room`.
fn send(
    outputs: &mut Vec<(StreamId, WatchResponse)>,
    settings: &WatchSettings,
    stream_id: StreamId,
    room: &mut usize,
    watcher: &mut Watcher,
    response: WatchResponse,
) {
    watcher.sent_since_progress = true;
    let pieces = if watcher.fragment {
        fragment::split(response, settings.max_request_bytes)
    } else {
        vec![response]
    };
    *room = room.saturating_sub(pieces.len());
    outputs.extend(pieces.into_iter().map(|piece| (stream_id, piece)));
}

#[cfg(test)]
mod tests;
