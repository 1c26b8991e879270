//! stead-sim: the deterministic simulator. Today it holds the [`host`]: one member, a
//! `stead_core::Node` driven over the real `stead_store` WAL and snapshot files on a crashable
//! `MemDisk`.
//!
//! The rest is coming (see the sim issue): clusters of hosts in a single-threaded
//! discrete-event loop driven by one seeded ChaCha RNG; network, disk, crash and clock faults;
//! recorded client histories and the checkers (linearizability, watch and lease guarantees,
//! raft safety, durability, liveness). The same seed will always replay the same trace, bit for
//! bit.

pub mod host;
