//! Turning raft-rs's `Ready`s into outputs, with its asynchronous persistence API.
//!
//! Per Ready: a leader's messages go out at once (raft thesis 10.2.1); new entries and a changed
//! hard state go into the in-memory raft log and out as a numbered [`Output::Persist`]; messages
//! that depend on persisted state are held until the driver reports that batch durable;
//! committed entries (which raft-rs limits to entries persisted here) are applied in order.

use super::{Node, Output};
use crate::apply::StateMachine;
use raft::prelude::{Entry, EntryType, Message, MessageType, Snapshot};
use raft::{ProgressState, SnapshotStatus, Storage as _};

/// The most Readies handled in one go; raft rarely needs more than two or three.
const READY_ROUNDS_MAX: usize = 64;

impl Node {
    /// Handles every Ready raft has.
    pub(super) fn process_ready(&mut self) {
        for _ in 0..READY_ROUNDS_MAX {
            if !self.raw.has_ready() {
                break;
            }
            self.process_one_ready();
        }
        self.serve_confirmed_reads();
        self.unpark();
        self.settle_held_renewals();
        self.flush_watches();
    }

    fn process_one_ready(&mut self) {
        let mut ready = self.raw.ready();
        let batch = ready.number();
        for message in ready.take_messages() {
            self.send(message);
        }
        let snapshot = Some(ready.snapshot().clone()).filter(|s| !s.is_empty());
        if let Some(snapshot) = &snapshot {
            self.install_snapshot(snapshot);
            self.snapshot_in_flight = Some(batch);
        }
        let entries = ready.take_entries();
        let hard_state = ready.hs().cloned();
        {
            let storage = self.raw.mut_store();
            let mut core = storage.log.wl();
            core.append(&entries).expect("raft hands out entries that follow the log");
            if let Some(hard_state) = &hard_state {
                core.set_hardstate(hard_state.clone());
            }
        }
        let waiting = ready.take_persisted_messages();
        if !entries.is_empty() || hard_state.is_some() || snapshot.is_some() {
            self.outputs.push_back(Output::Persist { batch, entries, hard_state, snapshot });
            self.held_messages.entry(batch).or_default().extend(waiting);
        } else if let Some((&outstanding, _)) = self.held_messages.last_key_value() {
            // Nothing new to persist, but the messages may depend on a batch not yet durable.
            self.held_messages.entry(outstanding).or_default().extend(waiting);
        } else {
            waiting.into_iter().for_each(|message| self.send(message));
        }
        for read_state in ready.take_read_states() {
            self.requests.read_index_confirmed(read_state);
        }
        let committed = ready.take_committed_entries();
        self.raw.advance_append_async(ready);
        self.apply_committed(committed);
    }

    /// The driver made every batch up to `batch` durable: release what waited for it.
    pub(super) fn persisted(&mut self, batch: u64) {
        self.raw.on_persist_ready(batch);
        if self.snapshot_in_flight.is_some_and(|pending| pending <= batch) {
            self.snapshot_in_flight = None;
        }
        // raft-rs learns that a snapshot was applied only when told (its synchronous `advance`
        // does it; the asynchronous API leaves it to us). Left behind, its applied index would
        // point below the log's first entry, and the next campaign panics reading entries the
        // snapshot replaced (found by the simulator).
        let log = &self.raw.raft.raft_log;
        let applied = self.machine.applied().min(log.committed).min(log.persisted);
        if applied > log.applied {
            self.raw.advance_apply_to(applied);
        }
        let later = self.held_messages.split_off(&(batch + 1));
        let released = std::mem::replace(&mut self.held_messages, later);
        for message in released.into_values().flatten() {
            self.send(message);
        }
    }

    fn send(&mut self, message: Message) {
        if message.get_msg_type() == MessageType::MsgSnapshot {
            self.snapshots_sent.insert(message.to, self.now);
        }
        self.outputs.push_back(Output::Send { to: message.to, message });
    }

