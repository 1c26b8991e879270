//! How everything else reaches the member's task: the [`Command`]s it takes and the cheap
//! [`Handle`] that sends them. The gRPC services, the peer transport and the forwarding to the
//! leader depend on this module; the driver that answers the commands does too, so none of
//! them depends on another through it.

use crate::dial::Dialer;
use crate::metrics::Metrics;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use stead_core::api::{
    Credential, Error, Request, Response, ServerError, WatchCreateRequest, WatchRequest,
    WatchResponse,
};
use stead_core::watch::StreamId;
use tokio::sync::{mpsc, oneshot};

/// What the member's task is asked to do.
pub enum Command {
    /// A client request carrying an auth credential, answered on `reply`.
    Client {
        /// The request.
        request: Request,
        /// The credential from the gRPC metadata.
        credential: Option<Credential>,
        /// Where the answer goes.
        reply: oneshot::Sender<Result<Response, Error>>,
    },
    /// A message on a watch stream; the first one also hands over where responses go.
    Watch {
        /// The stream.
        stream: StreamId,
        /// The credential the stream was opened with.
        credential: Option<Credential>,
        /// The message.
        request: WatchRequest,
        /// The stream's response channel (first message only).
        sink: Option<mpsc::UnboundedSender<Result<WatchResponse, Error>>>,
    },
    /// The client closed a watch stream.
    WatchClosed {
        /// The stream.
        stream: StreamId,
    },
    /// A raft message from a peer.
    Peer(raft_proto::eraftpb::Message),
    /// The member's counters and gauges, for `/metrics`.
    Stats {
        /// Where the answer goes.
        reply: oneshot::Sender<stead_core::stats::NodeStats>,
    },
    /// Who leads, and where it listens (for forwarding requests only the leader answers).
    Leader {
        /// Where the answer goes.
        reply: oneshot::Sender<Option<Leader>>,
    },
}

/// The leader as one member knows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Leader {
    /// Its member id.
    pub id: u64,
    /// Whether it is the member asked.
    pub is_me: bool,
    /// Its peer URLs (known from the membership in the log, so from the start; its client
    /// URLs are not known until it has published them).
    pub peer_urls: Vec<String>,
    /// The member asked: its id and raft term, which etcd puts in the header of an answer it
    /// had from the leader.
    pub asked: (u64, u64),
}

/// A cheap handle the gRPC services use to reach the member.
#[derive(Clone)]
pub struct Handle {
    commands: mpsc::UnboundedSender<Command>,
    /// The next watch stream id: one sequence for clients' streams and the server's own.
    streams: Arc<AtomicU64>,
    /// etcd's request timeout: how long a request forwarded to the leader keeps trying.
    request_timeout: Duration,
    /// Channels to other members' peer URLs for forwarded requests, by URL (a channel
    /// reconnects by itself, so one per URL serves every call).
    peer_channels: Arc<Mutex<BTreeMap<String, tonic::transport::Channel>>>,
    /// How peers are dialed.
    dialer: Dialer,
    /// The member's metrics.
    metrics: Arc<Metrics>,
}

/// How long dialing a peer for a forwarded request may take.
const PEER_CONNECT_TIMEOUT: Duration = Duration::from_secs(1);

/// A watch the server opened for itself (Lock, Election); closed when dropped.
pub struct ServerWatch {
    handle: Handle,
    stream: StreamId,
    responses: mpsc::UnboundedReceiver<Result<WatchResponse, Error>>,
}

impl ServerWatch {
    /// The next response, or `None` once the member ended the stream.
    pub async fn next(&mut self) -> Option<Result<WatchResponse, Error>> {
        self.responses.recv().await
    }
}

impl Drop for ServerWatch {
    fn drop(&mut self) {
        self.handle.send(Command::WatchClosed { stream: self.stream });
    }
}

impl Handle {
    /// A handle sending on `commands`, for a member whose request timeout is `request_timeout`,
    /// reaching peers with `dialer`, counting in `metrics`.
    pub fn new(
        commands: mpsc::UnboundedSender<Command>,
        request_timeout: Duration,
        dialer: Dialer,
        metrics: Arc<Metrics>,
    ) -> Handle {
        Handle {
            commands,
            streams: Arc::new(AtomicU64::new(1)),
            request_timeout,
            peer_channels: Arc::default(),
            dialer,
            metrics,
        }
    }

    /// The member's metrics.
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// The member's counters and gauges of the moment (`None` once it has stopped).
    pub async fn stats(&self) -> Option<stead_core::stats::NodeStats> {
        let (reply, answer) = oneshot::channel();
        self.commands.send(Command::Stats { reply }).ok()?;
        answer.await.ok()
    }

    /// Sends `request` with `credential` and waits for the answer.
    pub async fn call(
        &self,
        request: Request,
        credential: Option<Credential>,
    ) -> Result<Response, Error> {
        let (reply, answer) = oneshot::channel();
        self.commands
            .send(Command::Client { request, credential, reply })
            .map_err(|_| Error::Server(ServerError::Stopped))?;
        answer.await.map_err(|_| Error::Server(ServerError::Stopped))?
    }

    /// A watch stream id no other stream of this member has.
    pub fn new_stream(&self) -> StreamId {
        self.streams.fetch_add(1, Ordering::Relaxed)
    }

    /// Opens a watch for the server's own use, as `credential`'s user.
    pub fn open_watch(
        &self,
        credential: Option<Credential>,
        create: WatchCreateRequest,
    ) -> Result<ServerWatch, Error> {
        let stream = self.new_stream();
        let (sink, responses) = mpsc::unbounded_channel();
        let request = WatchRequest::Create(create);
        if !self.send(Command::Watch { stream, credential, request, sink: Some(sink) }) {
            return Err(Error::Server(ServerError::Stopped));
        }
        Ok(ServerWatch { handle: self.clone(), stream, responses })
    }

    /// The leader, if this member knows one.
    pub async fn leader(&self) -> Option<Leader> {
        let (reply, answer) = oneshot::channel();
        self.commands.send(Command::Leader { reply }).ok()?;
        answer.await.ok()?
    }

    /// etcd's request timeout for this member.
    pub fn request_timeout(&self) -> Duration {
        self.request_timeout
    }

    /// The channel to a peer URL that forwarded requests share, dialed the first time
    /// (`None` if it cannot be reached now).
    pub async fn peer_channel(&self, url: &str) -> Option<tonic::transport::Channel> {
        let known = self.peer_channels.lock().ok().and_then(|c| c.get(url).cloned());
        if let Some(channel) = known {
            return Some(channel);
        }
        let channel = match self.dialer.connect(url, PEER_CONNECT_TIMEOUT).await {
            Ok(channel) => channel,
            Err(error) => {
                tracing::debug!(%error, "cannot reach a peer");
                return None;
            }
        };
        if let Ok(mut channels) = self.peer_channels.lock() {
            channels.insert(url.to_string(), channel.clone());
        }
        Some(channel)
    }

    /// Sends any command; false if the member has stopped.
    pub fn send(&self, command: Command) -> bool {
        self.commands.send(command).is_ok()
    }
}
