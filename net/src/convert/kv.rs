//! KV messages between protobuf (`etcdserverpb`, `mvccpb`) and the core's types.

use crate::proto::etcdserverpb as pb;
use crate::proto::mvccpb;
use stead_core::api as core;

/// The core's header as etcd's.
pub fn header(header: core::ResponseHeader) -> Option<pb::ResponseHeader> {
    Some(pb::ResponseHeader {
        cluster_id: header.cluster_id,
        member_id: header.member_id,
        revision: header.revision,
        raft_term: header.raft_term,
    })
}

/// A key-value as etcd's.
pub fn key_value(kv: core::KeyValue) -> mvccpb::KeyValue {
    mvccpb::KeyValue {
        key: kv.key,
        create_revision: kv.create_revision,
        mod_revision: kv.mod_revision,
        version: kv.version,
        value: kv.value,
        lease: kv.lease,
    }
}

/// An event as etcd's.
pub fn event(event: core::Event) -> mvccpb::Event {
    let kind = match event.kind {
        core::EventKind::Put => mvccpb::event::EventType::Put,
        core::EventKind::Delete => mvccpb::event::EventType::Delete,
    };
    mvccpb::Event {
        r#type: kind as i32,
        kv: Some(key_value(event.kv)),
        prev_kv: event.prev_kv.map(key_value),
    }
}

/// A key-value from etcd's (what a client of stead or etcd receives).
pub fn key_value_from_pb(kv: mvccpb::KeyValue) -> core::KeyValue {
    core::KeyValue {
        key: kv.key,
        create_revision: kv.create_revision,
        mod_revision: kv.mod_revision,
        version: kv.version,
        value: kv.value,
        lease: kv.lease,
    }
}

/// An event from etcd's (what a watcher of stead or etcd receives).
pub fn event_from_pb(event: mvccpb::Event) -> core::Event {
    let kind = if event.r#type == mvccpb::event::EventType::Delete as i32 {
        core::EventKind::Delete
    } else {
        core::EventKind::Put
    };
    core::Event {
        kind,
        kv: event.kv.map(key_value_from_pb).unwrap_or_default(),
        prev_kv: event.prev_kv.map(key_value_from_pb),
    }
}

/// A range request from etcd's (unknown enum values read as the default, as Go's do).
pub fn range_request(r: pb::RangeRequest) -> core::RangeRequest {
    use pb::range_request::{SortOrder, SortTarget};
    let sort_order = match SortOrder::try_from(r.sort_order).unwrap_or(SortOrder::None) {
        SortOrder::None => core::SortOrder::None,
        SortOrder::Ascend => core::SortOrder::Ascend,
        SortOrder::Descend => core::SortOrder::Descend,
    };
    let sort_target = match SortTarget::try_from(r.sort_target).unwrap_or(SortTarget::Key) {
        SortTarget::Key => core::SortTarget::Key,
        SortTarget::Version => core::SortTarget::Version,
        SortTarget::Create => core::SortTarget::Create,
        SortTarget::Mod => core::SortTarget::Mod,
        SortTarget::Value => core::SortTarget::Value,
    };
    core::RangeRequest {
        key: r.key,
        range_end: r.range_end,
        limit: r.limit,
        revision: r.revision,
        sort_order,
        sort_target,
        serializable: r.serializable,
        keys_only: r.keys_only,
        count_only: r.count_only,
        min_mod_revision: r.min_mod_revision,
        max_mod_revision: r.max_mod_revision,
        min_create_revision: r.min_create_revision,
        max_create_revision: r.max_create_revision,
    }
}

/// A range answer as etcd's.
pub fn range_response(r: core::RangeResponse) -> pb::RangeResponse {
    pb::RangeResponse {
        header: header(r.header),
        kvs: r.kvs.into_iter().map(key_value).collect(),
        more: r.more,
        count: r.count,
    }
}

/// A put from etcd's.
pub fn put_request(r: pb::PutRequest) -> core::PutRequest {
    core::PutRequest {
        key: r.key,
        value: r.value,
        lease: r.lease,
        prev_kv: r.prev_kv,
        ignore_value: r.ignore_value,
        ignore_lease: r.ignore_lease,
    }
}

/// A put answer as etcd's.
pub fn put_response(r: core::PutResponse) -> pb::PutResponse {
    pb::PutResponse { header: header(r.header), prev_kv: r.prev_kv.map(key_value) }
}

/// A deletion from etcd's.
pub fn delete_request(r: pb::DeleteRangeRequest) -> core::DeleteRangeRequest {
    core::DeleteRangeRequest { key: r.key, range_end: r.range_end, prev_kv: r.prev_kv }
}

