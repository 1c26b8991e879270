//! The clients: key-value clients (puts, deletes, compare-and-swap txns, linearizable and
//! serializable reads of one key or the whole key range), lease clients (grant, attach keys,
//! keep alive, revoke or walk away) and one watcher per member, each over etcd's gRPC API
//! and recording into the [`Recorder`]. A client whose member fails it moves to the next one,
//! as etcd's client balancer does.
//!
//! Writes whose answer did not come (an error, a timeout, a lost connection) have an unknown
//! outcome: they may have taken effect. Failed reads took no effect.

use crate::recorder::Recorder;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use stead_net::convert::kv::event_from_pb as event;
use stead_net::proto::etcdserverpb as pb;
use stead_net::proto::etcdserverpb::kv_client::KvClient;
use stead_net::proto::etcdserverpb::lease_client::LeaseClient;
use stead_net::proto::etcdserverpb::watch_client::WatchClient;
use stead_sim::check_lease::{Gone, LeaseLife};
use stead_sim::check_watch::WatchSession;
use stead_sim::history::{OpKind, Outcome};
use tonic::transport::Channel;

/// How long a client waits for one answer before it gives up (outcome unknown).
const CALL_TIMEOUT: Duration = Duration::from_secs(5);
/// The key-value clients' keys: `key0` .. `key7`.
const KEYS: usize = 8;

/// What every client shares.
#[derive(Clone)]
pub struct Clients {
    /// A channel to each member's client URL.
    pub channels: Vec<Channel>,
    /// Where everything goes.
    pub recorder: Arc<Recorder>,
    /// Set when the clients should stop.
    pub stop: Arc<AtomicBool>,
}

impl Clients {
    fn stopped(&self) -> bool {
        self.stop.load(Ordering::SeqCst)
    }
}

/// The answer to `call`, or its error (also counted in `recorder`).
async fn within<T>(
    recorder: &Recorder,
    call: impl std::future::Future<Output = Result<tonic::Response<T>, tonic::Status>>,
) -> Result<T, String> {
    let error = match tokio::time::timeout(CALL_TIMEOUT, call).await {
        Ok(Ok(answer)) => return Ok(answer.into_inner()),
        Ok(Err(status)) => format!("{:?}: {}", status.code(), status.message()),
        Err(_) => "client timeout".to_string(),
    };
    recorder.error(&error);
    Err(error)
}

fn revision(header: Option<pb::ResponseHeader>) -> i64 {
    header.unwrap_or_default().revision
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Key-value client `client`: random operations until told to stop.
pub async fn kv_client(clients: Clients, client: usize, seed: u64) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ (client as u64).wrapping_mul(0x9e37_79b9));
    let mut member = client % clients.channels.len();
    let mut seen: Vec<Option<String>> = vec![None; KEYS];
    let mut writes = 0;
    while !clients.stopped() {
        let mut kv = KvClient::new(clients.channels[member].clone());
        let k = rng.gen_range(0..KEYS);
        let key = format!("key{k}");
        let serializable = rng.gen_bool(0.2);
        let roll = rng.gen_range(0..100);
        let recorder = &clients.recorder;
        let ok = if roll < 30 {
            writes += 1;
            let value = format!("c{client}-{writes}");
            let id =
                recorder.invoke(client, OpKind::Put { key: key.clone(), value: value.clone() });
            let put = pb::PutRequest { key: key.into(), value: value.into(), ..Default::default() };
            match within(recorder, kv.put(put)).await {
                Ok(r) => {
                    recorder.complete(id, Outcome::Put { revision: revision(r.header) });
                    true
                }
                Err(_) => {
                    recorder.complete(id, Outcome::Unknown);
                    false
                }
            }
        } else if roll < 40 {
            let id = recorder.invoke(client, OpKind::Delete { key: key.clone() });
            let delete = pb::DeleteRangeRequest { key: key.into(), ..Default::default() };
            match within(recorder, kv.delete_range(delete)).await {
                Ok(r) => {
                    let outcome =
                        Outcome::Delete { revision: revision(r.header), deleted: r.deleted };
                    recorder.complete(id, outcome);
                    true
                }
                Err(_) => {
                    recorder.complete(id, Outcome::Unknown);
                    false
                }
            }
        } else if roll < 60 {
            writes += 1;
            let value = format!("c{client}-{writes}");
            let expected = seen[k].clone();
            let kind =
                OpKind::Cas { key: key.clone(), expected: expected.clone(), value: value.clone() };
            let id = recorder.invoke(client, kind);
            match within(recorder, kv.txn(cas(&key, expected, &value))).await {
                Ok(r) => {
                    let read = r.responses.into_iter().find_map(|op| match op.response {
                        Some(pb::response_op::Response::ResponseRange(range)) => {
                            Some(range.kvs.first().map(|kv| text(&kv.value)))
                        }
                        _ => None,
                    });
                    let value = read.flatten();
                    if r.succeeded {
                        seen[k] = Some(format!("c{client}-{writes}"));
                    } else {
                        seen[k] = value.clone();
                    }
                    let outcome = Outcome::Cas {
                        revision: revision(r.header),
                        succeeded: r.succeeded,
                        value,
                    };
                    recorder.complete(id, outcome);
                    true
                }
                Err(_) => {
                    recorder.complete(id, Outcome::Unknown);
                    false
                }
            }
        } else if roll < 85 {
            let id = recorder.invoke(client, OpKind::Get { key: key.clone(), serializable });
            let get = pb::RangeRequest { key: key.into(), serializable, ..Default::default() };
            match within(recorder, kv.range(get)).await {
                Ok(r) => {
                    let value = r.kvs.first().map(|kv| text(&kv.value));
                    seen[k] = value.clone();
                    recorder.complete(id, Outcome::Get { revision: revision(r.header), value });
                    true
                }
                Err(error) => {
                    recorder.complete(id, Outcome::Failed(error));
                    false
                }
            }
        } else {
            let (start, end) = ("key".to_string(), "kez".to_string());
            let kind = OpKind::Range { start: start.clone(), end: end.clone(), serializable };
            let id = recorder.invoke(client, kind);
            let range = pb::RangeRequest {
                key: start.into(),
                range_end: end.into(),
                serializable,
                ..Default::default()
            };
            match within(recorder, kv.range(range)).await {
                Ok(r) => {
                    let kvs = r.kvs.iter().map(|kv| (text(&kv.key), text(&kv.value))).collect();
                    recorder.complete(id, Outcome::Range { revision: revision(r.header), kvs });
                    true
                }
                Err(error) => {
                    recorder.complete(id, Outcome::Failed(error));
                    false
                }
            }
        };
        if !ok {
            member = (member + 1) % clients.channels.len();
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        tokio::time::sleep(Duration::from_millis(rng.gen_range(2..10))).await;
    }
}

