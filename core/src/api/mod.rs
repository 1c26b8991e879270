//! Request and response types of etcd's v3 API, as plain Rust data, plus the errors the core
//! answers with.
//!
//! The types mirror etcd's protobuf messages field for field, so the gRPC layer in `stead-net`
//! converts them mechanically, but they carry no protobuf or transport concerns. Every error type
//! maps to etcd's exact gRPC status code and message in one place: [`error`].

pub mod auth;
pub mod cluster;
pub mod error;
pub mod kv;
pub mod lease;
pub mod maintenance;
pub mod request;
pub mod watch;

pub use auth::*;
pub use cluster::{ClusterRequest, ClusterResponse, Member};
pub use error::{AuthError, ClusterError, Error, GrpcCode, KvError, LeaseError, ServerError};
pub use kv::*;
pub use lease::*;
pub use maintenance::*;
pub use request::{Request, Response};
pub use watch::*;
