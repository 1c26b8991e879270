//! The Election service (etcd's `v3election`), as etcd's `concurrency.Election` builds it over
//! the key space: a candidate's key is `<name>/<lease id in hex>` holding its value; the leader
//! is the key with the lowest create revision. Campaign waits to lead; Proclaim changes the
//! leader's value; Leader reads it; Observe streams every change of leader or value; Resign
//! deletes the leader's key.

use super::lock::{create_or_keep, name_prefix, prefix_end, wait_for_predecessors};
use super::{credential, passed_on};
use crate::convert::kv::{header, key_value};
use crate::handle::Handle;
use crate::proto::v3electionpb as pb;
use crate::proto::v3electionpb::election_server::{Election, ElectionServer};
use std::pin::Pin;
use stead_core::api::{
    Compare, CompareResult, CompareTarget, Credential, DeleteRangeRequest, Error, KeyValue,
    PutRequest, RangeRequest, Request, RequestOp, Response, ResponseHeader, SortOrder, SortTarget,
    TxnRequest, WatchCreateRequest,
};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tokio_stream::Stream;
use tonic::{Request as Call, Response as Answer, Status};

fn not_leader() -> Status {
    Status::unknown("election: not leader")
}

fn missing_leader() -> Status {
    Status::unknown("\"leader\" field must be provided")
}

/// The Election service of one member.
pub struct ElectionService {
    handle: Handle,
}

impl ElectionService {
    /// The service for the member behind `handle`.
    pub fn server(handle: Handle) -> crate::service::grpc_server!(ElectionServer, ElectionService) {
        ElectionServer::new(ElectionService { handle })
    }
}

/// The current leader's key-value, if any.
async fn leader(
    handle: &Handle,
    credential: &Option<Credential>,
    name: &[u8],
) -> Result<(Option<KeyValue>, ResponseHeader), Error> {
    let prefix = name_prefix(name);
    let first = RangeRequest {
        key: prefix.clone(),
        range_end: prefix_end(&prefix),
        sort_order: SortOrder::Ascend,
        sort_target: SortTarget::Create,
        limit: 1,
        ..Default::default()
    };
    match handle.call(Request::Range(first), credential.clone()).await? {
        Response::Range(range) => Ok((range.kvs.into_iter().next(), range.header)),
        _ => Err(Error::Kv(stead_core::api::KvError::KeyNotFound)),
    }
}

/// Runs `then` on the leader's key if it still has create revision `rev`.
async fn if_leader(
    handle: &Handle,
    credential: &Option<Credential>,
    key: &pb::LeaderKey,
    then: RequestOp,
) -> Result<ResponseHeader, Status> {
    let still = Compare {
        result: CompareResult::Equal,
        target: CompareTarget::Create(key.rev),
        key: key.key.clone(),
        range_end: Vec::new(),
    };
    let txn = TxnRequest { compare: vec![still], success: vec![then], failure: Vec::new() };
    match handle.call(Request::Txn(txn), credential.clone()).await.map_err(passed_on)? {
        Response::Txn(answer) if answer.succeeded => Ok(answer.header),
        Response::Txn(_) => Err(not_leader()),
        other => Err(super::unexpected(other)),
    }
}

type Observations = Pin<Box<dyn Stream<Item = Result<pb::LeaderResponse, Status>> + Send>>;

#[tonic::async_trait]
impl Election for ElectionService {
    async fn campaign(
        &self,
        call: Call<pb::CampaignRequest>,
    ) -> Result<Answer<pb::CampaignResponse>, Status> {
        let credential = credential(&call);
        let body = call.into_inner();
        let prefix = name_prefix(&body.name);
        let mut key = prefix.clone();
        key.extend_from_slice(format!("{:x}", body.lease).as_bytes());
        let (rev, _, existing) =
            create_or_keep(&self.handle, &credential, &key, &body.value, body.lease)
                .await
                .map_err(passed_on)?;
        let leader =
            pb::LeaderKey { name: body.name.clone(), key: key.clone(), rev, lease: body.lease };
        // A candidate campaigning again with a new value proclaims it.
        if existing.is_some_and(|value| value != body.value) {
            let put =
                PutRequest { key, value: body.value, lease: body.lease, ..Default::default() };
            if_leader(&self.handle, &credential, &leader, RequestOp::Put(put)).await?;
        }
        let header_now = wait_for_predecessors(&self.handle, &credential, &prefix, rev)
            .await
            .map_err(passed_on)?;
        Ok(Answer::new(pb::CampaignResponse { header: header(header_now), leader: Some(leader) }))
    }

