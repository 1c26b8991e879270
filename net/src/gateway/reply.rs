//! The gateway's HTTP answers, as grpc-gateway 1.x writes them for etcd 3.4: the HTTP status
//! of each gRPC code, the error body of a call (`{"error":…,"message":…,"code":N}`), the error
//! chunk of a stream (`{"error":{"grpc_code":N,"http_code":N,…}}`), each streamed message as
//! `{"result":…}` and a newline, and Go's plain-text answers for unknown paths and methods.

use axum::body::Body;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;
use tonic::{Code, Status};

/// The HTTP status grpc-gateway answers a gRPC code with (`HTTPStatusFromCode`).
pub fn http_status(code: Code) -> StatusCode {
    match code {
        Code::Ok => StatusCode::OK,
        Code::Cancelled => StatusCode::REQUEST_TIMEOUT,
        Code::Unknown | Code::Internal | Code::DataLoss => StatusCode::INTERNAL_SERVER_ERROR,
        Code::InvalidArgument | Code::OutOfRange => StatusCode::BAD_REQUEST,
        Code::DeadlineExceeded => StatusCode::GATEWAY_TIMEOUT,
        Code::NotFound => StatusCode::NOT_FOUND,
        Code::AlreadyExists | Code::Aborted => StatusCode::CONFLICT,
        Code::PermissionDenied => StatusCode::FORBIDDEN,
        Code::Unauthenticated => StatusCode::UNAUTHORIZED,
        Code::ResourceExhausted => StatusCode::TOO_MANY_REQUESTS,
        Code::FailedPrecondition => StatusCode::PRECONDITION_FAILED,
        Code::Unimplemented => StatusCode::NOT_IMPLEMENTED,
        Code::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
    }
}

/// A JSON object of `members` in their order, without those that are empty strings or zero,
/// as jsonpb writes a message and leaves out its zero values.
fn object(members: &[(&str, serde_json::Value)]) -> Vec<u8> {
    let kept = members.iter().filter(|(_, value)| match value {
        serde_json::Value::String(text) => !text.is_empty(),
        serde_json::Value::Number(number) => number.as_i64() != Some(0),
        _ => true,
    });
    let members: Vec<String> =
        kept.map(|(name, value)| format!("{}:{value}", serde_json::Value::from(*name))).collect();
    super::jsonpb::escape_like_go(format!("{{{}}}", members.join(","))).into_bytes()
}

/// A failed call's answer: its HTTP status and `{"error":…,"message":…,"code":N}`.
pub fn error(status: &Status) -> Response {
    let body = object(&[
        ("error", json!(status.message())),
        ("message", json!(status.message())),
        ("code", json!(status.code() as i32)),
    ]);
    let mut response = (http_status(status.code()), body).into_response();
    json_type(&mut response);
    response
}

/// The last chunk of a stream that failed: `{"error":{"grpc_code":…,"http_code":…,…}}`.
pub fn stream_error(status: &Status) -> Vec<u8> {
    let http = http_status(status.code());
    let body = object(&[
        ("grpc_code", json!(status.code() as i32)),
        ("http_code", json!(http.as_u16())),
        ("message", json!(status.message())),
        ("http_status", json!(http.canonical_reason().unwrap_or_default())),
    ]);
    [&b"{\"error\":"[..], &body, b"}"].concat()
}

/// One streamed message (`message` is its JSON) as a chunk: `{"result":…}` and a newline.
pub fn stream_result(message: &[u8]) -> Vec<u8> {
    let mut chunk = Vec::with_capacity(message.len() + 12);
    chunk.extend_from_slice(b"{\"result\":");
    chunk.extend_from_slice(message);
    chunk.extend_from_slice(b"}\n");
    chunk
}

/// A call's answer: `body` (JSON) with `status`, typed as the gateway types it.
pub fn json(status: StatusCode, body: Body) -> Response {
    let mut response = (status, body).into_response();
    json_type(&mut response);
    // The gRPC call's own header, passed on as grpc-gateway passes headers on.
    response
        .headers_mut()
        .insert("grpc-metadata-content-type", HeaderValue::from_static("application/grpc"));
    response
}

fn json_type(response: &mut Response) {
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
}

/// Go's `http.Error`: `text` and a newline, as plain text.
pub fn text(status: StatusCode, text: &str) -> Response {
    let headers = [
        (header::CONTENT_TYPE, "text/plain; charset=utf-8"),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
    ];
    (status, headers, format!("{text}\n")).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn body(response: Response) -> String {
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX).await.unwrap();
        String::from_utf8(bytes.to_vec()).unwrap()
    }

    #[tokio::test]
    async fn a_failed_call_answers_as_etcds_gateway() {
        let status = Status::new(Code::NotFound, "etcdserver: requested lease not found");
        let response = error(&status);
        assert_eq!(response.status(), StatusCode::NOT_FOUND);
        assert_eq!(response.headers()[header::CONTENT_TYPE], "application/json");
        assert_eq!(
            body(response).await,
            r#"{"error":"etcdserver: requested lease not found","message":"etcdserver: requested lease not found","code":5}"#
        );
        assert_eq!(body(error(&Status::new(Code::Unknown, ""))).await, r#"{"code":2}"#);
    }

    #[test]
    fn a_failed_stream_ends_with_an_error_chunk() {
        let status =
            Status::new(Code::OutOfRange, "etcdserver: mvcc: required revision has been compacted");
        assert_eq!(
            String::from_utf8(stream_error(&status)).unwrap(),
            r#"{"error":{"grpc_code":11,"http_code":400,"message":"etcdserver: mvcc: required revision has been compacted","http_status":"Bad Request"}}"#
        );
        assert_eq!(stream_result(b"{}"), b"{\"result\":{}}\n");
    }

    #[test]
    fn every_code_has_grpc_gateways_status() {
        let expected = [
            (Code::Ok, 200),
            (Code::Cancelled, 408),
            (Code::Unknown, 500),
            (Code::InvalidArgument, 400),
            (Code::DeadlineExceeded, 504),
            (Code::NotFound, 404),
            (Code::AlreadyExists, 409),
            (Code::PermissionDenied, 403),
            (Code::ResourceExhausted, 429),
            (Code::FailedPrecondition, 412),
            (Code::Aborted, 409),
            (Code::OutOfRange, 400),
            (Code::Unimplemented, 501),
            (Code::Internal, 500),
            (Code::Unavailable, 503),
            (Code::DataLoss, 500),
            (Code::Unauthenticated, 401),
        ];
        for (code, status) in expected {
            assert_eq!(http_status(code).as_u16(), status, "{code:?}");
        }
    }
}
