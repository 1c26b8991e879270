//! Checkers over a run's client history and the cluster's final event log.
//!
//! Linearizability, the revision way: etcd numbers every write transaction, so the final event
//! log of a surviving member (its MVCC history, never compacted in these runs) is the total
//! order of writes. Against it:
//! - every acknowledged put is in the log at its revision with its value (durability);
//! - every put in the log was invoked by a client for that key and is not a refused one (no
//!   phantom writes), no value appears twice (an unknown write took effect at most once), and a
//!   compare-and-swap that wrote did so only where its compare held, whatever its answer said;
//! - no key is deleted more often than delete operations could have deleted it;
//! - every acknowledged delete and read matches the log's state at its revision;
//! - real-time order: an operation that completed before another was invoked has the earlier
//!   position. A write sits at `2 * revision`; a read (or a delete that deleted nothing) at
//!   `2 * revision + 1`, after the write it observed. A write whose answer was lost but that
//!   took effect sits where the log put it, and must not precede anything that completed before
//!   it was invoked. Order comes from the history's invocation/completion sequence, not from
//!   timestamps, so simultaneous events are still ordered. Serializable reads may be stale, so
//!   they are held only to "the state existed".

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
        let Some(&id) = invoked_values.get(value) else {
            violations
                .push(Violation::new("linearizability", format!("phantom write of {value:?}")));
            continue;
        };
        if let Some(problem) =
            check_write(&log, &history.ops[id].kind, &history.ops[id].outcome, writes)
        {
            violations.push(Violation::new("linearizability", format!("op {id}: {problem}")));
        }
    }
    violations.extend(delete_counts(history, &log));
    violations.extend(real_time_order(history, &log));
    violations
}

/// The problem with a write the log holds, whatever its operation's answer said.
fn check_write(
    log: &Log,
    kind: &OpKind,
    outcome: &Outcome,
    writes: &[(String, i64)],
) -> Option<String> {
    let (key, revision) = &writes[0];
    if writes.len() > 1 {
        return Some(format!("its value was written {} times", writes.len()));
    }
    let (op_key, expected) = match kind {
        OpKind::Put { key, .. } => (key, None),
        OpKind::Cas { key, expected, .. } => (key, Some(expected)),
        _ => unreachable!("only puts and compare-and-swaps write values"),
    };
    if op_key != key {
        return Some(format!("it wrote key {key}, not {op_key}"));
    }
    match outcome {
        Outcome::Failed(reason) => {
            return Some(format!("it was refused ({reason}) but took effect"))
        }
        Outcome::Cas { succeeded: false, .. } => {
            return Some("its compare failed, yet it wrote".into())
        }
        _ => {}
    }
    let before = log.state(key, revision - 1);
    match expected {
        Some(expected) if before != expected.as_ref() => Some(format!(
            "it wrote at revision {revision} while {key} held {before:?}, not {expected:?}"
        )),
        _ => None,
    }
}

/// No key is deleted more often than its delete operations could have: each delete event is
/// either one acknowledged at its revision or one whose answer is unknown.
fn delete_counts(history: &History, log: &Log) -> Vec<Violation> {
    let mut possible: BTreeMap<&str, usize> = BTreeMap::new();
    for op in &history.ops {
        if let OpKind::Delete { key } = &op.kind {
            if matches!(
                op.outcome,
                Outcome::Delete { deleted: 1.., .. } | Outcome::Unknown | Outcome::Pending
            ) {
                *possible.entry(key).or_default() += 1;
            }
        }
    }
    let mut violations = Vec::new();
    for (key, history_of_key) in &log.keys {
        let deletes = history_of_key.iter().filter(|(_, value)| value.is_none()).count();
        let allowed = possible.get(key.as_str()).copied().unwrap_or(0);
        if deletes > allowed {
            let detail = format!("{key} was deleted {deletes} times, but only {allowed} delete operations could have");
            violations.push(Violation::new("linearizability", detail));
        }
    }
    violations
}

