//! `grpc_server_*`: every gRPC call on the client port, counted as go-grpc-prometheus counts
//! them for etcd (labels `grpc_type`, `grpc_service`, `grpc_method`, `grpc_code`), plus the
//! bytes of the messages each way (`etcd_network_client_grpc_*_bytes_total`).
//!
//! [`layer`] wraps the client port's gRPC routes, so calls the JSON gateway makes in process
//! count too (etcd's gateway calls its gRPC server over a loopback connection). It reads the
//! gRPC framing of the bodies as they stream (a 5-byte header per message) and the status from
//! the trailers, or from the headers of a trailers-only answer. A call whose answer is dropped
//! before its trailers (the client went away) counts as `Canceled`, as grpc-go reports it.

use super::Maker;
use prometheus::{HistogramOpts, HistogramVec, IntCounterVec, Opts};

/// gRPC's code names, by number (Go's `codes.Code.String()`).
pub const CODES: [&str; 17] = [
    "OK",
    "Canceled",
    "Unknown",
    "InvalidArgument",
    "DeadlineExceeded",
    "NotFound",
    "AlreadyExists",
    "PermissionDenied",
    "ResourceExhausted",
    "FailedPrecondition",
    "Aborted",
    "OutOfRange",
    "Unimplemented",
    "Internal",
    "Unavailable",
    "DataLoss",
    "Unauthenticated",
];

/// The `grpc_server_*` families (the tier-2 simulation serves gRPC without the layer).
#[cfg_attr(madsim, allow(dead_code))]
pub struct GrpcMetrics {
    started: IntCounterVec,
    handled: IntCounterVec,
    received: IntCounterVec,
    sent: IntCounterVec,
    /// `--metrics extensive` only.
    handling: Option<HistogramVec>,
    /// Each method's series, looked up once (by the method's place in [`methods`]).
    #[cfg(not(madsim))]
    series: Vec<std::sync::OnceLock<Series>>,
}

/// One method's series, made on first use (a series appears in the scrape once made).
#[cfg(not(madsim))]
struct Series {
    started: prometheus::IntCounter,
    handled: [std::sync::OnceLock<prometheus::IntCounter>; 17],
    received: std::sync::OnceLock<prometheus::IntCounter>,
    sent: std::sync::OnceLock<prometheus::IntCounter>,
    handling: Option<prometheus::Histogram>,
}

/// The kind of a method, as go-grpc-prometheus names it.
#[cfg_attr(madsim, allow(dead_code))]
fn kind(client_streaming: bool, server_streaming: bool) -> &'static str {
    match (client_streaming, server_streaming) {
        (false, false) => "unary",
        (true, false) => "client_stream",
        (false, true) => "server_stream",
        (true, true) => "bidi_stream",
    }
}

impl GrpcMetrics {
    pub(super) fn new(make: &Maker<'_>, extensive: bool) -> GrpcMetrics {
        let labels = ["grpc_type", "grpc_service", "grpc_method"];
        let with_code = ["grpc_type", "grpc_service", "grpc_method", "grpc_code"];
        let counter = |name: &str, help: &str, labels: &[&str]| {
            make.add(IntCounterVec::new(Opts::new(name, help), labels).expect("valid counter"))
        };
        let metrics = GrpcMetrics {
            started: counter("grpc_server_started_total", "Total number of RPCs started on the server.", &labels),
            handled: counter("grpc_server_handled_total", "Total number of RPCs completed on the server, regardless of success or failure.", &with_code),
            received: counter("grpc_server_msg_received_total", "Total number of RPC stream messages received on the server.", &labels),
            sent: counter("grpc_server_msg_sent_total", "Total number of gRPC stream messages sent by the server.", &labels),
            handling: extensive.then(|| {
                let opts = HistogramOpts::new(
                    "grpc_server_handling_seconds",
                    "Histogram of response latency (seconds) of gRPC that had been application-level handled by the server.",
                );
                make.add(HistogramVec::new(opts, &labels).expect("valid histogram"))
            }),
            #[cfg(not(madsim))]
            series: methods().iter().map(|_| std::sync::OnceLock::new()).collect(),
        };
        // go-grpc-prometheus lists every method of the services etcd registers first, at 0.
        #[cfg(not(madsim))]
        for method in methods().iter().filter(|m| m.service.starts_with("etcdserverpb.")) {
            let call = [method.kind, method.service.as_str(), method.name.as_str()];
            metrics.started.with_label_values(&call);
            for code in CODES {
                let labels = [call[0], call[1], call[2], code];
                metrics.handled.with_label_values(&labels);
            }
            if let Some(handling) = &metrics.handling {
                handling.with_label_values(&call);
            }
        }
        metrics
    }
}

