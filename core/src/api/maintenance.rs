//! The Maintenance service's messages (etcd's `Alarm*`, `Status*`, `Hash*`, `Defragment*` and
//! `Snapshot*`; MoveLeader is a [`super::ClusterRequest`]), and the corruption check's internal
//! requests.

use super::kv::ResponseHeader;
use serde::{Deserialize, Serialize};

/// An alarm's kind (etcd's `AlarmType`).
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub enum AlarmType {
    /// No alarm; in a GET: every alarm.
    #[default]
    None,
    /// The key space outgrew `--quota-backend-bytes`: writes that add data are refused.
    NoSpace,
    /// Members disagree about the key space: every request that needs the log is refused.
    Corrupt,
}

impl AlarmType {
    /// The name etcd prints (`NONE`, `NOSPACE`, `CORRUPT`).
    pub fn name(self) -> &'static str {
        match self {
            AlarmType::None => "NONE",
            AlarmType::NoSpace => "NOSPACE",
            AlarmType::Corrupt => "CORRUPT",
        }
    }
}

/// What an alarm request does (etcd's `AlarmRequest.AlarmAction`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum AlarmAction {
    /// List alarms of a type (every alarm for [`AlarmType::None`]).
    #[default]
    Get,
    /// Raise an alarm for a member.
    Activate,
    /// Clear a member's alarm.
    Deactivate,
}

/// One raised alarm (etcd's `AlarmMember`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct AlarmMember {
    /// The member the alarm is about.
    pub member_id: u64,
    /// The alarm.
    pub alarm: AlarmType,
}

impl AlarmMember {
    /// The text etcd shows in `endpoint status` errors and `alarm list`
    /// (`memberID:1 alarm:NOSPACE `; a zero member id is left out).
    pub fn describe(&self) -> String {
        let member = if self.member_id == 0 {
            String::new()
        } else {
            format!("memberID:{} ", self.member_id)
        };
        format!("{member}alarm:{} ", self.alarm.name())
    }
}

/// An alarm request (etcd's `AlarmRequest`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AlarmRequest {
    /// What to do.
    pub action: AlarmAction,
    /// The member (ignored by GET).
    pub member_id: u64,
    /// The alarm.
    pub alarm: AlarmType,
}

/// The answer to an alarm request: the alarms listed, raised or cleared.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AlarmResponse {
    /// The usual header.
    pub header: ResponseHeader,
    /// The alarms.
    pub alarms: Vec<AlarmMember>,
}

/// A Maintenance request served by the core.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum MaintenanceRequest {
    /// List, raise or clear alarms (through the log, as etcd does).
    Alarm(AlarmRequest),
    /// This member's status.
    Status,
    /// A digest of this member's whole state.
    Hash,
    /// A digest of this member's key space up to `revision` (0: the current one).
    HashKv {
        /// The revision.
        revision: i64,
    },
    /// Compact this member's internal structures.
    Defragment,
    /// The whole state at one revision, as bytes `stead` can restore from.
    Snapshot,
}

/// The answer to Status (etcd's `StatusResponse`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusResponse {
    /// The usual header.
    pub header: ResponseHeader,
    /// The etcd version stead speaks.
    pub version: String,
    /// The bytes the state occupies, as allocated (shrinks on defragment).
    pub db_size: i64,
    /// The member this one knows as leader (0: none).
    pub leader: u64,
    /// The raft commit index.
    pub raft_index: u64,
    /// The raft term.
    pub raft_term: u64,
    /// The index of the last applied entry.
    pub raft_applied_index: u64,
    /// `etcdserver: no leader` and every raised alarm.
    pub errors: Vec<String>,
    /// The bytes the state uses now.
    pub db_size_in_use: i64,
    /// Whether this member is a learner.
    pub is_learner: bool,
}

/// The answer to Hash.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HashResponse {
    /// The usual header.
    pub header: ResponseHeader,
    /// The digest.
    pub hash: u32,
}

/// The answer to HashKV.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HashKvResponse {
    /// The usual header (its revision is the current one, not the one asked for).
    pub header: ResponseHeader,
    /// The digest.
    pub hash: u32,
    /// The compacted revision (-1: never compacted).
    pub compact_revision: i64,
}

/// The answer to Snapshot: the whole backup (the driver streams it in chunks).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotResponse {
    /// The usual header.
    pub header: ResponseHeader,
    /// The backup: see `apply::backup`.
    pub blob: Vec<u8>,
}

/// One member's answer to a corruption check: its HashKV digest at the point of the log where
/// the check entry applied. The leader proposes a check ([`super::Request::HashCheck`]); every
/// member that applies it proposes its report; members whose report disagrees with a majority's
/// get a CORRUPT alarm.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HashReportRequest {
    /// The check answered: the log index of its entry.
    pub check: u64,
    /// The reporting member.
    pub member_id: u64,
    /// Its digest.
    pub hash: u32,
    /// The revision it hashed.
    pub revision: i64,
    /// Its compacted revision.
    pub compact_revision: i64,
}
