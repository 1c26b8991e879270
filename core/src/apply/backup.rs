//! Backups: the state at one revision as one self-checking byte string (Maintenance.Snapshot),
//! and the state a new cluster starts from when restored from one.
//!
//! Format: the magic `STEADBK1`, the state's length (8 bytes, little-endian), the
//! state-machine snapshot bytes, zeros up to a multiple of 512 bytes, and the SHA-256 of
//! everything before it. That last part is etcd's: its clients check that a snapshot is a
//! multiple of 512 bytes plus a trailing SHA-256 of the rest, so `etcdctl snapshot save` keeps a
//! stead backup as it keeps an etcd one. A restore keeps
//! the key space, leases, auth and alarms, and replaces what belongs to the old cluster: the
//! membership becomes the new cluster's, and the applied index and request history start over.

use super::{MachineSettings, StateMachine};
use crate::api::Member;
use sha2::{Digest, Sha256};

/// The first bytes of every backup.
const MAGIC: &[u8; 8] = b"STEADBK1";
/// Bytes of the trailing digest.
const DIGEST_LEN: usize = 32;
/// The body is padded to a multiple of this (etcd's clients check it).
const BLOCK: usize = 512;

impl StateMachine {
    /// The whole state as a backup.
    pub fn backup(&self) -> Vec<u8> {
        let state = self.snapshot();
        let mut bytes = MAGIC.to_vec();
        bytes.extend_from_slice(&(state.len() as u64).to_le_bytes());
        bytes.extend_from_slice(&state);
        bytes.resize(bytes.len().div_ceil(BLOCK) * BLOCK, 0);
        let digest = Sha256::digest(&bytes);
        bytes.extend_from_slice(&digest);
        bytes
    }

    /// The state a new cluster of `members` starts from, restored from `backup`, as if it had
    /// applied `applied` entries (one per member: the bootstrap conf changes). Fails with a
    /// clear reason for a truncated, corrupted or foreign file.
    pub fn from_backup(
        backup: &[u8],
        members: Vec<Member>,
        applied: u64,
        settings: MachineSettings,
    ) -> Result<StateMachine, String> {
        if backup.len() < MAGIC.len() + 8 + DIGEST_LEN || !backup.starts_with(MAGIC) {
            return Err("not a stead backup (no STEADBK1 header)".into());
        }
        if backup.len() % BLOCK != DIGEST_LEN {
            return Err(format!("sha256 checksum not found [bytes: {}]", backup.len()));
        }
        let (body, digest) = backup.split_at(backup.len() - DIGEST_LEN);
        let expected = Sha256::digest(body);
        if expected.as_slice() != digest {
            return Err(format!(
                "backup digest mismatch: expected sha256 {}, got {}",
                hex(&expected),
                hex(digest)
            ));
        }
        let length = u64::from_le_bytes(body[MAGIC.len()..MAGIC.len() + 8].try_into().expect("8"));
        let state = body
            .get(MAGIC.len() + 8..)
            .and_then(|rest| rest.get(..usize::try_from(length).ok()?))
            .ok_or_else(|| format!("backup truncated: the state needs {length} bytes"))?;
        let mut machine = StateMachine::restore(state, settings)?;
        machine.membership = super::membership::Membership::new(members);
        machine.applied = applied;
        machine.log_digest = 0;
        machine.requests = super::dedup::AppliedRequests::default();
        machine.hash_checks = super::corrupt::HashChecks::default();
        Ok(machine)
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
