//! Backups: the state at one revision in etcd 3.4's backup format (Maintenance.Snapshot; see
//! [`crate::backup`]), and the state a new cluster starts from when restored from one, whether
//! stead or etcd wrote it.
//!
//! A restore keeps the key space (every retained revision, the compaction point), leases, auth
//! and alarms, and replaces what belongs to the old cluster: the membership becomes the new
//! cluster's, and the applied index and request history start over.

use super::{MachineSettings, SnapshotData, StateMachine, SNAPSHOT_FORMAT};
use crate::api::Member;
use crate::auth::AuthStore;
use crate::backup::{EtcdRevision, EtcdState};
use crate::mvcc::snapshot::{KvSnapshot, VersionRecord};
use crate::mvcc::Revision;

impl StateMachine {
    /// The whole state as a backup file in etcd's format.
    pub fn backup(&self) -> Vec<u8> {
        crate::backup::to_file(&self.to_etcd())
    }

    /// The whole state as etcd 3.4's backend would hold it.
    pub fn to_etcd(&self) -> EtcdState {
        let kv = self.kv.to_snapshot();
        let mut revisions = Vec::new();
        for (key, versions) in kv.keys {
            for version in versions {
                let tombstone = version.put.is_none();
                let (create, number, lease, value) = version.put.unwrap_or_default();
                revisions.push(EtcdRevision {
                    main: version.revision.main,
                    sub: version.revision.sub,
                    tombstone,
                    kv: crate::api::KeyValue {
                        key: key.clone(),
                        create_revision: create,
                        mod_revision: if tombstone { 0 } else { version.revision.main },
                        version: number,
                        value,
                        lease,
                    },
                });
            }
        }
        revisions.sort_by_key(|r| (r.main, r.sub));
        EtcdState {
            revisions,
            compacted: kv.compacted,
            scheduled_compaction: 0,
            consistent_index: self.applied,
            leases: self.lessor.to_records(),
            auth_enabled: self.auth.is_enabled(),
            auth_revision: self.auth.revision(),
            users: self.auth.users().map(|(n, u)| (n.to_string(), u.clone())).collect(),
            roles: self.auth.roles().map(|(n, p)| (n.to_string(), p.to_vec())).collect(),
            alarms: self.alarms.all(),
            members: self.membership.members(),
        }
    }

    /// The state a new cluster of `members` starts from, restored from a backup file, as if it
    /// had applied `applied` entries (one per member: the bootstrap conf changes). Fails with a
    /// clear reason for a truncated, corrupted or foreign file, or a wrong hash unless
    /// `skip_hash_check`.
    pub fn from_backup(
        backup: &[u8],
        skip_hash_check: bool,
        members: Vec<Member>,
        applied: u64,
        settings: MachineSettings,
    ) -> Result<StateMachine, String> {
        let state = crate::backup::from_file(backup, skip_hash_check)?;
        StateMachine::from_etcd(state, members, applied, settings)
    }

    /// The state of `state` for a new cluster of `members` that applied `applied` entries.
    pub fn from_etcd(
        state: EtcdState,
        members: Vec<Member>,
        applied: u64,
        settings: MachineSettings,
    ) -> Result<StateMachine, String> {
        let mut keys: Vec<(Vec<u8>, Vec<VersionRecord>)> = Vec::new();
        let mut by_key: std::collections::BTreeMap<Vec<u8>, Vec<VersionRecord>> =
            std::collections::BTreeMap::new();
        let mut last = 1;
        for revision in state.revisions {
            last = last.max(revision.main);
            let kv = revision.kv;
            let put = (!revision.tombstone).then_some((
                kv.create_revision,
                kv.version,
                kv.lease,
                kv.value,
            ));
            let record = VersionRecord {
                revision: Revision { main: revision.main, sub: revision.sub },
                put,
            };
            by_key.entry(kv.key).or_default().push(record);
        }
        keys.extend(by_key);
        let compacted = if state.compacted > 0 { state.compacted } else { -1 };
        let kv = KvSnapshot { current: last.max(compacted), compacted, keys };
        let auth = AuthStore::from_parts(
            state.auth_enabled,
            state.auth_revision.max(1),
            state.users.into_iter().collect(),
            state.roles.into_iter().collect(),
        );
        let data = SnapshotData {
            format: SNAPSHOT_FORMAT,
            applied,
            kv,
            membership: super::membership::Membership::new(members),
            log_digest: 0,
            requests: super::dedup::AppliedRequests::default(),
            leases: state.leases,
            auth,
            alarms: super::alarm::Alarms::from_members(state.alarms),
            hash_checks: super::corrupt::HashChecks::default(),
        };
        let bytes = postcard::to_allocvec(&data).expect("states encode");
        let mut machine = StateMachine::restore(&bytes, settings)?;
        if state.scheduled_compaction > 0.max(machine.kv.compacted_revision()) {
            // etcd resumes a compaction that was scheduled but not finished.
            machine.kv.compact(state.scheduled_compaction).map_err(|e| format!("{e:?}"))?;
        }
        Ok(machine)
    }
}
