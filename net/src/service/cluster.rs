//! The Cluster service: MemberAdd, MemberRemove, MemberUpdate, MemberList, MemberPromote.

use super::{ask, unexpected};
use crate::convert::kv::header;
use crate::handle::Handle;
use crate::proto::etcdserverpb as pb;
use crate::proto::etcdserverpb::cluster_server::{Cluster, ClusterServer};
use stead_core::api::{ClusterRequest, ClusterResponse, Credential, Member, Request, Response};
use tonic::{Request as Call, Response as Answer, Status};

/// The Cluster service of one member.
pub struct ClusterService {
    handle: Handle,
}

impl ClusterService {
    /// The service for the member behind `handle`.
    pub fn server(handle: Handle) -> crate::service::grpc_server!(ClusterServer, ClusterService) {
        ClusterServer::new(ClusterService { handle })
    }

    async fn cluster<T>(
        &self,
        call: &Call<T>,
        request: ClusterRequest,
    ) -> Result<ClusterResponse, Status> {
        match ask(&self.handle, call, Request::Cluster(request)).await? {
            Response::Cluster(answer) => Ok(answer),
            other => Err(unexpected(other)),
        }
    }
}

/// A member as etcd's.
pub fn member(member: Member) -> pb::Member {
    pb::Member {
        id: member.id,
        name: member.name,
        peer_ur_ls: member.peer_urls,
        client_ur_ls: member.client_urls,
        is_learner: member.is_learner,
    }
}

fn members(answer: &ClusterResponse) -> Vec<pb::Member> {
    answer.members.iter().cloned().map(member).collect()
}

/// The member list `handle`'s member knows (served locally, like etcd 3.4's MemberList).
pub async fn member_list(
    handle: &Handle,
    credential: Option<Credential>,
) -> Result<pb::MemberListResponse, Status> {
    match handle.call(Request::Cluster(ClusterRequest::MemberList), credential).await {
        Ok(Response::Cluster(answer)) => {
            Ok(pb::MemberListResponse { header: header(answer.header), members: members(&answer) })
        }
        Ok(other) => Err(unexpected(other)),
        Err(error) => Err(crate::service::status(error)),
    }
}

#[tonic::async_trait]
impl Cluster for ClusterService {
    async fn member_add(
        &self,
        call: Call<pb::MemberAddRequest>,
    ) -> Result<Answer<pb::MemberAddResponse>, Status> {
        let body = call.get_ref().clone();
        let request =
            ClusterRequest::MemberAdd { peer_urls: body.peer_ur_ls, is_learner: body.is_learner };
        let answer = self.cluster(&call, request).await?;
        Ok(Answer::new(pb::MemberAddResponse {
            header: header(answer.header),
            member: answer.member.clone().map(member),
            members: members(&answer),
        }))
    }

    async fn member_remove(
        &self,
        call: Call<pb::MemberRemoveRequest>,
    ) -> Result<Answer<pb::MemberRemoveResponse>, Status> {
        let request = ClusterRequest::MemberRemove { id: call.get_ref().id };
        let answer = self.cluster(&call, request).await?;
        Ok(Answer::new(pb::MemberRemoveResponse {
            header: header(answer.header),
            members: members(&answer),
        }))
    }

    async fn member_update(
        &self,
        call: Call<pb::MemberUpdateRequest>,
    ) -> Result<Answer<pb::MemberUpdateResponse>, Status> {
        let body = call.get_ref().clone();
        let request = ClusterRequest::MemberUpdate { id: body.id, peer_urls: body.peer_ur_ls };
        let answer = self.cluster(&call, request).await?;
        Ok(Answer::new(pb::MemberUpdateResponse {
            header: header(answer.header),
            members: members(&answer),
        }))
    }

    async fn member_list(
        &self,
        call: Call<pb::MemberListRequest>,
    ) -> Result<Answer<pb::MemberListResponse>, Status> {
        Ok(Answer::new(member_list(&self.handle, super::credential(&call)).await?))
    }

    async fn member_promote(
        &self,
        call: Call<pb::MemberPromoteRequest>,
    ) -> Result<Answer<pb::MemberPromoteResponse>, Status> {
        // Only the leader knows whether the learner caught up: a follower asks it.
        let request = Request::Cluster(ClusterRequest::MemberPromote { id: call.get_ref().id });
        let answer =
            match crate::forward::at_leader(&self.handle, request, super::credential(&call))
                .await
                .map_err(crate::service::status)?
            {
                Response::Cluster(answer) => answer,
                other => return Err(unexpected(other)),
            };
        Ok(Answer::new(pb::MemberPromoteResponse {
            header: header(answer.header),
            members: members(&answer),
        }))
    }
}
