//! Checkers over a run's client history and the cluster's final event log.
//!
//! Linearizability, the revision way: etcd numbers every write transaction, so the final event
//! log of a surviving member (its MVCC history, never compacted in these runs) is the total
//! order of writes. Against it:
//! - every acknowledged put is in the log at its revision with its value (durability);
//! - every put in the log was invoked by a client and is not a refused one (no phantom writes),
//!   and no value appears twice (an unknown write took effect at most once);
//! - every acknowledged delete and read matches the log's state at its revision;
//! - real-time order: an operation that completed before another was invoked has the earlier
//!   position. A write sits at `2 * revision`; a read (or a delete that deleted nothing) at
//!   `2 * revision + 1`, after the write it observed. Serializable reads may be stale, so they
//!   are held only to "the state existed".

use crate::history::{History, OpKind, Outcome};
use std::collections::BTreeMap;
use stead_core::api::{Event, EventKind};

/// A broken guarantee, with the check that found it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Violation {
    /// The check's name (`linearizability`, `durability`, `raft-safety`, `convergence`, …).
    pub check: &'static str,
    /// What went wrong, readably.
    pub detail: String,
}

impl Violation {
    /// A violation of `check`.
    pub fn new(check: &'static str, detail: impl Into<String>) -> Self {
        Violation { check, detail: detail.into() }
    }
}

/// The final log, indexed for the checks.
struct Log {
    /// Per key: (revision, value or `None` for a delete), in revision order.
    keys: BTreeMap<String, Vec<(i64, Option<String>)>>,
    /// Per put value: (key, revision) of each time it was written.
    values: BTreeMap<String, Vec<(String, i64)>>,
}

impl Log {
    fn new(events: &[Event]) -> Log {
        let mut log = Log { keys: BTreeMap::new(), values: BTreeMap::new() };
        for event in events {
            let key = String::from_utf8_lossy(&event.kv.key).into_owned();
            let revision = event.kv.mod_revision;
            let value = (event.kind == EventKind::Put)
                .then(|| String::from_utf8_lossy(&event.kv.value).into_owned());
            if let Some(value) = &value {
                log.values.entry(value.clone()).or_default().push((key.clone(), revision));
            }
            log.keys.entry(key).or_default().push((revision, value));
        }
        log
    }

    /// The key's value at `revision`.
    fn state(&self, key: &str, revision: i64) -> Option<&String> {
        let history = self.keys.get(key)?;
        let visible = history.partition_point(|(r, _)| *r <= revision);
        history.get(visible.checked_sub(1)?)?.1.as_ref()
    }

    /// Whether the key was deleted at exactly `revision`.
    fn deleted_at(&self, key: &str, revision: i64) -> bool {
        self.keys.get(key).is_some_and(|h| h.iter().any(|(r, v)| *r == revision && v.is_none()))
    }
}

/// Checks a history against the cluster's final event log.
pub fn linearizability(history: &History, events: &[Event]) -> Vec<Violation> {
    let log = Log::new(events);
    let mut violations = Vec::new();
    let mut invoked_values = BTreeMap::new();
    for (id, op) in history.ops.iter().enumerate() {
        if let OpKind::Put { value, .. } | OpKind::Cas { value, .. } = &op.kind {
            invoked_values.insert(value.clone(), id);
        }
        if let Some(problem) = check_op(&log, &op.kind, &op.outcome) {
            violations.push(Violation::new(
                problem.0,
                format!("op {id} (client {}): {}", op.client, problem.1),
            ));
        }
    }
    for (value, writes) in &log.values {
        match invoked_values.get(value) {
            None => violations
                .push(Violation::new("linearizability", format!("phantom write of {value:?}"))),
            Some(&id) if matches!(history.ops[id].outcome, Outcome::Failed(_)) => violations
                .push(Violation::new("linearizability", format!("refused op {id} took effect"))),
            Some(_) if writes.len() > 1 => violations.push(Violation::new(
                "linearizability",
                format!("{value:?} written {} times", writes.len()),
            )),
            Some(_) => {}
        }
    }
    violations.extend(real_time_order(history));
    violations
}

