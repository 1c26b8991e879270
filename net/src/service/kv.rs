//! The KV service: Range, Put, DeleteRange, Txn, Compact.

use super::{ask, status, unexpected};
use crate::convert::kv as convert;
use crate::handle::Handle;
use crate::proto::etcdserverpb as pb;
use crate::proto::etcdserverpb::kv_server::{Kv, KvServer};
use stead_core::api::{CompactionRequest, Error, KvError, Request, Response};
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
        let request = Request::Range(convert::range_request(call.get_ref().clone()));
        match ask(&self.handle, &call, request).await? {
            Response::Range(r) => Ok(Answer::new(convert::range_response(r))),
            other => Err(unexpected(other)),
        }
    }

    async fn put(&self, call: Call<pb::PutRequest>) -> Result<Answer<pb::PutResponse>, Status> {
        let request = Request::Put(convert::put_request(call.get_ref().clone()));
        match ask(&self.handle, &call, request).await? {
            Response::Put(r) => Ok(Answer::new(convert::put_response(r))),
            other => Err(unexpected(other)),
        }
    }

    async fn delete_range(
        &self,
        call: Call<pb::DeleteRangeRequest>,
    ) -> Result<Answer<pb::DeleteRangeResponse>, Status> {
        let request = Request::DeleteRange(convert::delete_request(call.get_ref().clone()));
        match ask(&self.handle, &call, request).await? {
            Response::DeleteRange(r) => Ok(Answer::new(convert::delete_response(r))),
            other => Err(unexpected(other)),
        }
    }

    async fn txn(&self, call: Call<pb::TxnRequest>) -> Result<Answer<pb::TxnResponse>, Status> {
        let txn = convert::txn_request(call.get_ref().clone())
            .ok_or_else(|| status(Error::Kv(KvError::KeyNotFound)))?;
        match ask(&self.handle, &call, Request::Txn(txn)).await? {
            Response::Txn(r) => Ok(Answer::new(convert::txn_response(r))),
            other => Err(unexpected(other)),
        }
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