    async fn proclaim(
        &self,
        call: Call<pb::ProclaimRequest>,
    ) -> Result<Answer<pb::ProclaimResponse>, Status> {
        let credential = credential(&call);
        let body = call.into_inner();
        let leader = body.leader.ok_or_else(missing_leader)?;
        let put = PutRequest {
            key: leader.key.clone(),
            value: body.value,
            lease: leader.lease,
            ..Default::default()
        };
        let answer = if_leader(&self.handle, &credential, &leader, RequestOp::Put(put)).await?;
        Ok(Answer::new(pb::ProclaimResponse { header: header(answer) }))
    }

    async fn leader(
        &self,
        call: Call<pb::LeaderRequest>,
    ) -> Result<Answer<pb::LeaderResponse>, Status> {
        let credential = credential(&call);
        let (kv, answer) =
            leader(&self.handle, &credential, &call.get_ref().name).await.map_err(passed_on)?;
        let kv = kv.ok_or_else(|| Status::unknown("election: no leader"))?;
        Ok(Answer::new(pb::LeaderResponse { header: header(answer), kv: Some(key_value(kv)) }))
    }

    type ObserveStream = Observations;

    async fn observe(
        &self,
        call: Call<pb::LeaderRequest>,
    ) -> Result<Answer<Self::ObserveStream>, Status> {
        let credential = credential(&call);
        let name = call.into_inner().name;
        let handle = self.handle.clone();
        let (out, observed) = mpsc::channel(16);
        tokio::spawn(async move {
            let prefix = name_prefix(&name);
            let create = WatchCreateRequest {
                key: prefix.clone(),
                range_end: prefix_end(&prefix),
                ..Default::default()
            };
            let mut events = match handle.open_watch(credential.clone(), create) {
                Ok(watch) => watch,
                Err(error) => {
                    let _ = out.send(Err(passed_on(error))).await;
                    return;
                }
            };
            let mut last: Option<(Vec<u8>, i64)> = None;
            loop {
                match leader(&handle, &credential, &name).await {
                    Ok((Some(kv), answer)) => {
                        let seen = (kv.key.clone(), kv.mod_revision);
                        if last.as_ref() != Some(&seen) {
                            last = Some(seen);
                            let response = pb::LeaderResponse {
                                header: header(answer),
                                kv: Some(key_value(kv)),
                            };
                            if out.send(Ok(response)).await.is_err() {
                                break;
                            }
                        }
                    }
                    Ok((None, _)) => last = None,
                    Err(error) => {
                        let _ = out.send(Err(passed_on(error))).await;
                        break;
                    }
                }
                match events.next().await {
                    Some(Ok(_)) => {}
                    _ => break,
                }
            }
        });
        Ok(Answer::new(Box::pin(ReceiverStream::new(observed))))
    }

    async fn resign(
        &self,
        call: Call<pb::ResignRequest>,
    ) -> Result<Answer<pb::ResignResponse>, Status> {
        let credential = credential(&call);
        let leader = call.into_inner().leader.ok_or_else(missing_leader)?;
        let delete = DeleteRangeRequest { key: leader.key.clone(), ..Default::default() };
        let answer =
            if_leader(&self.handle, &credential, &leader, RequestOp::DeleteRange(delete)).await?;
        Ok(Answer::new(pb::ResignResponse { header: header(answer) }))
    }
}