/// The problem with one operation's answer, if any.
fn check_op(log: &Log, kind: &OpKind, outcome: &Outcome) -> Option<(&'static str, String)> {
    match (kind, outcome) {
        // An acknowledged write is in the log at its revision. (Whether a compare-and-swap's
        // compare held is checked with every write in the log, in `check_write`.)
        (OpKind::Put { key, value }, Outcome::Put { revision })
        | (OpKind::Cas { key, value, .. }, Outcome::Cas { revision, succeeded: true, .. }) => {
            let found = log.values.get(value).and_then(|w| w.first());
            (found != Some(&(key.clone(), *revision))).then(|| {
                ("durability", format!("acknowledged write {key}={value} at revision {revision}; log has {found:?}"))
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
        (OpKind::Range { start, end, .. }, Outcome::Range { revision, kvs }) => {
            // A range whose end sorts before its start (key2 to key10) is empty, as in etcd.
            let keys = (start < end).then(|| log.keys.range::<String, _>(start..end));
            let expected: Vec<(String, String)> = keys
                .into_iter()
                .flatten()
                .filter_map(|(key, _)| Some((key.clone(), log.state(key, *revision)?.clone())))
                .collect();
            (expected != *kvs).then(|| {
                (
                    "linearizability",
                    format!("range [{start}, {end}) at revision {revision} read {kvs:?}, log has {expected:?}"),
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
        (OpKind::Get { serializable: false, .. }, Outcome::Get { revision, .. })
        | (OpKind::Range { serializable: false, .. }, Outcome::Range { revision, .. }) => {
            Some((2 * revision + 1, false))
        }
        _ => None,
    }
}

/// Real-time order: sweeping invocations and completions in history order, each operation's
/// position must not precede the highest position among operations completed before it was
/// invoked. A write whose answer was lost but that took effect joins with its log position and
/// its invocation only.
fn real_time_order(history: &History, log: &Log) -> Vec<Violation> {
    let mut moments: Vec<(u64, bool, usize, i64, bool)> = Vec::new();
    for (id, op) in history.ops.iter().enumerate() {
        if let Some((pos, is_write)) = position(&op.kind, &op.outcome) {
            moments.push((op.invoke_order, true, id, pos, is_write));
            moments.push((
                op.complete_order.expect("answered ops completed"),
                false,
                id,
                pos,
                is_write,
            ));
        } else if let (Some(revision), Outcome::Unknown | Outcome::Pending) =
            (logged_revision(log, &op.kind), &op.outcome)
        {
            moments.push((op.invoke_order, true, id, 2 * revision, true));
        }
    }
    moments.sort_by_key(|&(order, ..)| order);
    let mut highest: Option<(i64, usize)> = None;
    let mut violations = Vec::new();
    for (_, is_invoke, id, pos, is_write) in moments {
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

/// The revision at which the log holds a put's or compare-and-swap's value, if it does.
fn logged_revision(log: &Log, kind: &OpKind) -> Option<i64> {
    match kind {
        OpKind::Put { value, .. } | OpKind::Cas { value, .. } => {
            log.values.get(value)?.first().map(|(_, r)| *r)
        }
        _ => None,
    }
}

/// Raft safety, observed as the run goes: at most one leader per term, and members that have
/// applied the same number of entries agree on the applied log and the key space.
#[derive(Clone, Debug, Default)]
pub struct RaftSafety {
    leaders: BTreeMap<u64, u64>,
    applied: BTreeMap<u64, (u32, Option<u32>)>,
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
    /// Its key-space hash, when it was taken (hashing the whole key space is costly, so the
    /// world samples it).
    pub kv_hash: Option<u32>,
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
        let known = self.applied.entry(view.applied_index).or_insert((view.applied_digest, None));
        let hashes_differ = matches!((known.1, view.kv_hash), (Some(a), Some(b)) if a != b);
        if known.1.is_none() {
            known.1 = view.kv_hash;
        }
        (known.0 != view.applied_digest || hashes_differ).then(|| {
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

    /// An operation invoked at `invoke` ms and completed at `complete` ms; the history order
    /// follows the times (a completion at the same ms as an invocation comes after it).
    fn op(kind: OpKind, invoke: u64, complete: u64, outcome: Outcome) -> Op {
        let at = |ms| Instant::from_nanos(ms * 1_000_000);
        Op {
            client: 0,
            kind,
            invoke: at(invoke),
            complete: Some(at(complete)),
            invoke_order: invoke * 2,
            complete_order: Some(complete * 2 + 1),
            outcome,
        }
    }

    fn delete_event(key: &str, revision: i64) -> Event {
        let kv = KeyValue { key: key.into(), mod_revision: revision, ..KeyValue::default() };
        Event { kind: EventKind::Delete, kv, prev_kv: None }
    }

    /// Review finding A: a delete that took effect twice.
    #[test]
    fn a_delete_that_took_effect_twice_is_caught() {
        let events = [
            put_event("k", "a", 2),
            delete_event("k", 3),
            put_event("k", "b", 4),
            delete_event("k", 5),
        ];
        let ops = vec![
            op(put("a"), 0, 1, Outcome::Put { revision: 2 }),
            op(
                OpKind::Delete { key: "k".into() },
                2,
                3,
                Outcome::Delete { revision: 3, deleted: 1 },
            ),
            op(put("b"), 4, 5, Outcome::Put { revision: 4 }),
            op(get(), 6, 7, Outcome::Get { revision: 5, value: None }),
        ];
        assert_eq!(checks(ops, &events), ["linearizability"]);
    }

    /// Review finding B: writes whose answers do not tell the truth.
    #[test]
    fn writes_are_judged_by_the_log_whatever_their_answer_said() {
        let events = [put_event("k", "a", 2), put_event("k", "c", 3)];
        let base = || vec![op(put("a"), 0, 1, Outcome::Put { revision: 2 })];
        let mut said_failed = base();
        said_failed.push(op(
            cas(Some("a"), "c"),
            2,
            3,
            Outcome::Cas { revision: 2, succeeded: false, value: Some("a".into()) },
        ));
        assert!(checks(said_failed, &events).contains(&"linearizability"));
        let mut unknown_wrong_compare = base();
        unknown_wrong_compare.push(Op {
            complete: None,
            complete_order: None,
            ..op(cas(Some("zz"), "c"), 2, 3, Outcome::Unknown)
        });
        assert_eq!(checks(unknown_wrong_compare, &events), ["linearizability"]);
        let mut other_key = base();
        let elsewhere = OpKind::Put { key: "other".into(), value: "c".into() };
        other_key.push(Op {
            complete: None,
            complete_order: None,
            ..op(elsewhere, 2, 3, Outcome::Unknown)
        });
        assert_eq!(checks(other_key, &events), ["linearizability"]);
    }

    /// Review finding C: an unknown write that took effect before a write it came after.
    #[test]
    fn an_unknown_write_out_of_real_time_order_is_caught() {
        let events = [put_event("k", "b", 2), put_event("k", "a", 3)];
        let ops = vec![
            op(put("a"), 0, 10, Outcome::Put { revision: 3 }),
            Op { complete: None, complete_order: None, ..op(put("b"), 20, 21, Outcome::Unknown) },
        ];
        assert_eq!(checks(ops, &events), ["linearizability"]);
    }

    /// Review finding D: an operation answered at the instant it was invoked is not ordered
    /// before itself.
    #[test]
    fn an_instant_operation_is_not_ordered_before_itself() {
        let events = [put_event("k", "a", 2)];
        let ops = vec![
            op(put("a"), 5, 5, Outcome::Put { revision: 2 }),
            op(get(), 5, 5, Outcome::Get { revision: 2, value: Some("a".into()) }),
        ];
        assert_eq!(checks(ops, &events), Vec::<&str>::new());
    }

    #[test]
    fn a_range_read_must_match_the_log_and_real_time() {
        let events = [put_event("j", "x", 2), put_event("k", "a", 3), put_event("k", "b", 4)];
        let range = || OpKind::Range { start: "a".into(), end: "z".into(), serializable: false };
        let seen = |kvs: &[(&str, &str)]| -> Vec<(String, String)> {
            kvs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
        };
        let writes = || {
            let put_j = OpKind::Put { key: "j".into(), value: "x".into() };
            vec![
                op(put_j, 0, 1, Outcome::Put { revision: 2 }),
                op(put("a"), 2, 3, Outcome::Put { revision: 3 }),
                op(put("b"), 10, 15, Outcome::Put { revision: 4 }),
            ]
        };
        let at_3 = |kvs| Outcome::Range { revision: 3, kvs };
        let mut good = writes();
        good.push(op(range(), 4, 5, at_3(seen(&[("j", "x"), ("k", "a")]))));
        assert_eq!(checks(good, &events), Vec::<&str>::new());
        let mut missing = writes();
        missing.push(op(range(), 4, 5, at_3(seen(&[("k", "a")]))));
        assert_eq!(checks(missing, &events), ["linearizability"]);
        let mut stale = writes();
        stale.push(op(range(), 16, 17, at_3(seen(&[("j", "x"), ("k", "a")]))));
        assert_eq!(checks(stale, &events), ["linearizability"], "began after revision 4 was acked");
        // Found by quota-nospace (12 keys): key2 to key10 is an empty range, not a panic.
        let inverted = || OpKind::Range { start: "k".into(), end: "j".into(), serializable: false };
        let mut empty = writes();
        empty.push(op(inverted(), 4, 5, at_3(Vec::new())));
        assert_eq!(checks(empty, &events), Vec::<&str>::new());
        let mut phantom = writes();
        phantom.push(op(inverted(), 4, 5, at_3(seen(&[("k", "a")]))));
        assert_eq!(checks(phantom, &events), ["linearizability"]);
    }

    fn put(value: &str) -> OpKind {
        OpKind::Put { key: "k".into(), value: value.into() }
    }

    fn get() -> OpKind {
        OpKind::Get { key: "k".into(), serializable: false }
    }

    fn checks(ops: Vec<Op>, events: &[Event]) -> Vec<&'static str> {
        linearizability(&History::of(ops), events).into_iter().map(|v| v.check).collect()
    }

    fn view(
        id: u64,
        term: u64,
        leading: bool,
        applied_index: u64,
        applied_digest: u32,
    ) -> MemberView {
        MemberView { id, term, leading, applied_index, applied_digest, kv_hash: Some(0) }
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