#[cfg(not(madsim))]
impl GrpcMetrics {
    /// The series of method number `index`.
    fn series(&self, index: usize) -> &Series {
        self.series[index].get_or_init(|| {
            let method = &methods()[index];
            let call = [method.kind, method.service.as_str(), method.name.as_str()];
            Series {
                started: self.started.with_label_values(&call),
                handled: Default::default(),
                received: Default::default(),
                sent: Default::default(),
                handling: self.handling.as_ref().map(|h| h.with_label_values(&call)),
            }
        })
    }

    /// Call `index` started.
    fn started(&self, index: usize) {
        self.series(index).started.inc();
    }

    /// Call `index` ended with gRPC code `code`, `seconds` after it started.
    fn handled(&self, index: usize, code: usize, seconds: f64) {
        let series = self.series(index);
        let code = code.min(CODES.len() - 1);
        let method = &methods()[index];
        series.handled[code]
            .get_or_init(|| {
                let labels =
                    [method.kind, method.service.as_str(), method.name.as_str(), CODES[code]];
                self.handled.with_label_values(&labels)
            })
            .inc();
        if let Some(handling) = &series.handling {
            handling.observe(seconds);
        }
    }

    /// Call `index` moved `messages` messages one way (`sent` or received).
    fn messages(&self, index: usize, sent: bool, messages: u64) {
        let series = self.series(index);
        let (cell, vec) =
            if sent { (&series.sent, &self.sent) } else { (&series.received, &self.received) };
        let method = &methods()[index];
        cell.get_or_init(|| vec.with_label_values(&[method.kind, &method.service, &method.name]))
            .inc_by(messages);
    }
}

/// A gRPC method the client port serves.
#[derive(Clone, Debug)]
pub struct Method {
    /// `etcdserverpb.KV`.
    pub service: String,
    /// `Range`.
    pub name: String,
    /// `unary`, `client_stream`, `server_stream` or `bidi_stream`.
    pub kind: &'static str,
}

/// Every method of etcd's client services, from the compiled descriptors.
#[cfg(not(madsim))]
pub fn methods() -> &'static [Method] {
    static METHODS: std::sync::OnceLock<Vec<Method>> = std::sync::OnceLock::new();
    METHODS.get_or_init(|| {
        let pool = crate::gateway::methods::descriptors();
        let mut methods: Vec<Method> = pool
            .services()
            .filter(|s| !s.full_name().starts_with("steadpeer."))
            .flat_map(|service| {
                service
                    .methods()
                    .map(|m| Method {
                        service: service.full_name().to_string(),
                        name: m.name().to_string(),
                        kind: kind(m.is_client_streaming(), m.is_server_streaming()),
                    })
                    .collect::<Vec<_>>()
            })
            .collect();
        methods.sort_by(|a, b| (&a.service, &a.name).cmp(&(&b.service, &b.name)));
        methods
    })
}

/// The method a gRPC path (`/etcdserverpb.KV/Range`) names, if the client port serves it.
#[cfg(not(madsim))]
pub fn method(path: &str) -> Option<&'static Method> {
    method_index(path).map(|index| &methods()[index])
}

