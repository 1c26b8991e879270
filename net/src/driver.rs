//! The driver: one tokio task owns the member (a [`Host`]: the node over the store on the real
//! disk) and is the only thing that touches it.
//!
//! Everything reaches it as a [`Command`] on one channel: client requests (answered through a
//! oneshot), watch stream messages, raft messages from peers. Each turn handles every command
//! waiting (up to a bound). WAL syncs run on the blocking pool, one at a time, each covering
//! every batch appended before it started (group commit), while the member goes on handling
//! commands; the node's outputs that wait for a batch go out when its sync completes. Ticks
//! come from the real clock at the node's `poll_timeout`. Decisions stay in the core: this
//! loop only moves data.

use crate::handle::{Command, Handle, Leader};
use crate::metrics::Metrics;
use crate::notice::{Notices, SnapshotTimer};
use crate::peer::Peers;
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use stead_core::api::{Error, Response, WatchResponse};
use stead_core::node::{ClientId, Input, Output};
use stead_core::time::Instant;
use stead_core::watch::StreamId;
use stead_store::host::{Host, HostError, PendingSync};
#[cfg(not(madsim))]
use stead_store::RealDisk;
use stead_store::StoreError;
use stead_store::{Disk, MemDisk};
use tokio::sync::{mpsc, oneshot};

/// Commands handled per turn before the WAL is synced.
const BATCH_MAX: usize = 4096;

/// The member's task state.
pub struct Driver<D: MemberDisk> {
    host: Host<D>,
    start: tokio::time::Instant,
    next_client: ClientId,
    pending: BTreeMap<ClientId, oneshot::Sender<Result<Response, Error>>>,
    watches: BTreeMap<StreamId, mpsc::UnboundedSender<Result<WatchResponse, Error>>>,
    peers: Peers,
    /// The member's disk, for syncs.
    disk: D,
    /// What the driver measures and logs about the member.
    notices: Notices,
}

impl<D: MemberDisk> Driver<D> {
    /// A driver for `host` on `disk` (which runs its WAL syncs), whose clock started at `start`,
    /// counting in `metrics`, and the handle to reach it.
    pub fn new(
        host: Host<D>,
        disk: D,
        start: tokio::time::Instant,
        peers: Peers,
        metrics: Arc<Metrics>,
        heartbeat: std::time::Duration,
    ) -> (Driver<D>, Handle, mpsc::UnboundedReceiver<Command>) {
        let (commands, receiver) = mpsc::unbounded_channel();
        let timeout = std::time::Duration::from_nanos(host.node().request_timeout().as_nanos());
        let handle = Handle::new(commands, timeout, peers.dialer().clone(), metrics.clone());
        let notices = Notices::new(host.node(), heartbeat, metrics.clone());
        let host = host.with_observer(Box::new(SnapshotTimer::new(metrics)));
        let driver = Driver {
            host,
            start,
            next_client: 0,
            pending: BTreeMap::new(),
            watches: BTreeMap::new(),
            peers,
            disk,
            notices,
        };
        (driver, handle, receiver)
    }

    /// The node's clock: time since the process started.
    fn now(&self) -> Instant {
        Instant::from_nanos(self.start.elapsed().as_nanos() as u64)
    }

    /// Runs until every handle is gone, or the store fails (a WAL failure stops the member, as
    /// it stops etcd).
    pub async fn run(
        mut self,
        mut commands: mpsc::UnboundedReceiver<Command>,
    ) -> Result<(), HostError> {
        // The sync in flight: the batches it covers and where its outcome arrives.
        type Syncing = (PendingSync, oneshot::Receiver<std::io::Result<()>>, tokio::time::Instant);
        let mut syncing: Option<Syncing> = None;
        loop {
            if syncing.is_none() {
                if let Some(sync) = self.host.begin_sync()? {
                    let started = tokio::time::Instant::now();
                    let done = self.disk.start_sync(sync.path.as_deref());
                    syncing = Some((sync, done, started));
                }
            }
            let wake = self.host.node().poll_timeout();
            let deadline = self.start + std::time::Duration::from_nanos(wake.as_nanos());
            let synced = async {
                match syncing.as_mut() {
                    Some((_, done, _)) => done.await,
                    None => std::future::pending().await,
                }
            };
            // Biased, so the order is the same in every run (tokio picks at random otherwise,
            // from a seed the simulation does not control). The timer goes first: it is ready
            // only once per deadline, so it cannot starve the others.
            tokio::select! {
                biased;
                _ = tokio::time::sleep_until(deadline) => {
                    let now = self.now();
                    self.input(Input::Tick { now })?;
                }
                outcome = synced => {
                    let (sync, _, started) = syncing.take().expect("a sync was in flight");
                    if sync.path.is_some() {
                        self.notices.synced(started.elapsed());
                    }
                    let ended = || Err(std::io::Error::other("the sync thread ended"));
                    if let Err(error) = outcome.unwrap_or_else(|_| ended()) {
                        let path = sync.path.as_deref().unwrap_or(Path::new(""));
                        return Err(sync_failed(path, error));
                    }
                    let started = tokio::time::Instant::now();
                    let outputs = self.host.finish_sync(sync)?;
                    self.notices.after_input(self.host.node(), started.elapsed());
                    self.route(outputs)?;
                }
                command = commands.recv() => {
                    let Some(command) = command else { return Ok(()) };
                    self.command(command)?;
                    for _ in 0..BATCH_MAX {
                        match commands.try_recv() {
                            Ok(command) => self.command(command)?,
                            Err(_) => break,
                        }
                    }
                }
            }
        }
    }

