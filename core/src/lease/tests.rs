//! Lessor rules, each against a logical clock the test moves by hand.

use super::*;
use crate::api::{Error, KeyValue};

fn at(ms: u64) -> Instant {
    Instant::from_nanos(ms * 1_000_000)
}

fn put(key: &str, lease: LeaseId, prev_lease: Option<LeaseId>) -> Event {
    let kv = |lease| KeyValue { key: key.into(), lease, ..KeyValue::default() };
    Event { kind: EventKind::Put, kv: kv(lease), prev_kv: prev_lease.map(kv) }
}

fn primary() -> Lessor {
    let mut lessor = Lessor::new(2, None);
    lessor.promote(at(0), Duration::ZERO);
    lessor
}

#[test]
fn min_ttl_follows_the_election_timeout() {
    assert_eq!(min_ttl(10, Duration::from_millis(100)), 2, "1.5 s rounds up to 2 s");
    assert_eq!(min_ttl(20, Duration::from_millis(100)), 3);
    assert_eq!(min_ttl(2, Duration::from_millis(10)), 1);
}

#[test]
fn grant_checks_id_ttl_and_duplicates() {
    let mut lessor = primary();
    assert_eq!(lessor.grant(1, 1, at(0)), Ok(2), "raised to the minimum TTL");
    assert_eq!(lessor.grant(2, 60, at(0)), Ok(60));
    assert_eq!(lessor.grant(1, 60, at(0)), Err(Error::Lease(LeaseError::Exists)));
    assert_eq!(lessor.grant(3, MAX_LEASE_TTL + 1, at(0)), Err(LeaseError::TtlTooLarge.into()));
    assert_eq!(lessor.grant(NO_LEASE, 5, at(0)), Err(KvError::LeaseNotFound.into()));
    assert_eq!(lessor.ids(), vec![1, 2]);
}

#[test]
fn a_primary_expires_a_lease_after_its_ttl_and_retries() {
    let mut lessor = primary();
    lessor.grant(7, 5, at(1000)).unwrap();
    lessor.advance(at(1000));
    assert!(lessor.expired(at(5999), 10).is_empty(), "not before the TTL");
    assert_eq!(lessor.expired(at(6000), 10), vec![7]);
    assert!(lessor.expired(at(7000), 10).is_empty(), "looked at again only after the retry");
    assert_eq!(lessor.expired(at(9000), 10), vec![7], "the revoke was lost: propose it again");
    assert_eq!(lessor.renew(7, at(9000)), Err(RenewError::Expired));
    lessor.revoke(7).unwrap();
    assert!(lessor.expired(at(20_000), 10).is_empty());
    assert_eq!(lessor.renew(7, at(20_000)), Err(RenewError::NotFound));
}

#[test]
fn expiry_is_rate_limited_and_in_expiry_order() {
    let mut lessor = primary();
    for id in 1..=5 {
        lessor.grant(id, 10 - id, at(0)).unwrap();
    }
    lessor.advance(at(0));
    assert_eq!(lessor.expired(at(60_000), 2), vec![5, 4]);
    assert_eq!(lessor.expired(at(60_000), 10), vec![3, 2, 1]);
}

#[test]
fn a_follower_never_expires_and_cannot_renew() {
    let mut lessor = Lessor::new(2, None);
    lessor.grant(1, 5, at(0)).unwrap();
    assert!(lessor.expired(at(1_000_000), 10).is_empty());
    assert_eq!(lessor.renew(1, at(0)), Err(RenewError::NotPrimary));
    assert_eq!(lessor.remaining_secs(1, at(0)), Some(None));
}

#[test]
fn renewal_restarts_the_ttl() {
    let mut lessor = primary();
    lessor.grant(1, 5, at(0)).unwrap();
    lessor.advance(at(0));
    assert_eq!(lessor.renew(1, at(4000)), Ok(5));
    lessor.advance(at(4000));
    assert!(lessor.expired(at(8999), 10).is_empty());
    assert_eq!(lessor.remaining_secs(1, at(4500)), Some(Some(4)), "whole seconds, truncated");
    assert_eq!(lessor.expired(at(9000), 10), vec![1]);
    assert_eq!(lessor.remaining_secs(1, at(10_500)), Some(Some(-1)));
}

