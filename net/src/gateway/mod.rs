//! etcd's gRPC gateway: the whole v3 API as JSON over HTTP on the client port, at etcd 3.4's
//! paths under `/v3/` (and `/v3beta/`, which etcd 3.4 still answers), for `curl`, python
//! `etcd3gw` and every client without a gRPC stack.
//!
//! A request's body is read as Go's JSON decoder reads it ([`json`]), turned into the method's
//! protobuf request as grpc-gateway's `jsonpb` would ([`jsonpb`]), and sent to the member's own
//! gRPC services in process ([`upstream`]); the answer comes back as etcd's gateway writes it
//! ([`reply`]). [`methods`] is etcd's path table. Streams (`watch`, `lease/keepalive`,
//! `maintenance/snapshot`, `election/observe`) answer with one `{"result":…}` line per message;
//! the two that stream both ways read a sequence of JSON requests from the body.

pub mod json;
pub mod jsonpb;
pub mod methods;
pub mod reply;
pub mod upstream;

use axum::body::{Body, BodyDataStream};
use axum::extract::Request;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use bytes::Bytes;
use futures_util::StreamExt;
use json::Next;
use methods::{Flow, Method};
use prost_reflect::MessageDescriptor;
use std::sync::Arc;
use tonic::metadata::{MetadataKey, MetadataMap, MetadataValue};
use tonic::Status;
use upstream::Upstream;

/// What etcd's gRPC server takes beyond `--max-request-bytes` (its `grpcOverheadBytes`).
const GRPC_OVERHEAD_BYTES: usize = 512 * 1024;
/// How much larger than the largest request message a JSON body may grow before the gateway
/// stops reading it (base64 alone makes bytes 4/3 as long).
const JSON_PER_MESSAGE_BYTE: usize = 4;
/// Requests read ahead of the member on a stream both ways.
const STREAM_BACKLOG: usize = 16;

/// The gateway of one member.
pub struct Gateway {
    upstream: Upstream,
    /// The largest request message the member's gRPC server takes, in bytes.
    message_limit: usize,
}

impl Gateway {
    /// A gateway into `services` (the client port's gRPC routes) for a member started with
    /// `--max-request-bytes` `max_request_bytes`.
    pub fn new(services: axum::Router, max_request_bytes: usize) -> Gateway {
        Gateway {
            upstream: Upstream::new(services),
            message_limit: max_request_bytes.saturating_add(GRPC_OVERHEAD_BYTES),
        }
    }

    /// `router` with the gateway's paths added.
    pub fn routes(self, router: axum::Router) -> axum::Router {
        let gateway = Arc::new(self);
        let serve = move |request: Request| {
            let gateway = gateway.clone();
            async move { gateway.serve(request).await }
        };
        let mut router = router.route("/v3", axum::routing::any(to_subtree));
        for path in ["/v3/", "/v3/{*method}", "/v3beta/", "/v3beta/{*method}"] {
            router = router.route(path, axum::routing::any(serve.clone()));
        }
        router
    }

    /// Answers one gateway request.
    async fn serve(&self, request: Request) -> Response {
        let path = request.uri().path();
        let route = path.strip_prefix("/v3/").or_else(|| path.strip_prefix("/v3beta/"));
        let Some(method) = route.and_then(methods::find) else {
            return reply::text(StatusCode::NOT_FOUND, "Not Found");
        };
        if request.method() != axum::http::Method::POST {
            return reply::text(StatusCode::METHOD_NOT_ALLOWED, "Method Not Allowed");
        }
        let metadata = metadata(request.headers());
        let mut body = BodyReader::new(request.into_body(), self.message_limit);
        let requests = match method.flow {
            // One request: a body that cannot be read is the caller's error.
            Flow::Unary | Flow::ServerStream => match body.next(&method.input).await {
                Ok(message) => tokio_stream::once(message.unwrap_or_default()).boxed(),
                Err(status) => return reply::error(&status),
            },
            Flow::Bidi => match self.stream_requests(body, method).await {
                Ok(requests) => requests,
                Err(status) => return reply::error(&status),
            },
        };
        let answers = match self.upstream.call(&method.path, metadata, requests).await {
            Ok(answers) => answers,
            Err(status) => return reply::error(&status),
        };
        match method.flow {
            Flow::Unary => unary_answer(answers, &method.output).await,
            Flow::ServerStream | Flow::Bidi => stream_answer(answers, method.output.clone()).await,
        }
    }

    /// The requests of a stream both ways: the first is read now (a bad one fails the call, as
    /// Go's error, with `Unknown`); the rest are read as they come, and the first that cannot
    /// be read ends the requests (the stream goes on), as etcd's gateway does.
    async fn stream_requests(
        &self,
        mut body: BodyReader,
        method: &'static Method,
    ) -> Result<futures_util::stream::BoxStream<'static, Bytes>, Status> {
        let first = match body.next(&method.input).await {
            Ok(first) => first,
            Err(status) if status.code() == tonic::Code::InvalidArgument => {
                return Err(Status::unknown(status.message()))
            }
            Err(status) => return Err(status),
        };
        let Some(first) = first else { return Ok(futures_util::stream::empty().boxed()) };
        let (sender, receiver) = tokio::sync::mpsc::channel(STREAM_BACKLOG);
        tokio::spawn(async move {
            loop {
                let next = tokio::select! {
                    biased;
                    _ = sender.closed() => break,
                    next = body.next(&method.input) => next,
                };
                let Ok(Some(message)) = next else { break };
                if sender.send(message).await.is_err() {
                    break;
                }
            }
        });
        let rest = tokio_stream::wrappers::ReceiverStream::new(receiver);
        Ok(tokio_stream::once(first).chain(rest).boxed())
    }
}

