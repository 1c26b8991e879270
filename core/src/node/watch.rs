//! The node's side of watches: stream inputs into the [`WatchHub`], applied events out to it, and
//! its responses out as [`Output::Watch`].
//!
//! Every member serves watches from what it has applied, as etcd's do. Events reach the hub
//! right after the entry that made them is applied, one revision at a time; watchers behind the
//! store catch up whenever the node has processed an input. A learner refuses watch streams
//! (etcd's stream interceptor), and a removed member ends them.

use super::auth::Caller;
use super::{Node, Output};
use crate::api::{
    AuthError, Credential, Error, ResponseHeader, ServerError, WatchCreateRequest, WatchRequest,
    WatchResponse,
};
use crate::watch::StreamId;

impl Node {
    /// Handles a client's message on watch stream `stream`, opened by `credential`.
    pub(super) fn watch_request(
        &mut self,
        stream: StreamId,
        credential: Option<Credential>,
        request: WatchRequest,
    ) {
        if self.is_learner() {
            return self.end_watch_stream(stream, ServerError::NotSupportedForLearner.into());
        }
        match request {
            WatchRequest::Create(create) => {
                if let Err(error) = self.watch_permitted(credential.as_ref(), &create) {
                    return self.refuse_watch(stream, error);
                }
                self.hub.create(stream, &create, self.machine.kv())
            }
            WatchRequest::Cancel { watch_id } => self.hub.cancel(stream, watch_id),
            WatchRequest::Progress => self.hub.request_progress(stream),
        }
    }

    /// Whether the stream's user may read what a new watcher covers (checked once, at
    /// creation, as etcd does). A token whose entry is not applied here yet is refused.
    fn watch_permitted(
        &mut self,
        credential: Option<&Credential>,
        create: &WatchCreateRequest,
    ) -> Result<(), Error> {
        let caller = match self.caller(credential)? {
            Caller::Known(caller) => caller,
            Caller::NotYet(_) => return Err(AuthError::InvalidAuthToken.into()),
        };
        let auth = self.machine.auth();
        Ok(crate::auth::check::check_read(auth, caller.as_ref(), &create.key, &create.range_end)?)
    }

    /// Tells the client its watcher was refused, as etcd does: a created-and-canceled response
    /// with watch id -1 and the gRPC status as the reason.
    fn refuse_watch(&mut self, stream: StreamId, error: Error) {
        let response = WatchResponse {
            header: ResponseHeader {
                cluster_id: self.config.cluster_id,
                member_id: self.config.id,
                revision: self.machine.kv().current_revision(),
                raft_term: self.raw.raft.term,
            },
            watch_id: -1,
            created: true,
            canceled: true,
            cancel_reason: format!(
                "rpc error: code = {} desc = {}",
                error.code().name(),
                error.message()
            ),
            ..WatchResponse::default()
        };
        self.outputs.push_back(Output::Watch { stream, response });
    }

    /// Ends a stream with an error and forgets its watchers.
    pub(super) fn end_watch_stream(&mut self, stream: StreamId, error: Error) {
        self.hub.close(stream);
        self.outputs.push_back(Output::WatchEnded { stream, error });
    }

    /// Hands the events applied since the last call to the watchers, one revision at a time.
    pub(super) fn deliver_events(&mut self) {
        let events = self.machine.take_events();
        for revision in events.chunk_by(|a, b| a.kv.mod_revision == b.kv.mod_revision) {
            self.hub.notify(revision[0].kv.mod_revision, revision);
        }
    }

    /// Catches watchers up and turns the hub's responses into outputs.
    pub(super) fn flush_watches(&mut self) {
        self.hub.sync(self.machine.kv());
        for (stream, response) in self.hub.take_outputs() {
            self.machine.tally_mut().events_sent += response.events.len() as u64;
            self.outputs.push_back(Output::Watch { stream, response });
        }
    }

    /// Gives the hub the identity and term its response headers carry (before it sizes
    /// fragments, which count the header).
    pub(super) fn update_watch_identity(&mut self) {
        let (cluster, member, term) = (self.config.cluster_id, self.config.id, self.raw.raft.term);
        self.hub.set_identity(cluster, member, term);
    }
}
