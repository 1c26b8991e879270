//! Clients through the real gRPC client path, recording a history for the tier-1 checkers:
//! puts and compare-and-swaps with unique values, deletes, and linearizable and serializable
//! reads of single keys and of the whole key space, each against a random member.

use madsim::rand::{thread_rng, Rng};
use madsim::time::{sleep, timeout, Instant};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use stead_net::proto::etcdserverpb as pb;
use stead_sim::history::{History, OpKind, Outcome};
use tonic::transport::Channel;

/// How long a client waits for an answer before it gives up on the operation.
const OP_TIMEOUT: Duration = Duration::from_secs(2);
/// The keys clients use: few, so operations collide.
const KEYS: usize = 5;

/// The history of every client's operations, timed from the start of the run.
pub struct Recorder {
    /// The operations so far.
    pub history: History,
    start: Instant,
}

impl Recorder {
    /// An empty history whose clock starts at `start`.
    pub fn new(start: Instant) -> Recorder {
        Recorder { history: History::default(), start }
    }

    fn now(&self) -> stead_core::time::Instant {
        stead_core::time::Instant::from_nanos(self.start.elapsed().as_nanos() as u64)
    }

    fn invoke(&mut self, client: usize, kind: OpKind) -> usize {
        let now = self.now();
        self.history.invoke(client, kind, now)
    }

    fn complete(&mut self, op: usize, outcome: Outcome) {
        let now = self.now();
        self.history.complete(op, outcome, now);
    }
}

/// Client `id`: runs operations against the members in `endpoints` until `until`.
pub async fn run(
    id: usize,
    endpoints: Arc<Mutex<Vec<String>>>,
    recorder: Arc<Mutex<Recorder>>,
    until: Instant,
) {
    let mut connections: BTreeMap<String, pb::kv_client::KvClient<Channel>> = BTreeMap::new();
    let mut seen: BTreeMap<String, String> = BTreeMap::new();
    let mut count = 0;
    while Instant::now() < until {
        let endpoint = {
            let endpoints = endpoints.lock().expect("the endpoints");
            endpoints[thread_rng().gen_range(0..endpoints.len())].clone()
        };
        count += 1;
        let kind = choose(id, count, &seen);
        let op = recorder.lock().expect("the recorder").invoke(id, kind.clone());
        let outcome = match timeout(OP_TIMEOUT, call(&mut connections, &endpoint, &kind)).await {
            Ok(Ok(outcome)) => outcome,
            Ok(Err(status)) => {
                connections.remove(&endpoint);
                gave_up(&kind, status.message())
            }
            Err(_) => {
                connections.remove(&endpoint);
                gave_up(&kind, "client timeout")
            }
        };
        if let (OpKind::Get { key, .. }, Outcome::Get { value: Some(value), .. }) =
            (&kind, &outcome)
        {
            seen.insert(key.clone(), value.clone());
        }
        recorder.lock().expect("the recorder").complete(op, outcome);
        sleep(Duration::from_millis(thread_rng().gen_range(5..40))).await;
    }
}

/// A read that failed changed nothing; a write that failed may still have taken effect.
fn gave_up(kind: &OpKind, why: &str) -> Outcome {
    match kind {
        OpKind::Get { .. } | OpKind::Range { .. } => Outcome::Failed(why.to_string()),
        _ => Outcome::Unknown,
    }
}

fn choose(id: usize, count: usize, seen: &BTreeMap<String, String>) -> OpKind {
    let mut rng = thread_rng();
    let key = format!("k{}", rng.gen_range(0..KEYS));
    let value = format!("c{id}-{count}");
    match rng.gen_range(0..100) {
        0..=34 => OpKind::Put { key, value },
        35..=44 => OpKind::Delete { key },
        45..=59 => {
            let expected = if rng.gen_bool(0.5) { seen.get(&key).cloned() } else { None };
            OpKind::Cas { key, expected, value }
        }
        60..=84 => OpKind::Get { key, serializable: false },
        85..=89 => OpKind::Get { key, serializable: true },
        _ => OpKind::Range { start: "k".into(), end: "l".into(), serializable: rng.gen_bool(0.3) },
    }
}

