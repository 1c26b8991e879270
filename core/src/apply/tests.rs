//! Unit tests of the apply pipeline.
use super::*;
use crate::api::{
    LeaseCheckpointRequest, LeaseExpireRequest, LeaseGrantRequest, LeaseRevokeRequest, PutRequest,
};

fn put_entry(sequence: u64, key: &str) -> Vec<u8> {
    let header = RequestHeader { proposer: 1, boot: 7, sequence };
    let put = PutRequest { key: key.into(), value: b"v".to_vec(), ..PutRequest::default() };
    InternalRequest { header, request: Request::Put(put), auth: None }.encode()
}

#[test]
fn entries_apply_once_in_order() {
    let mut machine = StateMachine::new(Vec::new(), MachineSettings::default());
    let (header, result) = machine.apply(3, 1, &put_entry(1, "a"), Instant::ZERO).unwrap();
    assert_eq!((header.sequence, machine.applied()), (1, 3));
    assert!(matches!(result, Ok(Response::Put(_))));
    assert!(
        machine.apply(3, 1, &put_entry(1, "a"), Instant::ZERO).is_none(),
        "replayed entries are skipped"
    );
    assert!(machine.apply(2, 1, &put_entry(2, "b"), Instant::ZERO).is_none());
    assert_eq!(machine.kv().current_revision(), 2, "one write applied");
    machine.skip(4);
    assert!(machine.apply(5, 1, b"", Instant::ZERO).is_none());
    assert_eq!(machine.applied(), 5);
}

#[test]
fn a_snapshot_restores_the_same_state() {
    let mut machine = StateMachine::new(Vec::new(), MachineSettings::default());
    for (index, key) in ["a", "b", "a"].iter().enumerate() {
        machine.apply(index as u64 + 1, 1, &put_entry(index as u64, key), Instant::ZERO);
    }
    let restored = StateMachine::restore(&machine.snapshot(), MachineSettings::default()).unwrap();
    assert_eq!((restored.applied(), restored.kv().hash()), (3, machine.kv().hash()));
    assert!(StateMachine::restore(b"garbage", MachineSettings::default()).is_err());
    let mut truncated = machine.snapshot();
    truncated.truncate(truncated.len() / 2);
    assert!(StateMachine::restore(&truncated, MachineSettings::default()).is_err());
}

/// Found by the simulator: a duplicated forwarded proposal commits twice; it must apply once.
#[test]
fn a_request_committed_twice_takes_effect_once() {
    let mut machine = StateMachine::new(Vec::new(), MachineSettings::default());
    assert!(machine.apply(1, 1, &put_entry(1, "a"), Instant::ZERO).is_some());
    assert!(
        machine.apply(2, 1, &put_entry(1, "a"), Instant::ZERO).is_none(),
        "the repeat is skipped"
    );
    assert_eq!((machine.applied(), machine.kv().current_revision()), (2, 2));
    let restored = StateMachine::restore(&machine.snapshot(), MachineSettings::default()).unwrap();
    let mut restored = restored;
    assert!(
        restored.apply(3, 1, &put_entry(1, "a"), Instant::ZERO).is_none(),
        "snapshots remember applied requests"
    );
}

#[test]
fn an_undecodable_entry_is_skipped_but_counted() {
    let mut machine = StateMachine::new(Vec::new(), MachineSettings::default());
    assert!(machine.apply(1, 1, b"\xff\xff\xff", Instant::ZERO).is_none());
    assert_eq!((machine.applied(), machine.kv().current_revision()), (1, 1));
}

fn entry(sequence: u64, request: Request) -> Vec<u8> {
    InternalRequest {
        header: RequestHeader { proposer: 1, boot: 1, sequence },
        request,
        auth: None,
    }
    .encode()
}

#[test]
fn a_put_on_an_unknown_lease_fails() {
    let mut machine = StateMachine::new(Vec::new(), MachineSettings::default());
    let put = PutRequest { key: b"k".to_vec(), lease: 5, ..PutRequest::default() };
    let (_, result) = machine.apply(1, 1, &entry(1, Request::Put(put)), Instant::ZERO).unwrap();
    assert_eq!(result, Err(Error::Kv(KvError::LeaseNotFound)));
}

