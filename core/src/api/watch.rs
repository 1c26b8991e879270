//! The Watch service's messages (etcd's `WatchRequest` and `WatchResponse`).
//!
//! A watch stream carries many watchers. The client creates and cancels watchers and asks for
//! progress; the server answers with created/canceled notices, batches of events and progress
//! notifications. Field names follow etcd 3.4's `rpc.proto`.

use super::kv::{Event, ResponseHeader};
use serde::{Deserialize, Serialize};

/// A watch id, unique within its stream.
pub type WatchId = i64;

/// Events a watcher does not want (`WatchCreateRequest.FilterType`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum WatchFilter {
    /// Drop put events (`NOPUT`).
    NoPut,
    /// Drop delete events (`NODELETE`).
    NoDelete,
}

/// Creates a watcher (`WatchCreateRequest`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WatchCreateRequest {
    /// The key, or the start of the range.
    pub key: Vec<u8>,
    /// The end of the range (exclusive); empty: only `key`; `[0]`: every key from `key` on.
    pub range_end: Vec<u8>,
    /// The first revision to report; 0: the revision after the current one.
    pub start_revision: i64,
    /// Ask for periodic progress notifications while nothing happens.
    pub progress_notify: bool,
    /// Events to drop.
    pub filters: Vec<WatchFilter>,
    /// Include each event's previous version.
    pub prev_kv: bool,
    /// The id to use; 0 lets the server choose (ids are per stream).
    pub watch_id: WatchId,
    /// Split responses larger than the request size limit into fragments.
    pub fragment: bool,
}

/// A message from the client on a watch stream (`WatchRequest`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum WatchRequest {
    /// Create a watcher.
    Create(WatchCreateRequest),
    /// Cancel the watcher with this id.
    Cancel {
        /// The watcher.
        watch_id: WatchId,
    },
    /// Ask for a progress notification on the whole stream.
    Progress,
}

/// A message to the client on a watch stream (`WatchResponse`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WatchResponse {
    /// `revision`: for events, the store's revision when they were sent; for a progress
    /// notification, a revision up to which every matching event has been delivered.
    pub header: ResponseHeader,
    /// The watcher this is for; -1 for a progress notification that covers the whole stream.
    pub watch_id: WatchId,
    /// Answers a create request.
    pub created: bool,
    /// The watcher ended (cancel request, error, or compaction).
    pub canceled: bool,
    /// Set when the watcher asked for history that compaction removed: the compacted revision.
    pub compact_revision: i64,
    /// Why the watcher was canceled, if an error did it.
    pub cancel_reason: String,
    /// More fragments of this response follow.
    pub fragment: bool,
    /// The events, in revision order.
    pub events: Vec<Event>,
}

impl WatchResponse {
    /// Whether this is a progress notification: no events and no created/canceled notice.
    pub fn is_progress_notify(&self) -> bool {
        self.events.is_empty() && !self.created && !self.canceled && self.compact_revision == 0
    }
}
