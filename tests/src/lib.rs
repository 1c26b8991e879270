//! stead-tests: the real-process chaos suite. It starts clusters of the release `stead` binary
//! (or of etcd 3.4, the control) as separate processes on hosts of their own ([`network`]:
//! one network namespace per member), drives them with real gRPC clients that record a history
//! ([`workload`], [`recorder`]), injects real faults ([`nemesis`]: `kill -9` and restart,
//! `SIGSTOP`/`SIGCONT`, partitions with iptables, a full disk, membership churn, leader
//! transfer storms), and holds the history to etcd's guarantees with the simulator's own
//! checkers ([`run`]). [`leases`] is the regression test of leases asked of followers.
//!
//! Everything here needs root (namespaces, iptables, tmpfs mounts), as CI runs. The
//! `stead-chaos` binary runs seeds by hand (`--seeds`, `--duration`, `--etcd`); the test
//! `tests/chaos.rs` runs CI's bounded tier.

pub mod cluster;
pub mod leases;
pub mod member;
pub mod nemesis;
pub mod network;
pub mod recorder;
pub mod run;
pub mod verdict;
pub mod workload;
