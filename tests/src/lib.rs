//! stead-tests: end-to-end tests, not written yet (see the net and scenarios issues).
//!
//! They will start clusters of the real `stead` binary on loopback ports and drive them with the
//! real `etcdctl`, compare its output with a real etcd 3.4 cluster, and run every chaos scenario
//! in `scenarios/` over fixed seed ranges through `stead-sim`.
