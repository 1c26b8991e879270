//! The gateway's way into the member: a gRPC client of the member's own gRPC services, called
//! in process (no socket, no second copy of any service), with messages kept as protobuf bytes.
//! etcd's gateway is a gRPC client of its own server too, over loopback; calling the services
//! the same way means a gateway request is checked, authorised and answered exactly as the same
//! call from `etcdctl` is.

use bytes::{Buf, BufMut, Bytes};
use tokio_stream::Stream;
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder, Streaming};
use tonic::metadata::MetadataMap;
use tonic::Status;

/// The member's gRPC services, to be called in process.
#[derive(Clone)]
pub struct Upstream {
    services: axum::Router,
}

impl Upstream {
    /// Calls into `services` (the client port's gRPC routes).
    pub fn new(services: axum::Router) -> Upstream {
        Upstream { services }
    }

    /// Calls the method at gRPC `path` with `requests` (each one encoded message) and the
    /// caller's `metadata`; the responses come as a stream. A call refused before it answers
    /// (a unary error, a stream refused at once) is the `Err`.
    pub async fn call(
        &self,
        path: &str,
        metadata: MetadataMap,
        requests: impl Stream<Item = Bytes> + Send + 'static,
    ) -> Result<Streaming<Bytes>, Status> {
        let path = path.parse().map_err(|_| Status::internal(format!("bad path {path}")))?;
        // The gateway reads answers of any size, as etcd's does (its client takes up to 2 GiB).
        let mut client =
            tonic::client::Grpc::new(self.services.clone()).max_decoding_message_size(usize::MAX);
        client.ready().await.map_err(|e| Status::unavailable(e.to_string()))?;
        let mut request = tonic::Request::new(requests);
        *request.metadata_mut() = metadata;
        Ok(client.streaming(request, path, RawCodec).await?.into_inner())
    }
}

/// Messages as their protobuf bytes, as they are.
#[derive(Clone, Copy, Default)]
struct RawCodec;

impl Codec for RawCodec {
    type Encode = Bytes;
    type Decode = Bytes;
    type Encoder = RawCodec;
    type Decoder = RawCodec;

    fn encoder(&mut self) -> RawCodec {
        RawCodec
    }

    fn decoder(&mut self) -> RawCodec {
        RawCodec
    }
}

impl Encoder for RawCodec {
    type Item = Bytes;
    type Error = Status;

    fn encode(&mut self, item: Bytes, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        dst.put(item);
        Ok(())
    }
}

impl Decoder for RawCodec {
    type Item = Bytes;
    type Error = Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Bytes>, Status> {
        Ok(Some(src.copy_to_bytes(src.remaining())))
    }
}
