//! The generated protobuf and gRPC code of etcd's v3 API (from `net/proto`, see `build.rs`).

#![allow(missing_docs, clippy::all, clippy::pedantic)]

/// etcd's `mvccpb`: keys and events.
pub mod mvccpb {
    tonic::include_proto!("mvccpb");
}

/// etcd's `authpb`: users, roles, permissions.
pub mod authpb {
    tonic::include_proto!("authpb");
}

/// etcd's `etcdserverpb`: the KV, Watch, Lease, Cluster, Maintenance and Auth services.
pub mod etcdserverpb {
    tonic::include_proto!("etcdserverpb");
}

/// etcd's `v3lockpb`: the Lock service.
pub mod v3lockpb {
    tonic::include_proto!("v3lockpb");
}

/// etcd's `v3electionpb`: the Election service.
pub mod v3electionpb {
    tonic::include_proto!("v3electionpb");
}

/// stead's own peer transport (raft messages between members).
pub mod steadpeer {
    tonic::include_proto!("steadpeer");
}
