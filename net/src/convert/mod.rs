//! Conversions between etcd's protobuf messages and the core's request and response types.
//! Mechanical by design: every rule lives in the core.

pub mod kv;
