//! The peer transport: raft messages between members over gRPC (`steadpeer.Peer/Stream`).
//!
//! Each peer gets one sender task with a queue. The task connects to the peer's first peer URL
//! (from the membership the node applied) and opens one long-lived client stream, then sends
//! whatever is queued as one batch per stream message, in order, without waiting for replies.
//! When the stream ends it reconnects with backoff; messages queued meanwhile beyond a bound are
//! dropped, which raft tolerates (it retries). Received batches are handed to the member's task
//! in order. The same service answers a joining member's member-list question and requests
//! other members forward to the leader ([`crate::forward`]).

use crate::dial::Dialer;
use crate::handle::{Command, Handle};
use crate::metrics::Metrics;
use crate::proto::etcdserverpb::{MemberListRequest, MemberListResponse};
use crate::proto::steadpeer::peer_client::PeerClient;
use crate::proto::steadpeer::peer_server::{Peer, PeerServer};
use crate::proto::steadpeer::{ForwardAnswer, Forwarded, RaftAck, RaftBatch};
use protobuf::Message as _;
use raft_proto::eraftpb::Message;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use stead_core::api::Member;
use tokio::sync::mpsc;

/// The most messages one call carries.
const BATCH_MAX: usize = 512;
/// Batches encoded but not yet taken by the connection.
const STREAM_BATCHES: usize = 64;
/// Messages held for a peer that cannot be reached; older ones beyond this are dropped.
const QUEUE_MAX: usize = 10_000;
/// The largest message a member sends or accepts (a snapshot travels as one message).
pub const MESSAGE_BYTES_MAX: usize = 512 * 1024 * 1024;

/// How often a member times a round trip to each peer (etcd probes every few seconds).
const PROBE_INTERVAL: Duration = Duration::from_secs(5);

/// The sender tasks, by member id.
pub struct Peers {
    queues: BTreeMap<u64, mpsc::UnboundedSender<Message>>,
    /// Where members listen before the node has applied the membership (a member that joined
    /// a running cluster learns it from the log, but must answer the leader before that).
    known: Vec<Member>,
    /// How peers are dialed.
    dialer: Dialer,
    /// This member's id, and where traffic is counted.
    local: u64,
    metrics: Arc<Metrics>,
}

impl Peers {
    /// Senders for member `local` that dial with `dialer`, fall back on `known` for members the
    /// node does not know yet, and count their traffic in `metrics`.
    pub fn new(known: Vec<Member>, dialer: Dialer, local: u64, metrics: Arc<Metrics>) -> Peers {
        Peers { queues: BTreeMap::new(), known, dialer, local, metrics }
    }

    /// How peers are dialed.
    pub fn dialer(&self) -> &Dialer {
        &self.dialer
    }

    /// Queues `message` for member `to`, starting its sender task if needed (`members` says
    /// where it listens; asked only then). A member with no peer URL is unreachable: the
    /// message is dropped.
    pub fn send(&mut self, to: u64, message: Message, members: impl FnOnce() -> Vec<Member>) {
        let message = match self.queues.get(&to) {
            Some(queue) => match queue.send(message) {
                Ok(()) => return,
                Err(closed) => closed.0,
            },
            None => message,
        };
        let members = members();
        // Every peer gets its link now: a follower sends only to its leader, but its probes
        // and peer metrics cover every peer, as etcd's streams do.
        let unlinked: Vec<(u64, String)> = members
            .iter()
            .chain(&self.known)
            .filter(|m| m.id != self.local && m.id != to && !self.queues.contains_key(&m.id))
            .filter_map(|m| Some((m.id, m.peer_urls.first()?.clone())))
            .collect();
        for (id, url) in unlinked {
            if !self.queues.contains_key(&id) {
                self.link(id, url);
            }
        }
        let member = members.iter().chain(&self.known).find(|m| m.id == to);
        let Some(url) = member.and_then(|m| m.peer_urls.first()) else {
            return;
        };
        let queue = self.link(to, url.clone());
        let _ = queue.send(message);
    }

