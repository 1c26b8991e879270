//! Turning raft-rs's `Ready`s into outputs, with its asynchronous persistence API.
//!
//! Per Ready: a leader's messages go out at once (raft thesis 10.2.1); new entries and a changed
//! hard state go into the in-memory raft log and out as a numbered [`Output::Persist`]; messages
//! that depend on persisted state are held until the driver reports that batch durable;
//! committed entries (which raft-rs limits to entries persisted here) are applied in order.

use super::{Node, Output};
use protobuf::Message as _;
use raft::prelude::{ConfChange, ConfChangeV2, Entry, EntryType, Message};

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
    }

    fn process_one_ready(&mut self) {
        let mut ready = self.raw.ready();
        let batch = ready.number();
        for message in ready.take_messages() {
            self.send(message);
        }
        if !ready.snapshot().is_empty() {
            // Nothing produces snapshots yet (the log is never compacted), so no leader can
            // send one. Snapshot transfer arrives with snapshot support.
            tracing::error!(node = self.config.id, "raft: ignoring a snapshot (not supported yet)");
        }
        let entries = ready.take_entries();
        let hard_state = ready.hs().cloned();
        {
            let storage = self.raw.mut_store();
            let mut core = storage.wl();
            core.append(&entries).expect("raft hands out entries that follow the log");
            if let Some(hard_state) = &hard_state {
                core.set_hardstate(hard_state.clone());
            }
        }
        let waiting = ready.take_persisted_messages();
        if !entries.is_empty() || hard_state.is_some() {
            self.outputs.push_back(Output::Persist { batch, entries, hard_state, snapshot: None });
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
        let later = self.held_messages.split_off(&(batch + 1));
        let released = std::mem::replace(&mut self.held_messages, later);
        for message in released.into_values().flatten() {
            self.send(message);
        }
    }

    fn send(&mut self, message: Message) {
        self.outputs.push_back(Output::Send { to: message.to, message });
    }

    /// Applies committed entries in order and answers the clients waiting for them.
    fn apply_committed(&mut self, entries: Vec<Entry>) {
        let Some(last) = entries.last().map(|e| e.index) else { return };
        for entry in entries {
            match entry.get_entry_type() {
                EntryType::EntryNormal => self.apply_normal(&entry),
                EntryType::EntryConfChange | EntryType::EntryConfChangeV2 => {
                    self.apply_conf_change(&entry)
                }
            }
        }
        self.raw.advance_apply_to(last);
    }

    fn apply_normal(&mut self, entry: &Entry) {
        let Some((header, result)) = self.machine.apply(entry.index, &entry.data) else { return };
        if header.proposer != self.config.id || header.boot != self.boot {
            return;
        }
        if let Some(client) = self.requests.proposal_applied(header.sequence) {
            self.respond(client, result);
        }
    }

    fn apply_conf_change(&mut self, entry: &Entry) {
        let applied = if entry.get_entry_type() == EntryType::EntryConfChangeV2 {
            ConfChangeV2::parse_from_bytes(&entry.data).map(|cc| self.raw.apply_conf_change(&cc))
        } else {
            ConfChange::parse_from_bytes(&entry.data).map(|cc| self.raw.apply_conf_change(&cc))
        };
        match applied {
            Ok(Ok(conf_state)) => self.raw.mut_store().wl().set_conf_state(conf_state),
            Ok(Err(error)) => {
                tracing::warn!(index = entry.index, %error, "raft: conf change refused")
            }
            Err(error) => {
                tracing::error!(index = entry.index, %error, "raft: conf change does not decode")
            }
        }
        self.machine.skip(entry.index);
    }
}
