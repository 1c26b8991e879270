//! The Maintenance service: Alarm, Status, Defragment, Hash, HashKV, Snapshot (a stream of
//! chunks) and MoveLeader.

use super::{ask, unexpected};
use crate::convert::kv::header;
use crate::handle::Handle;
use crate::proto::etcdserverpb as pb;
use crate::proto::etcdserverpb::maintenance_server::{Maintenance, MaintenanceServer};
use std::pin::Pin;
use stead_core::api::{
    AlarmAction, AlarmRequest, AlarmType, ClusterRequest, MaintenanceRequest, Request, Response,
};
use tokio_stream::Stream;
use tonic::{Request as Call, Response as Answer, Status};

/// Bytes per Snapshot message (etcd's `snapshotSendBufferSize`).
const SNAPSHOT_CHUNK: usize = 32 * 1024;

/// The Maintenance service of one member.
pub struct MaintenanceService {
    handle: Handle,
}

impl MaintenanceService {
    /// The service for the member behind `handle`.
    pub fn server(
        handle: Handle,
    ) -> crate::service::grpc_server!(MaintenanceServer, MaintenanceService) {
        MaintenanceServer::new(MaintenanceService { handle })
    }

    async fn maintenance<T>(
        &self,
        call: &Call<T>,
        request: MaintenanceRequest,
    ) -> Result<Response, Status> {
        ask(&self.handle, call, Request::Maintenance(request)).await
    }
}

fn alarm_type(alarm: i32) -> AlarmType {
    match pb::AlarmType::try_from(alarm) {
        Ok(pb::AlarmType::Nospace) => AlarmType::NoSpace,
        Ok(pb::AlarmType::Corrupt) => AlarmType::Corrupt,
        _ => AlarmType::None,
    }
}

fn alarm_number(alarm: AlarmType) -> i32 {
    match alarm {
        AlarmType::None => pb::AlarmType::None as i32,
        AlarmType::NoSpace => pb::AlarmType::Nospace as i32,
        AlarmType::Corrupt => pb::AlarmType::Corrupt as i32,
    }
}

type Chunks = Pin<Box<dyn Stream<Item = Result<pb::SnapshotResponse, Status>> + Send>>;

#[tonic::async_trait]
impl Maintenance for MaintenanceService {
    async fn alarm(
        &self,
        call: Call<pb::AlarmRequest>,
    ) -> Result<Answer<pb::AlarmResponse>, Status> {
        use pb::alarm_request::AlarmAction as Action;
        let body = call.get_ref();
        let action = match Action::try_from(body.action).unwrap_or(Action::Get) {
            Action::Get => AlarmAction::Get,
            Action::Activate => AlarmAction::Activate,
            Action::Deactivate => AlarmAction::Deactivate,
        };
        let request =
            AlarmRequest { action, member_id: body.member_id, alarm: alarm_type(body.alarm) };
        match self.maintenance(&call, MaintenanceRequest::Alarm(request)).await? {
            // etcd 3.4 answers Alarm, Defragment and MoveLeader without a header.
            Response::Alarm(r) => Ok(Answer::new(pb::AlarmResponse {
                header: None,
                alarms: r
                    .alarms
                    .into_iter()
                    .map(|a| pb::AlarmMember {
                        member_id: a.member_id,
                        alarm: alarm_number(a.alarm),
                    })
                    .collect(),
            })),
            other => Err(unexpected(other)),
        }
    }

    async fn status(
        &self,
        call: Call<pb::StatusRequest>,
    ) -> Result<Answer<pb::StatusResponse>, Status> {
        match self.maintenance(&call, MaintenanceRequest::Status).await? {
            Response::Status(s) => Ok(Answer::new(pb::StatusResponse {
                header: header(s.header),
                version: s.version,
                db_size: s.db_size,
                leader: s.leader,
                raft_index: s.raft_index,
                raft_term: s.raft_term,
                raft_applied_index: s.raft_applied_index,
                errors: s.errors,
                db_size_in_use: s.db_size_in_use,
                is_learner: s.is_learner,
            })),
            other => Err(unexpected(other)),
        }
    }

    async fn defragment(
        &self,
        call: Call<pb::DefragmentRequest>,
    ) -> Result<Answer<pb::DefragmentResponse>, Status> {
        let started = tokio::time::Instant::now();
        let answer = self.maintenance(&call, MaintenanceRequest::Defragment).await?;
        let took = started.elapsed();
        self.handle.metrics().disk.backend_defrag.observe(took.as_secs_f64());
        match answer {
            Response::Empty(_) => Ok(Answer::new(pb::DefragmentResponse { header: None })),
            other => Err(unexpected(other)),
        }
    }

    async fn hash(&self, call: Call<pb::HashRequest>) -> Result<Answer<pb::HashResponse>, Status> {
        match self.maintenance(&call, MaintenanceRequest::Hash).await? {
            Response::Hash(h) => {
                Ok(Answer::new(pb::HashResponse { header: header(h.header), hash: h.hash }))
            }
            other => Err(unexpected(other)),
        }
    }

    async fn hash_kv(
        &self,
        call: Call<pb::HashKvRequest>,
    ) -> Result<Answer<pb::HashKvResponse>, Status> {
        let revision = call.get_ref().revision;
        match self.maintenance(&call, MaintenanceRequest::HashKv { revision }).await? {
            Response::HashKv(h) => Ok(Answer::new(pb::HashKvResponse {
                header: header(h.header),
                hash: h.hash,
                compact_revision: h.compact_revision,
            })),
            other => Err(unexpected(other)),
        }
    }

    type SnapshotStream = Chunks;

    async fn snapshot(
        &self,
        call: Call<pb::SnapshotRequest>,
    ) -> Result<Answer<Self::SnapshotStream>, Status> {
        let started = tokio::time::Instant::now();
        let blob = match self.maintenance(&call, MaintenanceRequest::Snapshot).await? {
            Response::Snapshot(s) => s.blob,
            other => return Err(unexpected(other)),
        };
        let took = started.elapsed();
        self.handle.metrics().disk.backend_snapshot.observe(took.as_secs_f64());
        let total = blob.len();
        let chunks: Vec<Result<pb::SnapshotResponse, Status>> = blob
            .chunks(SNAPSHOT_CHUNK)
            .scan(0usize, |sent, chunk| {
                *sent += chunk.len();
                Some(Ok(pb::SnapshotResponse {
                    header: None,
                    remaining_bytes: (total - *sent) as u64,
                    blob: chunk.to_vec(),
                }))
            })
            .collect();
        Ok(Answer::new(Box::pin(tokio_stream::iter(chunks))))
    }

    async fn move_leader(
        &self,
        call: Call<pb::MoveLeaderRequest>,
    ) -> Result<Answer<pb::MoveLeaderResponse>, Status> {
        let target = call.get_ref().target_id;
        let request = Request::Cluster(ClusterRequest::MoveLeader { target });
        match ask(&self.handle, &call, request).await? {
            Response::Cluster(_) => Ok(Answer::new(pb::MoveLeaderResponse { header: None })),
            other => Err(unexpected(other)),
        }
    }
}
