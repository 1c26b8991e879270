//! The HTTP side of the client port, next to gRPC (over TLS too): `/health`, `/version` and
//! `/metrics` (etcd's Prometheus metrics, [`crate::metrics`]), etcd's JSON gateway under `/v3/`
//! ([`crate::gateway`]), and etcd's access rules around them all: CORS headers (`--cors`), an
//! answer to every `OPTIONS`, and plaintext requests for hosts not in `--host-whitelist`
//! refused. `--listen-metrics-urls` serve `/metrics` and `/health` alone ([`metrics_routes`]).

use crate::gateway::reply::text;
use crate::handle::Handle;
use axum::extract::Request;
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use std::sync::Arc;
use std::time::Duration;
use stead_core::api::{MaintenanceRequest, RangeRequest, Request as Ask, Response as Answer};
use stead_core::api::{ServerError, StatusResponse};

/// The cluster version `/version` reports (etcd's `etcdcluster`).
const CLUSTER_VERSION: &str = "3.4.0";

/// How the client port's HTTP side behaves (etcd's flags).
#[derive(Clone, Debug)]
pub struct HttpOptions {
    /// `--enable-grpc-gateway`: serve the JSON gateway.
    pub gateway: bool,
    /// `--cors`: origins allowed to read answers (`*`: any).
    pub cors: Vec<String>,
    /// `--host-whitelist`: hosts plaintext requests may name (`*`: any).
    pub hosts: Vec<String>,
    /// `--max-request-bytes`.
    pub max_request_bytes: usize,
}

/// The client port's routes: `grpc` (the gRPC services) with the HTTP endpoints and, if
/// enabled, the gateway beside them. A request for any other path gets gRPC's `Unimplemented`
/// if it is a gRPC call and Go's 404 otherwise.
pub fn routes(grpc: axum::Router, handle: Handle, options: &HttpOptions) -> axum::Router {
    let mut router = endpoints(grpc.clone(), &handle, true);
    if options.gateway {
        router = crate::gateway::Gateway::new(grpc, options.max_request_bytes).routes(router);
    }
    let access = Arc::new(options.clone());
    router
        .fallback(|request: Request| async move {
            if is_grpc(&request) {
                tonic::Status::unimplemented("").into_http::<axum::body::Body>().into_response()
            } else {
                page_not_found()
            }
        })
        .layer(axum::middleware::from_fn(move |request: Request, next: axum::middleware::Next| {
            let access = access.clone();
            async move { guard(&access, request, next).await }
        }))
}

/// What `--listen-metrics-urls` serve: `/metrics` and `/health`, as etcd's metrics listener.
pub fn metrics_routes(handle: Handle) -> axum::Router {
    endpoints(axum::Router::new(), &handle, false).fallback(|| async { page_not_found() })
}

/// `router` with `/health`, `/metrics` and (`with_version`) `/version`.
fn endpoints(router: axum::Router, handle: &Handle, with_version: bool) -> axum::Router {
    let health = {
        let handle = handle.clone();
        move |request: Request| {
            let handle = handle.clone();
            let (method, query) =
                (request.method().clone(), request.uri().query().map(str::to_owned));
            async move { health(&handle, method, query.as_deref().unwrap_or_default()).await }
        }
    };
    let metrics = {
        let handle = handle.clone();
        move || {
            let handle = handle.clone();
            async move {
                let kind = "text/plain; version=0.0.4; charset=utf-8";
                ([(header::CONTENT_TYPE, kind)], metrics(&handle).await).into_response()
            }
        }
    };
    let mut router = router
        .route("/health", axum::routing::any(health))
        .route("/metrics", axum::routing::any(metrics));
    if with_version {
        router = router.route("/version", axum::routing::any(version));
    }
    router
}

fn is_grpc(request: &Request) -> bool {
    request
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|kind| kind.as_bytes().starts_with(b"application/grpc"))
}

/// etcd's access rules for HTTP requests (gRPC calls pass untouched, as etcd's connection
/// multiplexer hands them to its gRPC server directly).
async fn guard(access: &HttpOptions, request: Request, next: axum::middleware::Next) -> Response {
    if is_grpc(&request) {
        return next.run(request).await;
    }
    let secure = request.extensions().get::<crate::listen::Connection>().is_some_and(|c| c.tls);
    if !secure {
        let host = host_name(&request);
        if !allowed(&access.hosts, &host) {
            return text(StatusCode::MISDIRECTED_REQUEST, &refused_host(&host));
        }
    }
    let origin = if allowed(&access.cors, "*") {
        Some("*".to_string())
    } else {
        request
            .headers()
            .get(header::ORIGIN)
            .and_then(|o| o.to_str().ok())
            .filter(|o| allowed(&access.cors, o))
            .map(str::to_owned)
    };
    let mut response = if request.method() == Method::OPTIONS {
        StatusCode::OK.into_response()
    } else {
        next.run(request).await
    };
    if let Some(origin) = origin.and_then(|o| HeaderValue::from_str(&o).ok()) {
        let headers = response.headers_mut();
        headers.insert(
            "access-control-allow-methods",
            HeaderValue::from_static("POST, GET, OPTIONS, PUT, DELETE"),
        );
        headers.insert("access-control-allow-origin", origin);
        headers.insert(
            "access-control-allow-headers",
            HeaderValue::from_static("accept, content-type, authorization"),
        );
    }
    response
}

