//! The cluster's membership as replicated state, with etcd 3.4's rules for changing it.
//!
//! Adding, removing and promoting members travel through raft as conf changes whose context is
//! a [`ConfChangeContext`] (who proposed it, and the change). Each is checked against the
//! membership when it is applied, so that every member decides alike (etcd's
//! `ValidateConfigurationChange`). A refused change leaves both the membership and raft's
//! configuration untouched. Peer-URL updates change no raft configuration and travel as normal
//! entries. Member and cluster ids are derived as etcd derives them.

use super::RequestHeader;
use crate::api::{ClusterError, Member};
use serde::{Deserialize, Serialize};
use sha1::{Digest, Sha1};
use std::collections::{BTreeMap, BTreeSet};

/// etcd 3.4 allows one learner at a time.
const LEARNERS_MAX: usize = 1;

/// A change to the membership.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum MemberChange {
    /// Add a member (a learner if it says so).
    Add(Member),
    /// Remove a member for good.
    Remove(u64),
    /// Make a learner a voter.
    Promote(u64),
    /// Change a member's peer URLs.
    Update {
        /// The member.
        id: u64,
        /// Its new peer URLs.
        peer_urls: Vec<String>,
    },
}

/// What a membership conf-change entry carries in its context.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfChangeContext {
    /// Who proposed it.
    pub header: RequestHeader,
    /// The change.
    pub change: MemberChange,
}

impl ConfChangeContext {
    /// The entry context bytes.
    pub fn encode(&self) -> Vec<u8> {
        postcard::to_allocvec(self).expect("contexts always encode")
    }

    /// Decodes entry context bytes.
    pub fn decode(bytes: &[u8]) -> Result<Self, postcard::Error> {
        postcard::from_bytes(bytes)
    }
}

/// The members, and the ids removed for good.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Membership {
    members: BTreeMap<u64, Member>,
    removed: BTreeSet<u64>,
}

impl Membership {
    /// The membership a cluster starts with.
    pub fn new(initial: impl IntoIterator<Item = Member>) -> Self {
        Membership {
            members: initial.into_iter().map(|m| (m.id, m)).collect(),
            removed: BTreeSet::new(),
        }
    }

    /// Every member, by id.
    pub fn members(&self) -> Vec<Member> {
        self.members.values().cloned().collect()
    }

    /// One member.
    pub fn member(&self, id: u64) -> Option<&Member> {
        self.members.get(&id)
    }

    /// The voting members' ids, in order.
    pub fn voter_ids(&self) -> Vec<u64> {
        self.members.values().filter(|m| !m.is_learner).map(|m| m.id).collect()
    }

    /// Records a member's name and client URLs (etcd's `publish`); unknown members are ignored.
    pub fn publish(&mut self, id: u64, name: &str, client_urls: &[String]) {
        if let Some(member) = self.members.get_mut(&id) {
            member.name = name.to_string();
            member.client_urls = client_urls.to_vec();
        }
    }

    /// Whether `id` is a voting member.
    pub fn is_voter(&self, id: u64) -> bool {
        self.members.get(&id).is_some_and(|m| !m.is_learner)
    }

    /// Whether `id` was removed from the cluster.
    pub fn is_removed(&self, id: u64) -> bool {
        self.removed.contains(&id)
    }

    /// Checks a change against the membership (etcd's `ValidateConfigurationChange`).
    pub fn validate(&self, change: &MemberChange) -> Result<(), ClusterError> {
        let id = match change {
            MemberChange::Add(member) => member.id,
            MemberChange::Remove(id)
            | MemberChange::Promote(id)
            | MemberChange::Update { id, .. } => *id,
        };
        if self.removed.contains(&id) {
            return Err(ClusterError::MemberNotFound);
        }
        let known = self.members.get(&id);
        match change {
            MemberChange::Add(member) => {
                if known.is_some() {
                    return Err(ClusterError::MemberExist);
                }
                self.check_urls_free(id, &member.peer_urls)?;
                let learners = self.members.values().filter(|m| m.is_learner).count();
                if member.is_learner && learners + 1 > LEARNERS_MAX {
                    return Err(ClusterError::TooManyLearners);
                }
            }
            MemberChange::Promote(_) => match known {
                None => return Err(ClusterError::MemberNotFound),
                Some(member) if !member.is_learner => return Err(ClusterError::MemberNotLearner),
                Some(_) => {}
            },
            MemberChange::Remove(_) if known.is_none() => return Err(ClusterError::MemberNotFound),
            MemberChange::Remove(_) => {}
            MemberChange::Update { peer_urls, .. } => {
                if known.is_none() {
                    return Err(ClusterError::MemberNotFound);
                }
                self.check_urls_free(id, peer_urls)?;
            }
        }
        Ok(())
    }

    /// Applies a change that [`Membership::validate`] accepted.
    pub fn apply(&mut self, change: &MemberChange) {
        match change {
            MemberChange::Add(member) => {
                self.members.insert(member.id, member.clone());
            }
            MemberChange::Remove(id) => {
                self.members.remove(id);
                self.removed.insert(*id);
            }
            MemberChange::Promote(id) => {
                if let Some(member) = self.members.get_mut(id) {
                    member.is_learner = false;
                }
            }
            MemberChange::Update { id, peer_urls } => {
                if let Some(member) = self.members.get_mut(id) {
                    member.peer_urls = peer_urls.clone();
                }
            }
        }
    }

    fn check_urls_free(&self, id: u64, urls: &[String]) -> Result<(), ClusterError> {
        let taken = self.members.values().filter(|m| m.id != id).flat_map(|m| &m.peer_urls);
        let taken: BTreeSet<&String> = taken.collect();
        if urls.iter().any(|url| taken.contains(url)) {
            return Err(ClusterError::PeerUrlExist);
        }
        Ok(())
    }
}

