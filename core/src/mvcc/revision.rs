//! Revisions: the logical clock of the key space.

use serde::{Deserialize, Serialize};
use std::fmt;

/// A point in the key space's history (etcd's `revision`).
///
/// `main` counts write transactions (one per transaction, however many keys it changes); `sub`
/// numbers the changes inside one transaction from 0. Revisions order first by `main`, then `sub`.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub struct Revision {
    /// The write transaction's revision.
    pub main: i64,
    /// The change's position inside its transaction.
    pub sub: i64,
}

impl Revision {
    /// The revision of the `sub`-th change of transaction `main`.
    pub fn new(main: i64, sub: i64) -> Self {
        Revision { main, sub }
    }
}

impl fmt::Display for Revision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.main, self.sub)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn orders_by_main_then_sub() {
        assert!(Revision::new(2, 0) < Revision::new(2, 1));
        assert!(Revision::new(2, 9) < Revision::new(3, 0));
        assert_eq!(Revision::new(4, 1).to_string(), "4.1");
    }
}