/// Go's `ServeMux` answer to `/v3`, a subtree's root without its slash: a permanent redirect
/// to `/v3/` (with a line of HTML for GET and HEAD).
async fn to_subtree(method: axum::http::Method) -> Response {
    use axum::response::IntoResponse;
    let location = [(axum::http::header::LOCATION, "/v3/")];
    if method == axum::http::Method::GET || method == axum::http::Method::HEAD {
        let html = [(axum::http::header::CONTENT_TYPE, "text/html; charset=utf-8")];
        let body = "<a href=\"/v3/\">Moved Permanently</a>.\n\n";
        (StatusCode::MOVED_PERMANENTLY, location, html, body).into_response()
    } else {
        (StatusCode::MOVED_PERMANENTLY, location).into_response()
    }
}

/// The gRPC metadata of a gateway request, as grpc-gateway makes it: `Authorization` passed on
/// as `authorization` (where etcd reads a token from), `Grpc-Metadata-<key>` as `<key>`.
fn metadata(headers: &HeaderMap) -> MetadataMap {
    let mut metadata = MetadataMap::new();
    for (name, value) in headers {
        let key = match name.as_str() {
            "authorization" => "authorization",
            other => match other.strip_prefix("grpc-metadata-") {
                Some(key) if !key.ends_with("-bin") => key,
                _ => continue,
            },
        };
        let (Ok(key), Ok(value)) =
            (MetadataKey::from_bytes(key.as_bytes()), MetadataValue::try_from(value.as_bytes()))
        else {
            continue;
        };
        metadata.append(key, value);
    }
    metadata
}

/// A unary call's answer: its one message, or its error.
async fn unary_answer(
    mut answers: tonic::codec::Streaming<Bytes>,
    output: &MessageDescriptor,
) -> Response {
    let message = match answers.message().await {
        Ok(Some(message)) => message,
        Ok(None) => return reply::error(&Status::internal("Missing response message.")),
        Err(status) => return reply::error(&status),
    };
    match jsonpb::to_json(output, &message) {
        Ok(json) => reply::json(StatusCode::OK, Body::from(json)),
        Err(text) => reply::error(&Status::internal(text)),
    }
}

/// A stream's answer. The response starts with its first message, as etcd's gateway starts
/// it; an error before any message is the response's status, and one after ends the body.
async fn stream_answer(
    mut answers: tonic::codec::Streaming<Bytes>,
    output: MessageDescriptor,
) -> Response {
    let chunk = move |message: Result<Bytes, Status>| -> (Vec<u8>, bool) {
        match message.and_then(|m| jsonpb::to_json(&output, &m).map_err(Status::internal)) {
            Ok(json) => (reply::stream_result(&json), true),
            Err(status) => (reply::stream_error(&status), false),
        }
    };
    let first = match answers.message().await {
        Ok(None) => return reply::json(StatusCode::OK, Body::empty()),
        Err(status) => {
            let status_code = reply::http_status(status.code());
            return reply::json(status_code, Body::from(reply::stream_error(&status)));
        }
        Ok(Some(first)) => first,
    };
    let (first, more) = chunk(Ok(first));
    let rest = futures_util::stream::unfold((answers, more), move |(mut answers, more)| {
        let chunk = chunk.clone();
        async move {
            if !more {
                return None;
            }
            let message = answers.message().await.transpose()?;
            let (bytes, more) = chunk(message);
            Some((Ok::<_, std::io::Error>(Bytes::from(bytes)), (answers, more)))
        }
    });
    let body = tokio_stream::once(Ok(Bytes::from(first))).chain(rest);
    reply::json(StatusCode::OK, Body::from_stream(body))
}

/// Reads JSON requests off a request body, one value at a time, as Go's `json.Decoder` does.
struct BodyReader {
    body: BodyDataStream,
    buffer: Vec<u8>,
    /// Where a value may end in `buffer`; `ready` once one may have.
    boundary: json::Boundary,
    ready: bool,
    ended: bool,
    message_limit: usize,
}

impl BodyReader {
    fn new(body: Body, message_limit: usize) -> BodyReader {
        BodyReader {
            body: body.into_data_stream(),
            buffer: Vec::new(),
            boundary: json::Boundary::default(),
            ready: false,
            ended: false,
            message_limit,
        }
    }