/// The place in [`methods`] of the method a gRPC path names.
#[cfg(not(madsim))]
fn method_index(path: &str) -> Option<usize> {
    static PATHS: std::sync::OnceLock<std::collections::BTreeMap<String, usize>> =
        std::sync::OnceLock::new();
    let paths = PATHS.get_or_init(|| {
        let paths = methods().iter().enumerate();
        paths.map(|(i, m)| (format!("/{}/{}", m.service, m.name), i)).collect()
    });
    paths.get(path).copied()
}

/// Counts gRPC messages and their payload bytes in a byte stream of gRPC framing.
#[derive(Debug, Default)]
pub struct FrameCounter {
    header: [u8; 5],
    header_len: usize,
    remaining: u64,
    /// Messages whose header was seen.
    pub messages: u64,
    /// Their payload bytes (headers not counted), as announced.
    pub bytes: u64,
}

impl FrameCounter {
    /// Reads `data`, the next bytes of the stream; returns the messages and bytes it added.
    pub fn feed(&mut self, mut data: &[u8]) -> (u64, u64) {
        let before = (self.messages, self.bytes);
        while !data.is_empty() {
            if self.remaining > 0 {
                let take = (self.remaining.min(data.len() as u64)) as usize;
                self.remaining -= take as u64;
                data = &data[take..];
                continue;
            }
            let take = (5 - self.header_len).min(data.len());
            self.header[self.header_len..self.header_len + take].copy_from_slice(&data[..take]);
            self.header_len += take;
            data = &data[take..];
            if self.header_len == 5 {
                let length = u32::from_be_bytes([
                    self.header[1],
                    self.header[2],
                    self.header[3],
                    self.header[4],
                ]);
                self.header_len = 0;
                self.remaining = u64::from(length);
                self.messages += 1;
                self.bytes += u64::from(length);
            }
        }
        (self.messages - before.0, self.bytes - before.1)
    }
}

#[cfg(not(madsim))]
pub use layer::layer;

#[cfg(not(madsim))]
mod layer {
    use super::{FrameCounter, CODES};
    use crate::metrics::Metrics;
    use axum::body::Body;
    use axum::extract::Request;
    use axum::response::Response;
    use bytes::Bytes;
    use http_body::Frame;
    use std::pin::Pin;
    use std::sync::Arc;
    use std::task::{Context, Poll};
    use std::time::Instant;

    /// `routes` (the client port's gRPC services) with every call counted in `metrics`.
    pub fn layer(routes: axum::Router, metrics: Arc<Metrics>) -> axum::Router {
        routes.layer(axum::middleware::from_fn(
            move |request: Request, next: axum::middleware::Next| {
                let metrics = metrics.clone();
                async move { count(metrics, request, next).await }
            },
        ))
    }

    async fn count(
        metrics: Arc<Metrics>,
        request: Request,
        next: axum::middleware::Next,
    ) -> Response {
        let Some(method) = super::method_index(request.uri().path()) else {
            return next.run(request).await;
        };
        let call = Call { metrics, method, started: Instant::now() };
        call.metrics.grpc.started(method);
        let call = Arc::new(call);
        let request =
            request.map(|body| Body::new(Counted::new(body, call.clone(), Direction::Received)));
        let response = next.run(request).await;
        // A trailers-only answer carries its status in the headers.
        if let Some(code) = status_code(response.headers()) {
            call.finish(code);
            return response;
        }
        response.map(|body| Body::new(Counted::new(body, call, Direction::Sent)))
    }

    /// One call being counted.
    struct Call {
        metrics: Arc<Metrics>,
        /// Its method's place in [`super::methods`].
        method: usize,
        started: Instant,
    }

    impl Call {
        fn finish(&self, code: usize) {
            // A code beyond gRPC's is Unknown.
            let code = if code < CODES.len() { code } else { 2 };
            let seconds = self.started.elapsed().as_secs_f64();
            self.metrics.grpc.handled(self.method, code, seconds);
        }

        fn messages(&self, direction: Direction, messages: u64, bytes: u64) {
            let sent = matches!(direction, Direction::Sent);
            let network = &self.metrics.network;
            let total =
                if sent { &network.client_sent_bytes } else { &network.client_received_bytes };
            if messages > 0 {
                self.metrics.grpc.messages(self.method, sent, messages);
            }
            total.inc_by(bytes);
        }
    }

