//! The simulator's hosts: stead-store's [`stead_store::host::Host`] on a crashable `MemDisk`.

pub use stead_store::host::HostError;

/// One member: its node over the real store on a simulated disk.
pub type Host = stead_store::host::Host<stead_store::MemDisk>;
