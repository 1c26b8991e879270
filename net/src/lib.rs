//! stead-net: the real-IO runtime around the sans-IO `stead_core::Node`, and the `stead` binary.
//!
//! A thin tokio + tonic driver: [`driver`] owns the member (node and store) in one task and
//! feeds it real time, peer messages and client requests, which reach it through a
//! [`handle`]; [`peer`] carries raft messages between members ([`join`] finds a new member's
//! id in a running cluster, [`forward`] takes leader-only requests to the leader); [`service`]
//! serves etcd's v3 gRPC API, so that `etcdctl` and etcd's client libraries work unchanged;
//! [`config`] reads etcd's flags ([`tls`] the security ones); `http` and `gateway` are the
//! client port's HTTP side (etcd's endpoints and its JSON gateway); [`server`] puts them together;
//! `snapshot` is `stead snapshot save|status|restore`; [`metrics`] are etcd's Prometheus
//! metrics and `log` its log formats.
//! Decisions belong to the core, never to this crate.

pub mod config;
pub mod convert;
pub mod dial;
pub mod driver;
pub mod forward;
#[cfg(not(madsim))]
pub mod gateway;
pub mod handle;
#[cfg(not(madsim))]
pub mod http;
pub mod join;
#[cfg(not(madsim))]
pub mod listen;
#[cfg(not(madsim))]
pub mod lock;
pub mod log;
pub mod metrics;
pub mod notice;
pub mod peer;
pub mod proto;
pub mod server;
pub mod service;
#[cfg(not(madsim))]
pub mod snapshot;
pub mod tls;
