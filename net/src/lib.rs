//! stead-net: the real-IO runtime, not built yet (see the net issue).
//!
//! It will be a thin tokio + tonic driver around the sans-IO `stead_core::Node`: it feeds the
//! node real time, peer messages and client requests, executes its outputs (peer sends, WAL
//! appends with group commit, snapshot files, responses) and serves etcd's v3 gRPC API, so that
//! `etcdctl` and etcd's client libraries work unchanged. It ships the `stead` binary, whose flags
//! follow etcd's names and defaults. Decisions belong to the core, never to this crate.