    /// Replaces the state machine with a leader's snapshot. The snapshot was built by a member
    /// from its own state, so a snapshot that does not restore means a bug or memory corruption:
    /// stop rather than diverge.
    fn install_snapshot(&mut self, snapshot: &Snapshot) {
        let index = snapshot.get_metadata().index;
        let settings = self.config.machine_settings();
        let restored = StateMachine::restore(&snapshot.data, settings).unwrap_or_else(|error| {
            panic!("raft: the snapshot at index {index} is not a valid state: {error}")
        });
        // Tokens are this member's, not replicated, and the entries skipped may have revoked
        // some (a new password, a deleted user): all go, and clients authenticate again.
        let tally = std::mem::take(self.machine.tally_mut());
        self.machine = restored;
        *self.machine.tally_mut() = tally;
        self.hub.restored(self.machine.kv());
        let storage = self.raw.mut_store();
        storage
            .log
            .wl()
            .apply_snapshot(snapshot.clone())
            .expect("raft installs only newer snapshots");
        storage.set_snapshot(snapshot.clone());
    }

    /// Takes a state-machine snapshot once `snapshot_count` entries were applied since the last
    /// one, and compacts the raft log behind it, keeping `snapshot_catch_up_entries` for slow
    /// followers.
    pub(super) fn maybe_snapshot(&mut self) {
        let applied = self.machine.applied();
        let wanted = self.raw.store().take_wanted();
        if applied < self.raw.store().snapshot_index() + self.config.snapshot_count && !wanted {
            return;
        }
        let Ok(term) = self.raw.raft.raft_log.term(applied) else { return };
        let Ok(state) = self.raw.store().initial_state() else { return };
        let mut conf_state = state.conf_state;
        conf_state.mut_voters().sort_unstable();
        conf_state.mut_learners().sort_unstable();
        let mut snapshot = Snapshot::default();
        snapshot.data = self.machine.snapshot().into();
        let metadata = snapshot.mut_metadata();
        (metadata.index, metadata.term) = (applied, term);
        metadata.set_conf_state(conf_state);
        let storage = self.raw.mut_store();
        storage.set_snapshot(snapshot.clone());
        let keep_from = applied.saturating_sub(self.config.snapshot_catch_up_entries);
        storage.log.wl().compact(keep_from).expect("compaction stays within the applied log");
        self.outputs.push_back(Output::SaveSnapshot { snapshot });
    }

    /// A snapshot sent to a peer that has not caught up from it after two election timeouts was
    /// probably lost: tell raft, so it sends again (raft-rs would otherwise wait forever).
    pub(super) fn retry_stuck_snapshots(&mut self) {
        let patience = self.config.election_timeout.times(2);
        let now = self.now;
        let stuck: Vec<u64> = self
            .snapshots_sent
            .iter()
            .filter(|(_, sent)| now.since(**sent) >= patience)
            .map(|(p, _)| *p)
            .collect();
        for peer in stuck {
            self.snapshots_sent.remove(&peer);
            let waiting =
                self.raw.raft.prs().get(peer).is_some_and(|p| p.state == ProgressState::Snapshot);
            if waiting && self.is_leader() {
                self.raw.report_snapshot(peer, SnapshotStatus::Failure);
            }
        }
    }

    /// Applies committed entries in order and answers the clients waiting for them.
    fn apply_committed(&mut self, entries: Vec<Entry>) {
        let Some(last) = entries.last().map(|e| e.index) else { return };
        for entry in entries {
            self.machine.fold_entry(entry.index, entry.term, &entry.data);
            match entry.get_entry_type() {
                EntryType::EntryNormal => self.apply_normal(&entry),
                EntryType::EntryConfChange | EntryType::EntryConfChangeV2 => {
                    self.apply_conf_change_entry(&entry)
                }
            }
        }
        self.raw.advance_apply_to(last);
        self.maybe_snapshot();
    }

    fn apply_normal(&mut self, entry: &Entry) {
        if entry.data.is_empty() && entry.index > self.machine.applied() {
            self.maybe_promote_lessor(entry.term);
        }
        let applied = self.machine.apply(entry.index, entry.term, &entry.data, self.now);
        self.deliver_events();
        self.after_apply();
        let Some((header, result)) = applied else { return };
        if header.proposer != self.config.id || header.boot != self.boot {
            return;
        }
        if let Some(client) = self.requests.proposal_applied(header.sequence) {
            self.respond(client, result);
        }
    }
}
