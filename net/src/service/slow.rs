//! etcd's warning for expensive requests: a KV request that took longer than
//! [`SLOW_REQUEST`] is logged with the request and the size of its answer, as etcd logs it
//! ("apply request took too long"; prefix `read-only range ` for reads), and counted in
//! `etcd_server_slow_apply_total`.
//!
//! etcd times the apply of a write and the whole of a read. stead applies in memory, where a
//! request is never the slow part, so it times the whole request as the member served it:
//! the wait for consensus and the fsync included. A disk or network too slow for the load
//! shows here as it does in etcd's warning.

use crate::handle::Handle;
use crate::log::GoDuration;
use crate::proto::etcdserverpb as pb;
use prost::Message as _;
use std::fmt::Write as _;
use std::time::Duration;
use tokio::time::Instant;

/// etcd's `--experimental-warning-apply-duration` default.
pub const SLOW_REQUEST: Duration = Duration::from_millis(100);

/// A request's text as etcd logs it: keys as strings, values by their size only.
pub trait Loggable {
    /// The text.
    fn describe(&self) -> String;
}

fn text(bytes: &[u8]) -> String {
    format!("{:?}", String::from_utf8_lossy(bytes))
}

impl Loggable for pb::RangeRequest {
    fn describe(&self) -> String {
        let mut out = format!("key:{}", text(&self.key));
        if !self.range_end.is_empty() {
            let _ = write!(out, " range_end:{}", text(&self.range_end));
        }
        for (name, value) in [("limit", self.limit), ("revision", self.revision)] {
            if value != 0 {
                let _ = write!(out, " {name}:{value}");
            }
        }
        for (name, set) in [
            ("serializable", self.serializable),
            ("keys_only", self.keys_only),
            ("count_only", self.count_only),
        ] {
            if set {
                let _ = write!(out, " {name}:true");
            }
        }
        out
    }
}

impl Loggable for pb::PutRequest {
    fn describe(&self) -> String {
        let mut out = format!("key:{} value_size:{}", text(&self.key), self.value.len());
        if self.lease != 0 {
            let _ = write!(out, " lease:{}", self.lease);
        }
        out
    }
}

impl Loggable for pb::DeleteRangeRequest {
    fn describe(&self) -> String {
        let mut out = format!("key:{}", text(&self.key));
        if !self.range_end.is_empty() {
            let _ = write!(out, " range_end:{}", text(&self.range_end));
        }
        out
    }
}

impl Loggable for pb::TxnRequest {
    fn describe(&self) -> String {
        let ops = |ops: &[pb::RequestOp]| {
            ops.iter()
                .filter_map(|op| op.request.as_ref())
                .map(|op| match op {
                    pb::request_op::Request::RequestRange(r) => {
                        format!("request_range:<{}>", r.describe())
                    }
                    pb::request_op::Request::RequestPut(p) => {
                        format!("request_put:<{}>", p.describe())
                    }
                    pb::request_op::Request::RequestDeleteRange(d) => {
                        format!("request_delete_range:<{}>", d.describe())
                    }
                    pb::request_op::Request::RequestTxn(t) => {
                        format!("request_txn:<{}>", t.describe())
                    }
                })
                .collect::<Vec<_>>()
                .join(" ")
        };
        let compares: Vec<String> =
            self.compare.iter().map(|c| format!("compare:<key:{}>", text(&c.key))).collect();
        format!(
            "{} success:<{}> failure:<{}>",
            compares.join(" "),
            ops(&self.success),
            ops(&self.failure)
        )
        .trim_start()
        .to_string()
    }
}

/// What etcd logs of an answer.
pub trait Answered {
    /// The text.
    fn describe(&self) -> String;
}

impl Answered for pb::RangeResponse {
    fn describe(&self) -> String {
        format!("range_response_count:{} size:{}", self.kvs.len(), self.encoded_len())
    }
}

macro_rules! answered_by_size {
    ($($kind:ty),*) => {
        $(impl Answered for $kind {
            fn describe(&self) -> String {
                format!("size:{}", self.encoded_len())
            }
        })*
    };
}
answered_by_size!(pb::PutResponse, pb::DeleteRangeResponse, pb::TxnResponse);

/// Logs and counts the request if it took longer than [`SLOW_REQUEST`] since `started`.
pub fn check<Q: Loggable, A: Answered>(
    handle: &Handle,
    started: Instant,
    read_only: bool,
    request: &Q,
    answer: &Result<tonic::Response<A>, tonic::Status>,
) {
    let took = started.elapsed();
    if took <= SLOW_REQUEST {
        return;
    }
    handle.metrics().slow_request();
    let prefix = if read_only { "read-only range " } else { "" };
    let (response, error) = match answer {
        Ok(answer) => (answer.get_ref().describe(), String::new()),
        Err(status) => (String::new(), status.message().to_string()),
    };
    tracing::warn!(
        "took" = %GoDuration(took),
        "expected-duration" = %GoDuration(SLOW_REQUEST),
        "prefix" = prefix,
        "request" = request.describe(),
        "response" = response,
        "error" = error,
        "apply request took too long"
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_read_as_etcd_logs_them() {
        let range = pb::RangeRequest {
            key: b"a".to_vec(),
            range_end: b"b".to_vec(),
            limit: 10,
            serializable: true,
            ..Default::default()
        };
        assert_eq!(range.describe(), "key:\"a\" range_end:\"b\" limit:10 serializable:true");
        let put = pb::PutRequest { key: b"k".to_vec(), value: vec![0; 300], ..Default::default() };
        assert_eq!(put.describe(), "key:\"k\" value_size:300");
        let txn = pb::TxnRequest {
            compare: vec![pb::Compare { key: b"k".to_vec(), ..Default::default() }],
            success: vec![pb::RequestOp {
                request: Some(pb::request_op::Request::RequestPut(put)),
            }],
            failure: vec![],
        };
        assert_eq!(
            txn.describe(),
            "compare:<key:\"k\"> success:<request_put:<key:\"k\" value_size:300>> failure:<>"
        );
        let answer = pb::RangeResponse { kvs: vec![Default::default()], ..Default::default() };
        assert!(answer.describe().starts_with("range_response_count:1 size:"));
    }
}