#[test]
fn revoke_deletes_the_attached_keys_in_one_revision() {
    let mut machine = StateMachine::new(Vec::new(), MachineSettings::default());
    let now = Instant::ZERO;
    let grant = Request::LeaseGrant(LeaseGrantRequest { ttl: 1, id: 9 });
    let (_, granted) = machine.apply(1, 1, &entry(1, grant), now).unwrap();
    let Ok(Response::LeaseGrant(granted)) = granted else { panic!("{granted:?}") };
    assert_eq!((granted.id, granted.ttl), (9, 2), "raised to the minimum TTL");
    for (sequence, key) in [(2, "b"), (3, "a"), (4, "plain")] {
        let lease = if key == "plain" { 0 } else { 9 };
        let put = PutRequest { key: key.into(), lease, ..PutRequest::default() };
        let (_, put) =
            machine.apply(sequence + 1, 1, &entry(sequence, Request::Put(put)), now).unwrap();
        assert!(put.is_ok());
    }
    assert_eq!(machine.take_events().len(), 3, "every write's events are kept");
    let restored = StateMachine::restore(&machine.snapshot(), MachineSettings::default());
    let mut restored = restored.unwrap();
    assert_eq!(restored.lessor().get(9).unwrap().keys.len(), 2, "attachments rebuilt");
    let revoke = Request::LeaseRevoke(LeaseRevokeRequest { id: 9 });
    let (_, revoked) = restored.apply(6, 1, &entry(6, revoke), now).unwrap();
    let Ok(Response::LeaseRevoke(revoked)) = revoked else { panic!("{revoked:?}") };
    assert_eq!(revoked.header.revision, 5, "both keys go in one revision");
    let events = restored.take_events();
    let keys: Vec<&[u8]> = events.iter().map(|e| &e.kv.key[..]).collect();
    assert_eq!(keys, [&b"a"[..], b"b"], "deleted in key order");
    assert!(restored.kv().get_live(b"plain").is_some());
    let again = Request::LeaseRevoke(LeaseRevokeRequest { id: 9 });
    let (_, again) = restored.apply(7, 1, &entry(7, again), now).unwrap();
    assert_eq!(again, Err(Error::Kv(KvError::LeaseNotFound)));
}

/// Found by the simulator: an old leader's expiry, forwarded to the next leader after that
/// one had renewed the lease, revoked a lease a client had just kept alive.
#[test]
fn an_expiry_applies_only_in_the_term_that_decided_it() {
    let mut machine = StateMachine::new(Vec::new(), MachineSettings::default());
    let now = Instant::ZERO;
    let grant = Request::LeaseGrant(LeaseGrantRequest { ttl: 5, id: 9 });
    let (_, result) = machine.apply(1, 1, &entry(1, grant), now).unwrap();
    assert!(result.is_ok(), "{result:?}");
    let expire = |term| Request::LeaseExpire(LeaseExpireRequest { id: 9, term });
    let (_, result) = machine.apply(2, 3, &entry(2, expire(2)), now).unwrap();
    assert!(result.is_ok(), "{result:?}");
    assert!(machine.lessor().exists(9), "decided in term 2, committed in term 3: ignored");
    let stale = LeaseCheckpoint { id: 9, remaining_ttl: 1 };
    let checkpoint = LeaseCheckpointRequest { checkpoints: vec![stale], term: 2 };
    let (_, result) =
        machine.apply(3, 3, &entry(3, Request::LeaseCheckpoint(checkpoint)), now).unwrap();
    assert!(result.is_ok(), "{result:?}");
    assert_eq!(machine.lessor().get(9).unwrap().remaining_ttl, 0, "stale remainder ignored");
    let (_, result) = machine.apply(4, 3, &entry(4, expire(3)), now).unwrap();
    assert!(result.is_ok(), "{result:?}");
    assert!(!machine.lessor().exists(9), "decided and committed in term 3");
}

fn alarm_entry(sequence: u64, action: crate::api::AlarmAction, alarm: AlarmType) -> Vec<u8> {
    let request = AlarmRequest { action, member_id: 2, alarm };
    entry(sequence, Request::Maintenance(MaintenanceRequest::Alarm(request)))
}

