//! The KV service: Range, Put, DeleteRange, Txn, Compact.

use super::{ask, slow, status, unexpected};
use crate::convert::kv as convert;
use crate::handle::Handle;
use crate::proto::etcdserverpb as pb;
use crate::proto::etcdserverpb::kv_server::{Kv, KvServer};
use stead_core::api::{CompactionRequest, Error, KvError, Request, Response};
use tokio::time::Instant;
use tonic::{Request as Call, Response as Answer, Status};

/// The KV service of one member.
pub struct KvService {
    handle: Handle,
}

impl KvService {
    /// The service for the member behind `handle`.
    pub fn server(handle: Handle) -> crate::service::grpc_server!(KvServer, KvService) {
        KvServer::new(KvService { handle })
    }
}

#[tonic::async_trait]
impl Kv for KvService {
    async fn range(
        &self,
        call: Call<pb::RangeRequest>,
    ) -> Result<Answer<pb::RangeResponse>, Status> {
        let started = Instant::now();
        let request = Request::Range(convert::range_request(call.get_ref().clone()));
        let answer = match ask(&self.handle, &call, request).await {
            Ok(Response::Range(r)) => Ok(Answer::new(convert::range_response(r))),
            Ok(other) => Err(unexpected(other)),
            Err(error) => Err(error),
        };
        slow::check(&self.handle, started, true, call.get_ref(), &answer);
        answer
    }

    async fn put(&self, call: Call<pb::PutRequest>) -> Result<Answer<pb::PutResponse>, Status> {
        let started = Instant::now();
        let request = Request::Put(convert::put_request(call.get_ref().clone()));
        let answer = match ask(&self.handle, &call, request).await {
            Ok(Response::Put(r)) => Ok(Answer::new(convert::put_response(r))),
            Ok(other) => Err(unexpected(other)),
            Err(error) => Err(error),
        };
        slow::check(&self.handle, started, false, call.get_ref(), &answer);
        answer
    }

    async fn delete_range(
        &self,
        call: Call<pb::DeleteRangeRequest>,
    ) -> Result<Answer<pb::DeleteRangeResponse>, Status> {
        let started = Instant::now();
        let request = Request::DeleteRange(convert::delete_request(call.get_ref().clone()));
        let answer = match ask(&self.handle, &call, request).await {
            Ok(Response::DeleteRange(r)) => Ok(Answer::new(convert::delete_response(r))),
            Ok(other) => Err(unexpected(other)),
            Err(error) => Err(error),
        };
        slow::check(&self.handle, started, false, call.get_ref(), &answer);
        answer
    }

    async fn txn(&self, call: Call<pb::TxnRequest>) -> Result<Answer<pb::TxnResponse>, Status> {
        let started = Instant::now();
        let txn = convert::txn_request(call.get_ref().clone())
            .ok_or_else(|| status(Error::Kv(KvError::KeyNotFound)))?;
        let read_only = is_read_only(&txn);
        let answer = match ask(&self.handle, &call, Request::Txn(txn)).await {
            Ok(Response::Txn(r)) => Ok(Answer::new(convert::txn_response(r))),
            Ok(other) => Err(unexpected(other)),
            Err(error) => Err(error),
        };
        slow::check(&self.handle, started, read_only, call.get_ref(), &answer);
        answer
    }

    async fn compact(
        &self,
        call: Call<pb::CompactionRequest>,
    ) -> Result<Answer<pb::CompactionResponse>, Status> {
        let body = call.get_ref();
        let request = Request::Compact(CompactionRequest {
            revision: body.revision,
            physical: body.physical,
        });
        match ask(&self.handle, &call, request).await? {
            Response::Compact(r) => {
                Ok(Answer::new(pb::CompactionResponse { header: convert::header(r.header) }))
            }
            other => Err(unexpected(other)),
        }
    }
}

/// Whether a transaction only reads (etcd's `isTxnReadonly`: every op of both branches is a
/// range, nested transactions included).
fn is_read_only(txn: &stead_core::api::TxnRequest) -> bool {
    use stead_core::api::RequestOp;
    fn reads(ops: &[RequestOp]) -> bool {
        ops.iter().all(|op| match op {
            RequestOp::Range(_) => true,
            RequestOp::Txn(inner) => reads(&inner.success) && reads(&inner.failure),
            _ => false,
        })
    }
    reads(&txn.success) && reads(&txn.failure)
}