    fn command(&mut self, command: Command) -> Result<(), HostError> {
        match command {
            Command::Client { request, credential, reply } => {
                self.next_client += 1;
                let id = self.next_client;
                self.pending.insert(id, reply);
                self.input(Input::Client { id, credential, request })
            }
            Command::Watch { stream, credential, request, sink } => {
                if let Some(sink) = sink {
                    self.watches.insert(stream, sink);
                }
                self.input(Input::Watch { stream, credential, request })
            }
            Command::WatchClosed { stream } => {
                self.watches.remove(&stream);
                self.input(Input::WatchClosed { stream })
            }
            Command::Peer(message) => self.input(Input::Message(message)),
            Command::Stats { reply } => {
                let _ = reply.send(self.host.node().stats());
                Ok(())
            }
            Command::Leader { reply } => {
                let node = self.host.node();
                let leader = node.leader().map(|id| {
                    let member = node.members().into_iter().find(|m| m.id == id);
                    let peer_urls = member.map(|m| m.peer_urls).unwrap_or_default();
                    Leader {
                        id,
                        is_me: id == node.id(),
                        peer_urls,
                        asked: (node.id(), node.term()),
                    }
                });
                let _ = reply.send(leader);
                Ok(())
            }
        }
    }

    fn input(&mut self, input: Input) -> Result<(), HostError> {
        let started = tokio::time::Instant::now();
        let outputs = self.host.handle(input)?;
        self.notices.after_input(self.host.node(), started.elapsed());
        self.route(outputs)
    }

    /// Carries outputs out: messages to peers, answers to clients, watch responses (each event
    /// response is reported delivered once it is on its stream's channel).
    fn route(&mut self, outputs: Vec<Output>) -> Result<(), HostError> {
        let mut delivered = Vec::new();
        for output in outputs {
            match output {
                Output::Send { to, message } => {
                    self.notices.sending(&message);
                    let host = &self.host;
                    self.peers.send(to, message, || host.node().members());
                }
                Output::Respond { id, result } => {
                    if let Some(reply) = self.pending.remove(&id) {
                        let _ = reply.send(result);
                    }
                }
                Output::Watch { stream, response } => {
                    let events = !response.events.is_empty();
                    let open =
                        self.watches.get(&stream).is_some_and(|s| s.send(Ok(response)).is_ok());
                    if open && events {
                        delivered.push(stream);
                    }
                }
                Output::WatchEnded { stream, error } => {
                    if let Some(sink) = self.watches.remove(&stream) {
                        let _ = sink.send(Err(error));
                    }
                }
                Output::Persist { .. } | Output::SaveSnapshot { .. } => {
                    unreachable!("the host persists")
                }
            }
        }
        for stream in delivered {
            self.input(Input::WatchSent { stream, count: 1 })?;
        }
        Ok(())
    }
}

/// A member's disk as the driver needs it: the store's [`Disk`], plus a way to run a WAL sync
/// off the member's task, so the member keeps handling requests (and appending the next batch)
/// while the disk syncs: group commit without stalling the member.
pub trait MemberDisk: Disk + Clone + Send + 'static {
    /// Starts syncing the file at `path` (none: already durable); the outcome arrives on the
    /// receiver.
    fn start_sync(&mut self, path: Option<&Path>) -> oneshot::Receiver<std::io::Result<()>>;
}

/// The real disk syncs on tokio's blocking pool.
#[cfg(not(madsim))]
impl MemberDisk for RealDisk {
    fn start_sync(&mut self, path: Option<&Path>) -> oneshot::Receiver<std::io::Result<()>> {
        let (done, outcome) = oneshot::channel();
        match path.map(|path| self.shared_file(path)) {
            None => {
                let _ = done.send(Ok(()));
            }
            Some(Err(error)) => {
                let _ = done.send(Err(error));
            }
            Some(Ok(file)) => {
                tokio::task::spawn_blocking(move || {
                    let _ = done.send(file.sync_data());
                });
            }
        }
        outcome
    }
}

/// The simulated disk syncs at once (the tier-2 simulation; its crashes lose what was not
/// synced).
impl MemberDisk for MemDisk {
    fn start_sync(&mut self, path: Option<&Path>) -> oneshot::Receiver<std::io::Result<()>> {
        let (done, outcome) = oneshot::channel();
        let _ = done.send(path.map_or(Ok(()), |path| self.sync(path)));
        outcome
    }
}

/// A failed WAL sync stops the member, as it stops etcd.
fn sync_failed(path: &Path, error: std::io::Error) -> HostError {
    HostError::Store(StoreError::Io { op: "sync", path: path.to_path_buf(), source: error })
}
