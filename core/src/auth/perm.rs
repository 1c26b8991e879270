//! Whether a user's permissions cover a key range (etcd's `range_perm_cache.go`).
//!
//! A user's permissions of one kind (read or write) are the union of the permissions of its
//! roles. A request over `[key, range_end)` is allowed only if that union covers the whole
//! range; a single key only if some permission contains it. The union is kept as sorted,
//! disjoint, non-touching intervals, so "covered by the union" is "inside one interval".

use crate::api::{Permission, PermissionType};

/// The end of an interval: a key (exclusive) or past every key.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum End {
    Key(Vec<u8>),
    Unbounded,
}

/// A union of key intervals `[start, end)`, merged.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KeySet {
    intervals: Vec<(Vec<u8>, End)>,
}

/// The interval a permission or request names: one key is `[key, key + "\0")`; a range end of
/// `"\0"` runs past every key.
fn interval(key: &[u8], range_end: &[u8]) -> (Vec<u8>, End) {
    match range_end {
        [] => {
            let mut next = key.to_vec();
            next.push(0);
            (key.to_vec(), End::Key(next))
        }
        [0] => (key.to_vec(), End::Unbounded),
        end => (key.to_vec(), End::Key(end.to_vec())),
    }
}

impl KeySet {
    /// The union of the permissions that allow `wanted` (`Read` or `Write`).
    pub fn from_permissions<'a>(
        perms: impl IntoIterator<Item = &'a Permission>,
        wanted: PermissionType,
    ) -> KeySet {
        let mut intervals: Vec<(Vec<u8>, End)> = perms
            .into_iter()
            .filter(|perm| perm.perm_type.allows(wanted))
            .map(|perm| interval(&perm.key, &perm.range_end))
            .filter(|(start, end)| match end {
                End::Key(end) => start < end,
                End::Unbounded => true,
            })
            .collect();
        intervals.sort();
        let mut merged: Vec<(Vec<u8>, End)> = Vec::with_capacity(intervals.len());
        for (start, end) in intervals {
            match merged.last_mut() {
                Some((_, last_end)) if End::Key(start.clone()) <= *last_end => {
                    if end > *last_end {
                        *last_end = end;
                    }
                }
                _ => merged.push((start, end)),
            }
        }
        KeySet { intervals: merged }
    }

    /// Whether the set covers the request's `key`/`range_end` (etcd's conventions). An empty
    /// span (end not after start) is covered only if its start key is.
    pub fn covers(&self, key: &[u8], range_end: &[u8]) -> bool {
        let (start, end) = interval(key, range_end);
        let end = match end {
            End::Key(end) if end <= start => interval(key, b"").1,
            end => end,
        };
        // The one interval that could hold `start`: the last one starting at or before it.
        let at = self.intervals.partition_point(|(s, _)| s.as_slice() <= start.as_slice());
        at > 0 && {
            let (_, candidate_end) = &self.intervals[at - 1];
            End::Key(start) < *candidate_end && end <= *candidate_end
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn perm(perm_type: PermissionType, key: &str, end: &str) -> Permission {
        Permission { perm_type, key: key.into(), range_end: end.into() }
    }

    #[test]
    fn single_keys_prefixes_and_open_ranges() {
        let perms = [
            perm(PermissionType::Read, "a", ""),
            perm(PermissionType::ReadWrite, "foo/", "foo0"),
            perm(PermissionType::Write, "z", "\0"),
        ];
        let read = KeySet::from_permissions(&perms, PermissionType::Read);
        let write = KeySet::from_permissions(&perms, PermissionType::Write);
        assert!(read.covers(b"a", b"") && !read.covers(b"a0", b"") && !read.covers(b"a", b"b"));
        assert!(read.covers(b"foo/x", b"") && read.covers(b"foo/", b"foo0"));
        assert!(!read.covers(b"foo", b"foo0"), "starts before the prefix");
        assert!(!read.covers(b"z", b""), "write only");
        assert!(write.covers(b"zz", b"\0") && write.covers(b"z", b""));
        assert!(!write.covers(b"a", b""), "read only");
        assert!(write.covers(b"foo/a", b"foo/b"));
    }

    #[test]
    fn adjacent_permissions_merge() {
        let perms = [perm(PermissionType::Read, "a", "c"), perm(PermissionType::Read, "c", "e")];
        let read = KeySet::from_permissions(&perms, PermissionType::Read);
        assert!(read.covers(b"b", b"d") && read.covers(b"a", b"e") && !read.covers(b"a", b"f"));
        let gap = [perm(PermissionType::Read, "a", "c"), perm(PermissionType::Read, "d", "e")];
        let read = KeySet::from_permissions(&gap, PermissionType::Read);
        assert!(!read.covers(b"b", b"d"), "the key c is not covered");
    }

    proptest! {
        /// Every range inside one granted permission is covered, whatever else is granted
        /// (the model check below can only refute coverage, so this pins the other side).
        #[test]
        fn ranges_inside_a_permission_are_covered(
            perms in proptest::collection::vec(("[ab]{1,3}", "[ab]{1,3}"), 1..5),
            picks in proptest::collection::vec(("[ab]{0,3}", "[ab]{0,3}"), 1..8),
        ) {
            let perms: Vec<Permission> = perms
                .into_iter()
                .map(|(k, e)| {
                    let (key, end) = if k < e { (k, e) } else { (e, format!("{k}b")) };
                    perm(PermissionType::Read, &key, &end)
                })
                .collect();
            let set = KeySet::from_permissions(&perms, PermissionType::Read);
            for (granted, (x, y)) in perms.iter().cycle().zip(picks) {
                let (start, end) = (&granted.key, &granted.range_end);
                let lo = format!("{}{x}", String::from_utf8_lossy(start));
                let hi = format!("{}{y}", String::from_utf8_lossy(start));
                let (lo, hi) = if lo <= hi { (lo, hi) } else { (hi, lo) };
                if lo.as_bytes() >= end.as_slice() || hi.as_bytes() > end.as_slice() {
                    continue;
                }
                prop_assert!(set.covers(lo.as_bytes(), b""), "{lo} in {granted:?}");
                if lo < hi {
                    prop_assert!(set.covers(lo.as_bytes(), hi.as_bytes()), "[{lo}, {hi}) in {granted:?}");
                }
                prop_assert!(set.covers(start, end), "{granted:?} itself");
            }
            let open = [perm(PermissionType::Read, "b", "\0")];
            let set = KeySet::from_permissions(&open, PermissionType::Read);
            prop_assert!(set.covers(b"bzz", b"\0") && set.covers(b"b", b"c"));
        }

        /// Against a naive model over a small alphabet: a range is covered exactly when every
        /// key in it (up to length 3) is in some permission.
        #[test]
        fn covers_matches_a_key_by_key_model(
            perms in proptest::collection::vec(("[ab]{0,2}", "[ab\0]{0,2}"), 0..5),
            key in "[ab]{0,2}",
            end in "[ab\0]{0,2}",
        ) {
            let perms: Vec<Permission> = perms
                .into_iter()
                .map(|(k, e)| perm(PermissionType::ReadWrite, &k, &e))
                .collect();
            let set = KeySet::from_permissions(&perms, PermissionType::Read);
            let universe: Vec<Vec<u8>> = (0..=3usize)
                .flat_map(|len| {
                    (0..3usize.pow(len as u32)).map(move |mut n| {
                        (0..len)
                            .map(|_| {
                                let c = [0u8, b'a', b'b'][n % 3];
                                n /= 3;
                                c
                            })
                            .collect()
                    })
                })
                .collect();
            let in_range = |k: &[u8], start: &[u8], end: &[u8]| match end {
                [] => k == start,
                [0] => k >= start,
                end => start <= k && k < end,
            };
            let request_end: &[u8] = if !end.is_empty() && end != "\0" && end.as_bytes() <= key.as_bytes() {
                b""
            } else {
                end.as_bytes()
            };
            let expected = universe
                .iter()
                .filter(|k| in_range(k, key.as_bytes(), request_end))
                .all(|k| perms.iter().any(|p| in_range(k, &p.key, &p.range_end)));
            // The model sees only short keys; an open or long range may need longer ones, so
            // only a model "no" is conclusive, plus a model "yes" on single keys.
            if !expected {
                prop_assert!(!set.covers(key.as_bytes(), end.as_bytes()));
            } else if request_end.is_empty() {
                prop_assert!(set.covers(key.as_bytes(), end.as_bytes()));
            }
        }
    }
}
