//! stead-store: the durability layer, not built yet (see the store issue).
//!
//! It will hold the `Disk` trait (the only way stead touches files), a real implementation on
//! `std::fs` and `MemDisk` (an in-memory disk that loses, keeps or tears unsynced data at a
//! crash, as a seeded RNG decides), the raft write-ahead log (CRC-chained records in preallocated
//! segments, group commit, torn-tail repair) and state-machine snapshot files. It must never read
//! the clock, spawn threads or draw OS randomness, so the simulator can crash it deterministically.