/// The problem with one operation's answer, if any.
fn check_op(log: &Log, kind: &OpKind, outcome: &Outcome) -> Option<(&'static str, String)> {
    match (kind, outcome) {
        (OpKind::Put { key, value }, Outcome::Put { revision }) => {
            let found = log.values.get(value).and_then(|w| w.first());
            (found != Some(&(key.clone(), *revision))).then(|| {
                (
                    "durability",
                    format!(
                        "acknowledged put {key}={value} at revision {revision}; log has {found:?}"
                    ),
                )
            })
        }
        (OpKind::Delete { key }, Outcome::Delete { revision, deleted }) => {
            let consistent = if *deleted > 0 {
                log.deleted_at(key, *revision)
            } else {
                log.state(key, *revision).is_none()
            };
            (!consistent).then(|| {
                (
                    "linearizability",
                    format!(
                        "delete of {key} deleted {deleted} at revision {revision}, log disagrees"
                    ),
                )
            })
        }
        (OpKind::Cas { key, expected, value }, Outcome::Cas { revision, succeeded: true, .. }) => {
            let found = log.values.get(value).and_then(|w| w.first());
            if found != Some(&(key.clone(), *revision)) {
                return Some((
                    "durability",
                    format!(
                        "acknowledged cas {key}={value} at revision {revision}; log has {found:?}"
                    ),
                ));
            }
            let before = log.state(key, revision - 1);
            (before != expected.as_ref()).then(|| {
                ("linearizability", format!("cas on {key} succeeded at {revision} but {key} held {before:?}, not {expected:?}"))
            })
        }
        (OpKind::Cas { key, expected, .. }, Outcome::Cas { revision, succeeded: false, value }) => {
            let state = log.state(key, *revision);
            if state == expected.as_ref() {
                return Some((
                    "linearizability",
                    format!("cas on {key} failed at {revision} although {key} held {state:?}"),
                ));
            }
            (state != value.as_ref()).then(|| {
                (
                    "linearizability",
                    format!(
                        "cas on {key} read {value:?} at revision {revision}, log has {state:?}"
                    ),
                )
            })
        }
        (OpKind::Get { key, .. }, Outcome::Get { revision, value }) => {
            let expected = log.state(key, *revision);
            (expected != value.as_ref()).then(|| {
                (
                    "linearizability",
                    format!("read {key} = {value:?} at revision {revision}, log has {expected:?}"),
                )
            })
        }
        _ => None,
    }
}

/// The order position of an operation with a known revision (see the module documentation).
fn position(kind: &OpKind, outcome: &Outcome) -> Option<(i64, bool)> {
    match (kind, outcome) {
        (OpKind::Put { .. }, Outcome::Put { revision }) => Some((2 * revision, true)),
        (OpKind::Cas { .. }, Outcome::Cas { revision, succeeded: true, .. }) => {
            Some((2 * revision, true))
        }
        (OpKind::Cas { .. }, Outcome::Cas { revision, succeeded: false, .. }) => {
            Some((2 * revision + 1, false))
        }
        (OpKind::Delete { .. }, Outcome::Delete { revision, deleted }) if *deleted > 0 => {
            Some((2 * revision, true))
        }
        (OpKind::Delete { .. }, Outcome::Delete { revision, .. }) => {
            Some((2 * revision + 1, false))
        }
        (OpKind::Get { serializable: false, .. }, Outcome::Get { revision, .. }) => {
            Some((2 * revision + 1, false))
        }
        _ => None,
    }
}

/// Real-time order: sweeping operations by time, each one's position must not precede the
/// highest position among operations completed before it was invoked.
fn real_time_order(history: &History) -> Vec<Violation> {
    let mut moments: Vec<(stead_core::time::Instant, bool, usize)> = Vec::new();
    for (id, op) in history.ops.iter().enumerate() {
        if position(&op.kind, &op.outcome).is_some() {
            moments.push((op.invoke, true, id));
            moments.push((op.complete.expect("answered ops completed"), false, id));
        }
    }
    // At equal times, completions count first: "completed before invoked" includes ties.
    moments.sort_by_key(|&(time, is_invoke, id)| (time, is_invoke, id));
    let mut highest: Option<(i64, usize)> = None;
    let mut violations = Vec::new();
    for (_, is_invoke, id) in moments {
        let op = &history.ops[id];
        let (pos, is_write) = position(&op.kind, &op.outcome).expect("filtered");
        if is_invoke {
            if let Some((before, by)) = highest {
                if pos < before || (pos == before && is_write) {
                    let detail = format!("op {id} (position {pos}) is ordered before op {by} (position {before}), which completed before op {id} began");
                    violations.push(Violation::new("linearizability", detail));
                }
            }
        } else if highest.is_none_or(|(before, _)| pos > before) {
            highest = Some((pos, id));
        }
    }
    violations
}