async fn call(
    connections: &mut BTreeMap<String, pb::kv_client::KvClient<Channel>>,
    endpoint: &str,
    kind: &OpKind,
) -> Result<Outcome, tonic::Status> {
    if !connections.contains_key(endpoint) {
        let client = pb::kv_client::KvClient::connect(endpoint.to_string())
            .await
            .map_err(|e| tonic::Status::unavailable(e.to_string()))?;
        connections.insert(endpoint.to_string(), client);
    }
    let client = connections.get_mut(endpoint).expect("connected");
    let revision = |header: Option<pb::ResponseHeader>| header.map_or(0, |h| h.revision);
    let text = |bytes: &[u8]| String::from_utf8_lossy(bytes).into_owned();
    Ok(match kind {
        OpKind::Put { key, value } => {
            let put = pb::PutRequest {
                key: key.clone().into(),
                value: value.clone().into(),
                ..Default::default()
            };
            let answer = client.put(put).await?.into_inner();
            Outcome::Put { revision: revision(answer.header) }
        }
        OpKind::Delete { key } => {
            let delete = pb::DeleteRangeRequest { key: key.clone().into(), ..Default::default() };
            let answer = client.delete_range(delete).await?.into_inner();
            Outcome::Delete { revision: revision(answer.header), deleted: answer.deleted }
        }
        OpKind::Cas { key, expected, value } => {
            use pb::compare::{CompareResult, CompareTarget, TargetUnion};
            let compare = match expected {
                Some(expected) => pb::Compare {
                    result: CompareResult::Equal as i32,
                    target: CompareTarget::Value as i32,
                    key: key.clone().into(),
                    target_union: Some(TargetUnion::Value(expected.clone().into())),
                    ..Default::default()
                },
                None => pb::Compare {
                    result: CompareResult::Equal as i32,
                    target: CompareTarget::Version as i32,
                    key: key.clone().into(),
                    target_union: Some(TargetUnion::Version(0)),
                    ..Default::default()
                },
            };
            let put = pb::PutRequest {
                key: key.clone().into(),
                value: value.clone().into(),
                ..Default::default()
            };
            let read = pb::RangeRequest { key: key.clone().into(), ..Default::default() };
            let txn = pb::TxnRequest {
                compare: vec![compare],
                success: vec![pb::RequestOp {
                    request: Some(pb::request_op::Request::RequestPut(put)),
                }],
                failure: vec![pb::RequestOp {
                    request: Some(pb::request_op::Request::RequestRange(read)),
                }],
            };
            let answer = client.txn(txn).await?.into_inner();
            let value = answer.responses.first().and_then(|r| match &r.response {
                Some(pb::response_op::Response::ResponseRange(range)) => {
                    range.kvs.first().map(|kv| text(&kv.value))
                }
                _ => None,
            });
            let value = if answer.succeeded { None } else { value };
            Outcome::Cas { revision: revision(answer.header), succeeded: answer.succeeded, value }
        }
        OpKind::Get { key, serializable } => {
            let read = pb::RangeRequest {
                key: key.clone().into(),
                serializable: *serializable,
                ..Default::default()
            };
            let answer = client.range(read).await?.into_inner();
            let value = answer.kvs.first().map(|kv| text(&kv.value));
            Outcome::Get { revision: revision(answer.header), value }
        }
        OpKind::Range { start, end, serializable } => {
            let read = pb::RangeRequest {
                key: start.clone().into(),
                range_end: end.clone().into(),
                serializable: *serializable,
                ..Default::default()
            };
            let answer = client.range(read).await?.into_inner();
            let kvs = answer.kvs.iter().map(|kv| (text(&kv.key), text(&kv.value))).collect();
            Outcome::Range { revision: revision(answer.header), kvs }
        }
    })
}