    /// Starts the sender and the prober of member `to` at `url`; returns its queue.
    fn link(&mut self, to: u64, url: String) -> mpsc::UnboundedSender<Message> {
        let (queue, receiver) = mpsc::unbounded_channel();
        let link = Link { local: self.local, to, url, metrics: self.metrics.clone() };
        tokio::spawn(probe(link.clone(), self.dialer.clone(), queue.downgrade()));
        tokio::spawn(sender(link, self.dialer.clone(), receiver));
        self.queues.insert(to, queue.clone());
        queue
    }
}

/// One member's connection to one peer, and where its traffic is counted.
#[derive(Clone)]
struct Link {
    local: u64,
    to: u64,
    url: String,
    metrics: Arc<Metrics>,
}

impl Link {
    fn to_label(&self) -> String {
        format!("{:x}", self.to)
    }

    /// The peer answers its probes, or stopped answering (`etcd_network_active_peers`,
    /// `etcd_network_disconnected_peers_total`).
    fn connected(&self, up: bool) {
        let labels = [format!("{:x}", self.local), self.to_label()];
        let labels = [labels[0].as_str(), labels[1].as_str()];
        let network = &self.metrics.network;
        if up {
            network.active_peers.with_label_values(&labels).set(1);
        } else {
            network.active_peers.with_label_values(&labels).set(0);
            network.disconnected_peers.with_label_values(&labels).inc();
        }
    }

    fn failed(&self, messages: u64) {
        let to = self.to_label();
        self.metrics.network.peer_sent_failures.with_label_values(&[&to]).inc_by(messages);
    }
}

/// Sends a peer's queue on one long-lived stream, batch by batch, reconnecting as needed.
async fn sender(link: Link, dialer: Dialer, mut queue: mpsc::UnboundedReceiver<Message>) {
    let (to, url) = (link.to, link.url.clone());
    let sent_bytes = link.metrics.network.peer_sent_bytes.with_label_values(&[&link.to_label()]);
    let mut backoff = Duration::from_millis(50);
    // Connect only once there is something to send.
    while let Some(first) = queue.recv().await {
        let mut client = match connect(&dialer, &url).await {
            Ok(client) => client,
            Err(error) => {
                tracing::debug!(peer = to, %url, %error, "peer unreachable");
                link.failed(1);
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(1));
                link.failed(shed(&mut queue));
                continue;
            }
        };
        backoff = Duration::from_millis(50);
        let (batches, outgoing) = mpsc::channel(STREAM_BATCHES);
        let call = client.stream(tokio_stream::wrappers::ReceiverStream::new(outgoing));
        tokio::pin!(call);
        let mut next = Some(first);
        loop {
            let first = match next.take() {
                Some(message) => message,
                // Biased: the same order in every run (see the driver).
                None => tokio::select! {
                    biased;
                    ended = &mut call => {
                        if ended.is_err() {
                            link.failed(1);
                        }
                        tracing::debug!(peer = to, outcome = ?ended.err(), "peer stream ended");
                        break;
                    }
                    message = queue.recv() => match message {
                        Some(message) => message,
                        None => return,
                    },
                },
            };
            let batch = encode(first, &mut queue);
            let bytes: usize = batch.messages.iter().map(Vec::len).sum();
            let count = batch.messages.len() as u64;
            tokio::select! {
                biased;
                ended = &mut call => {
                    tracing::debug!(peer = to, outcome = ?ended.err(), "peer stream ended");
                    link.failed(count.max(1));
                    break;
                }
                sent = batches.send(batch) => {
                    if sent.is_err() { break }
                    sent_bytes.inc_by(bytes as u64);
                }
            }
        }
    }
}

/// Times a round trip to the peer every [`PROBE_INTERVAL`] for as long as its sender lives (`etcd_network_peer_round_trip_time_seconds`); a
/// peer that answers is an active peer, one that stops answering a disconnected one.
async fn probe(link: Link, dialer: Dialer, alive: mpsc::WeakUnboundedSender<Message>) {
    let rtt = link.metrics.network.peer_rtt.with_label_values(&[&link.to_label()]);
    let (mut client, mut up) = (None, false);
    while alive.upgrade().is_some() {
        if client.is_none() {
            client = connect(&dialer, &link.url).await.ok();
        }
        let mut answered = false;
        if let Some(peer) = client.as_mut() {
            let started = tokio::time::Instant::now();
            let asked = tokio::time::timeout(PROBE_INTERVAL, peer.probe(RaftAck {})).await;
            answered = matches!(asked, Ok(Ok(_)));
            if answered {
                rtt.observe(started.elapsed().as_secs_f64());
            }
        }
        if !answered {
            client = None;
        }
        if answered != up {
            up = answered;
            link.connected(up);
        }
        tokio::time::sleep(PROBE_INTERVAL).await;
    }
}

