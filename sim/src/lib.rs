//! stead-sim: the deterministic simulator, not built yet (see the sim issue).
//!
//! It will run clusters of `stead_core::Node` on `stead_store` over a simulated `MemDisk` in a
//! single-threaded discrete-event loop driven by one seeded ChaCha RNG, inject network, disk,
//! crash and clock faults, record client histories and check them (linearizability, watch and
//! lease guarantees, raft safety, durability, liveness). The same seed always replays the same
//! trace, bit for bit.
