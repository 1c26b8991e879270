//! The lease checker: what lease clients saw, against the clock-skew bound of the scenario and
//! the cluster's final state.
//!
//! - No early expiry: a lease seen gone (a read missing its key, a keep-alive answering TTL 0,
//!   a put refused for an unknown lease) while it was still guaranteed alive is a violation. It
//!   is guaranteed alive until its TTL after the last renewal (or grant) the client invoked and
//!   saw acknowledged before it looked, less the skew bound: the leader measures the TTL on its
//!   own clock, which may run fast by the scenario's drift and jump forward. A revoke the client
//!   sent itself excuses it.
//! - No key outlives its lease: a read after an acknowledged revoke finds nothing; at the end,
//!   a lease abandoned long enough ago (TTL, an election timeout for the promotion, and slack
//!   for the leader's expiry checks, counted from when the faults stopped if later) is gone,
//!   keys and all.
//! - One revision: a lease's keys are deleted together.

use crate::check::Violation;
use std::collections::BTreeMap;
use stead_core::api::{Event, EventKind, LeaseId};
use stead_core::time::{Duration, Instant};

/// A moment a client saw its lease gone: somewhere between `invoke` and `complete`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Gone {
    /// When the request was sent.
    pub invoke: Instant,
    /// When its answer came.
    pub complete: Instant,
}

/// One lease, as its client saw it.
#[derive(Clone, Debug)]
pub struct LeaseLife {
    /// The client.
    pub client: usize,
    /// This lease's number among all of the run's leases.
    pub number: usize,
    /// The lease id.
    pub id: LeaseId,
    /// The granted TTL, in seconds.
    pub ttl: i64,
    /// When the grant was sent.
    pub granted: Instant,
    /// Keys attached with an acknowledged put.
    pub keys: Vec<String>,
    /// Keys whose put may have taken effect.
    pub maybe_keys: Vec<String>,
    /// Acknowledged renewals: (sent, answered).
    pub renewals: Vec<(Instant, Instant)>,
    /// When the client saw the lease gone.
    pub gone: Vec<Gone>,
    /// When the client first sent a revoke.
    pub revoke_invoked: Option<Instant>,
    /// When a revoke was acknowledged, and its revision.
    pub revoke_acked: Option<(Instant, i64)>,
    /// Reads (sent at these times) after the acknowledged revoke that still found a key.
    pub outlived: Vec<Instant>,
    /// When the client stopped renewing and walked away.
    pub abandoned: Option<Instant>,
}

impl LeaseLife {
    /// A lease just granted.
    pub fn new(client: usize, number: usize, id: LeaseId, ttl: i64, granted: Instant) -> Self {
        LeaseLife {
            client,
            number,
            id,
            ttl,
            granted,
            keys: Vec::new(),
            maybe_keys: Vec::new(),
            renewals: Vec::new(),
            gone: Vec::new(),
            revoke_invoked: None,
            revoke_acked: None,
            outlived: Vec::new(),
            abandoned: None,
        }
    }

    /// The name of its `n`th key.
    pub fn key(&self, n: usize) -> String {
        format!("lease/{}/{}/{n}", self.client, self.number)
    }

    /// When the client last renewed (or granted) it, as of `at`: the latest send whose answer
    /// came before `at`.
    fn base(&self, at: Instant) -> Instant {
        let renewed = self.renewals.iter().filter(|(_, answered)| *answered <= at);
        renewed.map(|(sent, _)| *sent).fold(self.granted, Instant::max)
    }
}

/// How far leaders' clocks can run ahead of simulated time.
#[derive(Clone, Debug, Default)]
pub struct Skew {
    /// The largest drift, in parts per million.
    pub max_drift_ppm: u64,
    /// Every forward clock jump: (when, how far).
    pub jumps: Vec<(Instant, Duration)>,
}

impl Skew {
    /// How much earlier than `ttl` after `from` a lease may expire, judged by `to`.
    fn bound(&self, from: Instant, to: Instant, ttl: Duration) -> Duration {
        let drift = Duration::from_nanos(ttl.as_nanos() / 1_000_000 * self.max_drift_ppm);
        let jumped = self.jumps.iter().filter(|(at, _)| *at >= from && *at <= to);
        jumped.fold(drift + Duration::from_millis(1), |sum, (_, jump)| sum + *jump)
    }
}

/// What the end of the run looked like.
pub struct Final<'a> {
    /// The last simulated instant.
    pub end: Instant,
    /// When the faults stopped.
    pub faults_stopped: Instant,
    /// The election timeout (a new leader extends every lease by it).
    pub election_timeout: Duration,
    /// The final event log (the whole history).
    pub events: &'a [Event],
    /// The leases the final leader holds.
    pub leases: Vec<LeaseId>,
}

