//! The Lock service (etcd's `v3lock`): a distributed mutex over the key space, as etcd's
//! `concurrency.Mutex` builds it. Lock creates `<name>/<lease id in hex>` attached to the
//! caller's lease (if it does not exist yet), then waits until every key under `<name>/` created
//! before it is deleted: the owner is the key with the lowest create revision. Unlock deletes
//! the key. Waiting uses a watch on the member, so a holder whose lease expires hands over.

use super::{credential, passed_on, unexpected};
use crate::convert::kv::header;
use crate::handle::Handle;
use crate::proto::v3lockpb::lock_server::{Lock, LockServer};
use crate::proto::v3lockpb::{LockRequest, LockResponse, UnlockRequest, UnlockResponse};
use stead_core::api::{
    Compare, CompareResult, CompareTarget, Credential, DeleteRangeRequest, Error, EventKind,
    PutRequest, RangeRequest, Request, RequestOp, Response, ResponseHeader, ResponseOp, SortOrder,
    SortTarget, TxnRequest, WatchCreateRequest,
};
use tonic::{Request as Call, Response as Answer, Status};

/// The Lock service of one member.
pub struct LockService {
    handle: Handle,
}

impl LockService {
    /// The service for the member behind `handle`.
    pub fn server(handle: Handle) -> crate::service::grpc_server!(LockServer, LockService) {
        LockServer::new(LockService { handle })
    }
}

/// The prefix under which a lock's or an election's keys live: `<name>/`.
pub fn name_prefix(name: &[u8]) -> Vec<u8> {
    let mut prefix = name.to_vec();
    prefix.push(b'/');
    prefix
}

/// The end of the prefix range of `prefix` (etcd's `GetPrefixRangeEnd`).
pub fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    vec![0]
}

/// Creates `key` with `value` on `lease` unless it exists; returns its create revision, the
/// header of the answer, and the value it already held if it existed.
pub async fn create_or_keep(
    handle: &Handle,
    credential: &Option<Credential>,
    key: &[u8],
    value: &[u8],
    lease: i64,
) -> Result<(i64, ResponseHeader, Option<Vec<u8>>), Error> {
    let absent = Compare {
        result: CompareResult::Equal,
        target: CompareTarget::Create(0),
        key: key.to_vec(),
        range_end: Vec::new(),
    };
    let put = PutRequest { key: key.to_vec(), value: value.to_vec(), lease, ..Default::default() };
    let get = RangeRequest { key: key.to_vec(), ..Default::default() };
    let txn = TxnRequest {
        compare: vec![absent],
        success: vec![RequestOp::Put(put), RequestOp::Range(get.clone())],
        failure: vec![RequestOp::Range(get)],
    };
    let Response::Txn(answer) = handle.call(Request::Txn(txn), credential.clone()).await? else {
        return Err(Error::Kv(stead_core::api::KvError::KeyNotFound));
    };
    let found = answer.responses.iter().find_map(|op| match op {
        ResponseOp::Range(range) => range.kvs.first().cloned(),
        _ => None,
    });
    let revision = found.as_ref().map_or(answer.header.revision, |kv| kv.create_revision);
    let existing = (!answer.succeeded).then(|| found.map(|kv| kv.value)).flatten();
    Ok((revision, answer.header, existing))
}

/// Waits until no key under `prefix` created before `revision` remains (etcd's
/// `waitDeletes`); returns the header of the last read.
pub async fn wait_for_predecessors(
    handle: &Handle,
    credential: &Option<Credential>,
    prefix: &[u8],
    revision: i64,
) -> Result<ResponseHeader, Error> {
    loop {
        let newest_older = RangeRequest {
            key: prefix.to_vec(),
            range_end: prefix_end(prefix),
            max_create_revision: revision - 1,
            sort_order: SortOrder::Descend,
            sort_target: SortTarget::Create,
            limit: 1,
            ..Default::default()
        };
        let Response::Range(range) =
            handle.call(Request::Range(newest_older), credential.clone()).await?
        else {
            return Err(Error::Kv(stead_core::api::KvError::KeyNotFound));
        };
        let Some(blocker) = range.kvs.first() else { return Ok(range.header) };
        wait_for_delete(handle, credential, &blocker.key, range.header.revision + 1).await?;
    }
}

/// Waits for `key` to be deleted at or after `from`.
async fn wait_for_delete(
    handle: &Handle,
    credential: &Option<Credential>,
    key: &[u8],
    from: i64,
) -> Result<(), Error> {
    let create =
        WatchCreateRequest { key: key.to_vec(), start_revision: from, ..Default::default() };
    let mut watch = handle.open_watch(credential.clone(), create)?;
    loop {
        match watch.next().await {
            Some(Ok(response)) if response.canceled => return Ok(()),
            Some(Ok(response)) => {
                if response.events.iter().any(|e| e.kind == EventKind::Delete) {
                    return Ok(());
                }
            }
            Some(Err(error)) => return Err(error),
            None => return Err(Error::Server(stead_core::api::ServerError::Stopped)),
        }
    }
}

#[tonic::async_trait]
impl Lock for LockService {
    async fn lock(&self, call: Call<LockRequest>) -> Result<Answer<LockResponse>, Status> {
        let credential = credential(&call);
        let body = call.into_inner();
        let prefix = name_prefix(&body.name);
        let mut key = prefix.clone();
        key.extend_from_slice(format!("{:x}", body.lease).as_bytes());
        let (revision, _, _) = create_or_keep(&self.handle, &credential, &key, b"", body.lease)
            .await
            .map_err(passed_on)?;
        let latest = wait_for_predecessors(&self.handle, &credential, &prefix, revision)
            .await
            .map_err(passed_on)?;
        Ok(Answer::new(LockResponse { header: header(latest), key }))
    }

    async fn unlock(&self, call: Call<UnlockRequest>) -> Result<Answer<UnlockResponse>, Status> {
        let delete = DeleteRangeRequest { key: call.get_ref().key.clone(), ..Default::default() };
        let request = Request::DeleteRange(delete);
        match self.handle.call(request, credential(&call)).await.map_err(passed_on)? {
            Response::DeleteRange(r) => {
                Ok(Answer::new(UnlockResponse { header: header(r.header) }))
            }
            other => Err(unexpected(other)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::prefix_end;

    #[test]
    fn prefix_ends_like_etcds() {
        assert_eq!(prefix_end(b"lock/"), b"lock0");
        assert_eq!(prefix_end(b"a\xff"), b"b");
        assert_eq!(prefix_end(b"\xff\xff"), [0]);
    }
}
