//! The Lease service: LeaseGrant, LeaseRevoke, LeaseKeepAlive (a stream of renewals),
//! LeaseTimeToLive, LeaseLeases. Renewals and time-to-live questions are the leader's: a
//! member that does not lead takes them to it ([`crate::forward`]).

use super::{ask, credential, status, unexpected};
use crate::convert::kv::header;
use crate::forward::at_leader;
use crate::handle::Handle;
use crate::proto::etcdserverpb as pb;
use crate::proto::etcdserverpb::lease_server::{Lease, LeaseServer};
use std::pin::Pin;
use stead_core::api::{
    LeaseGrantRequest, LeaseKeepAliveRequest, LeaseLeasesRequest, LeaseRevokeRequest,
    LeaseTimeToLiveRequest, Request, Response,
};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tokio_stream::Stream;
use tonic::{Request as Call, Response as Answer, Status, Streaming};

/// The Lease service of one member.
pub struct LeaseService {
    handle: Handle,
}

impl LeaseService {
    /// The service for the member behind `handle`.
    pub fn server(handle: Handle) -> crate::service::grpc_server!(LeaseServer, LeaseService) {
        LeaseServer::new(LeaseService { handle })
    }
}

type KeepAlives = Pin<Box<dyn Stream<Item = Result<pb::LeaseKeepAliveResponse, Status>> + Send>>;

#[tonic::async_trait]
impl Lease for LeaseService {
    async fn lease_grant(
        &self,
        call: Call<pb::LeaseGrantRequest>,
    ) -> Result<Answer<pb::LeaseGrantResponse>, Status> {
        let body = call.get_ref();
        let request = Request::LeaseGrant(LeaseGrantRequest { ttl: body.ttl, id: body.id });
        match ask(&self.handle, &call, request).await? {
            Response::LeaseGrant(r) => Ok(Answer::new(pb::LeaseGrantResponse {
                header: header(r.header),
                id: r.id,
                ttl: r.ttl,
                error: String::new(),
            })),
            other => Err(unexpected(other)),
        }
    }

    async fn lease_revoke(
        &self,
        call: Call<pb::LeaseRevokeRequest>,
    ) -> Result<Answer<pb::LeaseRevokeResponse>, Status> {
        let request = Request::LeaseRevoke(LeaseRevokeRequest { id: call.get_ref().id });
        match ask(&self.handle, &call, request).await? {
            Response::LeaseRevoke(r) => {
                Ok(Answer::new(pb::LeaseRevokeResponse { header: header(r.header) }))
            }
            other => Err(unexpected(other)),
        }
    }

    type LeaseKeepAliveStream = KeepAlives;

    async fn lease_keep_alive(
        &self,
        call: Call<Streaming<pb::LeaseKeepAliveRequest>>,
    ) -> Result<Answer<Self::LeaseKeepAliveStream>, Status> {
        let credential = credential(&call);
        let handle = self.handle.clone();
        let mut inbound = call.into_inner();
        let (answers, outbound) = mpsc::channel(16);
        tokio::spawn(async move {
            while let Ok(Some(renewal)) = inbound.message().await {
                let request = Request::LeaseKeepAlive(LeaseKeepAliveRequest { id: renewal.id });
                let answer = match at_leader(&handle, request, credential.clone()).await {
                    Ok(Response::LeaseKeepAlive(r)) => Ok(pb::LeaseKeepAliveResponse {
                        header: header(r.header),
                        id: r.id,
                        ttl: r.ttl,
                    }),
                    Ok(other) => Err(unexpected(other)),
                    Err(error) => Err(status(error)),
                };
                let failed = answer.is_err();
                if answers.send(answer).await.is_err() || failed {
                    break;
                }
            }
        });
        Ok(Answer::new(Box::pin(ReceiverStream::new(outbound))))
    }

    async fn lease_time_to_live(
        &self,
        call: Call<pb::LeaseTimeToLiveRequest>,
    ) -> Result<Answer<pb::LeaseTimeToLiveResponse>, Status> {
        let body = call.get_ref();
        let request =
            Request::LeaseTimeToLive(LeaseTimeToLiveRequest { id: body.id, keys: body.keys });
        match at_leader(&self.handle, request, credential(&call)).await.map_err(status)? {
            Response::LeaseTimeToLive(r) => Ok(Answer::new(pb::LeaseTimeToLiveResponse {
                header: header(r.header),
                id: r.id,
                ttl: r.ttl,
                granted_ttl: r.granted_ttl,
                keys: r.keys,
            })),
            other => Err(unexpected(other)),
        }
    }

    async fn lease_leases(
        &self,
        call: Call<pb::LeaseLeasesRequest>,
    ) -> Result<Answer<pb::LeaseLeasesResponse>, Status> {
        let request = Request::LeaseLeases(LeaseLeasesRequest {});
        match ask(&self.handle, &call, request).await? {
            Response::LeaseLeases(r) => Ok(Answer::new(pb::LeaseLeasesResponse {
                header: header(r.header),
                leases: r.leases.into_iter().map(|id| pb::LeaseStatus { id }).collect(),
            })),
            other => Err(unexpected(other)),
        }
    }
}
