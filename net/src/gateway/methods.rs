//! Which gRPC method each gateway path calls: etcd 3.4's table (its `*.pb.gw.go` files), with
//! the message types and streaming kinds read from the descriptors `build.rs` compiled.

use prost_reflect::{DescriptorPool, MessageDescriptor};
use std::sync::OnceLock;

/// etcd 3.4's gateway paths (after `/v3/`) and the `service/method` each calls. Where two
/// methods share a path (`maintenance/hash`), the first registered answers, as in etcd.
const ROUTES: &[(&str, &str)] = &[
    ("kv/range", "etcdserverpb.KV/Range"),
    ("kv/put", "etcdserverpb.KV/Put"),
    ("kv/deleterange", "etcdserverpb.KV/DeleteRange"),
    ("kv/txn", "etcdserverpb.KV/Txn"),
    ("kv/compaction", "etcdserverpb.KV/Compact"),
    ("watch", "etcdserverpb.Watch/Watch"),
    ("lease/grant", "etcdserverpb.Lease/LeaseGrant"),
    ("lease/revoke", "etcdserverpb.Lease/LeaseRevoke"),
    ("kv/lease/revoke", "etcdserverpb.Lease/LeaseRevoke"),
    ("lease/keepalive", "etcdserverpb.Lease/LeaseKeepAlive"),
    ("lease/timetolive", "etcdserverpb.Lease/LeaseTimeToLive"),
    ("kv/lease/timetolive", "etcdserverpb.Lease/LeaseTimeToLive"),
    ("lease/leases", "etcdserverpb.Lease/LeaseLeases"),
    ("kv/lease/leases", "etcdserverpb.Lease/LeaseLeases"),
    ("cluster/member/add", "etcdserverpb.Cluster/MemberAdd"),
    ("cluster/member/remove", "etcdserverpb.Cluster/MemberRemove"),
    ("cluster/member/update", "etcdserverpb.Cluster/MemberUpdate"),
    ("cluster/member/list", "etcdserverpb.Cluster/MemberList"),
    ("cluster/member/promote", "etcdserverpb.Cluster/MemberPromote"),
    ("maintenance/alarm", "etcdserverpb.Maintenance/Alarm"),
    ("maintenance/status", "etcdserverpb.Maintenance/Status"),
    ("maintenance/defragment", "etcdserverpb.Maintenance/Defragment"),
    ("maintenance/hash", "etcdserverpb.Maintenance/Hash"),
    ("maintenance/hash", "etcdserverpb.Maintenance/HashKV"),
    ("maintenance/snapshot", "etcdserverpb.Maintenance/Snapshot"),
    ("maintenance/transfer-leadership", "etcdserverpb.Maintenance/MoveLeader"),
    ("auth/enable", "etcdserverpb.Auth/AuthEnable"),
    ("auth/disable", "etcdserverpb.Auth/AuthDisable"),
    ("auth/authenticate", "etcdserverpb.Auth/Authenticate"),
    ("auth/user/add", "etcdserverpb.Auth/UserAdd"),
    ("auth/user/get", "etcdserverpb.Auth/UserGet"),
    ("auth/user/list", "etcdserverpb.Auth/UserList"),
    ("auth/user/delete", "etcdserverpb.Auth/UserDelete"),
    ("auth/user/changepw", "etcdserverpb.Auth/UserChangePassword"),
    ("auth/user/grant", "etcdserverpb.Auth/UserGrantRole"),
    ("auth/user/revoke", "etcdserverpb.Auth/UserRevokeRole"),
    ("auth/role/add", "etcdserverpb.Auth/RoleAdd"),
    ("auth/role/get", "etcdserverpb.Auth/RoleGet"),
    ("auth/role/list", "etcdserverpb.Auth/RoleList"),
    ("auth/role/delete", "etcdserverpb.Auth/RoleDelete"),
    ("auth/role/grant", "etcdserverpb.Auth/RoleGrantPermission"),
    ("auth/role/revoke", "etcdserverpb.Auth/RoleRevokePermission"),
    ("lock/lock", "v3lockpb.Lock/Lock"),
    ("lock/unlock", "v3lockpb.Lock/Unlock"),
    ("election/campaign", "v3electionpb.Election/Campaign"),
    ("election/proclaim", "v3electionpb.Election/Proclaim"),
    ("election/leader", "v3electionpb.Election/Leader"),
    ("election/observe", "v3electionpb.Election/Observe"),
    ("election/resign", "v3electionpb.Election/Resign"),
];

/// How a method's messages flow.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flow {
    /// One request, one response.
    Unary,
    /// One request, a stream of responses (Snapshot, Observe).
    ServerStream,
    /// Streams both ways (Watch, LeaseKeepAlive): the body is a sequence of JSON requests.
    Bidi,
}

/// A gRPC method the gateway calls.
#[derive(Clone, Debug)]
pub struct Method {
    /// The gRPC path, `/etcdserverpb.KV/Range`.
    pub path: String,
    /// The request type.
    pub input: MessageDescriptor,
    /// The response type.
    pub output: MessageDescriptor,
    /// How its messages flow.
    pub flow: Flow,
}

/// The descriptors of etcd's API, as `build.rs` compiled them.
pub fn descriptors() -> DescriptorPool {
    static POOL: OnceLock<DescriptorPool> = OnceLock::new();
    POOL.get_or_init(|| {
        let bytes = include_bytes!(concat!(env!("OUT_DIR"), "/descriptors.bin"));
        DescriptorPool::decode(bytes.as_slice()).expect("build.rs writes a valid descriptor set")
    })
    .clone()
}

/// The method served at `/v3/<path>`, if any.
pub fn find(path: &str) -> Option<&'static Method> {
    static METHODS: OnceLock<Vec<(&'static str, Method)>> = OnceLock::new();
    let methods = METHODS.get_or_init(|| {
        let pool = descriptors();
        ROUTES
            .iter()
            .map(|&(route, full)| {
                let (service, name) = full.split_once('/').expect("service/method");
                let method = pool
                    .get_service_by_name(service)
                    .and_then(|s| s.methods().find(|m| m.name() == name))
                    .unwrap_or_else(|| panic!("{full} is in net/proto"));
                let flow = match (method.is_client_streaming(), method.is_server_streaming()) {
                    (false, false) => Flow::Unary,
                    (false, true) => Flow::ServerStream,
                    _ => Flow::Bidi,
                };
                let method = Method {
                    path: format!("/{full}"),
                    input: method.input(),
                    output: method.output(),
                    flow,
                };
                (route, method)
            })
            .collect()
    });
    methods.iter().find(|(route, _)| *route == path).map(|(_, method)| method)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_route_names_a_method_of_the_api() {
        for (route, full) in ROUTES {
            let method = find(route).unwrap();
            // The first of two methods on one path answers it.
            if *full != "etcdserverpb.Maintenance/HashKV" {
                assert_eq!(method.path, format!("/{full}"));
            }
        }
        assert_eq!(find("maintenance/hash").unwrap().output.name(), "HashResponse");
        assert_eq!(find("watch").unwrap().flow, Flow::Bidi);
        assert_eq!(find("lease/keepalive").unwrap().flow, Flow::Bidi);
        assert_eq!(find("maintenance/snapshot").unwrap().flow, Flow::ServerStream);
        assert_eq!(find("election/observe").unwrap().flow, Flow::ServerStream);
        assert_eq!(find("kv/lease/leases").unwrap().input.name(), "LeaseLeasesRequest");
        assert!(find("kv/rangex").is_none() && find("kv/range/").is_none() && find("").is_none());
    }
}