/// A deletion answer as etcd's.
pub fn delete_response(r: core::DeleteRangeResponse) -> pb::DeleteRangeResponse {
    pb::DeleteRangeResponse {
        header: header(r.header),
        deleted: r.deleted,
        prev_kvs: r.prev_kvs.into_iter().map(key_value).collect(),
    }
}

/// A compare from etcd's: the target enum decides, and the operand is read from the union
/// only if it is of that kind (otherwise zero or empty), as etcd's getters do.
pub fn compare(c: pb::Compare) -> core::Compare {
    use pb::compare::{CompareResult, CompareTarget, TargetUnion};
    let result = match CompareResult::try_from(c.result).unwrap_or(CompareResult::Equal) {
        CompareResult::Equal => core::CompareResult::Equal,
        CompareResult::Greater => core::CompareResult::Greater,
        CompareResult::Less => core::CompareResult::Less,
        CompareResult::NotEqual => core::CompareResult::NotEqual,
    };
    let union = c.target_union;
    let target = match CompareTarget::try_from(c.target).unwrap_or(CompareTarget::Version) {
        CompareTarget::Version => core::CompareTarget::Version(match union {
            Some(TargetUnion::Version(v)) => v,
            _ => 0,
        }),
        CompareTarget::Create => core::CompareTarget::Create(match union {
            Some(TargetUnion::CreateRevision(v)) => v,
            _ => 0,
        }),
        CompareTarget::Mod => core::CompareTarget::Mod(match union {
            Some(TargetUnion::ModRevision(v)) => v,
            _ => 0,
        }),
        CompareTarget::Value => core::CompareTarget::Value(match union {
            Some(TargetUnion::Value(v)) => v,
            _ => Vec::new(),
        }),
        CompareTarget::Lease => core::CompareTarget::Lease(match union {
            Some(TargetUnion::Lease(v)) => v,
            _ => 0,
        }),
    };
    core::Compare { result, target, key: c.key, range_end: c.range_end }
}

/// One transaction operation from etcd's; `None` for an empty one.
fn request_op(op: pb::RequestOp) -> Option<core::RequestOp> {
    use pb::request_op::Request;
    Some(match op.request? {
        Request::RequestRange(r) => core::RequestOp::Range(range_request(r)),
        Request::RequestPut(r) => core::RequestOp::Put(put_request(r)),
        Request::RequestDeleteRange(r) => core::RequestOp::DeleteRange(delete_request(r)),
        Request::RequestTxn(r) => core::RequestOp::Txn(txn_request(r)?),
    })
}

/// A transaction from etcd's; `None` if an operation is empty (etcd answers `key not found`).
pub fn txn_request(r: pb::TxnRequest) -> Option<core::TxnRequest> {
    Some(core::TxnRequest {
        compare: r.compare.into_iter().map(compare).collect(),
        success: r.success.into_iter().map(request_op).collect::<Option<_>>()?,
        failure: r.failure.into_iter().map(request_op).collect::<Option<_>>()?,
    })
}

fn response_op(op: core::ResponseOp) -> pb::ResponseOp {
    use pb::response_op::Response;
    let response = match op {
        core::ResponseOp::Range(r) => Response::ResponseRange(range_response(r)),
        core::ResponseOp::Put(r) => Response::ResponsePut(put_response(r)),
        core::ResponseOp::DeleteRange(r) => Response::ResponseDeleteRange(delete_response(r)),
        core::ResponseOp::Txn(r) => Response::ResponseTxn(txn_response(r)),
    };
    pb::ResponseOp { response: Some(response) }
}

/// A transaction answer as etcd's.
pub fn txn_response(r: core::TxnResponse) -> pb::TxnResponse {
    pb::TxnResponse {
        header: header(r.header),
        succeeded: r.succeeded,
        responses: r.responses.into_iter().map(response_op).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_compare_reads_the_operand_its_target_names() {
        use pb::compare::{CompareTarget, TargetUnion};
        let mismatched = pb::Compare {
            target: CompareTarget::Version as i32,
            target_union: Some(TargetUnion::Value(b"x".to_vec())),
            key: b"k".to_vec(),
            ..Default::default()
        };
        assert_eq!(compare(mismatched).target, core::CompareTarget::Version(0));
        let lease = pb::Compare {
            target: CompareTarget::Lease as i32,
            target_union: Some(TargetUnion::Lease(7)),
            ..Default::default()
        };
        assert_eq!(compare(lease).target, core::CompareTarget::Lease(7));
    }
}