/// Raft safety, observed as the run goes: at most one leader per term, and members that have
/// applied the same number of entries agree on the applied log and the key space.
#[derive(Clone, Debug, Default)]
pub struct RaftSafety {
    leaders: BTreeMap<u64, u64>,
    applied: BTreeMap<u64, (u32, u32)>,
}

/// What a member looks like at one moment, for [`RaftSafety`].
#[derive(Clone, Copy, Debug)]
pub struct MemberView {
    /// The member.
    pub id: u64,
    /// Its raft term.
    pub term: u64,
    /// Whether it believes it leads.
    pub leading: bool,
    /// Its applied index.
    pub applied_index: u64,
    /// Its applied-log digest.
    pub applied_digest: u32,
    /// Its key-space hash.
    pub kv_hash: u32,
}

impl RaftSafety {
    /// Checks one observation of a member.
    pub fn observe(&mut self, view: MemberView) -> Option<Violation> {
        if view.leading {
            let leader = *self.leaders.entry(view.term).or_insert(view.id);
            if leader != view.id {
                let detail =
                    format!("members {leader} and {} both lead term {}", view.id, view.term);
                return Some(Violation::new("raft-safety", detail));
            }
        }
        let state = (view.applied_digest, view.kv_hash);
        let known = *self.applied.entry(view.applied_index).or_insert(state);
        (known != state).then(|| {
            Violation::new(
                "raft-safety",
                format!("member {} diverged at applied index {}", view.id, view.applied_index),
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::Op;
    use stead_core::api::KeyValue;
    use stead_core::time::Instant;

    fn put_event(key: &str, value: &str, revision: i64) -> Event {
        let kv = KeyValue {
            key: key.into(),
            value: value.into(),
            mod_revision: revision,
            ..KeyValue::default()
        };
        Event { kind: EventKind::Put, kv, prev_kv: None }
    }

    fn op(kind: OpKind, invoke: u64, complete: u64, outcome: Outcome) -> Op {
        let at = |ms| Instant::from_nanos(ms * 1_000_000);
        Op { client: 0, kind, invoke: at(invoke), complete: Some(at(complete)), outcome }
    }

    fn put(value: &str) -> OpKind {
        OpKind::Put { key: "k".into(), value: value.into() }
    }

    fn get() -> OpKind {
        OpKind::Get { key: "k".into(), serializable: false }
    }

    fn checks(ops: Vec<Op>, events: &[Event]) -> Vec<&'static str> {
        linearizability(&History { ops }, events).into_iter().map(|v| v.check).collect()
    }

    fn view(
        id: u64,
        term: u64,
        leading: bool,
        applied_index: u64,
        applied_digest: u32,
    ) -> MemberView {
        MemberView { id, term, leading, applied_index, applied_digest, kv_hash: 0 }
    }

    #[test]
    fn two_leaders_in_a_term_are_caught() {
        let mut safety = RaftSafety::default();
        assert!(safety.observe(view(1, 3, true, 5, 9)).is_none());
        assert!(safety.observe(view(1, 3, true, 6, 10)).is_none(), "the same leader again");
        assert!(safety.observe(view(2, 4, true, 6, 10)).is_none(), "another term, another leader");
        let violation = safety.observe(view(3, 3, true, 1, 1)).expect("a second leader of term 3");
        assert!(violation.detail.contains("both lead term 3"));
    }

    #[test]
    fn diverging_applied_logs_are_caught() {
        let mut safety = RaftSafety::default();
        assert!(safety.observe(view(1, 1, false, 7, 42)).is_none());
        assert!(safety.observe(view(2, 1, false, 7, 42)).is_none());
        assert!(safety
            .observe(view(3, 1, false, 7, 43))
            .expect("a different log at index 7")
            .detail
            .contains("diverged"));
    }

    #[test]
    fn a_good_history_passes() {
        let events = [put_event("k", "a", 2), put_event("k", "b", 3)];
        let ops = vec![
            op(put("a"), 0, 10, Outcome::Put { revision: 2 }),
            op(get(), 11, 12, Outcome::Get { revision: 2, value: Some("a".into()) }),
            op(put("b"), 13, 20, Outcome::Put { revision: 3 }),
            op(get(), 15, 25, Outcome::Get { revision: 3, value: Some("b".into()) }),
        ];
        assert_eq!(checks(ops, &events), Vec::<&str>::new());
    }

    #[test]
    fn a_stale_read_is_caught() {
        let events = [put_event("k", "a", 2), put_event("k", "b", 3)];
        let ops = vec![
            op(put("a"), 0, 5, Outcome::Put { revision: 2 }),
            op(put("b"), 6, 10, Outcome::Put { revision: 3 }),
            // Began after the put of b completed, yet saw revision 2.
            op(get(), 11, 12, Outcome::Get { revision: 2, value: Some("a".into()) }),
        ];
        assert_eq!(checks(ops, &events), ["linearizability"]);
    }

    #[test]
    fn a_lost_acknowledged_write_is_caught() {
        let ops = vec![op(put("a"), 0, 10, Outcome::Put { revision: 2 })];
        assert_eq!(checks(ops, &[]), ["durability"]);
    }

    #[test]
    fn a_read_of_a_state_that_never_existed_is_caught() {
        let events = [put_event("k", "a", 2)];
        let ops = vec![
            op(put("a"), 0, 10, Outcome::Put { revision: 2 }),
            op(get(), 11, 12, Outcome::Get { revision: 2, value: Some("zzz".into()) }),
        ];
        assert_eq!(checks(ops, &events), ["linearizability"]);
    }

    #[test]
    fn phantom_duplicate_and_refused_writes_are_caught() {
        assert_eq!(checks(vec![], &[put_event("k", "ghost", 2)]), ["linearizability"]);
        let twice = [put_event("k", "a", 2), put_event("k", "a", 3)];
        let unknown = vec![Op {
            complete: None,
            outcome: Outcome::Unknown,
            ..op(put("a"), 0, 0, Outcome::Unknown)
        }];
        assert_eq!(checks(unknown, &twice), ["linearizability"]);
        let refused = vec![op(put("a"), 0, 1, Outcome::Failed("refused".into()))];
        assert_eq!(checks(refused, &[put_event("k", "a", 2)]), ["linearizability"]);
    }

    fn cas(expected: Option<&str>, value: &str) -> OpKind {
        OpKind::Cas { key: "k".into(), expected: expected.map(str::to_string), value: value.into() }
    }

    #[test]
    fn cas_outcomes_must_match_the_state_before() {
        let events = [put_event("k", "a", 2), put_event("k", "b", 3)];
        let good = vec![
            op(put("a"), 0, 5, Outcome::Put { revision: 2 }),
            op(
                cas(Some("a"), "b"),
                6,
                9,
                Outcome::Cas { revision: 3, succeeded: true, value: None },
            ),
            op(
                cas(Some("a"), "c"),
                10,
                12,
                Outcome::Cas { revision: 3, succeeded: false, value: Some("b".into()) },
            ),
        ];
        assert_eq!(checks(good, &events), Vec::<&str>::new());
        // A cas that succeeded although the key held something else.
        let wrong = vec![
            op(put("a"), 0, 5, Outcome::Put { revision: 2 }),
            op(
                cas(Some("x"), "b"),
                6,
                9,
                Outcome::Cas { revision: 3, succeeded: true, value: None },
            ),
        ];
        assert_eq!(checks(wrong, &events), ["linearizability"]);
        // A cas that failed although its compare held.
        let failed = vec![
            op(put("a"), 0, 5, Outcome::Put { revision: 2 }),
            op(put("b"), 6, 8, Outcome::Put { revision: 3 }),
            op(
                cas(Some("b"), "c"),
                10,
                12,
                Outcome::Cas { revision: 3, succeeded: false, value: Some("b".into()) },
            ),
        ];
        assert_eq!(checks(failed, &events), ["linearizability"]);
    }

    #[test]
    fn writes_out_of_real_time_order_are_caught() {
        let events = [put_event("k", "b", 2), put_event("k", "a", 3)];
        let ops = vec![
            op(put("a"), 0, 10, Outcome::Put { revision: 3 }),
            op(put("b"), 20, 30, Outcome::Put { revision: 2 }),
        ];
        assert_eq!(checks(ops, &events), ["linearizability"]);
    }
}