    /// The grpc-status a header map carries, as a number.
    fn status_code(headers: &axum::http::HeaderMap) -> Option<usize> {
        headers.get("grpc-status")?.to_str().ok()?.trim().parse().ok()
    }

    #[derive(Clone, Copy)]
    enum Direction {
        Received,
        Sent,
    }

    /// A body whose messages are counted as they pass; an answer's trailers finish the call.
    struct Counted {
        inner: Body,
        call: Arc<Call>,
        direction: Direction,
        frames: FrameCounter,
        finished: bool,
    }

    impl Counted {
        fn new(inner: Body, call: Arc<Call>, direction: Direction) -> Counted {
            Counted { inner, call, direction, frames: FrameCounter::default(), finished: false }
        }
    }

    impl http_body::Body for Counted {
        type Data = Bytes;
        type Error = axum::Error;

        fn poll_frame(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
            let this = &mut *self;
            let polled = Pin::new(&mut this.inner).poll_frame(cx);
            match &polled {
                Poll::Ready(Some(Ok(frame))) => {
                    if let Some(data) = frame.data_ref() {
                        let (messages, bytes) = this.frames.feed(data);
                        this.call.messages(this.direction, messages, bytes);
                    }
                    if let Some(trailers) = frame.trailers_ref() {
                        if matches!(this.direction, Direction::Sent) && !this.finished {
                            this.finished = true;
                            this.call.finish(status_code(trailers).unwrap_or(2));
                        }
                    }
                }
                Poll::Ready(None)
                    if matches!(this.direction, Direction::Sent) && !this.finished =>
                {
                    // An answer without trailers: grpc-go would call it Unknown.
                    this.finished = true;
                    this.call.finish(2);
                }
                _ => {}
            }
            polled
        }

        fn is_end_stream(&self) -> bool {
            self.inner.is_end_stream()
        }

        fn size_hint(&self) -> http_body::SizeHint {
            self.inner.size_hint()
        }
    }

    impl Drop for Counted {
        fn drop(&mut self) {
            if matches!(self.direction, Direction::Sent) && !self.finished {
                self.call.finish(1); // Canceled: the client went away first.
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn framed(payloads: &[&[u8]]) -> Vec<u8> {
        let mut out = Vec::new();
        for payload in payloads {
            out.push(0);
            out.extend_from_slice(&(payload.len() as u32).to_be_bytes());
            out.extend_from_slice(payload);
        }
        out
    }

    #[test]
    fn messages_are_counted_however_the_stream_is_cut() {
        let stream = framed(&[b"hello", b"", b"a longer message"]);
        for cut in 1..stream.len() {
            let mut counter = FrameCounter::default();
            let mut total = (0, 0);
            for chunk in stream.chunks(cut) {
                let (m, b) = counter.feed(chunk);
                total = (total.0 + m, total.1 + b);
            }
            assert_eq!(total, (3, 21), "chunks of {cut}");
        }
    }

    #[test]
    fn method_kinds_are_named_as_go_grpc_prometheus_names_them() {
        assert_eq!(kind(false, false), "unary");
        assert_eq!(kind(true, true), "bidi_stream");
        assert_eq!(kind(false, true), "server_stream");
        assert_eq!(kind(true, false), "client_stream");
    }

    #[cfg(not(madsim))]
    #[test]
    fn the_client_services_methods_are_known() {
        let range = method("/etcdserverpb.KV/Range").expect("Range");
        assert_eq!(range.kind, "unary");
        assert_eq!(method("/etcdserverpb.Watch/Watch").expect("Watch").kind, "bidi_stream");
        assert_eq!(method("/etcdserverpb.Maintenance/Snapshot").unwrap().kind, "server_stream");
        assert!(method("/steadpeer.Peer/Stream").is_none());
        assert!(method("/nothing/here").is_none());
    }
}
