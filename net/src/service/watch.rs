//! The Watch service: one bidirectional stream per client stream, with many watchers on it.
//!
//! Each gRPC stream gets an id; its messages go to the member in order, and the member's
//! responses come back on a channel the first message hands over. When the client goes away (or
//! breaks its stream) the member hears `WatchClosed` and forgets the stream's watchers; a client
//! that only closes its sending side keeps them, as etcd's do.

use super::{credential, status};
use crate::convert::kv::{event, header};
use crate::handle::{Command, Handle};
use crate::proto::etcdserverpb as pb;
use crate::proto::etcdserverpb::watch_server::{Watch, WatchServer};
use std::pin::Pin;
use stead_core::api::{WatchCreateRequest, WatchFilter, WatchRequest, WatchResponse};
use tokio::sync::mpsc;
use tokio_stream::wrappers::UnboundedReceiverStream;
use tokio_stream::{Stream, StreamExt};
use tonic::{Request as Call, Response as Answer, Status, Streaming};

/// The Watch service of one member.
pub struct WatchService {
    handle: Handle,
}

impl WatchService {
    /// The service for the member behind `handle`.
    pub fn server(handle: Handle) -> crate::service::grpc_server!(WatchServer, WatchService) {
        WatchServer::new(WatchService { handle })
    }
}

/// A watch message from etcd's; `None` for an empty one (ignored, as etcd ignores it).
fn watch_request(request: pb::WatchRequest) -> Option<WatchRequest> {
    use pb::watch_request::RequestUnion;
    Some(match request.request_union? {
        RequestUnion::CreateRequest(create) => {
            use pb::watch_create_request::FilterType;
            let filters = create
                .filters
                .iter()
                .filter_map(|f| match FilterType::try_from(*f).ok()? {
                    FilterType::Noput => Some(WatchFilter::NoPut),
                    FilterType::Nodelete => Some(WatchFilter::NoDelete),
                })
                .collect();
            WatchRequest::Create(WatchCreateRequest {
                key: create.key,
                range_end: create.range_end,
                start_revision: create.start_revision,
                progress_notify: create.progress_notify,
                filters,
                prev_kv: create.prev_kv,
                watch_id: create.watch_id,
                fragment: create.fragment,
            })
        }
        RequestUnion::CancelRequest(cancel) => WatchRequest::Cancel { watch_id: cancel.watch_id },
        RequestUnion::ProgressRequest(_) => WatchRequest::Progress,
    })
}

/// A watch response as etcd's.
pub fn watch_response(response: WatchResponse) -> pb::WatchResponse {
    pb::WatchResponse {
        header: header(response.header),
        watch_id: response.watch_id,
        created: response.created,
        canceled: response.canceled,
        compact_revision: response.compact_revision,
        cancel_reason: response.cancel_reason,
        fragment: response.fragment,
        events: response.events.into_iter().map(event).collect(),
    }
}

type ResponseStream = Pin<Box<dyn Stream<Item = Result<pb::WatchResponse, Status>> + Send>>;

#[tonic::async_trait]
impl Watch for WatchService {
    type WatchStream = ResponseStream;

    async fn watch(
        &self,
        call: Call<Streaming<pb::WatchRequest>>,
    ) -> Result<Answer<Self::WatchStream>, Status> {
        let credential = credential(&call);
        let stream = self.handle.new_stream();
        let (sink, responses) = mpsc::unbounded_channel();
        let handle = self.handle.clone();
        let mut inbound = call.into_inner();
        tokio::spawn(async move {
            // Kept to learn when the client stops reading: a client that only closes its side
            // keeps its watchers, as in etcd (its gateway closes the request side at once).
            let reading = sink.clone();
            let mut sink = Some(sink);
            loop {
                let message = match inbound.message().await {
                    Ok(Some(message)) => message,
                    Ok(None) => {
                        reading.closed().await;
                        break;
                    }
                    Err(_) => break,
                };
                let Some(request) = watch_request(message) else { continue };
                let command = Command::Watch {
                    stream,
                    credential: credential.clone(),
                    request,
                    sink: sink.take(),
                };
                if !handle.send(command) {
                    break;
                }
            }
            handle.send(Command::WatchClosed { stream });
        });
        let outbound = UnboundedReceiverStream::new(responses)
            .map(|response| response.map(watch_response).map_err(status));
        Ok(Answer::new(Box::pin(outbound)))
    }
}
