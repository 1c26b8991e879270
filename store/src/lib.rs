//! stead-store: the durability layer. It holds the `Disk` trait, the raft write-ahead log,
//! state-machine snapshot files, and the [`host`] that runs a `stead_core` node over them (the
//! same for the simulator and the `stead` binary).
//!
//! Every file access goes through [`disk::Disk`], so the simulator can substitute [`MemDisk`],
//! which loses, keeps or tears unsynced data at a crash as a seeded chooser decides. The crate
//! decides nothing about raft. It stores records and gives them back, or says clearly why it
//! cannot. It never reads the clock, spawns threads or draws randomness.

#![deny(unsafe_code)]

pub mod disk;
mod error;
pub mod host;
mod recover;
pub mod snap;
pub mod wal;

pub use disk::{Disk, FaultKind, MemDisk, RealDisk};
pub use error::StoreError;
pub use raft_proto::eraftpb::{Entry, HardState};
pub use recover::{recover, Recovered};
