//! Alarms and the space quota (etcd's `v3alarm` and `quota.go`).
//!
//! Alarms are replicated state: they are raised and cleared only by applying an alarm request,
//! so every member agrees which are active. While a NOSPACE alarm is raised, requests that add
//! data (puts, transactions with puts, lease grants) are refused when applied; reads, deletes,
//! revokes and compactions keep working, so an operator can free space and disarm. While a
//! CORRUPT alarm is raised, every KV and lease request that goes through the log is refused
//! (expiries included); reads served by a member itself keep working, as in etcd.
//!
//! The quota compares the state's size plus a request's cost with `--quota-backend-bytes`.
//! etcd measures its bolt file, which only shrinks on defragment; stead measures the retained
//! history exactly ([`crate::mvcc::KvStore::size_bytes`] plus 64 bytes a lease), which shrinks
//! with compaction, and is the same on every member.

use crate::api::{AlarmAction, AlarmMember, AlarmRequest, AlarmType, Request, RequestOp};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;

/// etcd's default quota: 2 GiB.
pub const DEFAULT_QUOTA_BYTES: u64 = 2 * 1024 * 1024 * 1024;
/// What a lease costs against the quota (etcd's `leaseOverhead`).
pub const LEASE_OVERHEAD: u64 = 64;

/// The raised alarms.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Alarms {
    raised: BTreeSet<AlarmMember>,
}

impl Alarms {
    /// The alarms `members` raise (a restored backup).
    pub fn from_members(members: impl IntoIterator<Item = AlarmMember>) -> Alarms {
        Alarms { raised: members.into_iter().collect() }
    }

    /// Applies an alarm request; returns the alarms it listed, raised or cleared.
    pub fn apply(&mut self, request: &AlarmRequest) -> Vec<AlarmMember> {
        let member = AlarmMember { member_id: request.member_id, alarm: request.alarm };
        match request.action {
            AlarmAction::Get => self
                .raised
                .iter()
                .filter(|raised| request.alarm == AlarmType::None || raised.alarm == request.alarm)
                .copied()
                .collect(),
            AlarmAction::Activate => {
                if request.alarm != AlarmType::None && self.raised.insert(member) {
                    tracing::warn!(
                        "alarm" = member.alarm.name(),
                        "from" = %format_args!("{:x}", member.member_id),
                        "alarm raised"
                    );
                }
                vec![member]
            }
            AlarmAction::Deactivate => {
                if self.raised.remove(&member) {
                    tracing::warn!(
                        "alarm" = member.alarm.name(),
                        "from" = %format_args!("{:x}", member.member_id),
                        "alarm disarmed"
                    );
                    vec![member]
                } else {
                    Vec::new()
                }
            }
        }
    }

    /// Whether this alarm is raised for this member.
    pub fn contains(&self, member: &AlarmMember) -> bool {
        self.raised.contains(member)
    }

    /// Whether any member has an alarm of this kind raised.
    pub fn is_raised(&self, alarm: AlarmType) -> bool {
        self.raised.iter().any(|raised| raised.alarm == alarm)
    }

    /// Every raised alarm, in member order.
    pub fn all(&self) -> Vec<AlarmMember> {
        self.raised.iter().copied().collect()
    }
}

/// The space quota (`--quota-backend-bytes`): etcd's rule that 0 means the 2 GiB default and a
/// negative value turns it off.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Quota {
    max: Option<u64>,
}

impl Quota {
    /// The quota for a `--quota-backend-bytes` value.
    pub fn from_flag(bytes: i64) -> Quota {
        let max = match bytes {
            0 => Some(DEFAULT_QUOTA_BYTES),
            bytes if bytes < 0 => None,
            bytes => Some(bytes as u64),
        };
        Quota { max }
    }

    /// Whether a request costing `cost` fits when the state takes `size` bytes (etcd's
    /// `Available`: a request that adds nothing always fits).
    pub fn available(&self, size: u64, cost: u64) -> bool {
        cost == 0 || self.max.is_none_or(|max| size + cost < max)
    }
}

