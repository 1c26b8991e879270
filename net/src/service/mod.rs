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
pub mod slow;
pub mod watch;

use crate::handle::Handle;
use stead_core::api::{Credential, Error, Request, Response};

/// An error as the gRPC status etcd sends.
pub fn status(error: Error) -> tonic::Status {
    tonic::Status::new(tonic::Code::from_i32(error.code() as i32), error.message())
}

/// An error of a request the Lock and Election services made for their caller, as etcd's
/// in-process client hands it back: its text, with gRPC's `Unknown` code.
pub fn passed_on(error: Error) -> tonic::Status {
    tonic::Status::unknown(error.message())
}

/// Who the caller is, as etcd decides it: the token it sent (etcd's clients put it in the
/// `token` metadata) if any, otherwise the Common Name of the verified client certificate its
/// connection was made with.
pub fn credential<T>(request: &tonic::Request<T>) -> Option<Credential> {
    let metadata = request.metadata();
    let token = metadata.get("token").or_else(|| metadata.get("authorization"));
    if let Some(token) = token.and_then(|value| value.to_str().ok()) {
        return Some(Credential::Token(token.to_owned()));
    }
    certificate_name(request).map(Credential::CommonName)
}

/// The Common Name of the client certificate the connection was verified with.
#[cfg(not(madsim))]
fn certificate_name<T>(request: &tonic::Request<T>) -> Option<String> {
    let connection = request.extensions().get::<crate::listen::Connection>()?;
    connection.common_name.as_deref().map(str::to_owned)
}

/// The simulated network has no TLS.
#[cfg(madsim)]
fn certificate_name<T>(_request: &tonic::Request<T>) -> Option<String> {
    None
}

/// Sends a request as its caller and waits for the member's answer.
pub async fn ask<T>(
    handle: &Handle,
    request: &tonic::Request<T>,
    ask: Request,
) -> Result<Response, tonic::Status> {
    handle.call(ask, credential(request)).await.map_err(status)
}

/// An answer of an unexpected kind: a bug in the member, reported as etcd reports internals.
pub fn unexpected(response: Response) -> tonic::Status {
    tonic::Status::internal(format!("unexpected answer {response:?}"))
}