    /// The next request of type `input` as protobuf bytes; `None` at the end of the body.
    /// A body that does not read as one is `InvalidArgument` with Go's text; a request larger
    /// than the member takes is `ResourceExhausted` with grpc-go's.
    async fn next(&mut self, input: &MessageDescriptor) -> Result<Option<Bytes>, Status> {
        let json_limit = self.message_limit.saturating_mul(JSON_PER_MESSAGE_BYTE);
        loop {
            let next = if self.ready || self.ended {
                json::next_value(&self.buffer, self.ended).map_err(Status::invalid_argument)?
            } else {
                Next::NeedMore
            };
            match next {
                Next::End => return Ok(None),
                Next::Value(value, used) => {
                    let message =
                        jsonpb::from_json(input, &value).map_err(Status::invalid_argument)?;
                    let bytes = prost::Message::encode_to_vec(&message);
                    self.buffer.drain(..used);
                    // What follows the value is watched afresh.
                    self.boundary = json::Boundary::default();
                    self.ready = self.boundary.feed(&self.buffer);
                    if bytes.len() > self.message_limit {
                        return Err(Status::resource_exhausted(format!(
                            "grpc: received message larger than max ({} vs. {})",
                            bytes.len(),
                            self.message_limit
                        )));
                    }
                    return Ok(Some(Bytes::from(bytes)));
                }
                Next::NeedMore if self.buffer.len() > json_limit => {
                    return Err(Status::resource_exhausted(format!(
                        "grpc: received message larger than max (more than {json_limit} bytes \
                         of JSON vs. {})",
                        self.message_limit
                    )));
                }
                Next::NeedMore => match self.body.next().await {
                    Some(Ok(chunk)) => {
                        self.ready = self.boundary.feed(&chunk);
                        self.buffer.extend_from_slice(&chunk);
                    }
                    // A body cut off (the client went away) ends where it was cut.
                    Some(Err(_)) | None => self.ended = true,
                },
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reader(chunks: Vec<&'static str>, limit: usize) -> BodyReader {
        let stream = tokio_stream::iter(chunks.into_iter().map(Ok::<_, std::io::Error>));
        BodyReader::new(Body::from_stream(stream), limit)
    }

    fn watch() -> MessageDescriptor {
        methods::find("watch").unwrap().input.clone()
    }

    #[tokio::test]
    async fn a_body_yields_its_requests_across_chunk_boundaries() {
        let mut body = reader(
            vec![r#"{"create_request":{"ke"#, r#"y":"YQ=="}}  {"progress"#, r#"_request":{}}"#],
            1 << 20,
        );
        let first = body.next(&watch()).await.unwrap().unwrap();
        assert_eq!(first.as_ref(), b"\x0a\x03\x0a\x01a");
        let second = body.next(&watch()).await.unwrap().unwrap();
        assert_eq!(second.as_ref(), b"\x1a\x00");
        assert_eq!(body.next(&watch()).await.unwrap(), None);
    }

    #[tokio::test]
    async fn a_body_that_trickles_in_byte_by_byte_reads_the_same() {
        let body: &'static str = r#" {"create_request":{"key":"YQ==","range_end":"Yg=="}}
            {"cancel_request":{"watch_id":"3"}} "#;
        let mut chunked = reader(body.split_inclusive(|_| true).collect(), 1 << 20);
        let mut whole = reader(vec![body], 1 << 20);
        for _ in 0..3 {
            assert_eq!(chunked.next(&watch()).await.unwrap(), whole.next(&watch()).await.unwrap());
        }
        assert_eq!(chunked.next(&watch()).await.unwrap(), None);
    }

    #[tokio::test]
    async fn bad_and_huge_bodies_get_etcds_codes() {
        let mut cut = reader(vec![r#"{"create_request":{"key":"YQ"#], 1 << 20);
        let status = cut.next(&watch()).await.unwrap_err();
        assert_eq!(
            (status.code(), status.message()),
            (tonic::Code::InvalidArgument, "unexpected EOF")
        );
        let mut big = reader(vec![r#"{"create_request":{"key":"YWFhYWFhYWFhYWFhYWFhYQ=="}}"#], 10);
        let status = big.next(&watch()).await.unwrap_err();
        assert_eq!(status.code(), tonic::Code::ResourceExhausted);
        assert_eq!(status.message(), "grpc: received message larger than max (20 vs. 10)");
        let mut endless =
            reader(vec!["[", "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[["], 10);
        assert_eq!(
            endless.next(&watch()).await.unwrap_err().code(),
            tonic::Code::ResourceExhausted
        );
        assert_eq!(reader(vec![" \n"], 10).next(&watch()).await.unwrap(), None);
    }

    #[test]
    fn headers_become_the_metadata_grpc_gateway_makes() {
        let mut headers = HeaderMap::new();
        headers.insert("authorization", "abc.1".parse().unwrap());
        headers.insert("grpc-metadata-token", "def.2".parse().unwrap());
        headers.insert("user-agent", "curl".parse().unwrap());
        let metadata = metadata(&headers);
        assert_eq!(metadata.get("authorization").unwrap(), "abc.1");
        assert_eq!(metadata.get("token").unwrap(), "def.2");
        assert!(metadata.get("user-agent").is_none());
    }
}
