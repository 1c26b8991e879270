//! Single-node tests of the Node; multi-node behaviour is tested in `tests/cluster.rs`.
