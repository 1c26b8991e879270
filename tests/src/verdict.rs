//! The verdict on what a run observed, by the simulator's own checkers:
//! - linearizability of the key-value history with unknown outcomes, no acknowledged write
//!   lost, no phantom or duplicated write (`stead_sim::check::linearizability`);
//! - every watch session saw the history from its start revision exactly once, in order,
//!   with correct prev_kv, each revision whole (`stead_sim::check_watch`);
//! - lease safety: no early expiry, no key outliving its revoked or abandoned lease, keys of
//!   a lease deleted together (`stead_sim::check_lease`). All members share one clock here,
//!   so the skew bound is zero.
//!
//! The unit tests plant violations in recorded histories and check that each is caught.

use crate::member::ELECTION_MS;
use stead_core::api::Event;
use stead_core::time::{Duration, Instant};
use stead_sim::check::Violation;
use stead_sim::check_lease::{Final, LeaseLife, Skew};
use stead_sim::check_watch::WatchSession;
use stead_sim::history::History;
use stead_sim::{check, check_lease, check_watch};

/// Everything a run observed.
pub struct Observed<'a> {
    /// The key-value clients' operations.
    pub history: &'a History,
    /// Every lease the lease clients went through.
    pub lives: &'a [LeaseLife],
    /// Every watch session.
    pub sessions: &'a [WatchSession],
    /// The final log: every event from revision 2 on, as the members hold it.
    pub events: &'a [Event],
    /// When the final state was read.
    pub end: Instant,
    /// When the faults stopped.
    pub faults_stopped: Instant,
    /// The leases the leader held at the end.
    pub leases: Vec<i64>,
}

