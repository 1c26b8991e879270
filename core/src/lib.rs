//! stead-core: the sans-IO heart of stead, an etcd-compatible replicated key-value store.
//!
//! Everything that decides anything lives here, and nothing here performs IO: no sockets, no
//! files, no clock, no threads and no OS randomness. Drivers (the deterministic simulator and the
//! real tokio runtime) pass time, messages and requests in and carry the outputs out. Map
//! iteration order never leaks into outputs (ordered maps only). `tests/sans_io.rs` enforces these
//! rules on the source. The crate holds the request/response types ([`api`]), the MVCC key space
//! ([`mvcc`]), the apply pipeline ([`apply`]), and the replicated [`node`] that runs raft
//! (tikv/raft-rs) behind a sans-IO interface, with its own [`time`] types, the [`lease`]s and the
//! [`watch`] streams, [`auth`]entication and authorization, [`backup`]s in etcd's format, and the [`stats`]
//! operators read as metrics.

#![forbid(unsafe_code)]

pub mod api;
pub mod apply;
pub mod auth;
pub mod backup;
pub mod lease;
pub mod mvcc;
pub mod node;
pub mod stats;
pub mod time;
pub mod watch;