/// Checks peer URLs as etcd's `types.NewURLs` does: at least one, each `http(s)://host:port`
/// with nothing after the port.
pub fn check_peer_urls(urls: &[String]) -> Result<(), ClusterError> {
    let valid = |url: &String| {
        let Some(rest) = url.strip_prefix("http://").or_else(|| url.strip_prefix("https://"))
        else {
            return false;
        };
        let Some((host, port)) = rest.rsplit_once(':') else { return false };
        !host.is_empty() && port.parse::<u16>().is_ok()
    };
    if urls.is_empty() || !urls.iter().all(valid) {
        return Err(ClusterError::MemberBadUrls);
    }
    Ok(())
}

/// A member's id as etcd derives it: the first 8 bytes (big-endian) of SHA-1 over the sorted
/// peer URLs, the cluster token and, for a member added later, the Unix time in seconds.
pub fn member_id(peer_urls: &[String], cluster_token: &str, unix_seconds: Option<u64>) -> u64 {
    let mut urls = peer_urls.to_vec();
    urls.sort();
    let mut hasher = Sha1::new();
    urls.iter().for_each(|url| hasher.update(url.as_bytes()));
    hasher.update(cluster_token.as_bytes());
    if let Some(seconds) = unix_seconds {
        hasher.update(seconds.to_string().as_bytes());
    }
    first_eight(&hasher.finalize())
}

/// The cluster id as etcd derives it: the first 8 bytes of SHA-1 over the sorted member ids.
pub fn cluster_id(member_ids: impl IntoIterator<Item = u64>) -> u64 {
    let mut ids: Vec<u64> = member_ids.into_iter().collect();
    ids.sort_unstable();
    let mut hasher = Sha1::new();
    ids.iter().for_each(|id| hasher.update(id.to_be_bytes()));
    first_eight(&hasher.finalize())
}

fn first_eight(digest: &[u8]) -> u64 {
    u64::from_be_bytes(digest[..8].try_into().expect("SHA-1 has 20 bytes"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(id: u64, url: &str, is_learner: bool) -> Member {
        Member {
            id,
            name: format!("m{id}"),
            peer_urls: vec![url.into()],
            client_urls: vec![],
            is_learner,
        }
    }

    fn three() -> Membership {
        Membership::new([1, 2, 3].map(|id| member(id, &format!("http://10.0.0.{id}:2380"), false)))
    }

    #[test]
    fn etcds_rules_for_adding() {
        let m = three();
        assert_eq!(
            m.validate(&MemberChange::Add(member(2, "http://x:1", false))),
            Err(ClusterError::MemberExist)
        );
        let clash = member(9, "http://10.0.0.1:2380", false);
        assert_eq!(m.validate(&MemberChange::Add(clash)), Err(ClusterError::PeerUrlExist));
        let mut with_learner = m.clone();
        with_learner.apply(&MemberChange::Add(member(4, "http://10.0.0.4:2380", true)));
        let second = MemberChange::Add(member(5, "http://10.0.0.5:2380", true));
        assert_eq!(with_learner.validate(&second), Err(ClusterError::TooManyLearners));
        assert_eq!(m.validate(&second), Ok(()));
    }

    #[test]
    fn etcds_rules_for_removing_promoting_and_updating() {
        let mut m = three();
        assert_eq!(m.validate(&MemberChange::Promote(1)), Err(ClusterError::MemberNotLearner));
        assert_eq!(m.validate(&MemberChange::Promote(7)), Err(ClusterError::MemberNotFound));
        assert_eq!(m.validate(&MemberChange::Remove(7)), Err(ClusterError::MemberNotFound));
        let steal = MemberChange::Update { id: 1, peer_urls: vec!["http://10.0.0.2:2380".into()] };
        assert_eq!(m.validate(&steal), Err(ClusterError::PeerUrlExist));
        let same = MemberChange::Update { id: 1, peer_urls: vec!["http://10.0.0.1:2380".into()] };
        assert_eq!(m.validate(&same), Ok(()), "a member may keep its own URL");
        m.apply(&MemberChange::Remove(3));
        assert!(m.is_removed(3) && m.member(3).is_none());
        let back = MemberChange::Add(member(3, "http://10.0.0.3:2380", false));
        assert_eq!(
            m.validate(&back),
            Err(ClusterError::MemberNotFound),
            "a removed id never returns"
        );
    }

    #[test]
    fn peer_urls_are_checked_like_etcd() {
        assert!(
            check_peer_urls(&["http://127.0.0.1:2380".into(), "https://node:12380".into()]).is_ok()
        );
        for bad in
            ["127.0.0.1:2380", "http://127.0.0.1", "ftp://x:1", "http://:2380", "http://x:99999"]
        {
            assert_eq!(check_peer_urls(&[bad.into()]), Err(ClusterError::MemberBadUrls), "{bad}");
        }
        assert_eq!(check_peer_urls(&[]), Err(ClusterError::MemberBadUrls));
    }

    /// Pinned against a real etcd 3.4.23 started with its default advertise peer URL and
    /// cluster token: its response headers carried member_id 10276657743932975437
    /// (0x8e9e05c52164694d) and cluster_id 14841639068965178418 (0xcdf818194e3a8c32).
    #[test]
    fn ids_match_etcds_derivation() {
        let id = member_id(&["http://localhost:2380".into()], "etcd-cluster", None);
        assert_eq!(format!("{id:x}"), "8e9e05c52164694d");
        assert_eq!(format!("{:x}", cluster_id([id])), "cdf818194e3a8c32");
        assert_ne!(member_id(&["http://localhost:2380".into()], "etcd-cluster", Some(1)), id);
    }
}