/// etcd's capped and corrupt appliers: what each alarm refuses when applied.
#[test]
fn raised_alarms_refuse_what_etcd_refuses() {
    use crate::api::{AlarmAction, DeleteRangeRequest, RangeRequest};
    let mut machine = StateMachine::new(Vec::new(), MachineSettings::default());
    let now = Instant::ZERO;
    let mut index = 0;
    let mut apply = |machine: &mut StateMachine, data: Vec<u8>| {
        index += 1;
        machine.apply(index, 1, &data, now).map(|(_, result)| result).expect("applied")
    };
    let put = |key: &str| {
        Request::Put(PutRequest { key: key.into(), value: b"v".to_vec(), ..PutRequest::default() })
    };
    let grant = Request::LeaseGrant(LeaseGrantRequest { ttl: 10, id: 3 });
    assert!(apply(&mut machine, entry(1, grant)).is_ok());
    assert!(apply(&mut machine, entry(2, put("a"))).is_ok());
    assert!(apply(&mut machine, alarm_entry(3, AlarmAction::Activate, AlarmType::NoSpace)).is_ok());
    let nospace = Err(Error::Server(ServerError::NoSpace));
    assert_eq!(apply(&mut machine, entry(4, put("b"))), nospace);
    let grant = Request::LeaseGrant(LeaseGrantRequest { ttl: 10, id: 4 });
    assert_eq!(apply(&mut machine, entry(5, grant)), nospace);
    let delete = DeleteRangeRequest { key: b"a".to_vec(), ..Default::default() };
    assert!(apply(&mut machine, entry(6, Request::DeleteRange(delete))).is_ok(), "deletes work");
    let revoke = Request::LeaseRevoke(LeaseRevokeRequest { id: 3 });
    assert!(apply(&mut machine, entry(7, revoke)).is_ok(), "revokes work");
    assert!(
        apply(&mut machine, alarm_entry(8, AlarmAction::Deactivate, AlarmType::NoSpace)).is_ok()
    );
    assert!(apply(&mut machine, entry(9, put("b"))).is_ok(), "disarmed");
    assert!(apply(&mut machine, alarm_entry(10, AlarmAction::Activate, AlarmType::Corrupt)).is_ok());
    let corrupt = Err(Error::Server(ServerError::Corrupt));
    let range = Request::Range(RangeRequest { key: b"b".to_vec(), ..Default::default() });
    assert_eq!(apply(&mut machine, entry(11, range)), corrupt, "reads through the log too");
    let expire = Request::LeaseExpire(LeaseExpireRequest { id: 3, term: 1 });
    assert_eq!(apply(&mut machine, entry(12, expire)), corrupt, "expiries too");
    let list = alarm_entry(13, AlarmAction::Get, AlarmType::None);
    let Ok(Response::Alarm(listed)) = apply(&mut machine, list) else { panic!("a list") };
    assert_eq!(listed.alarms.len(), 1, "alarm requests still work");
}

/// The running size the quota uses equals a recount after every kind of write, a compaction
/// and a restore.
#[test]
fn the_quota_size_stays_exact() {
    use crate::api::{CompactionRequest, DeleteRangeRequest, RequestOp, TxnRequest};
    let mut machine = StateMachine::new(Vec::new(), MachineSettings::default());
    let now = Instant::ZERO;
    let put = |key: &str, value: &str, lease| PutRequest {
        key: key.into(),
        value: value.into(),
        lease,
        ..PutRequest::default()
    };
    let requests = vec![
        Request::LeaseGrant(LeaseGrantRequest { ttl: 10, id: 3 }),
        Request::Put(put("a", "1", 0)),
        Request::Put(put("b", "22", 3)),
        Request::Put(put("c", "333", 3)),
        Request::Txn(TxnRequest {
            compare: Vec::new(),
            success: vec![
                RequestOp::Put(put("d", "4444", 0)),
                RequestOp::DeleteRange(DeleteRangeRequest {
                    key: b"a".to_vec(),
                    ..Default::default()
                }),
            ],
            failure: Vec::new(),
        }),
        Request::LeaseRevoke(LeaseRevokeRequest { id: 3 }),
        Request::Compact(CompactionRequest { revision: 4, physical: true }),
        Request::Put(put("d", "55555", 0)),
    ];
    let recount = |machine: &StateMachine| {
        machine.kv().size_bytes() + machine.lessor().len() as u64 * alarm::LEASE_OVERHEAD
    };
    for (sequence, request) in requests.into_iter().enumerate() {
        let index = sequence as u64 + 1;
        let (_, result) = machine.apply(index, 1, &entry(index, request), now).unwrap();
        assert!(result.is_ok(), "{result:?}");
        assert_eq!(machine.size_bytes(), recount(&machine), "after entry {index}");
    }
    let restored = StateMachine::restore(&machine.snapshot(), MachineSettings::default()).unwrap();
    assert_eq!(restored.size_bytes(), machine.size_bytes());
    assert!(machine.size_bytes() > 0);
}