/// Whether `name` is in an etcd allow list (empty or `*`: everything is).
fn allowed(list: &[String], name: &str) -> bool {
    list.is_empty() || list.iter().any(|entry| entry == "*" || entry == name)
}

/// The host a request names, without its port (Go's `httputil.GetHostname`).
fn host_name(request: &Request) -> String {
    let host = request
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .or_else(|| request.uri().host())
        .unwrap_or_default();
    if let Some(rest) = host.strip_prefix('[') {
        return rest.split(']').next().unwrap_or_default().to_string();
    }
    host.rsplit_once(':').map_or(host, |(name, _)| name).to_string()
}

/// etcd's answer to a plaintext request for a host not in `--host-whitelist`.
fn refused_host(host: &str) -> String {
    format!(
        "\netcd received your request, but the Host header was unrecognized.\n\n\
         To fix this, choose one of the following options:\n\
         - Enable TLS, then any HTTPS request will be allowed.\n\
         - Add the hostname you want to use to the whitelist in settings.\n  \
         - e.g. etcd --host-whitelist {host:?}\n\n\
         This requirement has been added to help prevent \"DNS Rebinding\" attacks (CVE-2018-5702).\n"
    )
}

/// Go's answer to a path it does not serve.
fn page_not_found() -> Response {
    text(StatusCode::NOT_FOUND, "404 page not found")
}

/// etcd's answer to a method an endpoint does not take.
fn method_not_allowed() -> Response {
    let mut response = text(StatusCode::METHOD_NOT_ALLOWED, "Method Not Allowed");
    response.headers_mut().insert(header::ALLOW, HeaderValue::from_static("GET"));
    response
}

async fn version(request: Request) -> Response {
    if request.method() != Method::GET {
        return method_not_allowed();
    }
    let body = format!(
        "{{\"etcdserver\":\"{}\",\"etcdcluster\":\"{CLUSTER_VERSION}\"}}",
        stead_core::node::ETCD_VERSION
    );
    ([(header::CONTENT_TYPE, "application/json")], body).into_response()
}

/// `/health`, as etcd 3.4 answers it: GET only; `?exclude=NOSPACE` ignores that alarm.
async fn health(handle: &Handle, method: Method, query: &str) -> Response {
    if method != Method::GET {
        return method_not_allowed();
    }
    let excluded: Vec<&str> =
        query.split('&').filter_map(|pair| pair.strip_prefix("exclude=")).collect();
    let kind = [(header::CONTENT_TYPE, "text/plain; charset=utf-8")];
    let healthy = healthy(handle, &excluded).await;
    handle.metrics().health_checked(healthy);
    if healthy {
        (StatusCode::OK, kind, "{\"health\":\"true\"}").into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, kind, "{\"health\":\"false\"}\n").into_response()
    }
}

async fn status(handle: &Handle) -> Option<StatusResponse> {
    match handle.call(Ask::Maintenance(MaintenanceRequest::Status), None).await {
        Ok(Answer::Status(status)) => Some(status),
        _ => None,
    }
}

/// etcd's health: no alarm (but those `excluded`), a leader, and a linearizable read within a
/// second.
async fn healthy(handle: &Handle, excluded: &[&str]) -> bool {
    let Some(status) = status(handle).await else { return false };
    let no_leader = ServerError::NoLeader.message();
    let alarmed = status.errors.iter().filter(|error| *error != no_leader).any(|error| {
        // An alarm reads `memberID:<id> alarm:<NAME> `.
        let name = error.split("alarm:").nth(1).unwrap_or_default().trim();
        !excluded.contains(&name)
    });
    if alarmed || status.leader == 0 {
        return false;
    }
    let probe = Ask::Range(RangeRequest { key: b"health".to_vec(), ..Default::default() });
    let read = tokio::time::timeout(Duration::from_secs(1), handle.call(probe, None)).await;
    // Under auth a read needs a user; being refused still proves the member serves.
    matches!(read, Ok(Ok(_)) | Ok(Err(stead_core::api::Error::Auth(_))))
}

/// `/metrics`: the member's numbers copied in, then every metric in Prometheus's text format.
async fn metrics(handle: &Handle) -> String {
    if let Some(stats) = handle.stats().await {
        handle.metrics().update(&stats);
    }
    handle.metrics().render()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(host: &str) -> Request {
        Request::builder()
            .uri("/v3/kv/range")
            .header(header::HOST, host)
            .body(Default::default())
            .unwrap()
    }

    #[test]
    fn hosts_are_named_without_their_ports() {
        assert_eq!(host_name(&request("example.com:2379")), "example.com");
        assert_eq!(host_name(&request("127.0.0.1")), "127.0.0.1");
        assert_eq!(host_name(&request("[::1]:2379")), "::1");
    }

    #[test]
    fn allow_lists_read_as_etcds() {
        let list = |names: &[&str]| names.iter().map(|n| n.to_string()).collect::<Vec<_>>();
        assert!(allowed(&[], "anything"));
        assert!(allowed(&list(&["*"]), "anything"));
        assert!(allowed(&list(&["a.example", "b.example"]), "b.example"));
        assert!(!allowed(&list(&["a.example"]), "evil.example"));
    }
}