impl Default for Quota {
    fn default() -> Self {
        Quota::from_flag(0)
    }
}

/// What a request adds to the state, as etcd's quota counts it: a put its version, a
/// transaction its costlier branch's puts, a grant a lease; anything else nothing.
pub fn cost(request: &Request) -> u64 {
    let put_cost =
        |put: &crate::api::PutRequest| crate::mvcc::version_cost(put.key.len(), put.value.len());
    let branch_cost = |ops: &[RequestOp]| -> u64 {
        ops.iter()
            .map(|op| match op {
                RequestOp::Put(put) => put_cost(put),
                _ => 0,
            })
            .sum()
    };
    match request {
        Request::Put(put) => put_cost(put),
        Request::Txn(txn) => branch_cost(&txn.success).max(branch_cost(&txn.failure)),
        Request::LeaseGrant(_) => LEASE_OVERHEAD,
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{LeaseGrantRequest, PutRequest, TxnRequest};

    fn request(action: AlarmAction, member_id: u64, alarm: AlarmType) -> AlarmRequest {
        AlarmRequest { action, member_id, alarm }
    }

    #[test]
    fn raise_list_and_clear() {
        let mut alarms = Alarms::default();
        let nospace = AlarmMember { member_id: 2, alarm: AlarmType::NoSpace };
        let corrupt = AlarmMember { member_id: 1, alarm: AlarmType::Corrupt };
        assert_eq!(alarms.apply(&request(AlarmAction::Activate, 2, AlarmType::NoSpace)), [nospace]);
        assert_eq!(alarms.apply(&request(AlarmAction::Activate, 2, AlarmType::NoSpace)), [nospace]);
        alarms.apply(&request(AlarmAction::Activate, 1, AlarmType::Corrupt));
        assert_eq!(
            alarms.apply(&request(AlarmAction::Get, 9, AlarmType::None)),
            [corrupt, nospace]
        );
        assert_eq!(alarms.apply(&request(AlarmAction::Get, 0, AlarmType::NoSpace)), [nospace]);
        assert!(alarms.is_raised(AlarmType::NoSpace) && alarms.is_raised(AlarmType::Corrupt));
        assert!(
            alarms.apply(&request(AlarmAction::Deactivate, 1, AlarmType::NoSpace)).is_empty(),
            "clearing needs the exact member and kind"
        );
        assert_eq!(
            alarms.apply(&request(AlarmAction::Deactivate, 2, AlarmType::NoSpace)),
            [nospace]
        );
        assert!(!alarms.is_raised(AlarmType::NoSpace));
        assert_eq!(nospace.describe(), "memberID:2 alarm:NOSPACE ");
        assert_eq!(
            AlarmMember { member_id: 0, alarm: AlarmType::Corrupt }.describe(),
            "alarm:CORRUPT "
        );
    }

    #[test]
    fn quota_follows_etcd_flag_rules_and_costs() {
        assert!(Quota::from_flag(0).available(DEFAULT_QUOTA_BYTES - 11, 10));
        assert!(!Quota::from_flag(0).available(DEFAULT_QUOTA_BYTES - 10, 10), "strictly below");
        assert!(Quota::from_flag(-1).available(u64::MAX / 2, 1 << 40), "negative: no quota");
        assert!(Quota::from_flag(100).available(1000, 0), "a request adding nothing fits");
        let put = |key: &str, value: &str| PutRequest {
            key: key.into(),
            value: value.into(),
            ..PutRequest::default()
        };
        assert_eq!(cost(&Request::Put(put("ab", "cde"))), 256 + 5);
        let txn = TxnRequest {
            compare: Vec::new(),
            success: vec![RequestOp::Put(put("a", "")), RequestOp::Put(put("b", ""))],
            failure: vec![RequestOp::Put(put("a", "0123456789"))],
        };
        assert_eq!(cost(&Request::Txn(txn)), 257 * 2, "the costlier branch");
        assert_eq!(cost(&Request::LeaseGrant(LeaseGrantRequest { ttl: 5, id: 0 })), 64);
    }
}
