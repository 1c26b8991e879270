//! Forwarding lease renewals and TTL questions to the leader, as etcd's followers do: the
//! core answers `not leader` on a follower, and this layer asks the leader over its client URL.

use crate::driver::Handle;
use crate::proto::etcdserverpb as pb;
use crate::proto::etcdserverpb::lease_client::LeaseClient;
use std::collections::BTreeMap;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;
use stead_core::api::{ClusterError, Error, ServerError};
use tonic::transport::Channel;

/// Channels to leaders by client URL, reused across calls (a channel reconnects by itself).
fn channels() -> &'static Mutex<BTreeMap<String, Channel>> {
    static CHANNELS: OnceLock<Mutex<BTreeMap<String, Channel>>> = OnceLock::new();
    CHANNELS.get_or_init(Mutex::default)
}

/// The leader's Lease client, or why there is none.
async fn leader_client(handle: &Handle) -> Result<LeaseClient<Channel>, Error> {
    let (_, urls) = handle.leader().await.ok_or(Error::Server(ServerError::NoLeader))?;
    let url = urls.first().ok_or(Error::Cluster(ClusterError::NotLeader))?;
    let cached = channels().lock().ok().and_then(|c| c.get(url).cloned());
    let channel = match cached {
        Some(channel) => channel,
        None => {
            let channel = tonic::transport::Endpoint::from_shared(url.clone())
                .map_err(|_| Error::Cluster(ClusterError::NotLeader))?
                .connect_timeout(Duration::from_secs(1))
                .tcp_nodelay(true)
                .connect()
                .await
                .map_err(|_| Error::Server(ServerError::NoLeader))?;
            if let Ok(mut cache) = channels().lock() {
                cache.insert(url.clone(), channel.clone());
            }
            channel
        }
    };
    Ok(LeaseClient::new(channel))
}

/// Renews lease `id` on the leader, with the caller's token.
pub async fn keep_alive(
    handle: &Handle,
    id: i64,
    token: Option<String>,
) -> Result<pb::LeaseKeepAliveResponse, tonic::Status> {
    let mut client = leader_client(handle).await.map_err(crate::service::status)?;
    let mut request = tonic::Request::new(tokio_stream::iter([pb::LeaseKeepAliveRequest { id }]));
    with_token(&mut request, token);
    let mut answers = client.lease_keep_alive(request).await?.into_inner();
    answers
        .message()
        .await?
        .ok_or_else(|| crate::service::status(Error::Server(ServerError::LeaderChanged)))
}

/// Asks the leader for lease `id`'s time to live.
pub async fn time_to_live(
    handle: &Handle,
    question: pb::LeaseTimeToLiveRequest,
    token: Option<String>,
) -> Result<pb::LeaseTimeToLiveResponse, tonic::Status> {
    let mut client = leader_client(handle).await.map_err(crate::service::status)?;
    let mut request = tonic::Request::new(question);
    with_token(&mut request, token);
    Ok(client.lease_time_to_live(request).await?.into_inner())
}

fn with_token<T>(request: &mut tonic::Request<T>, token: Option<String>) {
    if let Some(value) = token.and_then(|t| t.parse().ok()) {
        request.metadata_mut().insert("token", value);
    }
}
