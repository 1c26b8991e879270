//! The HTTP endpoints `/health`, `/version` and `/metrics` (Prometheus text with etcd's metric
//! names), as etcd serves them: on the client port next to gRPC ([`routes`], over TLS too), and
//! on `--listen-metrics-urls` through a deliberately small HTTP/1.1 server ([`serve`]: one GET
//! per connection, answered and closed).

use crate::handle::Handle;
use std::time::Duration;
use stead_core::api::{MaintenanceRequest, RangeRequest, Request, Response, StatusResponse};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// The cluster version `/version` reports (etcd's `etcdcluster`).
const CLUSTER_VERSION: &str = "3.4.0";

/// Serves the endpoints on `listener` until the task is dropped.
pub async fn serve(listener: TcpListener, handle: Handle) {
    loop {
        let Ok((stream, _)) = listener.accept().await else { continue };
        let handle = handle.clone();
        tokio::spawn(async move {
            let _ = answer(stream, handle).await;
        });
    }
}

async fn answer(mut stream: TcpStream, handle: Handle) -> std::io::Result<()> {
    let mut buffer = vec![0u8; 4096];
    let mut read = 0;
    while !buffer[..read].windows(4).any(|w| w == b"\r\n\r\n") && read < buffer.len() {
        let n = stream.read(&mut buffer[read..]).await?;
        if n == 0 {
            break;
        }
        read += n;
    }
    let request = String::from_utf8_lossy(&buffer[..read]);
    let mut words = request.split_whitespace();
    let (method, target) = (words.next().unwrap_or(""), words.next().unwrap_or(""));
    let path = target.split('?').next().unwrap_or("");
    let (code, kind, body) = match method {
        "GET" => respond(&handle, path).await,
        _ => not_found(),
    };
    let reason = match code {
        200 => "OK",
        503 => "Service Unavailable",
        _ => "Not Found",
    };
    let head = format!(
        "HTTP/1.1 {code} {reason}\r\nContent-Type: {kind}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await?;
    stream.write_all(body.as_bytes()).await?;
    stream.shutdown().await
}

/// The answer to `GET path`: status code, content type and body.
pub async fn respond(handle: &Handle, path: &str) -> (u16, &'static str, String) {
    match path {
        "/health" => {
            let healthy = healthy(handle).await;
            let body = format!("{{\"health\":\"{healthy}\"}}");
            (if healthy { 200 } else { 503 }, "application/json", body)
        }
        "/version" => {
            let body = format!(
                "{{\"etcdserver\":\"{}\",\"etcdcluster\":\"{CLUSTER_VERSION}\"}}",
                stead_core::node::ETCD_VERSION
            );
            (200, "application/json", body)
        }
        "/metrics" => (200, "text/plain; version=0.0.4", metrics(handle).await),
        _ => not_found(),
    }
}

/// Go's answer to a path it does not serve.
fn not_found() -> (u16, &'static str, String) {
    (404, "text/plain; charset=utf-8", "404 page not found\n".to_string())
}

/// The endpoints as routes of the client port's server (which serves gRPC beside them).
/// A request for any other path gets gRPC's `Unimplemented` if it is a gRPC call and Go's 404
/// otherwise.
pub fn routes(grpc: axum::Router, handle: Handle) -> axum::Router {
    use axum::http::{header, StatusCode};
    use axum::response::IntoResponse;
    let answer = |handle: Handle, path: &'static str| async move {
        let (code, kind, body) = respond(&handle, path).await;
        let code = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        (code, [(header::CONTENT_TYPE, kind)], body).into_response()
    };
    let mut router = grpc;
    for path in ["/health", "/version", "/metrics"] {
        let handle = handle.clone();
        router = router.route(path, axum::routing::get(move || answer(handle.clone(), path)));
    }
    router.fallback(|request: axum::extract::Request| async move {
        let grpc = request
            .headers()
            .get(header::CONTENT_TYPE)
            .is_some_and(|kind| kind.as_bytes().starts_with(b"application/grpc"));
        if grpc {
            tonic::Status::unimplemented("").into_http::<axum::body::Body>().into_response()
        } else {
            let (_, kind, body) = not_found();
            (StatusCode::NOT_FOUND, [(header::CONTENT_TYPE, kind)], body).into_response()
        }
    })
}

async fn status(handle: &Handle) -> Option<StatusResponse> {
    match handle.call(Request::Maintenance(MaintenanceRequest::Status), None).await {
        Ok(Response::Status(status)) => Some(status),
        _ => None,
    }
}

/// etcd's health: no alarm, a leader, and a linearizable read within a second.
async fn healthy(handle: &Handle) -> bool {
    let Some(status) = status(handle).await else { return false };
    if !status.errors.is_empty() || status.leader == 0 {
        return false;
    }
    let probe = Request::Range(RangeRequest { key: b"health".to_vec(), ..Default::default() });
    let read = tokio::time::timeout(Duration::from_secs(1), handle.call(probe, None)).await;
    // Under auth a read needs a user; being refused still proves the member serves.
    matches!(read, Ok(Ok(_)) | Ok(Err(stead_core::api::Error::Auth(_))))
}

async fn metrics(handle: &Handle) -> String {
    let Some(status) = status(handle).await else { return String::new() };
    let gauge = |name: &str, help: &str, kind: &str, value: String| {
        format!("# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}\n")
    };
    [
        gauge("etcd_server_has_leader", "Whether or not a leader exists. 1 is existence, 0 is not.", "gauge", u64::from(status.leader != 0).to_string()),
        gauge("etcd_server_is_leader", "Whether or not this member is a leader. 1 if is, 0 otherwise.", "gauge", u64::from(status.leader == status.header.member_id).to_string()),
        gauge("etcd_server_is_learner", "Whether or not this member is a learner. 1 if is, 0 otherwise.", "gauge", u64::from(status.is_learner).to_string()),
        gauge("etcd_server_proposals_committed_total", "The total number of consensus proposals committed.", "gauge", status.raft_index.to_string()),
        gauge("etcd_server_proposals_applied_total", "The total number of consensus proposals applied.", "gauge", status.raft_applied_index.to_string()),
        gauge("etcd_mvcc_db_total_size_in_bytes", "Total size of the underlying database physically allocated in bytes.", "gauge", status.db_size.to_string()),
        gauge("etcd_mvcc_db_total_size_in_use_in_bytes", "Total size of the underlying database logically in use in bytes.", "gauge", status.db_size_in_use.to_string()),
        gauge("etcd_debugging_mvcc_current_revision", "The current revision of store.", "gauge", status.header.revision.to_string()),
        format!(
            "# HELP etcd_server_id Server or member ID in hexadecimal format. 1 for 'server_id' \
             label with current ID.\n# TYPE etcd_server_id gauge\netcd_server_id{{server_id=\"{:x}\"}} 1\n",
            status.header.member_id
        ),
    ]
    .concat()
}
