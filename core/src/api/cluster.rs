//! The Cluster service's messages (etcd's `Member*` and Maintenance's `MoveLeader`).

use super::kv::ResponseHeader;
use serde::{Deserialize, Serialize};

/// A cluster member (etcd's `etcdserverpb.Member`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    /// The member's id (its raft id).
    pub id: u64,
    /// The member's name (empty until it has started and published it).
    pub name: String,
    /// URLs the member listens on for peers.
    pub peer_urls: Vec<String>,
    /// URLs the member serves clients on.
    pub client_urls: Vec<String>,
    /// A learner receives the log but does not vote.
    pub is_learner: bool,
}

/// A request about the cluster's membership or leadership.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ClusterRequest {
    /// Add a member (etcd's MemberAdd).
    MemberAdd {
        /// The new member's peer URLs.
        peer_urls: Vec<String>,
        /// Add it as a learner.
        is_learner: bool,
    },
    /// Remove a member (MemberRemove).
    MemberRemove {
        /// The member to remove.
        id: u64,
    },
    /// Change a member's peer URLs (MemberUpdate).
    MemberUpdate {
        /// The member to change.
        id: u64,
        /// Its new peer URLs.
        peer_urls: Vec<String>,
    },
    /// List the members (MemberList).
    MemberList,
    /// Make a learner a voting member (MemberPromote).
    MemberPromote {
        /// The learner.
        id: u64,
    },
    /// Hand leadership to another voting member (Maintenance.MoveLeader).
    MoveLeader {
        /// The member to become leader.
        target: u64,
    },
    /// A member publishes its name and client URLs once it runs (etcd's `publish`); members
    /// propose these themselves, clients cannot.
    Publish {
        /// The member.
        id: u64,
        /// Its name.
        name: String,
        /// The URLs it serves clients on.
        client_urls: Vec<String>,
    },
}

/// The answer to a [`ClusterRequest`]: etcd's responses differ only in which of these they carry.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterResponse {
    /// The usual header.
    pub header: ResponseHeader,
    /// The member added (MemberAdd only).
    pub member: Option<Member>,
    /// Every member after the change (empty for MoveLeader).
    pub members: Vec<Member>,
}
