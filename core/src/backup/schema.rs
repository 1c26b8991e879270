//! etcd 3.4's backend schema: which bucket holds what, with which key and value encoding.
//!
//! - `key`: revision bytes (main, `_`, sub: 8-byte big-endian each; a trailing `t` marks a
//!   deletion) → `mvccpb.KeyValue`.
//! - `meta`: `consistent_index` (8-byte big-endian), `finishedCompactRev` and
//!   `scheduledCompactRev` (revision bytes).
//! - `lease`: the id (8-byte big-endian) → `leasepb.Lease`.
//! - `auth`: `authEnabled` (one byte), `authRevision` (8-byte big-endian); `authUsers` and
//!   `authRoles`: name → `authpb.User` / `authpb.Role`.
//! - `alarm`: `etcdserverpb.AlarmMember` → empty. `members`: id in hex → etcd's member JSON;
//!   `members_removed` and `cluster` (`clusterVersion`) as etcd writes them.
//!
//! [`encode`] and [`decode`] translate between the buckets and [`EtcdState`], refusing
//! malformed keys and values with their place.

use super::bolt::Buckets;
use super::{EtcdRevision, EtcdState};
use crate::api::{AlarmMember, AlarmType, KeyValue, Member, Permission, PermissionType};
use crate::auth::User;
use crate::lease::LeaseRecord;
use prost::Message;
use std::collections::BTreeMap;

/// etcd's `mvccpb.KeyValue`.
#[derive(Clone, PartialEq, Message)]
struct KeyValuePb {
    #[prost(bytes = "vec", tag = "1")]
    key: Vec<u8>,
    #[prost(int64, tag = "2")]
    create_revision: i64,
    #[prost(int64, tag = "3")]
    mod_revision: i64,
    #[prost(int64, tag = "4")]
    version: i64,
    #[prost(bytes = "vec", tag = "5")]
    value: Vec<u8>,
    #[prost(int64, tag = "6")]
    lease: i64,
}

/// etcd's `leasepb.Lease`.
#[derive(Clone, PartialEq, Message)]
struct LeasePb {
    #[prost(int64, tag = "1")]
    id: i64,
    #[prost(int64, tag = "2")]
    ttl: i64,
    #[prost(int64, tag = "3")]
    remaining_ttl: i64,
}

/// etcd's `authpb.UserAddOptions`.
#[derive(Clone, PartialEq, Message)]
struct UserOptionsPb {
    #[prost(bool, tag = "1")]
    no_password: bool,
}

/// etcd's `authpb.User`.
#[derive(Clone, PartialEq, Message)]
struct UserPb {
    #[prost(bytes = "vec", tag = "1")]
    name: Vec<u8>,
    #[prost(bytes = "vec", tag = "2")]
    password: Vec<u8>,
    #[prost(string, repeated, tag = "3")]
    roles: Vec<String>,
    #[prost(message, optional, tag = "4")]
    options: Option<UserOptionsPb>,
}

/// etcd's `authpb.Permission`.
#[derive(Clone, PartialEq, Message)]
struct PermissionPb {
    #[prost(int32, tag = "1")]
    perm_type: i32,
    #[prost(bytes = "vec", tag = "2")]
    key: Vec<u8>,
    #[prost(bytes = "vec", tag = "3")]
    range_end: Vec<u8>,
}

/// etcd's `authpb.Role`.
#[derive(Clone, PartialEq, Message)]
struct RolePb {
    #[prost(bytes = "vec", tag = "1")]
    name: Vec<u8>,
    #[prost(message, repeated, tag = "2")]
    key_permission: Vec<PermissionPb>,
}

/// etcd's `etcdserverpb.AlarmMember`.
#[derive(Clone, PartialEq, Message)]
struct AlarmMemberPb {
    #[prost(uint64, tag = "1")]
    member_id: u64,
    #[prost(int32, tag = "2")]
    alarm: i32,
}