#[test]
fn promotion_extends_and_demotion_stops_expiry() {
    let mut lessor = primary();
    lessor.grant(1, 5, at(0)).unwrap();
    lessor.advance(at(0));
    lessor.demote();
    assert!(lessor.expired(at(60_000), 10).is_empty(), "a demoted lessor expires nothing");
    assert_eq!(lessor.get(1).unwrap().expiry, None);
    lessor.promote(at(60_000), Duration::from_secs(1));
    lessor.advance(at(60_000));
    assert!(lessor.expired(at(65_999), 10).is_empty(), "full TTL plus the election timeout");
    assert_eq!(lessor.expired(at(66_000), 10), vec![1]);
}

#[test]
fn checkpoints_survive_a_leader_change() {
    let interval = Duration::from_secs(10);
    let mut leader = Lessor::new(2, Some(interval));
    leader.promote(at(0), Duration::ZERO);
    leader.grant(1, 100, at(0)).unwrap();
    leader.grant(2, 5, at(0)).unwrap();
    leader.advance(at(0));
    assert!(leader.due_checkpoints(at(9_999), 10).is_empty());
    let due = leader.due_checkpoints(at(10_000), 10);
    assert_eq!(due, vec![LeaseCheckpoint { id: 1, remaining_ttl: 90 }], "short leases skip");
    // Every member applies the checkpoint from the log; a follower then becomes leader.
    let mut follower = Lessor::new(2, Some(interval));
    follower.grant(1, 100, at(0)).unwrap();
    follower.checkpoint(&due, at(10_000));
    follower.promote(at(50_000), Duration::from_secs(1));
    follower.advance(at(50_000));
    assert!(follower.expired(at(140_999), 10).is_empty());
    assert_eq!(follower.expired(at(141_000), 10), vec![1], "90 s left, not a fresh 100 s");
    assert!(follower.needs_checkpoint_clear(1), "a renewal must clear the remainder first");
    follower.checkpoint(&[LeaseCheckpoint { id: 1, remaining_ttl: 0 }], at(141_000));
    assert!(!follower.needs_checkpoint_clear(1));
    // Without checkpoints a new leader starts from the full TTL.
    let mut plain = Lessor::new(2, None);
    plain.grant(1, 100, at(0)).unwrap();
    plain.promote(at(50_000), Duration::from_secs(1));
    plain.advance(at(50_000));
    assert_eq!(plain.expired(at(151_000), 10), vec![1]);
    assert!(!plain.needs_checkpoint_clear(1));
}

#[test]
fn keys_follow_puts_and_revoke_returns_them_sorted() {
    let mut lessor = primary();
    lessor.grant(1, 10, at(0)).unwrap();
    lessor.grant(2, 10, at(0)).unwrap();
    lessor.observe(&[put("b", 1, None), put("a", 1, None), put("c", 2, None)]);
    lessor.observe(&[put("c", 1, Some(2)), put("b", NO_LEASE, Some(1))]);
    assert!(lessor.get(2).unwrap().keys.is_empty(), "c moved to lease 1");
    let deleted = Event {
        kind: EventKind::Delete,
        kv: KeyValue { key: b"z".to_vec(), ..KeyValue::default() },
        prev_kv: None,
    };
    lessor.observe(&[deleted]);
    assert_eq!(lessor.revoke(1), Ok(vec![b"a".to_vec(), b"c".to_vec()]));
    assert_eq!(lessor.revoke(1), Err(KvError::LeaseNotFound));
}

