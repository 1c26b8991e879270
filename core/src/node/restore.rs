//! Starting a new cluster from a backup (etcd's `snapshot restore`): each member of the new
//! cluster starts from the backup's state, rebased onto the new membership.

use super::{Node, NodeConfig, Output, Recovered};
use crate::apply::StateMachine;
use crate::time::Instant;
use raft::prelude::{ConfState, HardState, Snapshot};

impl Node {
    /// A founding member of a new cluster of `config.members` that starts from `backup` (a
    /// backup file in etcd's format, from stead's or etcd's Maintenance.Snapshot; its SHA-256
    /// is checked unless `skip_hash_check`). Its first output persists that starting point, as
    /// [`Node::new`]'s persists the bootstrap entries. Fails with a clear reason for a backup
    /// that is truncated, corrupted or not a backup.
    pub fn from_backup(
        config: NodeConfig,
        now: Instant,
        backup: &[u8],
        skip_hash_check: bool,
    ) -> Result<Node, String> {
        let state = crate::backup::from_file(backup, skip_hash_check)?;
        Node::from_etcd(config, now, state)
    }

    /// A founding member of a new cluster of `config.members` that starts from `state` (see
    /// [`Node::from_backup`]).
    pub fn from_etcd(
        config: NodeConfig,
        now: Instant,
        state: crate::backup::EtcdState,
    ) -> Result<Node, String> {
        let mut members = config.members.clone();
        members.sort_by_key(|m| m.id);
        // The new cluster's log starts where its bootstrap entries would have ended.
        let index = members.len() as u64;
        let machine =
            StateMachine::from_etcd(state, members.clone(), index, config.machine_settings())?;
        let mut conf_state = ConfState::default();
        for member in &members {
            if member.is_learner {
                conf_state.mut_learners().push(member.id);
            } else {
                conf_state.mut_voters().push(member.id);
            }
        }
        let mut snapshot = Snapshot::default();
        snapshot.data = machine.snapshot().into();
        let metadata = snapshot.mut_metadata();
        (metadata.index, metadata.term) = (index, 1);
        metadata.set_conf_state(conf_state);
        let hard_state = HardState { term: 1, commit: index, ..HardState::default() };
        let recovered = Recovered {
            snapshot: Some(snapshot.clone()),
            hard_state: hard_state.clone(),
            entries: Vec::new(),
        };
        let mut node = Node::restart(config, now, recovered)?;
        node.initial_check_due = false;
        let persist = Output::Persist {
            batch: 0,
            entries: Vec::new(),
            hard_state: Some(hard_state),
            snapshot: Some(snapshot),
        };
        node.outputs.push_front(persist);
        Ok(node)
    }
}
