//! What clients did and saw: every operation with its invocation and completion times (in
//! simulated time) and its outcome. An operation a client gave up on has an unknown outcome: a
//! write may or may not have taken effect.

use stead_core::time::Instant;

/// What an operation asked for. Every put writes a value no other put writes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OpKind {
    /// Put `key = value`.
    Put {
        /// The key.
        key: String,
        /// A value unique to this operation.
        value: String,
    },
    /// Delete `key`.
    Delete {
        /// The key.
        key: String,
    },
    /// Compare-and-swap in one txn: if `key` holds `expected` (`None`: the key is absent), put
    /// `value` (unique, like a put's); otherwise read `key`.
    Cas {
        /// The key.
        key: String,
        /// The value the compare expects.
        expected: Option<String>,
        /// A value unique to this operation.
        value: String,
    },
    /// Read every key in `[start, end)`.
    Range {
        /// The first key.
        start: String,
        /// The end of the range (exclusive).
        end: String,
        /// Served locally, without a ReadIndex round.
        serializable: bool,
    },
    /// Read `key`.
    Get {
        /// The key.
        key: String,
        /// Served locally, without a ReadIndex round.
        serializable: bool,
    },
}

/// How an operation ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Not finished yet.
    Pending,
    /// The put took effect at `revision`.
    Put {
        /// The put's revision.
        revision: i64,
    },
    /// The delete was answered at `revision`, deleting `deleted` keys.
    Delete {
        /// The answer's header revision.
        revision: i64,
        /// How many keys it deleted.
        deleted: i64,
    },
    /// The txn answered at `revision`: it put its value (`succeeded`), or read `value`.
    Cas {
        /// The answer's header revision.
        revision: i64,
        /// Whether the compare held.
        succeeded: bool,
        /// What the failure branch read.
        value: Option<String>,
    },
    /// The read saw `value` at header revision `revision`.
    Get {
        /// The answer's header revision.
        revision: i64,
        /// The value, if the key existed.
        value: Option<String>,
    },
    /// The range read saw `kvs` (key, value), in key order, at header revision `revision`.
    Range {
        /// The answer's header revision.
        revision: i64,
        /// What it saw.
        kvs: Vec<(String, String)>,
    },
    /// The operation definitely did not take effect (it was refused).
    Failed(String),
    /// The client gave up or lost its member: a write may have taken effect.
    Unknown,
}

impl Outcome {
    /// The header revision of an answer, if there was one.
    pub fn revision(&self) -> Option<i64> {
        match self {
            Outcome::Put { revision }
            | Outcome::Delete { revision, .. }
            | Outcome::Cas { revision, .. }
            | Outcome::Get { revision, .. }
            | Outcome::Range { revision, .. } => Some(*revision),
            _ => None,
        }
    }
}

/// One client operation.
#[derive(Clone, Debug)]
pub struct Op {
    /// Which client ran it.
    pub client: usize,
    /// What it asked for.
    pub kind: OpKind,
    /// When the client sent it.
    pub invoke: Instant,
    /// When the client got the answer (`None`: never).
    pub complete: Option<Instant>,
    /// The order of the invocation among all invocations and completions of the run (strictly
    /// increasing, so simultaneous events still have an order).
    pub invoke_order: u64,
    /// The order of the completion, like `invoke_order`.
    pub complete_order: Option<u64>,
    /// The answer.
    pub outcome: Outcome,
}

/// Every operation of a run, in invocation order.
#[derive(Clone, Debug, Default)]
pub struct History {
    /// The operations; an operation's index is its id.
    pub ops: Vec<Op>,
    /// The last invocation or completion order handed out by [`History::invoke`] and
    /// [`History::complete`].
    order: u64,
}

impl History {
    /// A history of `ops` as they are.
    pub fn of(ops: Vec<Op>) -> History {
        History { ops, order: 0 }
    }

    /// Records that `client` sends `kind` at `now`; the operation's id.
    pub fn invoke(&mut self, client: usize, kind: OpKind, now: Instant) -> usize {
        self.order += 1;
        self.ops.push(Op {
            client,
            kind,
            invoke: now,
            complete: None,
            invoke_order: self.order,
            complete_order: None,
            outcome: Outcome::Pending,
        });
        self.ops.len() - 1
    }

    /// Records that operation `id` ended with `outcome` at `now` (for an unknown outcome: when
    /// the client gave up).
    pub fn complete(&mut self, id: usize, outcome: Outcome, now: Instant) {
        self.order += 1;
        let op = &mut self.ops[id];
        op.complete = Some(now);
        op.complete_order = Some(self.order);
        op.outcome = outcome;
    }

    /// How many operations ended each way: (acknowledged, failed, unknown).
    pub fn tally(&self) -> (usize, usize, usize) {
        let mut tally = (0, 0, 0);
        for op in &self.ops {
            match op.outcome {
                Outcome::Failed(_) => tally.1 += 1,
                Outcome::Unknown | Outcome::Pending => tally.2 += 1,
                _ => tally.0 += 1,
            }
        }
        tally
    }
}
