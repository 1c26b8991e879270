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
        let request = Request::Range(convert::range_request(call.get_ref().clone()));
        self.serve(&call, request, true, |answer| match answer {
            Response::Range(r) => Ok(convert::range_response(r)),
            other => Err(unexpected(other)),
        })
        .await
    }

    async fn put(&self, call: Call<pb::PutRequest>) -> Result<Answer<pb::PutResponse>, Status> {
        let request = Request::Put(convert::put_request(call.get_ref().clone()));
        self.serve(&call, request, false, |answer| match answer {
            Response::Put(r) => Ok(convert::put_response(r)),
            other => Err(unexpected(other)),
        })
        .await
    }

    async fn delete_range(
        &self,
        call: Call<pb::DeleteRangeRequest>,
    ) -> Result<Answer<pb::DeleteRangeResponse>, Status> {
        let request = Request::DeleteRange(convert::delete_request(call.get_ref().clone()));
        self.serve(&call, request, false, |answer| match answer {
            Response::DeleteRange(r) => Ok(convert::delete_response(r)),
            other => Err(unexpected(other)),
        })
        .await
    }

    async fn txn(&self, call: Call<pb::TxnRequest>) -> Result<Answer<pb::TxnResponse>, Status> {
        let txn = convert::txn_request(call.get_ref().clone())
            .ok_or_else(|| status(Error::Kv(KvError::KeyNotFound)))?;
        let read_only = stead_core::mvcc::is_read_only(&txn);
        self.serve(&call, Request::Txn(txn), read_only, |answer| match answer {
            Response::Txn(r) => Ok(convert::txn_response(r)),
            other => Err(unexpected(other)),
        })
        .await
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

impl KvService {
    /// Asks the member `request` for `call`, converts the answer with `convert` (which refuses
    /// an answer of the wrong kind), and warns of the call if it was slow.
    async fn serve<Q: slow::Loggable, A: slow::Answered>(
        &self,
        call: &Call<Q>,
        request: Request,
        read_only: bool,
        convert: impl FnOnce(Response) -> Result<A, Status>,
    ) -> Result<Answer<A>, Status> {
        let started = Instant::now();
        let answer = match ask(&self.handle, call, request).await {
            Ok(response) => convert(response).map(Answer::new),
            Err(error) => Err(error),
        };
        slow::check(&self.handle, started, read_only, call.get_ref(), &answer);
        answer
    }
}