const CONSISTENT_INDEX: &[u8] = b"consistent_index";
const FINISHED_COMPACT: &[u8] = b"finishedCompactRev";
const SCHEDULED_COMPACT: &[u8] = b"scheduledCompactRev";
const AUTH_ENABLED: &[u8] = b"authEnabled";
const AUTH_REVISION: &[u8] = b"authRevision";
/// The cluster version stead reports (etcd's `etcdcluster`).
const CLUSTER_VERSION: &str = "3.4.0";

/// The 17 revision bytes of `(main, sub)`, with `t` appended for a deletion.
pub fn revision_bytes(main: i64, sub: i64, tombstone: bool) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(18);
    bytes.extend_from_slice(&main.to_be_bytes());
    bytes.push(b'_');
    bytes.extend_from_slice(&sub.to_be_bytes());
    if tombstone {
        bytes.push(b't');
    }
    bytes
}

/// `(main, sub, tombstone)` of revision bytes.
pub fn parse_revision(bytes: &[u8]) -> Option<(i64, i64, bool)> {
    let tombstone = match bytes.len() {
        17 => false,
        18 if bytes[17] == b't' => true,
        _ => return None,
    };
    if bytes[8] != b'_' {
        return None;
    }
    let main = i64::from_be_bytes(bytes[..8].try_into().ok()?);
    let sub = i64::from_be_bytes(bytes[9..17].try_into().ok()?);
    Some((main, sub, tombstone))
}

fn be_u64(bytes: &[u8]) -> Option<u64> {
    Some(u64::from_be_bytes(bytes.try_into().ok()?))
}

/// The buckets etcd 3.4 would hold for `state`.
pub fn encode(state: &EtcdState) -> Buckets {
    let mut buckets = Buckets::new();
    for name in [
        "alarm",
        "auth",
        "authRoles",
        "authUsers",
        "cluster",
        "key",
        "lease",
        "members",
        "members_removed",
        "meta",
    ] {
        buckets.insert(name.as_bytes().to_vec(), BTreeMap::new());
    }
    let mut put = |bucket: &str, key: Vec<u8>, value: Vec<u8>| {
        buckets.get_mut(bucket.as_bytes()).expect("created above").insert(key, value);
    };
    for revision in &state.revisions {
        let kv = &revision.kv;
        let value = if revision.tombstone {
            KeyValuePb { key: kv.key.clone(), ..KeyValuePb::default() }
        } else {
            KeyValuePb {
                key: kv.key.clone(),
                create_revision: kv.create_revision,
                mod_revision: kv.mod_revision,
                version: kv.version,
                value: kv.value.clone(),
                lease: kv.lease,
            }
        };
        let key = revision_bytes(revision.main, revision.sub, revision.tombstone);
        put("key", key, value.encode_to_vec());
    }
    put("meta", CONSISTENT_INDEX.to_vec(), state.consistent_index.to_be_bytes().to_vec());
    if state.compacted > 0 {
        let compacted = revision_bytes(state.compacted, 0, false);
        put("meta", FINISHED_COMPACT.to_vec(), compacted.clone());
        put("meta", SCHEDULED_COMPACT.to_vec(), compacted);
    }
    for lease in &state.leases {
        let value = LeasePb { id: lease.id, ttl: lease.ttl, remaining_ttl: lease.remaining_ttl };
        put("lease", lease.id.to_be_bytes().to_vec(), value.encode_to_vec());
    }
    put("auth", AUTH_ENABLED.to_vec(), vec![u8::from(state.auth_enabled)]);
    put("auth", AUTH_REVISION.to_vec(), state.auth_revision.to_be_bytes().to_vec());
    for (name, user) in &state.users {
        let value = UserPb {
            name: name.as_bytes().to_vec(),
            password: user.password.as_bytes().to_vec(),
            roles: user.roles.iter().cloned().collect(),
            options: Some(UserOptionsPb { no_password: user.no_password }),
        };
        put("authUsers", name.as_bytes().to_vec(), value.encode_to_vec());
    }
    for (name, permissions) in &state.roles {
        let value = RolePb {
            name: name.as_bytes().to_vec(),
            key_permission: permissions.iter().map(permission_pb).collect(),
        };
        put("authRoles", name.as_bytes().to_vec(), value.encode_to_vec());
    }
    for alarm in &state.alarms {
        let kind = match alarm.alarm {
            AlarmType::None => 0,
            AlarmType::NoSpace => 1,
            AlarmType::Corrupt => 2,
        };
        let key = AlarmMemberPb { member_id: alarm.member_id, alarm: kind };
        put("alarm", key.encode_to_vec(), Vec::new());
    }
    for member in &state.members {
        put("members", format!("{:x}", member.id).into_bytes(), member_json(member).into_bytes());
    }
    put("cluster", b"clusterVersion".to_vec(), CLUSTER_VERSION.as_bytes().to_vec());
    buckets
}