/// `first` and whatever else is queued (up to [`BATCH_MAX`]), encoded as one batch.
fn encode(first: Message, queue: &mut mpsc::UnboundedReceiver<Message>) -> RaftBatch {
    let mut messages = vec![first.write_to_bytes().expect("raft messages encode")];
    while messages.len() < BATCH_MAX {
        match queue.try_recv() {
            Ok(message) => messages.push(message.write_to_bytes().expect("raft messages encode")),
            Err(_) => break,
        }
    }
    RaftBatch { messages }
}

async fn connect(
    dialer: &Dialer,
    url: &str,
) -> Result<PeerClient<tonic::transport::Channel>, String> {
    let channel = dialer.connect(url, Duration::from_secs(1)).await?;
    Ok(PeerClient::new(channel)
        .max_decoding_message_size(MESSAGE_BYTES_MAX)
        .max_encoding_message_size(MESSAGE_BYTES_MAX))
}

/// Drops queued messages beyond [`QUEUE_MAX`] while a peer is unreachable; returns how many.
fn shed(queue: &mut mpsc::UnboundedReceiver<Message>) -> u64 {
    let mut dropped = 0;
    while queue.len() > QUEUE_MAX {
        let _ = queue.try_recv();
        dropped += 1;
    }
    dropped
}

/// The receiving side: hands each batch to the member.
pub struct PeerService {
    handle: Handle,
}

impl PeerService {
    /// The service for the member behind `handle`.
    pub fn server(handle: Handle) -> crate::service::grpc_server!(PeerServer, PeerService) {
        PeerServer::new(PeerService { handle })
            .max_decoding_message_size(MESSAGE_BYTES_MAX)
            .max_encoding_message_size(MESSAGE_BYTES_MAX)
    }
}

#[tonic::async_trait]
impl Peer for PeerService {
    async fn stream(
        &self,
        request: tonic::Request<tonic::Streaming<RaftBatch>>,
    ) -> Result<tonic::Response<RaftAck>, tonic::Status> {
        let mut batches = request.into_inner();
        let received = &self.handle.metrics().network.peer_received_bytes;
        let mut counters = BTreeMap::new();
        while let Some(batch) = batches.message().await? {
            for bytes in batch.messages {
                let message = Message::parse_from_bytes(&bytes).map_err(|e| {
                    tonic::Status::invalid_argument(format!("bad raft message: {e}"))
                })?;
                counters
                    .entry(message.from)
                    .or_insert_with(|| {
                        received.with_label_values(&[&format!("{:x}", message.from)])
                    })
                    .inc_by(bytes.len() as u64);
                if !self.handle.send(Command::Peer(message)) {
                    return Err(tonic::Status::unavailable("etcdserver: server stopped"));
                }
            }
        }
        Ok(tonic::Response::new(RaftAck {}))
    }

    async fn members(
        &self,
        _request: tonic::Request<MemberListRequest>,
    ) -> Result<tonic::Response<MemberListResponse>, tonic::Status> {
        let answer = crate::service::cluster::member_list(&self.handle, None).await?;
        Ok(tonic::Response::new(answer))
    }

    async fn probe(
        &self,
        _request: tonic::Request<RaftAck>,
    ) -> Result<tonic::Response<RaftAck>, tonic::Status> {
        Ok(tonic::Response::new(RaftAck {}))
    }

    async fn forward(
        &self,
        request: tonic::Request<Forwarded>,
    ) -> Result<tonic::Response<ForwardAnswer>, tonic::Status> {
        let answer = crate::forward::answer(&self.handle, request.into_inner()).await;
        answer.map(tonic::Response::new).map_err(tonic::Status::invalid_argument)
    }
}
