//! Watch workload: watchers that follow every key, as a client like etcd's would.
//!
//! Each watcher opens a stream on a random member, from the next revision or a past one, with
//! `prev_kv`. It acknowledges event responses after a random delay (so streams fill up and the
//! member's watchers become victims) and now and then asks for progress. When its member goes
//! away (power loss, removal) or ends the stream, and now and then on its own (a client moving to
//! another endpoint), it resumes on another member from the revision after the last event it
//! received. Every session is recorded for `check_watch`.

use super::{Event, World};
use crate::check_watch::WatchSession;
use rand::Rng;
use stead_core::api::{WatchCreateRequest, WatchRequest, WatchResponse};
use stead_core::node::Input;
use stead_core::time::Duration;

/// A watch stream the world opened: which session it serves, on which process.
#[derive(Clone, Copy, Debug)]
pub(super) struct Stream {
    session: usize,
    member: u64,
    incarnation: u64,
    open: bool,
}

impl World {
    /// Watcher `watcher` opens a new session: on its first one from a random revision at most
    /// the highest acknowledged, later right after what it received.
    pub(super) fn watch_start(&mut self, watcher: usize, resume_from: Option<i64>) {
        let Some(member) = self.workload_member() else {
            let retry = Duration::from_millis(200);
            return self.at(retry, Event::WatchStart(watcher, resume_from));
        };
        let start = match resume_from {
            Some(next) => next,
            None if self.workload.gen_bool(0.5) => 0,
            None => self.workload.gen_range(1..=self.highest_acknowledged_revision() + 1),
        };
        let session = self.watch_sessions.len();
        let current = self.hosts[&member].as_ref().expect("running").node().kv().current_revision();
        self.watch_sessions.push(WatchSession {
            watcher,
            member,
            start: if start == 0 { current + 1 } else { start },
            ..WatchSession::default()
        });
        self.next_stream += 1;
        let stream = self.next_stream;
        let incarnation = self.incarnation(member);
        self.streams.insert(stream, Stream { session, member, incarnation, open: true });
        let create = WatchCreateRequest {
            key: vec![0],
            range_end: vec![0],
            start_revision: start,
            prev_kv: true,
            ..WatchCreateRequest::default()
        };
        self.input(
            member,
            Input::Watch { stream, credential: None, request: WatchRequest::Create(create) },
        );
        let hop = Duration::from_millis(self.workload.gen_range(1_000..=6_000));
        self.at(hop, Event::WatchHop(stream));
        if self.scenario.watch.progress_every_ms > 0 {
            let every = self.scenario.watch.progress_every_ms;
            let after = self.workload.gen_range(every / 2..=every * 3 / 2).max(1);
            self.at(Duration::from_millis(after), Event::WatchProgress(stream));
        }
    }

    /// A member sent a watch response on `stream`.
    pub(super) fn watch_response(&mut self, member: u64, stream: u64, response: WatchResponse) {
        let Some(&Stream { session, open: true, .. }) = self.streams.get(&stream) else { return };
        let record = &mut self.watch_sessions[session];
        if response.is_progress_notify() {
            record.progress.push((response.header.revision, record.events.len()));
            return;
        }
        if response.canceled {
            if response.compact_revision != 0 {
                record.compacted = Some(response.compact_revision);
            }
            return self.watch_end(stream);
        }
        if response.events.is_empty() {
            return;
        }
        record.responses.push(response.events.iter().map(|e| e.kv.mod_revision).collect());
        record.events.extend(response.events);
        let delay = self.workload.gen_range(0..=self.scenario.watch.ack_delay_ms_max);
        let incarnation = self.incarnation(member);
        self.at(Duration::from_millis(delay), Event::WatchAck(member, incarnation, stream));
    }

    /// The stream ended (its member went away or refused it): resume on another member.
    pub(super) fn watch_end(&mut self, stream: u64) {
        let Some(entry) = self.streams.get_mut(&stream).filter(|s| s.open) else { return };
        entry.open = false;
        let session = &self.watch_sessions[entry.session];
        let next = session.events.last().map_or(session.start, |e| e.kv.mod_revision + 1);
        // History that compaction removed is gone: go on from after it, as clients must.
        let next = session.compacted.map_or(next, |compacted| next.max(compacted + 1));
        let watcher = session.watcher;
        let next = if self.watch_restarts.remove(&watcher) {
            self.workload.gen_range(1..=next.max(1))
        } else {
            next
        };
        self.at(Duration::from_millis(100), Event::WatchStart(watcher, Some(next)));
    }

    /// The watcher closes its stream and moves to another member.
    pub(super) fn watch_hop(&mut self, stream: u64) {
        let Some(&Stream { member, open: true, .. }) = self.streams.get(&stream) else { return };
        if self.clients_on {
            // Now and then the watcher starts over from an old revision, as a cache rebuilding
            // from a checkpoint would; compaction may have removed it.
            if self.workload.gen_bool(0.25) {
                let session = self.streams[&stream].session;
                let watcher = self.watch_sessions[session].watcher;
                self.watch_restarts.insert(watcher);
            }
            self.input(member, Input::WatchClosed { stream });
            self.watch_end(stream);
        }
    }

    /// On every tick: streams whose member is down, restarted or removed are over.
    pub(super) fn watch_check_streams(&mut self) {
        let broken: Vec<u64> = self
            .streams
            .iter()
            .filter(|(_, s)| s.open)
            .filter(|(_, s)| {
                !matches!(self.hosts.get(&s.member), Some(Some(_)))
                    || self.incarnation(s.member) != s.incarnation
            })
            .map(|(id, _)| *id)
            .collect();
        for stream in broken {
            self.watch_end(stream);
        }
    }

    /// Acknowledges one event response, if the process that sent it still runs.
    pub(super) fn watch_ack(&mut self, member: u64, incarnation: u64, stream: u64) {
        if self.incarnation(member) == incarnation {
            self.input(member, Input::WatchSent { stream, count: 1 });
        }
    }

    /// Asks for progress on an open stream, and again later.
    pub(super) fn watch_progress(&mut self, stream: u64) {
        let Some(&Stream { member, open: true, .. }) = self.streams.get(&stream) else { return };
        self.input(
            member,
            Input::Watch { stream, credential: None, request: WatchRequest::Progress },
        );
        let every = self.scenario.watch.progress_every_ms;
        let after = self.workload.gen_range(every / 2..=every * 3 / 2).max(1);
        self.at(Duration::from_millis(after), Event::WatchProgress(stream));
    }

    /// At the end: sessions still open on a running member must have caught up with it.
    pub(super) fn watch_mark_open_sessions(&mut self) {
        for stream in self.streams.values().filter(|s| s.open) {
            if let Some(Some(host)) = self.hosts.get(&stream.member) {
                let revision = host.node().kv().current_revision();
                self.watch_sessions[stream.session].open_at = Some(revision);
            }
        }
    }

    /// The highest revision any operation's answer carried.
    fn highest_acknowledged_revision(&self) -> i64 {
        self.history.ops.iter().filter_map(|op| op.outcome.revision()).max().unwrap_or(1)
    }
}