/// Every guarantee the observation breaks.
pub fn judge(observed: &Observed<'_>) -> Vec<Violation> {
    let kv_events: Vec<Event> =
        observed.events.iter().filter(|e| e.kv.key.starts_with(b"key")).cloned().collect();
    let mut violations = check::linearizability(observed.history, &kv_events);
    violations.extend(check_watch::check(observed.sessions, observed.events));
    let end = Final {
        end: observed.end,
        faults_stopped: observed.faults_stopped,
        election_timeout: Duration::from_millis(ELECTION_MS),
        events: observed.events,
        leases: observed.leases.clone(),
    };
    violations.extend(check_lease::check(observed.lives, &Skew::default(), &end));
    violations
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::recorder::Recorder;
    use stead_core::api::{EventKind, KeyValue};
    use stead_sim::check_lease::Gone;
    use stead_sim::history::{OpKind, Outcome};

    fn put_event(key: &str, value: &str, revision: i64, prev: Option<KeyValue>) -> Event {
        let kv = KeyValue {
            key: key.into(),
            create_revision: prev.as_ref().map_or(revision, |p| p.create_revision),
            mod_revision: revision,
            version: prev.as_ref().map_or(1, |p| p.version + 1),
            value: value.into(),
            lease: 0,
        };
        Event { kind: EventKind::Put, kv, prev_kv: prev }
    }

    /// A history of two puts of `key0` (revisions 2 and 3) and a linearizable read after
    /// both that saw the second, as a recorder would hold it; and the final log.
    fn recorded() -> (Recorder, Vec<Event>) {
        let recorder = Recorder::new();
        let a = recorder.invoke(0, OpKind::Put { key: "key0".into(), value: "c0-1".into() });
        recorder.complete(a, Outcome::Put { revision: 2 });
        let b = recorder.invoke(1, OpKind::Put { key: "key0".into(), value: "c1-1".into() });
        recorder.complete(b, Outcome::Put { revision: 3 });
        let first = put_event("key0", "c0-1", 2, None);
        let second = put_event("key0", "c1-1", 3, Some(first.kv.clone()));
        (recorder, vec![first, second])
    }

    fn read(recorder: &Recorder, value: &str, revision: i64) {
        let kind = OpKind::Get { key: "key0".into(), serializable: false };
        let id = recorder.invoke(2, kind);
        recorder.complete(id, Outcome::Get { revision, value: Some(value.into()) });
    }

    fn verdict(recorder: &Recorder, events: &[Event], last: i64) -> Vec<Violation> {
        let (history, lives, sessions) = recorder.finish(last);
        let observed = Observed {
            history: &history,
            lives: &lives,
            sessions: &sessions,
            events,
            end: recorder.now(),
            faults_stopped: recorder.now(),
            leases: Vec::new(),
        };
        judge(&observed)
    }

    #[test]
    fn a_faithful_run_passes() {
        let (recorder, events) = recorded();
        read(&recorder, "c1-1", 3);
        let session = WatchSession { start: 1, events: events.clone(), ..Default::default() };
        let index = recorder.open_session(session);
        recorder.update_session(index, |s| {
            s.responses = vec![vec![2], vec![3]];
            true
        });
        assert_eq!(verdict(&recorder, &events, 3), Vec::new());
    }

    #[test]
    fn a_lost_write_is_caught() {
        let (recorder, events) = recorded();
        // The acknowledged second put is not in what the members hold.
        let violations = verdict(&recorder, &events[..1], 2);
        assert!(!violations.is_empty(), "a lost write went unnoticed");
    }

    #[test]
    fn a_stale_read_is_caught() {
        let (recorder, events) = recorded();
        // Invoked after the second put completed, yet it saw the first value.
        read(&recorder, "c0-1", 2);
        let violations = verdict(&recorder, &events, 3);
        assert!(violations.iter().any(|v| v.check == "linearizability"), "{violations:?}");
    }

    #[test]
    fn a_duplicated_watch_event_is_caught() {
        let (recorder, events) = recorded();
        let twice = vec![events[0].clone(), events[0].clone(), events[1].clone()];
        let index =
            recorder.open_session(WatchSession { start: 1, events: twice, ..Default::default() });
        recorder.update_session(index, |_| false);
        let violations = verdict(&recorder, &events, 3);
        assert!(violations.iter().any(|v| v.check == "watch"), "{violations:?}");
    }

    #[test]
    fn a_wrong_prev_kv_is_caught() {
        let (recorder, events) = recorded();
        let mut wrong = events.clone();
        wrong[1].prev_kv = None;
        let index =
            recorder.open_session(WatchSession { start: 1, events: wrong, ..Default::default() });
        recorder.update_session(index, |_| false);
        let violations = verdict(&recorder, &events, 3);
        assert!(violations.iter().any(|v| v.check == "watch"), "{violations:?}");
    }

    #[test]
    fn a_key_outliving_its_revoked_lease_is_caught() {
        let (recorder, events) = recorded();
        let at = |ms: u64| Instant::from_nanos(ms * 1_000_000);
        let mut life = LeaseLife::new(0, 1, 7, 3, at(0));
        life.keys.push(life.key(0));
        life.revoke_invoked = Some(at(100));
        life.revoke_acked = Some((at(110), 3));
        life.outlived.push(at(120));
        recorder.lease(life);
        let violations = verdict(&recorder, &events, 3);
        assert!(violations.iter().any(|v| v.check == "lease"), "{violations:?}");
    }

    #[test]
    fn an_early_expiry_is_caught() {
        let (recorder, events) = recorded();
        let at = |ms: u64| Instant::from_nanos(ms * 1_000_000);
        let mut life = LeaseLife::new(0, 1, 7, 3, at(0));
        life.renewals.push((at(1000), at(1010)));
        // Renewed at 1 s with a TTL of 3 s, seen gone at 2 s.
        life.gone.push(Gone { invoke: at(2000), complete: at(2010) });
        recorder.lease(life);
        let violations = verdict(&recorder, &events, 3);
        assert!(violations.iter().any(|v| v.check == "lease"), "{violations:?}");
    }
}