fn permission_pb(permission: &Permission) -> PermissionPb {
    let perm_type = match permission.perm_type {
        PermissionType::Read => 0,
        PermissionType::Write => 1,
        PermissionType::ReadWrite => 2,
    };
    PermissionPb { perm_type, key: permission.key.clone(), range_end: permission.range_end.clone() }
}

/// etcd's JSON for a member in the `members` bucket.
fn member_json(member: &Member) -> String {
    let list = |urls: &[String]| {
        let quoted: Vec<String> = urls.iter().map(|u| format!("{u:?}")).collect();
        format!("[{}]", quoted.join(","))
    };
    let mut json = format!("{{\"id\":{},\"peerURLs\":{}", member.id, list(&member.peer_urls));
    if member.is_learner {
        json.push_str(",\"isLearner\":true");
    }
    if !member.name.is_empty() {
        json.push_str(&format!(",\"name\":{:?}", member.name));
    }
    if !member.client_urls.is_empty() {
        json.push_str(&format!(",\"clientURLs\":{}", list(&member.client_urls)));
    }
    json.push('}');
    json
}

/// The state in etcd 3.4's buckets (buckets etcd creates on start may be missing). Membership
/// is not read: a restored cluster gets the members it is restored into, as in etcd.
pub fn decode(buckets: &Buckets) -> Result<EtcdState, String> {
    let empty = BTreeMap::new();
    let bucket = |name: &str| buckets.get(name.as_bytes()).unwrap_or(&empty);
    let mut state = EtcdState { compacted: -1, auth_revision: 1, ..EtcdState::default() };
    for (key, value) in bucket("key") {
        let (main, sub, tombstone) = parse_revision(key)
            .ok_or_else(|| format!("key bucket: {key:02x?} is not a revision"))?;
        let kv = KeyValuePb::decode(value.as_slice())
            .map_err(|e| format!("key bucket: revision {main}.{sub}: {e}"))?;
        let kv = KeyValue {
            key: kv.key,
            create_revision: kv.create_revision,
            mod_revision: kv.mod_revision,
            version: kv.version,
            value: kv.value,
            lease: kv.lease,
        };
        state.revisions.push(EtcdRevision { main, sub, tombstone, kv });
    }
    let meta = bucket("meta");
    if let Some(index) = meta.get(CONSISTENT_INDEX) {
        state.consistent_index =
            be_u64(index).ok_or("meta bucket: consistent_index is not 8 bytes")?;
    }
    for (name, field) in [
        (FINISHED_COMPACT, &mut state.compacted),
        (SCHEDULED_COMPACT, &mut state.scheduled_compaction),
    ] {
        if let Some(bytes) = meta.get(name) {
            let (main, _, _) = parse_revision(bytes).ok_or_else(|| {
                format!("meta bucket: {} is not a revision", String::from_utf8_lossy(name))
            })?;
            *field = main;
        }
    }
    for (key, value) in bucket("lease") {
        let lease = LeasePb::decode(value.as_slice())
            .map_err(|e| format!("lease bucket: {key:02x?}: {e}"))?;
        if lease.id == 0 || be_u64(key) != Some(lease.id as u64) {
            return Err(format!("lease bucket: key {key:02x?} does not name lease {}", lease.id));
        }
        let record =
            LeaseRecord { id: lease.id, ttl: lease.ttl, remaining_ttl: lease.remaining_ttl };
        state.leases.push(record);
    }
    let auth = bucket("auth");
    state.auth_enabled = auth.get(AUTH_ENABLED).is_some_and(|v| v.as_slice() == [1]);
    if let Some(revision) = auth.get(AUTH_REVISION) {
        let revision = be_u64(revision).ok_or("auth bucket: authRevision is not 8 bytes")?;
        state.auth_revision = revision.max(1);
    }
    for (key, value) in bucket("authUsers") {
        let name = String::from_utf8_lossy(key).into_owned();
        let user = UserPb::decode(value.as_slice()).map_err(|e| format!("user {name:?}: {e}"))?;
        let password = String::from_utf8(user.password)
            .map_err(|_| format!("user {name:?}: the password hash is not text"))?;
        let no_password = user.options.is_some_and(|o| o.no_password);
        let roles = user.roles.into_iter().collect();
        state.users.push((name, User { password, roles, no_password }));
    }
    for (key, value) in bucket("authRoles") {
        let name = String::from_utf8_lossy(key).into_owned();
        let role = RolePb::decode(value.as_slice()).map_err(|e| format!("role {name:?}: {e}"))?;
        let mut permissions = Vec::new();
        for permission in role.key_permission {
            let perm_type = match permission.perm_type {
                0 => PermissionType::Read,
                1 => PermissionType::Write,
                2 => PermissionType::ReadWrite,
                other => return Err(format!("role {name:?}: permission type {other}")),
            };
            permissions.push(Permission {
                perm_type,
                key: permission.key,
                range_end: permission.range_end,
            });
        }
        state.roles.push((name, permissions));
    }
    for key in bucket("alarm").keys() {
        let alarm =
            AlarmMemberPb::decode(key.as_slice()).map_err(|e| format!("alarm bucket: {e}"))?;
        let kind = match alarm.alarm {
            1 => AlarmType::NoSpace,
            2 => AlarmType::Corrupt,
            _ => continue,
        };
        state.alarms.push(AlarmMember { member_id: alarm.member_id, alarm: kind });
    }
    Ok(state)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn revision_bytes_are_etcds() {
        let bytes = revision_bytes(2, 1, false);
        assert_eq!(bytes, [0, 0, 0, 0, 0, 0, 0, 2, b'_', 0, 0, 0, 0, 0, 0, 0, 1]);
        assert_eq!(parse_revision(&bytes), Some((2, 1, false)));
        assert_eq!(parse_revision(&revision_bytes(9, 0, true)), Some((9, 0, true)));
        assert_eq!(parse_revision(b"short"), None);
    }

    #[test]
    fn a_key_value_encodes_as_etcd_wrote_it() {
        // From a real etcd 3.4 database: KeyValue{foo, create 2, mod 2, version 1, bar}.
        let value = KeyValuePb {
            key: b"foo".to_vec(),
            create_revision: 2,
            mod_revision: 2,
            version: 1,
            value: b"bar".to_vec(),
            lease: 0,
        };
        let expected =
            [0x0a, 3, b'f', b'o', b'o', 0x10, 2, 0x18, 2, 0x20, 1, 0x2a, 3, b'b', b'a', b'r'];
        assert_eq!(value.encode_to_vec(), expected);
        let user = UserPb {
            name: b"u".to_vec(),
            password: Vec::new(),
            roles: Vec::new(),
            options: Some(UserOptionsPb { no_password: false }),
        };
        assert_eq!(user.encode_to_vec(), [0x0a, 1, b'u', 0x22, 0], "etcd always sets options");
    }

    #[test]
    fn member_json_is_etcds() {
        let member = Member {
            id: 9372538179322589801,
            name: "infra1".into(),
            peer_urls: vec!["http://127.0.0.1:12380".into()],
            client_urls: vec!["http://127.0.0.1:2379".into()],
            is_learner: false,
        };
        assert_eq!(
            member_json(&member),
            "{\"id\":9372538179322589801,\"peerURLs\":[\"http://127.0.0.1:12380\"],\
             \"name\":\"infra1\",\"clientURLs\":[\"http://127.0.0.1:2379\"]}"
        );
    }
}