/// Checks every lease.
pub fn check(lives: &[LeaseLife], skew: &Skew, end: &Final<'_>) -> Vec<Violation> {
    let mut deleted: BTreeMap<&[u8], i64> = BTreeMap::new();
    let mut live: BTreeMap<&[u8], bool> = BTreeMap::new();
    for event in end.events {
        live.insert(&event.kv.key, event.kind == EventKind::Put);
        if event.kind == EventKind::Delete {
            deleted.insert(&event.kv.key, event.kv.mod_revision);
        }
    }
    let mut violations = Vec::new();
    let mut fail = |life: &LeaseLife, text: String| {
        let name = format!("lease {:x} (client {}, #{})", life.id, life.client, life.number);
        violations.push(Violation::new("lease", format!("{name}: {text}")));
    };
    for life in lives {
        let ttl = Duration::from_secs(life.ttl as u64);
        for gone in &life.gone {
            if life.revoke_invoked.is_some_and(|revoke| revoke <= gone.complete) {
                continue;
            }
            let base = life.base(gone.invoke);
            let bound = skew.bound(base, gone.complete, ttl);
            let guaranteed = base + ttl;
            if gone.complete + bound < guaranteed {
                fail(
                    life,
                    format!(
                        "seen gone by {} ms, but renewed at {} ms with TTL {} s (skew bound {} ms)",
                        gone.complete.as_nanos() / 1_000_000,
                        base.as_nanos() / 1_000_000,
                        life.ttl,
                        bound.as_millis()
                    ),
                );
            }
        }
        if let Some(read) = life.outlived.first() {
            fail(
                life,
                format!(
                    "a key was still there at {} ms, after the revoke",
                    read.as_nanos() / 1_000_000
                ),
            );
        }
        let revisions: Vec<Option<i64>> =
            life.keys.iter().map(|k| deleted.get(k.as_bytes()).copied()).collect();
        if revisions.iter().any(Option::is_some) && revisions.windows(2).any(|w| w[0] != w[1]) {
            fail(life, format!("its keys were deleted at different revisions: {revisions:?}"));
        }
        let last = life.base(end.end).max(end.faults_stopped);
        let settled = life.abandoned.is_some() || life.revoke_acked.is_some();
        let slack = ttl + end.election_timeout + Duration::from_secs(5);
        if settled && last + slack < end.end {
            let keys = life.keys.iter().chain(&life.maybe_keys);
            if let Some(key) = keys.clone().find(|k| live.get(k.as_bytes()) == Some(&true)) {
                fail(life, format!("key {key} outlived the lease"));
            }
            if end.leases.contains(&life.id) {
                fail(life, "still granted at the end".into());
            }
        }
    }
    violations
}

#[cfg(test)]
mod tests {
    use super::*;
    use stead_core::api::KeyValue;

    fn ms(n: u64) -> Instant {
        Instant::from_nanos(n * 1_000_000)
    }

    fn life() -> LeaseLife {
        let mut life = LeaseLife::new(0, 0, 7, 3, ms(1000));
        life.keys = vec![life.key(0), life.key(1)];
        life
    }

    fn end(events: &[Event]) -> Final<'_> {
        let timeout = Duration::from_secs(1);
        Final {
            end: ms(60_000),
            faults_stopped: ms(20_000),
            election_timeout: timeout,
            events,
            leases: vec![],
        }
    }

    fn delete(key: String, revision: i64) -> Event {
        let kv = KeyValue { key: key.into_bytes(), mod_revision: revision, ..KeyValue::default() };
        Event { kind: EventKind::Delete, kv, prev_kv: None }
    }

    #[test]
    fn an_early_expiry_fails_within_the_skew_bound_only() {
        let mut early = life();
        early.renewals.push((ms(2000), ms(2010)));
        early.gone.push(Gone { invoke: ms(4500), complete: ms(4600) });
        let verdict = check(&[early.clone()], &Skew::default(), &end(&[]));
        assert!(verdict[0].detail.contains("seen gone by 4600 ms, but renewed at 2000 ms"));
        let skew = Skew { max_drift_ppm: 0, jumps: vec![(ms(3000), Duration::from_millis(500))] };
        assert!(check(&[early.clone()], &skew, &end(&[])).is_empty(), "a clock jump excuses it");
        early.revoke_invoked = Some(ms(4000));
        assert!(check(&[early], &Skew::default(), &end(&[])).is_empty(), "its own revoke");
        let mut late = life();
        late.gone.push(Gone { invoke: ms(3900), complete: ms(4001) });
        assert!(check(&[late], &Skew::default(), &end(&[])).is_empty(), "after the TTL");
    }

    #[test]
    fn a_key_that_outlives_its_lease_fails() {
        let mut revoked = life();
        revoked.revoke_acked = Some((ms(5000), 9));
        revoked.outlived.push(ms(5100));
        assert!(check(&[revoked], &Skew::default(), &end(&[]))[0]
            .detail
            .contains("after the revoke"));
        let mut abandoned = life();
        abandoned.abandoned = Some(ms(5000));
        let put = Event {
            kind: EventKind::Put,
            kv: KeyValue { key: abandoned.key(1).into_bytes(), ..KeyValue::default() },
            prev_kv: None,
        };
        let events = [put];
        let mut final_state = end(&events);
        final_state.leases = vec![7];
        let verdict = check(&[abandoned], &Skew::default(), &final_state);
        assert_eq!(verdict.len(), 2, "{verdict:?}");
    }

    #[test]
    fn keys_deleted_apart_fail() {
        let life = life();
        let apart = [delete(life.key(0), 5), delete(life.key(1), 6)];
        assert!(check(std::slice::from_ref(&life), &Skew::default(), &end(&apart))[0]
            .detail
            .contains("different revisions"));
        let together = [delete(life.key(0), 5), delete(life.key(1), 5)];
        assert!(check(&[life], &Skew::default(), &end(&together)).is_empty());
    }
}
