//! The watch checker: every watch session against the cluster's final event log.
//!
//! A session is one watch stream on one member, from one start revision, until the member went
//! away or the run ended; a watcher resumes on another member from the revision after the last
//! event it received, so the guarantees etcd documents are checked per session:
//! - ordered, unique, reliable, and equal to the history: the events received are exactly the
//!   log's events from the start revision on, a prefix of them, in order;
//! - atomic: a revision's events arrive in one response;
//! - resumable: a resumed session starts right after what the watcher received (the world
//!   resumes that way, and the prefix rule then leaves no gap);
//! - bookmarkable: a progress notification at revision r arrives only after every event at or
//!   below r;
//! - live: a session still open at the end on a running member has received every event its
//!   member applied.

use crate::check::Violation;
use std::collections::BTreeMap;
use stead_core::api::Event;

/// What one watch session received.
#[derive(Clone, Debug, Default)]
pub struct WatchSession {
    /// Which watcher this is a session of.
    pub watcher: usize,
    /// The member serving it.
    pub member: u64,
    /// The first revision it asked for.
    pub start: i64,
    /// Every event, in arrival order.
    pub events: Vec<Event>,
    /// The revisions of each event response, in arrival order.
    pub responses: Vec<Vec<i64>>,
    /// Progress notifications: (revision, events received before it).
    pub progress: Vec<(i64, usize)>,
    /// Canceled for compaction at this revision.
    pub compacted: Option<i64>,
    /// At the end of the run, the session was open on a running member at this revision.
    pub open_at: Option<i64>,
}

/// Checks every session against the final log `events` (the whole history, never compacted).
pub fn check(sessions: &[WatchSession], events: &[Event]) -> Vec<Violation> {
    let mut per_revision: BTreeMap<i64, usize> = BTreeMap::new();
    for event in events {
        *per_revision.entry(event.kv.mod_revision).or_default() += 1;
    }
    let mut violations = Vec::new();
    for (index, session) in sessions.iter().enumerate() {
        let name = format!(
            "session {index} (watcher {}, member {}, from {})",
            session.watcher, session.member, session.start
        );
        if let Some(problem) = check_session(session, events, &per_revision) {
            violations.push(Violation::new("watch", format!("{name}: {problem}")));
        }
    }
    violations
}

fn check_session(
    session: &WatchSession,
    events: &[Event],
    per_revision: &BTreeMap<i64, usize>,
) -> Option<String> {
    let first = events.partition_point(|e| e.kv.mod_revision < session.start);
    let expected = &events[first..];
    for (position, got) in session.events.iter().enumerate() {
        let Some(want) = expected.get(position) else {
            return Some(format!("event {position} ({}) is not in the history", describe(got)));
        };
        if got != want {
            return Some(format!(
                "event {position} is {}, the history has {}",
                describe(got),
                describe(want)
            ));
        }
    }
    for revisions in &session.responses {
        let mut counts: BTreeMap<i64, usize> = BTreeMap::new();
        for revision in revisions {
            *counts.entry(*revision).or_default() += 1;
        }
        for (revision, count) in counts {
            let whole = per_revision.get(&revision).copied().unwrap_or(0);
            if count != whole {
                return Some(format!(
                    "revision {revision} split: {count} of {whole} events in one response"
                ));
            }
        }
    }
    for &(revision, received) in &session.progress {
        let due = expected.partition_point(|e| e.kv.mod_revision <= revision);
        if received < due {
            return Some(format!(
                "progress at revision {revision} after {received} events, but {due} were due"
            ));
        }
    }
    if let Some(compacted) = session.compacted {
        let last = session.events.last().map_or(session.start - 1, |e| e.kv.mod_revision);
        if compacted <= last {
            return Some(format!("canceled for compaction at {compacted} after revision {last}"));
        }
    }
    if let Some(revision) = session.open_at {
        let due = expected.partition_point(|e| e.kv.mod_revision <= revision);
        if session.events.len() < due {
            return Some(format!(
                "open at the end at revision {revision}, received {} of {due} events",
                session.events.len()
            ));
        }
    }
    None
}

fn describe(event: &Event) -> String {
    format!(
        "{:?} {} at {}",
        event.kind,
        String::from_utf8_lossy(&event.kv.key),
        event.kv.mod_revision
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use stead_core::api::{EventKind, KeyValue};

    fn put(key: &str, revision: i64) -> Event {
        let kv = KeyValue { key: key.into(), mod_revision: revision, ..KeyValue::default() };
        Event { kind: EventKind::Put, kv, prev_kv: None }
    }

    fn history() -> Vec<Event> {
        vec![put("a", 2), put("b", 3), put("c", 3), put("a", 4)]
    }

    fn session(start: i64, events: &[Event], responses: Vec<Vec<i64>>) -> WatchSession {
        WatchSession { start, events: events.to_vec(), responses, ..WatchSession::default() }
    }

    fn verdict(session: WatchSession) -> Option<String> {
        check(&[session], &history()).first().map(|v| v.detail.clone())
    }

    #[test]
    fn a_faithful_session_passes() {
        let h = history();
        assert_eq!(verdict(session(3, &h[1..], vec![vec![3, 3], vec![4]])), None);
        let mut resumed = session(2, &h[..3], vec![vec![2], vec![3, 3]]);
        resumed.progress = vec![(3, 3), (1, 0)];
        resumed.open_at = Some(3);
        assert_eq!(verdict(resumed), None);
    }

    #[test]
    fn a_gap_a_duplicate_and_a_reordering_fail() {
        let h = history();
        let gap = verdict(session(2, &[h[0].clone(), h[3].clone()], vec![]));
        assert!(gap.unwrap().contains("event 1 is Put a at 4, the history has Put b at 3"));
        let duplicate = verdict(session(2, &[h[0].clone(), h[0].clone()], vec![]));
        assert!(duplicate.is_some());
        let reordered = verdict(session(3, &[h[2].clone(), h[1].clone()], vec![]));
        assert!(reordered.is_some());
        let phantom = verdict(session(
            2,
            &[h[0].clone(), h[1].clone(), h[2].clone(), h[3].clone(), put("z", 9)],
            vec![],
        ));
        assert!(phantom.unwrap().contains("not in the history"));
    }

    #[test]
    fn a_split_revision_an_early_bookmark_and_a_stalled_stream_fail() {
        let h = history();
        let split = verdict(session(3, &h[1..3], vec![vec![3], vec![3]]));
        assert!(split.unwrap().contains("revision 3 split"));
        let mut early = session(2, &h[..1], vec![vec![2]]);
        early.progress = vec![(3, 1)];
        assert!(verdict(early).unwrap().contains("progress at revision 3"));
        let mut stalled = session(2, &h[..1], vec![vec![2]]);
        stalled.open_at = Some(4);
        assert!(verdict(stalled).unwrap().contains("received 1 of 4"));
        let mut compacted = session(2, &h[..2], vec![]);
        compacted.compacted = Some(3);
        assert!(verdict(compacted).unwrap().contains("compaction at 3 after revision 3"));
    }
}