/// The compare-and-swap txn: if `key` holds `expected` (absent: never created), put `value`,
/// else read `key`.
fn cas(key: &str, expected: Option<String>, value: &str) -> pb::TxnRequest {
    use pb::compare::{CompareResult, CompareTarget, TargetUnion};
    let compare = match expected {
        Some(expected) => pb::Compare {
            result: CompareResult::Equal as i32,
            target: CompareTarget::Value as i32,
            key: key.into(),
            target_union: Some(TargetUnion::Value(expected.into())),
            ..Default::default()
        },
        None => pb::Compare {
            result: CompareResult::Equal as i32,
            target: CompareTarget::Create as i32,
            key: key.into(),
            target_union: Some(TargetUnion::CreateRevision(0)),
            ..Default::default()
        },
    };
    let put = pb::PutRequest { key: key.into(), value: value.into(), ..Default::default() };
    let get = pb::RangeRequest { key: key.into(), ..Default::default() };
    pb::TxnRequest {
        compare: vec![compare],
        success: vec![pb::RequestOp { request: Some(pb::request_op::Request::RequestPut(put)) }],
        failure: vec![pb::RequestOp { request: Some(pb::request_op::Request::RequestRange(get)) }],
    }
}

/// Lease client `client`: grants leases one after another, attaches keys, renews them for a
/// while, then revokes them or walks away.
pub async fn lease_client(clients: Clients, client: usize, seed: u64) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x1ea5e ^ (client as u64).wrapping_mul(31));
    let mut member = client % clients.channels.len();
    let recorder = &clients.recorder;
    let mut number = 0;
    while !clients.stopped() {
        let channel = clients.channels[member].clone();
        let (mut leases, mut kv) = (LeaseClient::new(channel.clone()), KvClient::new(channel));
        let ttl = rng.gen_range(3..=5);
        let granted = recorder.now();
        let id = match within(recorder, leases.lease_grant(pb::LeaseGrantRequest { ttl, id: 0 }))
            .await
        {
            Ok(r) => r.id,
            Err(_) => {
                member = (member + 1) % clients.channels.len();
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        number += 1;
        let mut life = LeaseLife::new(client, number, id, ttl, granted);
        for n in 0..rng.gen_range(1..=2) {
            let key = life.key(n);
            let value = format!("l{client}-{number}-{n}");
            let put = pb::PutRequest {
                key: key.clone().into(),
                value: value.into(),
                lease: id,
                ..Default::default()
            };
            let invoke = recorder.now();
            match within(recorder, kv.put(put)).await {
                Ok(_) => life.keys.push(key),
                Err(error) if error.contains("requested lease not found") => {
                    life.gone.push(Gone { invoke, complete: recorder.now() })
                }
                Err(_) => life.maybe_keys.push(key),
            }
        }
        let hold = Duration::from_millis(rng.gen_range(1000..4000));
        let until = tokio::time::Instant::now() + hold;
        while tokio::time::Instant::now() < until && !clients.stopped() {
            tokio::time::sleep(Duration::from_millis(rng.gen_range(300..900))).await;
            let invoke = recorder.now();
            if rng.gen_bool(0.7) {
                match keep_alive(&mut leases, id).await {
                    Ok(ttl) if ttl > 0 => life.renewals.push((invoke, recorder.now())),
                    Ok(_) => life.gone.push(Gone { invoke, complete: recorder.now() }),
                    Err(error) => {
                        recorder.error(&error);
                        member = (member + 1) % clients.channels.len();
                    }
                }
            } else if let Some(key) = life.keys.first().cloned() {
                let get = pb::RangeRequest { key: key.into(), ..Default::default() };
                if let Ok(r) = within(recorder, kv.range(get)).await {
                    if r.kvs.is_empty() {
                        life.gone.push(Gone { invoke, complete: recorder.now() });
                    }
                }
            }
        }
        if rng.gen_bool(0.5) {
            life.revoke_invoked = Some(recorder.now());
            if let Ok(r) =
                within(recorder, leases.lease_revoke(pb::LeaseRevokeRequest { id })).await
            {
                life.revoke_acked = Some((recorder.now(), revision(r.header)));
                for key in life.keys.clone() {
                    let invoke = recorder.now();
                    let get = pb::RangeRequest { key: key.into(), ..Default::default() };
                    if within(recorder, kv.range(get)).await.is_ok_and(|r| !r.kvs.is_empty()) {
                        life.outlived.push(invoke);
                    }
                }
            }
        } else {
            life.abandoned = Some(recorder.now());
        }
        recorder.lease(life);
    }
}

/// One renewal on a stream of its own: the TTL the leader answered.
pub async fn keep_alive(leases: &mut LeaseClient<Channel>, id: i64) -> Result<i64, String> {
    let renewal = tokio_stream::iter([pb::LeaseKeepAliveRequest { id }]);
    let call = async {
        let mut answers = leases.lease_keep_alive(renewal).await?.into_inner();
        answers.message().await
    };
    match tokio::time::timeout(CALL_TIMEOUT, call).await {
        Ok(Ok(Some(answer))) => Ok(answer.ttl),
        Ok(Ok(None)) => Err("the keep-alive stream ended".into()),
        Ok(Err(status)) => Err(format!("{:?}: {}", status.code(), status.message())),
        Err(_) => Err("client timeout".into()),
    }
}

/// Watcher `watcher`: watches every key with prev_kv from revision 1 on, and on any error
/// resumes on the next member from the revision after the last event it received.
pub async fn watcher(clients: Clients, watcher: usize) {
    let members = clients.channels.len();
    let mut member = watcher % members;
    let mut next = 1;
    let recorder = &clients.recorder;
    while !clients.stopped() {
        let session =
            WatchSession { watcher, member: member as u64, start: next, ..Default::default() };
        let index = recorder.open_session(session);
        let create = pb::WatchCreateRequest {
            key: vec![0],
            range_end: vec![0],
            start_revision: next,
            prev_kv: true,
            ..Default::default()
        };
        let union = pb::watch_request::RequestUnion::CreateRequest(create);
        let (sender, receiver) = tokio::sync::mpsc::channel(1);
        let _ = sender.send(pb::WatchRequest { request_union: Some(union) }).await;
        let mut client = WatchClient::new(clients.channels[member].clone());
        let outbound = tokio_stream::wrappers::ReceiverStream::new(receiver);
        let opened = tokio::time::timeout(CALL_TIMEOUT, client.watch(outbound)).await;
        let mut inbound = match opened {
            Ok(Ok(answer)) => answer.into_inner(),
            _ => {
                recorder.update_session(index, |_| false);
                member = (member + 1) % members;
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            }
        };
        loop {
            if clients.stopped() {
                return; // the session stays open: the harness marks it open at the end
            }
            let response =
                match tokio::time::timeout(Duration::from_millis(200), inbound.message()).await {
                    Err(_) => continue,
                    Ok(Ok(Some(response))) => response,
                    Ok(_) => {
                        recorder.update_session(index, |_| false);
                        break;
                    }
                };
            if response.canceled {
                let compacted = response.compact_revision;
                recorder.update_session(index, |s| {
                    s.compacted = (compacted > 0).then_some(compacted);
                    false
                });
                break;
            }
            if response.created {
                continue;
            }
            if response.events.is_empty() {
                let at = revision(response.header);
                recorder.update_session(index, |s| {
                    s.progress.push((at, s.events.len()));
                    true
                });
                continue;
            }
            let events: Vec<_> = response.events.into_iter().map(event).collect();
            next = events.last().map_or(next, |e| e.kv.mod_revision + 1);
            recorder.update_session(index, |s| {
                s.responses.push(events.iter().map(|e| e.kv.mod_revision).collect());
                s.events.extend(events);
                true
            });
        }
        drop(sender);
        member = (member + 1) % members;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
