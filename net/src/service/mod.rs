//! etcd's v3 gRPC services over the member's [`Handle`]: each call converts the protobuf
//! request, asks the member, and converts the answer or the error (etcd's code and text).

/// The generated server type `$server` serving `$service`: madsim's generated servers also
/// name their interceptor.
#[cfg(not(madsim))]
macro_rules! grpc_server {
    ($server:ident, $service:ty) => {
        $server<$service>
    };
}
#[cfg(madsim)]
macro_rules! grpc_server {
    ($server:ident, $service:ty) => {
        $server<$service, tonic::codegen::IdentityInterceptor>
    };
}
pub(crate) use grpc_server;

pub mod auth;
pub mod cluster;
pub mod election;
pub mod kv;
pub mod lease;
pub mod lock;
pub mod maintenance;
pub mod watch;

use crate::handle::Handle;
use stead_core::api::{Error, Request, Response};

/// An error as the gRPC status etcd sends.
pub fn status(error: Error) -> tonic::Status {
    tonic::Status::new(tonic::Code::from_i32(error.code() as i32), error.message())
}

/// The auth token a client sent (etcd's clients put it in the `token` metadata).
pub fn token<T>(request: &tonic::Request<T>) -> Option<String> {
    let metadata = request.metadata();
    let value = metadata.get("token").or_else(|| metadata.get("authorization"))?;
    value.to_str().ok().map(str::to_owned)
}

/// Sends a request with the caller's token and waits for the member's answer.
pub async fn ask<T>(
    handle: &Handle,
    request: &tonic::Request<T>,
    ask: Request,
) -> Result<Response, tonic::Status> {
    handle.call(ask, token(request)).await.map_err(status)
}

/// An answer of an unexpected kind: a bug in the member, reported as etcd reports internals.
pub fn unexpected(response: Response) -> tonic::Status {
    tonic::Status::internal(format!("unexpected answer {response:?}"))
}