#[test]
fn records_round_trip_and_refuse_orphan_keys() {
    let mut lessor = primary();
    lessor.grant(1, 10, at(0)).unwrap();
    lessor.checkpoint(&[LeaseCheckpoint { id: 1, remaining_ttl: 4 }], at(0));
    lessor.observe(&[put("k", 1, None)]);
    let restored =
        Lessor::from_records(2, None, lessor.to_records(), [(b"k".to_vec(), 1)]).unwrap();
    assert_eq!(restored.get(1).unwrap().remaining_ttl, 4);
    assert_eq!(restored.get(1).unwrap().keys.len(), 1);
    assert!(!restored.is_primary());
    assert!(Lessor::from_records(2, None, lessor.to_records(), [(b"k".to_vec(), 9)]).is_err());
}

/// Found by the simulator: a member that was paused handled a grant before its next tick, with
/// the time of its last tick, and started the lease's TTL in the past. Refreshes now wait for
/// the next tick's time.
#[test]
fn a_renewal_handled_with_a_stale_clock_counts_from_the_next_tick() {
    let mut lessor = primary();
    // The last tick was at 1 s; the grant and a renewal really happen at 2.5 s.
    lessor.grant(1, 3, at(1000)).unwrap();
    assert_eq!(lessor.remaining_secs(1, at(1000)), Some(Some(2)), "truncated, as etcd reports");
    lessor.advance(at(2600));
    assert!(lessor.expired(at(5599), 10).is_empty(), "3 s from the next tick, not the last");
    assert_eq!(lessor.renew(1, at(5599)), Ok(3));
    assert!(lessor.expired(at(8000), 10).is_empty(), "the renewal took effect at 8 s");
    assert_eq!(lessor.expired(at(11_000), 10), vec![1]);
}

/// Review finding: a checkpoint proposed before a renewal but applied after it must neither cut
/// the renewal short here nor linger for the next leader.
#[test]
fn a_checkpoint_in_flight_during_a_renewal_cannot_shorten_it() {
    let mut leader = Lessor::new(2, Some(Duration::from_secs(300)));
    leader.promote(at(0), Duration::ZERO);
    leader.grant(1, 600, at(0)).unwrap();
    leader.advance(at(0));
    let due = leader.due_checkpoints(at(300_000), 10);
    assert_eq!(due, vec![LeaseCheckpoint { id: 1, remaining_ttl: 300 }]);
    assert!(leader.needs_checkpoint_clear(1), "the checkpoint is on its way: renew via the log");
    // Were the renewal done locally anyway, the stale checkpoint applied next must not cut it.
    assert_eq!(leader.renew(1, at(300_000)), Ok(600));
    leader.checkpoint(&due, at(300_000));
    leader.advance(at(300_100));
    assert!(leader.expired(at(900_000), 10).is_empty(), "a renewal restarts the full TTL");
    assert!(leader.needs_checkpoint_clear(1), "the stale remainder must be cleared via the log");
}

/// Review finding: with checkpoints off here, a remainder recorded by another leader (and kept
/// in snapshots) must still be cleared by a renewal.
#[test]
fn a_recorded_remainder_is_cleared_whatever_the_local_setting() {
    let mut lessor = primary();
    lessor.grant(1, 60, at(0)).unwrap();
    lessor.checkpoint(&[LeaseCheckpoint { id: 1, remaining_ttl: 5 }], at(0));
    assert!(lessor.needs_checkpoint_clear(1));
}

/// Review finding: every applied checkpoint scheduled another one without dropping the old, so
/// frequent renewals multiplied the checkpoints.
#[test]
fn checkpoints_are_scheduled_once_per_lease() {
    let mut leader = Lessor::new(2, Some(Duration::from_secs(300)));
    leader.promote(at(0), Duration::ZERO);
    leader.grant(1, 600, at(0)).unwrap();
    leader.advance(at(0));
    for n in 1..=50u64 {
        let clear = LeaseCheckpoint { id: 1, remaining_ttl: 0 };
        leader.checkpoint(&[clear], at(n * 1000));
        assert_eq!(leader.renew(1, at(n * 1000)), Ok(600));
        leader.advance(at(n * 1000));
    }
    let due = leader.due_checkpoints(at(350_000), 1000);
    assert_eq!(due.len(), 1, "one checkpoint, not one per renewal: {due:?}");
}
